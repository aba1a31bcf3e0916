"""Per-stream state: what has been delivered, updated only when a partition completes.

A partition (one network, one endpoint, one time window...) is read in full or not at all as far as state
is concerned: the cursor learns the greatest cursor value of a partition only when its last record was
handed on, so a checkpoint never moves past a record that was not emitted, whatever order concurrent
partitions finish in.

* `PerPartitionCursor` keeps one value per partition (a network's last usage timestamp, an endpoint's last
  minute), in the `{"states": [{"partition": ..., "cursor": ...}]}` shape Airbyte uses for partitioned
  streams. Partitions that no longer exist are dropped from it when a sync listed them all.
* `WindowedCursor` keeps one value for the stream and advances it only over the contiguous prefix of
  completed time windows (ordered by a key function of the partition).

A saved state can never stop a stream: a value later than now is clamped to now with a warning; a value
before 1970, of the wrong type, or a state of an unknown shape is ignored with a warning (the stream
starts from the configured start date).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Mapping, MutableMapping, Optional, Sequence, Set

from source_usage.framework.windows import EPOCH, iso_z, parse_timestamp

NO_CURSOR_STATE = {"__ab_no_cursor_state_message": True}
Partition = Mapping[str, Any]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StreamCursor(ABC):
    """The state of one stream in one sync."""

    cursor_field: Optional[str] = None
    extra: Dict[str, Any]  # keys a stream keeps in its state beside the cursor (set by the cursors that have state)

    @property
    @abstractmethod
    def state(self) -> Mapping[str, Any]:
        """The state to checkpoint now."""

    @abstractmethod
    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        """Adopt a saved state; anything unusable in it is ignored with one warning."""

    def emit_filter(self, partition: Partition) -> Optional[Callable[[Mapping[str, Any]], bool]]:
        """Which of `partition`'s records to emit, decided once per partition: None means all of them."""
        return None

    @abstractmethod
    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        """Record that every record of `partition` was handed on; True if the state changed."""

    def saw_every_partition(self, partitions: Sequence[Partition]) -> bool:
        """The sync listed all of the stream's partitions: forget those that no longer exist. True if the
        state changed."""
        return False

    def __len__(self) -> int:
        """How many partitions the state holds (a large state is checkpointed less often)."""
        return 1


class NoCursor(StreamCursor):
    """A full-refresh snapshot: nothing to remember between syncs."""

    @property
    def state(self) -> Mapping[str, Any]:
        return NO_CURSOR_STATE

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        pass

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        return False


class _Guard:
    """Checks a saved cursor value: a timestamp between 1970 and now (a later one is clamped to now)."""

    def __init__(self, parse: Callable[[str], datetime], clock: Clock, stream: str, logger: logging.Logger) -> None:
        self._parse = parse
        self._clock = clock
        self._stream = stream
        self._logger = logger
        self.clamped = 0
        self.rejected = 0

    def value(self, raw: Any) -> Optional[str]:
        if not isinstance(raw, str):
            self.rejected += 1
            return None
        try:
            moment = self._parse(raw)
        except (TypeError, ValueError, OverflowError, AttributeError):
            self.rejected += 1
            return None
        if moment < EPOCH:
            self.rejected += 1
            return None
        now = self._clock()
        if moment > now:
            self.clamped += 1
            return iso_z(now.replace(microsecond=0))
        return raw

    def report(self) -> None:
        if self.clamped:
            self._logger.warning(
                f"{self._stream}: the saved state holds {self.clamped} cursor value(s) later than now; reading from now "
                f"(minus the stream's lookback) instead, so that recent records are not skipped"
            )
        if self.rejected:
            self._logger.warning(
                f"{self._stream}: ignoring {self.rejected} saved cursor value(s) that are not timestamps between 1970 and "
                f"now; those partitions sync from the start date"
            )


