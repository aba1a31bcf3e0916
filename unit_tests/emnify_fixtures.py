"""An emnify config and a requests-mock double of the emnify API, built from the JSON templates."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any, Callable, Dict, List, Mapping, Optional

import jwt
import requests_mock

from source_usage.config import EmnifyConfig
from source_usage.framework.stream import UsageStream
from source_usage.vendors import emnify
from unit_tests.helpers import by_name, template

BASE = "https://cdn.emnify.net/api/v1"
APPLICATION_TOKEN = "KAOp24-unit-test-application-token-0001"
# The stats template's minutes run from 23:58 to 00:01 of the day this Date starts.
STATS_DATE = "Mon, 30 Nov 2026 00:01:30 GMT"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
_token_numbers = count(1)


def emnify_config(**changes: object) -> EmnifyConfig:
    values = dict(application_token=APPLICATION_TOKEN, base_url=BASE)
    values.update(changes)
    return EmnifyConfig(**values)  # type: ignore[arg-type]


def emnify_streams(start: datetime = START, clock: Optional[Callable[[], float]] = None) -> Dict[str, UsageStream]:
    """The three streams of one sync, sharing one authenticator, endpoint listing and snapshot store."""
    if clock is None:
        return by_name(emnify.streams(emnify_config(), start))
    return by_name(emnify.streams(emnify_config(), start, clock=clock))


def auth_token(expires_in: Optional[timedelta] = timedelta(minutes=240), now: Optional[float] = None) -> str:
    """A distinct JWT like emnify's; `expires_in=None` leaves out the `exp` claim."""
    issued = int(now if now is not None else datetime.now(timezone.utc).timestamp())
    claims: Dict[str, Any] = {"sub": "application_token", "iat": issued, "jti": next(_token_numbers)}
    if expires_in is not None:
        claims["exp"] = issued + int(expires_in.total_seconds())
    return jwt.encode(claims, "unit-test-signing-key-of-32-bytes!!", algorithm="HS256")


def stats(endpoint_id: int, without: tuple = (), **replacements: Any) -> dict:
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


def mock_login(mock: requests_mock.Mocker, tokens: Optional[List[str]] = None) -> List[str]:
    """POST /authenticate answers the given tokens in turn (default: fresh 240-minute tokens); returns them."""
    issued = list(tokens) if tokens is not None else [auth_token() for _ in range(10)]
    mock.post(f"{BASE}/authenticate", [{"json": {"auth_token": token}} for token in issued])
    return issued


def mock_api(
    mock: requests_mock.Mocker,
    endpoints: Optional[List[dict]] = None,
    snapshots: Optional[Mapping[int, Any]] = None,
    tokens: Optional[List[str]] = None,
    date: str = STATS_DATE,
) -> List[str]:
    """Authentication, a one-page endpoint list and each endpoint's stats (a body, or a list of responses)."""
    issued = mock_login(mock, tokens)
    endpoints = endpoints if endpoints is not None else template("emnify", "endpoints")
    mock.get(f"{BASE}/endpoint", json=endpoints, headers=page_headers(1, 1, len(endpoints)))
    snapshots = snapshots if snapshots is not None else {endpoint["id"]: stats(endpoint["id"]) for endpoint in endpoints}
    for endpoint_id, answer in snapshots.items():
        responses = answer if isinstance(answer, list) else [{"json": answer}]
        mock.get(
            f"{BASE}/endpoint/{endpoint_id}/stats",
            [{"headers": {"Date": date}, **copy.deepcopy(response)} for response in responses],
        )
    return issued


def page_headers(page: int, total_pages: int, total_count: int, per_page: int = 1000) -> Dict[str, str]:
    return {
        "X-Current-Page": str(page),
        "X-Total-Pages": str(total_pages),
        "X-Total-Count": str(total_count),
        "X-Count-Per-Page": str(per_page),
    }


def requests_to(mock: requests_mock.Mocker, method: str, path_suffix: str) -> list:
    return [request for request in mock.request_history if request.method == method and request.path.endswith(path_suffix)]


def stats_requests(mock: requests_mock.Mocker) -> list:
    return [request for request in mock.request_history if request.path.endswith("/stats")]
