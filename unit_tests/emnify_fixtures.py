"""An emnify config and a requests-mock double of the emnify API, built from the JSON templates.

Everything here describes the API (its answers, headers and tokens); nothing computes what the connector
should make of it: the tests write their expectations as literals.
"""

from __future__ import annotations

import copy
import time
from datetime import date, datetime, timezone
from email.utils import format_datetime
from itertools import count
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from source_usage.framework.budget import reset_process_layers
import requests_mock

from source_usage.framework.plugin import plugins
from source_usage.vendors.emnify import Emnify
from unit_tests.helpers import template

BASE = "https://cdn.emnify.net/api/v1"
APPLICATION_TOKEN = "KAOp24-unit-test-application-token-0001"
# The stats template's minutes run from 23:58 to 00:01 of the day this Date starts.
STATS_DATE = "Mon, 30 Nov 2026 00:01:30 GMT"
START_DATE = "2026-01-01T00:00:00Z"
ENDPOINTS = "emnify_endpoints"
MONTHLY = "emnify_endpoint_usage_monthly"
LAST_HOUR = "emnify_endpoint_usage_last_hour"
DAILY = "emnify_endpoint_usage_daily"
SNAPSHOT_STREAMS = [ENDPOINTS, MONTHLY, LAST_HOUR]
ALL_STREAMS = [ENDPOINTS, MONTHLY, LAST_HOUR, DAILY]
_token_numbers = count(1)

Answer = Union[Mapping[str, Any], List[Mapping[str, Any]], Callable[..., Any]]


def emnify_config(start_date: str = START_DATE, shard: Optional[Mapping[str, int]] = None, **section: Any) -> Dict[str, Any]:
    """The connector config with an emnify section (and `section`'s keys in it)."""
    config: Dict[str, Any] = {
        "start_date": start_date,
        "emnify": {"application_token": APPLICATION_TOKEN, "base_url": BASE, **section},
    }
    if shard is not None:
        config["shard"] = dict(shard)
    return config


def auth_token(expires_in: Optional[float] = 240 * 60, now: Optional[float] = None, organisation: Optional[int] = 1337) -> str:
    """A distinct JWT like emnify's (`esc.org` is the organisation); `expires_in=None` leaves out `exp`."""
    issued = int(now if now is not None else time.time())
    claims: Dict[str, Any] = {"sub": "application_token", "iat": issued, "jti": next(_token_numbers)}
    if organisation is not None:
        claims["esc.org"] = organisation
    if expires_in is not None:
        claims["exp"] = issued + int(expires_in)
    return jwt.encode(claims, "unit-test-signing-key-of-32-bytes!!", algorithm="HS256")


def http_date(moment: datetime) -> str:
    """`moment` as an HTTP `Date` header."""
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def now_header() -> str:
    """A `Date` header of this second (close enough to our clock to be believed as `observed_at`)."""
    return http_date(datetime.now(timezone.utc).replace(microsecond=0))


def stats(endpoint_id: int, without: Sequence[str] = (), **replacements: Any) -> dict:
    """The stats template for `endpoint_id`; `without` drops parts by path ("last_month", "current_month.sms")."""
    body = template("emnify", "stats")
    for period in ("last_month", "current_month"):
        for entry in body[period].values():
            entry["endpoint_id"] = endpoint_id
    for path in without:
        *parents, leaf = path.split(".")
        node = body
        for parent in parents:
            node = node[parent]
        del node[leaf]
    body.update(replacements)
    return body


def endpoints(*ids: int) -> List[dict]:
    """Endpoints as the listing answers them: the template's three, or made-up ones with these ids."""
    listed = template("emnify", "endpoints")
    if not ids:
        return listed
    by_id = {endpoint["id"]: endpoint for endpoint in listed}
    return [by_id.get(endpoint_id, {**listed[-1], "id": endpoint_id, "name": f"device{endpoint_id}"}) for endpoint_id in ids]


def page_headers(page: int, total_pages: int, total_count: int, per_page: int = 1000) -> Dict[str, str]:
    return {
        "X-Current-Page": str(page),
        "X-Total-Pages": str(total_pages),
        "X-Total-Count": str(total_count),
        "X-Count-Per-Page": str(per_page),
    }


def mock_login(mock: requests_mock.Mocker, tokens: Optional[List[str]] = None) -> List[str]:
    """POST /authenticate answers the given tokens in turn (default: fresh 240-minute tokens); returns them."""
    issued = list(tokens) if tokens is not None else [auth_token() for _ in range(10)]
    mock.post(f"{BASE}/authenticate", [{"json": {"auth_token": token}} for token in issued])
    return issued


def mock_listing(mock: requests_mock.Mocker, listed: List[dict]) -> None:
    mock.get(f"{BASE}/endpoint", json=listed, headers=page_headers(1, 1, len(listed)))


def mock_pages(mock: requests_mock.Mocker, listings: List[List[List[dict]]], total_count: int) -> None:
    """The endpoint list: the n-th listing of the sync answers `listings[n]` (its pages, page numbers 1-based;
    a page past the end answers the LAST page again, as emnify does); later listings repeat the last one."""
    listing = [0]

    def answer(request: Any, context: Any) -> Any:
        page = int(parse_qs(urlsplit(request.url).query)["page"][0])
        pages = listings[min(listing[0], len(listings) - 1)]
        number = min(page, len(pages))
        if number == len(pages):
            listing[0] += 1
        context.headers.update(page_headers(number, len(pages), total_count))
        return pages[number - 1]

    mock.get(f"{BASE}/endpoint", json=answer)


