"""Twilio Super SIM usage records (`GET https://supersim.twilio.com/v1/UsageRecords`).

The smallest complete vendor: copy this module to add one. It declares the vendor's config section (a
dataclass, its parser and its spec fragment), its connection (base URL, authentication, error bodies), its
endpoint and stream, its `check`, and the plugin object `setup.py` registers under `source_usage.vendors`.

Stream: `twilio_supersim_usage_records`, one record per Super SIM per hour or day (`Group=sim`,
`Granularity` from the config), incremental on `start_time` with time windows checkpointed in order.

Contract (twilio.com/docs/iot/supersim/api/usage-record-resource, the twilio-oai spec and SDK):
* HTTP Basic auth with `AccountSid:AuthToken` or `ApiKeySid(SK...):ApiKeySecret`; 401 `{"code": 20003}`.
* `StartTime` is inclusive and `EndTime` exclusive (ISO 8601, UTC); `Group=sim` queries may span at most
  31 days (error 83603), `StartTime` at most 18 months before the current UTC day (error 83605).
* Pages: `PageSize` up to 1000, then `meta.next_page_url` (absolute, carrying `PageToken`) followed as
  given until it is null; records are in `body[meta.key]` (`usage_records`).
* Every UsageRecord field is nullable (twilio-oai). Bytes in `data_upload`/`data_download`/`data_total`;
  `data_total_billed` is a decimal string ("0.0312"), "0" with a null `billed_unit` while billing is
  pending (up to 24 hours). Amounts belong to the period the usage occurred in, and usage itself may
  arrive up to 48 hours late: each sync re-reads `lookback` before its saved state and emits those
  periods again, with the same key; a period is final once it ended 48 hours ago and was billed.
* Usage of Super SIMs that belong to subaccounts is not included with the parent account's credentials.
* Concurrency is limited per account: over it, 429 with error 20429, safe to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

import pendulum
import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.requests_native_auth import BasicHttpAuthenticator

from source_usage.framework.config_fields import base_url, integer, nonempty, secret
from source_usage.framework.cursors import Partition, WindowedCursor
from source_usage.framework.endpoint import Endpoint, expect_object
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.ledger import ledger_row
from source_usage.framework.errors import ConfigError, UsageError
from source_usage.framework.paginators import NextPageUrlPaginator
from source_usage.framework.plugin import VendorPlugin
from source_usage.framework.secrets import register_basic_auth
from source_usage.framework.settings import Settings
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import decimal_number, instant, observed_at
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import TimeWindow, floor_time, iso_z, parse_timestamp, split_windows

NAME = "twilio"
MAX_PAGE_SIZE = 1000
PERIOD = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
ADVERB = {"hour": "hourly", "day": "daily"}
# Well under the 31 days a Group=sim query may span, and short enough to checkpoint often.
WINDOW = {"hour": timedelta(days=1), "day": timedelta(days=7)}
RETENTION_MONTHS = 18  # "The oldest allowed StartTime is 18 months prior to the start of the current UTC day"
FINAL_AFTER = timedelta(hours=48)  # usage arrives up to 48 hours late; billing follows within 24 hours
USAGE_FIELDS = ("account_sid", "sim_sid", "fleet_sid", "network_sid", "iso_country")
BYTE_FIELDS = ("data_upload", "data_download", "data_total")

SPEC = {
    "type": "object",
    "title": "Twilio Super SIM",
    "description": "Super SIM usage records. Authenticate with the Auth Token, or with an API key SID and secret.",
    "required": ["account_sid"],
    "properties": {
        "account_sid": {"type": "string", "title": "Account SID", "order": 0, "description": "The Account SID (AC...) whose Super SIM usage is synced."},
        "auth_token": {"type": "string", "title": "Auth Token", "description": "The account's Auth Token. Leave empty when using an API key.", "airbyte_secret": True, "order": 1},
        "api_key_sid": {"type": "string", "title": "API key SID", "description": "An API key SID (SK...) of the account, used with its secret instead of the Auth Token.", "order": 2},
        "api_key_secret": {"type": "string", "title": "API key secret", "airbyte_secret": True, "order": 3},
        "base_url": {"type": "string", "title": "Base URL", "default": "https://supersim.twilio.com/v1", "pattern": "^https?://", "order": 4},
        "granularity": {"type": "string", "title": "Granularity", "description": "The period of one usage record.", "enum": ["hour", "day"], "default": "day", "order": 5},
        "lookback_hours": {
            "type": "integer",
            "title": "Lookback (hours)",
            "description": "Twilio reports usage up to 48 hours late and bills within 24 hours; each incremental sync re-reads this many hours before its saved state.",
            "default": 48,
            "minimum": 0,
            "maximum": 720,
            "order": 6,
        },
    },
}


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    username: str
    password: str
    credential_name: str
    base_url: str
    granularity: str
    lookback: timedelta

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "TwilioConfig":
        account_sid = nonempty(NAME, raw, "account_sid")
        has_token = bool(raw.get("auth_token"))
        has_key = bool(raw.get("api_key_sid")) or bool(raw.get("api_key_secret"))
        if has_token and has_key:
            raise ConfigError(NAME, "takes either auth_token or api_key_sid + api_key_secret, not both")
        if has_key:
            username, password = nonempty(NAME, raw, "api_key_sid"), secret(NAME, raw, "api_key_secret")
            credential = f"API key {username}"
        elif has_token:
            username, password, credential = account_sid, secret(NAME, raw, "auth_token"), "Auth Token"
        else:
            raise ConfigError("twilio.auth_token", "is required (or api_key_sid + api_key_secret)")
        granularity = str(raw.get("granularity") or "day")
        if granularity not in PERIOD:
            raise ConfigError("twilio.granularity", f"must be 'hour' or 'day' (got {granularity!r})")
        register_basic_auth(username, password)
        return cls(
            account_sid=account_sid,
            username=username,
            password=password,
            credential_name=credential,
            base_url=base_url(NAME, raw, "https://supersim.twilio.com/v1", "/v1"),
            granularity=granularity,
            lookback=timedelta(hours=integer(NAME, raw, "lookback_hours", 48)),
        )


def describe_error(body: Any) -> Optional[str]:
    """Twilio's error bodies: `{"code": 20003, "message": "Authenticate", "more_info": ...}`."""
    if not isinstance(body, Mapping) or not body.get("message"):
        return None
    code = body.get("code")
    return f"{body['message']} (error {code})" if code is not None else str(body["message"])


