"""transport.py: bounded bodies (announced, grown, decompressed), a deadline on the whole attempt, and
redirects only where the host policy allows. Against a raw-socket server on 127.0.0.1: requests-mock
bypasses the transport adapter."""

from __future__ import annotations

import gzip
import socket
import threading
from typing import Any, Callable, List

import pytest
import requests
from airbyte_cdk.models import FailureType

from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import DeadlineExceeded, UsageError, VendorRequestFailed
from source_usage.framework.settings import reload_settings
from source_usage.framework.transport import Attempt, attempt_deadline
from source_usage.framework.vendor import VendorConnection
from unit_tests.framework.conftest import RawServer

LIMIT = 64


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64-byte body limit, 1 retry, and a read timeout far above any deadline used here."""
    monkeypatch.setenv("SOURCE_USAGE_MAX_BODY_BYTES", str(LIMIT))
    monkeypatch.setenv("SOURCE_USAGE_REQUEST_DEADLINE_SECONDS", "15")
    monkeypatch.setenv("SOURCE_USAGE_READ_TIMEOUT_SECONDS", "20")
    monkeypatch.setenv("SOURCE_USAGE_MAX_RETRIES", "1")
    reload_settings()


@pytest.fixture
def tight_deadline(small_limits: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.2 s deadline per attempt, for servers that never finish (an answer that does finish gets 15 s)."""
    monkeypatch.setenv("SOURCE_USAGE_REQUEST_DEADLINE_SECONDS", "0.2")
    reload_settings()


def acme(server: RawServer) -> VendorConnection:
    return VendorConnection("acme", f"{server.url}/v1", VendorErrors("acme"))


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(body: bytes, status: str = "200 OK", **headers: str) -> Callable[[socket.socket, bytes, threading.Event], None]:
    def handle(conn: socket.socket, request: bytes, stopped: threading.Event) -> None:
        conn.sendall(head(status, Content_Type="application/json", Content_Length=str(len(body)), Connection="close", **headers) + body)

    return handle


def close_delimited(body: bytes) -> Callable[[socket.socket, bytes, threading.Event], None]:
    def handle(conn: socket.socket, request: bytes, stopped: threading.Event) -> None:
        conn.sendall(head(Content_Type="application/json", Connection="close") + body)

    return handle


def chunked(*chunks: bytes) -> Callable[[socket.socket, bytes, threading.Event], None]:
    def handle(conn: socket.socket, request: bytes, stopped: threading.Event) -> None:
        conn.sendall(head(Content_Type="application/json", Transfer_Encoding="chunked", Connection="close"))
        for chunk in chunks:
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.sendall(b"0\r\n\r\n")

    return handle


def drip(prefix: bytes, byte: bytes) -> Callable[[socket.socket, bytes, threading.Event], None]:
    """Sends `prefix`, then one `byte` every 20 ms until the client goes away (or the test ends)."""

    def handle(conn: socket.socket, request: bytes, stopped: threading.Event) -> None:
        conn.sendall(prefix)
        for _ in range(500):
            if stopped.wait(0.02):
                return
            conn.sendall(byte)

    return handle


def silent(prefix: bytes) -> Callable[[socket.socket, bytes, threading.Event], None]:
    """Sends `prefix`, then nothing until the client goes away (or the test ends)."""

    def handle(conn: socket.socket, request: bytes, stopped: threading.Event) -> None:
        conn.sendall(prefix)
        conn.settimeout(0.05)
        for _ in range(200):
            if stopped.is_set():
                return
            try:
                if conn.recv(1) == b"":
                    return  # the client closed its side
            except socket.timeout:
                continue

    return handle


def failure_of(connection: VendorConnection) -> VendorRequestFailed:
    with pytest.raises(UsageError) as failure:
        connection.send("GET", "things")
    assert isinstance(failure.value, VendorRequestFailed)
    return failure.value


def padded(size: int) -> bytes:
    """`{"pad": ""}` followed by spaces up to `size` bytes."""
    body = b'{"pad": ""}'
    return body + b" " * (size - len(body))


