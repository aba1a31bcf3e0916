"""The Twilio plugin: its config section (Auth Token or API key, never both), Basic authentication with every
form of the secret masked, Twilio's error bodies, rate limits, and its check."""

from __future__ import annotations

import logging
from typing import Any, List

import pytest
import requests_mock
from airbyte_cdk.models import Status
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_usage.config import UsageConfig
from source_usage.framework.errors import ConfigError
from source_usage.source import SourceUsage
from unit_tests.helpers import error_messages, read_streams, records, template
from unit_tests.twilio_fixtures import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    STREAM,
    USAGE_URL,
    api_key_config,
    day,
    frozen,  # noqa: F401  (fixture)
    twilio_config,
    usage_page,
    window_of,
)

pytestmark = pytest.mark.usefixtures("frozen")
AUTH_TOKEN_BASIC = "QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjpmMDBkZmVlZGYwMGRmZWVkZjAwZGZlZWRmMDBkZmVlZA=="  # AC...:token
API_KEY_BASIC = "U0swMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjpzM2NyM3RLZXlWYWx1ZVRoYXRNdXN0TmV2ZXJMZWFrMDA="  # SK...:secret
CONFIGS = {"auth-token": twilio_config, "api-key": api_key_config}


def check(config: Any) -> Any:
    return SourceUsage().check(logging.getLogger("airbyte"), config)


def everything_written(output: Any) -> List[str]:
    """Every log line and error message of a read, as the connector would print them."""
    return [message.log.message for message in output.logs] + [message.trace.error.message for message in output.errors]


