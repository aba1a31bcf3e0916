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


class CredentialsRejected(UsageError):
    """A vendor rejected the configured credentials (or lacks a permission)."""

    default_failure_type = FailureType.config_error

    def __init__(self, vendor: str, problem: str, status: Optional[int] = None) -> None:
        self.vendor = vendor
        suffix = f" (HTTP {status})" if status else ""
        super().__init__(f"{vendor}: {problem}{suffix}")


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


def endpoint_of(url: str) -> str:
    """The path of a URL, without query string or credentials, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if host else parts.path
