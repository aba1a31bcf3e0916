"""Emulated emnify REST API v1.

Serves `POST /authenticate`, `GET /endpoint` and `GET /endpoint/{id}/stats` with the real contract:
an application token exchanged for an HS256 JWT `auth_token` (`exp` 240 minutes after issue) sent as
`Authorization: Bearer`; 401 bodies `{"error_code", "error_token", "message"}` (1101 InvalidCredentials
for a refused application token, 1102 InvalidToken, 1103 TokenExpired); the endpoint list as a bare
array paged by `page` (1-based; past the end the LAST page is returned again) and `per_page` (default
1000, clamped to 1000) with `Link`, `X-Count-Per-Page`, `X-Current-Page`, `X-Total-Count` and
`X-Total-Pages` headers; the statistics snapshot with `last_month`/`current_month` entries only where
there was traffic (volumes as decimal strings) and `last_hour` lists of `["HH:MM", value]` for the 60
complete minutes before the response's `Date`; 404 (1201 NotFound) for an endpoint deleted after it
was listed. With `rate_limits`, per-path token buckets (the endpoint list 10/s burst 5, statistics
100/s burst 50, authentication 100 per 5 minutes) answer 429 (1105 TooManyRequests) without
`Retry-After`.

Time is a virtual clock (the `Date` header and the usage data follow it): `advance(steps)` moves it
`step_minutes` per step, so new minutes appear in `last_hour`, and grows the current month's volumes
and `last_updated` of some endpoints. Tokens live in real time: `token_lifetime_seconds` makes the
server expire them sooner than their JWT claims (a 401 TokenExpired in the middle of a sync).

Knobs: `endpoints` (default 20 x scale), `deleted_endpoints`, `max_per_page`, `now` (the clock's start,
ISO 8601), `step_minutes`, `token_lifetime_seconds`, `application_token`.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formatdate
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import jwt

from source_usage.emulator.app import VendorApp
from source_usage.emulator.data import iso, parse_iso, stable_hex, stable_int, utc_now
from source_usage.emulator.http import Request, Response, TokenBucket, json_response

APPLICATION_TOKEN = "KAOp24emnifyEmulatorApplicationToken0000000000000001"
JWT_SECRET = "emnify-emulator-hs256-signing-key-0001"
JWT_LIFETIME = timedelta(minutes=240)
MAX_PER_PAGE = 1000
MINUTES_PER_HOUR = 60
ORGANISATION_ID = 4242
DATA, SMS = 5, 6
TRAFFIC_TYPES = {
    "data": {"description": "Data", "unit": "MB", "id": DATA},
    "sms": {"description": "SMS", "unit": "SMS", "id": SMS},
}
PRICE_PER_UNIT = {DATA: 0.2093, SMS: 0.065}  # EUR per MB and per message
CURRENCY = {"code": "EUR", "symbol": "€", "id": 1}
MICRO = 1_000_000  # volumes are kept in millionths: the API prints six decimals


def _error(status: int, code: int, token: str, message: str) -> Response:
    return json_response({"error_code": code, "error_token": token, "message": message}, status)


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _previous_month_start(moment: datetime) -> datetime:
    return _month_start(_month_start(moment) - timedelta(days=1))


def _stamp(moment: datetime) -> str:
    """emnify's statistics timestamps: `2020-11-30T14:56:25.000Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _decimal(micro: int) -> str:
    return f"{micro // MICRO}.{micro % MICRO:06d}"


@dataclass
class MonthlyUsage:
    """One endpoint's usage of one traffic type in one month."""

    row_id: int
    rx: int  # millionths of the unit
    tx: int
    last_updated: datetime


