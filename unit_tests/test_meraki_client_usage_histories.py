"""meraki_client_usage_histories: one record per client per daily bucket, partitioned and checkpointed by network.

The clock is frozen at 2026-11-23T12:00:00Z (`frozen`), the start date is 2026-11-15T00:00:00Z unless a test
says otherwise.
"""

from __future__ import annotations

from typing import Any, List, Set, Tuple
from urllib.parse import urlsplit

import pytest
import requests
import requests_mock
from airbyte_cdk.models import SyncMode

from source_usage.framework.budget import MovingWindowLayer
from unit_tests.helpers import error_messages, final_state, read_streams, records, template, warnings
from unit_tests.meraki_fixtures import (
    BASE,
    BRANCHES,
    HEAD_OFFICE,
    frozen,  # noqa: F401  (fixture)
    meraki_config,
    one_organization,
    mock_dashboard,
    only,
    query_of,
    requests_to,
    usage_requests,
)

STREAM = "meraki_client_usage_histories"
pytestmark = pytest.mark.usefixtures("frozen")



def serve_usage(mock: requests_mock.Mocker, body: Any, network: str = "N_0", **response: Any) -> None:
    mock.get(f"{BASE}/networks/{network}/clients/usageHistories", json=body, **response)


def usage_of(points: List[dict], client: str = "k74272e") -> List[dict]:
    """One client's usage history (the template's first client) with these points."""
    return [{**template("meraki", "usage_histories")[0], "clientId": client, "usageHistory": points}]



# ----- records ---------------------------------------------------------------------------------------


def test_given_clients_with_usage_when_read_then_one_record_per_client_and_usage_point() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(), [STREAM])

    emitted = records(output, STREAM)
    assert len(emitted) == 2 * 3  # two organizations, one network each, three usage points
    assert sorted((record["networkId"], record["clientId"], record["ts"]) for record in emitted) == [
        ("N_0", "k74272e", "2026-11-20T00:00:00.090210Z"),
        ("N_0", "k74272e", "2026-11-21T00:00:00.090210Z"),
        ("N_0", "k9b1c00", "2026-11-21T00:00:00.090210Z"),
        ("N_1", "k74272e", "2026-11-20T00:00:00.090210Z"),
        ("N_1", "k74272e", "2026-11-21T00:00:00.090210Z"),
        ("N_1", "k9b1c00", "2026-11-21T00:00:00.090210Z"),
    ]
    first = next(record for record in emitted if record["networkId"] == "N_1" and record["ts"].startswith("2026-11-20"))
    assert first == {
        "organizationId": BRANCHES,
        "networkId": "N_1",
        "clientId": "k74272e",
        "clientMac": "00:11:22:33:44:55",
        "clientIp": "1.2.3.4",
        "ts": "2026-11-20T00:00:00.090210Z",
        "recv": 383,
        "sent": 56,
        "observed_at": "2026-11-23T12:00:00Z",  # no Date header: the connector's clock
        "is_final": True,
    }


@pytest.mark.parametrize("name", ["recv", "received"], ids=["recv-as-in-the-examples", "received-as-in-newer-references"])
def test_given_received_kilobytes_under_either_name_when_read_then_they_are_emitted_as_recv(name: str) -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, usage_of([{"ts": "2026-11-20T00:00:00Z", name: 383, "sent": 56}]))
        [record] = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert (record["recv"], record["sent"]) == (383, 56)
    assert "received" not in record


def test_given_a_client_whose_usage_history_is_null_when_read_then_it_has_no_records_and_the_others_do() -> None:
    body = [{**template("meraki", "usage_histories")[0], "usageHistory": None}, template("meraki", "usage_histories")[1]]
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, body)
        output = read_streams(meraki_config(), [STREAM])

    assert [(record["clientId"], record["ts"]) for record in records(output, STREAM)] == [("k9b1c00", "2026-11-21T00:00:00.090210Z")]
    assert error_messages(output) == []


def test_given_both_recv_and_received_when_read_then_recv_wins() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, usage_of([{"ts": "2026-11-20T00:00:00Z", "recv": 383, "received": 1, "sent": 56}]))
        [record] = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert record["recv"] == 383


