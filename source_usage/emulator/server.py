"""A loopback HTTP server that emulates the four vendors, with fault injection and a control API.

Vendors are served under their own prefixes (`/meraki/api/v1`, `/twilio/v1`, `/emnify/api/v1`,
`/thousandeyes/v7`; Meraki also under its shards' `/meraki/shard/nNNN/api/v1`); `/_emulator/...` answers
tests and tools:

* `GET  /_emulator/config`              a ready-to-use connector config
* `GET  /_emulator/expected/<stream>`   the records a complete read of the stream must return (query
                                         parameters are the options, e.g. `?start_date=...`)
* `GET  /_emulator/stats`               requests served per vendor and route, and how many got 429
* `GET  /_emulator/requests`            every request served, when `record_requests` is on (benchmarks)
* `POST /_emulator/advance?steps=1`     make new usage appear
* `POST /_emulator/pass_time?seconds=1` let time pass for the rate limits and token lifetimes (only on
                                         an emulator started with `virtual_time`)
* `POST /_emulator/faults`              set fault rates: `{"vendor": "meraki" | null, "error_rate": 0.1, ...}`
* `POST /_emulator/storm?vendor=&count=` answer the next `count` requests of a vendor with 429
"""

from __future__ import annotations

import json
import socket
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import import_module
from typing import Any, Dict, Iterable, List, Optional, Tuple, Tuple
from urllib.parse import parse_qs, urlsplit

from source_usage.emulator.app import VendorApp, route_of
from source_usage.emulator.faults import HTML_502, FaultDice, FaultPlan
from source_usage.emulator.http import Request, Response, json_response

def emulated_vendors() -> Tuple[str, ...]:
    """The installed vendor plugins that ship an emulation of their API (`VendorPlugin.emulator`)."""
    from source_usage.framework.plugin import plugins

    return tuple(plugin.name for plugin in plugins() if plugin.emulator)


ALL_VENDORS = emulated_vendors()


def build_app(name: str, seed: int, scale: int, rate_limits: bool, **knobs: Any) -> VendorApp:
    """The emulation a vendor plugin names ("module:Class")."""
    from source_usage.framework.plugin import plugin_named

    try:
        target = plugin_named(name).emulator
    except KeyError:
        target = None
    if not target:
        raise ValueError(f"no emulation of vendor {name!r}: installed ones are {', '.join(ALL_VENDORS)}")
    module, _, attribute = target.partition(":")
    app_class = getattr(import_module(module), attribute)
    return app_class(seed, scale, rate_limits, **knobs)  # type: ignore[no-any-return]