def oldest_start(now: datetime) -> datetime:
    """The oldest `StartTime` Twilio accepts, plus a day so that a sync running over midnight stays valid."""
    today = pendulum.instance(now).in_timezone("UTC").start_of("day")
    oldest = today.subtract(months=RETENTION_MONTHS).add(days=1)
    return datetime.fromtimestamp(oldest.timestamp(), tz=timezone.utc)


def usage_record(raw: Mapping[str, Any], granularity: str, observed: str) -> Dict[str, Any]:
    """The connector's record: the API's fields (nulls kept), the billed amount as a number, the period on
    top, and how final the figures are."""
    period = raw.get("period") if isinstance(raw.get("period"), Mapping) else {}
    start, end = instant(period.get("start_time"), "period.start_time"), instant(period.get("end_time"), "period.end_time")
    record: Dict[str, Any] = {field: raw.get(field) for field in USAGE_FIELDS}
    for field in BYTE_FIELDS:
        record[field] = raw.get(field)
    record.update(
        period={"start_time": start, "end_time": end},
        data_total_billed=decimal_number(raw.get("data_total_billed"), "data_total_billed"),
        billed_unit=raw.get("billed_unit"),
        start_time=start,
        end_time=end,
        granularity=granularity,
        observed_at=observed,
        is_final=is_final(end, raw.get("billed_unit"), raw.get("data_total"), observed),
    )
    return record


def is_final(end: Optional[str], billed_unit: Any, data_total: Any, observed: str) -> bool:
    """Final once the period ended 48 hours before it was read and was billed (or had nothing to bill)."""
    if end is None:
        return False
    ended_long_ago = parse_timestamp(end) <= parse_timestamp(observed) - FINAL_AFTER
    return ended_long_ago and (billed_unit is not None or data_total == 0)


def in_window(record: Mapping[str, Any], window: TimeWindow) -> bool:
    """Whether the record's period starts in [start, end).

    Periods are aligned with the windows, so with an exclusive `EndTime` this always holds; it guards
    against a server that treats `EndTime` as inclusive, which would hand the boundary period to two
    windows. A record without a start is kept for the schema check to report.
    """
    start = record.get("start_time")
    return start is None or window.start <= parse_timestamp(start) < window.end


