"""emnify REST API v1: endpoint usage and cost statistics.

Streams: `emnify_endpoints` (the listing); two streams flattened from the same per-endpoint statistics
snapshot (`statistics.py`): `emnify_endpoint_usage_monthly` and `emnify_endpoint_usage_last_hour`, whose
snapshot is requested once per endpoint and sync, whichever of them reads first; and
`emnify_endpoint_usage_daily` (`daily.py`), a daily series with history. The snapshot has no time range, so
`start_date` does not narrow it; the daily series starts at `start_date`.

Contract (docs.emnify.com/developers, the emnify Python SDK):

* Auth: `POST /authenticate {"application_token"}` answers `{"auth_token": <JWT>}` (valid 240 minutes, no
  refresh token), sent as `Authorization: Bearer`. An application token that is refused answers 401
  (1101 InvalidCredentials); an expired or unknown auth token on a data request answers 401 (1103
  TokenExpired, 1102 InvalidToken), and the remedy is to authenticate again. The login never follows a
  redirect: the application token goes to the configured host only.
* `GET /endpoint?page=&per_page=`: a bare array, `per_page` at most 1000, `page` 1-based; a page past the
  end returns the LAST page again, so the `X-Total-Pages` header ends the sequence.
* `GET /endpoint/{id}/stats`: a fixed shape, not a list: `last_month` and `current_month` (each with
  `data` and `sms` entries, present only when there was traffic; volumes as decimal strings) and
  `last_hour` (`data`/`sms` -> `rx`/`tx` lists of `["HH:MM", value]` for the minutes up to the response's
  `Date`). 404 (1201 NotFound) when the endpoint was deleted after it was listed.
* Limits: 2,000 requests per 5 minutes per source IP over all paths, 100 authentications per 5 minutes;
  per path and organisation the endpoint list 10 requests/s (burst 5) and statistics 100/s (burst 50);
  over them 429 (1105 TooManyRequests) without `Retry-After`.
* A monthly quota of 10,000,000 calls per organisation: past it, every call answers 429 until the 1st of
  the next month. The connector counts its calls and logs them at the end of each sync, with what they
  come to over a month; a 429 that says the quota is exhausted fails the emnify streams at once.
* Error bodies: `{"error_code", "error_token", "message", "errors"?}`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction

from source_usage.framework.backoff import RetryAfterBackoff
from source_usage.framework.budget import BudgetLayer, MovingWindowLayer, everything, process_layer
from source_usage.framework.config_fields import base_url, integer, secret
from source_usage.framework.cursors import Partition
from source_usage.framework.endpoint import Endpoint, expect_list, expect_object
from source_usage.framework.error_handling import Override, VendorErrors, json_body
from source_usage.framework.errors import UsageError
from source_usage.framework.hosts import Origin
from source_usage.framework.ledger import ledger_row
from source_usage.framework.paginators import PageNumberPaginator
from source_usage.framework.plugin import VendorPlugin
from source_usage.framework.settings import Settings
from source_usage.framework.shared import OncePerKey, SharedResponses
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import instant, observed_at
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import iso_z, parse_timestamp
from source_usage.vendors.emnify.auth import EmnifyAuthenticator, RetryAtOnceWithNewToken, token_expiry
from source_usage.vendors.emnify.daily import EmnifyEndpointUsageDaily
from source_usage.vendors.emnify.statistics import EmnifyEndpointUsageLastHour, EmnifyEndpointUsageMonthly

NAME = "emnify"
ENDPOINTS_PER_PAGE = 1000  # the largest `per_page` the endpoint list allows
NOT_FOUND_ERROR_CODE = 1201
STATS_STREAMS = (EmnifyEndpointUsageMonthly.name, EmnifyEndpointUsageLastHour.name)
MONTHLY_QUOTA = 10_000_000  # calls per organisation and month
QUOTA_WARNING_SHARE = 0.01  # warn when one sync spends more than this share of the monthly quota
ENDPOINT_INSTANTS = ("created", "last_updated")

SPEC = {
    "type": "object",
    "title": "emnify",
    "description": "Endpoint usage and cost statistics.",
    "required": ["application_token"],
    "properties": {
        "application_token": {"type": "string", "title": "Application token", "description": "An application token (Integrations > API).", "airbyte_secret": True, "order": 0},
        "base_url": {"type": "string", "title": "Base URL", "default": "https://cdn.emnify.net/api/v1", "pattern": "^https?://", "order": 1},
        "daily_lookback_days": {
            "type": "integer",
            "title": "Daily lookback (days)",
            "description": "Each incremental sync of emnify_endpoint_usage_daily re-reads this many days before its saved date, which late records may still change.",
            "default": 2,
            "minimum": 0,
            "maximum": 31,
            "order": 2,
        },
    },
}

LOGGER = logging.getLogger("airbyte.emnify")


@dataclass(frozen=True)
class EmnifyConfig:
    application_token: str
    base_url: str
    daily_lookback: timedelta = timedelta(days=2)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "EmnifyConfig":
        return cls(
            application_token=secret(NAME, raw, "application_token"),
            base_url=base_url(NAME, raw, "https://cdn.emnify.net/api/v1", "/api/v1"),
            daily_lookback=timedelta(days=integer(NAME, raw, "daily_lookback_days", 2)),
        )


def describe_error(body: Any) -> Optional[str]:
    """emnify's error bodies: `{"error_code": 1101, "error_token": "...", "message": "...", "errors": [...]}`."""
    if not isinstance(body, Mapping):
        return None
    details = body.get("errors")
    detail_text = "; ".join(str(item.get("message", item)) if isinstance(item, Mapping) else str(item) for item in details) if isinstance(details, list) else ""
    text = "; ".join(str(part) for part in (body.get("message"), detail_text) if part)
    code = body.get("error_code")
    return f"{text} (error {code})" if text and code is not None else (text or None)


