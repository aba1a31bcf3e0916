"""Sends one vendor's requests: authentication, the API budget, retries and waits, all of them bounded.

Built from the CDK's public pieces (its `ErrorHandler` interpretation, `BackoffStrategy`s and the
rate-limited session), with a retry loop of our own because a usage sync needs what the CDK's loop does
not give:

* a 429 waits as the vendor says and never uses up the retries meant for errors (a rate-limit storm is
  ridden out, a 5xx storm is not retried forever), and waits are exactly what the vendor asked for;
* every wait is bounded: one announced wait longer than `max_wait_seconds` fails the request at once,
  saying when the vendor said to come back, and the waits of one request together are bounded too;
* every attempt has a deadline (connect, headers and body) and a bounded body (see `transport`);
* a request the connector refuses (a foreign host, a body over the limit, a deadline) is never retried.

When retries run out, the request fails with a transient error naming the vendor, the endpoint (no query
string, so no secret) and the last problem.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from time import sleep  # tests replace `client.sleep` to record waits instead of sleeping
from typing import Any, Callable, Mapping, Optional, Sequence

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorResolution, ResponseAction
from requests.auth import AuthBase

from source_usage.framework.backoff import exponential_backoff
from source_usage.framework.error_handling import VendorErrorHandler, untrusted
from source_usage.framework.errors import (
    DeadlineExceeded,
    endpoint_of,
    RequestRefused,
    UsageError,
    VendorRequestFailed,
    WaitTooLong,
)
from source_usage.framework.settings import Settings
from source_usage.framework.transport import VendorSession, attempt_deadline

RETRY_ACTIONS = (ResponseAction.RETRY, ResponseAction.REFRESH_TOKEN_THEN_RETRY)


class ResponseAware:
    """An authenticator that wants to see every response (a token login proves its token with a success)."""

    def update_from_response(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        raise NotImplementedError


class VendorClient:
    """The one way a vendor's requests are sent; shared by all its streams and threads."""

    def __init__(
        self,
        vendor: str,
        session: VendorSession,
        error_handler: VendorErrorHandler,
        backoff: Sequence[BackoffStrategy],
        authenticator: Optional[AuthBase],
        settings: Settings,
        logger: Optional[logging.Logger] = None,
        sleep: Optional[Callable[[float], None]] = None,
    ) -> None:
        self.vendor = vendor
        self.session = session
        self.error_handler = error_handler
        self.backoff = list(backoff)
        self.authenticator = authenticator
        self.settings = settings
        self.logger = logger or logging.getLogger(f"airbyte.{vendor}")
        self.sleep = sleep
        self._sent = 0
        self._count_lock = threading.Lock()
        self._rng = random.Random()

    @property
    def requests_sent(self) -> int:
        """Requests sent so far (each attempt counts; redirects followed within one are one)."""
        return self._sent

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        error_handler: Optional[VendorErrorHandler] = None,
        authenticated: bool = True,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """The response to a request that succeeded, or that an override chose to ignore (`response.ok` may
        then be false); raises a UsageError when it fails for good."""
        handler = error_handler or self.error_handler
        policy = self.settings
        errors = rate_limit_waits = 0
        waited = 0.0
        while True:
            request = requests.Request(method, url, params=params, json=json, headers=dict(headers or {}))
            request.auth = self.authenticator if authenticated else None
            response: Optional[requests.Response] = None
            problem: Optional[Exception] = None
            try:
                prepared = self.session.prepare_request(request)
            except (requests.RequestException, ValueError, TypeError) as unusable:
                raise UsageError(
                    f"{self.vendor}: the request for {endpoint_of(url)} could not be built ({type(unusable).__name__}: {untrusted(unusable, 160)})",
                    FailureType.config_error,
                ) from None
            try:
                with attempt_deadline(policy.request_deadline_seconds) as attempt:
                    with self._count_lock:
                        self._sent += 1
                    response = self.session.send(prepared, timeout=policy.timeout, allow_redirects=allow_redirects)
            except RequestRefused as refused:
                raise self._failed(method, url, str(refused), refused.failure_type) from None
            except UsageError:
                raise
            except Exception as failure:  # network failures are retried; anything else fails with its name
                if attempt.expired:
                    raise self._failed(method, url, str(DeadlineExceeded(attempt.seconds)), FailureType.transient_error) from None
                problem = failure
            if attempt.expired:  # cut off while the headers dripped in: what was parsed is not an answer
                raise self._failed(method, url, str(DeadlineExceeded(attempt.seconds)), FailureType.transient_error)
            if response is not None and isinstance(self.authenticator, ResponseAware) and authenticated:
                self.authenticator.update_from_response(prepared, response)
            resolution = handler.interpret_response(response if response is not None else problem)
            action = resolution.response_action
            if action in (ResponseAction.SUCCESS, ResponseAction.IGNORE):
                assert response is not None
                return response
            if action == ResponseAction.FAIL:
                raise UsageError(resolution.error_message or f"{self.vendor}: {method} {url} failed", resolution.failure_type)
            announced = self._announced_wait(response if response is not None else problem, errors + rate_limit_waits + 1)
            if action == ResponseAction.RATE_LIMITED:
                rate_limit_waits += 1
                if rate_limit_waits > policy.max_rate_limit_waits:
                    raise self._failed(method, url, f"was still rate limited after {rate_limit_waits - 1} waits (HTTP 429)")
                attempt_number = rate_limit_waits
            elif action in RETRY_ACTIONS:
                errors += 1
                if errors > policy.max_retries:
                    raise self._failed(method, url, f"failed after {errors} attempts (last: {_described(resolution)})")
                attempt_number = errors
            else:
                raise self._failed(method, url, f"got an answer the connector cannot act on ({action})", FailureType.system_error)
            if announced is not None and announced > policy.max_wait_seconds:
                reason = _described(resolution)
                raise self._failed(method, url, str(WaitTooLong(announced, policy.max_wait_seconds, reason)))
            delay = announced if announced is not None else exponential_backoff(
                attempt_number, policy.backoff_base_seconds, policy.backoff_cap_seconds, self._rng
            )
            if waited + delay > policy.max_total_wait_seconds:
                raise self._failed(
                    method,
                    url,
                    f"would wait more than {policy.max_total_wait_seconds:g} s in total (SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS); "
                    f"last: {_described(resolution)}",
                )
            self._log_wait(method, url, resolution, delay)
            (self.sleep or sleep)(delay)
            waited += delay

    def _announced_wait(self, response_or_exception: Any, attempt: int) -> Optional[float]:
        for strategy in self.backoff:
            wait = strategy.backoff_time(response_or_exception, attempt)
            if wait is not None:
                return max(0.0, float(wait))
        return None

    def _log_wait(self, method: str, url: str, resolution: ErrorResolution, delay: float) -> None:
        self.logger.info("%s: %s %s: %s; retrying in %.2fs", self.vendor, method, endpoint_of(url), _described(resolution), delay)

    def _failed(self, method: str, url: str, problem: str, failure_type: FailureType = FailureType.transient_error) -> VendorRequestFailed:
        return VendorRequestFailed(self.vendor, method, url, problem, failure_type)


def _described(resolution: ErrorResolution) -> str:
    return resolution.error_message or str(resolution.response_action)