@pytest.mark.parametrize(
    "wire, emitted",
    [
        ("2026-11-20T00:00:00.090210Z", "2026-11-20T00:00:00.090210Z"),
        ("2026-11-20T00:00:00.000000Z", "2026-11-20T00:00:00Z"),
        ("2026-11-20T01:00:00+01:00", "2026-11-20T00:00:00Z"),
        ("2026-11-20T00:00:00", "2026-11-20T00:00:00Z"),
        (1795132800, "2026-11-20T00:00:00Z"),
    ],
    ids=["microseconds-kept", "zero-microseconds-dropped", "offset-to-utc", "no-offset-is-utc", "epoch-seconds"],
)
def test_given_a_bucket_timestamp_when_read_then_ts_is_rfc3339_utc_with_a_z(wire: Any, emitted: str) -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, usage_of([{"ts": wire, "recv": 1, "sent": 2}]))
        [record] = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert record["ts"] == emitted


def test_given_a_recv_that_is_a_float_when_read_then_the_stream_fails_naming_the_field_and_value() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, usage_of([{"ts": "2026-11-20T00:00:00Z", "recv": 383.5, "sent": 56}]))
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert records(output, STREAM) == []
    assert error_messages(output)[0] == "meraki_client_usage_histories: record field 'recv' has value 383.5, which is not of type integer"


def test_given_a_point_with_a_null_ts_when_read_then_it_is_skipped_with_a_warning_and_the_others_are_emitted() -> None:
    points = [{"ts": None, "recv": 1, "sent": 2}, {"ts": "2026-11-21T00:00:00Z", "recv": 3, "sent": 4}]
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, usage_of(points))
        output = read_streams(meraki_config(), [STREAM])

    assert [(record["ts"], record["recv"]) for record in records(output, STREAM)] == [("2026-11-21T00:00:00Z", 3)]
    assert warnings(output) == [
        "meraki: meraki_client_usage_histories: skipped 1 record(s) whose ts (a primary-key or cursor field) the API sent "
        "as null or left out: such a record cannot be deduplicated or checkpointed"
    ]


# ----- observed_at and is_final ----------------------------------------------------------------------


def test_given_a_date_header_when_read_then_observed_at_is_that_instant() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, template("meraki", "usage_histories"), headers={"Date": "Mon, 23 Nov 2026 11:58:07 GMT"})
        emitted = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert {record["observed_at"] for record in emitted} == {"2026-11-23T11:58:07Z"}


def test_given_a_date_header_far_from_the_clock_when_read_then_observed_at_is_the_clock() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, template("meraki", "usage_histories"), headers={"Date": "Sun, 01 Nov 2026 00:00:00 GMT"})
        emitted = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert {record["observed_at"] for record in emitted} == {"2026-11-23T12:00:00Z"}


def read_one_bucket(ts: str, lookback_days: int) -> dict:
    """One bucket starting at `ts`, read with a Date header of 2026-11-23T11:50:00Z."""
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, usage_of([{"ts": ts, "recv": 1, "sent": 2}]), headers={"Date": "Mon, 23 Nov 2026 11:50:00 GMT"})
        [record] = records(read_streams(meraki_config(start_date="2026-11-19T00:00:00Z", lookback_days=lookback_days), [STREAM]), STREAM)
    assert record["observed_at"] == "2026-11-23T11:50:00Z"
    return record


@pytest.mark.parametrize(
    "lookback_days, ts, final",
    [
        (1, "2026-11-21T11:49:59Z", True),  # ended 2026-11-22T11:49:59Z, more than a day before 2026-11-23T11:50:00Z
        (1, "2026-11-21T11:50:01Z", False),  # ended less than a day before
        (0, "2026-11-22T11:49:59Z", True),  # without a lookback, a bucket is final once it ended
        (0, "2026-11-22T11:50:01Z", False),
        (2, "2026-11-20T11:49:59Z", True),
        (2, "2026-11-20T11:50:01Z", False),
    ],
)
def test_given_a_fixed_date_header_when_read_then_a_bucket_is_final_once_it_ended_more_than_the_lookback_before_it_was_read(
    lookback_days: int, ts: str, final: bool
) -> None:
    assert read_one_bucket(ts, lookback_days)["is_final"] is final


@pytest.mark.parametrize("lookback_days, ts", [(1, "2026-11-21T11:50:00Z"), (0, "2026-11-22T11:50:00Z")])
def test_given_a_bucket_that_ended_exactly_the_lookback_before_it_was_read_when_read_then_it_is_not_final_yet(lookback_days: int, ts: str) -> None:
    assert read_one_bucket(ts, lookback_days)["is_final"] is False


