"""PyAirbyte runs the local `source-usage` executable into real warehouses: DuckDB and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Set

import pytest

from integration_tests.harness import CONNECTOR, configured_catalog, distinct_keys, primary_key, start_date
from integration_tests.postgres import PostgresServer, PostgresUnavailable, postgres_server, server_binaries
from source_usage.emulator import Emulator

# PyAirbyte reads these when it is imported: no registry lookup, no telemetry, no uv-managed venvs.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("AIRBYTE_NO_UV", "1")

import airbyte as ab  # noqa: E402
from airbyte.caches import CacheBase, DuckDBCache, PostgresCache  # noqa: E402


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway server; a machine without PostgreSQL skips, unless CI requires it."""
    try:
        server_binaries()
    except PostgresUnavailable as missing:
        if os.environ.get("SOURCE_USAGE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SOURCE_USAGE_REQUIRE_POSTGRES=1 but {missing}")
        pytest.skip(str(missing))
    with postgres_server() as server:
        yield server


def sync(config: Mapping[str, Any], cache: CacheBase) -> Any:
    source = ab.get_source("source-usage", config=dict(config), local_executable=CONNECTOR)
    source.select_all_streams()
    return source.read(cache=cache)


def expected_keys(emulator: Emulator, catalog: Mapping[str, Any], config: Mapping[str, Any]) -> Dict[str, Set[tuple]]:
    return {
        entry["stream"]["name"]: distinct_keys(
            emulator.expected(entry["stream"]["name"], start_date=config["start_date"]), primary_key(catalog, entry["stream"]["name"])
        )
        for entry in catalog["streams"]
        if entry["stream"]["name"] != "usage_ledger"  # checked against its sources in test_ledger.py
    }


def row_counts(cache: CacheBase) -> Dict[str, int]:
    return {name: len(dataset) for name, dataset in cache.streams.items() if name != "usage_ledger"}


def assert_two_syncs_land(emulator: Emulator, cache: CacheBase) -> None:
    """Every stream lands with the emulator's row count; a second, incremental sync adds only the new rows."""
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config)
    before = expected_keys(emulator, catalog, config)
    assert {name.split("_")[0] for name in before} == {"meraki", "twilio", "emnify", "thousandeyes"}
    assert all(before.values()), f"the emulator holds no records for {[name for name, keys in before.items() if not keys]}"

    first = sync(config, cache)

    assert row_counts(cache) == {name: len(keys) for name, keys in before.items()}

    emulator.advance(1)
    after = expected_keys(emulator, catalog, config)
    second = sync(config, cache)

    # PyAirbyte merges on the primary key: rows the second sync read again replace themselves.
    added = {name: len(after[name] - before[name]) for name in before}
    assert row_counts(cache) == {name: len(before[name] | after[name]) for name in before}
    assert sum(added.values()) > 0, "advancing the emulator adds records"
    incremental = [entry["stream"]["name"] for entry in catalog["streams"] if entry["sync_mode"] == "incremental"]
    assert all(added[name] for name in ("meraki_client_usage_histories", "twilio_supersim_usage_records")), added
    assert second.processed_records < first.processed_records, "the second sync continued from the saved state"
    assert second.processed_records >= sum(added[name] for name in incremental)


def test_a_sync_lands_in_duckdb_and_the_next_one_adds_only_new_rows(tmp_path: Path) -> None:
    with Emulator(seed=21, rate_limits=True) as emulator:
        cache = DuckDBCache(db_path=tmp_path / "usage.duckdb", schema_name="main", cache_dir=tmp_path / "pyairbyte")

        assert_two_syncs_land(emulator, cache)


def test_a_sync_lands_in_postgres_and_the_next_one_adds_only_new_rows(postgres: PostgresServer, tmp_path: Path) -> None:
    with Emulator(seed=22, rate_limits=True) as emulator:
        cache = PostgresCache(
            host=postgres.host,
            port=postgres.port,
            username=postgres.username,
            password=postgres.password,
            database=postgres.database,
            schema_name="usage",
            cache_dir=tmp_path / "pyairbyte",
        )

        assert_two_syncs_land(emulator, cache)

        from sqlalchemy import text

        tables_query = text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'usage'")
        with cache.get_sql_engine().connect() as connection:
            tables = {row[0] for row in connection.execute(tables_query)}
        assert {"meraki_client_usage_histories", "emnify_endpoint_usage_monthly", "thousandeyes_usage"} <= tables
