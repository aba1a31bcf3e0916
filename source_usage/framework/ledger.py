"""`usage_ledger`: one table of who used how much, when, at what cost, across every vendor.

Each vendor's usage streams turn their records into ledger rows (`ledger_rows`, a hook of `UsageStream`):
one row per (vendor, account, subject, metric, granularity, period start) with the quantity in a common
unit (bytes, messages, units), the cost where the vendor states one, and whether the figure is final. The
ledger is built from the same responses as the vendor streams: its rows are collected while those streams
are read, kept on disk, and emitted when the CDK reaches the ledger (read last). A usage stream the catalog
does not select is still read for the ledger (with the ledger's own saved state), its records not emitted.

The ledger's state holds each source stream's state (`{"sources": {stream: state}}`), so selected alone it
re-reads exactly what its sources would; selected next to them it shares their reads and sends no request
more. (Added to a connection whose usage streams already have state, it has none of its own: its first sync
then reads those sources from their start, which emits their records again under the same keys.)
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional

from source_usage.framework.cursors import StreamCursor
from source_usage.framework.stream import UsageStream
from source_usage.framework.windows import iso_z, parse_timestamp

if TYPE_CHECKING:
    from source_usage.framework.sync import SyncContext
    from source_usage.framework.validation import RecordValidator

LEDGER_STREAM = "usage_ledger"

# Units are converted exactly once, by the vendor modules, with these factors. Where a vendor says "kilobytes"
# or "MB" without saying decimal or binary, the binary convention of network dashboards and mobile operators
# is assumed (the README says which vendors this concerns).
BYTES_PER_KILOBYTE = 1024
BYTES_PER_MEGABYTE = 1024 * 1024


def ledger_row(
    *,
    vendor: str,
    account_id: Any,
    subject_type: str,
    subject_id: Any,
    metric: str,
    quantity: Any,
    unit: str,
    granularity: str,
    period_start: Optional[str],
    period_end: Optional[str],
    is_final: bool,
    observed_at: str,
    source_stream: str,
    subject_name: Optional[str] = None,
    cost: Any = None,
    currency: Optional[str] = None,
) -> Dict[str, Any]:
    return {
        "vendor": vendor,
        "account_id": None if account_id is None else str(account_id),
        "subject_type": subject_type,
        "subject_id": None if subject_id is None else str(subject_id),
        "subject_name": subject_name,
        "metric": metric,
        "quantity": quantity,
        "unit": unit,
        "cost": cost,
        "currency": currency,
        "granularity": granularity,
        "period_start": period_start,
        "period_end": period_end,
        "is_final": is_final,
        "observed_at": observed_at,
        "source_stream": source_stream,
    }


def scaled(value: Any, factor: int) -> Any:
    """`value` (a number or None) times `factor`."""
    return None if value is None else value * factor


def period_end(start: Optional[str], length: timedelta) -> Optional[str]:
    return None if start is None else iso_z(parse_timestamp(start) + length)


class LedgerCursor(StreamCursor):
    """The ledger's state: the state of each source stream it was built from."""

    cursor_field = "period_start"

    def __init__(self) -> None:
        self.sources: Dict[str, Mapping[str, Any]] = {}
        self.extra: Dict[str, Any] = {}

    @property
    def state(self) -> Mapping[str, Any]:
        return {"sources": dict(sorted(self.sources.items()))}

    def load(self, state: Optional[Mapping[str, Any]], logger: Any, stream: str) -> None:
        sources = state.get("sources") if isinstance(state, Mapping) else None
        if not isinstance(sources, Mapping):
            if state:
                logger.warning(f"{stream}: ignoring saved state of an unknown shape; expected {{'sources': {{<stream>: <its state>}}}}")
            sources = {}
        self.sources = {str(name): value for name, value in sources.items() if isinstance(value, Mapping)}

    def close_partition(self, partition: Mapping[str, Any], greatest: Optional[str]) -> bool:
        return False


def saved_source_state(ledger_state: Mapping[str, Any], source: str) -> Optional[Mapping[str, Any]]:
    sources = ledger_state.get("sources") if isinstance(ledger_state, Mapping) else None
    value = sources.get(source) if isinstance(sources, Mapping) else None
    return value if isinstance(value, Mapping) else None


def rows_in_batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[List[Mapping[str, Any]]]:
    batch: List[Mapping[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class LedgerCollector:
    """Collects the ledger's rows while its sources are read (from any worker thread) and each source run's
    latest state, for the ledger stream to emit once every vendor is done."""

    def __init__(self, saved: Mapping[str, Any], validator: "RecordValidator") -> None:
        from source_usage.framework.shared import Spool

        self.saved = saved
        self.spool = Spool(prefix="source-usage-ledger-")
        self.states: Dict[str, Mapping[str, Any]] = {}
        self._validator = validator
        self._lock = threading.Lock()

    def source_state(self, source: str) -> Optional[Mapping[str, Any]]:
        return saved_source_state(self.saved, source)

    def sink(self, stream: "UsageStream", partition: Mapping[str, Any], records: List[dict]) -> None:
        rows = [row for record in records for row in stream.ledger_rows(record)]
        for row in rows:
            self._validator.validate(row)
        self.spool.extend(rows)

    def keep_state(self, source: str) -> "Callable[[Mapping[str, Any]], None]":
        def keep(state: Mapping[str, Any]) -> None:
            with self._lock:
                self.states[source] = state

        return keep

    def final_state(self) -> Mapping[str, Any]:
        with self._lock:
            return {"sources": dict(sorted(self.states.items()))}


class UsageLedger(UsageStream):
    """The usage of every configured vendor in one shape (see the module's docstring and the README)."""

    name = LEDGER_STREAM
    primary_key = ["vendor", "account_id", "subject_type", "subject_id", "metric", "granularity", "period_start"]
    cursor_field = "period_start"

    def __init__(self, sync: "SyncContext") -> None:
        super().__init__(None, sync)  # type: ignore[arg-type]  # built from every vendor, it has none of its own

    @property
    def vendor_name(self) -> str:
        return LEDGER_STREAM

    @property
    def workers(self) -> int:
        return 1

    def make_cursor(self) -> LedgerCursor:
        return LedgerCursor()
