"""meraki_organizations: the organizations the key sees (or those configured), listed once per sync and shared."""

from __future__ import annotations

from typing import Any

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
    path_of,
    query_of,
)

STREAM = "meraki_organizations"
EVERY_STREAM = ["meraki_organizations", "meraki_networks", "meraki_network_clients", "meraki_client_usage_histories", "meraki_organization_licenses"]
pytestmark = pytest.mark.usefixtures("frozen")



def with_api(organization: dict, enabled: bool) -> dict:
    return {**organization, "api": {"enabled": enabled}}


def test_given_organizations_when_read_then_each_is_emitted_as_the_api_sent_it() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(), [STREAM])
        [request] = mock.request_history

    assert records(output, STREAM) == template("meraki", "organizations")
    assert path_of(request) == "/api/v1/organizations"
    assert query_of(request) == {"perPage": ["9000"]}


def test_given_configured_organizations_when_read_then_only_those_are_synced() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(organization_ids=[BRANCHES]), [STREAM, "meraki_networks"])
        paths = [path_of(request) for request in mock.request_history]

    assert [organization["id"] for organization in records(output, STREAM)] == [BRANCHES]
    assert {network["organizationId"] for network in records(output, "meraki_networks")} == {BRANCHES}
    assert f"/api/v1/organizations/{HEAD_OFFICE}/networks" not in paths


def test_given_an_organization_the_key_cannot_see_when_read_then_a_config_error_names_it() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        output = read_streams(meraki_config(organization_ids=["999999", HEAD_OFFICE, "888888"]), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == "meraki: organization 888888, 999999 was not found or the API key cannot see it"
    assert output.errors[0].trace.error.failure_type.value == "config_error"


def test_given_every_meraki_stream_when_read_then_no_listing_is_requested_twice() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        read_streams(meraki_config(), EVERY_STREAM)
        paths = [path_of(request) for request in mock.request_history]

    assert sorted(paths) == sorted(
        [
            "/api/v1/organizations",
            f"/api/v1/organizations/{HEAD_OFFICE}/networks",
            f"/api/v1/organizations/{BRANCHES}/networks",
            "/api/v1/networks/N_0/clients",
            "/api/v1/networks/N_1/clients",
            "/api/v1/networks/N_0/clients/usageHistories",
            "/api/v1/networks/N_1/clients/usageHistories",
            f"/api/v1/organizations/{HEAD_OFFICE}/licenses",
            f"/api/v1/organizations/{BRANCHES}/licenses",
        ]
    )


# ----- organizations whose API access is disabled ----------------------------------------------------


def test_given_an_organization_with_api_access_disabled_when_every_stream_is_read_then_it_is_skipped_up_front_with_one_warning() -> None:
    head_office, branches = template("meraki", "organizations")
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=[head_office, with_api(branches, False)], coterm=())
        output = read_streams(meraki_config(), EVERY_STREAM)
        paths = [path_of(request) for request in mock.request_history]

    assert [organization["id"] for organization in records(output, STREAM)] == [HEAD_OFFICE]
    assert {record["organizationId"] for record in records(output, "meraki_client_usage_histories")} == {HEAD_OFFICE}
    assert not [path for path in paths if BRANCHES in path or path.startswith("/api/v1/networks/N_1")]
    assert error_messages(output) == []
    assert warnings(output) == [
        f"meraki: skipping organization {BRANCHES} (Branches): its API access is disabled (Organization > Settings > Dashboard API access)"
    ]


def test_given_two_organizations_with_api_access_disabled_when_read_then_each_is_named_in_one_warning() -> None:
    head_office, branches = template("meraki", "organizations")
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=[with_api(head_office, False), with_api(branches, False)])
        output = read_streams(meraki_config(), EVERY_STREAM)

    assert records(output, STREAM) == []
    assert len(mock.request_history) == 1
    assert warnings(output) == [
        f"meraki: skipping organization {HEAD_OFFICE} (Head office): its API access is disabled (Organization > Settings > Dashboard API access)",
        f"meraki: skipping organization {BRANCHES} (Branches): its API access is disabled (Organization > Settings > Dashboard API access)",
    ]


@pytest.mark.parametrize("api", [{"enabled": True}, None, {}], ids=["enabled", "no-api-object", "no-enabled-flag"])
def test_given_an_organization_not_marked_disabled_when_read_then_it_is_synced(api: Any) -> None:
    organization = {**template("meraki", "organizations")[0], "api": api}
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=[organization])
        output = read_streams(meraki_config(), [STREAM])

    assert [record["id"] for record in records(output, STREAM)] == [HEAD_OFFICE]
    assert warnings(output) == []


# ----- failures --------------------------------------------------------------------------------------


def test_given_an_object_instead_of_a_list_of_organizations_when_read_then_the_stream_fails_with_one_clear_line() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/organizations", json={"organizations": template("meraki", "organizations")})
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"meraki: GET {BASE}/organizations answered an object, not a list of organizations"


def test_given_a_rejected_api_key_when_read_then_every_meraki_stream_fails_with_the_same_line_after_one_request() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/organizations", status_code=401, json={"errors": ["Invalid API key"]})
        output = read_streams(meraki_config(), [STREAM, "meraki_networks"], expect_failure=True)

    assert error_messages(output)[:2] == ["meraki: the API key was rejected (HTTP 401)"] * 2
    assert len(mock.request_history) == 1
