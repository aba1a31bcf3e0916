"""twilio_supersim_usage_records: one record per SIM per period, read in aligned windows and checkpointed in order."""

from __future__ import annotations

import base64
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from airbyte_cdk.models import AirbyteStream, ConfiguredAirbyteStream, DestinationSyncMode, FailureType, SyncMode, Type
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig
from airbyte_cdk.sources.utils.slice_logger import DebugSliceLogger
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_usage.framework.errors import UsageError
from source_usage.framework.http_client import RetryPolicy
from source_usage.framework.windows import floor_time, iso_z, parse_timestamp
from source_usage.vendors import twilio
from unit_tests.helpers import read_stream, template
from unit_tests.twilio_fixtures import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    BASE,
    SIM_A,
    SIM_B,
    USAGE_URL,
    api_key_config,
    record_at,
    serve_usage,
    twilio_config,
    usage_page,
    usage_stream,
    windows_requested,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def now() -> datetime:
    return datetime.now(timezone.utc)


def today() -> datetime:
    return floor_time(now(), DAY)


def query_of(url: str) -> Mapping[str, List[str]]:
    return parse_qs(urlsplit(url).query)


# ----- records ---------------------------------------------------------------------------------------


def test_given_usage_when_read_then_each_record_has_the_api_fields_the_period_on_top_and_the_granularity() -> None:
    start = today() - DAY
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([record_at(start)]))
        output = read_stream(usage_stream())

    assert output.records == [
        {
            "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sim_sid": SIM_A,
            "fleet_sid": None,
            "network_sid": None,
            "iso_country": None,
            "period": {"start_time": iso_z(start), "end_time": iso_z(start + DAY)},
            "data_upload": 150000,
            "data_download": 162000,
            "data_total": 312000,
            "data_total_billed": 0.0312,
            "billed_unit": "USD",
            "start_time": iso_z(start),
            "end_time": iso_z(start + DAY),
            "granularity": "day",
        }
    ]


@pytest.mark.parametrize(
    "wire, emitted",
    [("0.0312", 0.0312), ("12.5", 12.5), ("0", 0.0), (0.03, 0.03), (None, None)],
    ids=["decimal-string", "dollars", "pending-zero", "number-per-schema", "null"],
)
def test_given_a_billed_amount_when_read_then_it_is_emitted_as_a_number(wire: Any, emitted: Optional[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([record_at(today() - DAY, data_total_billed=wire)]))
        [record] = read_stream(usage_stream()).records

    assert record["data_total_billed"] == emitted
    assert record["data_total_billed"] is None or isinstance(record["data_total_billed"], float)


def test_given_billing_still_pending_when_read_then_the_record_is_emitted_as_it_is() -> None:
    pending = template("twilio", "usage_records_page")["usage_records"][1]
    pending["period"] = {"start_time": iso_z(today()), "end_time": iso_z(today() + DAY)}
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([pending]))
        [record] = read_stream(usage_stream()).records

    assert (record["sim_sid"], record["data_total"], record["data_total_billed"], record["billed_unit"]) == (SIM_B, 6144, 0.0, None)


def test_given_an_amount_that_is_not_a_number_when_read_then_the_stream_fails_naming_the_field() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([record_at(today() - DAY, data_total_billed="n/a")]))
        with pytest.raises(UsageError, match="data_total_billed"):
            read_stream(usage_stream())


# ----- pagination ------------------------------------------------------------------------------------


def test_given_a_next_page_url_when_read_then_it_is_followed_exactly_as_given_until_null() -> None:
    start = today() - DAY
    next_url = f"{BASE}/UsageRecords?Group=sim&Granularity=day&StartTime={iso_z(start)}&PageSize=1000&Page=1&PageToken=PAcGFnZTI"
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [
                {"json": usage_page([record_at(start, sim_sid=SIM_A)], next_page_url=next_url)},
                {"json": usage_page([record_at(start, sim_sid=SIM_B)])},
            ],
        )
        output = read_stream(usage_stream())
        first, second = mock.request_history

    assert [record["sim_sid"] for record in output.records] == [SIM_A, SIM_B]
    query = query_of(first.url)
    assert (query["Group"], query["Granularity"], query["PageSize"]) == (["sim"], ["day"], ["1000"])
    assert second.url == next_url


# ----- windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("granularity, period, length", [("day", DAY, 7 * DAY), ("hour", HOUR, DAY)])
def test_given_a_start_date_when_read_then_windows_are_contiguous_aligned_to_the_period_and_end_now(
    granularity: str, period: timedelta, length: timedelta
) -> None:
    start = now() - 20 * DAY - 5 * HOUR - timedelta(minutes=17)
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read_stream(usage_stream(twilio_config(granularity=granularity), start))
        windows = sorted(windows_requested(mock))
        query = query_of(mock.request_history[0].url)

    assert query["Granularity"] == [granularity]
    assert windows[0][0] == floor_time(start, period)
    for (_, end), (next_start, _) in zip(windows, windows[1:]):
        assert end == next_start, "StartTime is inclusive and EndTime exclusive: windows neither overlap nor leave gaps"
    assert all(end - begin == length for begin, end in windows[:-1])
    assert all(floor_time(begin, period) == begin for begin, _ in windows)
    assert timedelta(0) <= now() - windows[-1][1] < timedelta(minutes=1), "the last window ends now"
    assert all(end - begin <= timedelta(days=31) for begin, end in windows), "Group=sim queries span at most 31 days"


