"""Retries: transient faults are retried a bounded number of times, 429s wait as the vendor says."""

from __future__ import annotations

from typing import List

import pytest
import requests
import requests_mock
from airbyte_cdk.models import FailureType

from source_usage.framework.errors import UsageError
from source_usage.framework.vendor import read_environment_once
from unit_tests.helpers import read_stream, template
from unit_tests.meraki_fixtures import BASE, meraki_streams

ORGS = f"{BASE}/organizations"


def read_organizations() -> list:
    return read_stream(meraki_streams()["meraki_organizations"]).records


def test_given_a_502_html_page_then_a_good_answer_when_read_then_it_retries_and_succeeds(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, [{"status_code": 502, "text": "<html>Bad Gateway</html>"}, {"json": template("meraki", "organizations")}])
        assert len(read_organizations()) == 2
    assert len(waits) == 1


def test_given_retries_when_waiting_then_backoff_grows_exponentially_with_jitter(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, [{"status_code": 503, "json": {}}] * 4 + [{"json": []}])
        read_organizations()
    assert len(waits) == 4
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(30.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling


def test_given_a_429_with_retry_after_when_read_then_it_waits_exactly_that_long(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            ORGS,
            [
                {"status_code": 429, "json": {"errors": ["API rate limit exceeded for organization"]}, "headers": {"Retry-After": "2"}},
                {"json": []},
            ],
        )
        read_organizations()
    assert waits == [2.0]


def test_given_a_429_storm_longer_than_the_error_budget_when_read_then_it_is_ridden_out(waits: List[float]) -> None:
    storm = [{"status_code": 429, "json": {}, "headers": {"Retry-After": "1"}}] * 20
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, storm + [{"json": template("meraki", "organizations")}])
        assert len(read_organizations()) == 2
    assert waits == [1.0] * 20


def test_given_persistent_5xx_when_retries_are_exhausted_then_the_error_names_vendor_endpoint_and_status(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, status_code=504, json={})
        with pytest.raises(UsageError) as failure:
            read_organizations()
    assert failure.value.failure_type == FailureType.transient_error
    assert str(failure.value) == f"meraki: GET {ORGS} failed after 7 attempts (last: HTTP 504)"
    assert len(waits) == 6


@pytest.mark.parametrize(
    "fault",
    [requests.exceptions.ConnectionError("reset"), requests.exceptions.ReadTimeout("slow"), requests.exceptions.ChunkedEncodingError("cut")],
)
def test_given_a_network_fault_when_read_then_it_is_retried(fault: Exception, waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, [{"exc": fault}, {"json": template("meraki", "organizations")}])
        assert len(read_organizations()) == 2
    assert len(waits) == 1


def test_given_a_body_that_is_not_json_when_read_then_it_is_retried(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, [{"text": '[{"id": "54'}, {"json": template("meraki", "organizations")}])
        assert len(read_organizations()) == 2
    assert len(waits) == 1


def test_given_a_rejected_api_key_when_read_then_it_fails_at_once_with_a_config_error(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, status_code=401, json={"errors": ["Invalid API key"]})
        with pytest.raises(UsageError) as failure:
            read_organizations()
    assert failure.value.failure_type == FailureType.config_error
    assert str(failure.value) == "meraki: the API key was rejected (HTTP 401)"
    assert waits == []


def test_given_every_request_when_sent_then_it_has_a_timeout() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ORGS, json=[])
        read_organizations()
        assert mock.last_request.timeout == (10.0, 60.0)


# ----- the environment: read once per vendor session ---------------------------------------------------


def test_given_proxy_and_ca_bundle_variables_when_a_vendor_session_is_made_then_it_uses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corporate-ca.pem")
    session = requests.Session()

    read_environment_once(session, "https://api.meraki.com/api/v1")

    assert session.proxies["https"] == "http://proxy.example:3128"
    assert session.verify == "/etc/corporate-ca.pem"
    assert session.trust_env is False  # requests no longer re-reads the environment on every request


def test_given_the_vendor_host_in_no_proxy_when_a_vendor_session_is_made_then_it_goes_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()

    read_environment_once(session, "http://127.0.0.1:8080/meraki/api/v1")

    assert not session.proxies
    assert session.verify is True
