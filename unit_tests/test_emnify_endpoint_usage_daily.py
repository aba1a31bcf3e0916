"""emnify_endpoint_usage_daily: each endpoint's usage per day and traffic kind, asked in windows of at most six
calendar months (month by month once the API refused a range), re-reading `daily_lookback_days` before the
saved date; a day older than the lookback is final.

The daily series runs up to today (our clock), so read-level expectations are dates relative to the day the
test runs; the windows themselves are checked with literal dates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock

from source_usage.vendors.emnify.daily import date_windows
from unit_tests.emnify_fixtures import (  # noqa: F401  (fixtures: fresh_process_budgets is autouse)
    DAILY,
    LAST_HOUR,
    MONTHLY,
    data_usage,
    day,
    daily_requests,
    daily_windows,
    emnify_config,
    endpoints,
    mock_api,
    mock_daily,
    stats,
    stats_endpoint_ids,
    stats_requests,
    fresh_process_budgets,
)
from unit_tests.helpers import error_messages, final_state, log_lines, read_streams, records, template

TODAY = datetime.now(timezone.utc).date()
LAST_DAY = TODAY + timedelta(days=1)  # the last day asked for: emnify's calendar day may run ahead of our UTC one
INVALID_RANGE = {"error_code": 1301, "error_token": "InvalidQueryCriteria", "message": "Invalid query criteria"}


def days_ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def midnight(moment: date) -> str:
    return f"{moment.isoformat()}T00:00:00Z"


def saved(dates: Dict[int, date]) -> dict:
    return {"states": [{"partition": {"endpoint_id": str(endpoint_id)}, "cursor": {"date": when.isoformat()}} for endpoint_id, when in dates.items()]}


def kinds(output: Any) -> List[tuple]:
    return [(record["endpoint_id"], record["date"], record["traffic_kind"]) for record in records(output, DAILY)]


# ----- windows (literal dates) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first, last, by_calendar_month, windows",
    [
        pytest.param(
            date(2026, 1, 1), date(2026, 11, 30), False,
            [(date(2026, 1, 1), date(2026, 6, 30)), (date(2026, 7, 1), date(2026, 11, 30))],
            id="six-month windows from a month's first day",
        ),
        pytest.param(
            date(2025, 8, 31), date(2026, 11, 30), False,
            [(date(2025, 8, 31), date(2026, 2, 27)), (date(2026, 2, 28), date(2026, 8, 27)), (date(2026, 8, 28), date(2026, 11, 30))],
            id="six months from the 31st end the day before the 28th of February",
        ),
        pytest.param(
            date(2023, 8, 31), date(2024, 3, 1), False,
            [(date(2023, 8, 31), date(2024, 2, 28)), (date(2024, 2, 29), date(2024, 3, 1))],
            id="a leap year",
        ),
        pytest.param(
            date(2026, 10, 30), date(2026, 11, 2), False,
            [(date(2026, 10, 30), date(2026, 11, 2))],
            id="a two-day lookback over a month boundary is one window",
        ),
        pytest.param(
            date(2026, 10, 30), date(2026, 11, 2), True,
            [(date(2026, 10, 30), date(2026, 10, 31)), (date(2026, 11, 1), date(2026, 11, 2))],
            id="month by month, the same lookback is split at the boundary",
        ),
        pytest.param(
            date(2026, 1, 15), date(2026, 3, 10), True,
            [(date(2026, 1, 15), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28)), (date(2026, 3, 1), date(2026, 3, 10))],
            id="month by month over three months",
        ),
        pytest.param(date(2026, 11, 30), date(2026, 11, 30), False, [(date(2026, 11, 30), date(2026, 11, 30))], id="one day"),
        pytest.param(date(2026, 12, 1), date(2026, 11, 30), False, [], id="nothing to read"),
    ],
)
def test_given_a_range_of_days_when_split_then_the_windows_are_these(first: date, last: date, by_calendar_month: bool, windows: list) -> None:
    assert date_windows(first, last, by_calendar_month=by_calendar_month) == windows


# ----- what is asked ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lookback, first", [(None, 3), (0, 1), (5, 6)], ids=["default lookback 2", "lookback 0", "lookback 5"])
def test_given_a_saved_date_when_synced_incrementally_then_each_endpoint_is_asked_once_from_the_saved_date_minus_the_lookback(
    lookback: Optional[int], first: int
) -> None:
    section = {} if lookback is None else {"daily_lookback_days": lookback}
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        read_streams(emnify_config(**section), [DAILY], state={DAILY: saved({166: days_ago(1), 167: days_ago(1), 170: days_ago(1)})})

    assert sorted(daily_windows(mock)) == [(endpoint_id, days_ago(first).isoformat(), LAST_DAY.isoformat()) for endpoint_id in (166, 167, 170)]
    assert stats_requests(mock) == [], "the daily series needs no snapshot"


def test_given_a_saved_date_of_tomorrow_when_synced_then_it_is_believed_without_a_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [DAILY], state={DAILY: saved({166: LAST_DAY})})

    assert daily_windows(mock) == [(166, (LAST_DAY - timedelta(days=2)).isoformat(), LAST_DAY.isoformat())]
    assert [line for line in log_lines(output, "WARN") if "later than now" in line] == []


def test_given_no_saved_date_when_synced_then_each_endpoint_is_asked_from_the_start_date() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        read_streams(emnify_config(start_date=midnight(days_ago(5))), [DAILY])

    assert daily_windows(mock) == [(166, days_ago(5).isoformat(), LAST_DAY.isoformat())]


def test_given_a_start_date_after_the_saved_date_minus_the_lookback_when_synced_then_the_start_date_wins() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        read_streams(emnify_config(start_date=midnight(days_ago(1))), [DAILY], state={DAILY: saved({166: days_ago(1)})})

    assert daily_windows(mock) == [(166, days_ago(1).isoformat(), LAST_DAY.isoformat())]


def test_given_only_the_snapshot_streams_when_synced_then_no_daily_series_is_requested() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        read_streams(emnify_config(), [MONTHLY, LAST_HOUR])

    assert daily_requests(mock) == []


def test_given_a_range_the_api_refuses_when_synced_then_the_rest_of_the_sync_asks_month_by_month(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "1")  # endpoint 166 first, then 167
    this_month = TODAY.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    month_before = (last_month - timedelta(days=1)).replace(day=1)

    def refuse_ranges_over_a_month(request: Any, context: Any) -> Any:
        query = parse_qs(urlsplit(request.url).query)
        first, last = date.fromisoformat(query["start_date"][0]), date.fromisoformat(query["end_date"][0])
        if (first.year, first.month) != (last.year, last.month):
            context.status_code = 422
            return INVALID_RANGE
        return [day(first, data=data_usage("1.0", "0.5", "0.5"))]

    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166, 167))
        for endpoint_id in (166, 167):
            mock_daily(mock, endpoint_id, refuse_ranges_over_a_month)
        output = read_streams(emnify_config(start_date=midnight(month_before)), [DAILY])

    by_month = [
        (month_before.isoformat(), (last_month - timedelta(days=1)).isoformat()),
        (last_month.isoformat(), (this_month - timedelta(days=1)).isoformat()),
        (this_month.isoformat(), TODAY.isoformat()),
    ]
    # Refused up to tomorrow, then up to today (either could be what emnify objects to), then month by month.
    assert daily_windows(mock) == [
        (166, month_before.isoformat(), LAST_DAY.isoformat()),
        (166, month_before.isoformat(), TODAY.isoformat()),
    ] + [(166, *window) for window in by_month] + [(167, *window) for window in by_month]
    assert [line for line in log_lines(output, "WARN") if "refused" in line] == [
        f"{DAILY}: emnify refused the range {month_before} to {LAST_DAY}; asking up to today ({TODAY}) from now on",
        f"{DAILY}: emnify refused the range {month_before} to {TODAY}; asking month by month from now on",
    ]
    assert kinds(output) == [(endpoint_id, first, "data") for endpoint_id in (166, 167) for first, _ in by_month]
    assert error_messages(output) == []


def test_given_an_api_that_refuses_an_end_date_after_its_today_when_synced_then_every_day_up_to_today_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "1")  # endpoint 166 first, then 167

    def refuse_the_future(request: Any, context: Any) -> Any:
        query = parse_qs(urlsplit(request.url).query)
        if date.fromisoformat(query["end_date"][0]) > TODAY:
            context.status_code = 422
            return INVALID_RANGE
        return [day(days_ago(2), data=data_usage("1.0", "0.5", "0.5")), day(TODAY, sms=None, data=data_usage("2.0", "1.0", "1.0"))]

    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166, 167))
        for endpoint_id in (166, 167):
            mock_daily(mock, endpoint_id, refuse_the_future)
        output = read_streams(emnify_config(start_date=midnight(days_ago(3))), [DAILY])

    assert daily_windows(mock) == [
        (166, days_ago(3).isoformat(), LAST_DAY.isoformat()),
        (166, days_ago(3).isoformat(), TODAY.isoformat()),
        (167, days_ago(3).isoformat(), TODAY.isoformat()),
    ]
    assert kinds(output) == [(endpoint_id, on.isoformat(), "data") for endpoint_id in (166, 167) for on in (days_ago(2), TODAY)]
    assert [line for line in log_lines(output, "WARN") if "refused" in line] == [
        f"{DAILY}: emnify refused the range {days_ago(3)} to {LAST_DAY}; asking up to today ({TODAY}) from now on"
    ]
    assert error_messages(output) == []


def test_given_a_one_month_range_the_api_refuses_when_synced_then_the_stream_fails_saying_so() -> None:
    if TODAY.day == 1:
        pytest.skip("from yesterday to today crosses a month: refused, it is asked month by month (tested above)")
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        mock.get("https://cdn.emnify.net/api/v1/endpoint/166/stats/daily", status_code=422, json=INVALID_RANGE)
        output = read_streams(emnify_config(start_date=midnight(days_ago(1))), [DAILY], expect_failure=True)

    assert error_messages(output)[0] == f"emnify: GET endpoint/166/stats/daily refused the range {days_ago(1)} to {TODAY} (422 InvalidQueryCriteria)"
    assert daily_windows(mock) == [(166, days_ago(1).isoformat(), LAST_DAY.isoformat()), (166, days_ago(1).isoformat(), TODAY.isoformat())], (
        "up to tomorrow, up to today, then nothing shorter to ask"
    )


def test_given_a_single_day_the_api_refuses_when_synced_then_the_stream_fails_saying_so() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        mock.get("https://cdn.emnify.net/api/v1/endpoint/166/stats/daily", status_code=422, json=INVALID_RANGE)
        output = read_streams(emnify_config(start_date=midnight(TODAY)), [DAILY], expect_failure=True)

    [first, *_] = error_messages(output)
    assert first == f"emnify: GET endpoint/166/stats/daily refused the range {TODAY} to {TODAY} (422 InvalidQueryCriteria)"


def test_given_a_422_that_is_not_invalid_query_criteria_when_synced_then_the_stream_fails() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        mock.get(
            "https://cdn.emnify.net/api/v1/endpoint/166/stats/daily",
            status_code=422,
            json={"error_code": 1300, "error_token": "ValidationFailed", "message": "end_date is invalid"},
        )
        output = read_streams(emnify_config(start_date=midnight(days_ago(2))), [DAILY], expect_failure=True)

    assert error_messages(output)[0] == (
        "emnify: GET https://cdn.emnify.net/api/v1/endpoint/166/stats/daily was refused with HTTP 422: end_date is invalid (error 1300)"
    )
    assert len(daily_requests(mock)) == 1


# ----- what is emitted ---------------------------------------------------------------------------------------


def test_given_days_outside_the_requested_window_when_synced_then_they_are_dropped() -> None:
    entries = [day(days_ago(offset), data=data_usage("1", "0.5", "0.5")) for offset in (5, 4, 3, 0, -1, -2)]
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), daily={166: entries})
        output = read_streams(emnify_config(start_date=midnight(days_ago(4))), [DAILY])

    assert [record["date"] for record in records(output, DAILY)] == [days_ago(4).isoformat(), days_ago(3).isoformat(), TODAY.isoformat(), LAST_DAY.isoformat()]


def test_given_null_or_empty_kinds_when_synced_then_they_produce_no_record() -> None:
    entries = [
        day(days_ago(2), data=None, sms={}, sat_geo_data=None, sat_geo_sms={}),
        day(days_ago(1)),
        day(TODAY, data=data_usage("0.5", "0.25", "0.25"), sms=None),
    ]
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), daily={166: entries})
        output = read_streams(emnify_config(start_date=midnight(days_ago(2))), [DAILY])

    assert kinds(output) == [(166, TODAY.isoformat(), "data")]


def test_given_every_kind_when_synced_then_each_is_a_record_with_its_unit_and_numbers_from_strings_or_numbers() -> None:
    observed = datetime.now(timezone.utc).replace(microsecond=0)
    entry = day(
        days_ago(1),
        data=data_usage("1.500000", "0.500000", "1.000000", cost="0.375"),
        sms={"volume": 3, "volume_tx": 2, "volume_rx": 1, "cost": 0.27, "currency": {"id": 1, "code": "EUR", "symbol": "€"}, "traffic_type": {"id": 6, "description": "SMS", "unit": "SMS"}},
        sat_geo_data={"volume": "0.002", "volume_tx": "0.001", "volume_rx": "0.001", "traffic_type": {"id": 40, "description": "Satellite Data", "unit": "KB"}},
        sat_geo_sms={"volume": 2.0, "volume_tx": 1.0, "volume_rx": 1.0},
    )
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        mock.get("https://cdn.emnify.net/api/v1/endpoint/166/stats/daily", json=[entry], headers={"Date": observed.strftime("%a, %d %b %Y %H:%M:%S GMT")})
        output = read_streams(emnify_config(start_date=midnight(days_ago(1))), [DAILY])

    stamp = observed.strftime("%Y-%m-%dT%H:%M:%SZ")
    on = days_ago(1).isoformat()
    assert records(output, DAILY) == [
        {"endpoint_id": 166, "date": on, "traffic_kind": "data", "volume": 1.5, "volume_tx": 0.5, "volume_rx": 1.0, "unit": "MB", "cost": 0.375, "currency": "EUR", "observed_at": stamp, "is_final": False},
        {"endpoint_id": 166, "date": on, "traffic_kind": "sms", "volume": 3, "volume_tx": 2, "volume_rx": 1, "unit": "SMS", "cost": 0.27, "currency": "EUR", "observed_at": stamp, "is_final": False},
        {"endpoint_id": 166, "date": on, "traffic_kind": "sat_geo_data", "volume": 0.002, "volume_tx": 0.001, "volume_rx": 0.001, "unit": "KB", "observed_at": stamp, "is_final": False},
        {"endpoint_id": 166, "date": on, "traffic_kind": "sat_geo_sms", "volume": 2.0, "volume_tx": 1.0, "volume_rx": 1.0, "unit": "SMS", "observed_at": stamp, "is_final": False},
    ], "cost and currency absent where the API sends none (the serialised record leaves out nulls)"


def test_given_days_around_the_lookback_when_synced_then_only_days_older_than_the_lookback_are_final() -> None:
    entries = [day(days_ago(offset), data=data_usage(1, 0.5, 0.5)) for offset in (4, 3, 2, 1, 0)]
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), daily={166: entries})
        output = read_streams(emnify_config(start_date=midnight(days_ago(4))), [DAILY])

    assert [(record["date"], record["is_final"]) for record in records(output, DAILY)] == [
        (days_ago(4).isoformat(), True),
        (days_ago(3).isoformat(), True),
        (days_ago(2).isoformat(), False),
        (days_ago(1).isoformat(), False),
        (TODAY.isoformat(), False),
    ]


def test_given_a_sync_when_it_ends_then_the_state_holds_each_endpoints_newest_day_and_the_sync_time() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(
            mock,
            daily={
                166: [day(days_ago(2), data=data_usage(1, 0.5, 0.5)), day(days_ago(1), sms={"volume": 1, "volume_tx": 1, "volume_rx": 0})],
                167: [day(days_ago(3), data=data_usage(1, 0.5, 0.5))],
                170: [],
            },
        )
        output = read_streams(emnify_config(start_date=midnight(days_ago(3))), [DAILY])

    state = final_state(output, DAILY)
    assert state["states"] == saved({166: days_ago(1), 167: days_ago(3)})["states"]
    assert state["synced_at"].endswith("Z")


# ----- errors ---------------------------------------------------------------------------------------------


def deleted_warnings(output: Any) -> List[str]:
    return [line for line in log_lines(output, "WARN") if "deleted" in line]


DELETED_167 = "emnify: skipping endpoint 167: it was deleted after it was listed (HTTP 404: Endpoint with id 167 not found (error 1201))"


def test_given_an_endpoint_deleted_after_the_listing_when_both_snapshot_streams_read_then_it_is_skipped_with_one_warning_and_one_request() -> None:
    gone = [{"status_code": 404, "json": template("emnify", "endpoint_not_found")}]
    with requests_mock.Mocker() as mock:
        mock_api(mock, snapshots={166: stats(166), 167: gone, 170: stats(170)})
        output = read_streams(emnify_config(), [MONTHLY, LAST_HOUR])

    assert {record["endpoint_id"] for record in records(output, MONTHLY)} == {166, 170}
    assert {record["endpoint_id"] for record in records(output, LAST_HOUR)} == {166, 170}
    assert stats_endpoint_ids(stats_requests(mock)) == [166, 167, 170], "the last-hour stream does not ask for it again"
    assert deleted_warnings(output) == [DELETED_167]
    assert error_messages(output) == []


def test_given_an_endpoint_deleted_after_the_listing_when_every_stats_stream_reads_then_it_is_warned_about_once() -> None:
    gone = [{"status_code": 404, "json": template("emnify", "endpoint_not_found")}]
    with requests_mock.Mocker() as mock:
        mock_api(mock, snapshots={166: stats(166), 167: gone, 170: stats(170)})
        mock.get("https://cdn.emnify.net/api/v1/endpoint/167/stats/daily", status_code=404, json=template("emnify", "endpoint_not_found"))
        output = read_streams(emnify_config(start_date=midnight(days_ago(1))), [MONTHLY, LAST_HOUR, DAILY])

    assert error_messages(output) == []
    assert deleted_warnings(output) == [DELETED_167]


def test_given_an_endpoint_deleted_when_only_the_daily_stream_reads_then_it_is_skipped_with_one_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, daily={166: [day(TODAY, data=data_usage(1, 0.5, 0.5))], 170: []})
        mock.get("https://cdn.emnify.net/api/v1/endpoint/167/stats/daily", status_code=404, json=template("emnify", "endpoint_not_found"))
        output = read_streams(emnify_config(start_date=midnight(days_ago(1))), [DAILY])

    assert kinds(output) == [(166, TODAY.isoformat(), "data")]
    assert deleted_warnings(output) == [DELETED_167]
    assert error_messages(output) == []


@pytest.mark.parametrize("path", ["stats", "stats/daily"])
@pytest.mark.parametrize(
    "answer, text",
    [
        pytest.param({"text": "<html>Not Found</html>", "reason": "Not Found"}, "Not Found", id="an HTML page"),
        pytest.param(
            {"json": {"error_code": 1000, "error_token": "NoSuchRoute", "message": "No route for this path"}},
            "No route for this path (error 1000)",
            id="another emnify error",
        ),
    ],
)
def test_given_a_404_that_is_not_emnifys_not_found_when_synced_then_the_stream_fails(path: str, answer: Dict[str, Any], text: str) -> None:
    stream = MONTHLY if path == "stats" else DAILY
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        mock.get(f"https://cdn.emnify.net/api/v1/endpoint/166/{path}", status_code=404, **answer)
        output = read_streams(emnify_config(start_date=midnight(days_ago(1))), [stream], expect_failure=True)

    assert error_messages(output)[0] == f"emnify: GET https://cdn.emnify.net/api/v1/endpoint/166/{path} was refused with HTTP 404: {text}"


def test_given_a_429_without_retry_after_when_synced_then_it_backs_off_and_retries(waits: List[float]) -> None:
    limited = {"status_code": 429, "json": template("emnify", "too_many_requests")}
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        mock.get("https://cdn.emnify.net/api/v1/endpoint/166/stats/daily", [limited, {"json": [day(TODAY, data=data_usage(1, 0.5, 0.5))]}])
        output = read_streams(emnify_config(start_date=midnight(TODAY)), [DAILY])

    assert kinds(output) == [(166, TODAY.isoformat(), "data")]
    assert len(daily_requests(mock)) == 2
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0, "exponential backoff with jitter, first step"
