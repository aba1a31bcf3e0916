"""meraki_networks: every network of the synced organizations, listed once per organization; shards split the
networks (and organizations) the usage streams read, and every shard reads the listings."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import requests_mock

from unit_tests.helpers import error_messages, read_streams, records, template, warnings
from unit_tests.meraki_fixtures import (
    BASE,
    BRANCHES,
    HEAD_OFFICE,
    frozen,  # noqa: F401  (fixture)
    meraki_config,
    mock_dashboard,
    network_of,
    path_of,
    query_of,
    requests_to,
)

STREAM = "meraki_networks"
pytestmark = pytest.mark.usefixtures("frozen")


def without_nulls(record: dict) -> dict:
    """A record as it arrives: the CDK's serializer leaves null fields out of a record's JSON."""
    return {key: value for key, value in record.items() if value is not None}



def test_given_networks_when_read_then_each_is_emitted_with_its_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(), [STREAM])
        listing = requests_to(mock, "/networks")

    assert sorted(records(output, STREAM), key=lambda network: network["id"]) == [
        without_nulls(network_of(0, HEAD_OFFICE)),
        without_nulls(network_of(1, BRANCHES)),
    ]
    assert {query_of(request)["perPage"][0] for request in listing} == {"100000"}


def test_given_a_network_listed_without_its_organization_when_read_then_the_organization_is_added() -> None:
    network = {key: value for key, value in network_of(0, HEAD_OFFICE).items() if key != "organizationId"}
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/networks", json=[network])
        [record] = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert record == without_nulls({**network, "organizationId": HEAD_OFFICE})


def test_given_configured_networks_when_read_then_other_networks_are_left_out_of_every_stream() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, networks_per_organization=2)  # N_0, N_1 in the head office; N_2, N_3 in branches
        output = read_streams(meraki_config(network_ids=["N_1", "N_2"]), [STREAM, "meraki_network_clients", "meraki_client_usage_histories"])
        network_paths = {path_of(request).split("/")[4] for request in mock.request_history if path_of(request).startswith("/api/v1/networks/")}

    assert sorted(network["id"] for network in records(output, STREAM)) == ["N_1", "N_2"]
    assert {client["networkId"] for client in records(output, "meraki_network_clients")} == {"N_1", "N_2"}
    assert {usage["networkId"] for usage in records(output, "meraki_client_usage_histories")} == {"N_1", "N_2"}
    assert network_paths == {"N_1", "N_2"}


# ----- organizations whose networks cannot be listed -------------------------------------------------


@pytest.mark.parametrize(
    "wording",
    [
        "API access is disabled for this organization. Enable it in Organization > Settings.",
        "To make requests you must first enable API access via Organization > Settings > Dashboard API access.",
    ],
    ids=["current-wording", "older-wording"],
)
def test_given_a_404_saying_api_access_is_disabled_when_read_then_the_organization_is_skipped_with_one_warning(wording: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/networks", status_code=404, json={"errors": [wording]})
        output = read_streams(meraki_config(), [STREAM, "meraki_network_clients", "meraki_client_usage_histories"])

    assert [network["id"] for network in records(output, STREAM)] == ["N_1"]
    assert {usage["networkId"] for usage in records(output, "meraki_client_usage_histories")} == {"N_1"}
    assert error_messages(output) == []
    assert warnings(output) == [f"meraki: skipping organization {HEAD_OFFICE}: its API access is disabled (HTTP 404: {wording})"]


@pytest.mark.parametrize("wording", ["Resource not found", "This organization was disabled by its administrator"])
def test_given_a_404_that_does_not_mention_api_access_when_read_then_the_stream_fails_naming_the_organization(wording: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/networks", status_code=404, json={"errors": [wording]})
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"meraki: organization {HEAD_OFFICE} was not found or the API key cannot see it (HTTP 404)"
    assert output.errors[0].trace.error.failure_type.value == "config_error"


def test_given_a_403_when_read_then_the_organization_is_skipped_with_a_warning_naming_the_missing_permission() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/organizations/{BRANCHES}/networks", status_code=403, json={"errors": ["You don't have permission"]})
        output = read_streams(meraki_config(), [STREAM])

    assert [network["id"] for network in records(output, STREAM)] == ["N_0"]
    assert warnings(output) == [
        f"meraki: skipping organization {BRANCHES}: the API key lacks read access to it (an organization-level administrator's "
        f"key is needed; HTTP 403: You don't have permission)"
    ]


def test_given_an_object_instead_of_a_list_of_networks_when_read_then_the_stream_fails_with_one_clear_line() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/networks", json={"id": "N_0"})
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"meraki: GET {BASE}/organizations/{HEAD_OFFICE}/networks answered an object, not a list of networks"


# ----- shards ----------------------------------------------------------------------------------------


SHARD_STREAMS = [STREAM, "meraki_organizations", "meraki_network_clients", "meraki_client_usage_histories", "meraki_organization_licenses"]


def read_shard(index: int, count: int) -> Dict[str, Any]:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, networks_per_organization=6, coterm=())  # N_0..N_5 in the head office, N_6..N_11 in branches
        output = read_streams(meraki_config(shard={"index": index, "count": count}), SHARD_STREAMS)
        paths = [path_of(request) for request in mock.request_history]
    return {
        "organizations": [organization["id"] for organization in records(output, "meraki_organizations")],
        "networks": sorted(network["id"] for network in records(output, STREAM)),
        "clients": {client["networkId"] for client in records(output, "meraki_network_clients")},
        "usage": {usage["networkId"] for usage in records(output, "meraki_client_usage_histories")},
        "licenses": {license_["organizationId"] for license_ in records(output, "meraki_organization_licenses")},
        "listings": sorted(path for path in paths if path.endswith("/organizations") or path.endswith("/networks")),
    }


def test_given_three_shards_when_each_reads_then_the_networks_are_split_disjointly_and_every_shard_reads_the_listings() -> None:
    shards = [read_shard(index, 3) for index in range(3)]
    every_network = {f"N_{index}" for index in range(12)}

    for shard in shards:
        assert shard["organizations"] == [HEAD_OFFICE, BRANCHES]
        assert shard["networks"] == sorted(every_network)
        assert shard["listings"] == [
            "/api/v1/organizations",
            f"/api/v1/organizations/{HEAD_OFFICE}/networks",
            f"/api/v1/organizations/{BRANCHES}/networks",
        ]
        assert shard["clients"] == shard["usage"], "a shard reads the usage of the networks whose clients it lists"
    owned = [shard["usage"] for shard in shards]
    assert set().union(*owned) == every_network
    assert sum(len(networks) for networks in owned) == 12, f"shards overlap: {owned}"
    assert sum(1 for networks in owned if networks) >= 2, f"one shard read everything: {owned}"
    licensed = [shard["licenses"] for shard in shards]
    assert set().union(*licensed) == {HEAD_OFFICE, BRANCHES}
    assert sum(len(organizations) for organizations in licensed) == 2, f"shards overlap: {licensed}"


def test_given_one_shard_of_one_when_read_then_it_reads_everything() -> None:
    shard = read_shard(0, 1)

    assert shard["usage"] == {f"N_{index}" for index in range(12)}
    assert shard["licenses"] == {HEAD_OFFICE, BRANCHES}
