"""emnify_endpoint_usage_last_hour: the snapshot's per-minute series, HH:MM labels resolved from the Date header."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import List

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode

from source_usage.framework.errors import UsageError
from source_usage.framework.windows import iso_z
from source_usage.vendors.emnify import resolve_minute
from unit_tests.emnify_fixtures import BASE, emnify_streams, mock_api, stats, stats_requests
from unit_tests.helpers import read_stream, template

STREAM = "emnify_endpoint_usage_last_hour"
AS_OF = datetime(2026, 11, 30, 0, 1, 30, tzinfo=timezone.utc)  # the fixtures' Date header


def one_endpoint() -> List[dict]:
    return template("emnify", "endpoints")[:1]


@pytest.mark.parametrize(
    "label, minute",
    [
        ("00:01", datetime(2026, 11, 30, 0, 1, tzinfo=timezone.utc)),
        ("00:00", datetime(2026, 11, 30, 0, 0, tzinfo=timezone.utc)),
        ("23:59", datetime(2026, 11, 29, 23, 59, tzinfo=timezone.utc)),
        ("23:02", datetime(2026, 11, 29, 23, 2, tzinfo=timezone.utc)),
    ],
)
def test_given_a_label_when_resolved_then_it_is_the_latest_such_minute_up_to_the_date(label: str, minute: datetime) -> None:
    assert resolve_minute(label, AS_OF) == minute


def test_given_a_label_that_is_not_a_time_when_resolved_then_it_fails_naming_it() -> None:
    with pytest.raises(UsageError, match="minute label '7:3x'"):
        resolve_minute("7:3x", AS_OF)


def test_given_minutes_across_midnight_when_read_then_each_is_a_utc_timestamp_with_rx_and_tx_side_by_side() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint())
        output = read_stream(emnify_streams()[STREAM])

    assert output.records == [
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-29T23:58:00Z", "rx": 0, "tx": 0},
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-29T23:59:00Z", "rx": 0.012, "tx": 0.001},
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-30T00:00:00Z", "rx": 0.5, "tx": 0.03},
        {"endpoint_id": 166, "traffic_type": "data", "minute": "2026-11-30T00:01:00Z", "rx": 0.25, "tx": 0.01},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-29T23:58:00Z", "rx": 0, "tx": 2},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-29T23:59:00Z", "rx": 1, "tx": 0},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-30T00:00:00Z", "rx": 0, "tx": 0},
        {"endpoint_id": 166, "traffic_type": "sms", "minute": "2026-11-30T00:01:00Z", "rx": 0, "tx": 1},
    ], "every minute the snapshot reports, the labels after 00:01 on the day before"


def test_given_a_response_without_a_date_header_when_read_then_minutes_are_resolved_with_our_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    two_minutes_ago = (datetime.now(timezone.utc) - timedelta(minutes=2)).replace(second=0, microsecond=0)
    label = two_minutes_ago.strftime("%H:%M")
    body = stats(166, last_hour={"data": {"rx": [[label, 1]], "tx": [[label, 2]]}})
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock_api(mock, endpoints=one_endpoint())
        mock.get(f"{BASE}/endpoint/166/stats", json=body)
        output = read_stream(emnify_streams()[STREAM])

    assert output.records == [{"endpoint_id": 166, "traffic_type": "data", "minute": iso_z(two_minutes_ago), "rx": 1, "tx": 2}]
    assert any("no valid Date header" in record.getMessage() for record in caplog.records)


def test_given_a_sync_when_read_incrementally_then_state_holds_the_latest_minute_per_endpoint() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint())
        output = read_stream(emnify_streams()[STREAM], SyncMode.incremental)

    assert output.final_state == {"states": [{"partition": {"endpoint_id": "166"}, "cursor": {"minute": "2026-11-30T00:01:00Z"}}]}


def test_given_saved_state_when_read_incrementally_then_minutes_already_delivered_are_not_emitted_again() -> None:
    state = {"states": [{"partition": {"endpoint_id": "166"}, "cursor": {"minute": "2026-11-29T23:59:00Z"}}]}
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint())
        output = read_stream(emnify_streams()[STREAM], SyncMode.incremental, state)

    assert [(record["traffic_type"], record["minute"]) for record in output.records] == [
        ("data", "2026-11-30T00:00:00Z"),
        ("data", "2026-11-30T00:01:00Z"),
        ("sms", "2026-11-30T00:00:00Z"),
        ("sms", "2026-11-30T00:01:00Z"),
    ]


def test_given_this_stream_reads_first_when_the_monthly_stream_reads_then_it_uses_the_same_snapshots() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        streams = emnify_streams()
        last_hour = read_stream(streams[STREAM])
        monthly = read_stream(streams["emnify_endpoint_usage_monthly"])

    assert len(stats_requests(mock)) == 3, "one stats request per endpoint for both streams"
    assert len(last_hour.records) == 3 * 8
    assert len(monthly.records) == 3 * 4


def test_given_a_second_sync_when_read_then_it_requests_the_snapshots_again() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        for _ in range(2):
            streams = emnify_streams()
            read_stream(streams["emnify_endpoint_usage_monthly"])
            read_stream(streams[STREAM])

    assert len(stats_requests(mock)) == 2 * 3
