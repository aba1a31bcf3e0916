"""`UsageStream`: one vendor stream as an Airbyte stream, read the way the CDK's `Stream.read` designs it.

A vendor module declares a stream by its name, primary key and cursor field, and implements hooks only:

* `partitions(run)`: the independent pieces of the stream (networks, endpoints, time windows);
* `read_partition(partition, run)`: the records of one partition (default: every page of `endpoint`);
* `make_cursor()`: how its state works (`NoCursor`, `PerPartitionCursor`, `WindowedCursor`).

The framework does the rest, the same way for every vendor. A `StreamRun` reads the partitions on a
bounded pool, validates every record against the stream's schema, and closes each partition in its
cursor once all of its records were handed on; a `VendorFeed` runs it ahead, on the vendor's thread.

How this meets the CDK (public API only): the CDK's `Stream.read` asks for `stream_slices()`, calls
`read_records()` for each slice and checkpoints `self.state` after each one. Our slices are checkpoint
intervals: `read_records` emits records until the run says the state advanced, sets `state`, and returns;
the CDK then emits the STATE message. So every checkpoint follows the records it covers, and checkpoints
come as partitions complete, not per record. `unit_tests/test_cdk_contract.py` fails loudly if a CDK
release changes this protocol.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, Generic, Iterable, Iterator, List, Mapping, MutableMapping, Optional, TypeVar, Union

from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, SyncMode, Type
from airbyte_cdk.sources.streams import CheckpointMixin, Stream

from source_usage.framework.concurrency import BATCH_RECORDS, Batch, Checkpoint, PartitionPool, Records, StreamEvent, batches
from source_usage.framework.cursors import NO_CURSOR_STATE, NoCursor, Partition, StreamCursor
from source_usage.framework.endpoint import Endpoint
from source_usage.framework.errors import SchemaViolation
from source_usage.framework.validation import RecordValidator
from source_usage.framework.values import UnreadableValue
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import iso_z, parse_timestamp

if TYPE_CHECKING:
    from source_usage.framework.sync import SyncContext

C = TypeVar("C", bound=StreamCursor)

# A state made of many partitions is large: write it at most this often (and always at the end).
LARGE_STATE_PARTITIONS = 20
LARGE_STATE_CHECKPOINT_SECONDS = 1.0


class FinalCheckpoint(Checkpoint):
    """The last checkpoint of a run: the stream has no more events."""


class UsageStream(Stream, CheckpointMixin, Generic[C]):
    primary_key: Optional[Union[str, List[str]]] = None
    cursor_field: Union[str, List[str]] = []
    endpoint: Optional[Endpoint] = None  # what `read_partition` reads by default
    max_workers: Optional[int] = None  # default: the vendor's
    records_sync_time = False  # keep `synced_at` in the state (how often the sync runs, for quota estimates)
    feeds_ledger = False  # a usage stream whose records become rows of the usage ledger (`ledger_rows`)

    def __init__(self, vendor: VendorConnection, sync: "SyncContext") -> None:
        self.vendor = vendor
        self.sync = sync
        self._state: Mapping[str, Any] = {}
        self._events: Optional[Iterator[StreamEvent]] = None
        self._finished = False
        sync.register(self)

    # ----- what a vendor module implements -----------------------------------------------------------

    def partitions(self, run: "StreamRun[C]") -> Iterable[Partition]:
        """The independent pieces of this stream; default: one."""
        yield {}

    def read_partition(self, partition: Partition, run: "StreamRun[C]") -> Iterable[dict]:
        """The records of one partition; default: every record of every page of `endpoint`."""
        if self.endpoint is None:
            raise NotImplementedError(f"{type(self).__name__} declares neither `endpoint` nor `read_partition`")
        return self.vendor.records(self.endpoint, partition)

    def make_cursor(self) -> C:
        return NoCursor()  # type: ignore[return-value]

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterable[Dict[str, Any]]:
        """The usage ledger's rows for one of this stream's records (see `framework.ledger`)."""
        raise NotImplementedError(f"{self.name} does not feed the usage ledger")

    # ----- the Airbyte stream ------------------------------------------------------------------------

    @property
    def vendor_name(self) -> str:
        return self.vendor.name

    @property
    def workers(self) -> int:
        return self.vendor.settings.max_workers or self.max_workers or self.vendor.max_workers

    @property
    def state(self) -> MutableMapping[str, Any]:
        return dict(self._state)

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self._state = dict(value or {})

    def required_fields(self) -> List[str]:
        """Fields every record must carry, not null: the primary key and the cursor."""
        keys = [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key or [])
        cursor = [self.cursor_field] if isinstance(self.cursor_field, str) and self.cursor_field else []
        return [field for field in keys + cursor if isinstance(field, str)]

    def stream_slices(
        self, *, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        """Checkpoint intervals: the next one starts after `read_records` returned at a checkpoint."""
        self._events = self.sync.events_for(self, sync_mode, self._state)
        self._finished = False
        interval = 0
        while not self._finished:
            yield {"checkpoint": interval}
            interval += 1

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Any]:
        events = self._events
        if events is None or self._finished:
            return
        name = self.name
        for event in events:
            if isinstance(event, Records):
                # Records were validated by the run: build their messages here rather than have the CDK copy
                # and transform each one again.
                emitted_at = time.time_ns() // 1_000_000
                for record in event.records:
                    yield AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream=name, data=record, emitted_at=emitted_at))
            elif isinstance(event, Checkpoint):
                self._state = event.state
                if isinstance(event, FinalCheckpoint):
                    self._finished = True
                    for _ in events:  # the stream's end marker: leave the vendor's feed on its next stream
                        pass
                return
        self._finished = True


class StreamRun(Generic[C]):
    """One stream's read in one sync: its cursor (loaded from the saved state), partitions and events."""

    def __init__(self, stream: UsageStream[C], sync_mode: SyncMode, saved_state: Optional[Mapping[str, Any]], logger: logging.Logger) -> None:
        self.stream = stream
        self.sync_mode = sync_mode
        self.logger = logger
        self.saved_state: Mapping[str, Any] = saved_state if isinstance(saved_state, Mapping) else {}
        self.cursor: C = stream.make_cursor()
        incremental = sync_mode == SyncMode.incremental and saved_state and saved_state != NO_CURSOR_STATE
        self.cursor.load(saved_state if incremental else None, logger, stream.name)
        self._validator = RecordValidator(stream.name, stream.get_json_schema())
        self._keys = stream.required_fields()
        self._skipped: Counter = Counter()  # records without a key or cursor value, by field
        self._lock = threading.Lock()
        self.sinks: List[Callable[[UsageStream, Partition, List[dict]], None]] = []  # other consumers of the records (the ledger)
        self.on_checkpoint: List[Callable[[Mapping[str, Any]], None]] = []  # who else keeps the run's state (the ledger)

    @property
    def incremental(self) -> bool:
        return self.sync_mode == SyncMode.incremental

    def events(self) -> Iterator[StreamEvent]:
        """Record batches and checkpoints, in an order that never lets a checkpoint pass a record."""
        stream, cursor = self.stream, self.cursor
        pool = PartitionPool(stream.workers, thread_name=stream.name)
        planned: List[Partition] = []
        last_checkpoint = time.monotonic()
        for event in pool.run(self._planned(planned), self._read):
            if isinstance(event, Batch):
                if event.records:
                    yield Records(event.records)
            elif cursor.close_partition(event.partition, event.result):
                if len(cursor) < LARGE_STATE_PARTITIONS or time.monotonic() - last_checkpoint >= LARGE_STATE_CHECKPOINT_SECONDS:
                    last_checkpoint = time.monotonic()
                    yield self._checkpoint(Checkpoint)
        self._report_skipped()
        cursor.saw_every_partition(planned)
        if stream.records_sync_time and self.incremental and isinstance(getattr(cursor, "extra", None), dict):
            cursor.extra["synced_at"] = iso_z(datetime.now(timezone.utc).replace(microsecond=0))
        yield self._checkpoint(FinalCheckpoint)

    def _checkpoint(self, kind: type) -> Checkpoint:
        state = dict(self.cursor.state)
        for keep in self.on_checkpoint:
            keep(state)
        return kind(state)

    def _planned(self, planned: List[Partition]) -> Iterator[Partition]:
        for partition in self.stream.partitions(self):
            planned.append(partition)
            yield partition

    def _read(self, partition: Partition) -> Generator[List[dict], None, Optional[str]]:
        """Validated records of one partition, a batch at a time; returns its greatest cursor value."""
        stream = self.stream
        cursor_field = stream.cursor_field if isinstance(stream.cursor_field, str) and stream.cursor_field else None
        greatest: Optional[str] = None
        greatest_at = None
        validate = self._validator.validate
        should_emit = self.cursor.emit_filter(partition)
        keys = self._keys
        try:
            for batch in batches(stream.read_partition(partition, self), BATCH_RECORDS):
                if any(record.get(field) is None for record in batch for field in keys):
                    batch = self._with_keys(batch)
                for record in batch:
                    validate(record)
                    if cursor_field is not None:
                        moment = parse_timestamp(record[cursor_field])
                        if greatest_at is None or moment > greatest_at:
                            greatest, greatest_at = record[cursor_field], moment
                for sink in self.sinks:
                    sink(stream, partition, batch)
                yield batch if should_emit is None else [record for record in batch if should_emit(record)]
        except UnreadableValue as bad:
            raise SchemaViolation(stream.name, bad.field, bad.value, f"is not {bad.expected}") from None
        return greatest

    def _with_keys(self, batch: List[dict]) -> List[dict]:
        """The records that carry every key and cursor field: one without them could never be deduplicated
        (nor checkpointed), so it is skipped, and counted for one warning at the end of the stream."""
        kept = []
        for record in batch:
            missing = next((field for field in self._keys if record.get(field) is None), None)
            if missing is None:
                kept.append(record)
            else:
                with self._lock:
                    self._skipped[missing] += 1
        return kept

    def _report_skipped(self) -> None:
        for field, count in sorted(self._skipped.items()):
            self.logger.warning(
                f"{self.stream.vendor_name}: {self.stream.name}: skipped {count} record(s) whose {field} (a primary-key or "
                f"cursor field) the API sent as null or left out: such a record cannot be deduplicated or checkpointed"
            )