class TwilioSupersimUsageRecords(UsageStream[WindowedCursor]):
    """Usage of every Super SIM per period (`Group=sim`), read in windows aligned to the granularity."""

    name = "twilio_supersim_usage_records"
    primary_key = ["sim_sid", "start_time"]
    cursor_field = "start_time"

    def __init__(self, vendor: VendorConnection, sync: SyncContext, config: TwilioConfig) -> None:
        super().__init__(vendor, sync)
        self.config = config
        self.endpoint = Endpoint(
            "UsageRecords",
            records=self.records_of,
            query=self.query,
            paginator=NextPageUrlPaginator(("meta", "next_page_url"), "PageSize", MAX_PAGE_SIZE),
            max_pages=5000,
        )

    feeds_ledger = True

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        """Bytes up, down and in total per SIM and period; the billed amount on the total."""
        billed = record["billed_unit"] is not None
        for metric, quantity, cost in (
            ("data_sent_bytes", record["data_upload"], None),
            ("data_received_bytes", record["data_download"], None),
            ("data_total_bytes", record["data_total"], record["data_total_billed"] if billed else None),
        ):
            yield ledger_row(
                vendor=NAME,
                account_id=record["account_sid"] or self.config.account_sid,
                subject_type="sim",
                subject_id=record["sim_sid"],
                metric=metric,
                quantity=quantity,
                unit="bytes",
                cost=cost,
                currency=record["billed_unit"] if cost is not None else None,
                granularity=record["granularity"],
                period_start=record["start_time"],
                period_end=record["end_time"],
                is_final=record["is_final"],
                observed_at=record["observed_at"],
                source_stream=self.name,
            )

    def make_cursor(self) -> WindowedCursor:
        cursor = WindowedCursor("start_time", order=lambda partition: partition["window_index"])
        cursor.extra["granularity"] = self.config.granularity
        return cursor

    def query(self, partition: Partition) -> Mapping[str, Any]:
        window: TimeWindow = partition["window"]
        return {"Group": "sim", "Granularity": self.config.granularity, "StartTime": iso_z(window.start), "EndTime": iso_z(window.end)}

    def first_period(self, run: StreamRun[WindowedCursor], now: datetime) -> datetime:
        """The start date, or the saved state minus the lookback, floored to the period and kept within the
        18 months Twilio can be asked about."""
        period = PERIOD[self.config.granularity]
        start = floor_time(self.sync.start_date, period)
        saved = run.cursor.value
        if saved is not None:
            start = max(start, floor_time(parse_timestamp(saved) - self.config.lookback, period))
        oldest = oldest_start(now)
        if start < oldest:
            run.logger.warning(
                f"{self.name}: Twilio answers usage queries for the last 18 months only; starting at "
                f"{iso_z(oldest)} instead of the configured start_date {iso_z(self.sync.start_date)}"
            )
            start = oldest
        return start

    def partitions(self, run: StreamRun[WindowedCursor]) -> Iterable[Partition]:
        if not self.sync.shard.owns(NAME, self.config.account_sid):
            run.logger.info(f"{self.name}: the account is read by another shard ({self.sync.shard})")
            return
        self.refuse_other_granularity(run)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        first = self.first_period(run, now)
        windows = list(split_windows(first, now, WINDOW[self.config.granularity]))
        run.logger.info(
            f"{self.name}: reading {ADVERB[self.config.granularity]} usage from {iso_z(first)} to {iso_z(now)} "
            f"in {len(windows)} window{'' if len(windows) == 1 else 's'}"
        )
        for index, window in enumerate(windows):
            yield {"window_index": index, "window": window}

    def refuse_other_granularity(self, run: StreamRun[WindowedCursor]) -> None:
        """The key (sim_sid, start_time) does not say whether a row is hourly or daily: a state saved at
        another granularity would mix the two under one key."""
        saved = run.saved_state.get("granularity") if run.cursor.value is not None else None
        if saved is not None and saved != self.config.granularity:
            raise ConfigError(
                "twilio.granularity",
                f"is {self.config.granularity!r} but the saved state of {self.name} was read at {saved!r}: reset the "
                f"stream (or its connection) before changing the granularity, so that hourly and daily rows are not mixed",
            )

    def records_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        body = expect_object(body, NAME, response, "an object with usage records")
        meta = body.get("meta") if isinstance(body.get("meta"), Mapping) else {}
        key = meta.get("key") if isinstance(meta.get("key"), str) else "usage_records"
        raw_records = body.get(key)
        if raw_records is None:
            return
        if not isinstance(raw_records, list):
            raise UsageError(f"twilio: GET UsageRecords answered {key!r} that is not a list", FailureType.system_error)
        window: TimeWindow = partition["window"]
        observed = observed_at(response)
        for raw in raw_records:
            if not isinstance(raw, Mapping):
                raise UsageError("twilio: GET UsageRecords answered a usage record that is not an object", FailureType.system_error)
            record = usage_record(raw, self.config.granularity, observed)
            if in_window(record, window):
                yield record


class Twilio(VendorPlugin[TwilioConfig]):
    name = NAME
    title = "Twilio Super SIM"
    position = 20
    spec = SPEC
    emulator = "source_usage.emulator.twilio:TwilioApp"

    def parse_config(self, raw: Mapping[str, Any]) -> TwilioConfig:
        return TwilioConfig.parse(raw)

    def connect(self, config: TwilioConfig, settings: Settings) -> VendorConnection:
        credential = f"the {config.credential_name} for account {config.account_sid}"
        errors = VendorErrors(
            NAME,
            rejected={401: f"{credential} was rejected", 403: f"{credential} is not allowed to read Super SIM usage records"},
            describe=describe_error,
        )
        # No client-side budget: Twilio limits concurrent requests, which the worker count bounds.
        return VendorConnection(
            NAME, config.base_url, errors, authenticator=BasicHttpAuthenticator(config.username, config.password), max_workers=4, settings=settings
        )

    def streams(self, connection: VendorConnection, config: TwilioConfig, sync: SyncContext) -> List[UsageStream]:
        return [TwilioSupersimUsageRecords(connection, sync, config)]

    def check(self, connection: VendorConnection, config: TwilioConfig, sync: SyncContext) -> None:
        """One cheap authenticated request: the usage of the last complete period and the current one."""
        stream = TwilioSupersimUsageRecords(connection, sync, config)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        period = PERIOD[config.granularity]
        window = TimeWindow(floor_time(now, period) - period, now)
        next(iter(connection.pages(stream.endpoint, {"window_index": 0, "window": window})), None)


plugin = Twilio()
