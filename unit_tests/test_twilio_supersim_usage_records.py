"""twilio_supersim_usage_records: one record per SIM per period, read in windows aligned to the granularity and
checkpointed in window order.

The clock is frozen at 2026-11-23T12:34:56Z (`frozen`); the start date is 2026-11-20T00:00:00Z unless a test says
otherwise.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, List, Optional, Tuple

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode, Type

from unit_tests.helpers import error_messages, final_state, read_streams, records, stream_states, template, warnings
from unit_tests.meraki_fixtures import freeze_clock
from unit_tests.twilio_fixtures import (
    SIM_A,
    SIM_B,
    STREAM,
    USAGE_URL,
    day,
    frozen,  # noqa: F401  (fixture)
    adapter_in_every_session,
    record_at,
    serve_usage,
    twilio_config,
    usage_page,
    windows_requested,
)

pytestmark = pytest.mark.usefixtures("frozen")



def read(config: Any, state: Optional[dict] = None, mode: SyncMode = SyncMode.incremental, expect_failure: bool = False) -> Any:
    return read_streams(config, {STREAM: mode}, {STREAM: state} if state is not None else None, expect_failure=expect_failure)


# ----- records ---------------------------------------------------------------------------------------


def test_given_usage_when_read_then_each_record_has_the_api_fields_the_period_on_top_the_granularity_and_its_finality() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20")]), headers={"Date": "Mon, 23 Nov 2026 12:30:00 GMT"})
        output = read(twilio_config())

    assert records(output, STREAM) == [
        {
            "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sim_sid": SIM_A,
            "period": {"start_time": "2026-11-20T00:00:00Z", "end_time": "2026-11-21T00:00:00Z"},
            "data_upload": 150000,
            "data_download": 162000,
            "data_total": 312000,
            "data_total_billed": 0.0312,
            "billed_unit": "USD",
            "start_time": "2026-11-20T00:00:00Z",
            "end_time": "2026-11-21T00:00:00Z",
            "granularity": "day",
            "observed_at": "2026-11-23T12:30:00Z",
            "is_final": True,
        }
    ]  # fleet_sid, network_sid and iso_country are null: the CDK's serializer leaves nulls out of a record's JSON


def test_given_a_record_with_every_dimension_set_when_read_then_each_is_carried() -> None:
    dimensions = {"fleet_sid": "HFaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "network_sid": "HWaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "iso_country": "US"}
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20", **dimensions)]))
        [record] = records(read(twilio_config()), STREAM)

    assert {field: record.get(field) for field in dimensions} == dimensions
    assert record["account_sid"] == "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def test_given_no_date_header_when_read_then_observed_at_is_the_connectors_clock() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20")]))
        [record] = records(read(twilio_config()), STREAM)

    assert record["observed_at"] == "2026-11-23T12:34:56Z"


def test_given_a_record_whose_every_nullable_field_is_null_when_read_then_it_is_emitted_with_those_fields_null() -> None:
    nothing_but_the_key = {
        "period": {"start_time": "2026-11-20T00:00:00Z", "end_time": None},
        "account_sid": None,
        "data_upload": None,
        "data_download": None,
        "data_total": None,
        "data_total_billed": None,
        "billed_unit": None,
        "sim_sid": SIM_A,
        "fleet_sid": None,
        "network_sid": None,
        "iso_country": None,
    }
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([nothing_but_the_key]))
        output = read(twilio_config())

    [record] = records(output, STREAM)
    assert record == {
        "sim_sid": SIM_A,
        "period": {"start_time": "2026-11-20T00:00:00Z", "end_time": None},
        "start_time": "2026-11-20T00:00:00Z",
        "granularity": "day",
        "observed_at": "2026-11-23T12:34:56Z",
        "is_final": False,
    }  # every other field is null, which the CDK's serializer leaves out of the record's top level (never "None")
    assert error_messages(output) == [] and warnings(output) == []


@pytest.mark.parametrize(
    "changes, field",
    [({"sim_sid": None}, "sim_sid"), ({"period": None}, "start_time"), ({"period": {"start_time": None, "end_time": None}}, "start_time")],
    ids=["null-sim", "null-period", "null-start"],
)
def test_given_a_record_without_its_key_when_read_then_it_is_skipped_with_one_warning(changes: dict, field: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20", **changes), day("2026-11-21", sim_sid=SIM_B)]))
        output = read(twilio_config())

    assert [(record["sim_sid"], record["start_time"]) for record in records(output, STREAM)] == [(SIM_B, "2026-11-21T00:00:00Z")]
    assert warnings(output) == [
        f"twilio: twilio_supersim_usage_records: skipped 1 record(s) whose {field} (a primary-key or cursor field) the API sent "
        f"as null or left out: such a record cannot be deduplicated or checkpointed"
    ]


@pytest.mark.parametrize(
    "wire, emitted",
    [("0.0312", 0.0312), ("12.5", 12.5), ("0", 0.0), (" 7 ", 7.0), (0.03, 0.03), (2, 2)],
    ids=["decimal-string", "dollars", "pending-zero", "padded", "number", "integer"],
)
def test_given_a_billed_amount_when_read_then_it_is_emitted_as_a_number(wire: Any, emitted: float) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20", data_total_billed=wire)]))
        [record] = records(read(twilio_config()), STREAM)

    assert record["data_total_billed"] == emitted
    assert type(record["data_total_billed"]) is type(emitted)


@pytest.mark.parametrize(
    "wire, problem",
    [("n/a", "a number"), ("NaN", "a finite number"), (True, "a number"), ({"amount": "1"}, "a number")],
    ids=["text", "nan", "boolean", "object"],
)
def test_given_a_billed_amount_that_is_not_a_number_when_read_then_the_stream_fails_naming_the_field(wire: Any, problem: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20", data_total_billed=wire)]))
        output = read(twilio_config(), expect_failure=True)

    assert records(output, STREAM) == []
    assert error_messages(output)[0] == f"twilio_supersim_usage_records: record field 'data_total_billed' has value {wire!r}, which is not {problem}"


def test_given_billing_still_pending_when_read_then_the_record_is_emitted_as_it_is() -> None:
    pending = template("twilio", "usage_records_page")["usage_records"][1]
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([pending]))
        [record] = records(read(twilio_config()), STREAM)

    assert (record["sim_sid"], record["data_total"], record["data_total_billed"], record.get("billed_unit")) == (SIM_B, 6144, 0.0, None)


@pytest.mark.parametrize(
    "period, billed_unit, data_total, final",
    [
        (("2026-11-21T11:00:00Z", "2026-11-21T12:00:00Z"), "USD", 312000, True),  # ended exactly 48 hours before the Date header
        (("2026-11-21T11:00:01Z", "2026-11-21T12:00:01Z"), "USD", 312000, False),  # one second too recent
        (("2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"), None, 6144, False),  # old enough, but not billed yet
        (("2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"), None, 0, True),  # old enough, and nothing to bill
        (("2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z"), None, None, False),  # old enough, usage unknown
        (("2026-11-21T10:00:00Z", None), "USD", 312000, False),  # no end: cannot be final
    ],
    ids=["ended-48h-ago-billed", "ended-too-recently", "unbilled", "nothing-to-bill", "unknown-usage", "no-end"],
)
def test_given_a_fixed_date_header_when_read_then_a_period_is_final_once_it_ended_48_hours_before_and_was_billed(
    monkeypatch: pytest.MonkeyPatch, period: Tuple[str, Optional[str]], billed_unit: Any, data_total: Any, final: bool
) -> None:
    freeze_clock(monkeypatch, datetime(2026, 11, 23, 12, 5, tzinfo=timezone.utc))
    record = record_at(*period, billed_unit=billed_unit, data_total=data_total)  # type: ignore[arg-type]
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([record]), headers={"Date": "Mon, 23 Nov 2026 12:00:00 GMT"})
        [emitted] = records(read(twilio_config(start_date="2026-11-21T00:00:00Z", granularity="hour")), STREAM)

    assert (emitted["observed_at"], emitted["is_final"]) == ("2026-11-23T12:00:00Z", final)


# ----- pages -----------------------------------------------------------------------------------------


def test_given_a_next_page_url_when_read_then_it_is_followed_exactly_as_given_until_null() -> None:
    next_url = f"{USAGE_URL}?Group=sim&Granularity=day&StartTime=2026-11-20T00%3A00%3A00Z&PageSize=1000&Page=1&PageToken=PAcGFnZTI"
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [{"json": usage_page([day("2026-11-20", sim_sid=SIM_A)], next_page_url=next_url)}, {"json": usage_page([day("2026-11-20", sim_sid=SIM_B)])}],
        )
        output = read(twilio_config())
        first, second = mock.request_history

    assert [record["sim_sid"] for record in records(output, STREAM)] == [SIM_A, SIM_B]
    assert first.url == f"{USAGE_URL}?PageSize=1000&Group=sim&Granularity=day&StartTime=2026-11-20T00%3A00%3A00Z&EndTime=2026-11-23T12%3A34%3A56Z"
    assert second.url == next_url


@pytest.mark.parametrize(
    "body, message",
    [
        ([day("2026-11-20")], f"twilio: GET {USAGE_URL} answered a list, not an object with usage records"),
        ({"usage_records": {"sim_sid": SIM_A}, "meta": {"key": "usage_records"}}, "twilio: GET UsageRecords answered 'usage_records' that is not a list"),
        ({"usage_records": [SIM_A], "meta": {"key": "usage_records"}}, "twilio: GET UsageRecords answered a usage record that is not an object"),
    ],
    ids=["list-for-object", "records-not-a-list", "record-not-an-object"],
)
def test_given_a_body_of_the_wrong_shape_when_read_then_the_stream_fails_with_one_clear_line(body: Any, message: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=body)
        output = read(twilio_config(), expect_failure=True)

    assert error_messages(output)[0] == message
    assert "\n" not in message


def test_given_records_under_the_key_meta_names_when_read_then_they_are_read_from_there() -> None:
    body = {"sims_usage": [day("2026-11-20")], "meta": {"key": "sims_usage", "next_page_url": None}}
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=body)
        emitted = records(read(twilio_config()), STREAM)

    assert [(record["sim_sid"], record["start_time"]) for record in emitted] == [(SIM_A, "2026-11-20T00:00:00Z")]


@pytest.mark.parametrize("meta", [None, "absent"], ids=["null-meta", "no-meta"])
def test_given_a_page_without_meta_when_read_then_its_usage_records_are_read_and_it_is_the_last_page(meta: Any) -> None:
    body: dict = {"usage_records": [day("2026-11-20")]}
    if meta != "absent":
        body["meta"] = meta
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=body)
        output = read(twilio_config())

    assert [(record["sim_sid"], record["start_time"]) for record in records(output, STREAM)] == [(SIM_A, "2026-11-20T00:00:00Z")]
    assert len(mock.request_history) == 1


@pytest.mark.parametrize(
    "next_page_url, origin",
    [
        ("https://evil.example.com/v1/UsageRecords?PageToken=PAcGFnZTI", "https://evil.example.com"),
        ("http://supersim.twilio.com/v1/UsageRecords?PageToken=PAcGFnZTI", "http://supersim.twilio.com"),
        ("https://api.twilio.com/v1/UsageRecords?PageToken=PAcGFnZTI", "https://api.twilio.com"),
    ],
    ids=["other-domain", "plain-http", "other-twilio-host"],
)
def test_given_a_next_page_url_off_the_configured_host_when_read_then_it_is_refused_before_any_request_reaches_it(
    next_page_url: str, origin: str
) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-20")], next_page_url=next_page_url))
        mock.get(next_page_url.split("?")[0], json=usage_page([]))
        output = read(twilio_config(), expect_failure=True)
        sent = [request.url for request in mock.request_history]

    assert [url for url in sent if not url.startswith(USAGE_URL)] == []
    assert error_messages(output)[0] == (
        f"twilio: GET {USAGE_URL} sent a next-page link to {origin}, which is not this vendor's configured host: not followed"
    )


def test_given_a_page_without_records_when_read_then_nothing_is_emitted_and_nothing_fails() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json={"meta": {"key": "usage_records", "next_page_url": None}})
        output = read(twilio_config())

    assert records(output, STREAM) == [] and error_messages(output) == []


# ----- windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "granularity, start_date, windows",
    [
        (
            "day",
            "2026-11-02T07:17:00Z",
            [
                ("2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z"),
                ("2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z"),
                ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
                ("2026-11-23T00:00:00Z", "2026-11-23T12:34:56Z"),
            ],
        ),
        (
            "hour",
            "2026-11-21T07:17:00Z",
            [
                ("2026-11-21T07:00:00Z", "2026-11-22T07:00:00Z"),
                ("2026-11-22T07:00:00Z", "2026-11-23T07:00:00Z"),
                ("2026-11-23T07:00:00Z", "2026-11-23T12:34:56Z"),
            ],
        ),
    ],
    ids=["day-in-7-day-windows", "hour-in-1-day-windows"],
)
def test_given_a_start_date_when_read_then_windows_are_contiguous_aligned_to_the_period_and_end_now(
    granularity: str, start_date: str, windows: List[Tuple[str, str]]
) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read(twilio_config(start_date=start_date, granularity=granularity))
        granularities = {request.qs["granularity"][0] for request in mock.request_history}

    assert windows_requested(mock) == windows
    assert granularities == {granularity}


@pytest.mark.parametrize("inclusive_end", [False, True], ids=["end-exclusive", "server-reads-end-as-inclusive"])
def test_given_records_around_a_window_boundary_when_read_then_each_is_emitted_once(inclusive_end: bool) -> None:
    served = [day("2026-11-15"), day("2026-11-16"), day("2026-11-17")]  # 2026-11-16 ends the first window and starts the second
    with requests_mock.Mocker() as mock:
        serve_usage(mock, served, inclusive_end=inclusive_end)
        output = read(twilio_config(start_date="2026-11-09T00:00:00Z"))

    assert sorted(record["start_time"] for record in records(output, STREAM)) == [
        "2026-11-15T00:00:00Z",
        "2026-11-16T00:00:00Z",
        "2026-11-17T00:00:00Z",
    ]
    assert windows_requested(mock) == [
        ("2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z"),
        ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
        ("2026-11-23T00:00:00Z", "2026-11-23T12:34:56Z"),
    ]


def test_given_a_start_date_older_than_18_months_when_read_then_it_starts_at_the_oldest_allowed_with_one_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        output = read(twilio_config(start_date="2024-01-01T00:00:00Z"))

    assert windows_requested(mock)[0] == ("2025-05-24T00:00:00Z", "2025-05-31T00:00:00Z")
    assert warnings(output) == [
        "twilio_supersim_usage_records: Twilio answers usage queries for the last 18 months only; starting at "
        "2025-05-24T00:00:00Z instead of the configured start_date 2024-01-01T00:00:00Z"
    ]


def test_given_a_start_date_at_the_oldest_allowed_when_read_then_it_is_used_without_a_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        output = read(twilio_config(start_date="2025-05-24T00:00:00Z"))

    assert windows_requested(mock)[0][0] == "2025-05-24T00:00:00Z"
    assert warnings(output) == []


# ----- state and lookback ----------------------------------------------------------------------------


def test_given_saved_state_when_read_incrementally_then_the_lookback_before_it_is_read_and_emitted_again() -> None:
    served = [day(f"2026-11-{date}") for date in (15, 16, 17, 18, 19)]
    with requests_mock.Mocker() as mock:
        serve_usage(mock, served)
        output = read(twilio_config(start_date="2026-10-25T00:00:00Z"), {"start_time": "2026-11-18T00:00:00Z", "granularity": "day"})

    assert windows_requested(mock) == [("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"), ("2026-11-23T00:00:00Z", "2026-11-23T12:34:56Z")]
    assert sorted(record["start_time"] for record in records(output, STREAM)) == [
        "2026-11-16T00:00:00Z",
        "2026-11-17T00:00:00Z",
        "2026-11-18T00:00:00Z",
        "2026-11-19T00:00:00Z",
    ]
    assert final_state(output, STREAM) == {"granularity": "day", "start_time": "2026-11-19T00:00:00Z"}


@pytest.mark.parametrize(
    "granularity, lookback_hours, saved, first_start",
    [
        ("day", None, "2026-11-19T00:00:00Z", "2026-11-17T00:00:00Z"),
        ("day", None, "2026-11-19T05:00:00Z", "2026-11-17T00:00:00Z"),  # 2026-11-17T05:00Z floored to the day
        ("day", 0, "2026-11-19T00:00:00Z", "2026-11-19T00:00:00Z"),
        ("day", 30, "2026-11-19T00:00:00Z", "2026-11-17T00:00:00Z"),  # 2026-11-17T18:00Z floored to the day
        ("hour", None, "2026-11-21T05:00:00Z", "2026-11-19T05:00:00Z"),
        ("hour", None, "2026-11-21T05:30:00Z", "2026-11-19T05:00:00Z"),  # 2026-11-19T05:30Z floored to the hour
        ("hour", 1, "2026-11-23T10:00:00Z", "2026-11-23T09:00:00Z"),
    ],
)
def test_given_a_lookback_when_read_incrementally_then_the_first_window_starts_the_lookback_before_the_state_floored_to_the_period(
    granularity: str, lookback_hours: Any, saved: str, first_start: str
) -> None:
    section = {"granularity": granularity, **({} if lookback_hours is None else {"lookback_hours": lookback_hours})}
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read(twilio_config(start_date="2026-10-25T00:00:00Z", **section), {"start_time": saved, "granularity": granularity})

    assert windows_requested(mock)[0][0] == first_start


def test_given_a_start_date_after_the_lookback_when_read_incrementally_then_the_start_date_wins() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read(twilio_config(start_date="2026-11-19T00:00:00Z"), {"start_time": "2026-11-20T00:00:00Z", "granularity": "day"})

    assert windows_requested(mock)[0][0] == "2026-11-19T00:00:00Z"


def test_given_saved_state_when_read_in_full_then_it_is_ignored() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read(twilio_config(start_date="2026-11-18T00:00:00Z"), {"start_time": "2026-11-23T00:00:00Z", "granularity": "hour"}, SyncMode.full_refresh)

    assert windows_requested(mock)[0][0] == "2026-11-18T00:00:00Z"


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_given_a_sync_when_read_incrementally_then_the_state_records_the_granularity(granularity: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([day("2026-11-22")]))
        output = read(twilio_config(start_date="2026-11-22T00:00:00Z", granularity=granularity))

    assert final_state(output, STREAM) == {"granularity": granularity, "start_time": "2026-11-22T00:00:00Z"}


def test_given_state_saved_at_another_granularity_when_read_then_a_config_error_says_to_reset_the_stream() -> None:
    with requests_mock.Mocker() as mock:
        output = read(twilio_config(granularity="day"), {"start_time": "2026-11-22T10:00:00Z", "granularity": "hour"}, expect_failure=True)

    assert mock.request_history == []
    assert error_messages(output)[0] == (
        "Invalid config: twilio.granularity is 'day' but the saved state of twilio_supersim_usage_records was read at 'hour': "
        "reset the stream (or its connection) before changing the granularity, so that hourly and daily rows are not mixed"
    )
    assert output.errors[0].trace.error.failure_type.value == "config_error"


def test_given_state_saved_without_a_granularity_when_read_then_it_is_used() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        output = read(twilio_config(), {"start_time": "2026-11-22T00:00:00Z"})

    assert error_messages(output) == []
    assert windows_requested(mock)[0][0] == "2026-11-20T00:00:00Z"


# ----- windows completing out of order ---------------------------------------------------------------

FOUR_WINDOWS = "2026-11-02T00:00:00Z"  # [11-02, 11-09), [11-09, 11-16), [11-16, 11-23), [11-23, now)
ONE_RECORD_PER_WINDOW = ["2026-11-03", "2026-11-10", "2026-11-17", "2026-11-23"]


def first_window_waits_for_the_last(fail_first: bool) -> Tuple[Any, threading.Event]:
    """With two workers, the last window is requested only once the second and third completed: the first
    window's answer waits until then (and is a 400 if `fail_first`)."""
    later_windows_done = threading.Event()

    def before_answer(window: Tuple[str, str]) -> Optional[dict]:
        if window[0] == "2026-11-23T00:00:00Z":
            later_windows_done.set()
        elif window[0] == "2026-11-02T00:00:00Z":
            assert later_windows_done.wait(timeout=10), "the later windows never completed"
            if fail_first:
                return {"status_code": 400, "json": {"code": 20001, "message": "Invalid StartTime"}}
        return None

    return before_answer, later_windows_done


