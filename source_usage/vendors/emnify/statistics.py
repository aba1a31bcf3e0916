"""The two streams flattened from one endpoint's statistics snapshot (`GET /endpoint/{id}/stats`).

* `emnify_endpoint_usage_monthly`: one record per endpoint, month and traffic type from `last_month` and
  `current_month`. A row is emitted again whenever its `last_updated` changed, tracked per (month, traffic
  type): the data row updated at 11:30 after the SMS row was updated at 12:00 is not lost. `last_month` is
  a closed calendar month (final); `current_month` is not.
* `emnify_endpoint_usage_last_hour`: one record per endpoint, traffic type and minute the snapshot reports
  (the official example has 59, not 60). Labels are `HH:MM` in UTC and are placed in the hour up to the
  response's `Date` (two minutes of tolerance either side for clock differences); a snapshot whose labels
  cannot be placed there is warned about once. The newest minute may still be accumulating: it is emitted
  with `is_final: false` and emitted again (final, or changed) by the next sync; every older minute is
  final and emitted once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from airbyte_cdk.models import FailureType

from source_usage.framework.cursors import Partition, PerPartitionCursor, StreamCursor, VersionedCursor
from source_usage.framework.errors import UsageError
from source_usage.framework.ledger import BYTES_PER_MEGABYTE, scaled
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.values import decimal_number, instant
from source_usage.framework.windows import iso_z, parse_timestamp

PERIODS = ("last_month", "current_month")
FINAL_PERIODS = {"last_month"}
VOLUME_FIELDS = ("volume", "volume_tx", "volume_rx")
LABEL_TOLERANCE = timedelta(minutes=2)
HOUR = timedelta(hours=1)
LOGGER = logging.getLogger("airbyte.emnify")


class EmnifyStatsStream(UsageStream):
    """One stream flattened from the snapshot; one partition (and state) per endpoint of this shard."""

    records_sync_time = True

    def __init__(self, vendor: Any, sync: Any, directory: Any) -> None:
        super().__init__(vendor, sync)
        self.directory = directory

    def flatten(self, snapshot: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        raise NotImplementedError

    def partitions(self, run: StreamRun) -> Iterable[Partition]:
        return self.directory.endpoint_partitions()

    def read_partition(self, partition: Partition, run: StreamRun) -> Iterable[dict]:
        snapshot = self.directory.snapshots.take(str(partition["endpoint_id"]))
        if snapshot.get("gone"):
            return iter(())
        return self.flatten(snapshot, partition["endpoint_id"])


class EmnifyEndpointUsageMonthly(EmnifyStatsStream):
    """Volume and cost per endpoint, month and traffic type (`last_month` and `current_month`)."""

    name = "emnify_endpoint_usage_monthly"
    primary_key = ["endpoint_id", "month", "traffic_type_id"]
    cursor_field = "last_updated"
    feeds_ledger = True

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        kind = TRAFFIC_KINDS.get(record.get("traffic_type_id"))
        if kind is None:
            return
        currency = record.get("currency") if isinstance(record.get("currency"), Mapping) else {}
        month = record["month"]
        yield from kind_rows(
            self.directory, record, kind, "month", month, iso_z(_next_month(parse_timestamp(month))), self.name,
            cost=record.get("cost"), currency=currency.get("code"),
        )

    def make_cursor(self) -> VersionedCursor:
        return VersionedCursor(
            "last_updated",
            ["endpoint_id"],
            key_of=lambda record: f"{record['month']}/{record['traffic_type_id']}",
            version_of=lambda record: f"{record['last_updated']}/{'final' if record['is_final'] else 'open'}",
        )

    def flatten(self, snapshot: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        return monthly_records(snapshot["body"], endpoint_id, snapshot["observed_at"])


class EmnifyEndpointUsageLastHour(EmnifyStatsStream):
    """Received (`rx`) and transmitted (`tx`) volume per endpoint, traffic type and minute of the last hour."""

    name = "emnify_endpoint_usage_last_hour"
    primary_key = ["endpoint_id", "traffic_type", "minute"]
    cursor_field = "minute"

    def make_cursor(self) -> "LastHourCursor":
        return LastHourCursor()

    def flatten(self, snapshot: Mapping[str, Any], endpoint_id: Any) -> Iterator[dict]:
        return minute_records(
            snapshot["body"].get("last_hour"), endpoint_id, parse_timestamp(snapshot["as_of"]), snapshot["observed_at"], self.directory.warn_once
        )


# ----- the usage ledger ------------------------------------------------------------------------------------

TRAFFIC_KINDS = {5: "data", 6: "sms"}  # emnify's traffic type ids
KIND_METRICS = {
    # kind: (unit, factor, metric of the total, of what the device sent, of what it received)
    "data": ("bytes", BYTES_PER_MEGABYTE, "data_total_bytes", "data_sent_bytes", "data_received_bytes"),
    "sms": ("messages", 1, "sms_count", "sms_sent_count", "sms_received_count"),
    "sat_geo_data": ("bytes", BYTES_PER_MEGABYTE, "satellite_data_total_bytes", "satellite_data_sent_bytes", "satellite_data_received_bytes"),
    "sat_geo_sms": ("messages", 1, "satellite_sms_count", "satellite_sms_sent_count", "satellite_sms_received_count"),
}


def kind_rows(
    directory: Any, record: Mapping[str, Any], kind: str, granularity: str, start: str, end: str, source: str,
    cost: Any = None, currency: Optional[str] = None,
) -> Iterator[dict]:
    """The ledger rows of one endpoint's volume of one kind in one period: the total (with its cost), what
    the device transmitted (`volume_tx`, sent) and what it received (`volume_rx`), converted once to bytes
    (emnify's MB times 1,048,576) or counted in messages."""
    unit, factor, total, sent, received = KIND_METRICS[kind]
    for metric, field in ((total, "volume"), (sent, "volume_tx"), (received, "volume_rx")):
        is_total = metric == total
        yield directory.ledger_row(
            record,
            metric=metric,
            quantity=scaled(record.get(field), factor),
            unit=unit,
            cost=cost if is_total else None,
            currency=currency if is_total and cost is not None else None,
            granularity=granularity,
            period_start=start,
            period_end=end,
            source_stream=source,
        )


def _next_month(moment: datetime) -> datetime:
    return (moment.replace(day=1) + timedelta(days=32)).replace(day=1)


# ----- flattening -------------------------------------------------------------------------------------------


def monthly_records(body: Mapping[str, Any], endpoint_id: Any, observed: str) -> Iterator[dict]:
    """One record per period and traffic type present, volumes as numbers, instants in UTC."""
    for period in PERIODS:
        usage = body.get(period)
        if not isinstance(usage, Mapping):  # absent without traffic (some APIs send [] or null instead)
            continue
        for entry in usage.values():
            if not isinstance(entry, Mapping):
                continue
            record = dict(entry)
            record.setdefault("endpoint_id", endpoint_id)
            for field in VOLUME_FIELDS:
                record[field] = decimal_number(record.get(field), field)
            record["cost"] = decimal_number(record.get("cost"), "cost")
            record["month"] = instant(record.get("month"), "month")
            record["last_updated"] = instant(record.get("last_updated"), "last_updated")
            record["period"] = period
            record["observed_at"] = observed
            record["is_final"] = period in FINAL_PERIODS
            yield record


def minute_records(
    last_hour: Any, endpoint_id: Any, as_of: datetime, observed: str, warn: Optional[Callable[[str, str], None]] = None
) -> Iterator[dict]:
    """One record per traffic type and minute the snapshot reports, `rx` and `tx` side by side; every minute
    but the newest is final."""
    if not isinstance(last_hour, Mapping):
        return
    series = {kind: (_by_label(values.get("rx")), _by_label(values.get("tx"))) for kind, values in last_hour.items() if isinstance(values, Mapping)}
    labels: Set[str] = {label for rx, tx in series.values() for label in (*rx, *tx)}
    minutes = place_labels(labels, as_of, endpoint_id, warn)
    newest = max(minutes.values(), default=None)
    for kind, (rx, tx) in series.items():
        for label in sorted({**rx, **tx}, key=lambda label: minutes[label]):
            yield {
                "endpoint_id": endpoint_id,
                "traffic_type": kind,
                "minute": iso_z(minutes[label]),
                "rx": decimal_number(rx.get(label), "rx"),
                "tx": decimal_number(tx.get(label), "tx"),
                "observed_at": observed,
                "is_final": minutes[label] != newest,
            }


def place_labels(labels: Iterable[str], as_of: datetime, endpoint_id: Any = None, warn: Optional[Callable[[str, str], None]] = None) -> Dict[str, datetime]:
    """Each `HH:MM` label (UTC) as the minute in the hour up to `as_of` (with a little tolerance either side:
    the newest label may be a minute ahead of the `Date` header). A label that fits nowhere there goes to
    the latest such minute not after `as_of` + tolerance, and `warn(key, message)` is told (the directory
    warns once a sync)."""
    placed: Dict[str, datetime] = {}
    misplaced = False
    for label in labels:
        candidates = [minute for minute in _candidates(label, as_of) if minute <= as_of + LABEL_TOLERANCE]
        fitting = [minute for minute in candidates if minute >= as_of - HOUR - LABEL_TOLERANCE]
        if fitting:
            placed[label] = max(fitting)
        else:
            misplaced = True
            placed[label] = max(candidates)
    if misplaced:
        (warn or _log_warning)(
            "label placement",
            f"emnify: the last_hour labels of endpoint {endpoint_id} do not all fall in the hour before the response's Date "
            f"({iso_z(as_of)}); the connector reads them as UTC minutes and placed them on the latest matching minute",
        )
    return placed


def _log_warning(key: str, message: str) -> None:
    LOGGER.warning(message)


def _candidates(label: str, as_of: datetime) -> List[datetime]:
    try:
        hours, minutes = (int(part) for part in label.split(":"))
        today = as_of.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    except (AttributeError, ValueError):
        raise UsageError(f"emnify: last_hour has a minute label {str(label)[:20]!r}, not HH:MM", FailureType.system_error) from None
    return [today - timedelta(days=1), today, today + timedelta(days=1)]


def _by_label(pairs: Any) -> Dict[str, Any]:
    if not isinstance(pairs, list):
        return {}
    return {pair[0]: pair[1] for pair in pairs if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)}


