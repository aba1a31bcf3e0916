"""meraki_client_usage_histories: one record per client per usage point, partitioned and checkpointed by network."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode

from source_usage.framework.windows import parse_timestamp
from source_usage.vendors.meraki import CLIENTS_PARAM_MAX_CHARS, client_batches
from unit_tests.helpers import read_stream, template
from unit_tests.meraki_fixtures import BASE, meraki_config, meraki_streams, mock_dashboard

STREAM = "meraki_client_usage_histories"


def usage_requests(mock: requests_mock.Mocker) -> list:
    return [request for request in mock.request_history if request.path.endswith("/clients/usagehistories")]


def test_given_clients_with_usage_when_read_then_one_record_per_client_and_usage_point() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_stream(meraki_streams()[STREAM])

    assert len(output.records) == 2 * 3  # two organizations, one network each, three usage points
    first = next(record for record in output.records if record["networkId"] == "N_0" and record["clientId"] == "k74272e")
    assert first == {
        "organizationId": "549236",
        "networkId": "N_0",
        "clientId": "k74272e",
        "clientMac": "00:11:22:33:44:55",
        "clientIp": "1.2.3.4",
        "ts": "2026-11-20T00:00:00.090210Z",
        "recv": 383,
        "sent": 56,
    }


def test_given_a_network_when_read_then_clients_are_sent_in_one_comma_separated_batch_with_a_window() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        read_stream(meraki_streams()[STREAM])
        [request] = usage_requests(mock)

    query = parse_qs(urlsplit(request.url).query)
    assert query["clients"] == ["k74272e,k9b1c00"]
    assert query["perPage"] == ["1000"]
    t0, t1 = parse_timestamp(query["t0"][0]), parse_timestamp(query["t1"][0])
    assert timedelta(0) < t1 - t0 <= timedelta(days=31)


def test_given_a_start_date_beyond_31_days_when_read_then_it_is_clamped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    long_ago = datetime.now(timezone.utc) - timedelta(days=90)
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock_dashboard(mock)
        read_stream(meraki_streams(start=long_ago)[STREAM])
        t0s = [parse_timestamp(parse_qs(urlsplit(request.url).query)["t0"][0]) for request in usage_requests(mock)]

    assert all(datetime.now(timezone.utc) - t0 < timedelta(days=31) for t0 in t0s)
    warnings = [record for record in caplog.records if "31 days" in record.getMessage() and record.name.endswith(STREAM)]
    assert len(warnings) == 1


def test_given_many_clients_when_batched_then_batches_stay_under_the_url_budget_and_keep_every_client() -> None:
    ids = [f"k{index:06x}" for index in range(2000)]
    batches = list(client_batches(ids))
    assert [client for batch in batches for client in batch] == ids
    assert all(len(",".join(batch)) <= CLIENTS_PARAM_MAX_CHARS for batch in batches)
    assert len(batches) == 8  # 2000 keys of 7 characters: 250 per batch


def test_given_a_second_page_of_clients_when_read_then_the_link_header_is_followed() -> None:
    usage = template("meraki", "usage_histories")
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        next_url = f"{BASE}/networks/N_0/clients/usageHistories?perPage=1000&startingAfter=k74272e"
        mock.get(
            f"{BASE}/networks/N_0/clients/usageHistories",
            [
                {"json": usage[:1], "headers": {"Link": f"<{next_url}>; rel=next"}},
                {"json": usage[1:]},
            ],
        )
        output = read_stream(meraki_streams()[STREAM])

    assert sorted({record["clientId"] for record in output.records}) == ["k74272e", "k9b1c00"]
    assert len(usage_requests(mock)) == 2


def test_given_a_sync_when_read_incrementally_then_state_holds_the_latest_ts_per_network() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_stream(meraki_streams()[STREAM], SyncMode.incremental)

    assert output.final_state == {
        "states": [
            {"partition": {"networkId": "N_0"}, "cursor": {"ts": "2026-11-21T00:00:00.090210Z"}},
            {"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-21T00:00:00.090210Z"}},
        ]
    }


def test_given_saved_state_when_read_incrementally_then_it_starts_one_lookback_before_the_state() -> None:
    saved = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0)
    state = {"states": [{"partition": {"networkId": "N_0"}, "cursor": {"ts": saved.isoformat().replace("+00:00", "Z")}}]}
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        read_stream(meraki_streams(meraki_config(lookback=timedelta(days=1)))[STREAM], SyncMode.incremental, state)
        [request] = usage_requests(mock)

    t0 = parse_timestamp(parse_qs(urlsplit(request.url).query)["t0"][0])
    assert t0 == saved - timedelta(days=1)


def test_given_a_state_of_a_foreign_shape_when_read_then_it_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        output = read_stream(meraki_streams()[STREAM], SyncMode.incremental, {"ts": "yesterday"})

    assert len(output.records) == 3
    assert any("unknown shape" in record.getMessage() for record in caplog.records)
