"""Twilio Super SIM usage records (`GET https://supersim.twilio.com/v1/UsageRecords`).

Stream: `twilio_supersim_usage_records`, one record per Super SIM per hour or day (`Group=sim`,
`Granularity` from the config), incremental on `start_time` with time windows checkpointed in order.

Contract (twilio.com/docs/iot/supersim/api/usage-record-resource, the twilio-oai spec and SDK):
* HTTP Basic auth with `AccountSid:AuthToken` or `ApiKeySid(SK...):ApiKeySecret`; 401 `{"code": 20003}`.
* `StartTime` is inclusive and `EndTime` exclusive (ISO 8601, UTC); `Group=sim` queries may span at most
  31 days (error 83603), `StartTime` at most 18 months before the current UTC day (error 83605).
* Pages: `PageSize` up to 1000, then `meta.next_page_url` (absolute, carrying `PageToken`) followed
  exactly as given until it is null; records are in `body[meta.key]` (`usage_records`).
* Bytes in `data_upload`/`data_download`/`data_total`; `data_total_billed` is a decimal string
  ("0.0312"), "0" with a null `billed_unit` while billing is pending (up to 24 hours). Amounts belong
  to the period the usage occurred in, and usage itself may arrive up to 48 hours late: each sync
  re-reads `lookback` before its saved state and emits those periods again, with the same key.
* Concurrency is limited per account: over it, 429 with error 20429, safe to retry.
"""

from __future__ import annotations

import base64
import math
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

import pendulum
import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.requests_native_auth import BasicHttpAuthenticator
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets

from source_usage.config import TwilioConfig
from source_usage.framework.cursors import Partition, StreamCursor, WindowedCursor
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import UsageError
from source_usage.framework.http_client import RetryPolicy
from source_usage.framework.paginators import NextPageUrlPaginator
from source_usage.framework.stream import UsageStream
from source_usage.framework.vendor import Vendor
from source_usage.framework.windows import TimeWindow, floor_time, iso_z, parse_timestamp, split_windows

MAX_PAGE_SIZE = 1000
PERIOD = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
ADVERB = {"hour": "hourly", "day": "daily"}
# Well under the 31 days a Group=sim query may span, and short enough to checkpoint often.
WINDOW = {"hour": timedelta(days=1), "day": timedelta(days=7)}
RETENTION_MONTHS = 18  # "The oldest allowed StartTime is 18 months prior to the start of the current UTC day"
USAGE_FIELDS = ("account_sid", "sim_sid", "fleet_sid", "network_sid", "iso_country", "data_upload", "data_download", "data_total")


def basic_authenticator(config: TwilioConfig) -> BasicHttpAuthenticator:
    """Basic auth with the Auth Token or the API key; the derived header value is a secret too."""
    add_to_secrets(base64.b64encode(f"{config.username}:{config.password}".encode()).decode())
    add_to_secrets(config.password)
    return BasicHttpAuthenticator(config.username, config.password)


def vendor_errors(config: TwilioConfig) -> VendorErrors:
    credential = f"the {config.credential_name} for account {config.account_sid}"
    return VendorErrors(
        "twilio",
        rejected={
            401: f"{credential} was rejected",
            403: f"{credential} is not allowed to read Super SIM usage records",
        },
    )


def make_vendor(config: TwilioConfig, retry_policy: Optional[RetryPolicy] = None) -> Vendor:
    # No client-side budget: Twilio limits concurrent requests, which the worker count bounds.
    return Vendor(
        name="twilio",
        base_url=config.base_url,
        errors=vendor_errors(config),
        authenticator=basic_authenticator(config),
        max_workers=4,
        retry_policy=retry_policy or RetryPolicy.from_environment(),
    )


def oldest_start(now: datetime) -> datetime:
    """The oldest `StartTime` Twilio accepts, plus a day so that a sync running over midnight stays valid."""
    today = pendulum.instance(now).in_timezone("UTC").start_of("day")
    oldest = today.subtract(months=RETENTION_MONTHS).add(days=1)
    return datetime.fromtimestamp(oldest.timestamp(), tz=timezone.utc)


def usage_windows(first_period: datetime, now: datetime, granularity: str) -> Iterator[TimeWindow]:
    """[start, end) windows from `first_period` (a period boundary) to `now`, aligned to the periods.

    Only the last window ends mid-period: at `now`, so its partial period is read as it is so far.
    """
    return split_windows(first_period, now, WINDOW[granularity])


def billed_amount(value: Any) -> Any:
    """`data_total_billed` as a number ("0.0312" -> 0.0312); anything else is left for the schema to reject."""
    if isinstance(value, str):
        try:
            amount = float(value)
        except ValueError:
            return value
        return amount if math.isfinite(amount) else value
    return value


