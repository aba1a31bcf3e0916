"""What every emulated vendor provides to the server."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Dict, List, Optional

from source_usage.emulator.http import Request, Response


class VendorApp(ABC):
    """One vendor's API: deterministic data from a seed and a scale, its auth, errors and rate limits."""

    name: str
    prefix: str  # the path the vendor is served under, e.g. "/meraki/api/v1"
    streams: tuple  # the connector streams whose records this vendor can list

    def __init__(self, seed: int, scale: int, rate_limits: bool) -> None:
        self.seed = seed
        self.scale = max(1, scale)
        self.rate_limits = rate_limits
        self.lock = threading.RLock()
        self.storm_remaining = 0
        self.counts: Counter = Counter()

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
            return {"requests": requests, "rate_limited": limited, "by_route": by_route}

    def reset_stats(self) -> None:
        with self.lock:
            self.counts.clear()


def route_of(path: str) -> str:
    """A request path with its ids replaced, for per-route statistics."""
    parts = []
    for part in path.strip("/").split("/"):
        parts.append("{id}" if any(ch.isdigit() for ch in part) and not part.startswith("v") else part)
    return "/" + "/".join(parts)
