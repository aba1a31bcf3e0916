"""Client-side rate budgets on the CDK's call-rate policies, layered: a request spends from every limit it
falls under (say, its organization's 10/s AND the source IP's 100/s).

The CDK's `APIBudget` applies the first matching policy only, so `LayeredBudget` is an `AbstractAPIBudget`
of layers, each finding the key of a request (an organization, a path, the whole vendor) and keeping one
CDK policy per key. Waiting for a layer is serialized, so threads get its calls in about the order they
asked (no organization starves behind the others), and bounded: a wait longer than the layer allows (a
header announcing a reset days away) fails the request with `WaitTooLong` instead of sleeping.

Layers are created once per process and vendor host (`process_layer`), so every stream and thread of the
process shares the per-IP limits, whichever sync or check created them.
"""

from __future__ import annotations

import logging
import threading
import time
from time import sleep  # tests replace `budget.sleep` to record waits instead of sleeping
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Optional, Sequence

import requests
from airbyte_cdk.sources.streams.call_rate import (
    AbstractAPIBudget,
    AbstractCallRatePolicy,
    CallRateLimitHit,
    FixedWindowCallRatePolicy,
    MovingWindowCallRatePolicy,
    Rate,
)

from source_usage.framework.backoff import finite_number
from source_usage.framework.errors import WaitTooLong
from source_usage.framework.settings import settings

KeyOf = Callable[[requests.PreparedRequest], Optional[str]]
LOGGER = logging.getLogger("airbyte")


class BudgetLayer:
    """One limit: a CDK call-rate policy per key of the requests it covers."""

    def __init__(self, name: str, key_of: KeyOf, max_wait: Optional[float] = None) -> None:
        self.name = name
        self._key_of = key_of
        self.max_wait = max_wait
        self._policies: Dict[str, AbstractCallRatePolicy] = {}
        self._lock = threading.Lock()
        self.waiting = threading.Lock()  # held while a thread waits for this layer: first come, first served
        self.waited_seconds = 0.0

    def make_policy(self) -> AbstractCallRatePolicy:
        raise NotImplementedError

    def policy_for(self, request: Any) -> Optional[AbstractCallRatePolicy]:
        key = self._key_of(request) if isinstance(request, requests.PreparedRequest) else None
        if key is None:
            return None
        with self._lock:
            policy = self._policies.get(key)
            if policy is None:
                policy = self._policies[key] = self.make_policy()
            return policy

    def update(self, request: Any, response: Any) -> None:
        """Learn from a response (header-driven layers)."""


class MovingWindowLayer(BudgetLayer):
    """At most `limit` calls in any `interval`, per key."""

    def __init__(self, name: str, key_of: KeyOf, limit: int, interval: timedelta, max_wait: Optional[float] = None) -> None:
        super().__init__(name, key_of, max_wait)
        self.rate = Rate(limit=limit, interval=interval)

    def make_policy(self) -> AbstractCallRatePolicy:
        return MovingWindowCallRatePolicy(rates=[self.rate], matchers=[])


class ReportedWindowLayer(BudgetLayer):
    """A fixed window the server reports on every response (calls remaining, epoch second of the reset).

    Headers that are missing, not numbers or negative are ignored; a reset further away than `max_wait`
    is taken at its word, so the next call fails at once instead of waiting for it.
    """

    def __init__(
        self, name: str, key_of: KeyOf, limit: int, period: timedelta, remaining_header: str, reset_header: str, max_wait: Optional[float]
    ) -> None:
        super().__init__(name, key_of, max_wait)
        self._limit = limit
        self._period = period
        self._remaining_header = remaining_header
        self._reset_header = reset_header

    def make_policy(self) -> AbstractCallRatePolicy:
        # The CDK's fixed window compares naive local times (datetime.now()).
        return FixedWindowCallRatePolicy(next_reset_ts=datetime.now() + self._period, period=self._period, call_limit=self._limit, matchers=[])

    def update(self, request: Any, response: Any) -> None:
        if not isinstance(response, requests.Response):
            return
        policy = self.policy_for(request)
        if policy is None:
            return
        remaining = finite_number(response.headers.get(self._remaining_header))
        reset = finite_number(response.headers.get(self._reset_header))
        if remaining is None and response.status_code == 429:
            remaining = 0
        reset_at: Optional[datetime] = None
        if reset is not None:
            try:
                reset_at = datetime.fromtimestamp(min(reset, 253402300799.0))  # at most the year 9999
            except (OverflowError, OSError, ValueError):
                reset_at = None
        if remaining is not None or reset_at is not None:
            policy.update(available_calls=int(remaining) if remaining is not None else None, call_reset_ts=reset_at)


class LayeredBudget(AbstractAPIBudget):
    """Every layer whose key matches a request must grant it a call before it is sent."""

    def __init__(self, vendor: str, layers: Sequence[BudgetLayer], sleep: Optional[Callable[[float], None]] = None) -> None:
        self.vendor = vendor
        self.layers: List[BudgetLayer] = list(layers)
        self._sleep = sleep

    def get_matching_policy(self, request: Any) -> Optional[AbstractCallRatePolicy]:
        for layer in self.layers:
            policy = layer.policy_for(request)
            if policy is not None:
                return policy
        return None

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        for layer in self.layers:
            policy = layer.policy_for(request)
            if policy is not None:
                self._acquire(layer, policy, request)

    def _acquire(self, layer: BudgetLayer, policy: AbstractCallRatePolicy, request: Any) -> None:
        try:
            policy.try_acquire(request, weight=1)
            return
        except CallRateLimitHit:
            pass
        limits = settings()
        total_limit = limits.max_total_wait_seconds
        started = time.monotonic()
        with layer.waiting:
            while True:
                try:
                    policy.try_acquire(request, weight=1)
                    layer.waited_seconds += time.monotonic() - started
                    return
                except CallRateLimitHit as hit:
                    wait = max(0.0, hit.time_to_wait.total_seconds())
                cap = layer.max_wait if layer.max_wait is not None else total_limit
                if wait > cap or time.monotonic() - started + wait > total_limit:
                    raise WaitTooLong(wait, cap, f"the {layer.name} budget is spent")
                if wait >= limits.log_waits_over_seconds:
                    LOGGER.info(f"{self.vendor}: waiting {wait:.0f} s for the {layer.name} budget before the next request")
                (self._sleep or sleep)(min(wait, 60.0) if wait > 0 else 0.001)

    def update_from_response(self, request: Any, response: Any) -> None:
        for layer in self.layers:
            layer.update(request, response)


class Unlimited(AbstractAPIBudget):
    """No client-side limits (`SOURCE_USAGE_CLIENT_RATE_BUDGETS=off`, or a vendor limited otherwise)."""

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        return None

    def get_matching_policy(self, request: Any) -> Optional[AbstractCallRatePolicy]:
        return None

    def update_from_response(self, request: Any, response: Any) -> None:
        return None


_process_layers: Dict[tuple, BudgetLayer] = {}
_process_lock = threading.Lock()


def process_layer(key: tuple, make: Callable[[], BudgetLayer]) -> BudgetLayer:
    """The layer for `key` (vendor, host, limit name), created once per process and shared from then on."""
    with _process_lock:
        layer = _process_layers.get(key)
        if layer is None:
            layer = _process_layers[key] = make()
        return layer


def reset_process_layers() -> None:
    """Forget every process-wide layer (tests that must not share per-IP budgets with the tests before them)."""
    with _process_lock:
        _process_layers.clear()


def everything(request: requests.PreparedRequest) -> Optional[str]:
    """A key function for limits over all of a vendor's requests (per source IP, per organization)."""
    return ""
