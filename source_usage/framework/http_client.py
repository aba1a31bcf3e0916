"""The CDK's HttpClient with a retry loop that keeps two budgets apart.

The CDK's client interprets responses (our `VendorErrorHandler`), asks our backoff strategies how long a
vendor wants us to wait, applies the API budget and re-applies authentication; we keep all of that and
replace only the loop around it, because a usage sync needs two things the stock loop does not give:

* a 429 waits as the vendor says and never uses up the retries meant for errors (a rate-limit storm is
  ridden out, a 5xx storm is not retried forever), and
* waits are exactly what the vendor asked for (the stock loop adds a second to each), or exponential
  backoff with jitter when it said nothing.

When retries run out the stream fails with a transient error naming the vendor, the endpoint (no query
string, so no secret) and the last status.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.exceptions import BaseBackoffException, UserDefinedBackoffException
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_usage.framework.backoff import exponential_backoff
from source_usage.framework.errors import UsageError, VendorRequestFailed, endpoint_of


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: bounded retries for errors, a separate bound for rate-limit waits."""

    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    max_rate_limit_waits: int = 50
    max_single_wait: float = 300.0

    @classmethod
    def from_environment(cls) -> "RetryPolicy":
        """The defaults, or `SOURCE_USAGE_MAX_RETRIES` / `SOURCE_USAGE_BACKOFF_BASE_SECONDS` when set
        (operators on flaky links raise them; tests of failure paths lower them)."""
        return cls(
            max_retries=int(os.environ.get("SOURCE_USAGE_MAX_RETRIES", cls.max_retries)),
            backoff_base=float(os.environ.get("SOURCE_USAGE_BACKOFF_BASE_SECONDS", cls.backoff_base)),
        )


class UsageHttpClient(HttpClient):
    """One stream's client on its vendor's shared session (connection pool, authenticator, budget)."""

    def __init__(self, *args: Any, vendor: str, retry_policy: RetryPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._vendor = vendor
        self._retry_policy = retry_policy
        self._rng = random.Random()

    def _send_with_retry(
        self,
        request: requests.PreparedRequest,
        request_kwargs: Mapping[str, Any],
        log_formatter: Optional[Callable[[requests.Response], Any]] = None,
        exit_on_rate_limit: Optional[bool] = False,
    ) -> requests.Response:
        policy = self._retry_policy
        errors = rate_limit_waits = 0
        while True:
            try:
                return self._send(request, request_kwargs, log_formatter=log_formatter, exit_on_rate_limit=exit_on_rate_limit)
            except BaseBackoffException as retryable:
                status = _status_of(retryable)
                told = retryable.backoff if isinstance(retryable, UserDefinedBackoffException) else None
                if status == 429:
                    rate_limit_waits += 1
                    if rate_limit_waits > policy.max_rate_limit_waits:
                        raise self._give_up(request, f"was still rate limited after {rate_limit_waits - 1} waits (HTTP 429)") from None
                    delay = told if told is not None else exponential_backoff(rate_limit_waits, policy.backoff_base, policy.backoff_cap, self._rng)
                else:
                    errors += 1
                    if errors > policy.max_retries:
                        raise self._give_up(request, f"failed after {errors} attempts (last: {_last_problem(retryable)})") from None
                    delay = told if told is not None else exponential_backoff(errors, policy.backoff_base, policy.backoff_cap, self._rng)
                delay = min(max(0.0, delay), policy.max_single_wait)
                self._logger.info(
                    "%s: %s %s: %s; retrying in %.2fs",
                    self._vendor, request.method, endpoint_of(request.url or ""), _last_problem(retryable), delay,
                )
                time.sleep(delay)
            except UsageError:
                self._evict_key(request)
                raise
            except AirbyteTracedException as failure:
                self._evict_key(request)
                raise UsageError(failure.message or failure.internal_message or "request failed", failure.failure_type) from None

    def _give_up(self, request: requests.PreparedRequest, problem: str) -> VendorRequestFailed:
        self._evict_key(request)
        return VendorRequestFailed(self._vendor, request.method or "GET", request.url or "", problem, FailureType.transient_error)


def _status_of(exception: BaseBackoffException) -> Optional[int]:
    response = exception.response
    return response.status_code if isinstance(response, requests.Response) else None


def _last_problem(exception: BaseBackoffException) -> str:
    """The error handler's description of the failed attempt ("HTTP 502", "the request timed out", ...)."""
    return str(exception) or type(exception).__name__