def test_given_windows_completing_out_of_order_when_read_then_no_checkpoint_passes_a_record_still_to_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "2")
    before_answer, later_windows_done = first_window_waits_for_the_last(fail_first=False)
    serve_usage(adapter_in_every_session(monkeypatch), [day(date) for date in ONE_RECORD_PER_WINDOW], before_answer=before_answer)
    output = read(twilio_config(start_date=FOUR_WINDOWS))

    assert later_windows_done.is_set()
    events = []
    for message in output.records_and_state_messages:
        if message.type == Type.RECORD:
            events.append(("record", message.record.data["start_time"]))
        else:
            events.append(("state", message.state.stream.stream_state.__dict__.get("start_time")))
    emitted = [value for kind, value in events if kind == "record"]
    assert sorted(emitted) == [f"{date}T00:00:00Z" for date in ONE_RECORD_PER_WINDOW]
    assert emitted.index("2026-11-03T00:00:00Z") > emitted.index("2026-11-17T00:00:00Z"), "the first window completed after the third"
    for position, (kind, value) in enumerate(events):
        if kind == "state" and value is not None:
            later = [record for record_kind, record in events[position + 1 :] if record_kind == "record"]
            assert all(record > value for record in later), f"state {value} was checkpointed before the records {later} of an earlier window"
    assert final_state(output, STREAM) == {"granularity": "day", "start_time": "2026-11-23T00:00:00Z"}


