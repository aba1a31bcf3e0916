"""Errors a person can act on.

Every failure the connector anticipates (bad config, rejected credentials, a vendor that keeps failing,
a record that breaks its schema) is a `UsageError`: its message is the whole story, so its trace message
carries no Python stack trace and the log filter in `source_usage.run` drops the traceback from logs.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

from airbyte_cdk.models import AirbyteMessage, FailureType, StreamDescriptor
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException


class UsageError(AirbyteTracedException):
    """An anticipated failure whose message says what happened and what to do."""

    default_failure_type = FailureType.system_error

    def __init__(
        self,
        message: str,
        failure_type: Optional[FailureType] = None,
        stream: Optional[str] = None,
    ) -> None:
        message = filter_secrets(message)
        super().__init__(
            internal_message=message,
            message=message,
            failure_type=failure_type or self.default_failure_type,
            stream_descriptor=StreamDescriptor(name=stream) if stream else None,
        )

    def as_airbyte_message(self, stream_descriptor: Optional[StreamDescriptor] = None) -> AirbyteMessage:
        message = super().as_airbyte_message(stream_descriptor)
        message.trace.error.stack_trace = None  # type: ignore[union-attr]
        return message


class ConfigError(UsageError):
    """The config is invalid; raised before any request is sent."""

    default_failure_type = FailureType.config_error

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"Invalid config: {field} {problem}")


class VendorRequestFailed(UsageError):
    """A request failed for good: retries are exhausted or the vendor refused it."""

    def __init__(
        self,
        vendor: str,
        method: str,
        url: str,
        problem: str,
        failure_type: FailureType = FailureType.transient_error,
        status: Optional[int] = None,
    ) -> None:
        self.vendor = vendor
        self.status = status
        super().__init__(f"{vendor}: {method} {endpoint_of(url)} {problem}", failure_type=failure_type)


class SchemaViolation(UsageError):
    """A record does not match its stream's JSON schema."""

    def __init__(self, stream: str, field: str, value: object, problem: str) -> None:
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(
            f"{stream}: record field '{field}' has value {shown}, which {problem}",
            stream=stream,
        )


class RequestRefused(Exception):
    """A request the connector stopped on purpose, before or while it was sent: never retried.

    Raised below the HTTP client (in the session or its transport), where the vendor is not known; the
    client turns it into a `VendorRequestFailed` naming the vendor and the endpoint. A refusal that a later
    sync may not meet (a deadline, a long wait) is transient; one that it would meet again is not.
    """

    failure_type = FailureType.system_error


class ForeignHost(RequestRefused):
    """A next-page link or redirect pointed at a host the vendor's credentials must not go to."""

    def __init__(self, url: str, what: str) -> None:
        self.url = url
        super().__init__(f"{what} {origin_of(url)}, which is not this vendor's configured host: not followed")


class BodyTooLarge(RequestRefused):
    def __init__(self, limit: int, announced: Optional[int] = None) -> None:
        size = f"announces {announced:,} bytes" if announced is not None else "grew"
        super().__init__(f"answered with a body that {size}, over the limit of {limit:,} bytes (SOURCE_USAGE_MAX_BODY_BYTES)")


class DeadlineExceeded(RequestRefused):
    failure_type = FailureType.transient_error

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not complete within {seconds:g} s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)")


class WaitTooLong(RequestRefused):
    """The vendor asked us to wait longer than the operator allows: fail now, saying when to come back."""

    failure_type = FailureType.transient_error

    def __init__(self, seconds: float, limit: float, reason: str) -> None:
        self.seconds = seconds
        super().__init__(
            f"{reason}: the vendor asks to wait {_duration(seconds)} before the next request, longer than the "
            f"{_duration(limit)} allowed (SOURCE_USAGE_MAX_WAIT_SECONDS); try again after {_clock_in(seconds)}"
        )


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 600:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} s"


def _clock_in(seconds: float) -> str:
    from datetime import datetime, timedelta, timezone

    try:
        moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    except OverflowError:
        return "a date too far away to print"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, without credentials, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "an unreadable URL"
    return f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"


def endpoint_of(url: str) -> str:
    """The path of a URL, without query string or credentials, for error messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "an unreadable URL"
    path = parts.path if len(parts.path) <= 200 else parts.path[:200] + "..."
    return f"{parts.scheme}://{host}{path}" if host else path
