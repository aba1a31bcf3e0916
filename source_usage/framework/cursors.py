"""Per-stream state: what has been delivered, updated only when a partition completes.

A partition (one network, one endpoint, one time window...) is read in full or not at all as far as
state is concerned: the cursor learns the greatest cursor value of a partition only when its last
record was emitted, so a checkpoint never moves past a record that was not emitted, whatever order
concurrent partitions finish in.

* `PerPartitionCursor` keeps one value per partition (a network's last usage timestamp, an endpoint's
  last minute), in the `{"states": [{"partition": ..., "cursor": ...}]}` shape Airbyte uses for
  partitioned streams.
* `WindowedCursor` keeps one value for the stream and advances it only over the contiguous prefix of
  completed time windows.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Callable, Mapping, MutableMapping, Optional, Sequence

from source_usage.framework.windows import parse_timestamp

NO_CURSOR_STATE = {"__ab_no_cursor_state_message": True}
Partition = Mapping[str, Any]


class StreamCursor(ABC):
    """The state of one stream."""

    @property
    @abstractmethod
    def state(self) -> Mapping[str, Any]:
        """The state to checkpoint now."""

    @abstractmethod
    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        """Adopt a saved state; a shape this cursor does not know is ignored with one warning."""

    def emit_filter(self, partition: Partition) -> Optional[Callable[[Mapping[str, Any]], bool]]:
        """Which of `partition`'s records to emit, decided once per partition: None means all of them."""
        return None

    @abstractmethod
    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        """Record that every record of `partition` was emitted; True if the state changed."""

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


def _is_later(candidate: str, current: Optional[str], parse: Callable[[str], datetime]) -> bool:
    return current is None or parse(candidate) > parse(current)


class PerPartitionCursor(StreamCursor):
    """One cursor value per partition, keyed by the partition's identifying fields."""

    def __init__(
        self,
        cursor_field: str,
        partition_fields: Sequence[str],
        emit_only_newer: bool = False,
        parse: Callable[[str], datetime] = parse_timestamp,
    ) -> None:
        self.cursor_field = cursor_field
        self._partition_fields = tuple(partition_fields)
        self._emit_only_newer = emit_only_newer
        self._parse = parse
        self._values: MutableMapping[tuple, str] = {}
        self._started: Mapping[tuple, str] = {}

    def _key(self, partition: Partition) -> tuple:
        return tuple(str(partition[field]) for field in self._partition_fields)

    def value_for(self, partition: Partition) -> Optional[str]:
        """The cursor value this partition had when the sync started."""
        return self._started.get(self._key(partition))

    @property
    def state(self) -> Mapping[str, Any]:
        return {
            "states": [
                {"partition": dict(zip(self._partition_fields, key)), "cursor": {self.cursor_field: value}}
                for key, value in sorted(self._values.items())
            ]
        }

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        self._values = {}
        if state:
            entries = state.get("states") if isinstance(state, Mapping) else None
            try:
                for entry in entries:  # type: ignore[union-attr]
                    partition, cursor = entry["partition"], entry["cursor"]
                    value = cursor[self.cursor_field]
                    self._parse(value)
                    self._values[tuple(str(partition[field]) for field in self._partition_fields)] = value
            except (TypeError, KeyError, ValueError, AttributeError):
                logger.warning(
                    f"{stream}: ignoring saved state of an unknown shape and syncing from the start date; "
                    f"expected {{'states': [{{'partition': {{{', '.join(self._partition_fields)}}}, "
                    f"'cursor': {{'{self.cursor_field}': <timestamp>}}}}]}}"
                )
                self._values = {}
        self._started = dict(self._values)

    def emit_filter(self, partition: Partition) -> Optional[Callable[[Mapping[str, Any]], bool]]:
        previous = self._started.get(self._key(partition)) if self._emit_only_newer else None
        if previous is None:
            return None
        delivered_up_to, parse, field = self._parse(previous), self._parse, self.cursor_field
        return lambda record: parse(record[field]) > delivered_up_to

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        key = self._key(partition)
        if greatest is None or not _is_later(greatest, self._values.get(key), self._parse):
            return False
        self._values[key] = greatest
        return True

    def __len__(self) -> int:
        return len(self._values)


class WindowedCursor(StreamCursor):
    """One cursor value per stream, advanced over the contiguous prefix of completed windows.

    Partitions carry a `window_index` (0, 1, 2... in time order); a window that completes early waits
    for the ones before it, so the saved value never skips a window still in flight.
    """

    def __init__(self, cursor_field: str, parse: Callable[[str], datetime] = parse_timestamp) -> None:
        self.cursor_field = cursor_field
        self._parse = parse
        self._value: Optional[str] = None
        self._started: Optional[str] = None
        self._completed: dict[int, Optional[str]] = {}
        self._next_index = 0

    @property
    def value(self) -> Optional[str]:
        """The cursor value when the sync started."""
        return self._started

    @property
    def state(self) -> Mapping[str, Any]:
        return {self.cursor_field: self._value} if self._value is not None else {}

    def load(self, state: Optional[Mapping[str, Any]], logger: logging.Logger, stream: str) -> None:
        self._value = None
        if state:
            value = state.get(self.cursor_field) if isinstance(state, Mapping) else None
            try:
                self._parse(value)  # type: ignore[arg-type]
                self._value = value
            except (TypeError, ValueError, AttributeError):
                logger.warning(
                    f"{stream}: ignoring saved state of an unknown shape and syncing from the start date; "
                    f"expected {{'{self.cursor_field}': <timestamp>}}"
                )
        self._started = self._value
        self._completed = {}
        self._next_index = 0

    def close_partition(self, partition: Partition, greatest: Optional[str]) -> bool:
        self._completed[int(partition["window_index"])] = greatest
        changed = False
        while self._next_index in self._completed:
            candidate = self._completed.pop(self._next_index)
            self._next_index += 1
            if candidate is not None and _is_later(candidate, self._value, self._parse):
                self._value = candidate
                changed = True
        return changed
