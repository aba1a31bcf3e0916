"""emnify streams against the emulator, through the real `source-usage` process."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Dict, List, Tuple

import pytest

from integration_tests.harness import (
    assert_read_matches_emulator,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    key_of,
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
        assert "/endpoint/{id}/stats/daily" not in served, "the snapshot streams alone ask no daily statistics"
        assert served["/authenticate"] == {"200": 1}
        assert len([line for line in run.logs("WARN") if "deleted after it was listed" in line]) == 2


def test_a_token_expiring_in_the_middle_of_a_sync_is_renewed_without_failing_it() -> None:
    # each token expires after 60 requests (more than the workers have in flight: a new token always proves itself)
    knobs = {"endpoints": 200, "token_lifetime_requests": 60}
    with Emulator(seed=7, rate_limits=True, vendors=["emnify"], emnify=knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, start_date=config["start_date"])
        served = routes(emulator)
        assert served["/endpoint/{id}/stats"].get("401", 0) >= 1, "the server expired a token during the sync"
        # 200 statistics requests and the listing need at least four tokens of 60 requests
        assert served["/authenticate"]["200"] >= 4
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
    with Emulator(seed=13, rate_limits=True, vendors=["emnify"], emnify={"endpoints": 45, "token_lifetime_requests": 20}) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, STREAMS)

        runs = [
            run_connector("check", config),
            run_connector("read", config, catalog, extra_args=["--debug"]),
        ]

        assert all(run.returncode == 0 for run in runs), runs[-1].stderr[-2000:]
        secrets = [config["emnify"]["application_token"], *emulator.apps["emnify"].issued_tokens]
        # check authenticated once; the read's 46 requests outlived two tokens of 20 requests each (more than the
        # connection's workers can have in flight, so a renewed token always proves itself before it expires)
        assert len(secrets) >= 5, "check and read each authenticated, and the read renewed its token"
        for run in runs:
            for secret in secrets:
                assert secret not in run.stdout and secret not in run.stderr


# ----- real vendor behaviour: the last hour's shape and its growing newest minute, late updates, listing shifts ---

SNAPSHOT = "/endpoint/{id}/stats"
DAILY_ROUTE = "/endpoint/{id}/stats/daily"
MID_MONTH = "2026-11-18T12:00:00Z"


def test_given_a_last_hour_of_59_minutes_when_read_then_every_snapshot_stream_is_exact() -> None:
    with Emulator(seed=21, rate_limits=True, vendors=["emnify"], emnify={"endpoints": 10, "last_hour_minutes": 59}) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        minutes = {(record["endpoint_id"], record["traffic_type"]): set() for record in run.records(LAST_HOUR)}
        for record in run.records(LAST_HOUR):
            minutes[(record["endpoint_id"], record["traffic_type"])].add(record["minute"])
        assert {len(seen) for seen in minutes.values()} == {59}


def test_given_a_newest_minute_still_growing_when_synced_twice_then_it_is_delivered_provisional_then_again_final_with_its_final_value() -> None:
    with Emulator(seed=9, rate_limits=True, vendors=["emnify"], emnify={"endpoints": 10, "growing_newest_minute": True}) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, [LAST_HOUR])
        pk = primary_key(catalog, LAST_HOUR)
        complete_before = emulator.expected(LAST_HOUR)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-2000:]

        # The first sync: every complete minute exact, and the minute in progress, not final.
        complete_keys = distinct_keys(complete_before, pk)
        in_progress = [record for record in first.records(LAST_HOUR) if key_of(record, pk) not in complete_keys]
        assert_records_match([record for record in first.records(LAST_HOUR) if key_of(record, pk) in complete_keys], complete_before, pk, LAST_HOUR)
        assert len(in_progress) == 10 * 2, "one minute in progress per endpoint and traffic type"
        assert len({record["minute"] for record in in_progress}) == 1
        assert {record["is_final"] for record in in_progress} == {False}
        newest = in_progress[0]["minute"]
        assert newest > max(record["minute"] for record in complete_before)

        emulator.advance(1)
        second = run_connector("read", config, catalog, state=first.final_state())

        assert second.returncode == 0, second.stderr[-2000:]
        final = [record for record in emulator.expected(LAST_HOUR) if record["minute"] == newest]
        assert len(final) == 10 * 2 and {record["is_final"] for record in final} == {True}
        again = [record for record in second.records(LAST_HOUR) if record["minute"] == newest]
        assert_records_match(again, final, pk, LAST_HOUR)
        provisional = {key_of(record, pk): (record["rx"], record["tx"]) for record in in_progress}
        assert any(provisional[key_of(record, pk)] != (record["rx"], record["tx"]) for record in final), "some provisional values grew"
        # Minutes that were final in the first sync are not delivered again.
        assert not distinct_keys(second.records(LAST_HOUR), pk) & complete_keys


def test_given_a_data_row_updated_behind_a_later_sms_row_when_synced_incrementally_then_that_row_is_delivered_again() -> None:
    knobs = {"endpoints": 12, "out_of_order_updates": True, "now": MID_MONTH}
    with Emulator(seed=12, rate_limits=True, vendors=["emnify"], emnify=knobs) as emulator:
        config = emulator.config(start_date="2026-08-01T00:00:00Z")
        catalog = configured_catalog(config, [MONTHLY])
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        before = emulator.expected(MONTHLY)
        assert_records_match(first.records(MONTHLY), before, primary_key(catalog, MONTHLY), MONTHLY)

        emulator.advance(1)
        second = run_connector("read", config, catalog, state=first.final_state())

        assert second.returncode == 0, second.stderr[-2000:]
        changed = [record for record in emulator.expected(MONTHLY) if record not in before]
        newest_before: dict = {}
        for record in before:
            key = (record["endpoint_id"], record["month"])
            newest_before[key] = max(newest_before.get(key, ""), record["last_updated"])
        late_data = [
            record
            for record in changed
            if record["traffic_type_id"] == 5 and record["last_updated"] < newest_before.get((record["endpoint_id"], record["month"]), "")
        ]
        assert late_data, "the emulator updated a data row behind the endpoint's later SMS row"
        assert_records_match(second.records(MONTHLY), changed, primary_key(catalog, MONTHLY), MONTHLY)


def test_given_an_endpoint_deleted_during_the_listing_when_read_then_every_endpoint_is_still_listed_by_listing_once_more() -> None:
    knobs = {"endpoints": 45, "max_per_page": 10, "deletions_during_listing": 1}
    with Emulator(seed=5, rate_limits=True, vendors=["emnify"], emnify=knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, ["emnify_endpoints"])

        run = run_connector("read", config, catalog)

        assert run.returncode == 0, run.stderr[-2000:]
        assert_records_match(run.records("emnify_endpoints"), emulator.expected("emnify_endpoints"), ["id"], "emnify_endpoints")
        relisting = [line for line in run.logs("INFO") if "the endpoint count changed during the listing" in line and "listing again" in line]
        assert len(relisting) == 1, run.logs("INFO")
        assert routes(emulator)["/endpoint"]["200"] > 5, "the five pages of ten, and the listing again"


# ----- emnify daily usage ------------------------------------------------------------------------------------

DAILY = "emnify_endpoint_usage_daily"
LOOKBACK_DAYS = 2  # daily_lookback_days' default
DAILY_PATH = re.compile(r"/endpoint/(\d+)/stats/daily\?")


def daily_requests_per_endpoint(emulator: Emulator) -> Dict[str, int]:
    """How many `GET /endpoint/{id}/stats/daily` each endpoint got (from the emulator's request log)."""
    counts: Counter = Counter()
    for request in emulator.request_log:
        found = DAILY_PATH.search(request["url"])
        if found:
            counts[found.group(1)] += 1
    return dict(counts)


def live_endpoint_ids(emulator: Emulator) -> List[str]:
    return sorted({str(record["endpoint_id"]) for record in emulator.expected(MONTHLY)} | {str(record["id"]) for record in emulator.expected("emnify_endpoints")})


@pytest.mark.parametrize("days_back, requests_per_endpoint", [(30, 1), (200, 2)], ids=["30-days-one-request", "200-days-two-six-month-windows"])
def test_given_a_start_date_when_only_the_daily_stream_is_read_then_it_is_exact_in_windows_of_six_months_without_a_snapshot_request(
    days_back: int, requests_per_endpoint: int
) -> None:
    with Emulator(seed=5, rate_limits=True, vendors=["emnify"], record_requests=True, emnify={"endpoints": 8}) as emulator:
        config = emulator.config(start_date=start_date(days_ago=days_back))
        catalog = configured_catalog(config, [DAILY])

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        assert {record["traffic_kind"] for record in run.records(DAILY)} == {"data", "sms"}
        assert daily_requests_per_endpoint(emulator) == {endpoint_id: requests_per_endpoint for endpoint_id in live_endpoint_ids(emulator)}
        assert SNAPSHOT not in routes(emulator), "the daily stream alone sends no statistics snapshot request"


def test_given_days_with_null_or_empty_kinds_and_satellite_endpoints_when_read_then_the_daily_stream_is_exact() -> None:
    knobs = {"endpoints": 12, "daily_null_kinds": True, "satellite_endpoints": 3}
    with Emulator(seed=6, rate_limits=True, vendors=["emnify"], emnify=knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=30))
        catalog = configured_catalog(config, [DAILY])

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        kinds = {record["traffic_kind"] for record in run.records(DAILY)}
        assert kinds == {"data", "sms", "sat_geo_data", "sat_geo_sms"}
        assert all(record.get("currency") is None for record in run.records(DAILY) if record["traffic_kind"].startswith("sat_geo"))


