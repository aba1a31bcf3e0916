"""A Twilio config, a frozen clock and a requests-mock double of the Super SIM UsageRecords API, built from the
JSON templates."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock

from unit_tests.helpers import template
from unit_tests.meraki_fixtures import freeze_clock

BASE = "https://supersim.twilio.com/v1"
USAGE_URL = f"{BASE}/UsageRecords"
STREAM = "twilio_supersim_usage_records"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
API_KEY_SID = "SK0123456789abcdef0123456789abcdef"
API_KEY_SECRET = "s3cr3tKeyValueThatMustNeverLeak00"
SIM_A = "HSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SIM_B = "HSbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
# The connector's clock in every Twilio test: 2026-11-23T12:34:56.789Z (a Monday), on no period boundary; the
# connector reads it to the second.
NOW = datetime(2026, 11, 23, 12, 34, 56, 789000, tzinfo=timezone.utc)
START = "2026-11-20T00:00:00Z"


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The Twilio tests' clock, frozen at NOW."""
    freeze_clock(monkeypatch, NOW)
    return NOW


def twilio_config(start_date: str = START, **section: Any) -> Dict[str, Any]:
    """Auth Token credentials, the default (day) granularity and 48-hour lookback, unless changed."""
    values: Dict[str, Any] = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "base_url": BASE}
    values.update(section)
    return {"start_date": start_date, "twilio": {key: value for key, value in values.items() if value is not None}}


def api_key_config(start_date: str = START, **section: Any) -> Dict[str, Any]:
    return twilio_config(start_date, auth_token=None, api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET, **section)


def record_at(start: str, end: str, sim_sid: str = SIM_A, **changes: Any) -> dict:
    """A usage record as the API sends it (the template's first record), for the period [start, end)."""
    record = template("twilio", "usage_records_page")["usage_records"][0]
    record.update(period={"start_time": start, "end_time": end}, sim_sid=sim_sid, **changes)
    return record


def day(start: str, **changes: Any) -> dict:
    """The template's first record for the day starting at `start` (YYYY-MM-DD), then `changes`."""
    following = datetime.fromisoformat(start).toordinal() + 1
    end = datetime.fromordinal(following).strftime("%Y-%m-%d")
    record = record_at(f"{start}T00:00:00Z", f"{end}T00:00:00Z")
    record.update(changes)
    return record


def usage_page(records: Sequence[dict], next_page_url: Optional[str] = None) -> dict:
    body = template("twilio", "usage_records_page")
    body["usage_records"] = list(records)
    body["meta"]["next_page_url"] = next_page_url
    return body


def window_of(request: Any) -> Tuple[str, str]:
    query = parse_qs(urlsplit(request.url).query)
    return query["StartTime"][0], query["EndTime"][0]


def serve_usage(
    mock: Union[requests_mock.Mocker, requests_mock.Adapter],
    records: List[dict],
    inclusive_end: bool = False,
    before_answer: Optional[Callable[[Tuple[str, str]], Optional[dict]]] = None,
) -> None:
    """Answers every window with the records whose period starts in [StartTime, EndTime), as Twilio does.

    `inclusive_end` plays a server that also returns the period starting exactly at `EndTime`.
    `before_answer(window)` runs first; a response dict it returns (status_code, json) is sent instead.
    """

    def answer(request: Any, context: Any) -> dict:
        window = window_of(request)
        if before_answer is not None:
            instead = before_answer(window)
            if instead is not None:
                context.status_code = instead["status_code"]
                return instead["json"]
        start, end = (datetime.fromisoformat(moment.replace("Z", "+00:00")) for moment in window)
        chosen = []
        for record in records:
            moment = datetime.fromisoformat(record["period"]["start_time"].replace("Z", "+00:00"))
            if start <= moment < end or (inclusive_end and moment == end):
                chosen.append(record)
        return usage_page(chosen)

    mock.register_uri("GET", USAGE_URL, json=answer)


def windows_requested(mock: Union[requests_mock.Mocker, requests_mock.Adapter]) -> List[Tuple[str, str]]:
    """(StartTime, EndTime) of every usage request, as sent, sorted."""
    return sorted(window_of(request) for request in mock.request_history)


def adapter_in_every_session(monkeypatch: pytest.MonkeyPatch) -> requests_mock.Adapter:
    """A requests-mock Adapter mounted in every vendor session in place of the real transport.

    `requests_mock.Mocker` sends every request under one process-wide lock, so a callback that blocks one
    request blocks them all; the Adapter has no such lock: a callback may hold one window back while the
    others are answered. Unregistered URLs fail (NoMockAddress): nothing reaches the network.
    """
    adapter = requests_mock.Adapter()
    monkeypatch.setattr("source_usage.framework.transport.BoundedAdapter", lambda *args, **kwargs: adapter)
    return adapter
