"""emnify_endpoint_usage_monthly: the snapshot's months flattened, one record per endpoint, month and traffic
type; each (month, traffic type) emitted again when its `last_updated` or its finality changed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List

import pytest
import requests_mock

from unit_tests.emnify_fixtures import (  # noqa: F401  (fixtures: fresh_process_budgets is autouse)
    DAILY,
    LAST_HOUR,
    MONTHLY,
    emnify_config,
    endpoints,
    http_date,
    mock_api,
    stats,
    stats_endpoint_ids,
    stats_requests,
    fresh_process_budgets,
)
from unit_tests.helpers import error_messages, final_state, read_streams, records

OCTOBER = "2026-10-01T00:00:00Z"
NOVEMBER = "2026-11-01T00:00:00Z"


def keys(output: Any) -> List[tuple]:
    return [(record["endpoint_id"], record["period"], record["traffic_type_id"]) for record in records(output, MONTHLY)]


def state(versions: Dict[str, str], last_updated: str = "2026-11-29T15:12:53Z", endpoint_id: str = "166") -> dict:
    return {"states": [{"partition": {"endpoint_id": endpoint_id}, "cursor": {"last_updated": last_updated, "versions": versions}}]}


SYNCED_VERSIONS = {
    f"{OCTOBER}/5": "2026-10-31T14:56:25Z/final",
    f"{OCTOBER}/6": "2026-10-26T10:52:42Z/final",
    f"{NOVEMBER}/5": "2026-11-29T15:12:53Z/open",
    f"{NOVEMBER}/6": "2026-11-29T14:20:42Z/open",
}


def test_given_a_full_snapshot_when_synced_then_each_month_and_traffic_type_is_a_record_with_numbers_and_utc_instants() -> None:
    observed = datetime.now(timezone.utc).replace(microsecond=0)
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), date=http_date(observed))
        output = read_streams(emnify_config(), [MONTHLY])

    assert keys(output) == [(166, "last_month", 5), (166, "last_month", 6), (166, "current_month", 5), (166, "current_month", 6)]
    assert records(output, MONTHLY)[0] == {
        "endpoint_id": 166,
        "month": OCTOBER,
        "volume": 29.166235,
        "volume_tx": 5.577229,
        "volume_rx": 23.589006,
        "traffic_type_id": 5,
        "last_updated": "2026-10-31T14:56:25Z",
        "cost": 6.10483935,
        "currency_id": 1,
        "id": 311,
        "traffic_type": {"description": "Data", "unit": "MB", "id": 5},
        "currency": {"code": "EUR", "symbol": "€", "id": 1},
        "period": "last_month",
        "observed_at": observed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "is_final": True,
    }
    assert [(record["month"], record["volume"], record["is_final"]) for record in records(output, MONTHLY)] == [
        (OCTOBER, 29.166235, True),
        (OCTOBER, 51.0, True),
        (NOVEMBER, 0.848157, False),
        (NOVEMBER, 3.0, False),
    ], "last_month is closed; current_month is not"


def test_given_instants_with_a_plus_0000_offset_when_synced_then_month_and_last_updated_end_in_z() -> None:
    body = stats(166)
    body["current_month"]["data"].update(month="2026-11-01T00:00:00.000+0000", last_updated="2026-11-29T16:12:53.000+0100")
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: body})
        output = read_streams(emnify_config(), [MONTHLY])

    [current_data] = [record for record in records(output, MONTHLY) if record["period"] == "current_month" and record["traffic_type_id"] == 5]
    assert (current_data["month"], current_data["last_updated"]) == (NOVEMBER, "2026-11-29T15:12:53Z")


def test_given_an_endpoint_without_traffic_last_month_when_synced_then_only_the_current_month_is_emitted() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, without=("last_month",))})
        output = read_streams(emnify_config(), [MONTHLY])

    assert keys(output) == [(166, "current_month", 5), (166, "current_month", 6)]


def test_given_an_endpoint_that_sent_no_sms_when_synced_then_only_data_is_emitted() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, without=("last_month.sms", "current_month.sms"))})
        output = read_streams(emnify_config(), [MONTHLY])

    assert keys(output) == [(166, "last_month", 5), (166, "current_month", 5)]


@pytest.mark.parametrize("empty", [None, [], {}], ids=["null", "empty list", "empty object"])
def test_given_a_month_without_traffic_sent_as_an_empty_value_when_synced_then_it_is_skipped(empty: object) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: stats(166, without=("current_month",), current_month=empty)})
        output = read_streams(emnify_config(), [MONTHLY])

    assert keys(output) == [(166, "last_month", 5), (166, "last_month", 6)]


def test_given_a_volume_that_is_not_a_number_when_synced_then_the_stream_fails_naming_the_field() -> None:
    body = stats(166)
    body["last_month"]["data"]["volume"] = "12,5 MB"
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: body})
        output = read_streams(emnify_config(), [MONTHLY], expect_failure=True)

    assert error_messages(output)[0] == f"{MONTHLY}: record field 'volume' has value '12,5 MB', which is not a number"


def test_given_a_first_incremental_sync_when_synced_then_the_state_holds_each_rows_version_per_endpoint() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166, 167))
        output = read_streams(emnify_config(), [MONTHLY])

    saved = final_state(output, MONTHLY)
    assert saved is not None
    assert saved["states"] == [
        {"partition": {"endpoint_id": "166"}, "cursor": {"last_updated": "2026-11-29T15:12:53Z", "versions": SYNCED_VERSIONS}},
        {"partition": {"endpoint_id": "167"}, "cursor": {"last_updated": "2026-11-29T15:12:53Z", "versions": SYNCED_VERSIONS}},
    ]
    assert isinstance(saved["synced_at"], str) and saved["synced_at"].endswith("Z")


def test_given_nothing_changed_since_the_last_sync_when_synced_then_nothing_is_emitted() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [MONTHLY], state={MONTHLY: state(SYNCED_VERSIONS)})

    assert keys(output) == []
    assert final_state(output, MONTHLY)["states"] == state(SYNCED_VERSIONS)["states"]


def test_given_a_data_row_updated_before_the_sms_row_of_the_last_sync_when_synced_then_the_data_row_is_emitted() -> None:
    # Last sync: data updated at 11:00, SMS at 12:00 (the newest update of the endpoint). Now data says 11:30:
    # older than the endpoint's newest update, yet new for the data row.
    saved = {**SYNCED_VERSIONS, f"{NOVEMBER}/5": "2026-11-29T11:00:00Z/open", f"{NOVEMBER}/6": "2026-11-29T12:00:00Z/open"}
    body = stats(166)
    body["current_month"]["data"]["last_updated"] = "2026-11-29T11:30:00.000Z"
    body["current_month"]["sms"]["last_updated"] = "2026-11-29T12:00:00.000Z"
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: body})
        output = read_streams(emnify_config(), [MONTHLY], state={MONTHLY: state(saved, last_updated="2026-11-29T12:00:00Z")})

    assert [(record["period"], record["traffic_type_id"], record["last_updated"]) for record in records(output, MONTHLY)] == [
        ("current_month", 5, "2026-11-29T11:30:00Z")
    ]
    assert final_state(output, MONTHLY)["states"][0]["cursor"]["versions"][f"{NOVEMBER}/5"] == "2026-11-29T11:30:00Z/open"


def test_given_a_month_that_closed_since_the_last_sync_when_synced_then_its_rows_are_emitted_again_as_final() -> None:
    # Last sync ran in October: October was the current month (open). Its figures did not change since,
    # but October is now last_month: the same rows, now final.
    saved = {f"{OCTOBER}/5": "2026-10-31T14:56:25Z/open", f"{OCTOBER}/6": "2026-10-26T10:52:42Z/open"}
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(), [MONTHLY], state={MONTHLY: state(saved, last_updated="2026-10-31T14:56:25Z")})

    assert [(record["period"], record["traffic_type_id"], record["is_final"]) for record in records(output, MONTHLY)] == [
        ("last_month", 5, True),
        ("last_month", 6, True),
        ("current_month", 5, False),
        ("current_month", 6, False),
    ]
    assert final_state(output, MONTHLY)["states"][0]["cursor"]["versions"] == SYNCED_VERSIONS, "the month before October is forgotten"


def test_given_a_state_of_the_older_shape_without_versions_when_synced_then_every_row_is_emitted_once() -> None:
    older = {"states": [{"partition": {"endpoint_id": "166"}, "cursor": {"last_updated": "2026-11-29T15:12:53Z"}}]}
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        first = read_streams(emnify_config(), [MONTHLY], state={MONTHLY: older})
        second = read_streams(emnify_config(), [MONTHLY], state={MONTHLY: final_state(first, MONTHLY)})

    assert len(keys(first)) == 4
    assert keys(second) == []


def test_given_a_start_date_after_last_months_figures_when_synced_then_the_snapshot_is_still_read_whole() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166))
        output = read_streams(emnify_config(start_date="2026-11-29T00:00:00Z"), [MONTHLY])

    assert keys(output) == [(166, "last_month", 5), (166, "last_month", 6), (166, "current_month", 5), (166, "current_month", 6)]


# ----- one snapshot per endpoint for both snapshot streams ----------------------------------------------------


@pytest.mark.parametrize("streams", [[MONTHLY, LAST_HOUR], [LAST_HOUR, MONTHLY]], ids=["monthly first", "last hour first"])
def test_given_both_snapshot_streams_when_synced_then_each_endpoint_snapshot_is_requested_once(streams: List[str]) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), streams)

    assert stats_endpoint_ids(stats_requests(mock)) == [166, 167, 170]
    assert len(records(output, MONTHLY)) == 3 * 4
    assert len(records(output, LAST_HOUR)) == 3 * 8


def test_given_only_the_daily_stream_when_synced_then_no_snapshot_is_requested() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        read_streams(emnify_config(), [DAILY])

    assert stats_requests(mock) == []


def test_given_two_syncs_when_each_runs_then_each_requests_the_snapshots_again() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        for _ in range(2):
            read_streams(emnify_config(), [MONTHLY, LAST_HOUR])

    assert stats_endpoint_ids(stats_requests(mock)) == [166, 166, 167, 167, 170, 170]


# ----- the usage ledger --------------------------------------------------------------------------------


def test_given_monthly_figures_when_the_ledger_is_read_then_data_is_in_bytes_of_a_binary_megabyte_and_sms_in_messages_cost_on_the_total() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), ["emnify_endpoint_usage_monthly", "usage_ledger"])

    [data, sms] = [r for r in records(output, "emnify_endpoint_usage_monthly") if r["endpoint_id"] == 166 and r["month"] == "2026-10-01T00:00:00Z"]
    rows = [r for r in records(output, "usage_ledger") if r["subject_id"] == "166" and r["period_start"] == "2026-10-01T00:00:00Z"]
    common = {
        "vendor": "emnify",
        "account_id": "1337",
        "subject_type": "endpoint",
        "subject_id": "166",
        "subject_name": "arduino01",
        "granularity": "month",
        "period_start": "2026-10-01T00:00:00Z",
        "period_end": "2026-11-01T00:00:00Z",
        "is_final": True,
        "observed_at": data["observed_at"],
        "source_stream": "emnify_endpoint_usage_monthly",
    }
    mib = 1024 * 1024
    assert rows == [
        {**common, "metric": "data_total_bytes", "quantity": data["volume"] * mib, "unit": "bytes", "cost": data["cost"], "currency": "EUR"},
        {**common, "metric": "data_sent_bytes", "quantity": data["volume_tx"] * mib, "unit": "bytes"},
        {**common, "metric": "data_received_bytes", "quantity": data["volume_rx"] * mib, "unit": "bytes"},
        {**common, "metric": "sms_count", "quantity": sms["volume"], "unit": "messages", "cost": sms["cost"], "currency": "EUR"},
        {**common, "metric": "sms_sent_count", "quantity": sms["volume_tx"], "unit": "messages"},
        {**common, "metric": "sms_received_count", "quantity": sms["volume_rx"], "unit": "messages"},
    ]
    assert (data["volume"], sms["volume"]) == (29.166235, 51.0)
    assert len(records(output, "usage_ledger")) == 3 * len(records(output, "emnify_endpoint_usage_monthly"))