# ----- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, message",
    [
        (
            {"api_key_sid": API_KEY_SID, "api_key_secret": API_KEY_SECRET},
            "Invalid config: twilio takes either auth_token or api_key_sid + api_key_secret, not both",
        ),
        ({"api_key_sid": API_KEY_SID}, "Invalid config: twilio takes either auth_token or api_key_sid + api_key_secret, not both"),
        ({"auth_token": None}, "Invalid config: twilio.auth_token is required (or api_key_sid + api_key_secret)"),
        ({"auth_token": None, "api_key_sid": API_KEY_SID}, "Invalid config: twilio.api_key_secret is required and must not be empty"),
        ({"auth_token": None, "api_key_secret": API_KEY_SECRET}, "Invalid config: twilio.api_key_sid is required and must not be empty"),
        ({"account_sid": None}, "Invalid config: twilio.account_sid is required"),
        ({"granularity": "week"}, "Invalid config: twilio.granularity must be one of 'hour', 'day' (got 'week')"),
        ({"lookback_hours": -1}, "Invalid config: twilio.lookback_hours must be at least 0 (got -1)"),
    ],
    ids=["token-and-key", "token-and-key-sid", "no-credential", "key-without-secret", "secret-without-key", "no-account", "granularity", "lookback"],
)
def test_given_an_invalid_twilio_section_when_parsed_then_a_config_error_names_the_field(section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        UsageConfig.parse(twilio_config(**section))

    assert error.value.message == message


def test_given_a_base_url_without_the_version_when_read_then_requests_go_to_its_v1() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read_streams(twilio_config(base_url="https://supersim.twilio.com"), [STREAM])
        [request] = mock.request_history

    assert request.url.startswith(f"{USAGE_URL}?")


# ----- credentials -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, header", [("auth-token", AUTH_TOKEN_BASIC), ("api-key", API_KEY_BASIC)])
def test_given_credentials_when_read_then_basic_auth_is_sent_and_its_value_is_masked(kind: str, header: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        read_streams(CONFIGS[kind](), [STREAM])
        [request] = mock.request_history

    assert request.headers["Authorization"] == f"Basic {header}"
    assert filter_secrets(f"Authorization: Basic {header}") == "Authorization: Basic ****"


@pytest.mark.parametrize("kind, secret, header", [("auth-token", AUTH_TOKEN, AUTH_TOKEN_BASIC), ("api-key", API_KEY_SECRET, API_KEY_BASIC)])
def test_given_an_error_body_echoing_the_credentials_when_read_then_neither_the_secret_nor_the_header_is_written(
    kind: str, secret: str, header: str
) -> None:
    echo = {"code": 20001, "message": f"Bad request with secret {secret} and header Basic {header}"}
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=400, json=echo)
        output = read_streams(CONFIGS[kind](), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == (
        f"twilio: GET {USAGE_URL} was refused with HTTP 400: Bad request with secret **** and header Basic **** (error 20001)"
    )
    written = everything_written(output)
    assert [line for line in written if secret in line or header in line] == []


@pytest.mark.parametrize(
    "kind, message",
    [
        ("auth-token", f"twilio: the Auth Token for account {ACCOUNT_SID} was rejected (HTTP 401)"),
        ("api-key", f"twilio: the API key {API_KEY_SID} for account {ACCOUNT_SID} was rejected (HTTP 401)"),
    ],
)
def test_given_a_401_when_read_or_checked_then_a_config_error_names_the_rejected_credential(kind: str, message: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=401, json=template("twilio", "error_401"))
        output = read_streams(CONFIGS[kind](), [STREAM], expect_failure=True)
        status = check(CONFIGS[kind]())

    assert error_messages(output)[0] == message
    assert output.errors[0].trace.error.failure_type.value == "config_error"
    assert (status.status, status.message) == (Status.FAILED, message)


def test_given_a_403_when_read_then_a_config_error_says_the_credential_may_not_read_usage() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=403, json={"code": 20403, "message": "Forbidden"})
        output = read_streams(api_key_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"twilio: the API key {API_KEY_SID} for account {ACCOUNT_SID} is not allowed to read Super SIM usage records (HTTP 403)"


# ----- error bodies and rate limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, said",
    [
        (template("twilio", "error_400"), "Invalid Granularity parameter 'weekly': must be one of hour, day, all (error 20001)"),
        ({"message": "StartTime must be before EndTime"}, "StartTime must be before EndTime"),
        ({"code": 83605, "message": "StartTime is too old", "more_info": "https://www.twilio.com/docs/errors/83605"}, "StartTime is too old (error 83605)"),
        ({"code": 20001}, "Bad Request"),
    ],
    ids=["code-and-message", "message-only", "retention", "no-message"],
)
def test_given_a_400_when_read_then_the_error_quotes_twilios_message_and_code(body: dict, said: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=400, json=body, reason="Bad Request")
        output = read_streams(twilio_config(), [STREAM], expect_failure=True)

    assert error_messages(output)[0] == f"twilio: GET {USAGE_URL} was refused with HTTP 400: {said}"
    assert output.errors[0].trace.error.failure_type.value == "config_error"


def test_given_a_429_with_retry_after_when_read_then_it_waits_as_told_and_continues(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [{"status_code": 429, "json": template("twilio", "error_429"), "headers": {"Retry-After": "3"}}, {"json": usage_page([day("2026-11-20")])}],
        )
        output = read_streams(twilio_config(), [STREAM])

    assert waits == [3.0]
    assert len(records(output, STREAM)) == 1


def test_given_a_429_without_retry_after_when_read_then_it_backs_off_exponentially(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [
                {"status_code": 429, "json": template("twilio", "error_429")},
                {"status_code": 429, "json": template("twilio", "error_429")},
                {"json": usage_page([day("2026-11-20")])},
            ],
        )
        output = read_streams(twilio_config(), [STREAM])

    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0, waits
    assert len(records(output, STREAM)) == 1


# ----- check -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "granularity, window",
    [("hour", ("2026-11-23T11:00:00Z", "2026-11-23T12:34:56Z")), ("day", ("2026-11-22T00:00:00Z", "2026-11-23T12:34:56Z"))],
)
def test_given_working_credentials_when_checked_then_one_request_asks_for_the_last_complete_period_and_the_current_one(
    granularity: str, window: tuple
) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, json=usage_page([]))
        status = check(twilio_config(granularity=granularity))
        [request] = mock.request_history

    assert status.status == Status.SUCCEEDED
    assert window_of(request) == window
    assert (request.qs["group"], request.qs["granularity"], request.qs["pagesize"]) == (["sim"], [granularity], ["1000"])
    assert request.headers["Authorization"] == f"Basic {AUTH_TOKEN_BASIC}"