# ----- the last hour's state ------------------------------------------------------------------------------


class LastHourCursor(StreamCursor):
    """Per endpoint: the newest minute delivered as final (`minute`) and the still-open newest minute's
    values per traffic type (`open`). A final minute after `minute` is emitted; an open one when it is new
    or its values changed. A state of the older shape (`minute` only) re-emits its newest minute once."""

    cursor_field = "minute"

    def __init__(self) -> None:
        self._final = PerPartitionCursor("minute", ["endpoint_id"])
        self._open: Dict[tuple, Dict[str, list]] = {}
        self._started_open: Dict[tuple, Dict[str, list]] = {}
        self._older_shape: Set[tuple] = set()
        self._pending: Dict[tuple, Tuple[Optional[str], Dict[str, list]]] = {}
        self.extra: Dict[str, Any] = {}

    @property
    def state(self) -> Mapping[str, Any]:
        entries = []
        for entry in self._final.state["states"]:
            key = (str(entry["partition"]["endpoint_id"]),)
            entries.append({**entry, "cursor": {**entry["cursor"], "open": dict(sorted(self._open.get(key, {}).items()))}})
        return {**self.extra, "states": entries}

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        self._final.load(state, logger, stream)
        self._open, self._older_shape = {}, set()
        entries = state.get("states") if isinstance(state, Mapping) else None
        for entry in entries if isinstance(entries, list) else ():
            try:
                key = (str(entry["partition"]["endpoint_id"]),)
                cursor = entry["cursor"]
            except (TypeError, KeyError):
                continue
            opened = cursor.get("open") if isinstance(cursor, Mapping) else None
            if isinstance(opened, Mapping):
                self._open[key] = {str(kind): list(values) for kind, values in opened.items() if isinstance(values, list) and len(values) == 3}
            else:
                self._older_shape.add(key)
        self._started_open = {key: dict(values) for key, values in self._open.items()}

    def emit_filter(self, partition: Partition) -> Optional[Callable[[Mapping[str, Any]], bool]]:
        key = self._final.key(partition)
        delivered = self._final.value_for(partition)
        final_after = parse_timestamp(delivered) if delivered else None
        if final_after is not None and key in self._older_shape:
            final_after -= timedelta(minutes=1)
        opened = self._started_open.get(key, {})
        newest_final: List[Optional[str]] = [None]
        still_open: Dict[str, list] = {}
        self._pending[key] = (None, still_open)

        def should_emit(record: Mapping[str, Any]) -> bool:
            minute = parse_timestamp(record["minute"])
            if record["is_final"]:
                if newest_final[0] is None or minute > parse_timestamp(newest_final[0]):
                    newest_final[0] = record["minute"]
                    self._pending[key] = (newest_final[0], still_open)
                return final_after is None or minute > final_after
            values = [record["minute"], record.get("rx"), record.get("tx")]
            still_open[str(record["traffic_type"])] = values
            return opened.get(str(record["traffic_type"])) != values

        return should_emit

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        key = self._final.key(partition)
        newest_final, still_open = self._pending.pop(key, (None, {}))
        changed = self._final.close_partition(partition, newest_final) if newest_final else False
        if still_open != self._open.get(key, {}):
            self._open[key] = still_open
            changed = True
        return changed

    def saw_every_partition(self, partitions: Sequence[Partition]) -> bool:
        changed = self._final.saw_every_partition(partitions)
        live = {self._final.key(partition) for partition in partitions}
        for key in [key for key in self._open if key not in live]:
            del self._open[key]
            changed = True
        return changed

    def __len__(self) -> int:
        return len(self._final)
