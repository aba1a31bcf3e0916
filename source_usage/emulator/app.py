"""What every emulated vendor provides to the server."""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from source_usage.emulator.clock import Timer
from source_usage.emulator.http import Request, Response


@dataclass(frozen=True)
class BenchScenario:
    """A benchmark scenario a vendor's emulator declares (`bench/run.py` runs it without naming the vendor).

    `kind` "limited": one read with the vendor's limits on, reported against `VendorApp.ideal` (the time its
    own limits allow for the requests the read needed) and its share of 429s. `kind` "memory": one read with
    the limits off, reported by its peak RSS against `target_rss_mb`. `option`: run only when asked for
    (`--<option>`), e.g. because the limit itself makes it take minutes.
    """

    name: str
    title: str
    knobs: Mapping[str, Any] = field(default_factory=dict)  # this vendor's emulator knobs
    streams: Optional[Tuple[str, ...]] = None  # None: every stream of the vendor
    kind: str = "limited"
    option: Optional[str] = None
    target_ratio: float = 1.15
    target_429_share: float = 0.02
    target_rss_mb: Optional[float] = None
    scale: Optional[int] = None  # the emulator's scale (default: the benchmark's)


@dataclass(frozen=True)
class Ideal:
    """The fewest seconds a vendor's limits allow between the first and the last of some requests, and how
    that figure comes about."""

    seconds: float
    explanation: str


class VendorApp(ABC):
    """One vendor's API: deterministic data from a seed and a scale, its auth, errors and rate limits."""

    name: str
    prefix: str  # the path the vendor is served under, e.g. "/meraki/api/v1"
    streams: tuple  # the connector streams whose records this vendor can list
    limit_names: tuple = ()  # the rate limits it counts 429s by, reported as stats()["rate_limited_by"]

    def __init__(self, seed: int, scale: int, rate_limits: bool) -> None:
        self.seed = seed
        self.scale = max(1, scale)
        self.rate_limits = rate_limits
        self.lock = threading.RLock()
        self.storm_remaining = 0
        self.counts: Counter = Counter()
        self.limited_by: Counter = Counter()  # 429s per limit (one of limit_names)
        # What the rate limits and token lifetimes count with: real time unless the Emulator stops it.
        self.timer = Timer()

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer one request (authentication, rate limits and errors included)."""

    @abstractmethod
    def expected(self, stream: str, **options: Any) -> List[dict]:
        """The records a complete read of `stream` must return, given the connector config's options."""

    @abstractmethod
    def connector_config(self, base_url: str) -> Dict[str, Any]:
        """This vendor's section of a connector config pointing at the emulator."""

    @abstractmethod
    def advance(self, steps: int = 1) -> None:
        """Make new usage appear (and grow what is still changing), `steps` periods' worth."""

    @abstractmethod
    def rate_limited(self, request: Request) -> Response:
        """A 429 answered the way this vendor answers it."""

    def prefix_of(self, path: str) -> Optional[str]:
        """The prefix this vendor serves `path` under, or None if the path is not this vendor's."""
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return self.prefix
        return None

    def tenant_of(self, request: Request) -> Optional[str]:
        """Whose rate limit a request counts against (a Meraki organization), for the request log."""
        return None

    def storm(self, count: int) -> None:
        """Answer the next `count` requests with 429, as a burst of other clients on the account would."""
        with self.lock:
            self.storm_remaining = count

    def take_storm(self) -> bool:
        with self.lock:
            if self.storm_remaining > 0:
                self.storm_remaining -= 1
                return True
            return False

    def count(self, route: str, status: int) -> None:
        with self.lock:
            self.counts[(route, status)] += 1

    def stats(self) -> Dict[str, Any]:
        with self.lock:
            by_route: Dict[str, Dict[str, int]] = {}
            for (route, status), total in self.counts.items():
                by_route.setdefault(route, {})[str(status)] = total
            requests = sum(self.counts.values())
            limited = sum(total for (_, status), total in self.counts.items() if status == 429)
            stats: Dict[str, Any] = {"requests": requests, "rate_limited": limited, "by_route": by_route}
            if self.limit_names:
                stats["rate_limited_by"] = {name: self.limited_by[name] for name in self.limit_names}
            return stats

    def reset_stats(self) -> None:
        with self.lock:
            self.counts.clear()
            self.limited_by.clear()

    # ----- for the benchmark ------------------------------------------------------------------------

    @classmethod
    def benchmark_scenarios(cls, scale: int) -> List[BenchScenario]:
        """The scenarios this vendor adds to the benchmark (beyond the ones every vendor takes part in)."""
        return []

    route_labels: Mapping[str, str] = {}  # route_of(path) -> what it serves (the stream or streams), for reports

    def route_label(self, path: str) -> str:
        """What a request path (below the prefix) serves, for the benchmark's per-route table."""
        route = route_of(path)
        return self.route_labels.get(route, f"{self.name} {route}")

    def minimum_requests(self) -> Dict[str, int]:
        """Per route label, the fewest requests a complete read of the data held needs (largest pages)."""
        return {}

    def ideal(self, requests: Sequence[Mapping[str, Any]]) -> Optional[Ideal]:
        """The fewest seconds this vendor's limits allow for `requests` (request-log entries: method, url,
        status), from the first to the last; None if it has no limits to compute with."""
        return None

    def path_of(self, url: str) -> str:
        """The path of a logged URL below this vendor's prefix (or one of its other prefixes)."""
        from urllib.parse import urlsplit

        path = urlsplit(url).path
        prefix = self.prefix_of(path)
        return path[len(prefix):] if prefix is not None else path


