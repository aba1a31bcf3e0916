"""source_usage.pyairbyte: the PostgreSQL cache whose instants are `timestamp with time zone`.

These tests need no database: they check the column types the cache's processor asks for, and that the
PyAirbyte internals the module relies on are still there (so a PyAirbyte release that moves them fails here,
loudly, instead of silently creating `timestamp without time zone` columns again). The tables it creates in a
real PostgreSQL are checked in integration_tests/test_pyairbyte.py.
"""

from __future__ import annotations

import os

import pytest

# PyAirbyte reads these once, when it is first imported (importorskip imports it).
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
pytest.importorskip("airbyte", reason="PyAirbyte is the demo extra")

import sqlalchemy  # noqa: E402
from airbyte._processors.sql.postgres import PostgresSqlProcessor  # noqa: E402
from airbyte.caches import PostgresCache as PlainPostgresCache  # noqa: E402
from airbyte.shared.sql_processor import SqlProcessorBase  # noqa: E402
from airbyte.types import SQLTypeConverter  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from source_usage import pyairbyte  # noqa: E402
from source_usage.pyairbyte import PostgresCache, TimestampTzPostgresSqlProcessor, TimestampTzTypeConverter, check_pyairbyte_internals  # noqa: E402

INSTANT = {"type": ["null", "string"], "format": "date-time"}


def rendered(sql_type: sqlalchemy.types.TypeEngine) -> str:
    """How PyAirbyte writes a column type into its CREATE TABLE statements: f"{sql_type}"."""
    return f"{sql_type}"


def test_given_this_pyairbyte_release_then_the_internals_the_cache_relies_on_are_there() -> None:
    check_pyairbyte_internals()


def test_given_an_instant_property_then_the_column_is_timestamp_with_time_zone_as_pyairbyte_renders_it_and_in_postgresql() -> None:
    sql_type = TimestampTzTypeConverter().to_sql_type(INSTANT)

    assert rendered(sql_type) == "TIMESTAMP WITH TIME ZONE"
    assert str(sql_type.compile(dialect=postgresql.dialect())) == "TIMESTAMP WITH TIME ZONE"
    assert rendered(SQLTypeConverter().to_sql_type(INSTANT)) == "TIMESTAMP", "what the plain cache asks for (the bug worked around)"


@pytest.mark.parametrize(
    "schema, plain",
    [
        ({"type": ["null", "string"], "format": "date"}, "DATE"),
        ({"type": ["null", "integer"]}, "BIGINT"),
        ({"type": ["null", "number"]}, "DECIMAL(38, 9)"),
        ({"type": ["null", "string"]}, "VARCHAR"),
        ({"type": ["null", "boolean"]}, "BOOLEAN"),
        ({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_without_timezone"}, "TIMESTAMP"),
    ],
    ids=["date", "integer", "number", "string", "boolean", "timestamp-without-timezone"],
)
def test_given_any_other_property_then_the_column_type_is_pyairbytes_own(schema: dict, plain: str) -> None:
    assert rendered(TimestampTzTypeConverter().to_sql_type(schema)) == rendered(SQLTypeConverter().to_sql_type(schema)) == plain


def test_given_the_cache_then_its_processor_builds_the_converter() -> None:
    assert issubclass(PostgresCache, PlainPostgresCache)
    assert PostgresCache._sql_processor_class is TimestampTzPostgresSqlProcessor
    assert issubclass(TimestampTzPostgresSqlProcessor, PostgresSqlProcessor)
    assert TimestampTzPostgresSqlProcessor.type_converter_class is TimestampTzTypeConverter
    assert PlainPostgresCache._sql_processor_class is PostgresSqlProcessor, "the plain cache is left as it was"


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda monkeypatch: monkeypatch.setattr(PlainPostgresCache, "_sql_processor_class", object), "_sql_processor_class"),
        (lambda monkeypatch: monkeypatch.delattr(SqlProcessorBase, "type_converter_class"), "type_converter_class"),
        (lambda monkeypatch: monkeypatch.setattr(SQLTypeConverter, "to_sql_type", lambda self, schema: sqlalchemy.types.VARCHAR()), "date-time"),
    ],
    ids=["cache-processor-attribute", "converter-attribute", "converter-answer"],
)
def test_given_a_pyairbyte_that_moved_an_internal_then_the_check_fails_naming_it(monkeypatch: pytest.MonkeyPatch, change, named: str) -> None:
    change(monkeypatch)

    with pytest.raises(RuntimeError, match=named):
        check_pyairbyte_internals()


def test_given_the_package_then_pyairbyte_is_imported_only_by_whoever_imports_the_helper() -> None:
    import subprocess
    import sys

    code = "import sys, source_usage.source, source_usage.run; print('airbyte' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
    assert pyairbyte.__name__ == "source_usage.pyairbyte"
