"""The partition pool: bounded concurrency, completion only after a partition's last batch, failures raised."""

from __future__ import annotations

import threading
import time
from typing import Generator, List

import pytest

from source_usage.framework.concurrency import Batch, Completed, PartitionPool


def pages_of(partition: int) -> Generator[List[int], None, int]:
    for page in range(3):
        time.sleep(0.001 * (partition % 3))
        yield [partition * 100 + page]
    return partition


@pytest.mark.parametrize("workers", [1, 4])
def test_given_partitions_when_read_then_each_completes_after_all_of_its_batches(workers: int) -> None:
    seen: dict = {}
    completed = []
    for event in PartitionPool(workers).run(range(10), pages_of):
        if isinstance(event, Batch):
            assert event.partition not in completed
            seen.setdefault(event.partition, []).extend(event.records)
        else:
            assert isinstance(event, Completed) and event.result == event.partition
            assert len(seen[event.partition]) == 3
            completed.append(event.partition)
    assert sorted(completed) == list(range(10))


def test_given_a_pool_when_read_then_never_more_partitions_run_than_workers() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def slow(partition: int) -> Generator[List[int], None, None]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        yield [partition]

    list(PartitionPool(3).run(range(12), slow))
    assert peak[0] <= 3


def test_given_a_failing_partition_when_read_then_the_error_is_raised_in_the_consumer() -> None:
    def failing(partition: int) -> Generator[List[int], None, None]:
        yield [partition]
        if partition == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(PartitionPool(4).run(range(8), failing))


def test_given_the_consumer_stops_early_when_closed_then_workers_stop() -> None:
    events = PartitionPool(2).run(range(1000), pages_of)
    next(events)
    events.close()  # must not hang or keep reading all 1000 partitions
