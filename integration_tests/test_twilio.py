"""Twilio Super SIM usage records against the emulator, through the real `source-usage` process."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any, Dict, List

import pytest
import requests

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
from source_usage.framework.windows import floor_time, iso_z, parse_timestamp

STREAM = "twilio_supersim_usage_records"
PERIOD = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
LOOKBACK = timedelta(hours=48)  # the config's default lookback_hours


def twilio_emulator(**knobs: Any) -> Emulator:
    return Emulator(seed=13, scale=1, rate_limits=True, vendors=["twilio"], twilio=knobs)


def windows_read(run: Any) -> int:
    for line in run.logs("INFO"):
        found = re.search(rf"{STREAM}: reading .* in (\d+) windows?", line)
        if found:
            return int(found.group(1))
    raise AssertionError("the stream did not log its windows")


@pytest.mark.parametrize(
    "granularity, knobs",
    [
        ("day", {"credentials": "auth_token"}),
        # 80 SIMs: more than 1000 hourly records in a one-day window, so next_page_url must be followed.
        ("hour", {"credentials": "api_key", "sims": 80}),
    ],
    ids=["day-auth-token", "hour-api-key-several-pages"],
)
def test_full_read_returns_exactly_the_emulators_group_by_sim_records(granularity: str, knobs: Dict[str, Any]) -> None:
    with twilio_emulator(granularity=granularity, **knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=4))
        catalog = configured_catalog(config, [STREAM])

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"], granularity=granularity)
        requests_sent = emulator.stats()["twilio"]["requests"]
        if granularity == "hour":
            assert requests_sent > windows_read(run), "some windows needed a second page"
        else:
            assert requests_sent == windows_read(run)


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_incremental_read_returns_the_new_periods_and_only_the_lookback_again(granularity: str) -> None:
    with twilio_emulator(granularity=granularity) as emulator:
        config = emulator.config(start_date=start_date(days_ago=6))
        catalog = configured_catalog(config, [STREAM])
        pk = primary_key(catalog, STREAM)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        [saved] = first.final_state()

        emulator.advance(1)
        second = run_connector("read", config, catalog, state=[saved])

        assert second.returncode == 0, second.stderr[-2000:]
        expected = emulator.expected(STREAM, start_date=config["start_date"], granularity=granularity)
        first_records, second_records = first.records(STREAM), second.records(STREAM)
        first_keys, second_keys = distinct_keys(first_records, pk), distinct_keys(second_records, pk)
        new_keys = distinct_keys(expected, pk) - first_keys
        assert new_keys, "advancing the emulator adds periods"
        assert new_keys <= second_keys, "the incremental read returns every new period"
        reread_from = floor_time(parse_timestamp(saved["stream"]["stream_state"]["start_time"]) - LOOKBACK, PERIOD[granularity])
        assert any(key_of(record, pk) in first_keys for record in second_records), "the lookback re-reads known periods"
        assert all(parse_timestamp(record["start_time"]) >= reread_from for record in second_records), (
            f"only the lookback (from {iso_z(reread_from)}) is read again"
        )
        # The latest copy of every record is final: late usage and settled billing were picked up by the lookback.
        latest = {key_of(record, pk): record for record in first_records + second_records}
        assert_records_match(list(latest.values()), expected, pk, STREAM)
        first_by_key = {key_of(record, pk): record for record in first_records}
        assert any(first_by_key.get(key_of(record, pk)) not in (None, record) for record in second_records), (
            "a re-read record changed (its billing settled), which is why the lookback exists"
        )


@pytest.mark.parametrize(
    "credentials, secret_key, rejected",
    [
        ("auth_token", "auth_token", "the Auth Token for account {account}"),
        ("api_key", "api_key_secret", "the API key {key} for account {account}"),
    ],
    ids=["auth-token", "api-key"],
)
def test_check_names_the_rejected_credential_without_revealing_it(credentials: str, secret_key: str, rejected: str) -> None:
    with twilio_emulator(credentials=credentials) as emulator:
        config = emulator.config()
        wrong = {**config, "twilio": {**config["twilio"], secret_key: "0badc0de0badc0de0badc0de0badc0de"}}

        run = run_connector("check", wrong)

        section = wrong["twilio"]
        status = run.connection_status
        assert status["status"] == "FAILED"
        message = rejected.format(account=section["account_sid"], key=section.get("api_key_sid"))
        assert f"twilio: {message} was rejected (HTTP 401)" in status["message"]
        username = section.get("api_key_sid") or section["account_sid"]
        header = base64.b64encode(f"{username}:{section[secret_key]}".encode()).decode()
        assert section[secret_key] not in run.stdout + run.stderr
        assert header not in run.stdout + run.stderr


def test_a_full_concurrency_limit_is_ridden_out_and_the_read_stays_exact() -> None:
    # The first request is held until a second one is in flight: that one is refused, however fast the machine.
    knobs = {"granularity": "hour", "concurrent_requests": 1, "hold_until_in_flight": 2, "retry_after": 1}
    with twilio_emulator(**knobs) as emulator:
        config = emulator.config(start_date=start_date(days_ago=3))
        catalog = configured_catalog(config, [STREAM])

        run = run_connector("read", config, catalog)

        assert run.returncode == 0, run.stderr[-2000:]
        expected = emulator.expected(STREAM, start_date=config["start_date"], granularity="hour")
        assert_records_match(run.records(STREAM), expected, primary_key(catalog, STREAM), STREAM)
        stats = emulator.stats()["twilio"]
        assert stats["rate_limited"] >= 1, "a second request was sent while the first was held: refused"
        assert stats["by_route"]["/UsageRecords"]["200"] == windows_read(run)


def test_the_emulator_pages_and_refuses_requests_as_twilio_does() -> None:
    with twilio_emulator() as emulator:
        section = emulator.config()["twilio"]
        session = requests.Session()
        session.auth = (section["account_sid"], section["auth_token"])
        url = section["base_url"] + "/UsageRecords"

        def get(**params: Any) -> requests.Response:
            return session.get(url, params={"Group": "sim", "Granularity": "day", **params}, timeout=10)

        whole = get(PageSize=1000).json()["usage_records"]
        assert 7 < len(whole) < 1000
        paged: List[dict] = []
        page = get(PageSize=7).json()
        for _ in range(1000):
            paged += page["usage_records"]
            if page["meta"]["next_page_url"] is None:
                break
            assert "PageToken=" in page["meta"]["next_page_url"]
            page = session.get(page["meta"]["next_page_url"], timeout=10).json()
        assert paged == whole and whole
        starts = [record["period"]["start_time"] for record in whole]
        assert starts == sorted(starts, reverse=True), "newest period first"

        invalid = (({"Granularity": "weekly"}, "Granularity"), ({"PageSize": 5000}, "PageSize"), ({"StartTime": "yesterday"}, "StartTime"))
        for params, parameter in invalid:
            refused = get(**params)
            assert refused.status_code == 400 and refused.json()["code"] == 20001
            assert parameter in refused.json()["message"]
        too_long = get(StartTime=start_date(days_ago=40))
        assert (too_long.status_code, too_long.json()["code"]) == (400, 83603)
        anonymous = requests.get(url, timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }


# ----- real vendor behaviour: nullable fields, a change of granularity ------------------------------------------

NULLABLE = ("data_upload", "data_download", "data_total", "data_total_billed", "billed_unit")


def test_given_records_with_null_byte_counts_and_billing_when_read_then_the_records_are_exact_with_the_nulls_kept() -> None:
    with twilio_emulator(granularity="day", null_fields=True) as emulator:
        config = emulator.config(start_date=start_date(days_ago=6))
        catalog = configured_catalog(config, [STREAM])

        run = run_connector("read", config, catalog)

        assert run.returncode == 0 and not run.errors, run.stderr[-2000:]
        expected = emulator.expected(STREAM, start_date=config["start_date"], granularity="day")
        nulls = {(key_of(record, ["start_time", "sim_sid"]), field) for record in expected for field in NULLABLE if record[field] is None}
        assert {field for _, field in nulls} == set(NULLABLE), "the emulator put nulls in every nullable field"
        assert_records_match(run.records(STREAM), expected, primary_key(catalog, STREAM), STREAM)
        # A null stays null (the protocol serializer leaves top-level nulls out): never a 0, "" or "None".
        by_key = {key_of(record, ["start_time", "sim_sid"]): record for record in run.records(STREAM)}
        for key, field in nulls:
            assert by_key[key].get(field) is None, (key, field, by_key[key].get(field))
        assert all(isinstance(record["data_total"], int) for record in run.records(STREAM) if record.get("data_total") is not None)


def test_given_a_state_saved_at_day_granularity_when_read_at_hour_granularity_then_the_stream_fails_with_a_config_error_saying_to_reset_it() -> None:
    with twilio_emulator(granularity="day") as emulator:
        config = emulator.config(start_date=start_date(days_ago=3))
        first = run_connector("read", config, configured_catalog(config, [STREAM]))
        assert first.returncode == 0, first.stderr[-2000:]
        [saved] = first.final_state()
        assert saved["stream"]["stream_state"]["granularity"] == "day"
        emulator.reset_stats()

        hourly = {**config, "twilio": {**config["twilio"], "granularity": "hour"}}
        second = run_connector("read", hourly, configured_catalog(hourly, [STREAM]), state=[saved])

        assert second.returncode != 0
        [error] = [error for error in second.errors if error.get("stream_descriptor")]
        assert error["stream_descriptor"]["name"] == STREAM
        assert error["failure_type"] == "config_error"
        message = error["message"]
        assert "reset the stream" in message and "'hour'" in message and "'day'" in message, message
        assert not second.records(STREAM), "no hourly row is mixed with the daily ones"
        assert emulator.stats()["twilio"]["requests"] == 0, "the mismatch is found before any request"