def quota_exhausted(response: requests.Response) -> Optional[ErrorResolution]:
    """A 429 that says the organisation's monthly quota is used up does not clear in minutes: fail now.
    emnify documents the 429 and the reset on the 1st of next month but no wording, so any 429 whose text
    speaks of the month or the quota counts; every other 429 is waited out."""
    text = (describe_error(_body(response)) or "").lower()
    if "month" in text or "quota" in text:
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.transient_error,
            f"emnify: the organisation's monthly API quota ({MONTHLY_QUOTA:,} calls) is exhausted; emnify refuses every call "
            f"until the 1st of next month (HTTP 429: {describe_error(_body(response))})",
        )
    return None


def _body(response: requests.Response) -> Any:
    try:
        return json_body(response)
    except ValueError:
        return None


# ----- budgets ----------------------------------------------------------------------------------------


def _requests_to(method: str, pattern: str) -> Callable[[requests.PreparedRequest], Optional[str]]:
    """A budget key function matching `method` requests whose path ends as `pattern` says."""
    compiled = re.compile(pattern)

    def key_of(request: requests.PreparedRequest) -> Optional[str]:
        path = request.path_url.split("?", 1)[0].rstrip("/")
        return "" if request.method == method and compiled.search(path) else None

    return key_of


_is_login = _requests_to("POST", r"/authenticate$")
_is_listing = _requests_to("GET", r"/endpoint$")
_is_statistics = _requests_to("GET", r"/endpoint/[^/]+/stats(/[^/]+)?$")  # stats/*: the snapshot and the daily series


def budget_layers(host: str) -> List[BudgetLayer]:
    """Client-side budgets a little under the documented limits. The per-IP limits are shared by every
    connection of the process to the host; the per-path ones are per connection (per organisation)."""
    window = timedelta(minutes=5, seconds=1)
    return [
        MovingWindowLayer("authentication (100 per 5 minutes)", _is_login, 100, window),
        MovingWindowLayer("endpoint list (10 requests/s)", _is_listing, 5, timedelta(seconds=0.51)),
        MovingWindowLayer("statistics (100 requests/s)", _is_statistics, 50, timedelta(seconds=0.51)),
        process_layer((NAME, host, "per-IP logins"), lambda: MovingWindowLayer("per-IP authentication (100 per 5 minutes)", _is_login, 100, window)),
        process_layer((NAME, host, "per IP"), lambda: MovingWindowLayer("per-IP (2,000 requests per 5 minutes)", everything, 2000, window)),
    ]


# ----- what one sync shares ---------------------------------------------------------------------------


