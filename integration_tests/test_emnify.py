"""emnify streams against the emulator, through the real `source-usage` process."""

from __future__ import annotations

from integration_tests.harness import (
    assert_read_matches_emulator,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator

STREAMS = ["emnify_endpoints", "emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour"]
MONTHLY, LAST_HOUR = STREAMS[1], STREAMS[2]
# Fixed a little after midnight, mid-month: the last hour crosses midnight and advancing stays in the month.
AFTER_MIDNIGHT = "2026-11-18T00:20:30Z"


def routes(emulator: Emulator) -> dict:
    return emulator.stats()["emnify"]["by_route"]


def test_full_read_returns_exactly_the_emulators_records_and_asks_each_endpoints_stats_once() -> None:
    knobs = {"endpoints": 45, "deleted_endpoints": 2, "max_per_page": 10}
    with Emulator(seed=5, rate_limits=True, vendors=["emnify"], emnify=knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        served = routes(emulator)
        assert served["/endpoint"] == {"200": 5}, "five pages of ten, listed once for the three streams"
        assert served["/endpoint/{id}/stats"] == {"200": 43, "404": 2}, "one stats request per endpoint for both stats streams"
        assert served["/authenticate"] == {"200": 1}
        assert len([line for line in run.logs("WARN") if "deleted after it was listed" in line]) == 2


def test_a_token_expiring_in_the_middle_of_a_sync_is_renewed_without_failing_it() -> None:
    knobs = {"endpoints": 200, "token_lifetime_seconds": 1.0}
    with Emulator(seed=7, rate_limits=True, vendors=["emnify"], emnify=knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, start_date=config["start_date"])
        served = routes(emulator)
        assert served["/endpoint/{id}/stats"].get("401", 0) >= 1, "the server expired a token during the sync"
        assert served["/authenticate"]["200"] >= 2
        assert any("authenticating again" in line for line in run.logs("INFO"))


def test_incremental_read_returns_only_changed_monthly_figures_new_minutes_and_the_newest_minute_now_final() -> None:
    with Emulator(seed=9, rate_limits=True, vendors=["emnify"], emnify={"endpoints": 30, "now": AFTER_MIDNIGHT}) as emulator:
        config = emulator.config(start_date="2026-08-01T00:00:00Z")
        catalog = configured_catalog(config, STREAMS)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        monthly_before = emulator.expected(MONTHLY, start_date=config["start_date"])
        minutes_before = emulator.expected(LAST_HOUR, start_date=config["start_date"])
        assert_records_match(first.records(LAST_HOUR), minutes_before, primary_key(catalog, LAST_HOUR), LAST_HOUR)
        assert {record["minute"][:10] for record in first.records(LAST_HOUR)} == {"2026-11-17", "2026-11-18"}

        emulator.advance(2)
        second = run_connector("read", config, catalog, state=first.final_state())

        assert second.returncode == 0, second.stderr[-2000:]
        changed = [record for record in emulator.expected(MONTHLY, start_date=config["start_date"]) if record not in monthly_before]
        assert changed, "advancing the emulator updates some endpoints' current month"
        assert_records_match(second.records(MONTHLY), changed, primary_key(catalog, MONTHLY), MONTHLY)
        pk = primary_key(catalog, LAST_HOUR)
        minutes_after = emulator.expected(LAST_HOUR, start_date=config["start_date"])
        new_minutes = [record for record in minutes_after if (record["endpoint_id"], record["traffic_type"], record["minute"]) not in distinct_minutes(minutes_before)]
        assert len(new_minutes) == 30 * 2 * 10, "two steps of five minutes for every endpoint and traffic type"
        # The first sync's newest minute was provisional: the second sync delivers it again, now final.
        newest_before = max(record["minute"] for record in minutes_before)
        now_final = [record for record in minutes_after if record["minute"] == newest_before]
        assert {record["is_final"] for record in now_final} == {True}
        assert {record["is_final"] for record in first.records(LAST_HOUR) if record["minute"] == newest_before} == {False}
        assert_records_match(second.records(LAST_HOUR), new_minutes + now_final, pk, LAST_HOUR)
        again = distinct_keys(second.records(LAST_HOUR), pk) & distinct_keys(first.records(LAST_HOUR), pk)
        assert again == distinct_keys(now_final, pk), "only the minute that was provisional is delivered twice"


def distinct_minutes(records: list) -> set:
    return {(record["endpoint_id"], record["traffic_type"], record["minute"]) for record in records}


def test_a_rejected_application_token_fails_every_emnify_stream_with_a_config_error() -> None:
    with Emulator(seed=11, rate_limits=True, vendors=["emnify"]) as emulator:
        config = emulator.config(start_date=start_date())
        config["emnify"]["application_token"] = "revoked-application-token"
        catalog = configured_catalog(emulator.config(), STREAMS)

        run = run_connector("read", config, catalog)

        assert run.returncode != 0
        failures = {(error["failure_type"], error["message"]) for error in run.errors if error.get("stream_descriptor")}
        assert failures == {("config_error", "emnify: the application token was rejected (HTTP 401)")}
        assert routes(emulator)["/authenticate"] == {"401": 1}, "the application token is tried once, not once per stream"


def test_neither_the_application_token_nor_an_issued_jwt_appears_in_any_output_even_with_debug_logs() -> None:
    with Emulator(seed=13, rate_limits=True, vendors=["emnify"], emnify={"endpoints": 6, "token_lifetime_seconds": 0.5}) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, STREAMS)

        runs = [
            run_connector("check", config),
            run_connector("read", config, catalog, extra_args=["--debug"]),
        ]

        assert all(run.returncode == 0 for run in runs), runs[-1].stderr[-2000:]
        secrets = [config["emnify"]["application_token"], *emulator.apps["emnify"].issued_tokens]
        assert len(secrets) >= 3, "check and read each authenticated"
        for run in runs:
            for secret in secrets:
                assert secret not in run.stdout and secret not in run.stderr
