"""emnify REST API v1: endpoint usage and cost statistics.

Streams: `emnify_endpoints` (the listing), and two streams flattened from the same per-endpoint statistics
snapshot: `emnify_endpoint_usage_monthly` (incremental on `last_updated`) and
`emnify_endpoint_usage_last_hour` (incremental on `minute`). Each endpoint's snapshot is requested once per
sync, whichever of the two selected streams reads first (`SharedResponses`). The snapshot has no time
range, so `start_date` does not narrow it: a full read returns everything the API reports.

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
* Error bodies: `{"error_code", "error_token", "message", "errors"?}`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import jwt
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorResolution, ResponseAction
from requests.auth import AuthBase

from source_usage.framework.backoff import RetryAfterBackoff
from source_usage.framework.budget import BudgetLayer, MovingWindowLayer, everything, process_layer
from source_usage.framework.client import ResponseAware
from source_usage.framework.config_fields import base_url, secret
from source_usage.framework.cursors import Partition, PerPartitionCursor
from source_usage.framework.endpoint import Endpoint, expect_list, expect_object
from source_usage.framework.error_handling import VendorErrors, json_body
from source_usage.framework.errors import UsageError, endpoint_of
from source_usage.framework.hosts import Origin
from source_usage.framework.paginators import PageNumberPaginator
from source_usage.framework.plugin import VendorPlugin
from source_usage.framework.secrets import register_secret
from source_usage.framework.settings import Settings
from source_usage.framework.shared import OncePerKey, SharedResponses
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import decimal_number, instant
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import iso_z, parse_timestamp

NAME = "emnify"
TOKEN_LIFETIME = timedelta(minutes=240)  # when the JWT's `exp` cannot be read
RENEWAL_MARGIN = timedelta(minutes=5)  # authenticate again this long before the token expires
ENDPOINTS_PER_PAGE = 1000  # the largest `per_page` the endpoint list allows
REAUTHENTICATION_WAIT = 0.01  # seconds before retrying a request with a new token: nothing to wait for
NOT_FOUND_ERROR_CODE = 1201
PERIODS = ("last_month", "current_month")
VOLUME_FIELDS = ("volume", "volume_tx", "volume_rx")
STATS_STREAMS = ("emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour")

SPEC = {
    "type": "object",
    "title": "emnify",
    "description": "Endpoint usage and cost statistics.",
    "required": ["application_token"],
    "properties": {
        "application_token": {"type": "string", "title": "Application token", "description": "An application token (Integrations > API).", "airbyte_secret": True, "order": 0},
        "base_url": {"type": "string", "title": "Base URL", "default": "https://cdn.emnify.net/api/v1", "pattern": "^https?://", "order": 1},
    },
}

LOGGER = logging.getLogger("airbyte.emnify")


@dataclass(frozen=True)
class EmnifyConfig:
    application_token: str
    base_url: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "EmnifyConfig":
        return cls(
            application_token=secret(NAME, raw, "application_token"),
            base_url=base_url(NAME, raw, "https://cdn.emnify.net/api/v1", "/api/v1"),
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


# ----- authentication ---------------------------------------------------------------------------------


class EmnifyAuthenticator(AuthBase, ResponseAware):
    """`Authorization: Bearer <JWT>`, the JWT obtained by exchanging the application token.

    One instance serves every emnify stream of a sync, from any thread. It authenticates once, renews the
    token shortly before the `exp` its JWT claims (read without verifying the signature), and once more
    when a request is answered 401: the token is dropped and the request retried, and the retry
    authenticates first. A token that replaced a refused one and is refused before any request succeeded
    with it means the API refuses the tokens it issues: the request fails with a clear message instead of
    authenticating in a loop.
    """

    def __init__(self, application_token: str, clock: Callable[[], float] = time.time) -> None:
        self._application_token = application_token
        self._clock = clock
        self._lock = threading.RLock()
        self._token: Optional[str] = None
        self._renew_at = 0.0
        self._proven = False  # a request succeeded with the current token
        self._replaces_refused = False  # the current token was issued because the API refused the previous one
        self._refused = False  # the last token was refused: the next one replaces a refused token
        self._connection: Optional[VendorConnection] = None
        self.logins = 0

    def log_in_through(self, connection: VendorConnection) -> None:
        """The connection whose client (retries, budget) sends `POST /authenticate`, without this authenticator."""
        self._connection = connection

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """A token that is not about to expire, authenticating first when needed."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._authenticate()
            assert self._token is not None
            return self._token

    def update_from_response(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        """A success proves the token it was sent with."""
        if response.ok and not self._proven:
            with self._lock:
                if _bearer_token(request) == self._token:
                    self._proven = True

    def on_unauthorized(self, response: requests.Response) -> ErrorResolution:
        """A 401 from a data request: retry with a new token, unless the API refuses the tokens it issues."""
        sent = _bearer_token(response.request)
        with self._lock:
            if sent is not None and sent == self._token:
                if self._replaces_refused and not self._proven:
                    method = response.request.method if response.request is not None else "GET"
                    return ErrorResolution(
                        ResponseAction.FAIL,
                        FailureType.config_error,
                        f"emnify: {method} {endpoint_of(response.url)} was refused with HTTP 401 right after authenticating "
                        f"again; check that the application token is still active and may read endpoints",
                    )
                self._token = None  # the retry authenticates first
                self._refused = True
        return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, "HTTP 401: authenticating again")

    def _authenticate(self) -> None:
        if self._connection is None:
            raise UsageError("emnify: the authenticator has no connection to log in through", FailureType.system_error)
        response = self._connection.send(
            "POST", "authenticate", json={"application_token": self._application_token}, authenticated=False, allow_redirects=False
        )
        try:
            body = json_body(response)
        except ValueError:
            body = None
        token = body.get("auth_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token or len(token) > 16384:
            raise UsageError("emnify: POST /authenticate succeeded but its answer has no usable auth_token", FailureType.system_error)
        register_secret(token)
        now = self._clock()
        expires_at = token_expiry(token, now)
        self._token = token
        self._renew_at = expires_at - min(RENEWAL_MARGIN.total_seconds(), (expires_at - now) / 4)
        self._proven, self._replaces_refused, self._refused = False, self._refused, False
        self.logins += 1
        renew_at = datetime.fromtimestamp(self._renew_at, timezone.utc).replace(microsecond=0)
        LOGGER.info(f"emnify: authenticated; the auth token will be renewed after {iso_z(renew_at)}")


def _bearer_token(request: Optional[requests.PreparedRequest]) -> Optional[str]:
    header = request.headers.get("Authorization") if request is not None and request.headers is not None else None
    return header[len("Bearer ") :] if header and header.startswith("Bearer ") else None


def token_expiry(token: str, now: float) -> float:
    """The epoch second the JWT's `exp` claims, or 240 minutes from `now` when it is unreadable, already
    past by our clock, or further away than a JWT of emnify's lives (then the API's 401 says when the token
    really expired)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    expires_at = claims.get("exp") if isinstance(claims, Mapping) else None
    if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool) and now < expires_at <= now + TOKEN_LIFETIME.total_seconds():
        return float(expires_at)
    return now + TOKEN_LIFETIME.total_seconds()


class RetryAtOnceWithNewToken(BackoffStrategy):
    """A 401 is retried as soon as the token was renewed: waiting would not help, and could let it expire."""

    def backoff_time(self, response_or_exception: Any, attempt_count: int) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 401:
            return REAUTHENTICATION_WAIT
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
    """The endpoint ids of one sync (listed once) and the statistics snapshots its stats streams share."""

    def __init__(self, vendor: VendorConnection, sync: SyncContext, authenticator: EmnifyAuthenticator) -> None:
        self.vendor = vendor
        self.sync = sync
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
            overrides={401: authenticator.on_unauthorized, 404: _skip_deleted_endpoint},
            on_ignored=self._deleted,
        )
        self._ids: OncePerKey[str, List[Any]] = OncePerKey(lambda _: self._list_ids())
        consumers = [name for name in STATS_STREAMS if name in sync.selected] or list(STATS_STREAMS)
        self.snapshots: SharedResponses[str, Mapping[str, Any]] = SharedResponses(self._snapshot, len(consumers))

    def endpoint_ids(self) -> List[Any]:
        """The ids the endpoints stream listed in this sync, or listed now if it was not read."""
        return self._ids.get("all")

    def remember_endpoint_ids(self, ids: List[Any]) -> None:
        self._ids.put("all", ids)

    def _list_ids(self) -> List[Any]:
        return list(dict.fromkeys(endpoint["id"] for endpoint in self.listing() if isinstance(endpoint, Mapping) and "id" in endpoint))

    def listing(self) -> Iterator[dict]:
        """Every endpoint once: page numbers shift when endpoints are added or deleted during the listing."""
        seen = set()
        for endpoint in self.vendor.records(self.endpoints_endpoint, {}):
            key = endpoint.get("id") if isinstance(endpoint, Mapping) else None
            if key is not None and key in seen:
                continue
            seen.add(key)
            yield endpoint

    def _snapshot(self, endpoint_id: str) -> Mapping[str, Any]:
        pages = list(self.vendor.pages(self.stats_endpoint, {"endpoint_id": endpoint_id}))
        return next(iter(pages[0].records)) if pages else {"gone": True}

    def _deleted(self, response: requests.Response, partition: Partition) -> None:
        self.sync.logger.warning(
            f"emnify: skipping endpoint {partition['endpoint_id']}: it was deleted after it was listed "
            f"(HTTP {response.status_code}: {self.vendor.errors.text_of(response)})"
        )


def snapshot_of(body: Any, response: requests.Response) -> Mapping[str, Any]:
    """What the stats streams keep of one statistics response: its body and when it was made."""
    return {"as_of": iso_z(response_time(response)), "body": expect_object(body, NAME, response, "a statistics object")}


def _skip_deleted_endpoint(response: requests.Response) -> Optional[ErrorResolution]:
    """emnify's NotFound means the endpoint was deleted since it was listed; any other 404 is a real failure."""
    try:
        body = json_body(response)
    except ValueError:
        return None
    if isinstance(body, Mapping) and (body.get("error_code") == NOT_FOUND_ERROR_CODE or body.get("error_token") == "NotFound"):
        return ErrorResolution(ResponseAction.IGNORE, None, None)
    return None


# ----- streams ----------------------------------------------------------------------------------------


ENDPOINT_INSTANTS = ("created", "last_updated")


def endpoint_record(endpoint: Any) -> Any:
    """An endpoint as the API gives it, its instants in RFC 3339 UTC (emnify sends `...000+0000`)."""
    if not isinstance(endpoint, Mapping):
        return endpoint
    record = dict(endpoint)
    for field in ENDPOINT_INSTANTS:
        if field in record:
            record[field] = instant(record[field], field)
    return record


class EmnifyEndpoints(UsageStream):
    """Every endpoint (device) of the organisation; its ids are the partitions of the stats streams."""

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
            yield endpoint_record(endpoint)
        # The stats streams need these ids: remember them so that they do not list the endpoints again.
        self.directory.remember_endpoint_ids(ids)


class EmnifyStatsStream(UsageStream[PerPartitionCursor]):
    """One stream flattened from `GET /endpoint/{id}/stats`, one partition (and state) per endpoint."""

    def __init__(self, vendor: VendorConnection, sync: SyncContext, directory: EmnifyDirectory) -> None:
        super().__init__(vendor, sync)
        self.directory = directory

    def flatten(self, snapshot: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        raise NotImplementedError

    def make_cursor(self) -> PerPartitionCursor:
        return PerPartitionCursor(str(self.cursor_field), ["endpoint_id"], emit_only_newer=True)

    def partitions(self, run: StreamRun[PerPartitionCursor]) -> Iterable[Partition]:
        for endpoint_id in self.directory.endpoint_ids():
            if self.sync.shard.owns(NAME, endpoint_id):
                yield {"endpoint_id": endpoint_id}

    def read_partition(self, partition: Partition, run: StreamRun[PerPartitionCursor]) -> Iterator[dict]:
        snapshot = self.directory.snapshots.take(str(partition["endpoint_id"]))
        if snapshot.get("gone"):
            return iter(())
        return self.flatten(snapshot, partition["endpoint_id"])


class EmnifyEndpointUsageMonthly(EmnifyStatsStream):
    """Volume and cost per endpoint, month and traffic type (`last_month` and `current_month`).

    The current month keeps changing until it closes, so a record is emitted again whenever its
    `last_updated` is newer than the endpoint's state.
    """

    name = "emnify_endpoint_usage_monthly"
    primary_key = ["endpoint_id", "month", "traffic_type_id"]
    cursor_field = "last_updated"

    def flatten(self, snapshot: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        return monthly_records(snapshot["body"], endpoint_id)


class EmnifyEndpointUsageLastHour(EmnifyStatsStream):
    """Received (`rx`) and transmitted (`tx`) volume per endpoint, traffic type and minute of the last hour."""

    name = "emnify_endpoint_usage_last_hour"
    primary_key = ["endpoint_id", "traffic_type", "minute"]
    cursor_field = "minute"

    def flatten(self, snapshot: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        return minute_records(snapshot["body"].get("last_hour"), endpoint_id, parse_timestamp(snapshot["as_of"]))


# ----- flattening the statistics snapshot ---------------------------------------------------------------


def monthly_records(body: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
    """One record per period and traffic type present, volumes as numbers, tagged with its period."""
    for period in PERIODS:
        usage = body.get(period)
        if not isinstance(usage, Mapping):  # absent without traffic (some APIs send [] or null instead)
            continue
        for entry in usage.values():
            if not isinstance(entry, Mapping):
                continue
            record = dict(entry)
            record.setdefault("endpoint_id", endpoint_id)
            for field in VOLUME_FIELDS:
                record[field] = decimal_number(record.get(field), field)
            record["period"] = period
            yield record


def minute_records(last_hour: Any, endpoint_id: Any, as_of: datetime) -> Iterator[dict]:
    """One record per traffic type and minute the snapshot reports, `rx` and `tx` side by side."""
    if not isinstance(last_hour, Mapping):
        return
    resolved: Dict[str, Tuple[datetime, str]] = {}  # label -> (minute, its timestamp), shared by the traffic types
    for traffic_type, series in last_hour.items():
        if not isinstance(series, Mapping):
            continue
        rx, tx = _by_label(series.get("rx")), _by_label(series.get("tx"))
        for label in {**rx, **tx}:
            if label not in resolved:
                minute = resolve_minute(label, as_of)
                resolved[label] = (minute, iso_z(minute))
        for label in sorted({**rx, **tx}, key=lambda label: resolved[label][0]):
            yield {
                "endpoint_id": endpoint_id,
                "traffic_type": traffic_type,
                "minute": resolved[label][1],
                "rx": decimal_number(rx.get(label), "rx"),
                "tx": decimal_number(tx.get(label), "tx"),
            }


def resolve_minute(label: str, as_of: datetime) -> datetime:
    """The latest minute at or before `as_of` whose UTC clock reads `label` ("HH:MM"): labels after the
    time of `as_of` belong to the day before."""
    try:
        hours, minutes = (int(part) for part in label.split(":"))
        candidate = as_of.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    except (AttributeError, ValueError):
        raise UsageError(f"emnify: last_hour has a minute label {label[:20]!r}, not HH:MM", FailureType.system_error) from None
    return candidate - timedelta(days=1) if candidate > as_of else candidate


def response_time(response: requests.Response) -> datetime:
    """When the API made the response (its `Date` header), or when we received it if it has none."""
    try:
        moment = parsedate_to_datetime(response.headers["Date"])
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment.astimezone(timezone.utc)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        LOGGER.warning("emnify: a statistics response has no valid Date header; resolving its minutes with our clock")
        return datetime.now(timezone.utc)


def _by_label(pairs: Any) -> Dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {pair[0]: pair[1] for pair in pairs if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)}


# ----- the plugin -------------------------------------------------------------------------------------


@dataclass
class EmnifyConnection(VendorConnection):
    """The connection with the authenticator its streams share (and whose 401 handling they use)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.authenticator, EmnifyAuthenticator):
            self.authenticator.log_in_through(self)

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
        ]

    def check(self, connection: VendorConnection, config: EmnifyConfig, sync: SyncContext) -> None:
        """Authenticate and read the first page of endpoints."""
        directory = EmnifyDirectory(connection, sync, _emnify(connection).emnify_authenticator)
        next(iter(connection.pages(directory.endpoints_endpoint, {})), None)


def _emnify(connection: VendorConnection) -> EmnifyConnection:
    if not isinstance(connection, EmnifyConnection):
        raise TypeError("the emnify streams need the connection Emnify.connect made")
    return connection


plugin = Emnify()