@pytest.mark.parametrize("inclusive_end", [False, True], ids=["end-exclusive", "server-reads-end-as-inclusive"])
def test_given_a_record_at_exactly_a_window_start_when_read_then_it_is_emitted_once(inclusive_end: bool) -> None:
    start = today() - 10 * DAY
    boundary = start + 7 * DAY  # where the first 7-day window ends and the second begins
    records = [record_at(boundary - DAY), record_at(boundary), record_at(boundary + DAY)]
    with requests_mock.Mocker() as mock:
        serve_usage(mock, records, inclusive_end=inclusive_end)
        output = read_stream(usage_stream(start=start))

    assert sorted(record["start_time"] for record in output.records) == [iso_z(boundary - DAY), iso_z(boundary), iso_z(boundary + DAY)]
    assert len(mock.request_history) == 2


# ----- state and lookback ----------------------------------------------------------------------------


def test_given_saved_state_when_read_incrementally_then_the_lookback_before_it_is_read_and_emitted_again() -> None:
    saved = today() - 3 * DAY
    records = [record_at(saved - 3 * DAY), record_at(saved - 2 * DAY), record_at(saved - DAY), record_at(saved), record_at(saved + DAY)]
    with requests_mock.Mocker() as mock:
        serve_usage(mock, records)
        output = read_stream(usage_stream(start=today() - 30 * DAY), SyncMode.incremental, {"start_time": iso_z(saved)})
        windows = sorted(windows_requested(mock))

    assert windows[0][0] == saved - 2 * DAY, "48 hours before the state"
    assert sorted(record["start_time"] for record in output.records) == [iso_z(saved + offset * DAY) for offset in (-2, -1, 0, 1)]
    assert output.final_state == {"start_time": iso_z(saved + DAY)}


@pytest.mark.parametrize(
    "granularity, lookback, saved_offset, first_start_offset",
    [
        ("day", timedelta(0), timedelta(0), timedelta(0)),
        ("day", timedelta(hours=30), timedelta(0), -2 * DAY),  # floored to the day
        ("hour", timedelta(hours=48), 5 * HOUR, 5 * HOUR - 48 * HOUR),
    ],
)
def test_given_a_lookback_when_read_incrementally_then_the_first_window_starts_the_lookback_before_the_state_floored(
    granularity: str, lookback: timedelta, saved_offset: timedelta, first_start_offset: timedelta
) -> None:
    base = today() - 4 * DAY
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        stream = usage_stream(twilio_config(granularity=granularity, lookback=lookback), start=today() - 30 * DAY)
        read_stream(stream, SyncMode.incremental, {"start_time": iso_z(base + saved_offset)})
        windows = sorted(windows_requested(mock))

    assert windows[0][0] == base + first_start_offset


def test_given_a_start_date_after_the_lookback_when_read_incrementally_then_the_start_date_wins() -> None:
    start = today() - DAY
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read_stream(usage_stream(start=start), SyncMode.incremental, {"start_time": iso_z(start)})
        windows = windows_requested(mock)

    assert windows[0][0] == start


def test_given_a_full_refresh_when_read_then_saved_state_is_ignored() -> None:
    start = today() - 5 * DAY
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read_stream(usage_stream(start=start), SyncMode.full_refresh, {"start_time": iso_z(today())})
        windows = windows_requested(mock)

    assert windows[0][0] == start