def usage_record(raw: Mapping[str, Any], granularity: str) -> Dict[str, Any]:
    """The connector's record: the API's fields, the billed amount as a number, and the period on top."""
    period = raw.get("period") or {}
    record: Dict[str, Any] = {field: raw.get(field) for field in USAGE_FIELDS}
    record.update(
        period={"start_time": period.get("start_time"), "end_time": period.get("end_time")},
        data_total_billed=billed_amount(raw.get("data_total_billed")),
        billed_unit=raw.get("billed_unit"),
        start_time=period.get("start_time"),
        end_time=period.get("end_time"),
        granularity=granularity,
    )
    return record


def in_window(record: Mapping[str, Any], window: TimeWindow) -> bool:
    """Whether the record's period starts in [start, end).

    Periods are aligned with the windows, so with an exclusive `EndTime` this always holds; it guards
    against a server that treats `EndTime` as inclusive, which would hand the boundary period to two
    windows. A record without a readable start is kept for the schema check to report.
    """
    start = record.get("start_time")
    try:
        moment = parse_timestamp(start)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return True
    return window.start <= moment < window.end


class TwilioSupersimUsageRecords(UsageStream):
    """Usage of every Super SIM per period (`Group=sim`), read in windows aligned to the granularity."""

    name = "twilio_supersim_usage_records"
    primary_key = ["sim_sid", "start_time"]
    cursor_field = "start_time"
    paginator = NextPageUrlPaginator(("meta", "next_page_url"), "PageSize", MAX_PAGE_SIZE)

    def __init__(self, vendor: Vendor, config: TwilioConfig, start: datetime) -> None:
        self.config = config
        self.start = start
        super().__init__(vendor)

    def make_cursor(self) -> StreamCursor:
        return WindowedCursor("start_time")

    def endpoint(self, partition: Partition) -> str:
        return "UsageRecords"

    def query(self, partition: Partition) -> Mapping[str, Any]:
        window: TimeWindow = partition["window"]
        return {
            "Group": "sim",
            "Granularity": self.config.granularity,
            "StartTime": iso_z(window.start),
            "EndTime": iso_z(window.end),
        }

    def first_period(self, now: datetime) -> datetime:
        """The start date, or the saved state minus the lookback, floored to the period and kept
        within the 18 months Twilio can be asked about."""
        period = PERIOD[self.config.granularity]
        start = floor_time(self.start, period)
        saved = self.stream_cursor.value  # type: ignore[attr-defined]
        if saved is not None:
            start = max(start, floor_time(parse_timestamp(saved) - self.config.lookback, period))
        oldest = oldest_start(now)
        if start < oldest:
            self.logger.warning(
                f"{self.name}: Twilio answers usage queries for the last 18 months only; starting at "
                f"{iso_z(oldest)} instead of the configured start_date {iso_z(self.start)}"
            )
            start = oldest
        return start

    def partitions(self, sync_mode: SyncMode) -> Iterable[Partition]:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        first = self.first_period(now)
        windows = list(usage_windows(first, now, self.config.granularity))
        self.logger.info(
            f"{self.name}: reading {ADVERB[self.config.granularity]} usage from {iso_z(first)} to {iso_z(now)} "
            f"in {len(windows)} window{'' if len(windows) == 1 else 's'}"
        )
        for index, window in enumerate(windows):
            yield {"window_index": index, "window": window}

    def extract_records(self, body: Any, partition: Partition, response: requests.Response) -> Iterable[dict]:
        if not isinstance(body, Mapping):
            raise UsageError(f"twilio: {self.name}: expected a JSON object with usage records, got {type(body).__name__}")
        key = (body.get("meta") or {}).get("key") or "usage_records"
        window: TimeWindow = partition["window"]
        for raw in body.get(key) or ():
            record = usage_record(raw, self.config.granularity)
            if in_window(record, window):
                yield record


def probe_partition(granularity: str, now: datetime) -> Partition:
    """The last complete period and the current one: a small, always valid query."""
    period = PERIOD[granularity]
    return {"window_index": 0, "window": TimeWindow(floor_time(now, period) - period, now)}


def check(config: TwilioConfig, start: datetime, retry_policy: RetryPolicy) -> None:
    """One cheap authenticated request: the usage of the last period."""
    stream = TwilioSupersimUsageRecords(make_vendor(config, retry_policy), config, start)
    stream.probe(probe_partition(config.granularity, datetime.now(timezone.utc).replace(microsecond=0)))


def streams(config: TwilioConfig, start: datetime) -> List[UsageStream]:
    if config.granularity not in PERIOD:
        raise UsageError(f"twilio: granularity must be 'hour' or 'day' (got {config.granularity!r})", FailureType.config_error)
    return [TwilioSupersimUsageRecords(make_vendor(config), config, start)]
