"""emnify REST API v1: endpoint usage and cost statistics.

Streams: `emnify_endpoints` (the listing), and two streams flattened from the same per-endpoint
statistics snapshot: `emnify_endpoint_usage_monthly` (incremental on `last_updated`) and
`emnify_endpoint_usage_last_hour` (incremental on `minute`). Each endpoint's statistics are requested
once per sync: the stream that reads first keeps what the other needs in an on-disk store. The snapshot
has no time range, so `start_date` does not narrow it: a full read returns everything the API reports.

Contract (docs.emnify.com/developers, the emnify Python SDK):

* Auth: `POST /authenticate {"application_token"}` answers `{"auth_token": <JWT>}` (valid 240 minutes,
  no refresh token), sent as `Authorization: Bearer`. An application token that is refused answers 401
  (1101 InvalidCredentials); an expired or unknown auth token on a data request answers 401 (1103
  TokenExpired, 1102 InvalidToken), and the remedy is to authenticate again.
* `GET /endpoint?page=&per_page=`: a bare array, `per_page` at most 1000, `page` 1-based; a page past the
  end returns the LAST page again, so the `X-Total-Pages` header ends the sequence.
* `GET /endpoint/{id}/stats`: a fixed shape, not a list: `last_month` and `current_month` (each with
  `data` and `sms` entries, present only when there was traffic; volumes as decimal strings) and
  `last_hour` (`data`/`sms` -> `rx`/`tx` lists of `["HH:MM", value]` for the 60 minutes up to the
  response's `Date`). 404 (1201 NotFound) when the endpoint was deleted after it was listed.
* Limits per path and organisation: the endpoint list 10 requests/s (burst 5), statistics 100/s (burst
  50), authentication 100 per 5 minutes; over them 429 (1105 TooManyRequests) without `Retry-After`.
* Error bodies: `{"error_code", "error_token", "message", "errors"?}`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
import tempfile
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Dict, Generator, Iterable, Iterator, List, Mapping, Optional, Set

import jwt
import orjson
import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.call_rate import HttpAPIBudget, HttpRequestRegexMatcher, MovingWindowCallRatePolicy, Rate
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorResolution, ResponseAction
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from requests.auth import AuthBase

from source_usage.config import EmnifyConfig
from source_usage.framework.backoff import RetryAfterBackoff
from source_usage.framework.cursors import PerPartitionCursor, StreamCursor
from source_usage.framework.error_handling import Override, VendorErrors, error_text, json_body
from source_usage.framework.errors import UsageError, endpoint_of
from source_usage.framework.http_client import RetryPolicy, UsageHttpClient
from source_usage.framework.paginators import PageNumberPaginator, SinglePage
from source_usage.framework.stream import UsageStream
from source_usage.framework.vendor import Vendor
from source_usage.framework.windows import iso_z, parse_timestamp

TOKEN_LIFETIME = timedelta(minutes=240)  # when the JWT's `exp` cannot be read
RENEWAL_MARGIN = timedelta(minutes=5)  # authenticate again this long before the token expires
ENDPOINTS_PER_PAGE = 1000  # the largest `per_page` the endpoint list allows
REAUTHENTICATION_WAIT = 0.01  # seconds before retrying a request with a new token: nothing to wait for
NOT_FOUND_ERROR_CODE = 1201
PERIODS = ("last_month", "current_month")
VOLUME_FIELDS = ("volume", "volume_tx", "volume_rx")

ERRORS = VendorErrors("emnify", rejected={401: "the application token was rejected"})

# Client-side budgets a little under the documented per-path limits (a token bucket of `burst` tokens
# refilled at `rate`/s never refuses a moving window of `burst` calls per burst/rate seconds; the
# margin absorbs network jitter between our clock and the gateway's).
BUDGETS = (
    ("POST", r"/authenticate$", Rate(limit=100, interval=timedelta(minutes=5, seconds=5))),
    ("GET", r"/endpoint$", Rate(limit=5, interval=timedelta(seconds=0.51))),
    ("GET", r"/endpoint/[^/]+/stats$", Rate(limit=50, interval=timedelta(seconds=0.51))),
)

LOGGER = logging.getLogger("airbyte.emnify")


# ----- authentication ---------------------------------------------------------------------------------


class EmnifyAuthenticator(AuthBase):
    """`Authorization: Bearer <JWT>`, the JWT obtained by exchanging the application token.

    One instance serves every emnify stream of a sync, from any thread. It authenticates once, renews
    the token shortly before the `exp` its JWT claims (read without verifying the signature), and once
    more when a request is answered 401: the token is dropped and the request retried, and the retry
    authenticates first. A token that replaced a refused one and is refused before any request
    succeeded with it means the API refuses the tokens it issues: the request fails with a clear message
    instead of authenticating in a loop.
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
        self._login_client: Optional[UsageHttpClient] = None
        self._login_url = ""
        self.logins = 0

    def use_login_client(self, client: UsageHttpClient, url: str) -> None:
        """The client (retries, budget, no authenticator) and URL of `POST /authenticate`."""
        self._login_client = client
        self._login_url = url

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
        """The CDK shows every response to an authenticator that asks (`ResponseAwareAuthenticator`): a
        success proves the token it was sent with."""
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
                        f"again ({error_text(response)}); check that the application token is still active and may read endpoints",
                    )
                self._token = None  # the retry authenticates first
                self._refused = True
        return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"HTTP 401 ({error_text(response)}): authenticating again")

    def _authenticate(self) -> None:
        if self._login_client is None:
            raise UsageError("emnify: the authenticator has no login client", FailureType.system_error)
        _, response = self._login_client.send_request(
            "POST", self._login_url, request_kwargs={}, json={"application_token": self._application_token}
        )
        body = json_body(response)
        token = body.get("auth_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise UsageError("emnify: POST /authenticate succeeded but its answer has no auth_token", FailureType.system_error)
        add_to_secrets(token)
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
    """The epoch second the JWT's `exp` claims, or 240 minutes from `now` when it is unreadable or already
    past by our clock (then the API's 401 says when the token really expired)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    expires_at = claims.get("exp") if isinstance(claims, Mapping) else None
    if isinstance(expires_at, (int, float)) and expires_at > now:
        return float(expires_at)
    return now + TOKEN_LIFETIME.total_seconds()


class RetryAtOnceWithNewToken(BackoffStrategy):
    """A 401 is retried as soon as the token was renewed: waiting would not help, and could let it expire."""

    def backoff_time(self, response_or_exception: Any, attempt_count: int) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 401:
            return REAUTHENTICATION_WAIT
        return None


# ----- what one sync shares ---------------------------------------------------------------------------


GONE = object()  # an endpoint whose statistics answered 404


class SnapshotStore:
    """Parts of statistics snapshots kept for the stats streams that have not read yet.

    Appended to a temporary file, with only each part's offset and length kept in memory, so that memory
    does not grow with the number of endpoints (a few bytes per endpoint instead of its minute series).
    Each part is taken once; the file goes away with the store.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file: Optional[Any] = None
        self._index: Dict[tuple, Optional[tuple]] = {}  # (stream, endpoint) -> (offset, length), None when gone

    def put(self, stream: str, endpoint_id: Any, part: Any) -> None:
        body = None if part is GONE else orjson.dumps(part)
        with self._lock:
            if body is None:
                self._index[(stream, str(endpoint_id))] = None
                return
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="source-usage-emnify-")
                weakref.finalize(self, self._file.close)
            offset = self._file.seek(0, 2)
            self._file.write(body)
            self._index[(stream, str(endpoint_id))] = (offset, len(body))

    def take(self, stream: str, endpoint_id: Any) -> Any:
        """The part kept for `stream`, GONE, or None when nothing was kept."""
        with self._lock:
            key = (stream, str(endpoint_id))
            if key not in self._index:
                return None
            location = self._index.pop(key)
            if location is None:
                return GONE
            assert self._file is not None
            self._file.seek(location[0])
            body = self._file.read(location[1])
        return orjson.loads(body)


