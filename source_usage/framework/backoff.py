"""How long to wait before retrying: what the vendor says first, then exponential backoff with jitter."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Optional, Union

import requests
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy

ResponseOrException = Optional[Union[requests.Response, requests.RequestException]]


class RetryAfterBackoff(BackoffStrategy):
    """Waits the `Retry-After` a response carries, in seconds or as an HTTP date (RFC 9110 10.2.3)."""

    def backoff_time(self, response_or_exception: ResponseOrException, attempt_count: int) -> Optional[float]:
        if not isinstance(response_or_exception, requests.Response):
            return None
        value = response_or_exception.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class RateLimitResetBackoff(BackoffStrategy):
    """On 429, waits until the epoch second a rate-limit reset header announces (no `Retry-After` sent)."""

    def __init__(self, reset_header: str, margin: float = 0.25, ceiling: float = 120.0) -> None:
        self._reset_header = reset_header
        self._margin = margin
        self._ceiling = ceiling

    def backoff_time(self, response_or_exception: ResponseOrException, attempt_count: int) -> Optional[float]:
        if not isinstance(response_or_exception, requests.Response) or response_or_exception.status_code != 429:
            return None
        value = response_or_exception.headers.get(self._reset_header)
        if not value:
            return None
        try:
            reset_at = float(value)
        except ValueError:
            return None
        return min(self._ceiling, max(self._margin, reset_at - time.time() + self._margin))


def exponential_backoff(attempt: int, base: float, cap: float, rng: Optional[random.Random] = None) -> float:
    """`base * 2**(attempt-1)` capped at `cap`, with "equal jitter" so that retries of many workers spread out."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
