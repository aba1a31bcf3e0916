"""The HTTP session every vendor's requests go through, and the bounds it enforces on what servers send.

* `VendorSession` is the CDK's `LimiterSession` (the vendor's API budget) that follows redirects only to
  hosts the vendor's `HostPolicy` allows, keeping the credentials there (a vendor's shard host) and refusing
  anything else before a request is sent.
* `BoundedAdapter` reads every body under a size limit, counted after decompression (a gzip bomb stops
  at the limit, not at 5 GB), refuses an announced `Content-Length` over it without reading, and enforces
  a deadline on the whole attempt: connecting, waiting for the headers and reading the body. The socket
  read timeout alone would let a server that drips a byte every few seconds hold a sync forever.

The deadline is enforced by a watchdog thread that shuts the attempt's socket down when it passes; the
attempt is opened by the HTTP client around each send (`attempt_deadline`).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple
from urllib.parse import urljoin

import requests
from airbyte_cdk.sources.streams.call_rate import APIBudget, LimiterSession
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from source_usage.framework.errors import BodyTooLarge, DeadlineExceeded
from source_usage.framework.hosts import HostPolicy
from source_usage.framework.settings import settings

MAX_REDIRECTS = 5
USER_AGENT = "source-usage (Airbyte source; https://github.com/source-usage/source-usage)"


# ----- the deadline of one attempt ---------------------------------------------------------------------


class Attempt:
    """One attempt at a request: its deadline and the sockets it uses (shut down when it passes)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()

    def note_socket(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def check(self) -> None:
        if self.expired or time.monotonic() >= self.deadline:
            self.expire()
            raise DeadlineExceeded(self.seconds)

    def finish(self) -> None:
        with self._lock:
            self.done = True

    def expire(self) -> None:
        with self._lock:
            if self.done or self.expired:
                self.expired = True
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One daemon thread that expires attempts whose deadline passed."""

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Attempt]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def watch(self, attempt: Attempt) -> None:
        with self._condition:
            heapq.heappush(self._heap, (attempt.deadline, next(self._counter), attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="request-deadlines", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait(timeout=60)
                    continue
                deadline, _, attempt = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._condition.wait(timeout=delay)
                    continue
                heapq.heappop(self._heap)
            attempt.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[Attempt]:
    """Bounds everything sent and received on this thread inside the block by `seconds`."""
    attempt = Attempt(seconds)
    previous = getattr(_current, "attempt", None)
    _current.attempt = attempt
    _WATCHDOG.watch(attempt)
    try:
        yield attempt
    finally:
        attempt.finish()
        _current.attempt = previous


def _current_attempt() -> Optional[Attempt]:
    return getattr(_current, "attempt", None)


class _WatchedConnection:
    """Tells the current attempt which socket it uses, so that its deadline can shut it down."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        attempt = _current_attempt()
        if attempt is not None:
            attempt.note_socket(self.sock)  # type: ignore[attr-defined]

    def request(self, *args: Any, **kwargs: Any) -> Any:
        attempt = _current_attempt()
        if attempt is not None:
            attempt.check()
            attempt.note_socket(self.sock)  # type: ignore[attr-defined]
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


# ----- bounded bodies ----------------------------------------------------------------------------------


class BoundedBody:
    """The urllib3 response, read at most `limit` decompressed bytes and only until the attempt's deadline."""

    def __init__(self, raw: Any, limit: int, attempt: Optional[Attempt]) -> None:
        self._raw = raw
        self._limit = limit
        self._attempt = attempt
        self._read = 0

    def _count(self, chunk: bytes) -> bytes:
        self._read += len(chunk)
        if self._read > self._limit:
            self._raw.close()
            raise BodyTooLarge(self._limit)
        if self._attempt is not None:
            self._attempt.check()
        return chunk

    def stream(self, amt: int = 2**16, decode_content: Optional[bool] = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            yield self._count(chunk)

    def read(self, amt: Optional[int] = None, decode_content: Optional[bool] = None, **kwargs: Any) -> bytes:
        if amt is None:
            return b"".join(self.stream(2**16, decode_content))
        return self._count(self._raw.read(amt, decode_content=decode_content, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class BoundedAdapter(HTTPAdapter):
    """HTTPAdapter whose connections honour the attempt's deadline and whose bodies are bounded."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        limit = settings().max_body_bytes
        announced = _content_length(response.headers.get("Content-Length"))
        if announced is not None and announced > limit:
            resp.close()
            raise BodyTooLarge(limit, announced)
        response.raw = BoundedBody(resp, limit, _current_attempt())
        return response


def _content_length(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# ----- the session -------------------------------------------------------------------------------------


class VendorSession(LimiterSession):
    """The CDK's rate-limited session with bounded bodies, deadlines and a host policy for redirects."""

    def __init__(self, api_budget: APIBudget, policy: HostPolicy, pool_size: int = 10) -> None:
        super().__init__(api_budget=api_budget)
        self.policy = policy
        self.max_redirects = MAX_REDIRECTS
        adapter = BoundedAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.headers["User-Agent"] = USER_AGENT
        self._read_environment_once(policy)

    def _read_environment_once(self, policy: HostPolicy) -> None:
        """Applies the proxy (`HTTPS_PROXY`, `NO_PROXY`...) and CA bundle (`REQUESTS_CA_BUNDLE`,
        `CURL_CA_BUNDLE`) settings of the environment once, instead of requests reading them again for every
        request (a noticeable share of a request's CPU time). `.netrc` is never consulted: credentials come
        from the config only."""
        import os

        base = f"{policy.base.scheme}://{policy.base.host}:{policy.base.port}"
        self.proxies.update(requests.utils.get_environ_proxies(base))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self.verify = ca_bundle
        self.trust_env = False

    def get_redirect_target(self, resp: requests.Response) -> Optional[str]:
        target = super().get_redirect_target(resp)
        if target:
            self.policy.check(urljoin(resp.url, target), f"was answered with an HTTP {resp.status_code} redirect to")
        return target

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        # Only allowed hosts get this far (see get_redirect_target); they keep the credentials.
        return not self.policy.allows(new_url)
