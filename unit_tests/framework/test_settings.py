"""settings.py: every SOURCE_USAGE_* variable is read, and a value that cannot be read names its variable."""

from __future__ import annotations

from typing import Any

import pytest

from source_usage.framework.errors import ConfigError
from source_usage.framework.settings import MIB, Settings, reload_settings, settings


def test_given_no_variables_when_read_then_the_documented_defaults_apply() -> None:
    assert Settings.from_environment({}) == Settings(
        max_retries=6,
        backoff_base_seconds=1.0,
        backoff_cap_seconds=30.0,
        max_rate_limit_waits=50,
        max_wait_seconds=120.0,
        max_total_wait_seconds=900.0,
        log_waits_over_seconds=5.0,
        connect_timeout_seconds=10.0,
        read_timeout_seconds=60.0,
        request_deadline_seconds=300.0,
        max_body_bytes=64 * 1024 * 1024,
        max_workers=None,
        client_rate_budgets=True,
    )
    assert MIB == 1048576


@pytest.mark.parametrize(
    "variable, raw, attribute, expected",
    [
        ("SOURCE_USAGE_MAX_RETRIES", "3", "max_retries", 3),
        ("SOURCE_USAGE_BACKOFF_BASE_SECONDS", "0.5", "backoff_base_seconds", 0.5),
        ("SOURCE_USAGE_BACKOFF_CAP_SECONDS", "12", "backoff_cap_seconds", 12.0),
        ("SOURCE_USAGE_MAX_RATE_LIMIT_WAITS", "7", "max_rate_limit_waits", 7),
        ("SOURCE_USAGE_MAX_WAIT_SECONDS", "45.5", "max_wait_seconds", 45.5),
        ("SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS", "600", "max_total_wait_seconds", 600.0),
        ("SOURCE_USAGE_LOG_WAITS_OVER_SECONDS", "2", "log_waits_over_seconds", 2.0),
        ("SOURCE_USAGE_CONNECT_TIMEOUT_SECONDS", "3", "connect_timeout_seconds", 3.0),
        ("SOURCE_USAGE_READ_TIMEOUT_SECONDS", "20", "read_timeout_seconds", 20.0),
        ("SOURCE_USAGE_REQUEST_DEADLINE_SECONDS", "90", "request_deadline_seconds", 90.0),
        ("SOURCE_USAGE_MAX_BODY_BYTES", "1000", "max_body_bytes", 1000),
        ("SOURCE_USAGE_MAX_WORKERS", "2", "max_workers", 2),
        ("SOURCE_USAGE_CLIENT_RATE_BUDGETS", "off", "client_rate_budgets", False),
    ],
)
def test_given_a_variable_when_read_then_its_setting_takes_the_value(variable: str, raw: str, attribute: str, expected: Any) -> None:
    parsed = Settings.from_environment({variable: raw})
    assert getattr(parsed, attribute) == expected
    assert type(getattr(parsed, attribute)) is type(expected)
    others = {name: value for name, value in vars(parsed).items() if name != attribute}
    assert others == {name: value for name, value in vars(Settings()).items() if name != attribute}


def test_given_surrounding_whitespace_when_read_then_it_is_ignored() -> None:
    assert Settings.from_environment({"SOURCE_USAGE_MAX_BODY_BYTES": " 2048 "}).max_body_bytes == 2048


def test_given_a_blank_value_when_read_then_the_default_applies() -> None:
    assert Settings.from_environment({"SOURCE_USAGE_MAX_RETRIES": "   ", "SOURCE_USAGE_MAX_WAIT_SECONDS": ""}) == Settings()


@pytest.mark.parametrize("raw", ["on", "ON", "1", "true", "yes"])
def test_given_an_on_word_when_a_switch_is_read_then_it_is_on(raw: str) -> None:
    assert Settings.from_environment({"SOURCE_USAGE_CLIENT_RATE_BUDGETS": raw}).client_rate_budgets is True


@pytest.mark.parametrize("raw", ["off", "Off", "0", "false", "no"])
def test_given_an_off_word_when_a_switch_is_read_then_it_is_off(raw: str) -> None:
    assert Settings.from_environment({"SOURCE_USAGE_CLIENT_RATE_BUDGETS": raw}).client_rate_budgets is False


@pytest.mark.parametrize(
    "variable, raw, message",
    [
        ("SOURCE_USAGE_CLIENT_RATE_BUDGETS", "maybe", "Invalid config: SOURCE_USAGE_CLIENT_RATE_BUDGETS must be on or off (got 'maybe')"),
        ("SOURCE_USAGE_MAX_RETRIES", "3.5", "Invalid config: SOURCE_USAGE_MAX_RETRIES must be a whole number (got '3.5')"),
        ("SOURCE_USAGE_MAX_WORKERS", "many", "Invalid config: SOURCE_USAGE_MAX_WORKERS must be a whole number (got 'many')"),
        ("SOURCE_USAGE_MAX_WAIT_SECONDS", "two", "Invalid config: SOURCE_USAGE_MAX_WAIT_SECONDS must be a number (got 'two')"),
        ("SOURCE_USAGE_MAX_RETRIES", "-1", "Invalid config: SOURCE_USAGE_MAX_RETRIES must not be negative (got '-1')"),
        ("SOURCE_USAGE_BACKOFF_BASE_SECONDS", "-0.5", "Invalid config: SOURCE_USAGE_BACKOFF_BASE_SECONDS must not be negative (got '-0.5')"),
        ("SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS", "nan", "Invalid config: SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS must not be negative (got 'nan')"),
    ],
)
def test_given_an_unreadable_value_when_read_then_a_config_error_names_the_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        Settings.from_environment({variable: raw})
    assert failure.value.field == variable
    assert failure.value.message == message


def test_given_zero_when_read_then_it_is_accepted_as_not_negative() -> None:
    parsed = Settings.from_environment({"SOURCE_USAGE_MAX_RETRIES": "0", "SOURCE_USAGE_BACKOFF_BASE_SECONDS": "0"})
    assert (parsed.max_retries, parsed.backoff_base_seconds) == (0, 0.0)


def test_given_the_process_environment_when_reloaded_then_settings_reflect_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_RETRIES", "2")
    assert settings().max_retries == 6  # read once, before the variable was set
    assert reload_settings().max_retries == 2
    assert settings().max_retries == 2
    assert settings() is settings()


def test_given_timeouts_when_asked_for_the_requests_timeout_then_it_is_connect_then_read() -> None:
    assert Settings(connect_timeout_seconds=4.0, read_timeout_seconds=9.0).timeout == (4.0, 9.0)


def test_given_settings_never_read_when_first_asked_for_then_they_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from source_usage.framework import settings as settings_module

    monkeypatch.setattr(settings_module, "_current", None)
    monkeypatch.setenv("SOURCE_USAGE_MAX_RETRIES", "3")
    first = settings_module.settings()
    assert first.max_retries == 3
    assert settings_module.settings() is first  # read once
