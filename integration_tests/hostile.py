"""A scriptable, recording, hostile HTTP server, and a way to run the real console scripts against it.

`HostileServer` is a threaded HTTP/1.1 server on a loopback address (127.0.0.1 by default; 127.0.0.2 plays
"another host": Linux routes all of 127.0.0.0/8 to the loopback interface). It records every request it
receives (method, target, headers, body) and answers each one with the handler of the most recently added
route matching its method and path. A handler gets an `Exchange` and may answer politely (`json`, `send`,
`redirect`) or misbehave at the socket level (`write` raw bytes, `sleep` between them, drip, never end).

The vendor "plays" (`play_meraki`, `play_twilio`, `play_emnify`, `play_thousandeyes`) install routes that
answer just well enough for the connector to sync a little data (shapes from
/work/shared/vendor-contracts.md); a test then adds the one route that attacks, and gets the config section
that points the connector at the server.

`connector()` runs the real `source-usage` (or `tap-usage`) as a process of its own (through
integration_tests/launcher.py) and returns its parsed output (the harness' `Run`), how long it took and its
own peak RSS (from `wait4`, so no other child process of the test session counts).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

from integration_tests import launcher
from integration_tests.harness import Run

BIN = Path(sys.executable).parent
Headers = Union[Mapping[str, str], Sequence[Tuple[str, str]]]
Handler = Callable[["Exchange"], None]

# Credentials the plays expect; long and unlike anything else, so a test can search output for them.
MERAKI_KEY = "4f1d9c0e7b2a5d8f3c6e9b1a4d7f0c3e6b9a2d5f"
TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN = "twl-hostile-auth-token-5c9e2b7f1a4d8c"
EMNIFY_APPLICATION_TOKEN = "emn-hostile-application-token-8d3f6a1c"
EMNIFY_AUTH_TOKEN = "emn-hostile-jwt-issued-7b2e9f4a1c6d3e8b"
THOUSANDEYES_TOKEN = "te-hostile-bearer-token-2a7c4e9b1d6f3a8c"

SIM_SIDS = ("HS" + "a" * 32, "HS" + "b" * 32)


# ----- what arrived ------------------------------------------------------------------------------------


@dataclass
class Received:
    """One request as the server read it."""

    method: str
    target: str  # the request target: path and query, exactly as sent
    header_items: List[Tuple[str, str]]
    body: bytes
    at: float

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> Dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.target).query, keep_blank_values=True).items()}

    def header(self, name: str) -> Optional[str]:
        for key, value in self.header_items:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def headers(self) -> Dict[str, str]:
        return {key.lower(): value for key, value in self.header_items}


class Exchange:
    """One request being answered."""

    def __init__(self, handler: "_RequestHandler", received: Received, server: "HostileServer") -> None:
        self._handler = handler
        self.received = received
        self.server = server
        self.match: Optional[re.Match] = None

    # what arrived

    @property
    def method(self) -> str:
        return self.received.method

    @property
    def path(self) -> str:
        return self.received.path

    @property
    def query(self) -> Dict[str, str]:
        return self.received.query

    def header(self, name: str) -> Optional[str]:
        return self.received.header(name)

    # polite answers

    def send(self, status: int, body: Union[bytes, str] = b"", headers: Headers = (), content_type: Optional[str] = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else bytes(body)
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        names = {name.lower() for name, _ in items}
        handler = self._handler
        handler.send_response(status)
        if content_type and "content-type" not in names:
            handler.send_header("Content-Type", content_type)
        if "content-length" not in names and "transfer-encoding" not in names:
            handler.send_header("Content-Length", str(len(data)))
        for name, value in items:
            handler.send_header(name, value)
        handler.end_headers()
        if data and self.method != "HEAD":
            handler.wfile.write(data)
        handler.wfile.flush()

    def json(self, body: Any, status: int = 200, headers: Headers = ()) -> None:
        self.send(status, json.dumps(body).encode(), headers)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send(status, b"", [("Location", location)])

    # impolite answers

    def write(self, data: Union[bytes, str]) -> None:
        """Raw bytes on the socket (status line and headers included, if the handler writes them)."""
        self._handler.close_connection = True
        self._handler.wfile.write(data.encode() if isinstance(data, str) else data)
        self._handler.wfile.flush()

    def sleep(self, seconds: float) -> bool:
        """Waits, unless the server stops first; True if the handler should go on."""
        return not self.server.stopping.wait(seconds)

    def hold(self, seconds: float = 60.0) -> None:
        """Keeps the connection open without sending anything, until the peer or the server gives up."""
        self._handler.close_connection = True
        deadline = time.monotonic() + seconds
        connection = self._handler.connection
        connection.settimeout(0.2)
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            try:
                if connection.recv(65536) == b"":
                    return  # the client closed its end
            except socket.timeout:
                continue
            except OSError:
                return


# ----- the server --------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hostile: "HostileServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (what the connector does to a hostile answer) is not worth a traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection is dropped after this
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        hostile = self.server.hostile
        length = self.headers.get("Content-Length")
        try:
            body = self.rfile.read(int(length)) if length else b""
        except ValueError:
            body = b""
        received = Received(self.command, self.path, list(self.headers.items()), body, time.time())
        hostile._record(received)
        exchange = Exchange(self, received, hostile)
        handler = hostile._find(exchange)
        try:
            if handler is None:
                exchange.json({"errors": [f"no route for {self.command} {received.path}"]}, status=404)
            else:
                handler(exchange)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class Routes:
    """Routes (method, path pattern, handler), the latest added first."""

    def __init__(self, url: str = "http://127.0.0.1:0") -> None:
        self.url = url
        self.routes: List[Tuple[str, re.Pattern, Handler]] = []
        self._lock = threading.Lock()

    def route(self, method: str, pattern: str, handler: Handler) -> "Routes":
        """Answer `method` requests (`*`: any) whose path matches `pattern` (re.search) with `handler`; the
        latest route added wins over earlier ones."""
        with self._lock:
            self.routes.insert(0, (method.upper(), re.compile(pattern), handler))
        return self

    def mount(self, prefix: str, other: "Routes") -> None:
        """Serves `other`'s routes under `prefix` too (the same handlers at `prefix` + their paths)."""
        for method, pattern, handler in reversed(other.routes):
            self.route(method, re.escape(prefix) + pattern.pattern, handler)


