"""A small, bounded thread pool that reads a stream's partitions concurrently.

A partition (a network, an endpoint, a time window) is read by a generator that yields one batch of
records per page and returns a summary (for example its greatest cursor value). Workers hand the
batches to the stream's thread through a bounded queue, so memory stays flat however large the stream
is: at most `max_workers` pages are being parsed and `queue_pages` wait to be emitted. Partitions may
finish in any order; the stream hears of a completion only after every batch of that partition was
handed over, which is what lets its cursor checkpoint safely. The first failure stops the pool and is
raised in the stream's thread. With one worker, partitions are read inline, page by page.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generator, Generic, Iterable, Iterator, List, TypeVar, Union

P = TypeVar("P")
PageReader = Callable[[P], Generator[List[Any], None, Any]]


@dataclass
class Batch(Generic[P]):
    partition: P
    records: List[Any]


@dataclass
class Completed(Generic[P]):
    partition: P
    result: Any


@dataclass
class _Failed:
    error: BaseException


Event = Union[Batch[P], Completed[P]]


class _Stopped(Exception):
    """The consumer went away; the worker abandons its partition."""


class PartitionPool:
    """Reads partitions with at most `max_workers` threads and yields their batches and completions."""

    def __init__(self, max_workers: int, queue_pages: int = 0, thread_name: str = "partition") -> None:
        self.max_workers = max(1, max_workers)
        self._queue_pages = queue_pages or 2 * self.max_workers
        self._thread_name = thread_name

    def run(self, partitions: Iterable[P], read: PageReader) -> Iterator[Event]:
        if self.max_workers == 1:
            return self._inline(partitions, read)
        return self._threaded(partitions, read)

    @staticmethod
    def _inline(partitions: Iterable[P], read: PageReader) -> Iterator[Event]:
        for partition in partitions:
            pages = read(partition)
            while True:
                try:
                    records = next(pages)
                except StopIteration as end:
                    yield Completed(partition, end.value)
                    break
                yield Batch(partition, records)

    def _threaded(self, partitions: Iterable[P], read: PageReader) -> Iterator[Event]:
        events: "queue.Queue[Union[Batch, Completed, _Failed]]" = queue.Queue(maxsize=self._queue_pages)
        stopped = threading.Event()
        free_workers = threading.Semaphore(self.max_workers)

        def hand_over(event: Union[Batch, Completed, _Failed]) -> None:
            while not stopped.is_set():
                try:
                    events.put(event, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stopped()

        def work(partition: P) -> None:
            try:
                pages = read(partition)
                while True:
                    if stopped.is_set():
                        pages.close()
                        return
                    try:
                        records = next(pages)
                    except StopIteration as end:
                        hand_over(Completed(partition, end.value))
                        return
                    hand_over(Batch(partition, records))
            except _Stopped:
                return
            except BaseException as error:  # re-raised in the stream's thread
                try:
                    hand_over(_Failed(error))
                except _Stopped:
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
                    executor.submit(work, partition)
                    started += 1
                if exhausted and finished == started:
                    return
                try:
                    event = events.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(event, _Failed):
                    raise event.error
                if isinstance(event, Completed):
                    finished += 1
                yield event
        finally:
            stopped.set()
            executor.shutdown(wait=True, cancel_futures=True)
