"""Emulated emnify REST API v1.

Serves `POST /authenticate`, `GET /endpoint`, `GET /endpoint/{id}/stats` and
`GET /endpoint/{id}/stats/daily` with the real contract: an application token exchanged for an HS256
JWT `auth_token` (`exp` 240 minutes after issue) sent as `Authorization: Bearer`; 401 bodies
`{"error_code", "error_token", "message"}` (1101 InvalidCredentials for a refused application token,
1102 InvalidToken, 1103 TokenExpired); the endpoint list as a bare array paged by `page` (1-based; past
the end the LAST page is returned again) and `per_page` (default 1000, clamped to 1000) with `Link`,
`X-Count-Per-Page`, `X-Current-Page`, `X-Total-Count` and `X-Total-Pages` headers; the statistics
snapshot with `last_month`/`current_month` entries only where there was traffic (volumes as decimal
strings) and `last_hour` lists of `["HH:MM", value]` for the minutes before the response's `Date`; 404
(1201 NotFound) for an endpoint deleted after it was listed.

Rate limits (docs.emnify.com/developers/api-guidelines/rate-limits), when `rate_limits` is on, all
answered 429 `{"error_code": 1105, "error_token": "TooManyRequests", ...}` without `Retry-After`:
`ip_limit` requests per `ip_window_seconds` per source IP over every path (2,000 per 5 minutes, a
moving window: refused requests do not count, so the client is let in again as soon as its rate over
the last five minutes is back under the limit); `POST /authenticate` `auth_limit` per
`auth_window_seconds` per IP (100 per 5 minutes); and per-path token buckets (the endpoint list 10/s
burst 5, `stats` and `stats/*` 100/s burst 50, shared). The monthly quota (`monthly_quota`, 10,000,000 in
reality; None, the default, does not enforce it) counts the calls of the organisation (every request
with a valid token, and every accepted application token) in the month of the emulator's clock; once used up every call answers 429 with the 1105 body and a message saying the
monthly quota is exhausted (emnify documents the 429 and the reset on the 1st of the next month but no
wording) until the clock reaches the 1st of the next month. `stats()` adds `monthly_calls` (the calls
counted this month) and `rate_limited_by` (`ip`, `authentication`, `path`, `monthly_quota`).

Data model. Every endpoint's usage is kept per day, per kind (`data` in MB, `sms` in messages, and for
satellite endpoints `sat_geo_data` and `sat_geo_sms`), received and transmitted, in millionths of the
unit, from `daily_history_days` before the clock's day (and at least from the 1st of last month, never
before the endpoint was created) until the clock's day. The snapshot's monthly rows are sums of those
days, so the daily statistics of the current and of the last month add up exactly to `current_month`
and `last_month`; each row's `last_updated` is when it last grew (seeded rows: a seeded moment of the
month, and no traffic after it). Some endpoints never send SMS, some had no traffic last month, some none
yet this month. Days before last month exist but appear in no snapshot.

Time is a virtual clock (the `Date` header and the usage data follow it): `advance(steps)` moves it
`step_minutes` per step, so new minutes appear in `last_hour`; in each step a third of the endpoints use
traffic, which goes to the clock's day (today grows; a new day starts when the clock passes midnight)
and sets the month's row's `last_updated` to the clock. Tokens live on the app's timer (real time unless
the Emulator runs on virtual time, see clock.py): `token_lifetime_seconds` makes the server expire them
sooner than their JWT claims (a 401 TokenExpired in the middle of a sync); `token_lifetime_requests`
expires a token once it has authorised that many requests, whatever the machine's speed (the next
request with it answers 401 TokenExpired).

`GET /endpoint/{id}/stats/daily?start_date=&end_date=` (`YYYY-MM-DD`; docs.emnify.com endpoint
"Retrieve daily usage statistics for an endpoint"): no dates, the current month (the 1st to today);
`start_date` alone, six months from it (the docs: "the response will include 6 months of data");
`end_date` alone, the month of that date up to it ("only return data from the month indicated in your
end date"); both, that range, both ends included. The end is capped at today. The maximum range is not
documented: the emulator assumes six calendar months and refuses longer ranges (and a start after the
end) with 422 `{"error_code": 1301, "error_token": "InvalidQueryCriteria", ...}`; a malformed date is
422 1400 InputValidationFailed with a nested 1403 InvalidFormat. The answer is a JSON array, oldest day
first, of the days on which the endpoint had any traffic: `{"date", "data", "sms", "sat_geo_data",
"sat_geo_sms"}`. `data` and `sms` are objects `{volume, volume_tx, volume_rx, cost, currency
{code, symbol, id}, traffic_type {id, description, unit}}` (zero volumes on a day without that kind);
`sat_geo_*` are null except for satellite endpoints, where they are `{volume, volume_tx, volume_rx,
cost}` (the reference schema has no currency or traffic type for them). Volumes are decimal strings
like the snapshot's (the organisation-level daily reference declares strings; the endpoint-level one
declares numbers: `daily_volumes_as_numbers` switches to numbers), cost a number in EUR.

Knobs (defaults: what the API does when nothing unusual happens):

* `endpoints` (20 x scale), `deleted_endpoints` (0: listed, but their statistics answer 404),
  `max_per_page` (1000), `now` (the clock's start, ISO 8601), `step_minutes` (5), `token_lifetime_seconds`,
  `token_lifetime_requests`, `application_token`.
* `last_hour_minutes` (60; the official example has 59): how many minute entries `last_hour` holds.
* `growing_newest_minute` (False): `last_hour` ends with the minute in progress (the `Date` header's
  minute), whose value is still accumulating: the n-th statistics request that shows it reports
  n/(n+1) of what the minute finally holds (every later request a larger value), and it shows the full
  value once `advance()` has moved the clock past it.
* `out_of_order_updates` (False): in `advance()`, an endpoint whose data and SMS rows of the current
  month were last updated at different times may have the older row updated (with late traffic,
  booked on that moment's day) with a `last_updated` between the two: the data row updated at 11:30
  after the SMS row was updated at 12:00. Tracking the newest `last_updated` per endpoint loses it.
* `deletions_during_listing` (0): that many endpoints of the first page are deleted once the first
  page has been served and before a later page is (the first time), so offset pagination shifts and a
  client skips as many live endpoints; each page's `X-Total-Count`/`X-Total-Pages` are those of the
  moment it is served. The deleted endpoints answer 404 to their statistics.
* `daily_refuses_future_end` (False): a daily-series `end_date` after the clock's day is refused with 422
  1301 InvalidQueryCriteria instead of being capped at today (the reference says neither).
* `daily_history_days` (200), `daily_volumes_as_numbers` (False), `daily_null_kinds` (False: on a
  listed day a kind without traffic is reported as null or as an empty object `{}` instead of zeros),
  `satellite_endpoints` (0: endpoints that also report `sat_geo_data` and `sat_geo_sms`).
* `ip_limit` (2000), `ip_window_seconds` (300), `auth_limit` (100), `auth_window_seconds` (300),
  `monthly_quota` (None).

`expected()` is computed from the data model (never from what is served). `emnify_endpoints`: every
endpoint listed at any time (those deleted during the listing included, as they were on the first
page). `emnify_endpoint_usage_monthly`: the rows of the live endpoints. `emnify_endpoint_usage_last_hour`:
the complete minutes of the window with their final values (never the minute in progress).
`emnify_endpoint_usage_daily` (option `start_date`, default 30 days before the clock): one record per
live endpoint, day from the start date's day to today, and kind the API reports as a non-empty object:
`{endpoint_id, date, traffic_kind, volume, volume_tx, volume_rx, unit, cost, currency}` (numbers; the
currency's code, null for the satellite kinds).
"""