class EmnifyDirectory:
    """The endpoints of one sync (listed once) and the statistics snapshots its stats streams share."""

    def __init__(self, vendor: VendorConnection, sync: SyncContext, authenticator: EmnifyAuthenticator) -> None:
        self.vendor = vendor
        self.sync = sync
        self.overrides: Mapping[int, Override] = {401: authenticator.on_unauthorized, 404: _skip_deleted_endpoint}
        self.endpoints_endpoint = Endpoint(
            "endpoint",
            records=lambda body, partition, response: expect_list(body, NAME, response, "endpoints"),
            paginator=PageNumberPaginator("page", "per_page", ENDPOINTS_PER_PAGE, "X-Total-Pages"),
            max_pages=1000,
            overrides={401: authenticator.on_unauthorized},
        )
        self.stats_endpoint = Endpoint(
            "endpoint/{endpoint_id}/stats",
            records=lambda body, partition, response: [snapshot_of(body, response)],
            max_pages=1,
            overrides=self.overrides,
            on_ignored=self.endpoint_gone,
        )
        self._ids: OncePerKey[str, List[Any]] = OncePerKey(lambda _: self._list_ids())
        consumers = [name for name in STATS_STREAMS if name in sync.selected] or list(STATS_STREAMS)
        self.snapshots: SharedResponses[str, Mapping[str, Any]] = SharedResponses(self._snapshot, len(consumers))
        self._gone: set = set()
        self._lock = threading.Lock()
        self.authenticator = authenticator
        self.names: Dict[Any, str] = {}  # endpoint id -> name, from the listing (for the usage ledger)

    def endpoint_ids(self) -> List[Any]:
        """The ids the endpoints stream listed in this sync, or listed now if it was not read."""
        return self._ids.get("all")

    def endpoint_partitions(self) -> Iterator[Partition]:
        """The endpoints of this shard."""
        for endpoint_id in self.endpoint_ids():
            if self.sync.shard.owns(NAME, endpoint_id):
                yield {"endpoint_id": endpoint_id}

    def remember_endpoint_ids(self, ids: List[Any]) -> None:
        self._ids.put("all", ids)

    def _list_ids(self) -> List[Any]:
        return [endpoint["id"] for endpoint in self.listing() if isinstance(endpoint, Mapping) and "id" in endpoint]

    def listing(self) -> Iterator[dict]:
        """Every endpoint once. Offset pages shift when endpoints are deleted during the listing, which skips
        live ones: when fewer endpoints were listed than the last page's `X-Total-Count`, list once more
        (emitting only the ones not seen), then warn about any still unaccounted for."""
        seen: set = set()
        for attempt in (1, 2):
            totals: List[Optional[int]] = []
            listed_now: set = set()
            for page in self.vendor.pages(self.endpoints_endpoint, {}):
                totals.append(_count(page.response.headers.get("X-Total-Count")))
                for endpoint in page.records:
                    key = endpoint.get("id") if isinstance(endpoint, Mapping) else None
                    listed_now.add(key)
                    if key is not None and key in seen:
                        continue
                    seen.add(key)
                    if key is not None and isinstance(endpoint.get("name"), str):
                        self.names[key] = endpoint["name"]
                    yield endpoint_record(endpoint)
            last = totals[-1] if totals else None
            # Unchanged counts on every page, and as many endpoints as counted: nothing can have been skipped.
            if last is None or (len(set(totals)) == 1 and len(listed_now) >= last):
                return
            if attempt == 1:
                LOGGER.info(
                    f"emnify: the endpoint count changed during the listing ({' -> '.join(str(total) for total in dict.fromkeys(totals))}; "
                    f"{len(listed_now)} listed): endpoints were added or deleted, which shifts the pages; listing again"
                )
        if last is not None and len(listed_now) < last:
            LOGGER.warning(
                f"emnify: listed the endpoints twice and still {last - len(listed_now)} fewer than the API counts ({last}): "
                f"endpoint(s) changing during the listing may have been missed in this sync"
            )

    def _snapshot(self, endpoint_id: str) -> Mapping[str, Any]:
        for record in self.vendor.records(self.stats_endpoint, {"endpoint_id": endpoint_id}):
            return record
        return {"gone": True}

    def ledger_row(self, record: Mapping[str, Any], **row: Any) -> Dict[str, Any]:
        """A ledger row about one of this organisation's endpoints."""
        return ledger_row(
            vendor=NAME,
            account_id=self.authenticator.organisation_id or "default",
            subject_type="endpoint",
            subject_id=record["endpoint_id"],
            subject_name=self.names.get(record["endpoint_id"]),
            is_final=record["is_final"],
            observed_at=record["observed_at"],
            **row,
        )

    def warn_once(self, key: str, message: str) -> None:
        self.sync.warn_once(("emnify", key), message)

    def is_gone(self, endpoint_id: Any) -> bool:
        with self._lock:
            return str(endpoint_id) in self._gone

    def endpoint_gone(self, response: requests.Response, partition: Partition) -> None:
        endpoint_id = str(partition["endpoint_id"])  # the snapshot share keys endpoints by their text
        with self._lock:
            if endpoint_id in self._gone:
                return
            self._gone.add(endpoint_id)
        self.sync.logger.warning(
            f"emnify: skipping endpoint {endpoint_id}: it was deleted after it was listed "
            f"(HTTP {response.status_code}: {self.vendor.errors.text_of(response)})"
        )


