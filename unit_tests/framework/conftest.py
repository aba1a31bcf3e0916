"""Fixtures of the framework tests: a raw-socket HTTP server on 127.0.0.1 (for the transport, which
requests-mock bypasses) and a log capture that sees the CDK's `airbyte` logger."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable, Iterator, List, Optional

import pytest

Handler = Callable[[socket.socket, bytes, threading.Event], None]


class RawServer:
    """A tiny HTTP/1.1 server: every connection reads one request head and runs `handler` on it.

    `connections` counts accepted connections (each attempt of the client opens one: the handlers close
    them), `requests` keeps the request heads. `stopped` is set at teardown: handlers that drip bytes stop.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.stopped = threading.Event()
        self.requests: List[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.requests)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            conn.settimeout(5)
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            with self._lock:
                self.requests.append(head)
            try:
                self.handler(conn, head, self.stopped)
            except OSError:
                pass  # the client shut the connection (a deadline, a refused body)

    def close(self) -> None:
        self.stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    """`raw_server(handler, host="127.0.0.1")` starts a RawServer, closed at the end of the test."""
    servers: List[RawServer] = []

    def start(handler: Handler, host: str = "127.0.0.1") -> RawServer:
        server = RawServer(handler, host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, level: Optional[int] = None) -> List[str]:
        return [record.getMessage() for record in self.records if level is None or record.levelno == level]


@pytest.fixture
def airbyte_log() -> Iterator[Captured]:
    """Every record logged to the `airbyte` logger (and its children) during the test."""
    handler = Captured()
    logger = logging.getLogger("airbyte")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)