class Emulator:
    """The four vendors on 127.0.0.1, deterministic from `seed` and sized by `scale`.

    `knobs` are per vendor, e.g. `meraki={"organizations": 4}`; see each vendor app for what it takes.
    `virtual_time`: the rate limits and token lifetimes count on stopped timers (source_usage/emulator/
    clock.py) that move only by `pass_time(seconds)`, so what they refuse does not depend on how fast the
    machine sends the requests.
    """

    def __init__(
        self,
        seed: int = 7,
        scale: int = 1,
        rate_limits: bool = True,
        vendors: Iterable[str] = ALL_VENDORS,
        faults: Optional[FaultPlan] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = False,
        virtual_time: bool = False,
        **knobs: Dict[str, Any],
    ) -> None:
        self.apps: Dict[str, VendorApp] = {
            name: build_app(name, seed, scale, rate_limits, **knobs.get(name, {})) for name in vendors
        }
        if virtual_time:
            for app in self.apps.values():
                app.timer.freeze()
        self.faults: Dict[str, FaultPlan] = {name: faults or FaultPlan() for name in self.apps}
        self._dice = FaultDice(seed)
        self.record_requests = record_requests
        self.request_log: List[Dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self  # type: ignore[attr-defined]
        self._thread: Optional[threading.Thread] = None

    # ----- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Emulator":
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----- what tests ask ---------------------------------------------------------------------------

    def base_url(self, vendor: str) -> str:
        return self.url + self.apps[vendor].prefix

    def config(self, vendors: Optional[Iterable[str]] = None, start_date: Optional[str] = None) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        if start_date:
            config["start_date"] = start_date
        for name in vendors or self.apps:
            config[name] = self.apps[name].connector_config(self.base_url(name))
        return config

    def app_for_stream(self, stream: str) -> VendorApp:
        for app in self.apps.values():
            if stream in app.streams:
                return app
        raise KeyError(f"no emulated vendor serves stream {stream!r}")

    def expected(self, stream: str, **options: Any) -> list:
        return self.app_for_stream(stream).expected(stream, **options)

    def advance(self, steps: int = 1) -> None:
        for app in self.apps.values():
            app.advance(steps)

    def pass_time(self, seconds: float) -> None:
        """Let `seconds` pass for every vendor's rate limits and token lifetimes (needs `virtual_time`)."""
        for app in self.apps.values():
            app.timer.advance(seconds)

    def set_faults(self, plan: FaultPlan, vendor: Optional[str] = None) -> None:
        for name in [vendor] if vendor else list(self.apps):
            self.faults[name] = plan

    def storm(self, vendor: str, count: int) -> None:
        self.apps[vendor].storm(count)

    def stats(self) -> Dict[str, Any]:
        return {name: app.stats() for name, app in self.apps.items()}

    def reset_stats(self) -> None:
        for app in self.apps.values():
            app.reset_stats()
        with self._log_lock:
            self.request_log.clear()

    def log_request(self, app: VendorApp, request: Request, status: int, started: float) -> None:
        if self.record_requests:
            entry = {
                "vendor": app.name,
                "method": request.method,
                "url": request.url(),
                "body": request.body.decode() if request.body else None,
                "status": status,
                "tenant": app.tenant_of(request),
                "started": started,
                "finished": time.time(),
            }
            with self._log_lock:
                self.request_log.append(entry)

    # ----- serving -----------------------------------------------------------------------------------

    def route(self, path: str) -> Tuple[Optional[VendorApp], str]:
        """The vendor serving `path` and the prefix it is served under."""
        for app in self.apps.values():
            prefix = app.prefix_of(path)
            if prefix is not None:
                return app, prefix
        return None, ""

    def control(self, method: str, path: str, query: Dict[str, list], body: bytes) -> Response:
        action = path[len("/_emulator/"):]
        if method == "GET" and action == "config":
            return json_response(self.config(start_date=(query.get("start_date") or [None])[0]))
        if method == "GET" and action.startswith("expected/"):
            options = {key: values[0] for key, values in query.items()}
            return json_response(self.expected(action[len("expected/"):], **options))
        if method == "GET" and action == "stats":
            return json_response(self.stats())
        if method == "GET" and action == "requests":
            with self._log_lock:
                return json_response(list(self.request_log))
        if method == "POST" and action == "stats/reset":
            self.reset_stats()
            return json_response({"ok": True})
        if method == "POST" and action == "advance":
            self.advance(int((query.get("steps") or ["1"])[0]))
            return json_response({"ok": True})
        if method == "POST" and action == "pass_time":
            try:
                self.pass_time(float((query.get("seconds") or ["1"])[0]))
            except (RuntimeError, ValueError) as problem:
                return json_response({"error": str(problem)}, 409)
            return json_response({"ok": True})
        if method == "POST" and action == "faults":
            values = json.loads(body or b"{}")
            self.set_faults(FaultPlan.from_mapping(values), values.get("vendor"))
            return json_response({"ok": True})
        if method == "POST" and action == "storm":
            self.storm(query["vendor"][0], int(query.get("count", ["10"])[0]))
            return json_response({"ok": True})
        return json_response({"error": f"unknown control request {method} {path}"}, 404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "source-usage-emulator"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        emulator: Emulator = self.server.emulator  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if parts.path.startswith("/_emulator/"):
            self._write(emulator.control(self.command, parts.path, query, body))
            return
        app, prefix = emulator.route(parts.path)
        if app is None:
            self._write(json_response({"error": "no such vendor"}, 404))
            return
        host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
        request = Request(
            method=self.command,
            path=parts.path[len(prefix):] or "/",
            query=query,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            base_url=f"http://{host}{prefix}",
            client_ip=self.client_address[0],
            prefix=prefix,
            raw_query=parts.query,
        )
        started = time.time()
        fault = emulator._dice.roll(emulator.faults[app.name])
        if fault == "slow":
            time.sleep(emulator.faults[app.name].slow_seconds)
        if fault == "error":
            status = emulator._dice.pick([500, 502, 503, 504])
            app.count("(injected)", status)
            if status == 502:
                self._write(Response(status, HTML_502, content_type="text/html"))
            else:
                self._write(json_response({"error": "injected server error"}, status))
            return
        if app.take_storm():
            response = app.rate_limited(request)
        else:
            response = app.handle(request)
        app.count(route_of(request.path), response.status)
        emulator.log_request(app, request, response.status, started)
        if fault == "drop":
            self._write(response, drop=True)
        elif fault == "malformed" and 200 <= response.status < 300:
            encoded = response.encoded()
            self._write(Response(response.status, encoded[: max(1, len(encoded) // 2)] + b"\x00garbage", response.headers, response.content_type))
        else:
            self._write(response)

    def _write(self, response: Response, drop: bool = False) -> None:
        payload = response.encoded()
        self.send_response_only(response.status)
        names = {name.lower() for name, _ in response.headers}
        if "date" not in names:
            self.send_header("Date", formatdate(usegmt=True))
        if payload or response.status != 204:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if drop:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(payload)


