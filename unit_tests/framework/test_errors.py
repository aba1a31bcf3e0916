"""The errors a person acts on: their messages, failure types and trace messages, exactly."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from airbyte_cdk.models import FailureType, StreamDescriptor

from source_usage.framework.errors import (
    BodyTooLarge,
    ConfigError,
    DeadlineExceeded,
    ForeignHost,
    SchemaViolation,
    UsageError,
    VendorRequestFailed,
    WaitTooLong,
    endpoint_of,
    origin_of,
)


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone 5:30 ahead of UTC: a time printed as UTC must not be the local one."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_given_a_message_when_a_usage_error_is_raised_then_it_is_both_the_message_and_the_internal_message() -> None:
    error = UsageError("vendor x: it broke")

    assert str(error) == "vendor x: it broke"
    assert error.message == "vendor x: it broke"
    assert error.internal_message == "vendor x: it broke"
    assert error.failure_type == FailureType.system_error
    assert error.as_airbyte_message().trace.error.stream_descriptor is None


def test_given_a_stream_when_a_usage_error_is_raised_then_its_trace_names_the_stream() -> None:
    error = UsageError("broke", FailureType.config_error, stream="s1")

    assert error.as_airbyte_message().trace.error.stream_descriptor == StreamDescriptor(name="s1")
    assert error.failure_type == FailureType.config_error


def test_given_a_usage_error_when_it_becomes_a_trace_message_then_it_has_no_stack_trace_and_the_stream_asked_for() -> None:
    message = UsageError("broke").as_airbyte_message(StreamDescriptor(name="s2"))

    assert message.trace.error.stack_trace is None
    assert message.trace.error.message == "broke"
    assert message.trace.error.internal_message == "broke"
    assert message.trace.error.stream_descriptor == StreamDescriptor(name="s2")


def test_given_a_config_problem_when_raised_then_it_is_a_config_error_naming_the_field() -> None:
    error = ConfigError("twilio.account_sid", "must start with AC")

    assert str(error) == "Invalid config: twilio.account_sid must start with AC"
    assert error.field == "twilio.account_sid"
    assert error.failure_type == FailureType.config_error


def test_given_a_failed_request_when_raised_then_it_names_vendor_method_endpoint_and_keeps_vendor_and_status() -> None:
    error = VendorRequestFailed("meraki", "GET", "https://api.example.com/v1/orgs?token=secret", "failed (HTTP 503)", status=503)

    assert str(error) == "meraki: GET https://api.example.com/v1/orgs failed (HTTP 503)"
    assert (error.vendor, error.status, error.failure_type) == ("meraki", 503, FailureType.transient_error)
    assert VendorRequestFailed("meraki", "GET", "https://h/x", "no").status is None


@pytest.mark.parametrize(
    "value, shown",
    [
        ("a" * 118, "'" + "a" * 118 + "'"),  # repr of 120 characters: whole
        ("a" * 119, "'" + "a" * 116 + "..."),  # 121: cut to 117 and an ellipsis
    ],
)
def test_given_a_long_value_when_a_schema_violation_is_raised_then_a_repr_over_120_characters_is_cut(value: str, shown: str) -> None:
    error = SchemaViolation("s", "f", value, "is not an integer")

    assert str(error) == f"s: record field 'f' has value {shown}, which is not an integer"
    assert error.as_airbyte_message().trace.error.stream_descriptor == StreamDescriptor(name="s")


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (59, "59 s"),
        (599, "599 s"),
        (600, "10 minutes"),
        (3599, "60 minutes"),
        (3600, "1.0 hours"),
        (84427, "23.5 hours"),
        (86399, "24.0 hours"),
        (86400, "1.0 days"),
        (864000000, "10000.0 days"),
    ],
)
def test_given_a_wait_over_the_limit_when_refused_then_both_durations_are_written_in_a_readable_unit(seconds: int, shown: str) -> None:
    error = WaitTooLong(seconds, 30, "HTTP 429")

    assert str(error).startswith(f"HTTP 429: the vendor asks to wait {shown} before the next request, longer than the 30 s allowed")
    assert error.seconds == seconds
    assert error.failure_type == FailureType.transient_error


def test_given_a_wait_when_refused_then_it_says_when_to_try_again_in_utc(kolkata: None) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    error = WaitTooLong(7200, 60, "quota")
    after = datetime.now(timezone.utc) + timedelta(hours=2)

    moment = re.search(r"try again after (\S+)$", str(error)).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", moment)
    assert before <= datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) <= after
    assert str(error).startswith("quota: the vendor asks to wait 2.0 hours before the next request, longer than the 60 s allowed")


def test_given_a_wait_too_far_to_be_a_date_when_refused_then_it_says_so() -> None:
    assert str(WaitTooLong(1e20, 60, "quota")).endswith("; try again after a date too far away to print")


def test_given_refusals_when_raised_then_each_message_says_what_and_which_knob() -> None:
    assert str(BodyTooLarge(1000, 2500)) == "answered with a body that announces 2,500 bytes, over the limit of 1,000 bytes (SOURCE_USAGE_MAX_BODY_BYTES)"
    assert str(BodyTooLarge(1000)) == "answered with a body that grew, over the limit of 1,000 bytes (SOURCE_USAGE_MAX_BODY_BYTES)"
    assert str(DeadlineExceeded(2.5)) == "did not complete within 2.5 s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)"
    assert DeadlineExceeded.failure_type == FailureType.transient_error
    assert BodyTooLarge.failure_type == FailureType.system_error
    foreign = ForeignHost("https://user:pw@evil.example:8443/x?y=1", "a redirect to")
    assert str(foreign) == "a redirect to https://evil.example:8443, which is not this vendor's configured host: not followed"
    assert foreign.url == "https://user:pw@evil.example:8443/x?y=1"


@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://user:pw@api.example.com/v1?x=1", "https://api.example.com"),
        ("http://api.example.com:8080/v1", "http://api.example.com:8080"),
        ("file:///etc/passwd", "file://"),
        ("http://[::1", "an unreadable URL"),
        ("http://h:99999/", "an unreadable URL"),
    ],
)
def test_given_a_url_when_its_origin_is_shown_then_only_scheme_host_and_port_remain(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    "url, endpoint",
    [
        ("https://user:pw@api.example.com/v1/orgs?token=x", "https://api.example.com/v1/orgs"),
        ("http://api.example.com:8080/v1", "http://api.example.com:8080/v1"),
        ("/relative/path?x=1", "/relative/path"),
        ("http://[::1", "an unreadable URL"),
        ("http://h:99999/", "an unreadable URL"),
        ("https://h/" + "p" * 199, "https://h/" + "p" * 199),  # a path of 200 characters: whole
        ("https://h/" + "p" * 200, "https://h/" + "p" * 199 + "..."),  # 201: cut to 200
    ],
)
def test_given_a_url_when_its_endpoint_is_shown_then_the_query_and_credentials_are_dropped_and_a_long_path_cut(url: str, endpoint: str) -> None:
    assert endpoint_of(url) == endpoint
