"""The one concurrency layer: bounded channels between threads, a partition pool and per-vendor feeds.

* `Channel` is a bounded queue whose producers give up (raise `Stopped`) once the consumer is gone, so no
  thread blocks forever on a full queue after a sync stopped.
* `PartitionPool` reads a stream's partitions (networks, endpoints, time windows) with a few threads and
  yields, in the calling thread, each partition's record batches and then its completion. Partitions may
  finish in any order; a partition's completion always comes after all of its batches, which is what
  lets a cursor checkpoint safely.
* `VendorFeed` runs one vendor's streams, in order, on a thread of its own and hands their events to
  whoever reads the stream (the CDK reads the streams one after another; the vendors' rate limits are
  independent, so their reads overlap instead of queueing).

Memory stays flat whatever the size of a stream: at most `BATCH_RECORDS` records per batch, a bounded
number of batches per channel.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generator, Generic, Iterable, Iterator, List, Mapping, Optional, Sequence, TypeVar, Union

T = TypeVar("T")
P = TypeVar("P")

BATCH_RECORDS = 500  # records handed from one thread to another at a time
POLL_SECONDS = 0.1  # how often a blocked producer or consumer looks at the stop flag


class Stopped(Exception):
    """The other side of a channel went away."""


class Channel(Generic[T]):
    """A bounded queue that stops blocking once `stop` is set."""

    def __init__(self, capacity: int, stop: threading.Event) -> None:
        self._queue: "queue.Queue[T]" = queue.Queue(maxsize=max(1, capacity))
        self._stop = stop

    def put(self, item: T) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue
        raise Stopped()

    def poll(self, timeout: float) -> Optional[T]:
        """The next item, or None if none arrived within `timeout` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def get(self) -> T:
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        raise Stopped()


# ----- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch(Generic[P]):
    """Records of one partition, in the order they were read."""

    partition: P
    records: List[Any]


@dataclass(frozen=True)
class PartitionDone(Generic[P]):
    """Every record of the partition was handed over; `result` is what its reader returned."""

    partition: P
    result: Any


@dataclass(frozen=True)
class Failure:
    error: BaseException


PoolEvent = Union[Batch[P], PartitionDone[P]]
PartitionReader = Callable[[P], Generator[List[Any], None, Any]]


class PartitionPool:
    """Reads partitions with at most `max_workers` threads; with one worker, inline in the caller's thread."""

    def __init__(self, max_workers: int, thread_name: str = "partition") -> None:
        self.max_workers = max(1, max_workers)
        self._thread_name = thread_name

    def run(self, partitions: Iterable[P], read: PartitionReader) -> Iterator[PoolEvent]:
        if self.max_workers == 1:
            return self._inline(partitions, read)
        return self._threaded(partitions, read)

    @staticmethod
    def _inline(partitions: Iterable[P], read: PartitionReader) -> Iterator[PoolEvent]:
        for partition in partitions:
            pages = read(partition)
            while True:
                try:
                    records = next(pages)
                except StopIteration as end:
                    yield PartitionDone(partition, end.value)
                    break
                yield Batch(partition, records)

    def _threaded(self, partitions: Iterable[P], read: PartitionReader) -> Iterator[PoolEvent]:
        stop = threading.Event()
        events: Channel[Union[Batch, PartitionDone, Failure]] = Channel(2 * self.max_workers, stop)
        free_workers = threading.Semaphore(self.max_workers)

        def work(partition: P) -> None:
            try:
                pages = read(partition)
                try:
                    while True:
                        if stop.is_set():
                            return
                        try:
                            records = next(pages)
                        except StopIteration as end:
                            events.put(PartitionDone(partition, end.value))
                            return
                        events.put(Batch(partition, records))
                finally:
                    pages.close()
            except Stopped:
                return
            except BaseException as error:  # re-raised in the caller's thread
                try:
                    events.put(Failure(error))
                except Stopped:
                    return
            finally:
                free_workers.release()

        executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=self._thread_name)
        source = iter(partitions)
        exhausted = False
        started = finished = 0
        try:
            while True:
                # Start a partition whenever a worker is free: never more in flight than workers.
                while not exhausted and free_workers.acquire(blocking=False):
                    try:
                        partition = next(source)
                    except StopIteration:
                        exhausted = True
                        free_workers.release()
                        break
                    except BaseException:
                        free_workers.release()
                        raise
                    executor.submit(work, partition)
                    started += 1
                if exhausted and finished == started:
                    return
                event = events.poll(0.05)
                if event is None:
                    continue
                if isinstance(event, Failure):
                    raise event.error
                if isinstance(event, PartitionDone):
                    finished += 1
                yield event
        finally:
            stop.set()
            executor.shutdown(wait=True, cancel_futures=True)


