"""The Meraki listings: organizations, networks and clients, each requested once per sync."""

from __future__ import annotations

import pytest
import requests_mock
from airbyte_cdk.models import FailureType

from source_usage.framework.errors import UsageError
from unit_tests.helpers import read_stream, template
from unit_tests.meraki_fixtures import BASE, meraki_config, meraki_streams, mock_dashboard


def test_given_every_meraki_stream_when_read_in_order_then_no_listing_is_requested_twice() -> None:
    streams = meraki_streams()
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        for name in streams:
            read_stream(streams[name])
        paths = [request.path for request in mock.request_history]

    assert paths.count("/api/v1/organizations") == 1
    assert paths.count("/api/v1/organizations/549236/networks") == 1
    assert paths.count("/api/v1/networks/n_0/clients") == 1
    assert paths.count("/api/v1/networks/n_0/clients/usagehistories") == 1


def test_given_configured_organizations_when_read_then_only_those_are_synced() -> None:
    streams = meraki_streams(meraki_config(organization_ids=("771100",)))
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        organizations = read_stream(streams["meraki_organizations"]).records
        networks = read_stream(streams["meraki_networks"]).records

    assert [organization["id"] for organization in organizations] == ["771100"]
    assert {network["organizationId"] for network in networks} == {"771100"}


def test_given_an_organization_the_key_cannot_see_when_read_then_it_says_so() -> None:
    streams = meraki_streams(meraki_config(organization_ids=("999999",)))
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        with pytest.raises(UsageError) as failure:
            read_stream(streams["meraki_organizations"])

    assert failure.value.failure_type == FailureType.config_error
    assert str(failure.value) == "meraki: organization 999999 was not found or the API key cannot see it"


def test_given_a_404_on_an_organizations_networks_when_read_then_it_names_the_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/organizations/549236/networks", status_code=404, json={"errors": ["Resource not found"]})
        with pytest.raises(UsageError) as failure:
            read_stream(meraki_streams()["meraki_networks"])

    assert str(failure.value) == "meraki: organization 549236 was not found or the API key cannot see it (HTTP 404)"


def test_given_configured_networks_when_read_then_other_networks_are_left_out() -> None:
    streams = meraki_streams(meraki_config(network_ids=("N_1",)))
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        clients = read_stream(streams["meraki_network_clients"]).records

    assert {client["networkId"] for client in clients} == {"N_1"}


def test_given_clients_when_listed_then_they_carry_their_network_and_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        clients = read_stream(meraki_streams()["meraki_network_clients"]).records
        query = mock.request_history[-1].qs

    assert clients[0] == {**template("meraki", "clients")[0], "networkId": "N_0", "organizationId": "549236"}
    assert query["perpage"] == ["5000"] and "t0" in query