# ----- requests: clients, windows, batches, pages ----------------------------------------------------


def test_given_a_network_when_read_then_its_clients_are_sent_in_one_comma_separated_batch_with_the_window() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(), [STREAM])
        request = only(usage_requests(mock))

    assert query_of(request) == {
        "clients": ["k74272e,k9b1c00"],
        "perPage": ["1000"],
        "t0": ["2026-11-15T00:00:00Z"],
        "t1": ["2026-11-23T12:00:00Z"],
    }


def test_given_a_network_without_clients_when_read_then_no_usage_is_requested() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/networks/N_0/clients", json=[])
        output = read_streams(meraki_config(), [STREAM])

    assert records(output, STREAM) == []
    assert usage_requests(mock) == []


def test_given_clients_whose_keys_fill_exactly_2000_characters_when_read_then_they_go_in_one_request() -> None:
    first = [f"k{index:06x}" for index in range(250)]  # 250 * 7 characters and 249 commas: 1999, one more would not fit
    second = [f"k{index:06x}" for index in range(250, 499)] + ["k1234567"]  # 249 * 7 + 8 characters and 249 commas: 2000
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/networks/N_0/clients", json=[{"id": key} for key in first + second])
        serve_usage(mock, [])
        read_streams(meraki_config(), [STREAM])
        sent = [query_of(request)["clients"][0] for request in usage_requests(mock)]

    assert [len(clients) for clients in sent] == [1999, 2000]
    assert [clients.split(",") for clients in sent] == [first, second]


def test_given_2000_clients_when_read_then_they_are_sent_in_batches_of_250_that_keep_every_client_in_order() -> None:
    keys = [f"k{index:06x}" for index in range(2000)]  # 7 characters: 250 keys and 249 commas make 1999
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/networks/N_0/clients", json=[{"id": key} for key in keys])
        serve_usage(mock, [])
        read_streams(meraki_config(), [STREAM])
        batches = [query_of(request)["clients"][0].split(",") for request in usage_requests(mock)]

    assert [len(batch) for batch in batches] == [250] * 8
    assert [key for batch in batches for key in batch] == keys


def test_given_a_second_page_of_usage_when_read_then_the_link_header_is_followed() -> None:
    usage = template("meraki", "usage_histories")
    next_url = f"{BASE}/networks/N_0/clients/usageHistories?perPage=1000&startingAfter=k74272e"
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(
            f"{BASE}/networks/N_0/clients/usageHistories",
            [{"json": usage[:1], "headers": {"Link": f"<{next_url}>; rel=next"}}, {"json": usage[1:]}],
        )
        output = read_streams(meraki_config(), [STREAM])
        first, second = usage_requests(mock)

    assert sorted({record["clientId"] for record in records(output, STREAM)}) == ["k74272e", "k9b1c00"]
    assert second.url == next_url


# ----- the 31 days Meraki keeps ----------------------------------------------------------------------


def test_given_a_start_date_beyond_31_days_when_read_then_t0_is_clamped_with_one_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)  # two networks: the clamp is warned about once, not per network
        output = read_streams(meraki_config(start_date="2026-08-01T00:00:00Z"), [STREAM])
        t0s = sorted({query_of(request)["t0"][0] for request in usage_requests(mock) + requests_to(mock, "/clients")})

    assert len(usage_requests(mock)) == 2
    assert t0s == ["2026-10-23T13:00:00Z"]  # 31 days back, with an hour's margin for the server's clock
    assert warnings(output) == [
        "meraki_client_usage_histories: Meraki keeps client usage for 31 days only; starting at 2026-10-23T13:00:00Z "
        "instead of the configured start_date 2026-08-01T00:00:00Z"
    ]


def test_given_a_start_date_within_31_days_when_read_then_nothing_is_clamped_or_warned() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        output = read_streams(meraki_config(start_date="2026-10-23T13:00:00Z"), [STREAM])
        request = only(usage_requests(mock))

    assert query_of(request)["t0"] == ["2026-10-23T13:00:00Z"]
    assert warnings(output) == []


# ----- state and lookback ----------------------------------------------------------------------------


