"""What a response means: success, wait (429), retry (transient), or fail with a message a person can act on.

A vendor declares what its credential failures mean and how its error bodies look (`VendorErrors`);
`VendorErrorHandler` turns that into the CDK's `ErrorResolution`s. Streams add their own exceptions
(for example "HTTP 400 from the licenses endpoint means co-termination licensing: skip") as overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler, ErrorResolution, ResponseAction

from source_usage.framework.errors import endpoint_of

_UNSET = object()

# Network failures worth retrying: resets, connections closed mid-body, timeouts, truncated bodies.
RETRYABLE_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})


class MalformedBody(ValueError):
    """A success status with a body that is not the JSON the endpoint promises."""


def json_body(response: requests.Response) -> Any:
    """The response's JSON, parsed once (with orjson) and remembered on the response object."""
    cached = getattr(response, "_source_usage_json", _UNSET)
    if cached is _UNSET:
        try:
            cached = orjson.loads(response.content)
        except (orjson.JSONDecodeError, TypeError) as error:
            raise MalformedBody(f"the body is not valid JSON ({error})") from None
        response._source_usage_json = cached  # type: ignore[attr-defined]
    return cached


def describe_error_body(body: Any) -> Optional[str]:
    """The human part of the error bodies our vendors send.

    Meraki `{"errors": [...]}`; Twilio `{"code", "message"}`; emnify `{"error_code", "message", "errors"}`;
    RFC 9457 problem+json `{"title", "detail"}` (ThousandEyes); OAuth `{"error", "error_description"}`.
    """
    if isinstance(body, str):
        return body.strip() or None
    if isinstance(body, list):
        parts = [describe_error_body(item) for item in body]
        return "; ".join(part for part in parts if part) or None
    if not isinstance(body, Mapping):
        return None
    if body.get("title") or body.get("detail"):
        text = ": ".join(str(part) for part in (body.get("title"), body.get("detail")) if part)
        field_errors = describe_error_body(body.get("errors"))
        return f"{text} ({field_errors})" if field_errors else text
    if body.get("error_description") or isinstance(body.get("error"), str):
        return ": ".join(str(part) for part in (body.get("error"), body.get("error_description")) if part)
    message = body.get("message")
    details = describe_error_body(body.get("errors"))
    code = body.get("code", body.get("error_code"))
    text = "; ".join(str(part) for part in (message, details) if part)
    if text and code is not None:
        text = f"{text} (error {code})"
    return text or None


def error_text(response: requests.Response) -> str:
    """What a failed response says, from its JSON body if it has one, else its status."""
    try:
        described = describe_error_body(orjson.loads(response.content))
    except (orjson.JSONDecodeError, TypeError):
        described = None
    return described or response.reason or f"HTTP {response.status_code}"


@dataclass(frozen=True)
class VendorErrors:
    """What one vendor's failures mean.

    `rejected` maps the statuses that mean "fix your credentials" (401, 403) to what to tell the user,
    for example `{401: "the API key was rejected"}`.
    """

    vendor: str
    rejected: Mapping[int, str] = field(default_factory=dict)
    describe: Callable[[requests.Response], str] = error_text


Override = Union[ResponseAction, Callable[[requests.Response], Optional[ErrorResolution]]]


class VendorErrorHandler(ErrorHandler):
    """Interprets every response or network failure of one vendor's requests."""

    def __init__(
        self,
        errors: VendorErrors,
        max_retries: int = 6,
        overrides: Optional[Mapping[int, Override]] = None,
        on_rejected: Optional[Callable[[str], None]] = None,
    ) -> None:
        self._errors = errors
        self._max_retries = max_retries
        self._overrides = dict(overrides or {})
        self._on_rejected = on_rejected

    @property
    def max_retries(self) -> Optional[int]:
        return self._max_retries

    @property
    def max_time(self) -> Optional[int]:
        return None

    def with_overrides(self, overrides: Mapping[int, Override]) -> "VendorErrorHandler":
        return VendorErrorHandler(self._errors, self._max_retries, {**self._overrides, **overrides}, self._on_rejected)

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            return self._interpret(response_or_exception)
        if isinstance(response_or_exception, RETRYABLE_EXCEPTIONS):
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, _network_problem(response_or_exception))
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.system_error,
            f"{self._errors.vendor}: request failed: {type(response_or_exception).__name__}",
        )

    def _interpret(self, response: requests.Response) -> ErrorResolution:
        status = response.status_code
        override = self._overrides.get(status)
        if override is not None:
            resolution = override(response) if callable(override) else ErrorResolution(override, None, None)
            if resolution is not None:
                return resolution
        if 200 <= status < 300:
            try:
                json_body(response)
            except MalformedBody as problem:
                return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"HTTP {status} but {problem}")
            return ErrorResolution(ResponseAction.SUCCESS)
        if status == 429:
            return ErrorResolution(ResponseAction.RATE_LIMITED, FailureType.transient_error, "HTTP 429 (rate limited)")
        if status in RETRYABLE_STATUSES:
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"HTTP {status}")
        vendor = self._errors.vendor
        if status in self._errors.rejected:
            message = f"{vendor}: {self._errors.rejected[status]} (HTTP {status})"
            if self._on_rejected is not None:
                self._on_rejected(message)
            return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, message)
        method = response.request.method if response.request is not None else "GET"
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error if status in (400, 404) else FailureType.system_error,
            f"{vendor}: {method} {endpoint_of(response.url)} was refused with HTTP {status}: {self._errors.describe(response)}",
        )


def _network_problem(exception: Exception) -> str:
    if isinstance(exception, requests.exceptions.ChunkedEncodingError):
        return "the connection closed in the middle of the body"
    if isinstance(exception, requests.exceptions.Timeout):
        return "the request timed out"
    if isinstance(exception, requests.exceptions.ConnectionError):
        return "the connection failed or was reset"
    return type(exception).__name__
