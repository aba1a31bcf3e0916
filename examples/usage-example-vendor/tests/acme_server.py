"""A tiny Acme Metering API on 127.0.0.1: readings of a few meters, paged by a body cursor."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List
from urllib.parse import parse_qs, urlsplit

API_KEY = "acme-example-key-0001"


class AcmeServer:
    def __init__(self, meters: int = 3, hours: int = 30, page_size_cap: int = 7) -> None:
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        self.readings = [
            {"meter_id": f"m-{meter}", "read_at": (now - timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ"), "kwh": f"{meter + hour / 10:.1f}"}
            for meter in range(meters)
            for hour in range(hours)
        ]
        self.readings.sort(key=lambda reading: (reading["read_at"], reading["meter_id"]))
        self.page_size_cap = page_size_cap
        self.requests: List[Dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append({"path": self.path, "key": self.headers.get("X-Api-Key")})
                parts = urlsplit(self.path)
                if self.headers.get("X-Api-Key") != API_KEY:
                    return self.answer(401, {"error": "invalid API key"})
                if parts.path != "/v1/readings":
                    return self.answer(404, {"error": "not found"})
                query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                since = query.get("since", "")
                offset = int(query.get("cursor") or 0)
                limit = min(int(query.get("limit") or 100), server.page_size_cap)
                matching = [reading for reading in server.readings if reading["read_at"] >= since]
                page = matching[offset : offset + limit]
                next_cursor = str(offset + limit) if offset + limit < len(matching) else None
                self.answer(200, {"readings": page, "next_cursor": next_cursor})

            def answer(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "AcmeServer":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