def saved(ts: str, network: str = "N_0") -> dict:
    return {STREAM: {"states": [{"partition": {"networkId": network}, "cursor": {"ts": ts}}]}}


def test_given_a_sync_when_read_incrementally_then_the_state_holds_the_latest_ts_per_network() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(), {STREAM: SyncMode.incremental})

    assert final_state(output, STREAM) == {
        "states": [
            {"partition": {"networkId": "N_0"}, "cursor": {"ts": "2026-11-21T00:00:00.090210Z"}},
            {"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-21T00:00:00.090210Z"}},
        ]
    }


@pytest.mark.parametrize(
    "lookback_days, t0",
    [(None, "2026-11-19T00:00:00.090210Z"), (0, "2026-11-20T00:00:00.090210Z"), (3, "2026-11-17T00:00:00.090210Z")],
    ids=["default-1-day", "no-lookback", "3-days"],
)
def test_given_saved_state_when_read_incrementally_then_t0_is_the_saved_ts_minus_the_lookback_exactly(lookback_days: Any, t0: str) -> None:
    section = {} if lookback_days is None else {"lookback_days": lookback_days}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(**section), {STREAM: SyncMode.incremental}, saved("2026-11-20T00:00:00.090210Z"))
        request = only(usage_requests(mock))
        clients = only(requests_to(mock, "/clients"))

    assert query_of(request)["t0"] == [t0]
    assert query_of(clients)["t0"] == [t0], "the clients are listed over the same span"


def test_given_saved_state_and_a_later_start_date_when_read_incrementally_then_the_start_date_wins() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(start_date="2026-11-19T12:00:00Z", lookback_days=3), {STREAM: SyncMode.incremental}, saved("2026-11-20T00:00:00Z"))
        request = only(usage_requests(mock))

    assert query_of(request)["t0"] == ["2026-11-19T12:00:00Z"]


def test_given_saved_state_older_than_31_days_when_read_incrementally_then_t0_is_clamped() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        output = read_streams(meraki_config(start_date="2026-08-01T00:00:00Z"), {STREAM: SyncMode.incremental}, saved("2026-10-01T00:00:00Z"))
        request = only(usage_requests(mock))

    assert query_of(request)["t0"] == ["2026-10-23T13:00:00Z"]
    assert warnings(output) == [], "the configured start_date was not what got clamped"


def test_given_saved_state_of_another_network_when_read_incrementally_then_this_network_starts_at_the_start_date() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(), {STREAM: SyncMode.incremental}, saved("2026-11-22T00:00:00Z", network="N_9"))
        request = only(usage_requests(mock))

    assert query_of(request)["t0"] == ["2026-11-15T00:00:00Z"]


def test_given_saved_state_when_read_in_full_then_it_is_ignored() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(), {STREAM: SyncMode.full_refresh}, saved("2026-11-22T00:00:00Z"))
        request = only(usage_requests(mock))

    assert query_of(request)["t0"] == ["2026-11-15T00:00:00Z"]


def test_given_a_state_of_a_foreign_shape_when_read_then_it_is_ignored_with_a_warning() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        output = read_streams(meraki_config(), {STREAM: SyncMode.incremental}, {STREAM: {"ts": "yesterday"}})
        request = only(usage_requests(mock))

    assert len(records(output, STREAM)) == 3
    assert query_of(request)["t0"] == ["2026-11-15T00:00:00Z"]
    assert any("ignoring saved state of an unknown shape" in line for line in warnings(output))


