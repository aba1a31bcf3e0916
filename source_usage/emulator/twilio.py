"""Emulated Twilio Super SIM API: `GET /v1/UsageRecords`.

The real contract (twilio.com/docs/iot/supersim/api/usage-record-resource, the twilio-oai spec):
* HTTP Basic auth with `AccountSid:AuthToken` or `ApiKeySid(SK...):ApiKeySecret`; otherwise 401
  `{"code": 20003, "message": "Authenticate", ...}` with `WWW-Authenticate`.
* Filters `Sim`, `Fleet` (SID or unique name), `Network` (HW + 32 hex), `IsoCountry` (alpha-2); `Group`
  (`sim`, `fleet`, `network`, `isoCountry`, default none) and `Granularity` (`hour`, `day`, `all`, default
  `all`); `StartTime` inclusive (default one month before `EndTime`), `EndTime` exclusive (default now).
  A dimension neither grouped nor filtered is null in the records.
* Limits: `Group=sim` spans at most 31 days (83603); `hour` 31 days, `day` 3 months, `all` 18 months
  (83604); `StartTime` no older than 18 months before the current UTC day (83605). Invalid values answer
  400 `{"code": 20001, "message": "Invalid <Parameter> parameter ..."}`.
* Pages: `PageSize` 1-1000 (default 50); `meta.next_page_url` is absolute and repeats the filters with
  `PageSize`, `Page` (client state only) and an opaque `PageToken`; null on the last page. Newest period
  first.
* `data_total_billed` is a decimal string ("0.0312"); "0" with a null `billed_unit` while billing is
  pending (the last 24 hours of revealed usage). Amounts belong to the period the usage occurred in.
* With `rate_limits`, more than `concurrent_requests` requests in flight for the account answer 429
  `{"code": 20429, "message": "Too Many Requests"}` (with `Retry-After` only if `retry_after` is set: Twilio
  does not document one). Knob `hold_until_in_flight` (0: off): requests are held (not answered) until
  that many are in flight together, once, at most `hold_seconds` (30); so a test sees that much
  concurrency however fast the machine is (with `concurrent_requests` 1 and 2 here, the second request
  in flight is refused while the first is held).

Data: each SIM's usage per hour, on one network per hour, deterministic from the seed. Day records are
sums of the hours, so both granularities agree. Usage is revealed up to `hidden_hours` before the
emulator started; `advance(steps)` reveals `hours_per_step` more hours per step (never past the current
hour) and bills what has become older than `billing_delay_hours`.

Knob `null_fields` (off by default): about one record in seven (chosen from the seed, the granularity,
the grouping and the period) carries `null` in fields the twilio-oai spec marks nullable: the byte
counts (`data_upload` and `data_download`, or all three with `data_total`) and/or the billing
(`data_total_billed` and `billed_unit`); never in `sim_sid`, `account_sid` or `period`. `expected()`
carries the same nulls.

`expected()` sums the hourly data model itself (it never reads what is served), with Twilio's rules:
periods start on whole hours or UTC days (so the first period is the start date floored to the
granularity), `StartTime` cannot be older than 18 months before the current UTC day, usage is attributed
to the period it occurred in, and billing lags `billing_delay_hours` behind the revealed usage.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import random
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

from source_usage.emulator.app import VendorApp
from source_usage.emulator.data import DAY, HOUR, iso, midnight, parse_iso, stable_hex, stable_int, utc_now
from source_usage.emulator.http import Request, Response, json_response

STREAM = "twilio_supersim_usage_records"
GROUPS = ("sim", "fleet", "network", "isoCountry")
PERIODS: Dict[str, Optional[timedelta]] = {"hour": HOUR, "day": DAY, "all": None}
MAX_SPAN = {"hour": timedelta(days=31), "day": timedelta(days=92), "all": timedelta(days=549)}
SIM_GROUP_MAX_SPAN = timedelta(days=31)
RETENTION_MONTHS = 18
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "MX", "BR", "JP")
PRICE_PER_MB = (Decimal("0.10"), Decimal("0.10"), Decimal("0.25"), Decimal("0.50"))
CENT_HUNDREDTHS = Decimal("0.0001")
NETWORK_SID = re.compile(r"^HW[0-9a-fA-F]{32}$")
ISO_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
ANSWER_CACHE_SIZE = 64
NULL_SHARE = 7  # with `null_fields`, one record in this many has nulls
NULL_PATTERNS = (
    ("data_upload", "data_download"),
    ("data_total_billed", "billed_unit"),
    ("data_upload", "data_download", "data_total", "data_total_billed", "billed_unit"),
)


def twilio_error(status: int, code: int, message: str, headers: Optional[list] = None) -> Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return json_response(body, status, headers)


class _Refused(Exception):
    """A request the API answers with an error body."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _invalid(parameter: str, value: Any, expectation: str) -> _Refused:
    return _Refused(twilio_error(400, 20001, f"Invalid {parameter} parameter '{value}': {expectation}"))


