"""meraki_network_clients: the clients seen in each network since the sync's start (within Meraki's 31 days),
whose keys the usage stream reuses."""

from __future__ import annotations

from typing import Any

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode

from unit_tests.helpers import error_messages, read_streams, records, template, warnings
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

STREAM = "meraki_network_clients"
pytestmark = pytest.mark.usefixtures("frozen")




def test_given_clients_when_listed_then_they_carry_their_network_and_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(), [STREAM])
        listing = requests_to(mock, "/clients")

    first, second = template("meraki", "clients")
    assert sorted(records(output, STREAM), key=lambda client: (client["networkId"], client["id"])) == [
        {**first, "networkId": "N_0", "organizationId": HEAD_OFFICE},
        {**second, "networkId": "N_0", "organizationId": HEAD_OFFICE},
        {**first, "networkId": "N_1", "organizationId": BRANCHES},
        {**second, "networkId": "N_1", "organizationId": BRANCHES},
    ]
    assert {(query_of(request)["perPage"][0], query_of(request)["t0"][0]) for request in listing} == {("5000", "2026-11-15T00:00:00Z")}


@pytest.mark.parametrize(
    "wire, emitted",
    [
        (1793527200, "2026-11-01T10:00:00Z"),
        ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),
        ("2026-11-01T11:00:00+01:00", "2026-11-01T10:00:00Z"),
        ("2026-11-01T10:00:00.000000Z", "2026-11-01T10:00:00Z"),
        (None, None),
    ],
    ids=["epoch-seconds", "iso-z", "iso-offset", "zero-fraction", "null"],
)
@pytest.mark.parametrize("field", ["firstSeen", "lastSeen"])
def test_given_first_and_last_seen_in_either_shape_when_listed_then_they_are_rfc3339_utc_with_a_z(field: str, wire: Any, emitted: Any) -> None:
    client = {**template("meraki", "clients")[0], field: wire}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/networks/N_0/clients", json=[client])
        [record] = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert record.get(field) == emitted  # the CDK's serializer leaves null fields out of a record's JSON


def test_given_a_first_seen_that_is_not_a_timestamp_when_listed_then_the_stream_fails_naming_field_and_value() -> None:
    client = {**template("meraki", "clients")[0], "firstSeen": "yesterday"}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/networks/N_0/clients", json=[client])
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == "meraki_network_clients: record field 'firstSeen' has value 'yesterday', which is not an ISO 8601 timestamp"


def test_given_a_start_date_beyond_31_days_when_listed_then_t0_is_clamped_with_one_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(start_date="2026-08-01T00:00:00Z"), [STREAM])
        t0s = [query_of(request)["t0"][0] for request in requests_to(mock, "/clients")]

    assert t0s == ["2026-10-23T13:00:00Z"] * 2
    assert warnings(output) == [
        "meraki_network_clients: Meraki keeps client usage for 31 days only; starting at 2026-10-23T13:00:00Z "
        "instead of the configured start_date 2026-08-01T00:00:00Z"
    ]


def test_given_clients_listed_by_this_stream_when_usage_is_read_next_then_the_clients_are_not_listed_again() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(), [STREAM, "meraki_client_usage_histories"])
        listing = only(requests_to(mock, "/clients"))
        usage = only(usage_requests(mock))

    assert query_of(listing)["t0"] == ["2026-11-15T00:00:00Z"]
    assert query_of(usage)["clients"] == ["k74272e,k9b1c00"]


def test_given_saved_usage_state_when_clients_and_usage_are_read_then_the_clients_listing_is_reused_for_the_later_t0() -> None:
    state = {"meraki_client_usage_histories": {"states": [{"partition": {"networkId": "N_0"}, "cursor": {"ts": "2026-11-21T00:00:00Z"}}]}}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        read_streams(meraki_config(), {STREAM: SyncMode.full_refresh, "meraki_client_usage_histories": SyncMode.incremental}, state)
        listing = only(requests_to(mock, "/clients"))
        usage = only(usage_requests(mock))

    assert query_of(listing)["t0"] == ["2026-11-15T00:00:00Z"]
    assert (query_of(usage)["t0"], query_of(usage)["clients"]) == (["2026-11-20T00:00:00Z"], ["k74272e,k9b1c00"])


# ----- networks that cannot be read ------------------------------------------------------------------


def test_given_a_network_deleted_after_it_was_listed_when_its_clients_are_listed_then_it_is_skipped_with_one_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/networks/N_1/clients", status_code=404, json={"errors": ["Network not found"]})
        output = read_streams(meraki_config(), [STREAM])

    assert {client["networkId"] for client in records(output, STREAM)} == {"N_0"}
    assert warnings(output) == [
        f"meraki: skipping network N_1 of organization {BRANCHES}: it was deleted after it was listed (HTTP 404: Network not found)"
    ]


def test_given_a_403_on_a_network_when_its_clients_are_listed_then_it_is_skipped_with_one_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/networks/N_1/clients", status_code=403, json={"errors": ["You don't have permission"]})
        output = read_streams(meraki_config(), [STREAM, "meraki_client_usage_histories"])

    assert {client["networkId"] for client in records(output, STREAM)} == {"N_0"}
    assert {usage["networkId"] for usage in records(output, "meraki_client_usage_histories")} == {"N_0"}
    assert warnings(output) == [
        f"meraki: skipping network N_1 of organization {BRANCHES}: the API key may not read it (HTTP 403: You don't have permission)"
    ]


def test_given_an_object_instead_of_a_list_of_clients_when_listed_then_the_stream_fails_with_one_clear_line() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/networks/N_0/clients", json={"clients": template("meraki", "clients")})
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"meraki: GET {BASE}/networks/N_0/clients answered an object, not a list of clients"