# ----- bounded bodies ---------------------------------------------------------------------------------


def test_given_a_body_of_exactly_the_limit_when_read_then_it_is_accepted(small_limits: None, raw_server: Callable[..., RawServer], waits: List[float]) -> None:
    server = raw_server(answer(padded(LIMIT)))
    assert acme(server).send("GET", "things").json() == {"pad": ""}
    assert server.connections == 1


def test_given_a_close_delimited_body_one_byte_over_the_limit_when_read_then_it_is_refused_unretried(
    small_limits: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(close_delimited(padded(LIMIT + 1)))
    failure = failure_of(acme(server))
    assert str(failure) == f"acme: GET {server.url}/v1/things answered with a body that grew, over the limit of 64 bytes (SOURCE_USAGE_MAX_BODY_BYTES)"
    assert failure.failure_type == FailureType.system_error
    assert server.connections == 1
    assert waits == []


def test_given_a_chunked_body_growing_over_the_limit_when_read_then_it_is_refused_unretried(
    small_limits: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(chunked(b'{"a": "' + b"x" * 40, b"y" * 40 + b'"}'))
    assert "answered with a body that grew, over the limit of 64 bytes" in str(failure_of(acme(server)))
    assert server.connections == 1
    assert waits == []


def test_given_a_content_length_over_the_limit_when_answered_then_it_is_refused_without_reading_the_body(
    small_limits: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    # the server sends no body at all: reading it would hang until the 15 s deadline
    server = raw_server(silent(head(Content_Type="application/json", Content_Length="1000")))
    failure = failure_of(acme(server))
    assert str(failure) == (
        f"acme: GET {server.url}/v1/things answered with a body that announces 1,000 bytes, over the limit of 64 bytes (SOURCE_USAGE_MAX_BODY_BYTES)"
    )
    assert server.connections == 1
    assert waits == []


def test_given_a_content_length_of_exactly_the_limit_when_answered_then_it_is_read(small_limits: None, raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(answer(padded(LIMIT)))
    assert acme(server).send("GET", "things").status_code == 200


def test_given_a_gzip_bomb_when_read_then_it_stops_at_the_limit_counted_after_decompression(
    small_limits: None, monkeypatch: pytest.MonkeyPatch, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_BODY_BYTES", "100000")
    reload_settings()
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    assert len(bomb) < 100_000  # the compressed size passes the announced-length check
    server = raw_server(answer(bomb, Content_Encoding="gzip"))
    failure = failure_of(acme(server))
    assert str(failure) == (
        f"acme: GET {server.url}/v1/things answered with a body that grew, over the limit of 100,000 bytes (SOURCE_USAGE_MAX_BODY_BYTES)"
    )
    assert server.connections == 1
    assert waits == []


def test_given_a_gzip_body_under_the_limit_when_read_then_it_is_decompressed(
    small_limits: None, monkeypatch: pytest.MonkeyPatch, raw_server: Callable[..., RawServer]
) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_BODY_BYTES", "1000")
    reload_settings()
    body = b'{"items": [' + b",".join(b"1" for _ in range(400)) + b"]}"
    server = raw_server(answer(gzip.compress(body), Content_Encoding="gzip"))
    assert acme(server).send("GET", "things").json() == {"items": [1] * 400}


# ----- the deadline of an attempt --------------------------------------------------------------------


def test_given_a_server_dripping_the_body_when_the_deadline_passes_then_the_request_fails_unretried(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(drip(head(Content_Type="application/json", Content_Length="60"), b" "))
    failure = failure_of(acme(server))
    assert str(failure) == f"acme: GET {server.url}/v1/things did not complete within 0.2 s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)"
    assert failure.failure_type == FailureType.transient_error
    assert server.connections == 1
    assert waits == []


def test_given_a_close_delimited_body_dripping_when_the_deadline_passes_then_the_request_fails_unretried(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(drip(head(Content_Type="application/json", Connection="close") + b"[", b" "))
    assert "did not complete within 0.2 s" in str(failure_of(acme(server)))
    assert server.connections == 1
    assert waits == []


def test_given_a_close_delimited_body_dripping_when_the_deadline_passes_then_it_fails_as_transient_like_any_deadline(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(drip(head(Content_Type="application/json", Connection="close") + b"[", b" "))
    assert failure_of(acme(server)).failure_type == FailureType.transient_error


def test_given_a_server_that_never_answers_when_the_deadline_passes_then_the_request_fails_unretried(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(silent(b""))
    assert str(failure_of(acme(server))) == f"acme: GET {server.url}/v1/things did not complete within 0.2 s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)"
    assert server.connections == 1
    assert waits == []


def test_given_a_server_dripping_the_headers_when_the_deadline_passes_then_the_request_fails_unretried(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", b"X-Drip: 1\r\n"))
    failure = failure_of(acme(server))
    assert str(failure) == f"acme: GET {server.url}/v1/things did not complete within 0.2 s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)"
    assert server.connections == 1
    assert waits == []


def test_given_a_close_delimited_body_that_never_starts_when_the_deadline_passes_then_the_request_fails_unretried(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(silent(head(Content_Type="application/json", Connection="close")))
    failure = failure_of(acme(server))
    assert "did not complete within 0.2 s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)" in str(failure)
    assert server.connections == 1
    assert waits == []


def test_given_a_5xx_over_a_real_socket_when_sent_then_it_is_retried_on_new_attempts(
    small_limits: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    server = raw_server(answer(b"{}", status="503 Service Unavailable"))
    assert str(failure_of(acme(server))) == f"acme: GET {server.url}/v1/things failed after 2 attempts (last: HTTP 503)"
    assert server.connections == 2
    assert len(waits) == 1


def test_given_a_request_when_sent_then_the_user_agent_names_the_connector(small_limits: None, raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(answer(b"{}"))
    acme(server).send("GET", "things")
    assert b"\r\nUser-Agent: source-usage (Airbyte source; https://github.com/source-usage/source-usage)\r\n" in server.requests[0]


# ----- redirects -------------------------------------------------------------------------------------


def test_given_a_redirect_to_another_loopback_host_when_sent_then_not_one_connection_reaches_it(
    small_limits: None, raw_server: Callable[..., RawServer], waits: List[float]
) -> None:
    foreign = raw_server(answer(b'{"stolen": true}'), host="127.0.0.2")
    server = raw_server(answer(b"", status="302 Found", Location=f"{foreign.url}/v1/things"))
    failure = failure_of(acme(server))
    assert str(failure) == (
        f"acme: GET {server.url}/v1/things was answered with an HTTP 302 redirect to {foreign.url}, which is not this vendor's configured host: not followed"
    )
    assert foreign.connections == 0
    assert server.connections == 1
    assert waits == []


def test_given_a_same_origin_redirect_over_a_real_socket_when_followed_then_the_credentials_go_along(
    small_limits: None, raw_server: Callable[..., RawServer]
) -> None:
    seen: List[bytes] = []

    def handle(conn: socket.socket, request: bytes, stopped: threading.Event) -> None:
        seen.append(request)
        if request.startswith(b"GET /v1/things "):
            conn.sendall(head("302 Found", Location="/v1/moved", Content_Length="0", Connection="close"))
        else:
            conn.sendall(head(Content_Type="application/json", Content_Length="2", Connection="close") + b"{}")

    server = raw_server(handle)
    connection = VendorConnection("acme", f"{server.url}/v1", VendorErrors("acme"), authenticator=requests.auth.HTTPBasicAuth("user", "password-123"))
    assert connection.send("GET", "things").json() == {}
    assert [request.split(b"\r\n")[0] for request in seen] == [b"GET /v1/things HTTP/1.1", b"GET /v1/moved HTTP/1.1"]
    assert all(b"\r\nAuthorization: Basic dXNlcjpwYXNzd29yZC0xMjM=\r\n" in request for request in seen)


# ----- the attempt and its watchdog ------------------------------------------------------------------


def test_given_an_attempt_when_it_expires_then_its_sockets_are_shut_down() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        attempt = Attempt(60)
        attempt.note_socket(ours)
        attempt.expire()
        theirs.settimeout(5)
        assert theirs.recv(1) == b""  # the peer sees the end of the stream
        assert attempt.expired
        with pytest.raises(DeadlineExceeded, match="did not complete within 60 s"):
            attempt.check()


def test_given_an_expired_attempt_when_a_socket_is_noted_later_then_it_is_shut_at_once() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        attempt = Attempt(60)
        attempt.expire()
        attempt.note_socket(ours)
        theirs.settimeout(5)
        assert theirs.recv(1) == b""


def test_given_a_finished_attempt_when_it_would_expire_then_its_sockets_are_left_alone() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        attempt = Attempt(60)
        attempt.note_socket(ours)
        attempt.done = True
        attempt.expire()
        ours.sendall(b"still open")
        theirs.settimeout(5)
        assert theirs.recv(10) == b"still open"


def test_given_an_attempt_within_its_deadline_when_checked_then_nothing_is_raised() -> None:
    Attempt(60).check()
    Attempt(60).note_socket(None)


def test_given_an_attempt_past_its_deadline_when_checked_then_it_raises_and_expires() -> None:
    attempt = Attempt(0)
    with pytest.raises(DeadlineExceeded, match="did not complete within 0 s \\(SOURCE_USAGE_REQUEST_DEADLINE_SECONDS\\)"):
        attempt.check()
    assert attempt.expired


def test_given_a_deadline_block_when_it_ends_then_the_attempt_is_done_and_the_outer_one_is_current_again() -> None:
    from source_usage.framework import transport

    with attempt_deadline(60) as outer:
        with attempt_deadline(30) as inner:
            assert transport._current_attempt() is inner
        assert inner.done
        assert transport._current_attempt() is outer
    assert transport._current_attempt() is None


def test_given_a_deadline_block_when_the_deadline_passes_then_the_watchdog_shuts_its_sockets() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        with attempt_deadline(0.05) as attempt:
            attempt.note_socket(ours)
            theirs.settimeout(5)
            assert theirs.recv(1) == b""  # returns once the watchdog shut the socket
            assert attempt.expired


# ----- the session -------------------------------------------------------------------------------------


def test_given_a_redirect_loop_on_the_same_host_when_sent_then_it_stops_after_five_redirects(waits: List[float]) -> None:
    import requests_mock

    with requests_mock.Mocker() as mock:
        mock.get("https://api.acme.example/v1/a", status_code=302, headers={"Location": "/v1/b"})
        mock.get("https://api.acme.example/v1/b", status_code=302, headers={"Location": "/v1/a"})
        connection = VendorConnection("acme", "https://api.acme.example/v1", VendorErrors("acme"))
        with pytest.raises(UsageError) as failure:
            connection.send("GET", "a")
        assert mock.call_count == 6  # the request and five redirects
    assert str(failure.value) == "acme: the request could not be sent (TooManyRedirects: Exceeded 5 redirects.)"
    assert waits == []


def test_given_a_netrc_entry_for_the_host_when_an_unauthenticated_request_is_sent_then_no_credentials_are_added(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests_mock

    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.acme.example login someone password netrc-password-1\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with requests_mock.Mocker() as mock:
        mock.post("https://api.acme.example/v1/auth", json={})
        VendorConnection("acme", "https://api.acme.example/v1", VendorErrors("acme")).send("POST", "auth", authenticated=False)
        assert "Authorization" not in mock.last_request.headers


def test_given_proxy_and_ca_settings_in_the_environment_when_a_session_is_made_then_they_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    session = VendorConnection("acme", "https://api.acme.example/v1", VendorErrors("acme")).session
    monkeypatch.setenv("HTTPS_PROXY", "http://other.local:3128")
    assert session.proxies.get("https") == "http://proxy.local:3128"
    assert session.verify == "/etc/ssl/corporate.pem"
    assert session.trust_env is False


def test_given_a_host_excluded_from_the_proxy_when_a_session_is_made_then_no_proxy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "acme.example")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")
    session = VendorConnection("acme", "https://api.acme.example/v1", VendorErrors("acme")).session
    assert "https" not in session.proxies
    assert session.verify == "/etc/ssl/curl.pem"


class FakeRaw:
    """Stands for a urllib3 response: hands out `chunks` of an already decoded body."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.closed = False
        self.status = 200

    def stream(self, amt: int, decode_content: Any = None) -> Any:
        while self.chunks:
            yield self.chunks.pop(0)

    def read(self, amt: Any = None, decode_content: Any = None, **kwargs: Any) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True


def test_given_a_bounded_body_when_read_whole_then_every_chunk_is_joined_within_the_limit() -> None:
    from source_usage.framework.transport import BoundedBody

    assert BoundedBody(FakeRaw(b"abc", b"def"), 6, None).read() == b"abcdef"


def test_given_a_bounded_body_when_read_in_parts_past_the_limit_then_it_is_closed_and_refused() -> None:
    from source_usage.framework.errors import BodyTooLarge
    from source_usage.framework.transport import BoundedBody

    raw = FakeRaw(b"abc", b"def", b"g")
    body = BoundedBody(raw, 6, None)
    assert body.read(3) == b"abc"
    assert body.read(3) == b"def"
    with pytest.raises(BodyTooLarge, match="answered with a body that grew, over the limit of 6 bytes"):
        body.read(3)
    assert raw.closed
    assert body.status == 200  # everything else is the response's own


def test_given_an_expired_attempt_when_a_bounded_body_is_read_then_it_stops_with_the_deadline() -> None:
    from source_usage.framework.transport import BoundedBody

    attempt = Attempt(60)
    attempt.expire()
    with pytest.raises(DeadlineExceeded):
        BoundedBody(FakeRaw(b"abc"), 100, attempt).read()


@pytest.mark.parametrize("value, length", [(None, None), ("12", 12), ("0", 0), ("twelve", None)])
def test_given_a_content_length_header_when_read_then_only_a_number_counts(value: Any, length: Any) -> None:
    from source_usage.framework.transport import _content_length

    assert _content_length(value) == length


# ----- a watchdog of its own, the bounded body's arguments, the adapter ---------------------------------


def test_given_a_watchdog_of_its_own_when_attempts_pass_their_deadlines_then_it_shuts_each_skipping_finished_ones_and_keeps_watching() -> None:
    from source_usage.framework.transport import _Watchdog

    watchdog = _Watchdog()
    finished_ours, finished_theirs = socket.socketpair()
    first_ours, first_theirs = socket.socketpair()
    later_ours, later_theirs = socket.socketpair()
    with finished_ours, finished_theirs, first_ours, first_theirs, later_ours, later_theirs:
        finished = Attempt(0.01)
        finished.note_socket(finished_ours)
        finished.finish()
        first = Attempt(0.03)
        first.note_socket(first_ours)
        watchdog.watch(finished)
        watchdog.watch(first)
        first_theirs.settimeout(5)
        assert first_theirs.recv(1) == b""  # shut by the watchdog
        assert first.expired
        finished_ours.sendall(b"open")
        finished_theirs.settimeout(5)
        assert finished_theirs.recv(4) == b"open"  # a finished attempt's socket is left alone

        thread = watchdog._thread
        assert thread is not None and thread.name == "request-deadlines" and thread.daemon
        later = Attempt(0.02)  # the watchdog has nothing left to watch: it waits for the next attempt
        later.note_socket(later_ours)
        watchdog.watch(later)
        later_theirs.settimeout(5)
        assert later_theirs.recv(1) == b""
        assert watchdog._thread is thread  # the same thread, still running


def test_given_a_thread_that_never_opened_an_attempt_when_the_current_attempt_is_asked_then_there_is_none() -> None:
    from source_usage.framework import transport

    seen: List[Any] = []
    thread = threading.Thread(target=lambda: seen.append(transport._current_attempt()))
    thread.start()
    thread.join(5)
    assert seen == [None]


class RecordingRaw(FakeRaw):
    """A FakeRaw that records how it was asked for its body."""

    def __init__(self, *chunks: bytes) -> None:
        super().__init__(*chunks)
        self.calls: List[Any] = []

    def stream(self, amt: int, decode_content: Any = None) -> Any:
        self.calls.append(("stream", amt, decode_content))
        return super().stream(amt, decode_content)

    def read(self, amt: Any = None, decode_content: Any = None, **kwargs: Any) -> bytes:
        self.calls.append(("read", amt, decode_content, kwargs))
        return super().read(amt, decode_content, **kwargs)


def test_given_a_bounded_body_when_read_then_the_amount_and_decoding_asked_for_are_passed_on() -> None:
    from source_usage.framework.transport import BoundedBody

    raw = RecordingRaw(b"abc", b"def", b"ghi", b"jkl")
    body = BoundedBody(raw, 100, None)
    assert body.read(decode_content=False) == b"abcdefghijkl"
    raw.chunks = [b"xy"]
    assert body.read(2, decode_content=True, cache_content=False) == b"xy"
    raw.chunks = [b"z"]
    assert list(body.stream(7, decode_content=False)) == [b"z"]
    assert raw.calls == [
        ("stream", 65536, False),  # a whole body is read in chunks of 64 KiB
        ("read", 2, True, {"cache_content": False}),
        ("stream", 7, False),
    ]


def test_given_a_response_built_inside_an_attempt_when_its_body_is_read_after_the_deadline_then_it_stops_with_it() -> None:
    from source_usage.framework.transport import BoundedAdapter

    request = requests.Request("GET", "https://api.acme.example/v1/things").prepare()
    raw = FakeRaw(b"{}")
    raw.headers = {}  # type: ignore[attr-defined]
    raw.reason = "OK"  # type: ignore[attr-defined]
    with attempt_deadline(60) as attempt:
        response = BoundedAdapter().build_response(request, raw)
        attempt.expire()
        with pytest.raises(DeadlineExceeded):
            response.content


def test_given_a_vendor_session_when_made_then_both_schemes_go_through_one_bounded_adapter_sized_for_the_pool() -> None:
    from source_usage.framework import transport
    from airbyte_cdk.sources.streams.call_rate import APIBudget

    from source_usage.framework.hosts import HostPolicy

    session = transport.VendorSession(APIBudget(policies=[]), HostPolicy.for_base_url("https://api.acme.example/v1"), pool_size=7)
    adapter = session.get_adapter("https://api.acme.example/v1")
    assert isinstance(adapter, transport.BoundedAdapter)
    assert session.get_adapter("http://api.acme.example/v1") is adapter
    assert adapter._pool_maxsize == 7
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
    assert adapter.poolmanager.pool_classes_by_scheme is transport._WATCHED_POOLS
    assert adapter.proxy_manager_for("http://proxy.example:3128").pool_classes_by_scheme is transport._WATCHED_POOLS


@pytest.mark.parametrize(
    "handler",
    [
        silent(b""),
        drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", b"X-Drip: 1\r\n"),
        silent(head(Content_Type="application/json", Connection="close")),
    ],
    ids=["never answers", "drips the headers", "body never starts"],
)
def test_given_a_server_cut_off_by_the_deadline_when_the_request_fails_then_it_is_transient(
    tight_deadline: None, raw_server: Callable[..., RawServer], waits: List[float], handler: Any
) -> None:
    assert failure_of(acme(raw_server(handler))).failure_type == FailureType.transient_error


def test_given_a_read_timeout_shorter_than_the_deadline_when_the_server_is_silent_then_the_read_times_out_first(
    small_limits: None, raw_server: Callable[..., RawServer], waits: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_USAGE_READ_TIMEOUT_SECONDS", "0.2")
    monkeypatch.setenv("SOURCE_USAGE_MAX_RETRIES", "0")
    reload_settings()
    server = raw_server(silent(b""))
    assert str(failure_of(acme(server))) == f"acme: GET {server.url}/v1/things failed after 1 attempts (last: the request timed out)"
