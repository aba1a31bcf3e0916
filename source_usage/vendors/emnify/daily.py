"""`emnify_endpoint_usage_daily`: each endpoint's usage per day and traffic kind, with history.

`GET /api/v1/endpoint/{endpoint_id}/stats/daily?start_date=&end_date=` (docs.emnify.com, "Retrieve daily
usage statistics for an endpoint") answers one entry per day: `date`, and per kind (`data`, `sms`,
`sat_geo_data`, `sat_geo_sms`) an object with `volume`, `volume_tx`, `volume_rx` (MB for data, messages
for SMS; decimal strings or numbers), `cost` (deprecated for data), `currency` and `traffic_type` where the
kind has them, or null. Without dates it answers the current month; `start_date` alone six months from it;
`end_date` alone the month of that date.

The connector asks with both dates (inclusive), in windows of at most six calendar months (the one span
the reference mentions), so a sync from the saved date minus the lookback to today is one request per
endpoint. The reference states no maximum for a range with both dates: if the API refuses a window
(422 InvalidQueryCriteria), the rest of the sync asks month by month instead. Days outside the requested
window are dropped, so a day is emitted once per sync whatever the API's reading of a range.

The last day asked for is tomorrow by our UTC clock, not today: the reference does not say in which time
zone emnify dates its days, and a vendor's clock or calendar day can run ahead of ours (a zone east of UTC,
or a few minutes of skew at midnight). A day that does not exist yet is simply not in the answer, and a
saved date up to a day ahead of our clock is believed, not clamped. Nor does the reference say whether an
`end_date` after emnify's today is accepted: if a window reaching past our today is refused (422
InvalidQueryCriteria), it is asked again ending today, and the rest of the sync asks up to today only.

Incremental on `date`, per endpoint, re-reading `daily_lookback_days` (default 2) before the saved date:
late records can still change those days. A day older than the lookback is not read again, so it is final.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Set, Tuple

import pendulum
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction

from source_usage.framework.cursors import Partition, PerPartitionCursor
from source_usage.framework.endpoint import Endpoint, expect_list
from source_usage.framework.error_handling import json_body
from source_usage.framework.errors import UsageError
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.values import calendar_date, decimal_number, observed_at
from source_usage.framework.windows import parse_timestamp

KINDS = ("data", "sms", "sat_geo_data", "sat_geo_sms")
UNITS = {"data": "MB", "sms": "SMS", "sat_geo_data": "MB", "sat_geo_sms": "SMS"}
WINDOW_MONTHS = 6
DAY_AHEAD = timedelta(days=1)  # how far emnify's calendar day may run ahead of our UTC clock
INVALID_QUERY_CRITERIA = 1301

DateWindow = Tuple[date, date]  # both ends included


def add_months(day: date, months: int) -> date:
    moved = pendulum.date(day.year, day.month, day.day).add(months=months)
    return date(moved.year, moved.month, moved.day)


def date_windows(first: date, last: date, months: int = WINDOW_MONTHS, by_calendar_month: bool = False) -> List[DateWindow]:
    """[first, last] in consecutive windows: each at most `months` calendar months long (ending the day
    before the same day `months` later), or each within one calendar month."""
    windows: List[DateWindow] = []
    start = first
    while start <= last:
        if by_calendar_month:
            end = add_months(start.replace(day=1), 1) - timedelta(days=1)
        else:
            end = add_months(start, months) - timedelta(days=1)
        end = min(end, last)
        windows.append((start, end))
        start = end + timedelta(days=1)
    return windows


def daily_records(body: Any, partition: Partition, response: requests.Response, observed: str, final_before: date) -> Iterator[dict]:
    """One record per day and kind the API reports as a non-empty object, within the requested window."""
    first, last = partition["window"]
    for entry in expect_list(body, "emnify", response, "daily statistics"):
        if not isinstance(entry, Mapping):
            raise UsageError("emnify: a daily statistics entry is not an object", FailureType.system_error)
        day_text = calendar_date(entry.get("date"), "date")
        if day_text is None:
            continue
        day = date.fromisoformat(day_text)
        if not first <= day <= last:
            continue
        for kind in KINDS:
            usage = entry.get(kind)
            if not isinstance(usage, Mapping) or not usage:
                continue
            traffic_type = usage.get("traffic_type") if isinstance(usage.get("traffic_type"), Mapping) else {}
            currency = usage.get("currency") if isinstance(usage.get("currency"), Mapping) else {}
            yield {
                "endpoint_id": partition["endpoint_id"],
                "date": day_text,
                "traffic_kind": kind,
                "volume": decimal_number(usage.get("volume"), f"{kind}.volume"),
                "volume_tx": decimal_number(usage.get("volume_tx"), f"{kind}.volume_tx"),
                "volume_rx": decimal_number(usage.get("volume_rx"), f"{kind}.volume_rx"),
                "unit": traffic_type.get("unit") or UNITS[kind],
                "cost": decimal_number(usage.get("cost"), f"{kind}.cost"),
                "currency": currency.get("code"),
                "observed_at": observed,
                "is_final": day < final_before,
            }


class EmnifyEndpointUsageDaily(UsageStream[PerPartitionCursor]):
    """Usage per endpoint, day and traffic kind; one partition (and state) per endpoint of this shard."""

    name = "emnify_endpoint_usage_daily"
    primary_key = ["endpoint_id", "date", "traffic_kind"]
    cursor_field = "date"
    records_sync_time = True

    def __init__(self, vendor: Any, sync: Any, directory: Any, lookback: timedelta) -> None:
        super().__init__(vendor, sync)
        self.directory = directory
        self.lookback = lookback
        self._month_by_month = threading.Event()  # the API refused a longer range once: ask month by month
        self._up_to_today = threading.Event()  # the API refused a range ending after our today once
        self._refused: Set[Tuple[Any, DateWindow]] = set()
        self.endpoint = Endpoint(
            "endpoint/{endpoint_id}/stats/daily",
            records=self.records_of,
            query=lambda partition: {"start_date": partition["window"][0].isoformat(), "end_date": partition["window"][1].isoformat()},
            max_pages=1,
            overrides={**directory.overrides, 422: self._range_refused},
            on_ignored=self._ignored,
        )

    feeds_ledger = True

    def make_cursor(self) -> PerPartitionCursor:
        return PerPartitionCursor("date", ["endpoint_id"], clock=lambda: datetime.now(timezone.utc) + DAY_AHEAD)

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        from source_usage.vendors.emnify.statistics import kind_rows

        start = f"{record['date']}T00:00:00Z"
        end = f"{(date.fromisoformat(record['date']) + timedelta(days=1)).isoformat()}T00:00:00Z"
        return kind_rows(self.directory, record, record["traffic_kind"], "day", start, end, self.name, cost=record.get("cost"), currency=record.get("currency"))

    def partitions(self, run: StreamRun[PerPartitionCursor]) -> Iterable[Partition]:
        return self.directory.endpoint_partitions()

    def first_day(self, partition: Partition, run: StreamRun[PerPartitionCursor]) -> date:
        first = self.sync.start_date.date()
        saved = run.cursor.value_for(partition)
        if saved is not None:
            first = max(first, parse_timestamp(saved).date() - self.lookback)
        return first

    def read_partition(self, partition: Partition, run: StreamRun[PerPartitionCursor]) -> Iterator[dict]:
        if self.directory.is_gone(partition["endpoint_id"]):
            return  # its statistics answered 404 in this sync: deleted after it was listed
        now = datetime.now(timezone.utc)
        today = now.date()
        last_day = today if self._up_to_today.is_set() else (now + DAY_AHEAD).date()
        pending = date_windows(self.first_day(partition, run), last_day, by_calendar_month=self._month_by_month.is_set())
        while pending:
            window = pending.pop(0)
            yield from self.vendor.records(self.endpoint, {**partition, "window": window})
            if (partition["endpoint_id"], window) not in self._refused:
                continue
            if window[1] > today:  # perhaps only for reaching past emnify's today: ask up to ours
                if not self._up_to_today.is_set():
                    self._up_to_today.set()
                    run.logger.warning(f"{self.name}: emnify refused the range {window[0]} to {window[1]}; asking up to today ({today}) from now on")
                pending = date_windows(window[0], today, by_calendar_month=self._month_by_month.is_set())
                continue
            last = pending[-1][1] if pending else window[1]
            pending = date_windows(window[0], last, by_calendar_month=True)
            if pending[0] == window:  # a window within one month was refused: there is nothing shorter to ask
                raise UsageError(
                    f"emnify: GET endpoint/{partition['endpoint_id']}/stats/daily refused the range {window[0]} to {window[1]} "
                    f"(422 InvalidQueryCriteria)",
                    FailureType.system_error,
                )
            if not self._month_by_month.is_set():
                self._month_by_month.set()
                run.logger.warning(f"{self.name}: emnify refused the range {window[0]} to {window[1]}; asking month by month from now on")

    def records_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        observed = observed_at(response)
        final_before = parse_timestamp(observed).date() - self.lookback
        return daily_records(body, partition, response, observed, final_before)

    def _ignored(self, response: requests.Response, partition: Partition) -> None:
        if response.status_code == 422:
            self._refused.add((partition["endpoint_id"], partition["window"]))
        else:
            self.directory.endpoint_gone(response, partition)

    def _range_refused(self, response: requests.Response) -> Optional[ErrorResolution]:
        """422 InvalidQueryCriteria for a window: the API takes shorter ranges; anything else is a failure."""
        try:
            body = json_body(response)
        except ValueError:
            return None
        if isinstance(body, Mapping) and body.get("error_code") == INVALID_QUERY_CRITERIA:
            return ErrorResolution(ResponseAction.IGNORE, None, None)
        return None
