"""emnify_endpoint_usage_last_hour: the snapshot's `HH:MM` minutes placed in the hour up to the response's
`Date`, every minute emitted; the newest one open (`is_final: false`) and emitted again by the next sync
when it became final or changed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Sequence

import pytest
import requests_mock

from unit_tests.emnify_fixtures import (  # noqa: F401  (fixtures: fresh_process_budgets is autouse)
    LAST_HOUR,
    emnify_config,
    endpoints,
    mock_api,
    stats,
    fresh_process_budgets,
)
from unit_tests.helpers import error_messages, final_state, log_lines, read_streams, records

DATE_0737 = "Mon, 30 Nov 2026 07:37:59 GMT"
MIDNIGHT_STATE = {
    "states": [
        {
            "partition": {"endpoint_id": "166"},
            "cursor": {
                "minute": "2026-11-30T00:00:00Z",
                "open": {"data": ["2026-11-30T00:01:00Z", 0.25, 0.01], "sms": ["2026-11-30T00:01:00Z", 0, 1]},
            },
        }
    ]
}


def labels_from(first: str, count: int) -> List[str]:
    start = datetime.strptime(first, "%H:%M")
    return [(start + timedelta(minutes=offset)).strftime("%H:%M") for offset in range(count)]


def data_only(labels: Sequence[str], rx: float = 1.0, tx: float = 2.0) -> Dict[str, Any]:
    return {"data": {"rx": [[label, rx] for label in labels], "tx": [[label, tx] for label in labels]}}


def minutes(output: Any) -> List[tuple]:
    return [(record["traffic_type"], record["minute"], record["is_final"]) for record in records(output, LAST_HOUR)]


def placement_warnings(output: Any) -> List[str]:
    return [line for line in log_lines(output, "WARN") if "last_hour labels" in line]


@pytest.fixture
def placement_not_yet_warned() -> None:
    """The placement warning is given once per sync: every test's sync may give it."""


# ----- every minute, in UTC ---------------------------------------------------------------------------------


def test_given_minutes_across_midnight_when_synced_then_each_is_a_utc_minute_with_rx_and_tx_side_by_side() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [LAST_HOUR])

    assert [{key: value for key, value in record.items() if key != "observed_at"} for record in records(output, LAST_HOUR)] == [
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-29T23:58:00Z", "rx": 0, "tx": 0, "is_final": True},
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-29T23:59:00Z", "rx": 0.012, "tx": 0.001, "is_final": True},
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-30T00:00:00Z", "rx": 0.5, "tx": 0.03, "is_final": True},
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-30T00:01:00Z", "rx": 0.25, "tx": 0.01, "is_final": False},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-29T23:58:00Z", "rx": 0, "tx": 2, "is_final": True},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-29T23:59:00Z", "rx": 1, "tx": 0, "is_final": True},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-30T00:00:00Z", "rx": 0, "tx": 0, "is_final": True},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-30T00:01:00Z", "rx": 0, "tx": 1, "is_final": False},
    ], "the labels after 00:01 are the day before the Date's"
    assert all(record["observed_at"].endswith("Z") for record in records(output, LAST_HOUR))


@pytest.mark.parametrize(
    "first_label, count, first_minute",
    [
        pytest.param("06:39", 59, "2026-11-30T06:39:00Z", id="59 minutes (emnify's own example)"),
        pytest.param("06:38", 60, "2026-11-30T06:38:00Z", id="60 minutes"),
    ],
)
def test_given_the_whole_hour_before_the_date_when_synced_then_every_minute_is_emitted_in_order(first_label: str, count: int, first_minute: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, last_hour=data_only(labels_from(first_label, count)))}, date=DATE_0737)
        output = read_streams(emnify_config(), [LAST_HOUR])

    emitted = minutes(output)
    assert len(emitted) == count
    assert emitted[0] == ("data", first_minute, True)
    assert emitted[-2] == ("data", "2026-11-30T07:36:00Z", True)
    assert emitted[-1] == ("data", "2026-11-30T07:37:00Z", False), "only the newest minute is open"
    assert len({minute for _, minute, _ in emitted}) == count


