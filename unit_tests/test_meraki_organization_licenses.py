"""meraki_organization_licenses: every license of every per-device organization; co-term organizations are skipped."""

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
    one_organization,
    mock_dashboard,
    query_of,
    requests_to,
)

STREAM = "meraki_organization_licenses"
pytestmark = pytest.mark.usefixtures("frozen")




def test_given_per_device_licensing_when_read_then_every_field_is_kept_plus_the_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        output = read_streams(meraki_config(), [STREAM])
        requests = requests_to(mock, "/licenses")

    license_ = template("meraki", "licenses")[0]
    assert sorted(records(output, STREAM), key=lambda record: record["organizationId"]) == [
        {**license_, "organizationId": HEAD_OFFICE},
        {**license_, "organizationId": BRANCHES},
    ]
    assert {query_of(request)["perPage"][0] for request in requests} == {"1000"}


@pytest.mark.parametrize(
    "field, wire, emitted",
    [
        ("claimDate", "2019-08-29T12:40:10.000Z", "2019-08-29T12:40:10Z"),
        ("claimDate", "2019-08-29T14:40:10+02:00", "2019-08-29T12:40:10Z"),
        ("activationDate", "2019-09-01T15:01:46", "2019-09-01T15:01:46Z"),
        ("activationDate", None, None),
        ("expirationDate", 1604070106, "2020-10-30T15:01:46Z"),
        ("expirationDate", "2020-10-30T15:01:46.5Z", "2020-10-30T15:01:46.500000Z"),
    ],
    ids=["zero-fraction", "offset", "no-offset", "null-while-unused", "epoch-seconds", "fraction"],
)
def test_given_a_license_date_when_read_then_it_is_rfc3339_utc_with_a_z(field: str, wire: Any, emitted: Any) -> None:
    license_ = {**template("meraki", "licenses")[0], field: wire}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/licenses", json=[license_])
        [record] = records(read_streams(meraki_config(), [STREAM]), STREAM)

    assert record.get(field) == emitted  # the CDK's serializer leaves null fields out of a record's JSON


def test_given_a_license_date_that_is_not_a_timestamp_when_read_then_the_stream_fails_naming_it() -> None:
    license_ = {**template("meraki", "licenses")[0], "claimDate": "soon"}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/licenses", json=[license_])
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == "meraki_organization_licenses: record field 'claimDate' has value 'soon', which is not an ISO 8601 timestamp"


# ----- organizations whose licenses cannot be listed -------------------------------------------------


@pytest.mark.parametrize(
    "wording",
    ["This organization uses co-term licensing", "Licenses of Coterm organizations cannot be listed"],
    ids=["co-term", "coterm"],
)
def test_given_another_wording_of_co_termination_when_read_then_the_organization_is_skipped_with_a_warning(wording: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        mock.get(f"{BASE}/organizations/{BRANCHES}/licenses", status_code=400, json={"errors": [wording]})
        output = read_streams(meraki_config(), [STREAM])

    assert {record["organizationId"] for record in records(output, STREAM)} == {HEAD_OFFICE}
    assert error_messages(output) == []
    assert [line.split("(HTTP 400: ")[1] for line in warnings(output)] == [f"{wording})"]


def test_given_a_co_term_organization_when_read_then_it_is_skipped_with_one_warning_and_the_others_sync() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=(BRANCHES,))
        output = read_streams(meraki_config(), [STREAM])

    assert {record["organizationId"] for record in records(output, STREAM)} == {HEAD_OFFICE}
    assert error_messages(output) == []
    assert warnings(output) == [
        f"meraki_organization_licenses: skipping organization {BRANCHES} (Branches): its licenses cannot be listed per device, "
        f"which means co-termination licensing (HTTP 400: Organization with ID {BRANCHES} does not support per-device licensing)"
    ]


def test_given_another_400_when_read_then_only_the_licenses_stream_fails_with_merakis_message() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        mock.get(f"{BASE}/organizations/{BRANCHES}/licenses", status_code=400, json={"errors": ["Invalid perPage", "must be between 3 and 1000"]})
        output = read_streams(meraki_config(), ["meraki_organizations", STREAM], expect_failure=True)

    assert [record["id"] for record in records(output, "meraki_organizations")] == [HEAD_OFFICE, BRANCHES]
    assert error_messages(output)[0] == (
        f"meraki: GET {BASE}/organizations/{BRANCHES}/licenses was refused with HTTP 400: Invalid perPage; must be between 3 and 1000"
    )
    assert error_messages(output)[1:] == ["The sync finished, but these streams failed (see their errors above): meraki_organization_licenses"]


