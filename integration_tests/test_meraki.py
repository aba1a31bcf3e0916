"""Meraki streams against the emulator, through the real `source-usage` process."""

from __future__ import annotations

from datetime import timedelta

from integration_tests.harness import (
    assert_read_matches_emulator,
    configured_catalog,
    distinct_keys,
    key_of,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator
from source_usage.framework.windows import parse_timestamp

STREAMS = [
    "meraki_organizations",
    "meraki_networks",
    "meraki_network_clients",
    "meraki_client_usage_histories",
    "meraki_organization_licenses",
]


def test_full_read_returns_exactly_the_emulators_records_under_the_rate_limit() -> None:
    with Emulator(seed=3, scale=2, rate_limits=True, vendors=["meraki"], meraki={"organizations": 3}) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        stats = emulator.stats()["meraki"]
        assert stats["rate_limited"] / stats["requests"] < 0.02, stats
        assert any("co-termination" in line for line in run.logs("WARN")), "the co-term organization is skipped with a warning"


def test_incremental_read_returns_the_new_usage_points_and_only_the_lookback_again(meraki_emulator: Emulator) -> None:
    emulator = meraki_emulator
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config, ["meraki_client_usage_histories"])
    pk = primary_key(catalog, "meraki_client_usage_histories")
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-2000:]
    first_keys = distinct_keys(first.records("meraki_client_usage_histories"), pk)

    emulator.advance(1)
    second = run_connector("read", config, catalog, state=first.final_state())

    assert second.returncode == 0, second.stderr[-2000:]
    expected = emulator.expected("meraki_client_usage_histories", start_date=config["start_date"])
    expected_keys = distinct_keys(expected, pk)
    second_keys = distinct_keys(second.records("meraki_client_usage_histories"), pk)
    new_keys = expected_keys - first_keys
    assert new_keys, "advancing the emulator adds usage points"
    assert new_keys <= second_keys, "the incremental read returns every new usage point"
    assert first_keys | second_keys == expected_keys
    # Re-read records are limited to the one-day lookback before the saved state.
    latest = max(parse_timestamp(record["ts"]) for record in first.records("meraki_client_usage_histories"))
    reread = [record for record in second.records("meraki_client_usage_histories") if key_of(record, pk) in first_keys]
    assert reread, "the lookback re-reads the still-growing last bucket"
    assert all(parse_timestamp(record["ts"]) >= latest - timedelta(days=1) for record in reread)