class PerPartitionCursor(StreamCursor):
    """One cursor value per partition, keyed by the partition's identifying fields."""

    def __init__(
        self,
        cursor_field: str,
        partition_fields: Sequence[str],
        emit_only_newer: bool = False,
        parse: Callable[[str], datetime] = parse_timestamp,
        clock: Clock = utc_now,
    ) -> None:
        self.cursor_field = cursor_field
        self._partition_fields = tuple(partition_fields)
        self._emit_only_newer = emit_only_newer
        self._parse = parse
        self._clock = clock
        self._values: MutableMapping[tuple, str] = {}
        self._started: Mapping[tuple, str] = {}
        self.extra: Dict[str, Any] = {}  # other keys a stream keeps in its state (the time of the sync)

    @property
    def partition_fields(self) -> Sequence[str]:
        return self._partition_fields

    def key(self, partition: Partition) -> tuple:
        return tuple(str(partition[field]) for field in self._partition_fields)

    def value_for(self, partition: Partition) -> Optional[str]:
        """The cursor value this partition had when the sync started."""
        return self._started.get(self.key(partition))

    @property
    def state(self) -> Mapping[str, Any]:
        return {
            **self.extra,
            "states": [
                {"partition": dict(zip(self._partition_fields, key)), "cursor": {self.cursor_field: value}}
                for key, value in sorted(self._values.items())
            ]
        }

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        self._values = {}
        entries = state.get("states") if isinstance(state, Mapping) else None
        if state and not isinstance(entries, list):
            logger.warning(
                f"{stream}: ignoring saved state of an unknown shape and syncing from the start date; expected "
                f"{{'states': [{{'partition': {{{', '.join(self._partition_fields)}}}, 'cursor': {{'{self.cursor_field}': <timestamp>}}}}]}}"
            )
        guard = _Guard(self._parse, self._clock, stream, logger)
        for entry in entries if isinstance(entries, list) else ():
            try:
                partition, cursor = entry["partition"], entry["cursor"]
                key = tuple(_scalar(partition[field]) for field in self._partition_fields)
                raw = cursor[self.cursor_field]
            except (TypeError, KeyError, ValueError):
                guard.rejected += 1
                continue
            value = guard.value(raw)
            if value is not None:
                self._values[key] = value
        guard.report()
        self._started = dict(self._values)

    def emit_filter(self, partition: Partition) -> Optional[Callable[[Mapping[str, Any]], bool]]:
        previous = self._started.get(self.key(partition)) if self._emit_only_newer else None
        if previous is None:
            return None
        delivered_up_to, parse, field = self._parse(previous), self._parse, self.cursor_field
        return lambda record: parse(record[field]) > delivered_up_to

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        key = self.key(partition)
        current = self._values.get(key)
        if greatest is None or (current is not None and self._parse(greatest) <= self._parse(current)):
            return False
        self._values[key] = greatest
        return True

    def saw_every_partition(self, partitions: Sequence[Partition]) -> bool:
        live: Set[tuple] = {self.key(partition) for partition in partitions}
        gone = [key for key in self._values if key not in live]
        for key in gone:
            del self._values[key]
        return bool(gone)

    def __len__(self) -> int:
        return len(self._values)


class WindowedCursor(StreamCursor):
    """One cursor value per stream, advanced over the contiguous prefix of completed windows.

    `order` gives each partition's position (0, 1, 2... in time order); a window that completes early
    waits for the ones before it, so the saved value never skips a window still in flight.
    """

    def __init__(
        self,
        cursor_field: str,
        order: Callable[[Partition], int],
        parse: Callable[[str], datetime] = parse_timestamp,
        clock: Clock = utc_now,
    ) -> None:
        self.cursor_field = cursor_field
        self._order = order
        self._parse = parse
        self._clock = clock
        self._value: Optional[str] = None
        self._started: Optional[str] = None
        self._completed: Dict[int, Optional[str]] = {}
        self._next_index = 0
        self.extra: Dict[str, Any] = {}  # other keys a stream keeps in its state (a granularity)

    @property
    def value(self) -> Optional[str]:
        """The cursor value when the sync started."""
        return self._started

    @property
    def state(self) -> Mapping[str, Any]:
        return {**self.extra, self.cursor_field: self._value} if self._value is not None else {}

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        self._value = None
        if state:
            raw = state.get(self.cursor_field) if isinstance(state, Mapping) else None
            guard = _Guard(self._parse, self._clock, stream, logger)
            if raw is None and not set(state) <= set(self.extra):
                logger.warning(
                    f"{stream}: ignoring saved state of an unknown shape and syncing from the start date; "
                    f"expected {{'{self.cursor_field}': <timestamp>}}"
                )
            elif raw is not None:
                self._value = guard.value(raw)
                guard.report()
        self._started = self._value
        self._completed = {}
        self._next_index = 0

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        self._completed[self._order(partition)] = greatest
        changed = False
        while self._next_index in self._completed:
            candidate = self._completed.pop(self._next_index)
            self._next_index += 1
            if candidate is not None and (self._value is None or self._parse(candidate) > self._parse(self._value)):
                self._value = candidate
                changed = True
        return changed


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("not a scalar")
    return str(value)