from __future__ import annotations

import calendar
import copy
import itertools
import math
import random
import time
from array import array
from collections import Counter
from datetime import date, datetime, timedelta
from email.utils import formatdate
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import jwt

from source_usage.emulator.app import BenchScenario, Ideal, VendorApp, route_of, simulate_schedule
from source_usage.emulator.data import iso, parse_iso, stable_hex, stable_int, utc_now
from source_usage.emulator.http import Request, Response, RollingWindow, TokenBucket, json_response

APPLICATION_TOKEN = "KAOp24emnifyEmulatorApplicationToken0000000000000001"
JWT_SECRET = "emnify-emulator-hs256-signing-key-0001"
JWT_LIFETIME = timedelta(minutes=240)
MAX_PER_PAGE = 1000
ORGANISATION_ID = 4242
DATA, SMS = 5, 6
TRAFFIC_TYPES = {
    "data": {"description": "Data", "unit": "MB", "id": DATA},
    "sms": {"description": "SMS", "unit": "SMS", "id": SMS},
}
SNAPSHOT_KINDS = (("data", DATA), ("sms", SMS))
KINDS = ("data", "sms", "sat_geo_data", "sat_geo_sms")
SATELLITE_KINDS = ("sat_geo_data", "sat_geo_sms")
UNITS = {"data": "MB", "sms": "SMS", "sat_geo_data": "MB", "sat_geo_sms": "SMS"}
COUNTED = {"sms", "sat_geo_sms"}  # whole messages
PRICE_PER_UNIT = {"data": 0.2093, "sms": 0.065, "sat_geo_data": 6.5, "sat_geo_sms": 0.45}  # EUR per MB / message
CURRENCY = {"code": "EUR", "symbol": "€", "id": 1}
MICRO = 1_000_000  # volumes are kept in millionths: the API prints six decimals
DAILY_MAX_MONTHS = 6  # assumed: the docs do not say how long a daily range may be
TOO_MANY_REQUESTS = "Too many requests, please try again later"


def _error(status: int, code: int, token: str, message: str, **extra: Any) -> Response:
    return json_response({"error_code": code, "error_token": token, "message": message, **extra}, status)


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _previous_month_start(moment: datetime) -> datetime:
    return _month_start(_month_start(moment) - timedelta(days=1))


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return day.replace(year=year, month=month + 1, day=min(day.day, calendar.monthrange(year, month + 1)[1]))


def _typed_endpoint(endpoint: dict) -> dict:
    """An endpoint as the connector delivers it: its instants in RFC 3339 UTC (`...Z`, no zero fraction)."""
    typed = copy.deepcopy(endpoint)
    for field in ("created", "last_updated"):
        if isinstance(typed.get(field), str):
            typed[field] = iso(datetime.strptime(typed[field], "%Y-%m-%dT%H:%M:%S.%f%z"))
    return typed