def read_in_order(stream: twilio.TwilioSupersimUsageRecords, state: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """("record", start_time) and ("state", cursor value) in the order the stream emitted them."""
    configured = ConfiguredAirbyteStream(
        stream=AirbyteStream(name=stream.name, json_schema={}, supported_sync_modes=[SyncMode.full_refresh, SyncMode.incremental]),
        sync_mode=SyncMode.incremental,
        destination_sync_mode=DestinationSyncMode.append,
    )
    events: List[Tuple[str, Any]] = []
    stream.state = dict(state)
    items = stream.read(configured, logging.getLogger("test"), DebugSliceLogger(), dict(state), ConnectorStateManager(), InternalConfig())
    for item in items:
        if getattr(item, "type", None) == Type.RECORD:
            events.append(("record", item.record.data["start_time"]))
        elif getattr(item, "type", None) == Type.STATE:
            events.append(("state", item.state.stream.stream_state.__dict__.get("start_time")))
    return events


def test_given_windows_completing_out_of_order_when_read_then_no_checkpoint_passes_an_unfinished_window() -> None:
    start = today() - 20 * DAY  # three 7-day windows
    records = [record_at(start + offset * DAY) for offset in (1, 8, 15, 19)]
    stream = usage_stream(start=start)
    fetch = stream.fetch_pages
    later_windows_done = threading.Barrier(2)  # windows 1 and 2
    later_windows_read = threading.Event()

    def first_window_last(partition: Mapping[str, Any]) -> Iterator[List[dict]]:
        pages = list(fetch(partition))
        if partition["window_index"] == 0:
            later_windows_read.wait(timeout=5)
        yield from pages
        if partition["window_index"] > 0 and later_windows_done.wait(timeout=5) == 0:
            later_windows_read.set()

    stream.fetch_pages = first_window_last  # type: ignore[method-assign]
    with requests_mock.Mocker() as mock:
        serve_usage(mock, records)
        events = read_in_order(stream, {})

    emitted = [value for kind, value in events if kind == "record"]
    assert sorted(emitted) == [iso_z(start + offset * DAY) for offset in (1, 8, 15, 19)]
    assert emitted[-1] == iso_z(start + DAY), "the first window completed last"
    for position, (kind, value) in enumerate(events):
        if kind == "state" and value is not None:
            later = [record for record_kind, record in events[position + 1 :] if record_kind == "record"]
            assert all(parse_timestamp(record) > parse_timestamp(value) for record in later), (
                f"state {value} was checkpointed before the records {later} of an earlier window"
            )
    assert [value for kind, value in events if kind == "state"][-1] == iso_z(start + 19 * DAY)


# ----- credentials and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, username, password",
    [(twilio_config(), ACCOUNT_SID, AUTH_TOKEN), (api_key_config(), API_KEY_SID, API_KEY_SECRET)],
    ids=["auth-token", "api-key"],
)
def test_given_credentials_when_read_then_basic_auth_is_sent_and_the_header_value_is_a_registered_secret(
    config: Any, username: str, password: str
) -> None:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read_stream(usage_stream(config))
        [request] = mock.request_history

    assert request.headers["Authorization"] == f"Basic {encoded}"
    assert filter_secrets(f"header Basic {encoded}") == "header Basic ****"


@pytest.mark.parametrize(
    "config, message",
    [
        (twilio_config(), f"twilio: the Auth Token for account {ACCOUNT_SID} was rejected (HTTP 401)"),
        (api_key_config(), f"twilio: the API key {API_KEY_SID} for account {ACCOUNT_SID} was rejected (HTTP 401)"),
    ],
    ids=["auth-token", "api-key"],
)
def test_given_a_401_when_read_or_checked_then_a_config_error_names_the_rejected_credential(config: Any, message: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=401, json=template("twilio", "error_401"))
        with pytest.raises(UsageError) as read_error:
            read_stream(usage_stream(config))
        with pytest.raises(UsageError) as check_error:
            twilio.check(config, now() - DAY, RetryPolicy(max_retries=1))

    for error in (read_error.value, check_error.value):
        assert error.message == message
        assert error.failure_type == FailureType.config_error
        assert config.password not in error.message


def test_given_a_429_with_retry_after_when_read_then_it_waits_as_told_and_continues(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [
                {"status_code": 429, "json": template("twilio", "error_429"), "headers": {"Retry-After": "3"}},
                {"json": usage_page([record_at(today() - DAY)])},
            ],
        )
        output = read_stream(usage_stream())

    assert waits == [3.0]
    assert len(output.records) == 1


def test_given_a_429_without_retry_after_when_read_then_it_backs_off_exponentially(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [
                {"status_code": 429, "json": template("twilio", "error_429")},
                {"status_code": 429, "json": template("twilio", "error_429")},
                {"json": usage_page([record_at(today() - DAY)])},
            ],
        )
        output = read_stream(usage_stream())

    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0, waits
    assert len(output.records) == 1


def test_given_a_400_when_read_then_the_error_names_the_offending_parameter() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=400, json=template("twilio", "error_400"))
        with pytest.raises(UsageError) as error:
            read_stream(usage_stream())

    assert error.value.message == (
        f"twilio: GET {USAGE_URL} was refused with HTTP 400: "
        "Invalid Granularity parameter 'weekly': must be one of hour, day, all (error 20001)"
    )
    assert error.value.failure_type == FailureType.config_error


def test_given_a_start_date_older_than_18_months_when_read_then_it_starts_at_the_oldest_allowed_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock.get(USAGE_URL, json=usage_page([]))
        read_stream(usage_stream(start=now() - timedelta(days=800)))
        windows = sorted(windows_requested(mock))

    oldest = twilio.oldest_start(now())
    assert windows[0][0] == oldest
    assert timedelta(days=540) < now() - oldest < timedelta(days=552)
    assert any("18 months" in record.getMessage() for record in caplog.records)


def test_given_check_when_the_credentials_work_then_one_small_request_is_sent() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        twilio.check(twilio_config(granularity="hour"), now() - 30 * DAY, RetryPolicy())
        [request] = mock.request_history

    query = query_of(request.url)
    span = parse_timestamp(query["EndTime"][0]) - parse_timestamp(query["StartTime"][0])
    assert (query["Group"], query["Granularity"]) == (["sim"], ["hour"])
    assert HOUR <= span <= 2 * HOUR
