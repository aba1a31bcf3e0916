"""The config is validated before any request, and every problem names its field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict

import pytest

from source_usage.config import UsageConfig, unknown_keys
from source_usage.framework.errors import ConfigError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SECRET = "s3cr3t-value-that-must-not-leak"


def parse(config: Dict[str, Any]) -> UsageConfig:
    return UsageConfig.parse(config, now=NOW)


@pytest.mark.parametrize(
    "config, field, problem",
    [
        ({}, "(top level)", "needs at least one vendor object"),
        ({"meraki": {}}, "meraki.api_key", "is required"),
        ({"meraki": {"api_key": ""}}, "meraki.api_key", "must not be empty"),
        ({"start_date": "last tuesday", "meraki": {"api_key": "k"}}, "start_date", "must be YYYY-MM-DDTHH:mm:ssZ"),
        ({"start_date": "2026-13-45T00:00:00Z", "meraki": {"api_key": "k"}}, "start_date", "ISO 8601"),
        ({"start_date": "2027-01-01T00:00:00Z", "meraki": {"api_key": "k"}}, "start_date", "is in the future"),
        ({"twilio": {"account_sid": "AC1", "auth_token": "t", "granularity": "week"}}, "twilio.granularity", "must be one of 'hour', 'day' (got 'week')"),
        ({"meraki": {"api_key": "k", "base_url": "ftp://api.meraki.com"}}, "meraki.base_url", "must be an http:// or https:// URL"),
        ({"emnify": {"application_token": "t", "base_url": "api.emnify"}}, "emnify.base_url", "http:// or https://"),
        ({"twilio": {"account_sid": "AC1"}}, "twilio.auth_token", "is required (or api_key_sid + api_key_secret)"),
        ({"twilio": {"account_sid": "AC1", "api_key_sid": "SK1"}}, "twilio.api_key_secret", "is required"),
        ({"twilio": {"account_sid": "AC1", "auth_token": "t", "api_key_sid": "SK1", "api_key_secret": "x"}}, "twilio", "either auth_token or"),
        ({"thousandeyes": {"bearer_token": 42}}, "thousandeyes.bearer_token", "must be of type string"),
        ({"meraki": {"api_key": "k", "organization_ids": "123"}}, "meraki.organization_ids", "must be of type array"),
    ],
)
def test_given_an_invalid_config_when_parsed_then_the_error_names_the_field(config: Dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as failure:
        parse(config)
    assert failure.value.field == field
    assert str(failure.value).startswith(f"Invalid config: {field} ")
    assert problem in str(failure.value)


def test_given_a_secret_of_the_wrong_type_when_parsed_then_the_error_does_not_echo_it() -> None:
    with pytest.raises(ConfigError) as failure:
        parse({"thousandeyes": {"bearer_token": [SECRET]}})
    assert SECRET not in str(failure.value)


def test_given_no_start_date_when_parsed_then_it_is_thirty_days_ago() -> None:
    assert parse({"meraki": {"api_key": "k"}}).start_date == NOW - timedelta(days=30)


def test_given_a_date_only_start_date_when_parsed_then_it_is_midnight_utc() -> None:
    assert parse({"start_date": "2026-11-01", "meraki": {"api_key": "k"}}).start_date == datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "vendor, section, expected",
    [
        ("meraki", {"api_key": "k"}, "https://api.meraki.com/api/v1"),
        ("meraki", {"api_key": "k", "base_url": "https://api.meraki.ca/"}, "https://api.meraki.ca/api/v1"),
        ("meraki", {"api_key": "k", "base_url": "http://127.0.0.1:8080/meraki/api"}, "http://127.0.0.1:8080/meraki/api/v1"),
        ("twilio", {"account_sid": "AC1", "auth_token": "t", "base_url": "http://127.0.0.1:8080/twilio"}, "http://127.0.0.1:8080/twilio/v1"),
        ("emnify", {"application_token": "t", "base_url": "https://cdn.emnify.net/api"}, "https://cdn.emnify.net/api/v1"),
        ("thousandeyes", {"bearer_token": "t", "base_url": "https://api.thousandeyes.com/v7/"}, "https://api.thousandeyes.com/v7"),
    ],
)
def test_given_a_base_url_without_the_api_version_when_parsed_then_the_version_path_is_added(vendor: str, section: dict, expected: str) -> None:
    assert getattr(parse({vendor: section}), vendor).base_url == expected


def test_given_an_api_key_when_parsed_then_twilio_authenticates_with_it() -> None:
    twilio = parse({"twilio": {"account_sid": "AC1", "api_key_sid": "SK9", "api_key_secret": SECRET}}).twilio
    assert (twilio.username, twilio.password, twilio.credential_name) == ("SK9", SECRET, "API key SK9")


def test_given_a_misspelt_key_when_checked_then_it_is_reported_as_unknown() -> None:
    config = {"meraki": {"api_key": "k", "network_id": ["N_1"]}, "startdate": "2026-01-01"}
    assert unknown_keys(config) == ["startdate", "meraki.network_id"]