@pytest.mark.parametrize(
    "date, label, minute",
    [
        pytest.param(DATE_0737, "07:38", "2026-11-30T07:38:00Z", id="a minute ahead of Date 07:37:59: today, not yesterday"),
        pytest.param(DATE_0737, "07:37", "2026-11-30T07:37:00Z", id="the Date's own minute"),
        pytest.param(DATE_0737, "06:38", "2026-11-30T06:38:00Z", id="an hour before"),
        pytest.param("Mon, 30 Nov 2026 00:00:30 GMT", "23:01", "2026-11-29T23:01:00Z", id="an hour before, across midnight"),
        pytest.param("Mon, 30 Nov 2026 23:59:30 GMT", "00:00", "2026-12-01T00:00:00Z", id="a minute ahead, across midnight"),
        pytest.param("Tue, 01 Dec 2026 00:00:10 GMT", "23:59", "2026-11-30T23:59:00Z", id="across midnight and a month"),
    ],
)
def test_given_a_label_when_synced_then_it_is_placed_in_the_hour_up_to_the_date(date: str, label: str, minute: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, last_hour=data_only([label]))}, date=date)
        output = read_streams(emnify_config(), [LAST_HOUR])

    assert [record["minute"] for record in records(output, LAST_HOUR)] == [minute]
    assert placement_warnings(output) == []


def test_given_labels_that_fit_nowhere_in_the_hour_before_the_date_when_synced_then_one_warning_says_so(
    monkeypatch: pytest.MonkeyPatch, placement_not_yet_warned: None
) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "1")
    misplaced = stats(166, last_hour=data_only(["05:00", "05:01"]))
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166, 167), snapshots={166: misplaced, 167: misplaced}, date=DATE_0737)
        output = read_streams(emnify_config(), [LAST_HOUR])

    assert placement_warnings(output) == [
        "emnify: the last_hour labels of endpoint 166 do not all fall in the hour before the response's Date "
        "(2026-11-30T07:37:59Z); the connector reads them as UTC minutes and placed them on the latest matching minute"
    ]
    assert [(record["endpoint_id"], record["minute"]) for record in records(output, LAST_HOUR)] == [
        (166, "2026-11-30T05:00:00Z"),
        (166, "2026-11-30T05:01:00Z"),
        (167, "2026-11-30T05:00:00Z"),
        (167, "2026-11-30T05:01:00Z"),
    ]


def test_given_two_syncs_with_misplaced_labels_when_each_runs_then_each_warns_once() -> None:
    misplaced = stats(166, last_hour=data_only(["05:00"]))
    found = []
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: misplaced}, date=DATE_0737)
        for _ in range(2):
            found.append(len(placement_warnings(read_streams(emnify_config(), [LAST_HOUR]))))

    assert found == [1, 1]


def test_given_a_label_that_is_not_a_time_when_synced_then_the_stream_fails_naming_it() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, last_hour=data_only(["7:3x"]))}, date=DATE_0737)
        output = read_streams(emnify_config(), [LAST_HOUR], expect_failure=True)

    assert error_messages(output)[0] == "emnify: last_hour has a minute label '7:3x', not HH:MM"


def test_given_a_response_without_a_date_header_when_synced_then_minutes_are_placed_with_our_clock_and_a_warning() -> None:
    two_minutes_ago = (datetime.now(timezone.utc) - timedelta(minutes=2)).replace(second=0, microsecond=0)
    label = two_minutes_ago.strftime("%H:%M")
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, last_hour=data_only([label]))}, date=None)
        output = read_streams(emnify_config(), [LAST_HOUR])

    assert [record["minute"] for record in records(output, LAST_HOUR)] == [two_minutes_ago.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert "emnify: a statistics response has no valid Date header; placing its minutes with our clock" in log_lines(output, "WARN")


# ----- the newest minute is open --------------------------------------------------------------------------


def test_given_a_first_incremental_sync_when_synced_then_the_state_holds_the_newest_final_minute_and_the_open_one() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [LAST_HOUR])

    assert final_state(output, LAST_HOUR)["states"] == MIDNIGHT_STATE["states"]


