"""Client-side rate budgets built on the CDK's `HttpAPIBudget`.

Some limits apply per tenant rather than per endpoint (Meraki: 10 requests per second per
organization). `KeyedAPIBudget` finds the key of each request and keeps one CDK
`MovingWindowCallRatePolicy` per key, so every stream of a vendor draws from the same budgets and a
sync stays under the limits instead of bouncing off them.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional

import requests
from airbyte_cdk.sources.streams.call_rate import AbstractCallRatePolicy, HttpAPIBudget, MovingWindowCallRatePolicy, Rate


class KeyedAPIBudget(HttpAPIBudget):
    """One moving-window policy per key; requests without a key are not limited."""

    def __init__(self, key_of: Callable[[requests.PreparedRequest], Optional[str]], rates: List[Rate], **kwargs: Any) -> None:
        super().__init__(policies=[], **kwargs)
        self._key_of = key_of
        self._rates = rates
        self._by_key: Dict[str, MovingWindowCallRatePolicy] = {}
        self._lock = threading.Lock()

    def get_matching_policy(self, request: Any) -> Optional[AbstractCallRatePolicy]:
        key = self._key_of(request) if isinstance(request, requests.PreparedRequest) else None
        if key is None:
            return None
        with self._lock:
            policy = self._by_key.get(key)
            if policy is None:
                policy = self._by_key[key] = MovingWindowCallRatePolicy(rates=self._rates, matchers=[])
            return policy