class HostileServer(Routes):
    """A recording HTTP server whose answers are scripted per route."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self.received: List[Received] = []
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, 0), _RequestHandler)
        self._httpd.hostile = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: Optional[threading.Thread] = None

    def _find(self, exchange: Exchange) -> Optional[Handler]:
        with self._lock:
            routes = list(self.routes)
        for method, pattern, handler in routes:
            found = pattern.search(exchange.path)
            if method in (exchange.method, "*") and found:
                exchange.match = found
                return handler
        return None

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def requests(self, pattern: str = "", method: Optional[str] = None) -> List[Received]:
        """The requests received so far whose path matches `pattern`."""
        compiled = re.compile(pattern)
        with self._lock:
            return [r for r in self.received if compiled.search(r.path) and (method is None or r.method == method)]

    def start(self) -> "HostileServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"hostile-{self.host}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def elsewhere_recorder() -> HostileServer:
    """The "other host": 127.0.0.2, answering anything with a 200 (so that a request it gets would succeed)."""
    server = HostileServer("127.0.0.2")
    server.route("*", r"", lambda exchange: exchange.json([]))
    return server


# ----- time helpers ------------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_floor(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def days_ago(days: float) -> str:
    return iso(utc_now() - timedelta(days=days))


def periods(start: datetime, end: datetime, step: timedelta) -> Iterable[datetime]:
    """Period starts aligned to `step` (hour or day) from the first at or after `start`, before `end`."""
    moment = start.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        moment = moment.replace(hour=0)
    while moment < start:
        moment += step
    while moment < end:
        yield moment
        moment += step


# ----- vendor plays ------------------------------------------------------------------------------------

MERAKI_PREFIX = "/meraki/api/v1"
TWILIO_PREFIX = "/twilio/v1"
EMNIFY_PREFIX = "/emnify/api/v1"
THOUSANDEYES_PREFIX = "/thousandeyes/v7"

MERAKI_ORG = {"id": "101", "name": "Hostile Org", "url": "https://n1.meraki.com/o/x/manage/organization/overview", "api": {"enabled": True}}
MERAKI_NETWORK = {"id": "N_1", "organizationId": "101", "name": "Hostile Net", "productTypes": ["wireless"], "timeZone": "UTC", "tags": []}
MERAKI_CLIENT = {"id": "k74272e", "mac": "00:11:22:33:44:55", "ip": "10.0.0.5", "description": "laptop", "usage": {"sent": 56, "recv": 383}, "status": "Online"}
MERAKI_LICENSE = {"id": "L1", "licenseType": "MR", "licenseKey": "Z2XXXXXXXXXX", "state": "active", "durationInDays": 365, "headLicenseId": None}


def meraki_usage_point(ts: str, recv: Any = 383, sent: Any = 56) -> dict:
    return {"ts": ts, "recv": recv, "sent": sent}


def meraki_usage_histories(exchange: Exchange, point: Callable[[datetime], dict] = lambda day: meraki_usage_point(iso(day))) -> list:
    """One entry per requested client, one daily point per day of [t0, t1)."""
    start, end = parse_iso(exchange.query["t0"]), parse_iso(exchange.query["t1"])
    days = list(periods(day_floor(start), end, timedelta(days=1)))
    return [
        {"clientId": client, "clientMac": MERAKI_CLIENT["mac"], "clientIp": MERAKI_CLIENT["ip"], "usageHistory": [point(day) for day in days]}
        for client in exchange.query.get("clients", "").split(",")
        if client
    ]


def play_meraki(server: Routes, api_key: str = MERAKI_KEY) -> dict:
    """One organization with one network, one client, a usage point per day and one license."""
    p = re.escape(MERAKI_PREFIX)
    server.route("GET", p + r"/organizations$", lambda ex: ex.json([MERAKI_ORG]))
    server.route("GET", p + r"/organizations/101/networks$", lambda ex: ex.json([MERAKI_NETWORK]))
    server.route("GET", p + r"/networks/N_1/clients$", lambda ex: ex.json([MERAKI_CLIENT]))
    server.route("GET", p + r"/networks/N_1/clients/usageHistories$", lambda ex: ex.json(meraki_usage_histories(ex)))
    server.route("GET", p + r"/organizations/101/licenses$", lambda ex: ex.json([MERAKI_LICENSE]))
    return {"api_key": api_key, "base_url": server.url + MERAKI_PREFIX}


def twilio_record(sim_sid: Optional[str], start: datetime, end: datetime, **fields: Any) -> dict:
    record = {
        "period": {"start_time": iso(start), "end_time": iso(end)},
        "account_sid": TWILIO_ACCOUNT_SID,
        "data_upload": 150000,
        "data_download": 150000,
        "data_total": 300000,
        "data_total_billed": "0.03",
        "billed_unit": "USD",
        "sim_sid": sim_sid,
        "fleet_sid": None,
        "network_sid": None,
        "iso_country": None,
    }
    record.update(fields)
    return record


def twilio_page(records: List[dict], next_page_url: Optional[str] = None) -> dict:
    return {
        "usage_records": records,
        "meta": {"key": "usage_records", "next_page_url": next_page_url, "page": 0, "page_size": 1000, "previous_page_url": None, "first_page_url": None, "url": None},
    }


def twilio_records_for(exchange: Exchange, sims: Sequence[str] = SIM_SIDS, **fields: Any) -> List[dict]:
    """One record per SIM and period of the requested [StartTime, EndTime) at the requested granularity."""
    step = timedelta(hours=1) if exchange.query.get("Granularity") == "hour" else timedelta(days=1)
    start, end = parse_iso(exchange.query["StartTime"]), parse_iso(exchange.query["EndTime"])
    return [twilio_record(sim, moment, moment + step, **fields) for moment in periods(start, end, step) for sim in sims]


def play_twilio(server: Routes, auth_token: str = TWILIO_AUTH_TOKEN) -> dict:
    """Usage records for two SIMs in every period asked for."""
    server.route("GET", re.escape(TWILIO_PREFIX) + r"/UsageRecords$", lambda ex: ex.json(twilio_page(twilio_records_for(ex))))
    return {"account_sid": TWILIO_ACCOUNT_SID, "auth_token": auth_token, "base_url": server.url + TWILIO_PREFIX}


def emnify_stats() -> dict:
    now = utc_now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    minute = now.replace(second=0, microsecond=0) - timedelta(minutes=2)
    entry = {
        "endpoint_id": 1,
        "month": month.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "volume": "29.166235",
        "volume_tx": "5.577229",
        "volume_rx": "23.589006",
        "traffic_type_id": 5,
        "last_updated": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "cost": 6.10483935,
        "currency_id": 1,
        "id": 311,
        "traffic_type": {"description": "Data", "unit": "MB", "id": 5},
        "currency": {"code": "EUR", "symbol": "€", "id": 1},
    }
    label = minute.strftime("%H:%M")
    return {"current_month": {"data": entry}, "last_hour": {"data": {"rx": [[label, 0.5]], "tx": [[label, 0.25]]}}}


def play_emnify(server: Routes, application_token: str = EMNIFY_APPLICATION_TOKEN) -> dict:
    """A login that issues a token, one endpoint and its statistics."""
    p = re.escape(EMNIFY_PREFIX)
    server.route("POST", p + r"/authenticate$", lambda ex: ex.json({"auth_token": EMNIFY_AUTH_TOKEN}))
    listing_headers = {"X-Total-Pages": "1", "X-Current-Page": "1", "X-Total-Count": "1", "X-Count-Per-Page": "1000"}
    server.route("GET", p + r"/endpoint$", lambda ex: ex.json([{"id": 1, "name": "device-1", "status": {"id": 0, "description": "Enabled"}}], headers=listing_headers))
    server.route("GET", p + r"/endpoint/1/stats$", lambda ex: ex.json(emnify_stats()))
    return {"application_token": application_token, "base_url": server.url + EMNIFY_PREFIX}


def thousandeyes_test(test_id: str = "1158") -> dict:
    return {"aid": "315", "accountGroupName": "Documentation", "testId": test_id, "testName": "https://app.thousandeyes.com", "testType": "Web - Page Load", "cloudUnitsUsed": 140540, "cloudUnitsProjected": 340674}


def thousandeyes_usage(with_tests: bool = True) -> dict:
    now = utc_now()
    start = now.replace(day=1, hour=8, minute=0, second=0, microsecond=0)
    if start > now:
        start -= timedelta(days=28)
    usage: Dict[str, Any] = {
        "quota": {"monthStart": iso(start), "monthEnd": iso(start + timedelta(days=31)), "cloudUnitsIncluded": 4320000000},
        "cloudUnitsUsed": 8500489,
        "cloudUnitsProjected": 20993812,
        "enterpriseUnitsUsed": 79640902,
        "endpointAgentsUsed": 42,
    }
    if with_tests:
        usage["tests"] = [thousandeyes_test()]
    return {"usage": usage, "_links": {"self": {"href": "https://api.thousandeyes.com/v7/usage"}}}


def play_thousandeyes(server: Routes, bearer_token: str = THOUSANDEYES_TOKEN, with_tests: bool = True) -> dict:
    """The current billing period (with its tests, unless `with_tests` is false: then the tests come from
    one page of /usage/units/tests)."""
    p = re.escape(THOUSANDEYES_PREFIX)
    server.route("GET", p + r"/usage$", lambda ex: ex.json(thousandeyes_usage(with_tests)))
    server.route("GET", p + r"/usage/units/tests$", lambda ex: ex.json({"breakdowns": [thousandeyes_test("2001")], "_links": {"self": {"href": ex.server.url + ex.path}}}))
    return {"bearer_token": bearer_token, "base_url": server.url + THOUSANDEYES_PREFIX}


# ----- hostile bodies ----------------------------------------------------------------------------------


def gzip_bomb(megabytes: int = 512) -> bytes:
    """A gzip stream of `megabytes` MiB of zeros (about a thousandth of that compressed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunk = b"0" * (1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(megabytes)]
    parts.append(compressor.flush())
    return b"".join(parts)


# ----- running the console scripts ---------------------------------------------------------------------

# Never go through a proxy of the machine running the tests: the servers are on the loopback interface.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def child_environment(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key not in PROXY_VARIABLES and not key.startswith("SOURCE_USAGE_")}
    return {**base, **(env or {})}


@dataclass
class Outcome:
    """One console-script process: its parsed output, wall time and peak resident memory."""

    run: Run
    seconds: float
    peak_rss_mb: float

    @property
    def returncode(self) -> int:
        return self.run.returncode

    @property
    def output(self) -> str:
        return self.run.stdout + self.run.stderr

    @property
    def errors(self) -> List[dict]:
        return self.run.errors

    def error_messages(self) -> List[str]:
        return [error.get("message") or "" for error in self.run.errors]

    def stream_errors(self, stream: str) -> List[str]:
        return [
            error.get("message") or ""
            for error in self.run.errors
            if (error.get("stream_descriptor") or {}).get("name") == stream
        ]

    def warnings(self) -> List[str]:
        return self.run.logs("WARN", "WARNING")


def execute(
    argv: Sequence[str], env: Optional[Mapping[str, str]] = None, timeout: float = 300, real_exec: bool = False
) -> Tuple[int, str, str, float, float]:
    """Runs `argv` (killed after `timeout`); (exit code, stdout, stderr, seconds, peak RSS in MB of that
    process: its own when forked by the launcher; exec'd (`real_exec`, SOURCE_USAGE_TEST_EXEC=1), an upper
    bound that also covers the test process's resident memory when it spawned the child)."""
    done = launcher.run(argv, env=child_environment(env), stdin=launcher.DEVNULL, timeout=timeout, kill_on_timeout=True, real_exec=real_exec)
    return done.returncode, done.stdout, done.stderr, done.seconds, done.usage.peak_rss_mb


def parse_messages(stdout: str) -> List[dict]:
    messages = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                messages.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return messages


def connector(
    command: str,
    config: Optional[Mapping[str, Any]] = None,
    catalog: Optional[Mapping[str, Any]] = None,
    state: Any = None,
    *,
    state_text: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    extra_args: Sequence[str] = (),
    timeout: float = 300,
    real_exec: bool = False,
) -> Outcome:
    """`source-usage <command>` with the given files (`state_text` is written verbatim)."""
    with tempfile.TemporaryDirectory() as folder:
        argv = [str(BIN / "source-usage"), command]
        texts = {
            "config": json.dumps(config) if config is not None else None,
            "catalog": json.dumps(catalog) if catalog is not None else None,
            "state": state_text if state_text is not None else (json.dumps(state) if state is not None else None),
        }
        for name, text in texts.items():
            if text is not None:
                path = Path(folder) / f"{name}.json"
                path.write_text(text)
                argv += [f"--{name}", str(path)]
        code, stdout, stderr, seconds, rss = execute([*argv, *extra_args], env, timeout, real_exec)
    return Outcome(Run(code, parse_messages(stdout), stdout, stderr), seconds, rss)


def stream_state(stream: str, value: Any) -> List[dict]:
    """A one-stream Airbyte state (the shape `read --state` takes)."""
    return [{"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": value}}]