def test_given_the_same_snapshot_again_when_synced_then_nothing_is_emitted() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [LAST_HOUR], state={LAST_HOUR: MIDNIGHT_STATE})

    assert minutes(output) == []
    assert final_state(output, LAST_HOUR)["states"] == MIDNIGHT_STATE["states"]


def test_given_the_open_minute_changed_when_synced_then_it_is_emitted_again_still_open() -> None:
    body = stats(166)
    body["last_hour"]["data"]["rx"][-1] = ["00:01", 0.75]
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: body})
        output = read_streams(emnify_config(), [LAST_HOUR], state={LAST_HOUR: MIDNIGHT_STATE})

    assert [(record["traffic_type"], record["minute"], record["rx"], record["is_final"]) for record in records(output, LAST_HOUR)] == [
        ("data", "2026-11-30T00:01:00Z", 0.75, False)
    ]
    assert final_state(output, LAST_HOUR)["states"][0]["cursor"]["open"]["data"] == ["2026-11-30T00:01:00Z", 0.75, 0.01]


def test_given_the_open_minute_became_final_when_synced_then_it_is_emitted_again_as_final_with_the_new_open_minute() -> None:
    later = {
        "data": {"rx": [["23:59", 0.012], ["00:00", 0.5], ["00:01", 0.25], ["00:02", 0.125]], "tx": [["23:59", 0.001], ["00:00", 0.03], ["00:01", 0.01], ["00:02", 0.0]]},
        "sms": {"rx": [["23:59", 1], ["00:00", 0], ["00:01", 0], ["00:02", 3]], "tx": [["23:59", 0], ["00:00", 0], ["00:01", 1], ["00:02", 0]]},
    }
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, last_hour=later)}, date="Mon, 30 Nov 2026 00:02:30 GMT")
        output = read_streams(emnify_config(), [LAST_HOUR], state={LAST_HOUR: MIDNIGHT_STATE})

    assert minutes(output) == [
        ("data", "2026-11-30T00:01:00Z", True),
        ("data", "2026-11-30T00:02:00Z", False),
        ("sms", "2026-11-30T00:01:00Z", True),
        ("sms", "2026-11-30T00:02:00Z", False),
    ], "23:59 and 00:00 were delivered final already"
    assert final_state(output, LAST_HOUR)["states"][0]["cursor"] == {
        "minute": "2026-11-30T00:01:00Z",
        "open": {"data": ["2026-11-30T00:02:00Z", 0.125, 0.0], "sms": ["2026-11-30T00:02:00Z", 3, 0]},
    }


def test_given_a_state_of_the_older_shape_without_open_when_synced_then_its_newest_minute_is_emitted_again_once() -> None:
    # The older cursor kept only the newest minute it emitted, which may still have been accumulating.
    older = {"states": [{"partition": {"endpoint_id": "166"}, "cursor": {"minute": "2026-11-30T00:00:00Z"}}]}
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        first = read_streams(emnify_config(), [LAST_HOUR], state={LAST_HOUR: older})
        second = read_streams(emnify_config(), [LAST_HOUR], state={LAST_HOUR: final_state(first, LAST_HOUR)})

    assert minutes(first) == [
        ("data", "2026-11-30T00:00:00Z", True),
        ("data", "2026-11-30T00:01:00Z", False),
        ("sms", "2026-11-30T00:00:00Z", True),
        ("sms", "2026-11-30T00:01:00Z", False),
    ]
    assert minutes(second) == []


def test_given_an_endpoint_no_longer_listed_when_synced_then_its_state_is_dropped() -> None:
    state = {"states": MIDNIGHT_STATE["states"] + [{**MIDNIGHT_STATE["states"][0], "partition": {"endpoint_id": "999"}}]}
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [LAST_HOUR], state={LAST_HOUR: state})

    assert [entry["partition"] for entry in final_state(output, LAST_HOUR)["states"]] == [{"endpoint_id": "166"}]
