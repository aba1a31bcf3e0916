"""The Meraki plugin: its config section, its check, and its connection (the Bearer key, kept on shard redirects
and next-page links to Meraki's own https hosts, refused anywhere else)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests_mock
from airbyte_cdk.models import Status

from source_usage.config import UsageConfig
from source_usage.framework.errors import ConfigError
from source_usage.source import SourceUsage
from unit_tests.helpers import error_messages, read_streams, records, template
from unit_tests.meraki_fixtures import (
    API_KEY,
    BASE,
    BEARER,
    BRANCHES,
    HEAD_OFFICE,
    SHARD_BASE,
    frozen,  # noqa: F401  (fixture)
    hosts_requested,
    meraki_config,
    mock_dashboard,
    network_of,
)

pytestmark = pytest.mark.usefixtures("frozen")
NETWORKS = f"{BASE}/organizations/{HEAD_OFFICE}/networks"
ON_SHARD = f"{SHARD_BASE}/organizations/{HEAD_OFFICE}/networks"


def check(config: Any) -> Any:
    return SourceUsage().check(logging.getLogger("airbyte"), config)


# ----- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, message",
    [
        ({"api_key": None}, "Invalid config: meraki.api_key must be of type string (got a value)"),
        ({"api_key": "   "}, "Invalid config: meraki.api_key is required and must not be empty"),
        ({"api_key": "short"}, "Invalid config: meraki.api_key is too short to be a real credential (fewer than 8 characters)"),
        ({"lookback_days": 31}, "Invalid config: meraki.lookback_days must be at most 30 (got 31)"),
        ({"base_url": "ftp://api.meraki.com"}, "Invalid config: meraki.base_url must be an http:// or https:// URL (got 'ftp://api.meraki.com')"),
    ],
    ids=["api-key-not-a-string", "api-key-blank", "api-key-short", "lookback-too-long", "base-url-not-http"],
)
def test_given_an_invalid_meraki_section_when_parsed_then_a_config_error_names_the_field(section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        UsageConfig.parse(meraki_config(**section))

    assert error.value.message == message


def test_given_a_regional_host_without_the_version_path_when_read_then_requests_go_to_its_api_v1() -> None:
    with requests_mock.Mocker() as mock:
        mock.get("https://api.meraki.ca/api/v1/organizations", json=template("meraki", "organizations"))
        output = read_streams(meraki_config(base_url="https://api.meraki.ca"), ["meraki_organizations"])
        [request] = mock.request_history

    assert len(records(output, "meraki_organizations")) == 2
    assert request.url == "https://api.meraki.ca/api/v1/organizations?perPage=9000"
    assert request.headers["Authorization"] == BEARER


# ----- check -----------------------------------------------------------------------------------------


def test_given_a_working_key_when_checked_then_organizations_and_one_organization_scoped_call_are_sent() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        status = check(meraki_config())
        sent = [request.url for request in mock.request_history]

    assert status.status == Status.SUCCEEDED
    assert sent == [f"{BASE}/organizations?perPage=9000", f"{NETWORKS}?perPage=100000"]


def test_given_a_shard_redirect_when_checked_then_it_is_followed_with_the_api_key() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(NETWORKS, status_code=302, headers={"Location": f"{ON_SHARD}?perPage=100000"})
        mock.get(ON_SHARD, json=[network_of(0, HEAD_OFFICE)])
        status = check(meraki_config())
        sent = [(request.url, request.headers.get("Authorization")) for request in mock.request_history]

    assert status.status == Status.SUCCEEDED
    assert sent == [
        (f"{BASE}/organizations?perPage=9000", BEARER),
        (f"{NETWORKS}?perPage=100000", BEARER),
        (f"{ON_SHARD}?perPage=100000", BEARER),
    ]


def test_given_a_redirect_to_a_foreign_host_when_checked_then_the_check_fails_naming_it() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(NETWORKS, status_code=302, headers={"Location": "https://evil.example.com/api/v1/x"})
        mock.get("https://evil.example.com/api/v1/x", json=[])
        status = check(meraki_config())

    assert status.status == Status.FAILED
    assert status.message == (
        f"meraki: GET {NETWORKS} was answered with an HTTP 302 redirect to https://evil.example.com, which is not this vendor's configured host: not followed"
    )
    assert "evil.example.com" not in hosts_requested(mock)


def test_given_the_first_organization_has_api_access_disabled_when_checked_then_the_scoped_call_goes_to_the_next() -> None:
    head_office, branches = template("meraki", "organizations")
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=[{**head_office, "api": {"enabled": False}}, branches])
        status = check(meraki_config())
        sent = [request.url for request in mock.request_history]

    assert status.status == Status.SUCCEEDED
    assert sent == [f"{BASE}/organizations?perPage=9000", f"{BASE}/organizations/{BRANCHES}/networks?perPage=100000"]


def test_given_configured_organizations_when_checked_then_the_scoped_call_goes_to_one_of_them() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        status = check(meraki_config(organization_ids=[BRANCHES]))
        sent = [request.url for request in mock.request_history]

    assert status.status == Status.SUCCEEDED
    assert sent == [f"{BASE}/organizations?perPage=9000", f"{BASE}/organizations/{BRANCHES}/networks?perPage=100000"]


def test_given_no_organization_when_checked_then_only_organizations_is_requested() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/organizations", json=[])
        status = check(meraki_config())

    assert status.status == Status.SUCCEEDED
    assert len(mock.request_history) == 1


@pytest.mark.parametrize(
    "path, status_code, body, message",
    [
        ("organizations", 401, {"errors": ["Invalid API key"]}, "meraki: the API key was rejected (HTTP 401)"),
        (
            f"organizations/{HEAD_OFFICE}/networks",
            404,
            {"errors": ["Resource not found"]},
            f"meraki: organization {HEAD_OFFICE} was not found or the API key cannot see it (HTTP 404)",
        ),
    ],
    ids=["rejected-key", "organization-not-found"],
)
def test_given_a_refusal_when_checked_then_the_check_fails_with_one_actionable_line(path: str, status_code: int, body: dict, message: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock)
        mock.get(f"{BASE}/{path}", status_code=status_code, json=body)
        status = check(meraki_config())

    assert (status.status, status.message) == (Status.FAILED, message)


# ----- shard redirects and next-page links -----------------------------------------------------------


@pytest.mark.parametrize("status_code", [302, 307, 308])
def test_given_a_redirect_to_a_meraki_shard_when_read_then_it_is_followed_and_the_api_key_arrives_there(status_code: int) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        mock.get(NETWORKS, status_code=status_code, headers={"Location": f"{ON_SHARD}?perPage=100000"})
        mock.get(ON_SHARD, json=[network_of(7, HEAD_OFFICE)])
        output = read_streams(meraki_config(), ["meraki_networks"])
        on_shard = [request for request in mock.request_history if request.netloc == "n149.meraki.com"]

    assert [network["id"] for network in records(output, "meraki_networks")] == ["N_7"]
    assert [(request.url, request.headers.get("Authorization")) for request in on_shard] == [(f"{ON_SHARD}?perPage=100000", BEARER)]


def test_given_a_next_page_link_on_the_shard_when_read_then_it_is_followed_with_the_api_key() -> None:
    next_url = f"{ON_SHARD}?perPage=100000&startingAfter=N_7"
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        mock.get(NETWORKS, status_code=307, headers={"Location": f"{ON_SHARD}?perPage=100000"})
        mock.get(
            ON_SHARD,
            [{"json": [network_of(7, HEAD_OFFICE)], "headers": {"Link": f"<{next_url}>; rel=next"}}, {"json": [network_of(8, HEAD_OFFICE)]}],
        )
        output = read_streams(meraki_config(), ["meraki_networks"])
        last = mock.request_history[-1]

    assert [network["id"] for network in records(output, "meraki_networks")] == ["N_7", "N_8"]
    assert (last.url, last.headers.get("Authorization")) == (next_url, BEARER)


@pytest.mark.parametrize(
    "status_code, location, origin",
    [
        (302, "https://evil.example.com/api/v1/organizations/549236/networks", "https://evil.example.com"),
        (307, "http://n149.meraki.com/api/v1/organizations/549236/networks", "http://n149.meraki.com"),
        (308, "https://n149.meraki.com:8443/api/v1/organizations/549236/networks", "https://n149.meraki.com:8443"),
        (302, "https://meraki.com.evil.example/api/v1/organizations/549236/networks", "https://meraki.com.evil.example"),
        (307, "https://evilmeraki.com/api/v1/organizations/549236/networks", "https://evilmeraki.com"),
        (308, "https://n149.meraki.ca/api/v1/organizations/549236/networks", "https://n149.meraki.ca"),
        (302, "http://n149.meraki.com:443/api/v1/organizations/549236/networks", "http://n149.meraki.com:443"),
    ],
    ids=["other-domain", "plain-http", "other-port", "lookalike-suffix", "lookalike-name", "other-region", "plain-http-on-443"],
)
def test_given_a_redirect_off_merakis_https_hosts_when_read_then_it_is_refused_before_any_request_reaches_it(
    status_code: int, location: str, origin: str
) -> None:
    foreign = location.split("/api/")[0]
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        mock.get(NETWORKS, status_code=status_code, headers={"Location": location})
        mock.get(location, json=[network_of(7, HEAD_OFFICE)])
        output = read_streams(meraki_config(), ["meraki_networks"], expect_failure=True)
        reached = [request.url for request in mock.request_history if request.url.startswith(foreign)]

    assert reached == []
    assert records(output, "meraki_networks") == []
    message = error_messages(output)[0]
    assert message == (
        f"meraki: GET {NETWORKS} was answered with an HTTP {status_code} redirect to {origin}, which is not this vendor's configured host: not followed"
    )
    assert "\n" not in message and API_KEY not in message


def test_given_a_next_page_link_to_a_foreign_host_when_read_then_it_is_refused_before_any_request_reaches_it() -> None:
    foreign = "https://evil.example.com/api/v1/organizations/549236/networks?startingAfter=N_7"
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        mock.get(NETWORKS, json=[network_of(7, HEAD_OFFICE)], headers={"Link": f"<{foreign}>; rel=next"})
        mock.get(foreign, json=[])
        output = read_streams(meraki_config(), ["meraki_networks"], expect_failure=True)

    assert "evil.example.com" not in hosts_requested(mock)
    assert error_messages(output)[0] == (
        f"meraki: GET {NETWORKS} sent a next-page link to https://evil.example.com, which is not this vendor's configured host: not followed"
    )