class EmnifyDirectory:
    """The endpoint ids of one sync (listed once) and the statistics snapshots its stats streams share."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.snapshots = SnapshotStore()
        self.stats_streams: List["EmnifyStatsStream"] = []
        self.endpoints_stream: "EmnifyEndpoints"
        self._lock = threading.Lock()
        self._listing = threading.Lock()  # held while listing, so that the endpoints are listed once
        self._endpoint_ids: Optional[List[Any]] = None
        self._started: Set[str] = set()

    def remember_endpoint_ids(self, ids: List[Any]) -> None:
        with self._lock:
            self._endpoint_ids = ids

    def endpoint_ids(self) -> List[Any]:
        """The ids the endpoints stream listed in this sync, or listed now if it was not read."""
        with self._listing:
            with self._lock:
                if self._endpoint_ids is not None:
                    return self._endpoint_ids
            ids = list(dict.fromkeys(endpoint["id"] for endpoint in self.endpoints_stream.read_all({})))
            self.remember_endpoint_ids(ids)
            return ids

    def stats_reading_started(self, stream: "EmnifyStatsStream") -> None:
        with self._lock:
            self._started.add(stream.name)

    def stats_streams_yet_to_read(self, reader: "EmnifyStatsStream") -> List["EmnifyStatsStream"]:
        with self._lock:
            return [stream for stream in self.stats_streams if stream is not reader and stream.name not in self._started]


def make_budget() -> HttpAPIBudget:
    """Per-path moving windows. A 429 is not taken to mean that a window is full (the CDK's default): it
    may come from emnify's general per-IP limit or other clients of the organisation, and a full
    authentication window would stall the sync for 5 minutes; the client's backoff handles it instead."""
    return HttpAPIBudget(
        status_codes_for_ratelimit_hit=[],
        policies=[
            MovingWindowCallRatePolicy(rates=[rate], matchers=[HttpRequestRegexMatcher(method=method, url_path_pattern=path)])
            for method, path, rate in BUDGETS
        ]
    )


def make_vendor(config: EmnifyConfig, retry_policy: Optional[RetryPolicy] = None, clock: Callable[[], float] = time.time) -> Vendor:
    authenticator = EmnifyAuthenticator(config.application_token, clock)
    vendor = Vendor(
        name="emnify",
        base_url=config.base_url,
        errors=ERRORS,
        authenticator=authenticator,
        budget=make_budget(),
        backoff=[RetryAtOnceWithNewToken(), RetryAfterBackoff()],
        max_workers=8,
        retry_policy=retry_policy or RetryPolicy.from_environment(),
    )
    # The login response carries the JWT before it is registered as a secret: never log it at debug.
    login_logger = logging.getLogger("airbyte.emnify.authenticate")
    login_logger.setLevel(logging.INFO)
    login_client = vendor.client("emnify_authenticate", login_logger, vendor.error_handler, authenticated=False)
    authenticator.use_login_client(login_client, f"{vendor.base_url}/authenticate")
    return vendor


# ----- streams ----------------------------------------------------------------------------------------


class EmnifyStream(UsageStream):
    def __init__(self, vendor: Vendor, directory: EmnifyDirectory) -> None:
        self.directory = directory
        super().__init__(vendor)

    def error_overrides(self) -> Mapping[int, Override]:
        authenticator: EmnifyAuthenticator = self.vendor.authenticator  # type: ignore[assignment]
        return {401: authenticator.on_unauthorized}


class EmnifyEndpoints(EmnifyStream):
    """Every endpoint (device) of the organisation; its ids are the partitions of the stats streams."""

    name = "emnify_endpoints"
    primary_key = "id"
    paginator = PageNumberPaginator("page", "per_page", ENDPOINTS_PER_PAGE, "X-Total-Pages")

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return "endpoint"

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        if not isinstance(body, list):
            raise UsageError(f"emnify: GET {endpoint_of(response.url)} answered {type(body).__name__}, not a list of endpoints")
        return body

    def read_partition(self, partition: Mapping[str, Any]) -> Generator[List[dict], None, None]:
        # Page numbers shift when endpoints are added or deleted during the listing: drop repeats.
        seen: Dict[Any, None] = {}
        for batch in super().read_partition(partition):
            fresh = [endpoint for endpoint in batch if endpoint["id"] not in seen]
            seen.update((endpoint["id"], None) for endpoint in fresh)
            yield fresh
        # The stats streams need these ids: remember them so that they do not list the endpoints again.
        self.directory.remember_endpoint_ids(list(seen))


class EmnifyStatsStream(EmnifyStream):
    """One stream flattened from `GET /endpoint/{id}/stats`, one partition (and state) per endpoint.

    The first stats stream of a sync requests each endpoint's snapshot and keeps, for every stats stream
    that has not read yet, that stream's records, flattened while the workers wait for the API anyway;
    those streams then read them instead of requesting the snapshot again. A snapshot part that cannot be
    flattened is kept as it is, so that the stream it belongs to reports the problem.
    """

    paginator = SinglePage()

    @abstractmethod
    def keep(self, body: Mapping[str, Any], response: requests.Response) -> dict:
        """The part of a snapshot this stream flattens, self-contained and JSON-serialisable."""

    @abstractmethod
    def flatten(self, part: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        """This stream's records from its part of one endpoint's snapshot."""

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return f"endpoint/{partition['endpoint_id']}/stats"

    def error_overrides(self) -> Mapping[int, Override]:
        return {**super().error_overrides(), 404: _skip_deleted_endpoint}

    def ignored_response(self, response: requests.Response, partition: Mapping[str, Any]) -> None:
        endpoint_id = partition["endpoint_id"]
        for other in self.directory.stats_streams_yet_to_read(self):
            self.directory.snapshots.put(other.name, endpoint_id, GONE)
        self.logger.warning(
            f"{self.name}: skipping endpoint {endpoint_id}: it was deleted after it was listed "
            f"(HTTP {response.status_code}: {error_text(response)})"
        )

    def partitions(self, sync_mode: SyncMode) -> Iterable[Mapping[str, Any]]:
        self.directory.stats_reading_started(self)
        for endpoint_id in self.directory.endpoint_ids():
            yield {"endpoint_id": endpoint_id}

    def make_cursor(self) -> StreamCursor:
        return PerPartitionCursor(str(self.cursor_field), ["endpoint_id"], emit_only_newer=True)

    def fetch_pages(self, partition: Mapping[str, Any]) -> Iterable[List[dict]]:
        kept = self.directory.snapshots.take(self.name, partition["endpoint_id"])
        if kept is GONE:
            return
        if kept is None:
            yield from super().fetch_pages(partition)
        elif "records" in kept:
            yield kept["records"]
        else:
            yield list(self.flatten(kept["part"], partition["endpoint_id"]))

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        if not isinstance(body, Mapping):
            raise UsageError(f"emnify: GET {endpoint_of(response.url)} answered {type(body).__name__}, not a statistics object")
        endpoint_id = partition["endpoint_id"]
        for other in self.directory.stats_streams_yet_to_read(self):
            self.directory.snapshots.put(other.name, endpoint_id, other.kept_for_later(body, response, endpoint_id))
        return self.flatten(self.keep(body, response), endpoint_id)

    def kept_for_later(self, body: Mapping[str, Any], response: requests.Response, endpoint_id: Any) -> dict:
        part = self.keep(body, response)
        try:
            return {"records": list(self.flatten(part, endpoint_id))}
        except UsageError:
            return {"part": part}


def _skip_deleted_endpoint(response: requests.Response) -> Optional[ErrorResolution]:
    """emnify's NotFound means the endpoint was deleted since it was listed; any other 404 is a real failure."""
    try:
        body = json_body(response)
    except ValueError:
        return None
    if isinstance(body, Mapping) and (body.get("error_code") == NOT_FOUND_ERROR_CODE or body.get("error_token") == "NotFound"):
        return ErrorResolution(ResponseAction.IGNORE, None, None)
    return None


class EmnifyEndpointUsageMonthly(EmnifyStatsStream):
    """Volume and cost per endpoint, month and traffic type (`last_month` and `current_month`).

    The current month keeps changing until it closes, so a record is emitted again whenever its
    `last_updated` is newer than the endpoint's state.
    """

    name = "emnify_endpoint_usage_monthly"
    primary_key = ["endpoint_id", "month", "traffic_type_id"]
    cursor_field = "last_updated"

    def keep(self, body: Mapping[str, Any], response: requests.Response) -> dict:
        return {period: body[period] for period in PERIODS if period in body}

    def flatten(self, part: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        return monthly_records(part, endpoint_id)


class EmnifyEndpointUsageLastHour(EmnifyStatsStream):
    """Received (`rx`) and transmitted (`tx`) volume per endpoint, traffic type and minute of the last hour."""

    name = "emnify_endpoint_usage_last_hour"
    primary_key = ["endpoint_id", "traffic_type", "minute"]
    cursor_field = "minute"

    def keep(self, body: Mapping[str, Any], response: requests.Response) -> dict:
        return {"as_of": iso_z(response_time(response)), "last_hour": body.get("last_hour")}

    def flatten(self, part: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        return minute_records(part.get("last_hour"), endpoint_id, parse_timestamp(part["as_of"]))


# ----- flattening the statistics snapshot ---------------------------------------------------------------


def monthly_records(part: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
    """One record per period and traffic type present, volumes as numbers, tagged with its period."""
    for period in PERIODS:
        usage = part.get(period)
        if not isinstance(usage, Mapping):  # absent without traffic (some APIs send [] or null instead)
            continue
        for entry in usage.values():
            if not isinstance(entry, Mapping):
                continue
            record = dict(entry)
            record.setdefault("endpoint_id", endpoint_id)
            for field in VOLUME_FIELDS:
                record[field] = decimal_number(record.get(field))
            record["period"] = period
            yield record


def minute_records(last_hour: Any, endpoint_id: Any, as_of: datetime) -> Iterator[dict]:
    """One record per traffic type and minute the snapshot reports, `rx` and `tx` side by side."""
    if not isinstance(last_hour, Mapping):
        return
    resolved: Dict[str, tuple] = {}  # label -> (minute, its timestamp), shared by the traffic types
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
                "rx": decimal_number(rx.get(label)),
                "tx": decimal_number(tx.get(label)),
            }


def resolve_minute(label: str, as_of: datetime) -> datetime:
    """The latest minute at or before `as_of` whose UTC clock reads `label` ("HH:MM"): labels after the
    time of `as_of` belong to the day before."""
    try:
        hours, minutes = (int(part) for part in label.split(":"))
        candidate = as_of.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    except (AttributeError, ValueError):
        raise UsageError(f"emnify: last_hour has a minute label {label!r}, not HH:MM", FailureType.system_error) from None
    return candidate - timedelta(days=1) if candidate > as_of else candidate


def response_time(response: requests.Response) -> datetime:
    """When the API made the response (its `Date` header), or when we received it if it has none."""
    try:
        return parsedate_to_datetime(response.headers["Date"]).astimezone(timezone.utc)
    except (KeyError, TypeError, ValueError):
        LOGGER.warning("emnify: a statistics response has no valid Date header; resolving its minutes with our clock")
        return datetime.now(timezone.utc)


def decimal_number(value: Any) -> Any:
    """A decimal string such as "29.166235" as a number; anything else unchanged (the schema judges it)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _by_label(pairs: Any) -> Dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {pair[0]: pair[1] for pair in pairs if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)}


# ----- wiring -----------------------------------------------------------------------------------------


def check(config: EmnifyConfig, start: datetime, retry_policy: RetryPolicy) -> None:
    """Authenticate and read the first page of endpoints."""
    directory = EmnifyDirectory(start)
    EmnifyEndpoints(make_vendor(config, retry_policy), directory).probe()


def streams(config: EmnifyConfig, start: datetime, clock: Callable[[], float] = time.time) -> List[UsageStream]:
    """The emnify streams of one sync: one authenticator, one endpoint listing and one snapshot store."""
    directory = EmnifyDirectory(start)
    vendor = make_vendor(config, clock=clock)
    directory.endpoints_stream = EmnifyEndpoints(vendor, directory)
    directory.stats_streams = [EmnifyEndpointUsageMonthly(vendor, directory), EmnifyEndpointUsageLastHour(vendor, directory)]
    return [directory.endpoints_stream, *directory.stats_streams]
