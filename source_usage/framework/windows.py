"""Time windows for incremental reads: aligned, bounded in length, clamped to what a vendor keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterator

import pendulum

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, order=True)
class TimeWindow:
    """A half-open interval [start, end) in UTC."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{iso_z(self.start)}, {iso_z(self.end)})"


def iso_z(moment: datetime) -> str:
    """`2026-11-23T12:00:00Z`: ISO 8601 in UTC with a Z, whole seconds unless there is a fraction."""
    moment = moment.astimezone(timezone.utc)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@lru_cache(maxsize=8192)
def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (fast path for the common shapes).

    Cached: a sync sees the same few timestamps over and over (a day's bucket for every client, a minute
    for every endpoint) and checks each record's cursor more than once.
    """
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        parsed = pendulum.parse(value)  # type: ignore[assignment]
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def floor_time(moment: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the epoch at or before `moment` (hour or day boundaries in UTC)."""
    elapsed = (moment - EPOCH) // step
    return EPOCH + elapsed * step


def split_windows(start: datetime, end: datetime, length: timedelta) -> Iterator[TimeWindow]:
    """Consecutive windows of at most `length` covering [start, end)."""
    if length <= timedelta(0):
        raise ValueError("window length must be positive")
    cursor = start
    while cursor < end:
        window_end = min(cursor + length, end)
        yield TimeWindow(cursor, window_end)
        cursor = window_end


def clamp_to_lookback(start: datetime, earliest: datetime) -> tuple[datetime, bool]:
    """`start`, or `earliest` when the vendor cannot look back that far; the flag says whether it clamped."""
    if start < earliest:
        return earliest, True
    return start, False
