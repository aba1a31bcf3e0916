"""The emulator's sense of elapsed time: what its rate limits and token lifetimes count with.

Every vendor app owns a `Timer` (`app.timer`), real by default. `Emulator(virtual_time=True)` (or
`timer.freeze()`) stops it: from then on time passes for the limits only when a test says so
(`Emulator.pass_time(seconds)`, `timer.advance(seconds)`), so a test can fill a one-second window or a
token bucket with any number of requests however slow the machine is, and refill it exactly.

The data model's calendar (which days of usage exist, the `Date` header) is separate: each app keeps its own
and `advance(steps)` moves it.
"""

from __future__ import annotations

import threading
import time
from typing import Optional, Tuple


class Timer:
    """Monotonic seconds and epoch seconds for rate limits: the real clocks, or a stopped copy of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._virtual: Optional[Tuple[float, float]] = None  # (monotonic, epoch) while frozen

    @property
    def virtual(self) -> bool:
        return self._virtual is not None

    def monotonic(self) -> float:
        with self._lock:
            return self._virtual[0] if self._virtual is not None else time.monotonic()

    def time(self) -> float:
        with self._lock:
            return self._virtual[1] if self._virtual is not None else time.time()

    def freeze(self) -> "Timer":
        """Stop time where it is now (no-op if stopped already)."""
        with self._lock:
            if self._virtual is None:
                self._virtual = (time.monotonic(), time.time())
        return self

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on a stopped timer."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            if self._virtual is None:
                raise RuntimeError("advance() needs a stopped timer: freeze() it first (Emulator(virtual_time=True))")
            monotonic, epoch = self._virtual
            self._virtual = (monotonic + seconds, epoch + seconds)


REAL = Timer()  # for limiters built without an app's timer
