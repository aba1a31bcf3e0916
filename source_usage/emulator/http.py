"""The emulator's small HTTP model: what a vendor app receives and answers."""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlencode

from source_usage.emulator.clock import REAL, Timer


@dataclass
class Request:
    method: str
    path: str  # below the vendor's prefix, e.g. "/organizations/123/networks"
    query: Dict[str, List[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    base_url: str  # scheme://host:port + the prefix it was served under, for absolute links
    client_ip: str = "127.0.0.1"  # the source address, for per-IP limits
    prefix: str = ""  # the prefix it was served under (a vendor may answer under several, e.g. Meraki's shards)
    raw_query: str = ""  # the query string exactly as sent

    @property
    def origin(self) -> str:
        """scheme://host:port of the server the request reached."""
        if self.prefix and self.base_url.endswith(self.prefix):
            return self.base_url[: len(self.base_url) - len(self.prefix)]
        return self.base_url

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def url(self, path: Optional[str] = None, **params: Any) -> str:
        """An absolute URL below this vendor, with `params` replacing the request's query parameters."""
        merged = {key: values[0] for key, values in self.query.items()}
        merged.update({key: value for key, value in params.items() if value is not None})
        for key in [key for key, value in params.items() if value is None]:
            merged.pop(key, None)
        query = urlencode(merged, safe=",:")
        return f"{self.base_url}{path if path is not None else self.path}" + (f"?{query}" if query else "")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: List[Tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode()


def json_response(body: Any, status: int = 200, headers: Optional[List[Tuple[str, str]]] = None, content_type: str = "application/json") -> Response:
    return Response(status=status, body=body, headers=list(headers or []), content_type=content_type)


class TokenBucket:
    """A thread-safe token bucket: `rate` tokens per second, holding at most `capacity`."""

    def __init__(self, rate: float, capacity: float, timer: Timer = REAL) -> None:
        self.rate = rate
        self.capacity = capacity
        self.timer = timer
        self._tokens = capacity
        self._updated = timer.monotonic()
        self._lock = threading.Lock()

    def take(self) -> Optional[float]:
        """Take one token; None if granted, else the seconds until one is available."""
        with self._lock:
            now = self.timer.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self.rate


def retry_after_seconds(wait: float) -> str:
    """Retry-After as whole seconds (what Meraki's SDK expects), never less than one."""
    return str(max(1, math.ceil(wait)))


class FixedWindow:
    """N requests per window that starts at the first request and rolls over after `period` seconds."""

    def __init__(self, limit: int, period: float, timer: Timer = REAL) -> None:
        self.limit = limit
        self.period = period
        self.timer = timer
        self._start: Optional[float] = None
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> Tuple[bool, int, float]:
        """(granted, remaining, reset epoch seconds)."""
        with self._lock:
            now = self.timer.time()
            if self._start is None or now >= self._start + self.period:
                self._start, self._used = now, 0
            granted = self._used < self.limit
            if granted:
                self._used += 1
            return granted, self.limit - self._used, self._start + self.period

    def exhaust(self, seconds: float) -> None:
        """Use up the window and make it last `seconds` from now (a 429 storm)."""
        with self._lock:
            now = self.timer.time()
            self._start, self._used = now - self.period + seconds, self.limit


class RollingWindow:
    """At most `limit` requests per key in any `period` seconds (a moving window); refusals are not counted."""

    def __init__(self, limit: int, period: float, timer: Timer = REAL) -> None:
        self.limit = limit
        self.period = period
        self.timer = timer
        self._hits: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str = "") -> Optional[float]:
        """Count one request of `key`; None if granted, else the seconds until the window admits one again."""
        with self._lock:
            now = self.timer.monotonic()
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.period:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.period - now if hits else self.period
            hits.append(now)
            return None
