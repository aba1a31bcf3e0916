"""emnify_endpoint_usage_monthly: the stats snapshot's months flattened, one record per endpoint, month and traffic type."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import List

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode

from source_usage.framework.errors import UsageError
from unit_tests.emnify_fixtures import emnify_streams, mock_api, stats, stats_requests
from unit_tests.helpers import read_stream, template

STREAM = "emnify_endpoint_usage_monthly"


def one_endpoint() -> List[dict]:
    return template("emnify", "endpoints")[:1]


def keys(records: List[dict]) -> List[tuple]:
    return [(record["endpoint_id"], record["period"], record["traffic_type_id"]) for record in records]


def test_given_a_full_snapshot_when_read_then_each_month_and_traffic_type_is_a_record_with_numeric_volumes() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint())
        output = read_stream(emnify_streams()[STREAM])

    assert keys(output.records) == [(166, "last_month", 5), (166, "last_month", 6), (166, "current_month", 5), (166, "current_month", 6)]
    assert output.records[0] == {
        "endpoint_id": 166,
        "month": "2026-10-01T00:00:00.000Z",
        "volume": 29.166235,
        "volume_tx": 5.577229,
        "volume_rx": 23.589006,
        "traffic_type_id": 5,
        "last_updated": "2026-10-31T14:56:25.000Z",
        "cost": 6.10483935,
        "currency_id": 1,
        "id": 311,
        "traffic_type": {"description": "Data", "unit": "MB", "id": 5},
        "currency": {"code": "EUR", "symbol": "€", "id": 1},
        "period": "last_month",
    }


def test_given_an_endpoint_without_traffic_last_month_when_read_then_only_the_current_month_is_emitted() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint(), snapshots={166: stats(166, without=("last_month",))})
        output = read_stream(emnify_streams()[STREAM])

    assert keys(output.records) == [(166, "current_month", 5), (166, "current_month", 6)]


def test_given_an_endpoint_that_sent_no_sms_when_read_then_only_data_is_emitted() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint(), snapshots={166: stats(166, without=("last_month.sms", "current_month.sms"))})
        output = read_stream(emnify_streams()[STREAM])

    assert keys(output.records) == [(166, "last_month", 5), (166, "current_month", 5)]


@pytest.mark.parametrize("empty", [None, [], {}])
def test_given_a_month_without_traffic_sent_as_an_empty_value_when_read_then_it_is_skipped(empty: object) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint(), snapshots={166: stats(166, without=("current_month",), current_month=empty)})
        output = read_stream(emnify_streams()[STREAM])

    assert keys(output.records) == [(166, "last_month", 5), (166, "last_month", 6)]


def test_given_a_sync_when_read_incrementally_then_state_holds_the_latest_last_updated_per_endpoint() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_stream(emnify_streams()[STREAM], SyncMode.incremental)

    assert output.final_state == {
        "states": [
            {"partition": {"endpoint_id": str(endpoint_id)}, "cursor": {"last_updated": "2026-11-29T15:12:53.000Z"}}
            for endpoint_id in (166, 167, 170)
        ]
    }


def test_given_saved_state_when_read_incrementally_then_only_figures_updated_since_are_emitted() -> None:
    state = {"states": [{"partition": {"endpoint_id": "166"}, "cursor": {"last_updated": "2026-11-29T14:20:42.000Z"}}]}
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint())
        output = read_stream(emnify_streams()[STREAM], SyncMode.incremental, state)

    assert keys(output.records) == [(166, "current_month", 5)]
    assert output.final_state["states"][0]["cursor"] == {"last_updated": "2026-11-29T15:12:53.000Z"}


def test_given_a_start_date_after_last_months_figures_when_read_then_the_snapshot_is_still_read_whole() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint())
        output = read_stream(emnify_streams(start=datetime(2026, 11, 29, tzinfo=timezone.utc))[STREAM])

    assert keys(output.records) == [(166, "last_month", 5), (166, "last_month", 6), (166, "current_month", 5), (166, "current_month", 6)]


def test_given_an_endpoint_deleted_after_the_listing_when_read_then_it_is_skipped_with_a_warning_and_not_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = [{"status_code": 404, "json": template("emnify", "endpoint_not_found")}]
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock_api(mock, snapshots={166: stats(166), 167: gone, 170: stats(170)})
        streams = emnify_streams()
        monthly = read_stream(streams[STREAM])
        last_hour = read_stream(streams["emnify_endpoint_usage_last_hour"])

    assert {record["endpoint_id"] for record in monthly.records} == {166, 170}
    assert {record["endpoint_id"] for record in last_hour.records} == {166, 170}
    assert len(stats_requests(mock)) == 3, "the second stats stream neither asks for the deleted endpoint nor the others"
    [warning] = [record.getMessage() for record in caplog.records if "deleted" in record.getMessage()]
    assert warning == (
        f"{STREAM}: skipping endpoint 167: it was deleted after it was listed (HTTP 404: Endpoint with id 167 not found (error 1201))"
    )


def test_given_a_404_that_is_not_emnifys_not_found_when_read_then_the_stream_fails() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint(), snapshots={166: [{"status_code": 404, "text": "<html>Not Found</html>"}]})
        with pytest.raises(UsageError) as failure:
            read_stream(emnify_streams()[STREAM])

    assert "was refused with HTTP 404" in failure.value.message


def test_given_a_429_without_retry_after_when_read_then_it_backs_off_and_retries(waits: List[float]) -> None:
    limited = {"status_code": 429, "json": template("emnify", "too_many_requests")}
    with requests_mock.Mocker() as mock:
        mock_api(mock, endpoints=one_endpoint(), snapshots={166: [limited, {"json": stats(166)}]})
        output = read_stream(emnify_streams()[STREAM])

    assert len(output.records) == 4
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0, "exponential backoff with jitter, first step"