class VersionedCursor(StreamCursor):
    """Per partition, the version of each record it emitted (record key -> version): a record is emitted
    again when its version changed, whatever the partition's other records did.

    For snapshots whose rows change in place (monthly figures per month and traffic type): a data
    row updated at 11:30 after the SMS row was updated at 12:00 is still emitted, which a single
    "newest update per partition" cursor would miss. The state also keeps the greatest cursor value per
    partition; versions of records a snapshot no longer shows are forgotten. A state saved by a cursor that
    kept only that greatest value has no versions: its partitions emit every record once.
    """

    def __init__(
        self,
        cursor_field: str,
        partition_fields: Sequence[str],
        key_of: Callable[[Mapping[str, Any]], str],
        version_of: Callable[[Mapping[str, Any]], str],
        parse: Callable[[str], datetime] = parse_timestamp,
        clock: Clock = utc_now,
    ) -> None:
        self.cursor_field = cursor_field
        self._latest = PerPartitionCursor(cursor_field, partition_fields, parse=parse, clock=clock)
        self._key_of = key_of
        self._version_of = version_of
        self._versions: Dict[tuple, Dict[str, str]] = {}
        self._started: Dict[tuple, Dict[str, str]] = {}
        self._pending: Dict[tuple, Dict[str, str]] = {}
        self.extra: Dict[str, Any] = {}

    def key(self, partition: Partition) -> tuple:
        return self._latest.key(partition)

    @property
    def state(self) -> Mapping[str, Any]:
        entries = []
        for entry in self._latest.state["states"]:
            key = tuple(str(value) for value in entry["partition"].values())
            entries.append({**entry, "cursor": {**entry["cursor"], "versions": dict(sorted(self._versions.get(key, {}).items()))}})
        return {**self.extra, "states": entries}

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        self._latest.load(state, logger, stream)
        self._versions = {}
        for entry in (state or {}).get("states") or () if isinstance(state, Mapping) else ():
            try:
                key = self._latest.key({field: _scalar(entry["partition"][field]) for field in self._latest.partition_fields})
                versions = entry["cursor"].get("versions")
            except (TypeError, KeyError, ValueError, AttributeError):
                continue
            if isinstance(versions, Mapping) and key in self._latest_keys():
                self._versions[key] = {str(name): str(version) for name, version in versions.items() if isinstance(version, str)}
        self._started = {key: dict(versions) for key, versions in self._versions.items()}
        self._pending = {}

    def _latest_keys(self) -> Set[tuple]:
        return {tuple(str(value) for value in entry["partition"].values()) for entry in self._latest.state["states"]}

    def value_for(self, partition: Partition) -> Optional[str]:
        return self._latest.value_for(partition)

    def emit_filter(self, partition: Partition) -> Optional[Callable[[Mapping[str, Any]], bool]]:
        key = self.key(partition)
        delivered = self._started.get(key, {})
        seen: Dict[str, str] = {}
        self._pending[key] = seen
        key_of, version_of = self._key_of, self._version_of

        def should_emit(record: Mapping[str, Any]) -> bool:
            name, version = key_of(record), version_of(record)
            seen[name] = version
            return delivered.get(name) != version

        return should_emit

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        key = self.key(partition)
        changed = self._latest.close_partition(partition, greatest)
        seen = self._pending.pop(key, None)
        if seen is not None and seen != self._versions.get(key, {}):
            self._versions[key] = seen
            changed = True
        return changed

    def saw_every_partition(self, partitions: Sequence[Partition]) -> bool:
        changed = self._latest.saw_every_partition(partitions)
        live = {self.key(partition) for partition in partitions}
        for key in [key for key in self._versions if key not in live]:
            del self._versions[key]
            changed = True
        return changed

    def __len__(self) -> int:
        return len(self._latest)