def test_given_a_sync_killed_while_its_first_window_is_unfinished_when_resumed_then_the_first_window_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "2")
    before_answer, later_windows_done = first_window_waits_for_the_last(fail_first=True)
    served = [day(date) for date in ONE_RECORD_PER_WINDOW]
    serve_usage(adapter_in_every_session(monkeypatch), served, before_answer=before_answer)
    killed = read(twilio_config(start_date=FOUR_WINDOWS), expect_failure=True)

    assert later_windows_done.is_set()
    assert "2026-11-17T00:00:00Z" in [record["start_time"] for record in records(killed, STREAM)], "a later window was emitted"
    assert [state.get("start_time") for state in stream_states(killed, STREAM) if state.get("start_time")] == [], (
        "a checkpoint passed the unfinished first window"
    )
    resume_from = final_state(killed, STREAM) or {}

    with requests_mock.Mocker() as mock:
        serve_usage(mock, served)
        resumed = read(twilio_config(start_date=FOUR_WINDOWS), resume_from)

    assert windows_requested(mock)[0] == ("2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z")
    assert "2026-11-03T00:00:00Z" in [record["start_time"] for record in records(resumed, STREAM)]
    assert final_state(resumed, STREAM) == {"granularity": "day", "start_time": "2026-11-23T00:00:00Z"}