def _stamp(moment: datetime) -> str:
    """emnify's statistics timestamps: `2020-11-30T14:56:25.000Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _decimal(micro: int) -> str:
    return f"{micro // MICRO}.{micro % MICRO:06d}"


def _cost(kind: str, micro: int) -> float:
    """The price of `micro` millionths of a unit of `kind`, in EUR."""
    return round(micro / MICRO * PRICE_PER_UNIT[kind], 8)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


class EmnifyApp(VendorApp):
    name = "emnify"
    prefix = "/emnify/api/v1"
    streams = ("emnify_endpoints", "emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour", "emnify_endpoint_usage_daily")
    limit_names = ("ip", "authentication", "path", "monthly_quota")

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
        token_lifetime_requests: Optional[int] = None,
        application_token: str = APPLICATION_TOKEN,
        last_hour_minutes: int = 60,
        growing_newest_minute: bool = False,
        out_of_order_updates: bool = False,
        deletions_during_listing: int = 0,
        ip_limit: int = 2000,
        ip_window_seconds: float = 300.0,
        auth_limit: int = 100,
        auth_window_seconds: float = 300.0,
        monthly_quota: Optional[int] = None,
        daily_history_days: int = 200,
        daily_volumes_as_numbers: bool = False,
        daily_null_kinds: bool = False,
        satellite_endpoints: int = 0,
        daily_refuses_future_end: bool = False,
    ) -> None:
        super().__init__(seed, scale, rate_limits)
        self.application_token = application_token
        self.max_per_page = max(1, min(MAX_PER_PAGE, max_per_page))
        self.step = timedelta(minutes=step_minutes)
        self.token_lifetime_seconds = token_lifetime_seconds
        self.token_lifetime_requests = token_lifetime_requests
        self.last_hour_minutes = max(1, last_hour_minutes)
        self.growing_newest_minute = growing_newest_minute
        self.out_of_order_updates = out_of_order_updates
        self.monthly_quota = monthly_quota
        self.daily_volumes_as_numbers = daily_volumes_as_numbers
        self.daily_null_kinds = daily_null_kinds
        self.daily_refuses_future_end = daily_refuses_future_end
        self.clock = (parse_iso(now) if now else utc_now()).replace(microsecond=0)
        self.steps_taken = 0
        self.issued_tokens: Dict[str, float] = {}  # auth token -> issue time (the app's timer, monotonic)
        self.token_uses: Counter = Counter()  # auth token -> requests it authorised
        self._token_ids = itertools.count(1)
        count = endpoints if endpoints is not None else 20 * self.scale
        self._ids_taken: set = set()
        generated = [self._endpoint(index) for index in range(count)]
        self.traits = {endpoint["id"]: self._traits(index) for index, endpoint in enumerate(generated)}
        self.created = {endpoint["id"]: self._created(index) for index, endpoint in enumerate(generated)}
        self.endpoints = sorted(generated, key=lambda endpoint: endpoint["id"])  # what the listing shows now
        self.deleted = self._pick_deleted(deleted_endpoints)
        self.removed_during_listing: List[dict] = []
        self.pending_listing_deletions = max(0, deletions_during_listing)
        self._first_page_ids: Optional[List[int]] = None
        self.satellite = self._pick_satellite(satellite_endpoints)
        # The data model: per (endpoint, kind) received and transmitted millionths per day since `day0`.
        self.day0 = min(self.clock.date() - timedelta(days=daily_history_days), _previous_month_start(self.clock).date())
        self.daily: Dict[Tuple[int, str], Tuple[array, array]] = {}
        self.row_updated: Dict[Tuple[int, int, datetime], datetime] = {}
        self._seed_usage()
        self.minute_observations: Counter = Counter()
        self.monthly_calls: Counter = Counter()
        self.list_bucket = TokenBucket(rate=10, capacity=5, timer=self.timer)
        self.stats_bucket = TokenBucket(rate=100, capacity=50, timer=self.timer)
        self.ip_window = RollingWindow(ip_limit, ip_window_seconds, self.timer)
        self.auth_window = RollingWindow(auth_limit, auth_window_seconds, self.timer)

    # ----- data --------------------------------------------------------------------------------------

    def _endpoint(self, index: int) -> dict:
        endpoint_id = 100000 + stable_int(self.seed, "endpoint", index, modulo=900000)
        while endpoint_id in self._ids_taken:  # ids are unique, as the API's are (a rare collision moves on)
            endpoint_id = 100000 + (endpoint_id - 100000 + 1) % 900000
        self._ids_taken.add(endpoint_id)
        created = self._created(index)
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

    def _created(self, index: int) -> datetime:
        return self.clock - timedelta(days=40 + stable_int(self.seed, "created", index, modulo=400))

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

    def _pick_satellite(self, count: int) -> Set[int]:
        ids = sorted(self.traits, key=lambda endpoint_id: stable_int(self.seed, "satellite", endpoint_id))
        return set(ids[: max(0, count)])

    def _types_of(self, endpoint_id: int) -> List[int]:
        return [DATA, SMS] if self.traits[endpoint_id]["sms"] else [DATA]

    def _kinds_of(self, endpoint_id: int) -> List[str]:
        """The kinds of traffic an endpoint uses."""
        kinds = ["data", "sms"] if self.traits[endpoint_id]["sms"] else ["data"]
        return kinds + list(SATELLITE_KINDS) if endpoint_id in self.satellite else kinds

    def _row_id(self, endpoint_id: int, traffic_type: int, month: datetime) -> int:
        return 1000 + stable_int(self.seed, "row", endpoint_id, traffic_type, month.isoformat(), modulo=10**8)

    def _volume(self, *parts: Any, traffic_type: int, ceiling_units: int) -> int:
        value = stable_int(self.seed, *parts, modulo=ceiling_units * MICRO)
        return value - value % MICRO + MICRO if traffic_type == SMS else value + 1

    def _index(self, day: date) -> int:
        return (day - self.day0).days

    def _first_day(self, endpoint_id: int) -> date:
        return max(self.day0, self.created[endpoint_id].date())

    def _seed_usage(self) -> None:
        """Daily traffic from `day0` to today; the monthly rows' `last_updated` for last and this month."""
        current, previous = _month_start(self.clock), _previous_month_start(self.clock)
        current_day, previous_day = current.date(), previous.date()
        length = self._index(self.clock.date()) + 1
        for endpoint_id, traits in self.traits.items():
            updated: Dict[Tuple[str, datetime], datetime] = {}
            for kind, traffic_type in SNAPSHOT_KINDS:
                if traffic_type not in self._types_of(endpoint_id):
                    continue
                if traits["last_month"]:
                    hours_before_end = 1 + stable_int(self.seed, "closed", endpoint_id, traffic_type, modulo=72)
                    updated[(kind, previous)] = current - timedelta(hours=hours_before_end)
                if traits["current_month"]:
                    elapsed = (self.clock - current).total_seconds()
                    fraction = (50 + stable_int(self.seed, "updated", endpoint_id, traffic_type, modulo=900)) / 1000
                    updated[(kind, current)] = current + timedelta(seconds=int(elapsed * fraction))
            for (kind, month), moment in updated.items():
                self.row_updated[(endpoint_id, DATA if kind == "data" else SMS, month)] = moment
            first_day = self._first_day(endpoint_id)
            for kind in self._kinds_of(endpoint_id):
                rx, tx = array("q", bytes(8 * length)), array("q", bytes(8 * length))
                rng = random.Random(stable_int(self.seed, "daily", endpoint_id, kind))
                snapshot_kind = kind in ("data", "sms")
                last_updated = {month: updated.get((kind, month)) for month in (current, previous)}
                for index in range(length):
                    active, day_rx, day_tx = rng.random() < 0.6, *self._daily_draw(rng, kind)
                    day = self.day0 + timedelta(days=index)
                    if day < first_day:
                        continue
                    if snapshot_kind and day >= previous_day:
                        last = last_updated[current if day >= current_day else previous]
                        if last is None or day > last.date():
                            continue  # no traffic in that month, or none after its row was last updated
                        if day == last.date():
                            active = True
                            day_rx = day_rx or MICRO
                    if active:
                        rx[index], tx[index] = day_rx, day_tx
                self.daily[(endpoint_id, kind)] = (rx, tx)

    @staticmethod
    def _daily_draw(rng: random.Random, kind: str) -> Tuple[int, int]:
        """One day's received and transmitted millionths of `kind`."""
        if kind == "data":
            return 1 + int(rng.random() * 20 * MICRO), 1 + int(rng.random() * 5 * MICRO)
        if kind == "sat_geo_data":
            return 1 + int(rng.random() * MICRO // 2), 1 + int(rng.random() * MICRO // 5)
        top = 4 if kind == "sms" else 2
        return int(rng.random() * top) * MICRO, int(rng.random() * top) * MICRO

    def _ensure_days(self) -> None:
        """Room in every day series for the clock's day."""
        length = self._index(self.clock.date()) + 1
        for rx, tx in self.daily.values():
            if len(rx) < length:
                rx.extend([0] * (length - len(rx)))
                tx.extend([0] * (length - len(tx)))

    def _on_day(self, endpoint_id: int, kind: str, day: date) -> Tuple[int, int]:
        """(received, transmitted) millionths of `kind` on `day`."""
        series = self.daily.get((endpoint_id, kind))
        index = self._index(day)
        if series is None or index < 0 or index >= len(series[0]):
            return 0, 0
        return series[0][index], series[1][index]

    def _month_totals(self, endpoint_id: int, kind: str, month: datetime) -> Tuple[int, int]:
        """(received, transmitted) millionths of `kind` in the month starting at `month`, summed over its days."""
        series = self.daily.get((endpoint_id, kind))
        if series is None:
            return 0, 0
        first = max(0, self._index(month.date()))
        last = min(len(series[0]), self._index(_add_months(month.date(), 1)))
        return sum(series[0][first:last]), sum(series[1][first:last])

    def _grow(self, endpoint_id: int, kind: str, day: date, rx: int, tx: int) -> None:
        series = self.daily[(endpoint_id, kind)]
        series[0][self._index(day)] += rx
        series[1][self._index(day)] += tx

    def advance(self, steps: int = 1) -> None:
        """Move the clock `step_minutes` per step; a third of the endpoints use traffic in each step."""
        with self.lock:
            for _ in range(steps):
                self.steps_taken += 1
                self.clock += self.step
                self._ensure_days()
                month = _month_start(self.clock)
                for endpoint_id in sorted(self.traits):
                    if endpoint_id in self.deleted or stable_int(self.seed, "grows", endpoint_id, self.steps_taken, modulo=3):
                        continue
                    growth = {kind: self._growth(endpoint_id, kind) for kind in self._kinds_of(endpoint_id)}
                    if self.out_of_order_updates and self._late_update(endpoint_id, month, growth):
                        continue
                    for kind, (rx, tx) in growth.items():
                        self._grow(endpoint_id, kind, self.clock.date(), rx, tx)
                    for traffic_type in self._types_of(endpoint_id):
                        self.row_updated[(endpoint_id, traffic_type, month)] = self.clock

    def _growth(self, endpoint_id: int, kind: str) -> Tuple[int, int]:
        """(received, transmitted) millionths of `kind` an endpoint uses in the current step."""
        code = SMS if kind in COUNTED else DATA
        label: Any = code if kind in ("data", "sms") else kind
        ceiling = {"data": 5, "sms": 3}.get(kind, 1)
        return (
            self._volume("grow rx", endpoint_id, label, self.steps_taken, traffic_type=code, ceiling_units=ceiling),
            self._volume("grow tx", endpoint_id, label, self.steps_taken, traffic_type=code, ceiling_units=ceiling),
        )

    def _late_update(self, endpoint_id: int, month: datetime, growth: Dict[str, Tuple[int, int]]) -> bool:
        """Maybe book late traffic on the row updated less recently, stamped before the other row's update."""
        if stable_int(self.seed, "late", endpoint_id, self.steps_taken, modulo=2):
            return False
        data, sms = self.row_updated.get((endpoint_id, DATA, month)), self.row_updated.get((endpoint_id, SMS, month))
        if data is None or sms is None or abs((data - sms).total_seconds()) < 2:
            return False
        kind, traffic_type, older, newer = ("data", DATA, data, sms) if data < sms else ("sms", SMS, sms, data)
        moment = older + timedelta(seconds=int((newer - older).total_seconds() // 2))
        rx, tx = growth[kind]
        self._grow(endpoint_id, kind, moment.date(), rx, tx)
        self.row_updated[(endpoint_id, traffic_type, month)] = moment
        return True

    def _row_exists(self, endpoint_id: int, traffic_type: int, month: datetime) -> bool:
        kind = "data" if traffic_type == DATA else "sms"
        return (endpoint_id, traffic_type, month) in self.row_updated and sum(self._month_totals(endpoint_id, kind, month)) > 0

    def _window_minutes(self) -> List[datetime]:
        """The minutes `last_hour` lists, oldest first: the complete ones before the clock's minute, and with
        `growing_newest_minute` the clock's minute, still in progress, last."""
        current = self.clock.replace(second=0)
        newest = current if self.growing_newest_minute else current - timedelta(minutes=1)
        return [newest - timedelta(minutes=self.last_hour_minutes - 1 - offset) for offset in range(self.last_hour_minutes)]

    def _complete_minutes(self) -> List[datetime]:
        current = self.clock.replace(second=0)
        return [minute for minute in self._window_minutes() if minute < current]

    def _minute_amount(self, endpoint_id: int, kind: str, direction: str, minute: datetime) -> int:
        """What a minute finally holds: messages for SMS, millionths of a MB for data."""
        stamp = int(minute.timestamp())
        if stable_int(self.seed, "active", endpoint_id, kind, direction, stamp, modulo=3):
            return 0
        if kind == "sms":
            return 1 + stable_int(self.seed, "sms", endpoint_id, direction, stamp, modulo=3)
        return 1 + stable_int(self.seed, "mb", endpoint_id, direction, stamp, modulo=2 * MICRO)

    @staticmethod
    def _minute_value(kind: str, amount: int) -> Any:
        return amount if kind == "sms" else amount / MICRO

    # ----- what a test expects (from the data model, never from what is served) -------------------------

    def expected(self, stream: str, start_date: Optional[str] = None, **options: Any) -> List[dict]:
        with self.lock:
            live = sorted(endpoint_id for endpoint_id in self.traits if endpoint_id not in self.deleted)
            if stream == "emnify_endpoints":
                listed = self.endpoints + self.removed_during_listing
                return [_typed_endpoint(endpoint) for endpoint in sorted(listed, key=lambda endpoint: endpoint["id"])]
            if stream == "emnify_endpoint_usage_monthly":
                return [record for endpoint_id in live for record in self._expected_monthly(endpoint_id)]
            if stream == "emnify_endpoint_usage_last_hour":
                minutes = self._complete_minutes()
                newest = self._window_minutes()[-1]  # the newest minute of a snapshot is not final yet
                return [
                    {
                        "endpoint_id": endpoint_id,
                        "traffic_type": kind,
                        "minute": iso(minute),
                        "rx": self._minute_value(kind, self._minute_amount(endpoint_id, kind, "rx", minute)),
                        "tx": self._minute_value(kind, self._minute_amount(endpoint_id, kind, "tx", minute)),
                        "is_final": minute != newest,
                    }
                    for endpoint_id in live
                    for kind in ("data", "sms")
                    for minute in minutes
                ]
            if stream == "emnify_endpoint_usage_daily":
                first = parse_iso(start_date).date() if start_date else self.clock.date() - timedelta(days=30)
                lookback = int(options.get("daily_lookback_days", 2))
                return [record for endpoint_id in live for record in self._expected_daily(endpoint_id, first, lookback)]
        raise KeyError(stream)

    def _expected_monthly(self, endpoint_id: int) -> List[dict]:
        records = []
        for period, month in (("last_month", _previous_month_start(self.clock)), ("current_month", _month_start(self.clock))):
            for kind, traffic_type in SNAPSHOT_KINDS:
                if (endpoint_id, traffic_type, month) not in self.row_updated:
                    continue
                rx, tx = self._month_totals(endpoint_id, kind, month)
                if rx + tx == 0:
                    continue
                records.append(
                    {
                        "endpoint_id": endpoint_id,
                        "month": iso(month),
                        "volume": (rx + tx) / MICRO,
                        "volume_tx": tx / MICRO,
                        "volume_rx": rx / MICRO,
                        "traffic_type_id": traffic_type,
                        "last_updated": iso(self.row_updated[(endpoint_id, traffic_type, month)]),
                        "cost": _cost(kind, rx + tx),
                        "currency_id": CURRENCY["id"],
                        "id": self._row_id(endpoint_id, traffic_type, month),
                        "traffic_type": dict(TRAFFIC_TYPES[kind]),
                        "currency": dict(CURRENCY),
                        "period": period,
                        "is_final": period == "last_month",  # a closed calendar month
                    }
                )
        return records

    def _expected_daily(self, endpoint_id: int, first: date, lookback_days: int = 2) -> List[dict]:
        """Days from `first` to today; a day is final once it is older than the lookback the connector
        re-reads (it will not be read again)."""
        final_before = self.clock.date() - timedelta(days=lookback_days)
        records = []
        for day in _days(max(first, self._first_day(endpoint_id)), self.clock.date()):
            amounts = {kind: self._on_day(endpoint_id, kind, day) for kind in KINDS}
            if not any(rx + tx for rx, tx in amounts.values()):
                continue  # the API lists only days with traffic
            for kind in self._reported_kinds(endpoint_id, day, amounts):
                rx, tx = amounts[kind]
                records.append(
                    {
                        "endpoint_id": endpoint_id,
                        "date": day.isoformat(),
                        "traffic_kind": kind,
                        "volume": (rx + tx) / MICRO,
                        "volume_tx": tx / MICRO,
                        "volume_rx": rx / MICRO,
                        "unit": UNITS[kind],
                        "cost": _cost(kind, rx + tx),
                        "currency": CURRENCY["code"] if kind in ("data", "sms") else None,
                        "is_final": day < final_before,
                    }
                )
        return records

    def _reported_kinds(self, endpoint_id: int, day: date, amounts: Dict[str, Tuple[int, int]]) -> List[str]:
        """The kinds a listed day reports as objects (the rest are null, or `{}` with `daily_null_kinds`)."""
        kinds = ["data", "sms"] + (list(SATELLITE_KINDS) if endpoint_id in self.satellite else [])
        if self.daily_null_kinds:
            kinds = [kind for kind in kinds if sum(amounts[kind]) > 0]
        return kinds

    def connector_config(self, base_url: str) -> Dict[str, Any]:
        return {"application_token": self.application_token, "base_url": base_url}

    def stats(self) -> Dict[str, Any]:
        stats = super().stats()
        with self.lock:
            stats["monthly_calls"] = self.monthly_calls[self.clock.strftime("%Y-%m")]
        return stats

    # ----- for the benchmark -----------------------------------------------------------------------------

    route_labels = {
        "/authenticate": "emnify authentication",
        "/endpoint": "emnify_endpoints",
        "/endpoint/{id}/stats": "emnify_endpoint_usage_monthly + _last_hour",
        "/endpoint/{id}/stats/daily": "emnify_endpoint_usage_daily",
    }

    @classmethod
    def benchmark_scenarios(cls, scale: int) -> List[BenchScenario]:
        sweep = ("emnify_endpoints", "emnify_endpoint_usage_monthly")
        return [
            BenchScenario(
                "emnify-sweep",
                "emnify statistics sweep over 1,500 endpoints with its limits on (under the per-IP 2,000 requests per 5 minutes)",
                {"endpoints": 1500},
                streams=sweep,
                scale=1,
            ),
            BenchScenario(
                "emnify-fleet",
                "emnify statistics sweep over 2,300 endpoints with its limits on: past 2,000 requests the per-IP window (5 minutes) holds the rest",
                {"endpoints": 2300},
                streams=sweep,
                option="emnify-fleet",
                scale=1,
            ),
        ]

    def minimum_requests(self) -> Dict[str, int]:
        """One login, the listing at 1,000 per page, one statistics snapshot and one daily series (a range
        of at most six months) per live endpoint."""
        live = len(self.expected("emnify_endpoints")) - len(self.deleted)
        return {
            "emnify authentication": 1,
            "emnify_endpoints": max(1, math.ceil(len(self.endpoints) / self.max_per_page)),
            "emnify_endpoint_usage_monthly + _last_hour": live,
            "emnify_endpoint_usage_daily": live,
        }

    def ideal(self, requests: Sequence[Dict[str, Any]]) -> Optional[Ideal]:
        """The served requests in the order they were sent, each at the earliest moment every limit it falls
        under allows (no latency): the per-IP window over all of them, the login window, and the path
        buckets (listing 10/s burst 5, statistics 100/s burst 50)."""
        ip = ("ip", self.ip_window.limit, self.ip_window.period)
        limits = []
        served = sorted((entry for entry in requests if entry["status"] != 429), key=lambda entry: entry["started"])
        for entry in served:
            route = route_of(self.path_of(entry["url"]))
            if route == "/authenticate":
                limits.append(((), (ip, ("login", self.auth_window.limit, self.auth_window.period))))
            elif route == "/endpoint":
                limits.append(((("list", self.list_bucket.rate, self.list_bucket.capacity),), (ip,)))
            else:
                limits.append(((("stats", self.stats_bucket.rate, self.stats_bucket.capacity),), (ip,)))
        seconds = simulate_schedule(limits)
        return Ideal(
            seconds,
            f"{len(served)} requests in the order sent, each as early as the limits allow: per IP {self.ip_window.limit} per "
            f"{self.ip_window.period:g} s, statistics {self.stats_bucket.rate:g}/s (burst {self.stats_bucket.capacity:g}), "
            f"listing {self.list_bucket.rate:g}/s (burst {self.list_bucket.capacity:g})",
        )

    # ----- serving -----------------------------------------------------------------------------------

    def rate_limited(self, request: Request) -> Response:
        return _error(429, 1105, "TooManyRequests", TOO_MANY_REQUESTS)

    def handle(self, request: Request) -> Response:
        if self.rate_limits and self.ip_window.take(request.client_ip) is not None:
            return self._refused("ip")
        parts = request.path.strip("/").split("/")
        if parts == ["authenticate"]:
            if request.method != "POST":
                return _error(405, 1000, "MethodNotAllowed", "Method not allowed")
            if self.rate_limits and self.auth_window.take(request.client_ip) is not None:
                return self._refused("authentication")
            return self._authenticate(request)
        refused = self._check_token(request)
        if refused is not None:
            return refused
        over_quota = self._count_call()
        if over_quota is not None:
            return over_quota
        if request.method != "GET":
            return _error(405, 1000, "MethodNotAllowed", "Method not allowed")
        if parts == ["endpoint"]:
            return self._limited(self.list_bucket) or self._endpoint_page(request)
        if len(parts) == 3 and parts[0] == "endpoint" and parts[2] == "stats":
            return self._limited(self.stats_bucket) or self._stats(parts[1])
        if len(parts) == 4 and parts[0] == "endpoint" and parts[2:] == ["stats", "daily"]:
            return self._limited(self.stats_bucket) or self._daily(request, parts[1])
        return _error(404, 1201, "NotFound", "Resource not found")

    def _refused(self, limiter: str) -> Response:
        with self.lock:
            self.limited_by[limiter] += 1
        return self.rate_limited(None)  # type: ignore[arg-type]

    def _limited(self, bucket: TokenBucket) -> Optional[Response]:
        if self.rate_limits and bucket.take() is not None:
            return self._refused("path")
        return None

    def _count_call(self) -> Optional[Response]:
        """Count one call of the organisation this month; 429 once the monthly quota is used up."""
        with self.lock:
            month = self.clock.strftime("%Y-%m")
            if self.monthly_quota is not None and self.monthly_calls[month] >= self.monthly_quota:
                self.limited_by["monthly_quota"] += 1
                resets = _add_months(_month_start(self.clock).date(), 1)
                message = (
                    f"Monthly request quota exceeded: the organisation has made its {self.monthly_quota} API requests "
                    f"allowed this month; the quota resets on {resets.isoformat()}"
                )
                return _error(429, 1105, "TooManyRequests", message)
            self.monthly_calls[month] += 1
            return None

    def _authenticate(self, request: Request) -> Response:
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
        over_quota = self._count_call()
        if over_quota is not None:
            return over_quota
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
            self.issued_tokens[token] = self.timer.monotonic()
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
        if self.token_lifetime_seconds is not None and self.timer.monotonic() - issued_at > self.token_lifetime_seconds:
            return _error(401, 1103, "TokenExpired", "Token expired")
        with self.lock:
            if self.token_lifetime_requests is not None and self.token_uses[token] >= self.token_lifetime_requests:
                return _error(401, 1103, "TokenExpired", "Token expired")
            self.token_uses[token] += 1
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
        with self.lock:
            if page >= 2:
                self._delete_during_listing()
            listed = list(self.endpoints)
            total = len(listed)
            total_pages = math.ceil(total / per_page)
            page = min(max(page, 1), max(total_pages, 1))  # past the end: the last page again
            items = listed[(page - 1) * per_page : page * per_page]
            if page == 1 and self._first_page_ids is None:
                self._first_page_ids = [item["id"] for item in items]
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

    def _delete_during_listing(self) -> None:
        """Once the first page has been served, delete endpoints it showed, before a later page is served."""
        if not self.pending_listing_deletions or not self._first_page_ids:
            return
        middle = len(self._first_page_ids) // 2
        victims = set(self._first_page_ids[middle : middle + self.pending_listing_deletions])
        self.pending_listing_deletions = 0
        self.removed_during_listing += [endpoint for endpoint in self.endpoints if endpoint["id"] in victims]
        self.endpoints = [endpoint for endpoint in self.endpoints if endpoint["id"] not in victims]
        self.deleted |= victims

    def _live_endpoint(self, raw_id: str) -> Optional[int]:
        endpoint_id = int(raw_id) if raw_id.isdigit() else None
        if endpoint_id is None or endpoint_id not in self.traits or endpoint_id in self.deleted:
            return None
        return endpoint_id

    def _stats(self, raw_id: str) -> Response:
        with self.lock:
            endpoint_id = self._live_endpoint(raw_id)
            if endpoint_id is None:
                return _error(404, 1201, "NotFound", f"Endpoint with id {raw_id} not found")
            body: Dict[str, Any] = {}
            for period, month in (("last_month", _previous_month_start(self.clock)), ("current_month", _month_start(self.clock))):
                entries = {}
                for kind, traffic_type in SNAPSHOT_KINDS:
                    if self._row_exists(endpoint_id, traffic_type, month):
                        entries[kind] = self._monthly_entry(endpoint_id, kind, traffic_type, month)
                if entries:
                    body[period] = entries
            body["last_hour"] = self._last_hour(endpoint_id)
            date_header = formatdate(self.clock.timestamp(), usegmt=True)
        return json_response(body, headers=[("Date", date_header)])

    def _monthly_entry(self, endpoint_id: int, kind: str, traffic_type: int, month: datetime) -> dict:
        rx, tx = self._month_totals(endpoint_id, kind, month)
        return {
            "endpoint_id": endpoint_id,
            "month": _stamp(month),
            "volume": _decimal(rx + tx),
            "volume_tx": _decimal(tx),
            "volume_rx": _decimal(rx),
            "traffic_type_id": traffic_type,
            "last_updated": _stamp(self.row_updated[(endpoint_id, traffic_type, month)]),
            "cost": _cost(kind, rx + tx),
            "currency_id": CURRENCY["id"],
            "id": self._row_id(endpoint_id, traffic_type, month),
            "traffic_type": dict(TRAFFIC_TYPES[kind]),
            "currency": dict(CURRENCY),
        }

    def _last_hour(self, endpoint_id: int) -> dict:
        current = self.clock.replace(second=0)
        minutes = self._window_minutes()
        if self.growing_newest_minute:
            self.minute_observations[(endpoint_id, current)] += 1
        seen = self.minute_observations[(endpoint_id, current)]

        def shown(kind: str, direction: str, minute: datetime) -> Any:
            amount = self._minute_amount(endpoint_id, kind, direction, minute)
            if minute >= current:  # still accumulating: the n-th look shows n/(n+1) of it
                amount = amount * seen // (seen + 1)
            return self._minute_value(kind, amount)

        return {
            kind: {direction: [[minute.strftime("%H:%M"), shown(kind, direction, minute)] for minute in minutes] for direction in ("rx", "tx")}
            for kind in ("data", "sms")
        }

    def _daily(self, request: Request, raw_id: str) -> Response:
        with self.lock:
            endpoint_id = self._live_endpoint(raw_id)
            if endpoint_id is None:
                return _error(404, 1201, "NotFound", f"Endpoint with id {raw_id} not found")
            today = self.clock.date()
            date_header = formatdate(self.clock.timestamp(), usegmt=True)
        dates: Dict[str, date] = {}
        for name in ("start_date", "end_date"):
            raw = request.param(name)
            if raw is None or raw == "":
                continue
            try:
                dates[name] = date.fromisoformat(raw)
                if len(raw) != 10:
                    raise ValueError(raw)
            except ValueError:
                nested = {"error_code": 1403, "error_token": "InvalidFormat", "message": f"Statistics - {name} has invalid format: Expecting YYYY-MM-DD"}
                return _error(422, 1400, "InputValidationFailed", "Input validation failed", errors=[nested])
        start, end = dates.get("start_date"), dates.get("end_date")
        if end and end > today and self.daily_refuses_future_end:
            return _error(422, 1301, "InvalidQueryCriteria", f"Search criteria end_date={end.isoformat()} is invalid: it is in the future")
        if start and end:
            if start > end or end >= _add_months(start, DAILY_MAX_MONTHS):
                message = (
                    f"Search criteria start_date={start.isoformat()}, end_date={end.isoformat()} is invalid: "
                    f"the start must not be after the end, and the range must not exceed {DAILY_MAX_MONTHS} months"
                )
                return _error(422, 1301, "InvalidQueryCriteria", message)
            first, last = start, end
        elif start:
            first, last = start, _add_months(start, DAILY_MAX_MONTHS) - timedelta(days=1)
        elif end:
            first, last = end.replace(day=1), end
        else:
            first, last = today.replace(day=1), today
        with self.lock:
            entries = [self._daily_entry(endpoint_id, day) for day in _days(max(first, self._first_day(endpoint_id)), min(last, today))]
        return json_response([entry for entry in entries if entry is not None], headers=[("Date", date_header)])

    def _daily_entry(self, endpoint_id: int, day: date) -> Optional[dict]:
        amounts = {kind: self._on_day(endpoint_id, kind, day) for kind in KINDS}
        if not any(rx + tx for rx, tx in amounts.values()):
            return None
        entry: Dict[str, Any] = {"date": day.isoformat()}
        reported = self._reported_kinds(endpoint_id, day, amounts)
        for kind in KINDS:
            if kind not in reported:
                shown_as_null = endpoint_id not in self.satellite and kind in SATELLITE_KINDS
                if self.daily_null_kinds and not shown_as_null and stable_int(self.seed, "empty", endpoint_id, day.isoformat(), kind, modulo=2):
                    entry[kind] = {}
                else:
                    entry[kind] = None
                continue
            rx, tx = amounts[kind]
            volumes = (rx + tx, tx, rx)
            shown = [value / MICRO for value in volumes] if self.daily_volumes_as_numbers else [_decimal(value) for value in volumes]
            item: Dict[str, Any] = {"volume": shown[0], "volume_tx": shown[1], "volume_rx": shown[2], "cost": _cost(kind, rx + tx)}
            if kind in TRAFFIC_TYPES:
                item["currency"] = dict(CURRENCY)
                item["traffic_type"] = dict(TRAFFIC_TYPES[kind])
            entry[kind] = item
        return entry
