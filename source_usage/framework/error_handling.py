"""What a response means: success, wait (429), retry (transient), or fail with a message a person can act on.

A vendor declares what its credential failures mean and how to read its error bodies (`VendorErrors`);
`VendorErrorHandler` turns that into the CDK's `ErrorResolution`s. Endpoints add their own exceptions
(for example "HTTP 400 from the licenses endpoint means co-termination licensing: skip") as overrides.
Everything quoted from a server is cut to one short line first: it is untrusted text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler, ErrorResolution, ResponseAction

from source_usage.framework.errors import endpoint_of, origin_of

_UNSET = object()
QUOTE_LIMIT = 300  # characters of a server's error text quoted in a message

# Network failures worth retrying: resets, connections closed mid-body, timeouts, truncated bodies.
RETRYABLE_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class MalformedBody(ValueError):
    """A success status with a body that is not the JSON the endpoint promises."""


def json_body(response: requests.Response) -> Any:
    """The response's JSON, parsed once (with orjson) and remembered on the response object."""
    cached = getattr(response, "_source_usage_json", _UNSET)
    if cached is _UNSET:
        try:
            cached = orjson.loads(response.content)
        except (orjson.JSONDecodeError, TypeError) as error:
            raise MalformedBody(f"the body is not valid JSON ({str(error)[:120]})") from None
        response._source_usage_json = cached  # type: ignore[attr-defined]
    return cached


def untrusted(text: Any, limit: int = QUOTE_LIMIT) -> str:
    """Server-sent text made safe to quote: one line, printable, at most `limit` characters."""
    cleaned = "".join(char if char.isprintable() else " " for char in str(text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def problem_details(body: Any) -> Optional[str]:
    """RFC 9457 problem details (`title`, `detail`), the one error format the framework knows itself."""
    if isinstance(body, str):
        return body.strip() or None
    if isinstance(body, Mapping) and (body.get("title") or body.get("detail")):
        return ": ".join(str(part) for part in (body.get("title"), body.get("detail")) if part)
    return None


ErrorDescriber = Callable[[Any], Optional[str]]


@dataclass(frozen=True)
class VendorErrors:
    """What one vendor's failures mean.

    `rejected` maps the statuses that mean "fix your credentials" (401, 403) to what to tell the user,
    for example `{401: "the API key was rejected"}`; `describe` reads the vendor's error bodies.
    """

    vendor: str
    rejected: Mapping[int, str] = field(default_factory=dict)
    describe: ErrorDescriber = problem_details

    def text_of(self, response: requests.Response) -> str:
        """What a failed response says, from its body if the vendor's describer reads it, else its status."""
        try:
            described = self.describe(orjson.loads(response.content))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError, RecursionError):
            described = None
        return untrusted(described) if described else (untrusted(response.reason or "") or f"HTTP {response.status_code}")


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
        self.errors = errors
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
        if not overrides:
            return self
        return VendorErrorHandler(self.errors, self._max_retries, {**self._overrides, **overrides}, self._on_rejected)

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            return self._interpret(response_or_exception)
        if isinstance(response_or_exception, RETRYABLE_EXCEPTIONS):
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, _network_problem(response_or_exception))
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error if isinstance(response_or_exception, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)) else FailureType.system_error,
            f"{self.errors.vendor}: the request could not be sent ({type(response_or_exception).__name__}: {untrusted(response_or_exception, 160)})",
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
        vendor = self.errors.vendor
        method = response.request.method if response.request is not None else "GET"
        if status in REDIRECT_STATUSES:
            target = response.headers.get("Location") or "nowhere"
            return ErrorResolution(
                ResponseAction.FAIL,
                FailureType.system_error,
                f"{vendor}: {method} {endpoint_of(response.url)} answered with an HTTP {status} redirect to "
                f"{origin_of(target) if '://' in target else untrusted(target, 120)}, which is not followed here",
            )
        if status in self.errors.rejected:
            message = f"{vendor}: {self.errors.rejected[status]} (HTTP {status})"
            if self._on_rejected is not None:
                self._on_rejected(message)
            return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, message)
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error if status in (400, 404) else FailureType.system_error,
            f"{vendor}: {method} {endpoint_of(response.url)} was refused with HTTP {status}: {self.errors.text_of(response)}",
        )


def _network_problem(exception: Exception) -> str:
    if isinstance(exception, requests.exceptions.ChunkedEncodingError):
        return "the connection closed in the middle of the body"
    if isinstance(exception, requests.exceptions.Timeout):
        return "the request timed out"
    if isinstance(exception, requests.exceptions.ConnectionError):
        return "the connection failed or was reset"
    return type(exception).__name__
