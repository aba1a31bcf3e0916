"""How long to wait before retrying: what the vendor says first, then exponential backoff with jitter.

The strategies report the wait a server announces as it is, however long: the HTTP client compares it
with the operator's cap (`SOURCE_USAGE_MAX_WAIT_SECONDS`) and fails at once past it, rather than
sleeping for days or quietly shortening a wait the server will enforce anyway. Values that are not
numbers, not finite or negative are ignored (the client then backs off on its own).
"""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime
from typing import Callable, Optional, Union

import requests
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy

ResponseOrException = Optional[Union[requests.Response, requests.RequestException]]


def finite_number(value: Optional[str]) -> Optional[float]:
    """`value` as a finite, non-negative number, or None."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except (ValueError, AttributeError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


class RetryAfterBackoff(BackoffStrategy):
    """Waits the `Retry-After` a response carries, in seconds or as an HTTP date (RFC 9110 10.2.3)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def backoff_time(self, response_or_exception: ResponseOrException, attempt_count: int) -> Optional[float]:
        if not isinstance(response_or_exception, requests.Response):
            return None
        value = response_or_exception.headers.get("Retry-After")
        if not value:
            return None
        seconds = finite_number(value)
        if seconds is not None:
            return seconds
        try:
            moment = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment is None or moment.tzinfo is None:
            return None
        return max(0.0, moment.timestamp() - self._clock())


class RateLimitResetBackoff(BackoffStrategy):
    """On 429, waits until the epoch second a rate-limit reset header announces (no `Retry-After` sent)."""

    def __init__(self, reset_header: str, margin: float = 0.25, clock: Callable[[], float] = time.time) -> None:
        self._reset_header = reset_header
        self._margin = margin
        self._clock = clock

    def backoff_time(self, response_or_exception: ResponseOrException, attempt_count: int) -> Optional[float]:
        if not isinstance(response_or_exception, requests.Response) or response_or_exception.status_code != 429:
            return None
        reset_at = finite_number(response_or_exception.headers.get(self._reset_header))
        if reset_at is None:
            return None
        return max(self._margin, reset_at - self._clock() + self._margin)


def exponential_backoff(attempt: int, base: float, cap: float, rng: Optional[random.Random] = None) -> float:
    """`base * 2**(attempt-1)` capped at `cap`, with "equal jitter" so that retries of many workers spread out."""
    ceiling = min(cap, base * (2 ** min(max(0, attempt - 1), 30)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