# ----- per-vendor feeds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    records: List[Any]


@dataclass(frozen=True)
class Checkpoint:
    """The stream's state once every record before this event was handed on."""

    state: Mapping[str, Any]


@dataclass(frozen=True)
class Ended:
    pass


StreamEvent = Union[Records, Checkpoint, Ended, Failure]


class StreamProducer:
    """What a feed runs for one stream: its name and a generator of its events (`Records`, `Checkpoint`).
    A silent producer is read for its side effects only (the usage ledger of a stream nobody selected):
    its events are not handed to a reader."""

    def __init__(self, name: str, events: Callable[[], Iterator[StreamEvent]], silent: bool = False) -> None:
        self.name = name
        self.events = events
        self.silent = silent


class VendorFeed:
    """Runs one vendor's streams in order on a thread of its own; `events(name)` replays a stream's events.

    The feed's channel is shared by the vendor's streams, which the CDK reads in the same order, so the
    events at its head always belong to the stream being read. A consumer that stops midway (the sync
    failed) discards the rest of its stream, keeping the channel aligned on the next one.
    """

    def __init__(
        self,
        vendor: str,
        producers: Sequence[StreamProducer],
        stop: threading.Event,
        buffered: int = 16,
        on_finished: Optional[Callable[[], None]] = None,
    ) -> None:
        self.vendor = vendor
        self._on_finished = on_finished
        self.names = [producer.name for producer in producers if not producer.silent]
        self._producers = list(producers)
        self._stop = stop
        self._channel: Channel[tuple] = Channel(buffered, stop)
        self._thread = threading.Thread(target=self._produce, name=f"feed-{vendor}", daemon=True)
        self._started = False
        self.failures: Dict[str, BaseException] = {}

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def _produce(self) -> None:
        try:
            for producer in self._producers:
                if producer.silent:
                    self._run_silently(producer)
                    continue
                try:
                    events = producer.events()  # building the stream's run can fail too
                except BaseException as error:  # raised where the CDK reads this stream
                    self._channel.put((producer.name, Failure(error)))
                    continue
                try:
                    for event in events:
                        self._channel.put((producer.name, event))
                    self._channel.put((producer.name, Ended()))
                except Stopped:
                    events.close()  # type: ignore[attr-defined]
                    return
                except BaseException as error:  # raised where the CDK reads this stream
                    self._channel.put((producer.name, Failure(error)))
        except Stopped:
            return
        if self._on_finished is not None:
            try:
                self._on_finished()
            except Exception as problem:  # a summary must never fail a sync
                logging.getLogger("airbyte").warning(f"{self.vendor}: the end-of-sync summary failed: {problem}")

    def _run_silently(self, producer: StreamProducer) -> None:
        try:
            for _ in producer.events():
                if self._stop.is_set():
                    return
        except Exception as error:  # its consumers (the ledger) say what is missing
            self.failures[producer.name] = error
            logging.getLogger("airbyte").warning(f"{self.vendor}: reading {producer.name} for the usage ledger failed: {error}")

    def wait(self) -> None:
        """Until the feed's thread finished (or the sync stopped)."""
        if not self._started:
            self.start()
        while self._thread.is_alive() and not self._stop.is_set():
            self._thread.join(POLL_SECONDS)

    def events(self, name: str) -> Iterator[StreamEvent]:
        """The stream's events as it produced them; a failure is raised here, in the reader's thread."""
        self.start()
        finished = False
        try:
            while True:
                owner, event = self._channel.get()
                if owner != name:
                    raise RuntimeError(f"{self.vendor}: events of {owner} arrived while reading {name}: streams read out of order")
                if isinstance(event, Ended):
                    finished = True
                    return
                if isinstance(event, Failure):
                    finished = True
                    raise event.error
                yield event
        except GeneratorExit:
            # The reader stopped this stream early (the CDK moved on): discard the rest of it, keeping the
            # vendor's channel aligned on its next stream. On any other exit (an interruption) nothing waits.
            while not finished and not self._stop.is_set():
                try:
                    _, event = self._channel.get()
                except Stopped:
                    break
                finished = isinstance(event, (Ended, Failure))
            raise

    def join(self, timeout: float) -> None:
        if self._started:
            self._thread.join(timeout)


def batches(records: Iterable[T], size: int = BATCH_RECORDS) -> Iterator[List[T]]:
    """`records` in lists of at most `size`, built as they are consumed."""
    batch: List[T] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
