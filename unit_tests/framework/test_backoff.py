"""backoff.py: the wait a vendor announces (Retry-After, a rate-limit reset header), else exponential backoff."""

from __future__ import annotations

import random
from typing import Optional

import pytest
import requests

from source_usage.framework.backoff import RateLimitResetBackoff, RetryAfterBackoff, exponential_backoff, finite_number

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def clock() -> float:
    return NOW


def response(status: int = 429, **headers: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update(headers)
    return answer


class Bound(random.Random):
    """A random source whose `uniform` returns one end of the interval."""

    def __init__(self, upper: bool) -> None:
        super().__init__()
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


@pytest.mark.parametrize("value, seconds", [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)])
def test_given_retry_after_in_seconds_when_asked_then_exactly_that_wait(value: str, seconds: float) -> None:
    assert RetryAfterBackoff(clock).backoff_time(response(**{"Retry-After": value}), 1) == seconds


def test_given_retry_after_as_an_http_date_when_asked_then_the_wait_is_until_that_date_by_the_clock() -> None:
    wait = RetryAfterBackoff(clock).backoff_time(response(**{"Retry-After": "Fri, 15 Jan 2027 08:01:30 GMT"}), 1)
    assert wait == 90.0


def test_given_retry_after_as_a_date_in_the_past_when_asked_then_no_wait() -> None:
    assert RetryAfterBackoff(clock).backoff_time(response(**{"Retry-After": "Fri, 15 Jan 2027 07:00:00 GMT"}), 1) == 0.0


@pytest.mark.parametrize(
    "value", ["-3", "NaN", "nan", "inf", "-inf", "soon", "", "   ", "Fri, 15 Jan 2027 08:01:30", "Fri, 99 Foo 2027 25:00:00 GMT"]
)
def test_given_garbage_negative_or_nan_retry_after_when_asked_then_it_is_ignored(value: str) -> None:
    assert RetryAfterBackoff(clock).backoff_time(response(**{"Retry-After": value}), 1) is None


def test_given_no_retry_after_or_no_response_when_asked_then_no_announced_wait() -> None:
    strategy = RetryAfterBackoff(clock)
    assert strategy.backoff_time(response(), 1) is None
    assert strategy.backoff_time(requests.ConnectionError("reset"), 1) is None
    assert strategy.backoff_time(None, 1) is None


def test_given_retry_after_on_a_503_when_asked_then_it_is_honoured_too() -> None:
    assert RetryAfterBackoff(clock).backoff_time(response(503, **{"Retry-After": "4"}), 1) == 4.0


def test_given_a_reset_epoch_second_on_a_429_when_asked_then_the_wait_is_until_then_plus_the_margin() -> None:
    strategy = RateLimitResetBackoff("X-Organization-Rate-Limit-Reset", margin=0.25, clock=clock)
    assert strategy.backoff_time(response(**{"X-Organization-Rate-Limit-Reset": "1800000030"}), 1) == 30.25


def test_given_a_reset_already_past_when_asked_then_the_wait_is_the_margin() -> None:
    strategy = RateLimitResetBackoff("X-Reset", margin=0.5, clock=clock)
    assert strategy.backoff_time(response(**{"X-Reset": "1799999000"}), 1) == 0.5


@pytest.mark.parametrize("value", ["soon", "-5", "nan", ""])
def test_given_an_unusable_reset_header_when_asked_then_it_is_ignored(value: str) -> None:
    assert RateLimitResetBackoff("X-Reset", clock=clock).backoff_time(response(**{"X-Reset": value}), 1) is None


def test_given_a_reset_header_on_a_status_other_than_429_when_asked_then_it_is_ignored() -> None:
    strategy = RateLimitResetBackoff("X-Reset", clock=clock)
    assert strategy.backoff_time(response(503, **{"X-Reset": "1800000030"}), 1) is None
    assert strategy.backoff_time(response(200, **{"X-Reset": "1800000030"}), 1) is None
    assert strategy.backoff_time(requests.Timeout("slow"), 1) is None


@pytest.mark.parametrize(
    "value, number", [("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0), ("-1", None), ("nan", None), ("inf", None), ("x", None), (None, None)]
)
def test_given_a_header_value_when_read_as_a_finite_number_then_only_finite_non_negative_numbers_pass(value: Optional[str], number: Optional[float]) -> None:
    assert finite_number(value) == number


@pytest.mark.parametrize("attempt, ceiling", [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (40, 10.0)])
def test_given_an_attempt_when_backing_off_then_the_wait_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert exponential_backoff(attempt, 1.0, 10.0, Bound(upper=True)) == ceiling


@pytest.mark.parametrize("attempt, floor", [(1, 0.25), (2, 0.5), (3, 1.0), (9, 3.0)])
def test_given_the_lowest_jitter_when_backing_off_then_the_wait_is_half_the_ceiling(attempt: int, floor: float) -> None:
    assert exponential_backoff(attempt, 0.5, 6.0, Bound(upper=False)) == floor


def test_given_attempt_zero_when_backing_off_then_it_counts_as_the_first() -> None:
    assert exponential_backoff(0, 2.0, 60.0, Bound(upper=True)) == 2.0


def test_given_real_jitter_when_backing_off_then_waits_stay_within_half_and_whole_ceiling() -> None:
    rng = random.Random(7)
    waits = [exponential_backoff(3, 1.0, 30.0, rng) for _ in range(200)]
    assert all(2.0 <= wait <= 4.0 for wait in waits)
    assert len(set(waits)) > 100  # spread out, not one fixed value


def test_given_a_429_with_a_reset_header_when_no_margin_is_given_then_a_quarter_second_is_added() -> None:
    from source_usage.framework.backoff import RateLimitResetBackoff

    response = requests.Response()
    response.status_code = 429
    response.headers["X-Reset"] = "1010"
    assert RateLimitResetBackoff("X-Reset", clock=lambda: 1000.0).backoff_time(response, 1) == 10.25


@pytest.mark.parametrize("attempt", [31, 32, 2000])
def test_given_no_cap_and_a_huge_attempt_when_backing_off_then_the_doubling_stops_at_two_to_the_thirtieth(attempt: int) -> None:
    # 2**30 s is about 34 years: an attempt count that high must neither overflow nor keep doubling.
    assert exponential_backoff(attempt, 1.0, float("inf"), Bound(upper=True)) == 1073741824.0