FINAL_AFTER = timedelta(hours=48)  # usage arrives up to 48 hours late; billing follows within 24 hours


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (clamped to the month's last day)."""
    year, month_index = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    month = month_index + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def floor_to(moment: datetime, period: timedelta) -> datetime:
    return midnight(moment) if period == DAY else moment.replace(minute=0, second=0, microsecond=0)


def money(amount: Decimal) -> str:
    """A decimal string as Twilio writes amounts: "0", "0.03", "1.2345"."""
    return "0" if amount == 0 else format(amount.normalize(), "f")


def page_token(offset: int) -> str:
    return "PA" + base64.urlsafe_b64encode(f"offset={offset}".encode()).decode().rstrip("=")


def offset_of(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token[2:] + "=" * (-len(token[2:]) % 4)).decode()
        if not token.startswith("PA") or not text.startswith("offset="):
            raise ValueError(token)
        return max(0, int(text[len("offset="):]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid("PageToken", token, "use the next_page_url the API returned") from None


@dataclass(frozen=True)
class Query:
    group: Optional[str]
    granularity: str
    start: datetime
    end: datetime
    sim: Optional[int] = None
    fleet: Optional[int] = None
    network: Optional[int] = None
    iso_country: Optional[str] = None


Usage = Tuple[int, int, int, int, Decimal]  # (sim, network, bytes up, bytes down, amount)


class TwilioApp(VendorApp):
    name = "twilio"
    prefix = "/twilio/v1"
    streams = (STREAM,)

    def __init__(
        self,
        seed: int,
        scale: int,
        rate_limits: bool,
        sims: Optional[int] = None,
        fleets: int = 2,
        networks: int = 4,
        days: int = 10,
        hidden_hours: int = 48,
        hours_per_step: int = 24,
        billing_delay_hours: int = 24,
        active_share: float = 0.6,
        credentials: str = "auth_token",
        account_sid: Optional[str] = None,
        auth_token: Optional[str] = None,
        api_key_sid: Optional[str] = None,
        api_key_secret: Optional[str] = None,
        granularity: str = "day",
        concurrent_requests: int = 100,
        retry_after: Optional[int] = None,
        latency: float = 0.0,
        null_fields: bool = False,
        hold_until_in_flight: int = 0,
        hold_seconds: float = 30.0,
    ) -> None:
        super().__init__(seed, scale, rate_limits)
        self.null_fields = null_fields
        if credentials not in ("auth_token", "api_key"):
            raise ValueError("credentials must be 'auth_token' or 'api_key'")
        self.account_sid = account_sid or "AC" + stable_hex(32, seed, "account")
        self.auth_token = auth_token or stable_hex(32, seed, "auth-token")
        self.api_key_sid = api_key_sid or "SK" + stable_hex(32, seed, "api-key")
        self.api_key_secret = api_key_secret or stable_hex(32, seed, "api-key-secret")
        self.credentials = credentials
        self.granularity = granularity
        self.sim_sids = ["HS" + stable_hex(32, seed, "sim", index) for index in range(sims or 8 * self.scale)]
        self.sim_names = [f"sim-{index + 1}" for index in range(len(self.sim_sids))]
        self.fleet_sids = ["HF" + stable_hex(32, seed, "fleet", index) for index in range(fleets)]
        self.fleet_names = [f"fleet-{index + 1}" for index in range(fleets)]
        self.network_sids = ["HW" + stable_hex(32, seed, "network", index) for index in range(networks)]
        self.network_countries = [COUNTRIES[index % len(COUNTRIES)] for index in range(networks)]
        self.active_share = active_share
        self.hours_per_step = hours_per_step
        self.billing_delay = timedelta(hours=billing_delay_hours)
        self.concurrent_requests = concurrent_requests
        self.retry_after = retry_after
        self.latency = latency
        current_hour = floor_to(utc_now(), HOUR)
        self.revealed_until = current_hour - timedelta(hours=hidden_hours)
        self.first_hour = self.revealed_until - days * DAY
        self.in_flight = 0
        self.hold_until_in_flight = hold_until_in_flight
        self.hold_seconds = hold_seconds
        self.peak_in_flight = 0
        self._released = threading.Event()
        if hold_until_in_flight <= 1:
            self._released.set()
        self._hours: Dict[int, List[Usage]] = {}
        self._answers: "OrderedDict[tuple, List[dict]]" = OrderedDict()

    # ----- data --------------------------------------------------------------------------------------

    def _usage_in_hour(self, hour: datetime) -> List[Usage]:
        """Which SIMs used data in `hour`, on which network, how much and at what price."""
        key = int(hour.timestamp()) // 3600
        usage = self._hours.get(key)
        if usage is None:
            rng = random.Random(stable_int(self.seed, "hour", key))
            usage = []
            for sim in range(len(self.sim_sids)):
                if rng.random() >= self.active_share:
                    continue
                network = rng.randrange(len(self.network_sids))
                up, down = rng.randint(1_000, 400_000), rng.randint(5_000, 2_000_000)
                amount = (Decimal(up + down) * PRICE_PER_MB[network % len(PRICE_PER_MB)] / 1_000_000).quantize(CENT_HUNDREDTHS)
                usage.append((sim, network, up, down, amount))
            with self.lock:
                self._hours[key] = usage
        return usage

    def _aggregate(self, query: Query, revealed_until: datetime) -> List[dict]:
        """The API's records for `query`, newest period first (cached: pages of one query share them)."""
        cache_key = (query, revealed_until)
        with self.lock:
            cached = self._answers.get(cache_key)
        if cached is not None:
            return cached
        period = PERIODS[query.granularity]
        billed_until = revealed_until - self.billing_delay
        totals: Dict[datetime, Dict[Optional[str], list]] = {}
        hour = floor_to(max(query.start, self.first_hour), HOUR)
        if hour < query.start:
            hour += HOUR  # usage "at or after StartTime": an hour that began earlier is not included
        stop = min(query.end, revealed_until)
        while hour < stop:
            groups = totals.setdefault(floor_to(hour, period) if period else query.start, {})
            billed = hour < billed_until
            for sim, network, up, down, amount in self._usage_in_hour(hour):
                if not self._matches(query, sim, network):
                    continue
                total = groups.setdefault(self._group_value(query.group, sim, network), [0, 0, Decimal(0), False])
                total[0] += up
                total[1] += down
                if billed:
                    total[2] += amount
                    total[3] = True
            hour += HOUR
        records = []
        for period_start in sorted(totals, reverse=True):
            period_end = period_start + period if period else query.end
            times = {"start_time": iso(period_start), "end_time": iso(period_end)}
            groups = totals[period_start]
            for group_value in sorted(groups, key=lambda value: value or ""):
                records.append(self._record(query, times, group_value, *groups[group_value]))
        with self.lock:
            self._answers[cache_key] = records
            while len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        return records

    def _matches(self, query: Query, sim: int, network: int) -> bool:
        return (
            (query.sim is None or query.sim == sim)
            and (query.fleet is None or query.fleet == self._fleet_of(sim))
            and (query.network is None or query.network == network)
            and (query.iso_country is None or query.iso_country == self.network_countries[network])
        )

    def _fleet_of(self, sim: int) -> int:
        return sim % len(self.fleet_sids)

    def _group_value(self, group: Optional[str], sim: int, network: int) -> Optional[str]:
        if group == "sim":
            return self.sim_sids[sim]
        if group == "fleet":
            return self.fleet_sids[self._fleet_of(sim)]
        if group == "network":
            return self.network_sids[network]
        if group == "isoCountry":
            return self.network_countries[network]
        return None

    def _record(
        self, query: Query, times: Dict[str, str], group_value: Optional[str], up: int, down: int, billed: Decimal, any_billed: bool
    ) -> dict:
        def dimension(group: str, filtered: Optional[str]) -> Optional[str]:
            return group_value if query.group == group else filtered

        record = {
            "period": dict(times),
            "account_sid": self.account_sid,
            "data_upload": up,
            "data_download": down,
            "data_total": up + down,
            "data_total_billed": money(billed) if any_billed else "0",
            "billed_unit": "USD" if any_billed else None,
            "sim_sid": dimension("sim", self.sim_sids[query.sim] if query.sim is not None else None),
            "fleet_sid": dimension("fleet", self.fleet_sids[query.fleet] if query.fleet is not None else None),
            "network_sid": dimension("network", self.network_sids[query.network] if query.network is not None else None),
            "iso_country": dimension("isoCountry", query.iso_country),
        }
        for name in self._null_fields(query.granularity, query.group, group_value, times["start_time"]):
            record[name] = None
        return record

    def _null_fields(self, granularity: str, group: Optional[str], group_value: Optional[str], start_time: str) -> Tuple[str, ...]:
        """The fields the API reports as null in one record (part of the data model, with `null_fields`)."""
        if not self.null_fields or stable_int(self.seed, "nulls", granularity, group, group_value, start_time, modulo=NULL_SHARE):
            return ()
        return NULL_PATTERNS[stable_int(self.seed, "null-pattern", granularity, group, group_value, start_time, modulo=len(NULL_PATTERNS))]

    def advance(self, steps: int = 1) -> None:
        with self.lock:
            latest = floor_to(utc_now(), HOUR)  # the hour in progress is never revealed
            self.revealed_until = min(latest, self.revealed_until + steps * self.hours_per_step * HOUR)

    # ----- what a test expects -----------------------------------------------------------------------

    def expected(self, stream: str, start_date: Optional[str] = None, granularity: Optional[str] = None, **options: Any) -> List[dict]:
        """Every SIM's usage per period from `start_date` until now, summed from the hourly data model."""
        if stream != STREAM:
            raise KeyError(stream)
        granularity = granularity or self.granularity
        period = PERIODS[granularity]
        if period is None:
            raise ValueError("the stream reads hour or day periods")
        now = utc_now()
        start = parse_iso(start_date) if start_date else now - timedelta(days=30)
        start = floor_to(start, period)  # periods are whole hours or UTC days
        start = max(start, months_before(midnight(now), RETENTION_MONTHS))  # StartTime reaches 18 months back at most
        with self.lock:
            revealed_until = self.revealed_until
        billed_until = revealed_until - self.billing_delay
        sums: Dict[Tuple[datetime, int], list] = {}
        hour = max(start, self.first_hour)
        while hour < min(revealed_until, now):
            for sim, _network, up, down, amount in self._usage_in_hour(hour):
                entry = sums.setdefault((floor_to(hour, period), sim), [0, 0, Decimal(0), False])
                entry[0] += up
                entry[1] += down
                if hour < billed_until:
                    entry[2] += amount
                    entry[3] = True
            hour += HOUR
        records = []
        for (period_start, sim), (up, down, billed, any_billed) in sums.items():
            start_time, end_time = iso(period_start), iso(period_start + period)
            record = {
                "period": {"start_time": start_time, "end_time": end_time},
                "account_sid": self.account_sid,
                "data_upload": up,
                "data_download": down,
                "data_total": up + down,
                "data_total_billed": float(billed) if any_billed else 0.0,
                "billed_unit": "USD" if any_billed else None,
                "sim_sid": self.sim_sids[sim],
                "fleet_sid": None,
                "network_sid": None,
                "iso_country": None,
                "start_time": start_time,
                "end_time": end_time,
                "granularity": granularity,
            }
            for name in self._null_fields(granularity, "sim", self.sim_sids[sim], start_time):
                record[name] = None
            # Twilio's rule as the connector documents it: final once the period ended 48 hours before it was
            # read and was billed (or had nothing to bill).
            ended_long_ago = period_start + period <= now - FINAL_AFTER
            record["is_final"] = ended_long_ago and (record["billed_unit"] is not None or record["data_total"] == 0)
            records.append(record)
        return records

    def connector_config(self, base_url: str) -> Dict[str, Any]:
        config: Dict[str, Any] = {"account_sid": self.account_sid, "base_url": base_url, "granularity": self.granularity}
        if self.credentials == "api_key":
            config.update(api_key_sid=self.api_key_sid, api_key_secret=self.api_key_secret)
        else:
            config["auth_token"] = self.auth_token
        return config

    # ----- for the benchmark -----------------------------------------------------------------------------

    route_labels = {"/UsageRecords": "twilio_supersim_usage_records"}

    def minimum_requests(self) -> Dict[str, int]:
        """The usage records at the largest page (1,000)."""
        return {"twilio_supersim_usage_records": max(1, -(-len(self.expected(STREAM)) // 1000))}

    # ----- serving -----------------------------------------------------------------------------------

    def rate_limited(self, request: Request) -> Response:
        headers = [("Retry-After", str(self.retry_after))] if self.retry_after is not None else []
        return twilio_error(429, 20429, "Too Many Requests", headers)

    def handle(self, request: Request) -> Response:
        if not self._authenticated(request):
            return twilio_error(401, 20003, "Authenticate", [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        with self.lock:
            self.in_flight += 1
            in_flight = self.in_flight
            self.peak_in_flight = max(self.peak_in_flight, in_flight)
            if in_flight >= self.hold_until_in_flight:
                self._released.set()
        try:
            if self.rate_limits and in_flight > self.concurrent_requests:
                return self.rate_limited(request)
            if not self._released.wait(self.hold_seconds):
                self._released.set()  # the concurrency never came: hold no request again
            if self.latency:
                time.sleep(self.latency)
            response = self._route(request)
            response.headers.append(("Twilio-Concurrent-Requests", str(in_flight)))
            return response
        finally:
            with self.lock:
                self.in_flight -= 1

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            username, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return False
        expected = {self.account_sid: self.auth_token, self.api_key_sid: self.api_key_secret}.get(username)
        return expected is not None and hmac.compare_digest(expected, password)

    def _route(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/UsageRecords":
            return twilio_error(404, 20404, f"The requested resource /v1{request.path} was not found")
        if request.method != "GET":
            return twilio_error(405, 20004, "Method not allowed")
        try:
            query = self._query(request)
            page_size, page, offset = self._paging(request)
        except _Refused as refused:
            return refused.response
        with self.lock:
            revealed_until = self.revealed_until
        return self._page(request, self._aggregate(query, revealed_until), page_size, page, offset)

    def _query(self, request: Request) -> Query:
        group = request.param("Group")
        if group is not None and group not in GROUPS:
            raise _invalid("Group", group, f"must be one of {', '.join(GROUPS)}")
        granularity = request.param("Granularity") or "all"
        if granularity not in PERIODS:
            raise _invalid("Granularity", granularity, "must be one of hour, day, all")
        now = utc_now()
        end = self._time(request, "EndTime") or now
        start = self._time(request, "StartTime") or months_before(end, 1)
        if start >= end:
            raise _invalid("StartTime", request.param("StartTime"), "must be before EndTime")
        if group == "sim" and end - start > SIM_GROUP_MAX_SPAN:
            raise _Refused(twilio_error(400, 83603, "The maximum allowed query period is 31 days for group by sim queries"))
        if end - start > MAX_SPAN[granularity]:
            message = "The requested query period exceeds the maximum allowed period for the requested Granularity"
            raise _Refused(twilio_error(400, 83604, message))
        if start < months_before(midnight(now), RETENTION_MONTHS):
            raise _Refused(twilio_error(400, 83605, "StartTime parameter is too far in the past. It must be within the last 18 months."))
        return Query(
            group=group,
            granularity=granularity,
            start=start,
            end=end,
            sim=self._lookup(request, "Sim", self.sim_sids, self.sim_names),
            fleet=self._lookup(request, "Fleet", self.fleet_sids, self.fleet_names),
            network=self._network(request),
            iso_country=self._iso_country(request),
        )

    @staticmethod
    def _time(request: Request, name: str) -> Optional[datetime]:
        value = request.param(name)
        if not value:
            return None
        try:
            return parse_iso(value).astimezone(timezone.utc)
        except ValueError:
            raise _invalid(name, value, "must be an ISO 8601 date-time") from None

    @staticmethod
    def _lookup(request: Request, name: str, sids: List[str], unique_names: List[str]) -> Optional[int]:
        """A filter given by SID or unique name; one the account does not have matches nothing."""
        value = request.param(name)
        if value is None:
            return None
        for index, (sid, unique_name) in enumerate(zip(sids, unique_names)):
            if value in (sid, unique_name):
                return index
        return -1

    def _network(self, request: Request) -> Optional[int]:
        value = request.param("Network")
        if value is None:
            return None
        if not NETWORK_SID.match(value):
            raise _invalid("Network", value, "must be a Network SID (HW followed by 32 hexadecimal digits)")
        return self.network_sids.index(value) if value in self.network_sids else -1

    @staticmethod
    def _iso_country(request: Request) -> Optional[str]:
        value = request.param("IsoCountry")
        if value is None:
            return None
        if not ISO_COUNTRY.match(value):
            raise _invalid("IsoCountry", value, "must be an ISO 3166-1 alpha-2 country code")
        return value.upper()

    @staticmethod
    def _paging(request: Request) -> Tuple[int, int, int]:
        """(page size, page number, offset): the position comes from the token; `Page` is client state."""
        raw_size, raw_page = request.param("PageSize", "50"), request.param("Page", "0")
        try:
            page_size = int(raw_size)  # type: ignore[arg-type]
        except ValueError:
            raise _invalid("PageSize", raw_size, "must be an integer between 1 and 1000") from None
        if not 1 <= page_size <= 1000:
            raise _invalid("PageSize", raw_size, "must be an integer between 1 and 1000")
        try:
            page = int(raw_page)  # type: ignore[arg-type]
        except ValueError:
            raise _invalid("Page", raw_page, "must be a non-negative integer") from None
        if page < 0:
            raise _invalid("Page", raw_page, "must be a non-negative integer")
        token = request.param("PageToken")
        return page_size, page, offset_of(token) if token else 0

    @staticmethod
    def _page(request: Request, records: List[dict], page_size: int, page: int, offset: int) -> Response:
        end = offset + page_size
        next_url = request.url(PageSize=page_size, Page=page + 1, PageToken=page_token(end)) if end < len(records) else None
        previous_url = (
            request.url(PageSize=page_size, Page=max(0, page - 1), PageToken=page_token(max(0, offset - page_size))) if offset > 0 else None
        )
        meta = {
            "first_page_url": request.url(PageSize=page_size, Page=0, PageToken=None),
            "key": "usage_records",
            "next_page_url": next_url,
            "page": page,
            "page_size": page_size,
            "previous_page_url": previous_url,
            "url": request.url(PageSize=page_size, Page=page),
        }
        return json_response({"usage_records": records[offset:end], "meta": meta})