# ----- networks that cannot be read ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/clients", "/clients/usageHistories"])
def test_given_a_network_deleted_after_it_was_listed_when_read_then_it_is_skipped_with_one_warning_naming_it(path: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/networks/N_0{path}", status_code=404, json={"errors": ["Network not found"]})
        output = read_streams(meraki_config(), ["meraki_network_clients", STREAM])

    assert {record["networkId"] for record in records(output, STREAM)} == {"N_1"}
    assert error_messages(output) == []
    assert warnings(output) == [
        f"meraki: skipping network N_0 of organization {HEAD_OFFICE}: it was deleted after it was listed (HTTP 404: Network not found)"
    ]


def test_given_a_404_saying_api_access_is_disabled_on_usage_when_read_then_the_organization_is_skipped() -> None:
    disabled = {"errors": ["API access is disabled for this organization. Enable it in Organization > Settings."]}
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        serve_usage(mock, disabled, status_code=404)
        output = read_streams(meraki_config(), [STREAM])

    assert {record["networkId"] for record in records(output, STREAM)} == {"N_1"}
    assert warnings(output) == [
        f"meraki: skipping organization {HEAD_OFFICE}: its API access is disabled (HTTP 404: {disabled['errors'][0]})"
    ]


# ----- wrong body shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ({"errors": []}, f"meraki: GET {BASE}/networks/N_0/clients/usageHistories answered an object, not a list of client usage histories"),
        (["k74272e"], "meraki: a client usage history is not an object"),
        ([{"clientId": "k74272e", "usageHistory": {"ts": "2026-11-20T00:00:00Z"}}], "meraki: the usageHistory of client k74272e is not a list"),
        ([{"clientId": "k74272e", "usageHistory": [["2026-11-20T00:00:00Z", 1, 2]]}], "meraki: a usageHistory point of client k74272e is not an object"),
    ],
    ids=["object-for-list", "client-not-object", "history-not-list", "point-not-object"],
)
def test_given_a_body_of_the_wrong_shape_when_read_then_the_stream_fails_with_one_clear_line(body: Any, message: str) -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        serve_usage(mock, body)
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == message
    assert "\n" not in error_messages(output)[0]


# ----- budgets ---------------------------------------------------------------------------------------


def test_given_network_scoped_requests_when_read_then_they_spend_their_organizations_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: Set[Tuple[str, Any]] = set()

    class SpyLayer(MovingWindowLayer):
        """Records (path, key) of every request the per-organization layer is asked about."""

        def __init__(self, name: str, key_of: Any, *args: Any, **kwargs: Any) -> None:
            def spying(request: requests.PreparedRequest) -> Any:
                key = key_of(request)
                if name.startswith("per-organization"):
                    seen.add((urlsplit(request.url).path, key))
                return key

            super().__init__(name, spying, *args, **kwargs)

    monkeypatch.setattr("source_usage.vendors.meraki.MovingWindowLayer", SpyLayer)
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        read_streams(meraki_config(), ["meraki_network_clients", STREAM, "meraki_organization_licenses"])

    assert seen == {
        ("/api/v1/organizations", None),
        (f"/api/v1/organizations/{HEAD_OFFICE}/networks", HEAD_OFFICE),
        (f"/api/v1/organizations/{BRANCHES}/networks", BRANCHES),
        (f"/api/v1/organizations/{HEAD_OFFICE}/licenses", HEAD_OFFICE),
        (f"/api/v1/organizations/{BRANCHES}/licenses", BRANCHES),
        ("/api/v1/networks/N_0/clients", HEAD_OFFICE),
        ("/api/v1/networks/N_1/clients", BRANCHES),
        ("/api/v1/networks/N_0/clients/usageHistories", HEAD_OFFICE),
        ("/api/v1/networks/N_1/clients/usageHistories", BRANCHES),
    }


# ----- the usage ledger --------------------------------------------------------------------------------


def test_given_client_usage_when_the_ledger_is_read_then_each_point_is_three_rows_in_bytes_of_1024_per_kilobyte() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(), [STREAM, "usage_ledger"])

    [point] = [r for r in records(output, STREAM) if r["networkId"] == "N_1" and r["clientId"] == "k74272e" and r["ts"].startswith("2026-11-20")]
    rows = [r for r in records(output, "usage_ledger") if r["subject_id"] == "N_1/k74272e" and r["period_start"] == point["ts"]]
    common = {
        "vendor": "meraki",
        "account_id": BRANCHES,
        "subject_type": "client",
        "subject_id": "N_1/k74272e",
        "unit": "bytes",
        "granularity": "day",
        "period_start": "2026-11-20T00:00:00.090210Z",
        "period_end": "2026-11-21T00:00:00.090210Z",
        "is_final": point["is_final"],
        "observed_at": point["observed_at"],
        "source_stream": STREAM,
    }
    assert rows == [
        {**common, "metric": "data_sent_bytes", "quantity": 56 * 1024},
        {**common, "metric": "data_received_bytes", "quantity": 383 * 1024},
        {**common, "metric": "data_total_bytes", "quantity": (56 + 383) * 1024},
    ]
    assert len(records(output, "usage_ledger")) == 3 * len(records(output, STREAM))
