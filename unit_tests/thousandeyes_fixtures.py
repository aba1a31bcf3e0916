"""A ThousandEyes config, a requests-mock double of the usage API, and a clock for the rate budget."""

from __future__ import annotations

import datetime as real_datetime
from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, Optional

import pytest
import requests_mock
from airbyte_cdk.sources.streams import call_rate

from source_usage.config import ThousandEyesConfig
from source_usage.framework.stream import UsageStream
from source_usage.vendors import thousandeyes
from unit_tests.helpers import by_name, template

BASE = "https://api.thousandeyes.com/v7"
USAGE_URL = f"{BASE}/usage"
TESTS_URL = f"{BASE}/usage/units/tests"
TOKEN = "d3b07384-d113-4ec6-a8b1-thousandeyes00"
START = real_datetime.datetime(2026, 10, 1, tzinfo=real_datetime.timezone.utc)


def te_config(**changes: object) -> ThousandEyesConfig:
    values: Dict[str, Any] = dict(bearer_token=TOKEN, base_url=BASE, account_group_id=None)
    values.update(changes)
    return ThousandEyesConfig(**values)


def te_streams(config: Optional[ThousandEyesConfig] = None) -> Dict[str, UsageStream]:
    """Both streams of one sync, sharing its `GET /usage`."""
    return by_name(thousandeyes.streams(config or te_config(), START))


def usage_without_tests() -> dict:
    """`/usage` of a server that ignored `expand=test`: no `tests` array at all."""
    body = template("thousandeyes", "usage")
    for array in ("tests", "enterpriseAgentUnits", "endpointAgents"):
        del body["usage"][array]
    return body


def mock_usage(mock: requests_mock.Mocker, body: Optional[Mapping[str, Any]] = None, **response: Any) -> None:
    """`GET /usage` answering `body` (default: the expanded usage template) or the given response."""
    response.setdefault("json", body if body is not None else template("thousandeyes", "usage"))
    mock.get(USAGE_URL, **response)


def mock_test_pages(mock: requests_mock.Mocker, pages: Optional[List[dict]] = None) -> None:
    """The paged `/usage/units/tests`, one response per request in order."""
    pages = pages if pages is not None else [{"json": template("thousandeyes", "tests_page_1")}, {"json": template("thousandeyes", "tests_page_2")}]
    mock.get(TESTS_URL, pages)


def requests_to(mock: requests_mock.Mocker, url: str) -> list:
    path = url[len("https://api.thousandeyes.com"):].lower()
    return [request for request in mock.request_history if request.path == path]


class FakeClock:
    """Time as the CDK's rate budget sees it, moved forward by every wait (nothing really sleeps).

    The budget blocks until `datetime.now()` passes the reset the server announced; with the unit tests'
    recorded sleeps that moment would never come, so each recorded wait also moves this clock.
    """

    def __init__(self, waits: List[float]) -> None:
        self.waits = waits
        self.offset = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.offset += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeClock":
        clock = self

        class ShiftedDatetime(real_datetime.datetime):
            @classmethod
            def now(cls, tz: Any = None) -> real_datetime.datetime:  # type: ignore[override]
                return real_datetime.datetime.now(tz) + real_datetime.timedelta(seconds=clock.offset)

        monkeypatch.setattr(call_rate, "datetime", SimpleNamespace(datetime=ShiftedDatetime))
        monkeypatch.setattr(call_rate.time, "sleep", self.sleep)  # the time module: the HTTP client's waits too
        return self
