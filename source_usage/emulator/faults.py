"""Fault injection: what can go wrong between a client and a vendor, at configurable rates."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>"
)


@dataclass
class FaultPlan:
    """Rates are per request, between 0 and 1; a request suffers at most one fault."""

    error_rate: float = 0.0  # 500/502 (HTML)/503/504
    drop_rate: float = 0.0  # the connection closes in the middle of the body
    malformed_rate: float = 0.0  # a 200 whose body is not valid JSON
    slow_rate: float = 0.0  # the response is delayed by `slow_seconds`
    slow_seconds: float = 0.5

    @classmethod
    def from_mapping(cls, values: Optional[Mapping[str, Any]]) -> "FaultPlan":
        return cls(**{key: float(value) for key, value in (values or {}).items() if key in cls.__dataclass_fields__})

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        return any((self.error_rate, self.drop_rate, self.malformed_rate, self.slow_rate))


class FaultDice:
    """Decides, reproducibly from a seed, which fault (if any) a request suffers."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def roll(self, plan: FaultPlan) -> Optional[str]:
        if not plan.active:
            return None
        with self._lock:
            draw = self._rng.random()
        for fault, rate in (("error", plan.error_rate), ("drop", plan.drop_rate), ("malformed", plan.malformed_rate), ("slow", plan.slow_rate)):
            if draw < rate:
                return fault
            draw -= rate
        return None

    def pick(self, options: list) -> Any:
        with self._lock:
            return self._rng.choice(options)