def route_of(path: str) -> str:
    """A request path with its ids replaced, for per-route statistics."""
    parts = []
    for part in path.strip("/").split("/"):
        parts.append("{id}" if any(ch.isdigit() for ch in part) and not part.startswith("v") else part)
    return "/" + "/".join(parts)


def moving_window_bound(count: int, limit: int, window_seconds: float) -> float:
    """The fewest seconds from the first to the last of `count` requests under `limit` per moving window."""
    return math.floor(max(0, count - 1) / limit) * window_seconds if count else 0.0


def token_bucket_bound(count: int, rate: float, capacity: float) -> float:
    """The fewest seconds from the first to the last of `count` requests from a full token bucket."""
    return max(0.0, count - capacity) / rate


def simulate_schedule(requests: Iterable[Tuple[Sequence[Tuple[str, float, float]], Sequence[Tuple[str, int, float]]]]) -> float:
    """The earliest moment the last of `requests`, sent in order with no latency, can be sent under the
    limits each names: token buckets `(key, rate, capacity)` and moving windows `(key, limit, seconds)`.
    Each request goes at the earliest moment all its limits allow, never before the one before it."""
    from collections import deque

    buckets: Dict[str, Tuple[float, float]] = {}  # key -> (tokens, at)
    windows: Dict[str, Any] = {}
    now = 0.0
    for bucket_limits, window_limits in requests:
        start = now  # each limit only asks for a later start, so the largest of their answers meets them all
        for key, rate, capacity in bucket_limits:
            tokens, at = buckets.get(key, (capacity, 0.0))
            if tokens + (start - at) * rate < 1:
                start = at + (1 - tokens) / rate
        for key, limit, seconds in window_limits:
            hits = windows.setdefault(key, deque())
            if len(hits) >= limit:
                start = max(start, hits[len(hits) - limit] + seconds)
        for key, rate, capacity in bucket_limits:
            tokens, at = buckets.get(key, (capacity, 0.0))
            tokens = min(capacity, tokens + (start - at) * rate)
            buckets[key] = (tokens - 1, start)
        for key, limit, seconds in window_limits:
            hits = windows[key]
            hits.append(start)
            while len(hits) > limit:
                hits.popleft()
        now = start
    return now
