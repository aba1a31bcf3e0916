"""What streams of one sync share: values computed once per key, and records kept on disk for later.

* `OncePerKey` computes a value (a listing: organizations, an organization's networks, a billing period)
  once per key, from any thread, and remembers a failure so that every stream asking for it fails the
  same way instead of asking the API again.
* `Spool` keeps records in a temporary file, so that a stream read later in the sync (a sibling stream
  flattened from the same responses, the usage ledger) does not hold them in memory meanwhile.
"""

from __future__ import annotations

import tempfile
import threading
from typing import Any, Callable, Dict, Generic, Hashable, Iterable, Iterator, Optional, TypeVar

import orjson

from source_usage.framework.errors import UsageError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class OncePerKey(Generic[K, V]):
    """`get(key)` computes `compute(key)` the first time and returns the same value (or raises the same
    failure) every later time. Different keys are computed concurrently; the same key once."""

    def __init__(self, compute: Callable[[K], V]) -> None:
        self._compute = compute
        self._values: Dict[K, Any] = {}
        self._locks: Dict[K, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        with self._lock:
            if key in self._values:
                return self._unwrap(self._values[key])
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._values:
                    return self._unwrap(self._values[key])
            try:
                value: Any = self._compute(key)
            except UsageError as failure:
                value = _Failure(failure)
            with self._lock:
                self._values[key] = value
                self._locks.pop(key, None)
            return self._unwrap(value)

    def put(self, key: K, value: V) -> None:
        """Remember a value another reader computed as a by-product (a listing stream's own read)."""
        with self._lock:
            self._values.setdefault(key, value)

    def known(self, key: K) -> Optional[V]:
        with self._lock:
            value = self._values.get(key)
        return None if value is None or isinstance(value, _Failure) else value

    @staticmethod
    def _unwrap(value: Any) -> Any:
        if isinstance(value, _Failure):
            error = value.error
            if isinstance(error, UsageError):
                raise UsageError(error.message or str(error), error.failure_type)
            raise error
        return value


class Spool:
    """Records appended in order to a temporary file and read back once, in the same order."""

    def __init__(self, prefix: str = "source-usage-") -> None:
        self._file = tempfile.TemporaryFile(prefix=prefix)
        self._lock = threading.Lock()
        self.count = 0

    def extend(self, records: Iterable[Any]) -> None:
        lines = b"".join(orjson.dumps(record) + b"\n" for record in records)
        if lines:
            with self._lock:
                self._file.write(lines)
                self.count += lines.count(b"\n")

    def drain(self) -> Iterator[Any]:
        """Every record kept, then the file is closed."""
        with self._lock:
            self._file.seek(0)
            try:
                for line in self._file:
                    yield orjson.loads(line)
            finally:
                self._file.close()

    def close(self) -> None:
        self._file.close()


class SharedResponses(Generic[K, V]):
    """A value per key that `consumers` readers each take once (two streams flattened from the same
    statistics snapshot): the first reader computes it, the others read the copy kept on disk, which is
    forgotten once every consumer took it. A computation that fails is not kept: the next reader tries again.
    """

    def __init__(self, compute: Callable[[K], V], consumers: int) -> None:
        self._compute = compute
        self._consumers = max(1, consumers)
        self._index: Dict[K, list] = {}  # key -> [offset, length, takes left]
        self._locks: Dict[K, threading.Lock] = {}
        self._lock = threading.Lock()
        self._file: Optional[Any] = None

    def take(self, key: K) -> V:
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            kept = self._take_kept(key)
            if kept is not _MISSING:
                return kept  # type: ignore[return-value]
            value = self._compute(key)
            if self._consumers > 1:
                self._keep(key, value, self._consumers - 1)
            return value

    def _take_kept(self, key: K) -> Any:
        with self._lock:
            entry = self._index.get(key)
            if entry is None:
                return _MISSING
            entry[2] -= 1
            if entry[2] <= 0:
                del self._index[key]
                self._locks.pop(key, None)
            assert self._file is not None
            self._file.seek(entry[0])
            return orjson.loads(self._file.read(entry[1]))

    def _keep(self, key: K, value: V, takes: int) -> None:
        body = orjson.dumps(value)
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="source-usage-shared-")
            offset = self._file.seek(0, 2)
            self._file.write(body)
            self._index[key] = [offset, len(body), takes]


_MISSING = object()