class EmnifyApp(VendorApp):
    name = "emnify"
    prefix = "/emnify/api/v1"
    streams = ("emnify_endpoints", "emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour")

    def __init__(
        self,
        seed: int,
        scale: int,
        rate_limits: bool,
        endpoints: Optional[int] = None,
        deleted_endpoints: int = 0,
        max_per_page: int = MAX_PER_PAGE,
        now: Optional[str] = None,
        step_minutes: int = 5,
        token_lifetime_seconds: Optional[float] = None,
        application_token: str = APPLICATION_TOKEN,
    ) -> None:
        super().__init__(seed, scale, rate_limits)
        self.application_token = application_token
        self.max_per_page = max(1, min(MAX_PER_PAGE, max_per_page))
        self.step = timedelta(minutes=step_minutes)
        self.token_lifetime_seconds = token_lifetime_seconds
        self.clock = (parse_iso(now) if now else utc_now()).replace(microsecond=0)
        self.steps_taken = 0
        self.issued_tokens: Dict[str, float] = {}  # auth token -> monotonic issue time
        self._token_ids = itertools.count(1)
        count = endpoints if endpoints is not None else 20 * self.scale
        self.endpoints = sorted((self._endpoint(index) for index in range(count)), key=lambda endpoint: endpoint["id"])
        self.traits = {endpoint["id"]: self._traits(index) for index, endpoint in enumerate(self.endpoints)}
        self.deleted = self._pick_deleted(deleted_endpoints)
        self.usage: Dict[Tuple[int, int, datetime], MonthlyUsage] = {}
        self._seed_usage()
        self.list_bucket = TokenBucket(rate=10, capacity=5)
        self.stats_bucket = TokenBucket(rate=100, capacity=50)
        self.auth_bucket = TokenBucket(rate=100 / 300, capacity=100)

    # ----- data --------------------------------------------------------------------------------------

    def _endpoint(self, index: int) -> dict:
        endpoint_id = 100000 + stable_int(self.seed, "endpoint", index, modulo=900000)
        created = self.clock - timedelta(days=40 + stable_int(self.seed, "created", index, modulo=400))
        updated = created + timedelta(hours=stable_int(self.seed, "updated", index, modulo=24 * 30))
        return {
            "id": endpoint_id,
            "name": f"tracker-{index + 1:04d}",
            "tags": ["fleet,berlin", None, "meter", "fleet"][index % 4],
            "created": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "last_updated": updated.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "status": {"id": 1, "description": "Disabled"} if index % 9 == 8 else {"id": 0, "description": "Enabled"},
            "service_profile": {"id": 71 + index % 2, "name": ["Default", "Low power"][index % 2]},
            "tariff_profile": {"id": 301, "name": "Regional Europe"},
            "ip_address": f"10.192.{index // 250}.{index % 250 + 2}",
            "ip_address_space": {"id": 3},
            "sim": {
                "id": 500000 + stable_int(self.seed, "sim", index, modulo=400000),
                "iccid": "898830" + str(stable_int(self.seed, "iccid", index, modulo=10**13)).zfill(13),
                "imsi": "295050" + str(stable_int(self.seed, "imsi", index, modulo=10**9)).zfill(9),
                "msisdn": "4236" + str(stable_int(self.seed, "msisdn", index, modulo=10**8)).zfill(8),
            },
            "imei": "35" + str(stable_int(self.seed, "imei", index, modulo=10**12)).zfill(12),
            "imei_lock": index % 5 == 0,
        }

    @staticmethod
    def _traits(index: int) -> Dict[str, bool]:
        """Which traffic an endpoint has: some never send SMS, some are new this month, some are idle."""
        return {"sms": index % 3 != 1, "last_month": index % 4 != 3, "current_month": index % 7 != 5}

    def _pick_deleted(self, count: int) -> Set[int]:
        count = max(0, min(count, len(self.endpoints)))
        if not count:
            return set()
        spacing = len(self.endpoints) // count
        return {self.endpoints[len(self.endpoints) - 1 - position * spacing]["id"] for position in range(count)}

    def _types_of(self, endpoint_id: int) -> List[int]:
        return [DATA, SMS] if self.traits[endpoint_id]["sms"] else [DATA]

    def _row_id(self, endpoint_id: int, traffic_type: int, month: datetime) -> int:
        return 1000 + stable_int(self.seed, "row", endpoint_id, traffic_type, month.isoformat(), modulo=10**8)

    def _volume(self, *parts: Any, traffic_type: int, ceiling_units: int) -> int:
        value = stable_int(self.seed, *parts, modulo=ceiling_units * MICRO)
        return value - value % MICRO + MICRO if traffic_type == SMS else value + 1

    def _seed_usage(self) -> None:
        current, previous = _month_start(self.clock), _previous_month_start(self.clock)
        for endpoint in self.endpoints:
            endpoint_id, traits = endpoint["id"], self.traits[endpoint["id"]]
            for traffic_type in self._types_of(endpoint_id):
                ceiling = 400 if traffic_type == DATA else 60
                if traits["last_month"]:
                    hours_before_end = 1 + stable_int(self.seed, "closed", endpoint_id, traffic_type, modulo=72)
                    self.usage[(endpoint_id, traffic_type, previous)] = MonthlyUsage(
                        self._row_id(endpoint_id, traffic_type, previous),
                        self._volume("last rx", endpoint_id, traffic_type, traffic_type=traffic_type, ceiling_units=ceiling),
                        self._volume("last tx", endpoint_id, traffic_type, traffic_type=traffic_type, ceiling_units=ceiling // 4),
                        current - timedelta(hours=hours_before_end),
                    )
                if traits["current_month"]:
                    elapsed = (self.clock - current).total_seconds()
                    fraction = (50 + stable_int(self.seed, "updated", endpoint_id, traffic_type, modulo=900)) / 1000
                    self.usage[(endpoint_id, traffic_type, current)] = MonthlyUsage(
                        self._row_id(endpoint_id, traffic_type, current),
                        self._volume("rx", endpoint_id, traffic_type, traffic_type=traffic_type, ceiling_units=ceiling // 2),
                        self._volume("tx", endpoint_id, traffic_type, traffic_type=traffic_type, ceiling_units=ceiling // 8),
                        current + timedelta(seconds=int(elapsed * fraction)),
                    )

    def advance(self, steps: int = 1) -> None:
        """Move the clock `step_minutes` per step; a third of the endpoints use traffic in each step."""
        with self.lock:
            for _ in range(steps):
                self.steps_taken += 1
                self.clock += self.step
                month = _month_start(self.clock)
                for endpoint in self.endpoints:
                    endpoint_id = endpoint["id"]
                    if endpoint_id in self.deleted or stable_int(self.seed, "grows", endpoint_id, self.steps_taken, modulo=3):
                        continue
                    for traffic_type in self._types_of(endpoint_id):
                        key = (endpoint_id, traffic_type, month)
                        row = self.usage.get(key) or MonthlyUsage(self._row_id(endpoint_id, traffic_type, month), 0, 0, self.clock)
                        ceiling = 5 if traffic_type == DATA else 3
                        row.rx += self._volume("grow rx", endpoint_id, traffic_type, self.steps_taken, traffic_type=traffic_type, ceiling_units=ceiling)
                        row.tx += self._volume("grow tx", endpoint_id, traffic_type, self.steps_taken, traffic_type=traffic_type, ceiling_units=ceiling)
                        row.last_updated = self.clock
                        self.usage[key] = row

    def _monthly_entry(self, endpoint_id: int, traffic_type: int, month: datetime) -> Optional[dict]:
        row = self.usage.get((endpoint_id, traffic_type, month))
        if row is None:
            return None
        total = row.rx + row.tx
        kind = "data" if traffic_type == DATA else "sms"
        return {
            "endpoint_id": endpoint_id,
            "month": _stamp(month),
            "volume": _decimal(total),
            "volume_tx": _decimal(row.tx),
            "volume_rx": _decimal(row.rx),
            "traffic_type_id": traffic_type,
            "last_updated": _stamp(row.last_updated),
            "cost": round(total / MICRO * PRICE_PER_UNIT[traffic_type], 8),
            "currency_id": CURRENCY["id"],
            "id": row.row_id,
            "traffic_type": dict(TRAFFIC_TYPES[kind]),
            "currency": dict(CURRENCY),
        }

    def _periods(self, endpoint_id: int) -> Iterator[Tuple[str, Dict[str, dict]]]:
        """`last_month` and `current_month`, each only with the traffic types that had traffic."""
        for period, month in (("last_month", _previous_month_start(self.clock)), ("current_month", _month_start(self.clock))):
            entries = {}
            for kind, traffic_type in (("data", DATA), ("sms", SMS)):
                entry = self._monthly_entry(endpoint_id, traffic_type, month)
                if entry is not None:
                    entries[kind] = entry
            if entries:
                yield period, entries

    def _minutes(self) -> List[datetime]:
        """The 60 complete minutes before the clock's minute, oldest first."""
        current = self.clock.replace(second=0)
        return [current - timedelta(minutes=MINUTES_PER_HOUR - offset) for offset in range(MINUTES_PER_HOUR)]

    def _per_minute(self, endpoint_id: int, kind: str, direction: str, minute: datetime) -> Any:
        stamp = int(minute.timestamp())
        if stable_int(self.seed, "active", endpoint_id, kind, direction, stamp, modulo=3):
            return 0
        if kind == "sms":
            return 1 + stable_int(self.seed, "sms", endpoint_id, direction, stamp, modulo=3)
        return (1 + stable_int(self.seed, "mb", endpoint_id, direction, stamp, modulo=2 * MICRO)) / MICRO

    def _last_hour(self, endpoint_id: int) -> dict:
        minutes = self._minutes()
        return {
            kind: {
                direction: [[minute.strftime("%H:%M"), self._per_minute(endpoint_id, kind, direction, minute)] for minute in minutes]
                for direction in ("rx", "tx")
            }
            for kind in ("data", "sms")
        }

    # ----- what a test expects -----------------------------------------------------------------------

    def expected(self, stream: str, **options: Any) -> List[dict]:
        live = [endpoint["id"] for endpoint in self.endpoints if endpoint["id"] not in self.deleted]
        with self.lock:
            if stream == "emnify_endpoints":
                return [dict(endpoint) for endpoint in self.endpoints]
            if stream == "emnify_endpoint_usage_monthly":
                return [
                    record
                    for endpoint_id in live
                    for period, entries in self._periods(endpoint_id)
                    for record in (self._monthly_record(entry, period) for entry in entries.values())
                ]
            if stream == "emnify_endpoint_usage_last_hour":
                minutes = self._minutes()
                return [
                    {
                        "endpoint_id": endpoint_id,
                        "traffic_type": kind,
                        "minute": iso(minute),
                        "rx": self._per_minute(endpoint_id, kind, "rx", minute),
                        "tx": self._per_minute(endpoint_id, kind, "tx", minute),
                    }
                    for endpoint_id in live
                    for kind in ("data", "sms")
                    for minute in minutes
                ]
        raise KeyError(stream)

    @staticmethod
    def _monthly_record(entry: dict, period: str) -> dict:
        volumes = {field: float(entry[field]) for field in ("volume", "volume_tx", "volume_rx")}
        return {**entry, **volumes, "period": period}

    def connector_config(self, base_url: str) -> Dict[str, Any]:
        return {"application_token": self.application_token, "base_url": base_url}

    # ----- serving -----------------------------------------------------------------------------------

    def rate_limited(self, request: Request) -> Response:
        return _error(429, 1105, "TooManyRequests", "Too many requests, please try again later")

    def handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if parts == ["authenticate"]:
            if request.method != "POST":
                return _error(405, 1000, "MethodNotAllowed", "Method not allowed")
            return self._authenticate(request)
        refused = self._check_token(request)
        if refused is not None:
            return refused
        if request.method != "GET":
            return _error(405, 1000, "MethodNotAllowed", "Method not allowed")
        if parts == ["endpoint"]:
            return self._limited(self.list_bucket) or self._endpoint_page(request)
        if len(parts) == 3 and parts[0] == "endpoint" and parts[2] == "stats":
            return self._limited(self.stats_bucket) or self._stats(parts[1])
        return _error(404, 1201, "NotFound", "Resource not found")

    def _limited(self, bucket: TokenBucket) -> Optional[Response]:
        if self.rate_limits and bucket.take() is not None:
            return self.rate_limited(None)  # type: ignore[arg-type]
        return None

    def _authenticate(self, request: Request) -> Response:
        limited = self._limited(self.auth_bucket)
        if limited is not None:
            return limited
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not any(key in body for key in ("application_token", "username", "refresh_token")):
            return json_response(
                {"error_code": 1400, "error_token": "ValidationFailed", "message": "Validation failed",
                 "errors": [{"field": "application_token", "message": "must not be empty"}]},
                422,
            )
        if body.get("application_token") != self.application_token:
            return _error(401, 1101, "InvalidCredentials", "Invalid application token")
        issued = int(time.time())
        claims = {
            "iss": "emnify-emulator",
            "sub": f"application_token@{ORGANISATION_ID}",
            "esc.org": ORGANISATION_ID,
            "jti": f"{stable_hex(8, self.seed, 'jwt')}-{next(self._token_ids)}",
            "iat": issued,
            "exp": issued + int(JWT_LIFETIME.total_seconds()),
        }
        token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
        with self.lock:
            self.issued_tokens[token] = time.monotonic()
        return json_response({"auth_token": token})

    def _check_token(self, request: Request) -> Optional[Response]:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        with self.lock:
            issued_at = self.issued_tokens.get(token)
        if issued_at is None:
            return _error(401, 1102, "InvalidToken", "Invalid token")
        try:
            jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            return _error(401, 1103, "TokenExpired", "Token expired")
        except jwt.InvalidTokenError:
            return _error(401, 1102, "InvalidToken", "Invalid token")
        if self.token_lifetime_seconds is not None and time.monotonic() - issued_at > self.token_lifetime_seconds:
            return _error(401, 1103, "TokenExpired", "Token expired")
        return None

    def _endpoint_page(self, request: Request) -> Response:
        try:
            page = int(request.param("page") or 1)
            per_page = int(request.param("per_page") or self.max_per_page)
        except ValueError:
            return _error(422, 1301, "InvalidQueryCriteria", "page and per_page must be integers")
        if per_page < 1:
            per_page = self.max_per_page
        per_page = min(per_page, self.max_per_page)
        total = len(self.endpoints)
        total_pages = math.ceil(total / per_page)
        page = min(max(page, 1), max(total_pages, 1))  # past the end: the last page again
        items = self.endpoints[(page - 1) * per_page : page * per_page]
        links = [f'<{request.url(page=1, per_page=per_page)}>; rel="first"']
        if page > 1:
            links.append(f'<{request.url(page=page - 1, per_page=per_page)}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{request.url(page=page + 1, per_page=per_page)}>; rel="next"')
        links.append(f'<{request.url(page=max(total_pages, 1), per_page=per_page)}>; rel="last"')
        headers = [
            ("Link", ", ".join(links)),
            ("X-Count-Per-Page", str(per_page)),
            ("X-Current-Page", str(page)),
            ("X-Total-Count", str(total)),
            ("X-Total-Pages", str(total_pages)),
        ]
        return json_response(items, headers=headers)

    def _stats(self, raw_id: str) -> Response:
        endpoint_id = int(raw_id) if raw_id.isdigit() else None
        if endpoint_id is None or endpoint_id not in self.traits or endpoint_id in self.deleted:
            return _error(404, 1201, "NotFound", f"Endpoint with id {raw_id} not found")
        with self.lock:
            body: Dict[str, Any] = dict(self._periods(endpoint_id))
            body["last_hour"] = self._last_hour(endpoint_id)
            date = formatdate(self.clock.timestamp(), usegmt=True)
        return json_response(body, headers=[("Date", date)])
