"""A Twilio config and a requests-mock double of the Super SIM UsageRecords API, built from the JSON templates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import requests_mock

from source_usage.config import TwilioConfig
from source_usage.framework.windows import iso_z, parse_timestamp
from source_usage.vendors import twilio
from source_usage.vendors.twilio import TwilioSupersimUsageRecords
from unit_tests.helpers import template

BASE = "https://supersim.twilio.com/v1"
USAGE_URL = f"{BASE}/UsageRecords"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
API_KEY_SID = "SK0123456789abcdef0123456789abcdef"
API_KEY_SECRET = "s3cr3tKeyValueThatMustNeverLeak00"
SIM_A = "HSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SIM_B = "HSbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def twilio_config(**changes: Any) -> TwilioConfig:
    """Auth Token credentials, day granularity, the default 48-hour lookback."""
    values: Dict[str, Any] = dict(
        account_sid=ACCOUNT_SID,
        username=ACCOUNT_SID,
        password=AUTH_TOKEN,
        credential_name="Auth Token",
        base_url=BASE,
        granularity="day",
        lookback=timedelta(hours=48),
    )
    values.update(changes)
    return TwilioConfig(**values)


def api_key_config(**changes: Any) -> TwilioConfig:
    return twilio_config(username=API_KEY_SID, password=API_KEY_SECRET, credential_name=f"API key {API_KEY_SID}", **changes)


def usage_stream(config: Optional[TwilioConfig] = None, start: Optional[datetime] = None) -> TwilioSupersimUsageRecords:
    start = start or datetime.now(timezone.utc) - timedelta(days=2)
    [stream] = twilio.streams(config or twilio_config(), start)
    return stream  # type: ignore[return-value]


def record_at(start: datetime, length: timedelta = timedelta(days=1), sim_sid: str = SIM_A, **changes: Any) -> dict:
    """A usage record as the API sends it (the template's first record), for the period starting at `start`."""
    record = template("twilio", "usage_records_page")["usage_records"][0]
    record.update(period={"start_time": iso_z(start), "end_time": iso_z(start + length)}, sim_sid=sim_sid, **changes)
    return record


def usage_page(records: Sequence[dict], next_page_url: Optional[str] = None) -> dict:
    body = template("twilio", "usage_records_page")
    body["usage_records"] = list(records)
    body["meta"]["next_page_url"] = next_page_url
    return body


def serve_usage(mock: requests_mock.Mocker, records: List[dict], inclusive_end: bool = False) -> None:
    """Answers every window with the records whose period starts in [StartTime, EndTime), as Twilio does.

    `inclusive_end` plays a server that also returns the period starting exactly at `EndTime`.
    """

    def answer(request: Any, context: Any) -> dict:
        query = parse_qs(urlsplit(request.url).query)
        start, end = parse_timestamp(query["StartTime"][0]), parse_timestamp(query["EndTime"][0])
        chosen = []
        for record in records:
            moment = parse_timestamp(record["period"]["start_time"])
            if start <= moment < end or (inclusive_end and moment == end):
                chosen.append(record)
        return usage_page(chosen)

    mock.get(USAGE_URL, json=answer)


def windows_requested(mock: requests_mock.Mocker) -> List[tuple]:
    """(StartTime, EndTime) of every usage request, in the order they were sent."""
    requested = []
    for request in mock.request_history:
        query = parse_qs(urlsplit(request.url).query)
        requested.append((parse_timestamp(query["StartTime"][0]), parse_timestamp(query["EndTime"][0])))
    return requested
