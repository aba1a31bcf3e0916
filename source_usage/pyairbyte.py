"""A PyAirbyte PostgreSQL cache that stores instants as `timestamp with time zone`.

PyAirbyte (0.71.3, the latest at the time of writing) asks for SQLAlchemy's generic
`TIMESTAMP(timezone=True)` for every `format: date-time` property, but writes its CREATE TABLE statements
by rendering the type with `str()`, without the PostgreSQL dialect: the generic type renders as plain
`TIMESTAMP`, so PostgreSQL creates `timestamp without time zone` columns. Those hold wall-clock time with no
zone, and PyAirbyte's loader (pandas) turns some instants (columns named `*_at`, `*_time`, `date`...) into
aware datetimes that PostgreSQL converts to the session's time zone on the way into such a column: on a
database whose TimeZone is not UTC, `observed_at` lands shifted while `ts` or `expirationDate` do not.

`PostgresCache` here is `airbyte.caches.PostgresCache` with one change: its SQL processor's type converter
answers `TimestampWithTimeZone` for instants, PostgreSQL's `TIMESTAMP(timezone=True)` taught (with
SQLAlchemy's `@compiles`) to render as `TIMESTAMP WITH TIME ZONE` under any dialect, `str()` included
(the dialect's own type alone still renders as plain `TIMESTAMP` through `str()` in SQLAlchemy 2.0). Every instant of the connector's streams then
lands as `timestamp with time zone` holding the right instant, whatever the database's or the session's
time zone:

    from source_usage.pyairbyte import PostgresCache

    cache = PostgresCache(host="...", port=5432, username="...", password="...", database="usage", schema_name="usage")
    source.read(cache=cache)

Only the columns PyAirbyte derives from the streams' schemas change; its own bookkeeping column
`_airbyte_extracted_at` is still created by PyAirbyte as `timestamp without time zone`. Tables created
before with the plain cache keep their column types (PyAirbyte does not alter existing columns): start
from a new schema, or convert the columns (`ALTER TABLE ... ALTER COLUMN c TYPE timestamptz USING c AT
TIME ZONE 'UTC'`, for columns that held UTC wall time).

This module needs PyAirbyte (the `demo` extra: `pip install "source-usage[demo]"`) and is imported only
by whoever uses it. It is the one place that relies on PyAirbyte internals (the cache's
`_sql_processor_class` and the processor's `type_converter_class`); `check_pyairbyte_internals()` fails
loudly, naming what changed, if a PyAirbyte release moves them (the package's tests call it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict

import sqlalchemy
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles

from airbyte._processors.sql.postgres import PostgresSqlProcessor
from airbyte.caches import PostgresCache as PlainPostgresCache
from airbyte.shared.sql_processor import SqlProcessorBase
from airbyte.types import SQLTypeConverter

__all__ = ["PostgresCache", "TimestampWithTimeZone", "TimestampTzTypeConverter", "TimestampTzPostgresSqlProcessor", "check_pyairbyte_internals"]


class TimestampWithTimeZone(postgresql.TIMESTAMP):
    """PostgreSQL's `TIMESTAMP(timezone=True)`, rendered as `TIMESTAMP WITH TIME ZONE` by every compiler."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)


@compiles(TimestampWithTimeZone)
def _timestamp_with_time_zone(type_: TimestampWithTimeZone, compiler: Any, **kw: Any) -> str:
    return "TIMESTAMP WITH TIME ZONE"


class TimestampTzTypeConverter(SQLTypeConverter):
    """PyAirbyte's type converter, answering `TIMESTAMP WITH TIME ZONE` for instants."""

    def to_sql_type(self, json_schema_property_def: Dict[str, Any]) -> sqlalchemy.types.TypeEngine:  # type: ignore[override]
        sql_type = super().to_sql_type(json_schema_property_def)
        if isinstance(sql_type, sqlalchemy.types.TIMESTAMP) and sql_type.timezone:
            return TimestampWithTimeZone()
        return sql_type


class TimestampTzPostgresSqlProcessor(PostgresSqlProcessor):
    """PyAirbyte's PostgreSQL processor with `TimestampTzTypeConverter`."""

    type_converter_class = TimestampTzTypeConverter


class PostgresCache(PlainPostgresCache):
    """`airbyte.caches.PostgresCache` whose tables store instants as `timestamp with time zone`."""

    _sql_processor_class: ClassVar[type[SqlProcessorBase]] = TimestampTzPostgresSqlProcessor


def check_pyairbyte_internals() -> None:
    """Raises RuntimeError, saying what changed, if PyAirbyte no longer has the internals this module uses:
    the cache class attribute `_sql_processor_class` that picks the SQL processor, the processor class
    attribute `type_converter_class` it builds its converter from, and a converter that answers a
    `TIMESTAMP(timezone=True)` for a `date-time` property."""
    problems = []
    if getattr(PlainPostgresCache, "_sql_processor_class", None) is not PostgresSqlProcessor:
        problems.append("airbyte.caches.PostgresCache._sql_processor_class is no longer PostgresSqlProcessor")
    if PostgresCache._sql_processor_class is not TimestampTzPostgresSqlProcessor:
        problems.append("PostgresCache._sql_processor_class is not taken from the class attribute any more")
    if getattr(PostgresSqlProcessor, "type_converter_class", None) is None or not issubclass(PostgresSqlProcessor.type_converter_class, SQLTypeConverter):
        problems.append("PostgresSqlProcessor.type_converter_class is missing or not an SQLTypeConverter")
    generic = SQLTypeConverter().to_sql_type({"type": "string", "format": "date-time"})
    if not (isinstance(generic, sqlalchemy.types.TIMESTAMP) and generic.timezone):
        problems.append(f"PyAirbyte's converter answers {generic!r} for a date-time, not TIMESTAMP(timezone=True)")
    rendered = str(TimestampTzTypeConverter().to_sql_type({"type": "string", "format": "date-time"}))
    if rendered != "TIMESTAMP WITH TIME ZONE":
        problems.append(f"an instant's column renders as {rendered!r}, not 'TIMESTAMP WITH TIME ZONE'")
    if problems:
        raise RuntimeError("source_usage.pyairbyte needs updating for this PyAirbyte release: " + "; ".join(problems))