def _count(value: Optional[str]) -> Optional[int]:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def snapshot_of(body: Any, response: requests.Response) -> Mapping[str, Any]:
    """What the stats streams keep of one statistics response: its body, when it was made (the `Date` the
    minute labels are placed against) and when the figures were observed."""
    return {
        "as_of": iso_z(response_time(response)),
        "observed_at": observed_at(response),
        "body": expect_object(body, NAME, response, "a statistics object"),
    }


def response_time(response: requests.Response) -> datetime:
    """When the API made the response (its `Date` header), or when we received it if it has none."""
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(response.headers["Date"])
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment.astimezone(timezone.utc)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        LOGGER.warning("emnify: a statistics response has no valid Date header; placing its minutes with our clock")
        return datetime.now(timezone.utc)


def _skip_deleted_endpoint(response: requests.Response) -> Optional[ErrorResolution]:
    """emnify's NotFound means the endpoint was deleted since it was listed; any other 404 is a real failure."""
    body = _body(response)
    if isinstance(body, Mapping) and (body.get("error_code") == NOT_FOUND_ERROR_CODE or body.get("error_token") == "NotFound"):
        return ErrorResolution(ResponseAction.IGNORE, None, None)
    return None


def endpoint_record(endpoint: Any) -> Any:
    """An endpoint as the API gives it, its instants in RFC 3339 UTC (emnify sends `...000+0000`)."""
    if not isinstance(endpoint, Mapping):
        return endpoint
    record = dict(endpoint)
    for field in ENDPOINT_INSTANTS:
        if field in record:
            record[field] = instant(record[field], field)
    return record


# ----- streams ----------------------------------------------------------------------------------------


class EmnifyEndpoints(UsageStream):
    """Every endpoint (device) of the organisation; its ids are the partitions of the usage streams."""

    name = "emnify_endpoints"
    primary_key = "id"

    def __init__(self, vendor: VendorConnection, sync: SyncContext, directory: EmnifyDirectory) -> None:
        super().__init__(vendor, sync)
        self.directory = directory

    def read_partition(self, partition: Partition, run: StreamRun) -> Iterator[dict]:
        ids: List[Any] = []
        for endpoint in self.directory.listing():
            if isinstance(endpoint, Mapping) and "id" in endpoint:
                ids.append(endpoint["id"])
            yield endpoint
        # The usage streams need these ids: remember them so that they do not list the endpoints again.
        self.directory.remember_endpoint_ids(ids)


# ----- the plugin -------------------------------------------------------------------------------------


@dataclass
class EmnifyConnection(VendorConnection):
    """The connection with the authenticator its streams share (and whose 401 handling they use). A quota
    429 is remembered: every later emnify request of the sync fails at once with the same line."""

    def __post_init__(self) -> None:
        self.error_overrides = {**self.error_overrides, 429: self._quota_exhausted}
        super().__post_init__()
        if isinstance(self.authenticator, EmnifyAuthenticator):
            self.authenticator.log_in_through(self)

    def _quota_exhausted(self, response: requests.Response) -> Optional[ErrorResolution]:
        resolution = quota_exhausted(response)
        if resolution is not None and resolution.error_message:
            self.refuse_further(resolution.error_message, resolution.failure_type or FailureType.transient_error)
        return resolution

    @property
    def emnify_authenticator(self) -> EmnifyAuthenticator:
        assert isinstance(self.authenticator, EmnifyAuthenticator)
        return self.authenticator