def test_given_an_api_that_refuses_an_end_date_after_its_today_when_read_then_the_daily_stream_is_exact_with_one_warning() -> None:
    with Emulator(seed=7, rate_limits=True, vendors=["emnify"], emnify={"endpoints": 6, "daily_refuses_future_end": True}) as emulator:
        config = emulator.config(start_date=start_date(days_ago=30))
        catalog = configured_catalog(config, [DAILY])

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        assert len([line for line in run.logs("WARN") if "asking up to today" in line]) == 1


def test_given_both_the_daily_and_the_monthly_stream_when_read_together_then_each_months_days_add_up_to_its_monthly_volume() -> None:
    with Emulator(seed=8, rate_limits=True, vendors=["emnify"], record_requests=True, emnify={"endpoints": 15}) as emulator:
        config = emulator.config(start_date=start_date(days_ago=90))
        catalog = configured_catalog(config, [MONTHLY, DAILY])

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        kind_of = {5: "data", 6: "sms"}
        sums: Dict[Tuple[int, str, str], List[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for record in run.records(DAILY):
            if record["traffic_kind"] in ("data", "sms"):
                total = sums[(record["endpoint_id"], record["traffic_kind"], record["date"][:7])]
                for index, field in enumerate(("volume", "volume_tx", "volume_rx")):
                    total[index] += record[field]
        months = set()
        for record in run.records(MONTHLY):
            key = (record["endpoint_id"], kind_of[record["traffic_type_id"]], record["month"][:7])
            months.add(key)
            assert sums[key] == pytest.approx([record["volume"], record["volume_tx"], record["volume_rx"]], rel=1e-9), key
        assert {key[1] for key in months} == {"data", "sms"}
        first_month = record_month(run.records(MONTHLY))
        with_traffic = {key for key, total in sums.items() if key[2] >= first_month and total[0] > 0}
        assert with_traffic == months, "a month with daily traffic has its monthly row, and only such a month"
        assert set(daily_requests_per_endpoint(emulator).values()) == {1}
        assert set(routes(emulator)[SNAPSHOT].values()) == {len(live_endpoint_ids(emulator))}


def record_month(records: List[dict]) -> str:
    return min(record["month"][:7] for record in records)


def test_given_a_saved_daily_state_when_synced_after_new_days_then_only_the_lookback_and_the_new_days_are_delivered() -> None:
    # The emulator's clock starts a day behind ours and moves a day: the second sync finds today's new usage.
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    knobs = {"endpoints": 12, "now": yesterday, "step_minutes": 24 * 60}
    with Emulator(seed=10, rate_limits=True, vendors=["emnify"], record_requests=True, emnify=knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=30))
        catalog = configured_catalog(config, [DAILY])
        first = run_connector("read", config, catalog)
        assert first.returncode == 0 and first.records(DAILY), first.stderr[-2000:]
        [state] = first.final_state()
        saved = {str(entry["partition"]["endpoint_id"]): entry["cursor"]["date"] for entry in state["stream"]["stream_state"]["states"]}

        emulator.advance(1)
        emulator.reset_stats()
        emulator.request_log.clear()
        second = run_connector("read", config, catalog, state=first.final_state())

        assert second.returncode == 0, second.stderr[-2000:]
        expected = emulator.expected(DAILY, start_date=config["start_date"])
        since = {endpoint_id: (date.fromisoformat(day) - timedelta(days=LOOKBACK_DAYS)).isoformat() for endpoint_id, day in saved.items()}
        wanted = [record for record in expected if record["date"] >= since.get(str(record["endpoint_id"]), config["start_date"][:10])]
        assert_records_match(second.records(DAILY), wanted, primary_key(catalog, DAILY), DAILY)
        today = datetime.now(timezone.utc).date().isoformat()
        assert any(record["date"] == today for record in second.records(DAILY)), "a new day"
        earliest: Dict[str, str] = {}
        for record in second.records(DAILY):
            endpoint_id = str(record["endpoint_id"])
            earliest[endpoint_id] = min(earliest.get(endpoint_id, record["date"]), record["date"])
        # Where the endpoint had traffic on that day, the first day delivered is the saved date minus two days.
        had_traffic = {str(record["endpoint_id"]) for record in expected if record["date"] == since.get(str(record["endpoint_id"]))}
        assert had_traffic, "some endpoint had traffic on its saved date minus the lookback"
        for endpoint_id in had_traffic:
            assert earliest[endpoint_id] == since[endpoint_id], (endpoint_id, saved[endpoint_id])
        assert all(earliest[endpoint_id] >= since[endpoint_id] for endpoint_id in earliest if endpoint_id in since)
        assert set(daily_requests_per_endpoint(emulator).values()) == {1}, "one request per endpoint in an incremental sync"
