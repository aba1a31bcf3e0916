"""meraki_organization_licenses: every license of every per-device organization, co-term ones skipped."""

from __future__ import annotations

import logging

import pytest
import requests_mock

from unit_tests.helpers import read_stream, template
from unit_tests.meraki_fixtures import BASE, meraki_streams, mock_dashboard

STREAM = "meraki_organization_licenses"


def test_given_per_device_licensing_when_read_then_every_field_is_kept_plus_the_organization() -> None:
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, coterm=())
        output = read_stream(meraki_streams()[STREAM])

    assert len(output.records) == 2
    assert {**template("meraki", "licenses")[0], "organizationId": "549236"} in output.records
    assert mock.request_history[-1].qs["perpage"] == ["1000"]


def test_given_a_co_term_organization_when_read_then_it_is_skipped_with_one_warning_and_the_others_sync(caplog: pytest.LogCaptureFixture) -> None:
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock_dashboard(mock, coterm=("771100",))
        output = read_stream(meraki_streams()[STREAM])

    assert {record["organizationId"] for record in output.records} == {"549236"}
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "771100 (Branches)" in warnings[0] and "co-termination" in warnings[0]


def test_given_licenses_on_two_pages_when_read_then_the_link_is_followed() -> None:
    licenses = template("meraki", "licenses")
    second = {**licenses[0], "id": "5678"}
    with requests_mock.Mocker() as mock:
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        next_url = f"{BASE}/organizations/549236/licenses?perPage=1000&startingAfter=1234"
        mock.get(f"{BASE}/organizations/549236/licenses", [{"json": licenses, "headers": {"Link": f"<{next_url}>; rel=next"}}, {"json": [second]}])
        output = read_stream(meraki_streams()[STREAM])

    assert [record["id"] for record in output.records] == ["1234", "5678"]


def test_given_a_next_link_that_repeats_when_read_then_paging_stops_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    licenses = template("meraki", "licenses")
    link = {"Link": f"<{BASE}/organizations/549236/licenses?perPage=1000&startingAfter=1234>; rel=next"}
    with requests_mock.Mocker() as mock, caplog.at_level(logging.WARNING):
        mock_dashboard(mock, organizations=template("meraki", "organizations")[:1])
        mock.get(
            f"{BASE}/organizations/549236/licenses",
            [{"json": licenses, "headers": link}] + [{"json": [{**licenses[0], "id": "5678"}], "headers": link}] * 5,
        )
        output = read_stream(meraki_streams()[STREAM])

    assert [record["id"] for record in output.records] == ["1234", "5678"]
    assert any("same next-page link" in record.getMessage() for record in caplog.records)