class Emnify(VendorPlugin[EmnifyConfig]):
    name = NAME
    title = "emnify"
    position = 30
    spec = SPEC
    emulator = "source_usage.emulator.emnify:EmnifyApp"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def parse_config(self, raw: Mapping[str, Any]) -> EmnifyConfig:
        return EmnifyConfig.parse(raw)

    def connect(self, config: EmnifyConfig, settings: Settings) -> EmnifyConnection:
        origin = Origin.of(config.base_url)
        host = f"{origin.host}:{origin.port}" if origin else config.base_url
        return EmnifyConnection(
            NAME,
            config.base_url,
            VendorErrors(NAME, rejected={401: "the application token was rejected"}, describe=describe_error),
            authenticator=EmnifyAuthenticator(config.application_token, self._clock),
            budget_layers=budget_layers(host),
            backoff=[RetryAtOnceWithNewToken(), RetryAfterBackoff()],
            max_workers=8,
            settings=settings,
        )

    def streams(self, connection: VendorConnection, config: EmnifyConfig, sync: SyncContext) -> List[UsageStream]:
        directory = EmnifyDirectory(connection, sync, _emnify(connection).emnify_authenticator)
        return [
            EmnifyEndpoints(connection, sync, directory),
            EmnifyEndpointUsageMonthly(connection, sync, directory),
            EmnifyEndpointUsageLastHour(connection, sync, directory),
            EmnifyEndpointUsageDaily(connection, sync, directory, config.daily_lookback),
        ]

    def ledger_sources(self, selected: Sequence[str]) -> Sequence[str]:
        """The daily series when it is selected (or when neither it nor the monthly figures are); else the
        monthly figures. Never both, which would count the same traffic twice, and never the last hour's
        minutes, which the month already holds."""
        if EmnifyEndpointUsageMonthly.name in selected and EmnifyEndpointUsageDaily.name not in selected:
            return [EmnifyEndpointUsageMonthly.name]
        return [EmnifyEndpointUsageDaily.name]

    def check(self, connection: VendorConnection, config: EmnifyConfig, sync: SyncContext) -> None:
        """Authenticate and read the first page of endpoints."""
        directory = EmnifyDirectory(connection, sync, _emnify(connection).emnify_authenticator)
        next(iter(connection.pages(directory.endpoints_endpoint, {})), None)

    def sync_finished(self, connection: VendorConnection, sync: SyncContext) -> None:
        """The calls this sync made against the monthly quota, and what they come to over a month."""
        calls = connection.requests_sent
        previous = _previous_sync(sync)
        now = datetime.now(timezone.utc)
        if previous is not None and now - previous > timedelta(minutes=1):
            per_month = calls * (timedelta(days=30) / (now - previous))
            rate = f"one sync every {_hours(now - previous)} (from the saved state) comes to about {per_month:,.0f} calls a month"
        else:
            per_month = None
            rate = "no earlier sync in the state tells how often it runs"
        share = calls / MONTHLY_QUOTA
        LOGGER.info(f"emnify: this sync made {calls:,} API calls ({share:.3%} of the {MONTHLY_QUOTA:,} monthly quota); {rate}")
        if share > QUOTA_WARNING_SHARE:
            LOGGER.warning(
                f"emnify: this sync alone spent {share:.1%} of the organisation's monthly API quota ({calls:,} of {MONTHLY_QUOTA:,} calls); "
                f"consider syncing less often or selecting fewer emnify streams"
            )


def _previous_sync(sync: SyncContext) -> Optional[datetime]:
    for name in (*STATS_STREAMS, EmnifyEndpointUsageDaily.name):
        stamp = sync.saved_state(name).get("synced_at")
        if isinstance(stamp, str):
            try:
                return parse_timestamp(stamp)
            except ValueError:
                continue
    return None


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def _emnify(connection: VendorConnection) -> EmnifyConnection:
    if not isinstance(connection, EmnifyConnection):
        raise TypeError("the emnify streams need the connection Emnify.connect made")
    return connection


plugin = Emnify()

__all__ = ["Emnify", "EmnifyAuthenticator", "EmnifyConfig", "plugin", "token_expiry"]