def mock_stats(mock: requests_mock.Mocker, endpoint_id: Any, answer: Answer, date: Optional[str] = STATS_DATE) -> None:
    """`GET /endpoint/{id}/stats`: a body, a list of responses in turn, or a requests-mock callback."""
    url = f"{BASE}/endpoint/{endpoint_id}/stats"
    if callable(answer):
        mock.get(url, json=answer)
        return
    responses = answer if isinstance(answer, list) else [{"json": answer}]
    headers = {"Date": date} if date is not None else {}
    mock.get(url, [{**copy.deepcopy(dict(response)), "headers": {**headers, **dict(response.get("headers", {}))}} for response in responses])


def mock_daily(mock: requests_mock.Mocker, endpoint_id: Any, answer: Union[List[dict], Callable[..., Any]], date: Optional[str] = None) -> None:
    """`GET /endpoint/{id}/stats/daily`: a list of day entries, or a requests-mock callback (`json=`)."""
    url = f"{BASE}/endpoint/{endpoint_id}/stats/daily"
    if callable(answer):
        mock.get(url, json=answer)
    else:
        mock.get(url, json=answer, headers={"Date": date or now_header()})


def mock_api(
    mock: requests_mock.Mocker,
    listed: Optional[List[dict]] = None,
    snapshots: Optional[Mapping[int, Answer]] = None,
    tokens: Optional[List[str]] = None,
    date: Optional[str] = STATS_DATE,
    daily: Optional[Mapping[int, Any]] = None,
) -> List[str]:
    """Authentication, a one-page endpoint list, each endpoint's stats and daily series; returns the tokens."""
    issued = mock_login(mock, tokens)
    listed = listed if listed is not None else endpoints()
    mock_listing(mock, listed)
    snapshots = snapshots if snapshots is not None else {endpoint["id"]: stats(endpoint["id"]) for endpoint in listed}
    for endpoint_id, answer in snapshots.items():
        mock_stats(mock, endpoint_id, answer, date)
    daily = daily if daily is not None else {endpoint["id"]: [] for endpoint in listed}
    for endpoint_id, entries in daily.items():
        mock_daily(mock, endpoint_id, entries)
    return issued


def requests_to(mock: requests_mock.Mocker, method: str, path_suffix: str) -> list:
    return [request for request in mock.request_history if request.method == method and request.path.endswith(path_suffix)]


def stats_requests(mock: requests_mock.Mocker) -> list:
    return [request for request in mock.request_history if request.path.endswith("/stats")]


def daily_requests(mock: requests_mock.Mocker) -> list:
    return [request for request in mock.request_history if request.path.endswith("/stats/daily")]


def stats_endpoint_ids(requests: Iterable[Any]) -> List[int]:
    return sorted(int(request.path.split("/")[-2]) for request in requests)


def daily_windows(mock: requests_mock.Mocker) -> List[tuple]:
    """(endpoint id, start_date, end_date) of every daily request, in order."""
    found = []
    for request in daily_requests(mock):
        query = parse_qs(urlsplit(request.url).query)
        found.append((int(request.path.split("/")[-3]), query["start_date"][0], query["end_date"][0]))
    return found


def bearer_tokens(mock: requests_mock.Mocker) -> List[str]:
    return [request.headers.get("Authorization") for request in mock.request_history if request.method == "GET"]


def day(entry_date: date, **kinds: Any) -> dict:
    """One entry of the daily series: `date` and the given kinds (data, sms, sat_geo_data, sat_geo_sms)."""
    return {"date": entry_date.isoformat(), **kinds}


def data_usage(volume: Any, tx: Any, rx: Any, cost: Any = None) -> dict:
    usage = {
        "volume": volume,
        "volume_tx": tx,
        "volume_rx": rx,
        "traffic_type": {"id": 5, "description": "Data", "unit": "MB"},
        "currency": {"id": 1, "code": "EUR", "symbol": "€"},
    }
    if cost is not None:
        usage["cost"] = cost
    return usage


class FakeClock:
    """The clock the emnify authenticator reads (epoch seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emnify_clock() -> Iterator[FakeClock]:
    """A fake clock for the emnify plugin of the syncs this test runs.

    The plugin registry (`plugins()`, read once per process from the entry points) holds the one `Emnify`
    instance every sync uses, and its clock is fixed when it is built: the test puts an `Emnify(clock=...)`
    in its place for its own duration.
    """
    clock = FakeClock()
    registry = plugins()
    position = next(index for index, plugin in enumerate(registry) if plugin.name == "emnify")
    registered = registry[position]
    registry[position] = Emnify(clock=clock)
    try:
        yield clock
    finally:
        registry[position] = registered


@pytest.fixture(autouse=True)
def fresh_process_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the per-process budgets of a fresh process.

    emnify's per-IP limits (100 logins and 2,000 requests per 5 minutes) are shared by every connection of
    the process (`budget.process_layer`), by design: without this, the logins of earlier tests would use up
    the login budget of later ones, which would then wait (in real time) for minutes.
    """
    reset_process_layers()
