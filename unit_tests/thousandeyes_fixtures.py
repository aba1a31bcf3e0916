"""A ThousandEyes config, a requests-mock double of the usage API built from the JSON templates, and a clock
for the organization's rate budget."""

from __future__ import annotations

import datetime as real_datetime
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Mapping, Optional

import pytest
import requests_mock
from airbyte_cdk.sources.streams import call_rate

from unit_tests.helpers import template

BASE = "https://api.thousandeyes.com/v7"
USAGE_URL = f"{BASE}/usage"
TESTS_URL = f"{BASE}/usage/units/tests"
TOKEN = "d3b07384-d113-4ec6-a8b1-thousandeyes00"
USAGE = "thousandeyes_usage"
TEST_USAGE = "thousandeyes_test_usage"
BOTH = [USAGE, TEST_USAGE]
MONTH_START = "2026-11-05T08:00:00Z"


def now_and_header() -> tuple:
    """This second as RFC 3339 and as an HTTP `Date` header (close enough to our clock to be believed)."""
    now = real_datetime.datetime.now(real_datetime.timezone.utc).replace(microsecond=0)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ"), format_datetime(now, usegmt=True)


def te_config(**section: Any) -> Dict[str, Any]:
    """The connector config with a ThousandEyes section (and `section`'s keys in it)."""
    return {"start_date": "2026-10-01T00:00:00Z", "thousandeyes": {"bearer_token": TOKEN, "base_url": BASE, **section}}


def usage_without_tests() -> dict:
    """`/usage` of a server that ignored `expand=test`: no `tests` array at all."""
    body = template("thousandeyes", "usage")
    for array in ("tests", "enterpriseAgentUnits", "endpointAgents"):
        del body["usage"][array]
    return body


def mock_usage(mock: requests_mock.Mocker, body: Optional[Any] = None, **response: Any) -> Any:
    """`GET /usage` answering `body` (default: the expanded usage template) or the given response."""
    if "json" not in response and "text" not in response:
        response["json"] = body if body is not None else template("thousandeyes", "usage")
    return mock.get(USAGE_URL, **response)


def mock_test_pages(mock: requests_mock.Mocker, pages: Optional[List[dict]] = None) -> Any:
    """The paged `/usage/units/tests`, one response per request in order."""
    pages = pages if pages is not None else [{"json": template("thousandeyes", "tests_page_1")}, {"json": template("thousandeyes", "tests_page_2")}]
    return mock.get(TESTS_URL, pages)


def requests_to(mock: requests_mock.Mocker, url: str) -> list:
    path = url[len("https://api.thousandeyes.com") :].lower()
    return [request for request in mock.request_history if request.path == path]


def rate_headers(remaining: Any, reset: Any, limit: Any = "240") -> Dict[str, str]:
    return {
        "X-Organization-Rate-Limit-Limit": str(limit),
        "X-Organization-Rate-Limit-Remaining": str(remaining),
        "X-Organization-Rate-Limit-Reset": str(reset),
    }


class BudgetClock:
    """Time as the CDK's fixed-window rate policy sees it, moved forward by every wait (nothing sleeps).

    The budget waits until `datetime.now()` passes the reset the server announced; with recorded sleeps that
    moment would never come, so each recorded wait (the `waits` fixture's list) also moves this clock.
    """

    def __init__(self, waits: List[float]) -> None:
        self.waits = waits
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.offset += seconds


@pytest.fixture
def budget_clock(monkeypatch: pytest.MonkeyPatch, waits: List[float]) -> Iterator[BudgetClock]:
    clock = BudgetClock(waits)

    class ShiftedDatetime(real_datetime.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> real_datetime.datetime:  # type: ignore[override]
            return real_datetime.datetime.now(tz) + real_datetime.timedelta(seconds=clock.offset)

    monkeypatch.setattr(call_rate, "datetime", SimpleNamespace(datetime=ShiftedDatetime))
    monkeypatch.setattr("source_usage.framework.budget.sleep", clock.sleep)
    monkeypatch.setattr("source_usage.framework.client.sleep", clock.sleep)
    yield clock


def usage_test_item(**changes: Any) -> Mapping[str, Any]:
    """The first `tests` item of the usage template, changed."""
    item = dict(template("thousandeyes", "usage")["usage"]["tests"][0])
    item.update(changes)
    return {key: value for key, value in item.items() if value is not ...}