def test_given_a_403_when_read_then_that_organization_is_skipped_with_a_warning_naming_the_missing_permission() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        mock.get(f"{BASE}/organizations/{BRANCHES}/licenses", status_code=403, json={"errors": ["You don't have permission"]})
        output = read_streams(meraki_config(), [STREAM])

    assert {record["organizationId"] for record in records(output, STREAM)} == {HEAD_OFFICE}
    assert error_messages(output) == []
    assert warnings(output) == [
        f"meraki: skipping organization {BRANCHES} (Branches): the API key lacks read access to it (an organization-level "
        f"administrator's key is needed; HTTP 403: You don't have permission)"
    ]


@pytest.mark.parametrize(
    "wording",
    [
        "API access is disabled for this organization.",
        "To make requests you must first enable API access via Organization > Settings > Dashboard API access.",
    ],
    ids=["current-wording", "older-wording"],
)
def test_given_a_404_saying_api_access_is_disabled_when_read_then_that_organization_is_skipped(wording: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        mock.get(f"{BASE}/organizations/{BRANCHES}/licenses", status_code=404, json={"errors": [wording]})
        output = read_streams(meraki_config(), [STREAM])

    assert {record["organizationId"] for record in records(output, STREAM)} == {HEAD_OFFICE}
    assert warnings(output) == [f"meraki: skipping organization {BRANCHES} (Branches): its API access is disabled (HTTP 404: {wording})"]


def test_given_a_404_that_does_not_mention_api_access_when_read_then_the_stream_fails_naming_the_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        mock.get(f"{BASE}/organizations/{BRANCHES}/licenses", status_code=404, json={"errors": ["Resource not found"]})
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"meraki: organization {BRANCHES} was not found or the API key cannot see it (HTTP 404)"


# ----- pages and shapes ------------------------------------------------------------------------------


def test_given_licenses_on_two_pages_when_read_then_the_link_is_followed() -> None:
    licenses = template("meraki", "licenses")
    next_url = f"{BASE}/organizations/{HEAD_OFFICE}/licenses?perPage=1000&startingAfter=1234"
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(
            f"{BASE}/organizations/{HEAD_OFFICE}/licenses",
            [{"json": licenses, "headers": {"Link": f"<{next_url}>; rel=next"}}, {"json": [{**licenses[0], "id": "5678"}]}],
        )
        output = read_streams(meraki_config(), [STREAM])
        second = requests_to(mock, "/licenses")[1]

    assert [record["id"] for record in records(output, STREAM)] == ["1234", "5678"]
    assert second.url == next_url


def test_given_a_next_link_that_repeats_when_read_then_paging_stops_with_a_warning() -> None:
    licenses = template("meraki", "licenses")
    link = {"Link": f"<{BASE}/organizations/{HEAD_OFFICE}/licenses?perPage=1000&startingAfter=1234>; rel=next"}
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(
            f"{BASE}/organizations/{HEAD_OFFICE}/licenses",
            [{"json": licenses, "headers": link}] + [{"json": [{**licenses[0], "id": "5678"}], "headers": link}] * 5,
        )
        output = read_streams(meraki_config(), [STREAM])

    assert [record["id"] for record in records(output, STREAM)] == ["1234", "5678"]
    assert len(requests_to(mock, "/licenses")) == 2
    assert warnings(output) == [f"meraki: {BASE}/organizations/{HEAD_OFFICE}/licenses sent the same next-page link twice; stopping there"]


def test_given_an_object_instead_of_a_list_of_licenses_when_read_then_the_stream_fails_with_one_clear_line() -> None:
    with requests_mock.Mocker() as mock:
        one_organization(mock)
        mock.get(f"{BASE}/organizations/{HEAD_OFFICE}/licenses", json={"licenses": template("meraki", "licenses")})
        output = read_streams(meraki_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"meraki: GET {BASE}/organizations/{HEAD_OFFICE}/licenses answered an object, not a list of licenses"
