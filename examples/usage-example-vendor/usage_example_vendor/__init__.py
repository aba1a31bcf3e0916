"""An example vendor plugin for source-usage: the fictitious Acme Metering API.

Everything about the vendor is declared here, and `pyproject.toml` registers `plugin` under the
`source_usage.vendors` entry point, the way the four built-in vendors are registered:

* its config section: `AcmeConfig` (a dataclass and its parser) and `SPEC` (the JSON schema, secret marked);
* its connection: base URL, an API key header, its error bodies, its rate limit;
* its endpoint and stream: `GET /v1/readings?since=&limit=&cursor=` answers
  `{"readings": [{"meter_id", "read_at", "kwh"}], "next_cursor": "..." | null}`: a body cursor, followed by the
  framework's `BodyCursorPaginator`; the stream is incremental on `read_at`;
* its `check`, and its rows of the usage ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator, List, Mapping, Optional

import requests
from requests.auth import AuthBase

from source_usage.framework.budget import MovingWindowLayer, everything
from source_usage.framework.config_fields import base_url, secret
from source_usage.framework.cursors import Partition, WindowedCursor
from source_usage.framework.endpoint import Endpoint, expect_object
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.ledger import ledger_row, period_end
from source_usage.framework.paginators import BodyCursorPaginator
from source_usage.framework.plugin import VendorPlugin
from source_usage.framework.settings import Settings
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import decimal_number, instant, observed_at
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import iso_z, parse_timestamp

NAME = "acme"
READING_PERIOD = timedelta(hours=1)  # one reading per meter and hour
FINAL_AFTER = timedelta(hours=2)  # Acme may correct a reading during the two hours after it

SPEC = {
    "type": "object",
    "title": "Acme Metering",
    "description": "Hourly energy readings of Acme meters (an example plugin).",
    "required": ["api_key"],
    "properties": {
        "api_key": {"type": "string", "title": "API key", "airbyte_secret": True, "order": 0},
        "base_url": {"type": "string", "title": "Base URL", "default": "https://api.acme.example/v1", "pattern": "^https?://", "order": 1},
    },
}


@dataclass(frozen=True)
class AcmeConfig:
    api_key: str
    base_url: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "AcmeConfig":
        return cls(api_key=secret(NAME, raw, "api_key"), base_url=base_url(NAME, raw, "https://api.acme.example/v1", "/v1"))


class ApiKeyHeader(AuthBase):
    """Acme's authentication: the key in an `X-Api-Key` header."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Api-Key"] = self.key
        return request


def describe_error(body: Any) -> Optional[str]:
    """Acme's error bodies: `{"error": "..."}`."""
    return str(body["error"]) if isinstance(body, Mapping) and body.get("error") else None


class AcmeMeterReadings(UsageStream[WindowedCursor]):
    """One record per meter and hour: the energy it measured."""

    name = "acme_meter_readings"
    primary_key = ["meter_id", "read_at"]
    cursor_field = "read_at"
    feeds_ledger = True

    def __init__(self, vendor: VendorConnection, sync: SyncContext) -> None:
        super().__init__(vendor, sync)
        self.endpoint = Endpoint(
            "readings",
            records=self.records_of,
            query=lambda partition: {"since": iso_z(partition["since"])},
            paginator=BodyCursorPaginator(["next_cursor"], "cursor", "limit", 500),
            max_pages=10_000,
        )

    def make_cursor(self) -> WindowedCursor:
        return WindowedCursor("read_at", order=lambda partition: 0)  # one partition: everything since

    def partitions(self, run: StreamRun[WindowedCursor]) -> Iterable[Partition]:
        since: datetime = self.sync.start_date
        if run.cursor.value is not None:  # re-read the readings Acme may still correct
            since = max(since, parse_timestamp(run.cursor.value) - FINAL_AFTER)
        yield {"since": since}

    def records_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        readings = expect_object(body, NAME, response, "an object with readings").get("readings") or []
        observed = observed_at(response)
        for reading in readings:
            read_at = instant(reading.get("read_at"), "read_at")
            yield {
                "meter_id": reading.get("meter_id"),
                "read_at": read_at,
                "kwh": decimal_number(reading.get("kwh"), "kwh"),
                "observed_at": observed,
                "is_final": read_at is not None and parse_timestamp(read_at) + READING_PERIOD + FINAL_AFTER <= parse_timestamp(observed),
            }

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        yield ledger_row(
            vendor=NAME, account_id="default", subject_type="meter", subject_id=record["meter_id"], metric="energy_kwh",
            quantity=record["kwh"], unit="kWh", granularity="hour", period_start=record["read_at"],
            period_end=period_end(record["read_at"], READING_PERIOD), is_final=record["is_final"],
            observed_at=record["observed_at"], source_stream=self.name,
        )


class Acme(VendorPlugin[AcmeConfig]):
    name = NAME
    title = "Acme Metering"
    position = 900
    spec = SPEC

    def parse_config(self, raw: Mapping[str, Any]) -> AcmeConfig:
        return AcmeConfig.parse(raw)

    def connect(self, config: AcmeConfig, settings: Settings) -> VendorConnection:
        return VendorConnection(
            NAME,
            config.base_url,
            VendorErrors(NAME, rejected={401: "the API key was rejected"}, describe=describe_error),
            authenticator=ApiKeyHeader(config.api_key),
            budget_layers=[MovingWindowLayer("account (5 requests/s)", everything, 5, timedelta(seconds=1))],
            max_workers=1,
            settings=settings,
        )

    def streams(self, connection: VendorConnection, config: AcmeConfig, sync: SyncContext) -> List[UsageStream]:
        return [AcmeMeterReadings(connection, sync)]

    def check(self, connection: VendorConnection, config: AcmeConfig, sync: SyncContext) -> None:
        """One cheap authenticated request: the first page of the last hour's readings."""
        stream = AcmeMeterReadings(connection, sync)
        next(iter(connection.pages(stream.endpoint, {"since": sync.start_date})), None)


plugin = Acme()
