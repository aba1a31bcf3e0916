"""concurrency.py: bounded channels, the partition pool and the per-vendor feeds.

Overlap is proven by events (each reader waits inside for the other to arrive), never by timing; the
timeouts below only turn a hang into a failure."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Dict, Generator, Iterator, List

import pytest

from source_usage.framework.concurrency import (
    Batch,
    Channel,
    Checkpoint,
    PartitionDone,
    PartitionPool,
    Records,
    Stopped,
    StreamProducer,
    VendorFeed,
    batches,
)

HANG = 10.0  # seconds after which a wait that should have been satisfied fails the test


def listed(partition: str, count: int = 2) -> Generator[List[Any], None, str]:
    for index in range(count):
        yield [f"{partition}{index}"]
    return f"{partition}-done"


# ----- channel ---------------------------------------------------------------------------------------


def test_given_items_when_put_then_they_come_out_in_order() -> None:
    channel: Channel[int] = Channel(3, threading.Event())
    for item in (1, 2, 3):
        channel.put(item)
    assert [channel.get(), channel.get(), channel.poll(0.01)] == [1, 2, 3]
    assert channel.poll(0.0) is None


def test_given_a_stopped_channel_when_used_then_both_sides_give_up() -> None:
    stop = threading.Event()
    channel: Channel[int] = Channel(1, stop)
    stop.set()
    with pytest.raises(Stopped):
        channel.put(1)
    with pytest.raises(Stopped):
        channel.get()


def test_given_a_producer_blocked_on_a_full_channel_when_the_consumer_stops_then_it_gives_up() -> None:
    stop = threading.Event()
    channel: Channel[int] = Channel(0, stop)  # capacity at least 1
    channel.put(1)
    outcome: List[BaseException] = []
    blocked = threading.Event()

    def produce() -> None:
        blocked.set()
        try:
            channel.put(2)
        except Stopped as stopped:
            outcome.append(stopped)

    producer = threading.Thread(target=produce)
    producer.start()
    assert blocked.wait(HANG)
    stop.set()
    producer.join(HANG)
    assert not producer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    assert channel.poll(0.0) == 1  # the second item never went in


# ----- partition pool --------------------------------------------------------------------------------


def test_given_one_worker_when_partitions_are_read_then_inline_each_batch_then_its_completion() -> None:
    threads: List[str] = []

    def read(partition: str) -> Generator[List[Any], None, str]:
        threads.append(threading.current_thread().name)
        return (yield from listed(partition))

    events = list(PartitionPool(1).run(["a", "b"], read))
    assert events == [
        Batch("a", ["a0"]),
        Batch("a", ["a1"]),
        PartitionDone("a", "a-done"),
        Batch("b", ["b0"]),
        Batch("b", ["b1"]),
        PartitionDone("b", "b-done"),
    ]
    assert threads == [threading.current_thread().name] * 2


def test_given_zero_workers_when_a_pool_is_made_then_it_has_one() -> None:
    assert PartitionPool(0).max_workers == 1
    assert list(PartitionPool(0).run(["a"], lambda p: listed(p, 1))) == [Batch("a", ["a0"]), PartitionDone("a", "a-done")]


def test_given_two_workers_when_two_partitions_are_read_then_both_are_inside_their_reader_at_once() -> None:
    inside = {"a": threading.Event(), "b": threading.Event()}

    def read(partition: str) -> Generator[List[Any], None, str]:
        inside[partition].set()
        other = "b" if partition == "a" else "a"
        if not inside[other].wait(HANG):
            raise AssertionError(f"partition {other} never started while {partition} was being read")
        yield [partition]
        return partition

    events = list(PartitionPool(2).run(["a", "b"], read))
    assert sorted(event.partition for event in events if isinstance(event, PartitionDone)) == ["a", "b"]


def test_given_a_pool_when_partitions_are_read_then_they_run_off_the_callers_thread_named_after_the_stream() -> None:
    names: List[str] = []

    def read(partition: str) -> Generator[List[Any], None, None]:
        names.append(threading.current_thread().name)
        yield [partition]

    list(PartitionPool(2, thread_name="meraki_usage").run(["a", "b", "c"], read))
    assert len(names) == 3
    assert all(name.startswith("meraki_usage") for name in names)


def test_given_interleaving_partitions_when_read_then_each_completion_comes_after_all_of_its_batches() -> None:
    partitions = [f"p{index}" for index in range(6)]
    events = list(PartitionPool(3).run(partitions, lambda p: listed(p, 5)))
    assert len(events) == 6 * 6
    for partition in partitions:
        positions = [position for position, event in enumerate(events) if event.partition == partition]
        own = [events[position] for position in positions]
        assert own == [Batch(partition, [f"{partition}{index}"]) for index in range(5)] + [PartitionDone(partition, f"{partition}-done")]


def test_given_a_partition_whose_reader_yields_nothing_when_read_then_only_its_completion_arrives() -> None:
    def read(partition: str) -> Generator[List[Any], None, int]:
        return 0
        yield []  # pragma: no cover

    assert list(PartitionPool(2).run(["a"], read)) == [PartitionDone("a", 0)]
    assert list(PartitionPool(2).run([], read)) == []


def test_given_a_failing_worker_when_read_then_its_exception_is_raised_in_the_consumer() -> None:
    boom = ValueError("boom in b")

    def read(partition: str) -> Generator[List[Any], None, None]:
        yield [partition]
        if partition == "b":
            raise boom

    with pytest.raises(ValueError) as failure:
        list(PartitionPool(2).run(["a", "b", "c"], read))
    assert failure.value is boom


def test_given_a_failing_inline_reader_when_read_then_its_exception_is_raised_in_the_consumer() -> None:
    def read(partition: str) -> Generator[List[Any], None, None]:
        raise KeyError(partition)
        yield []  # pragma: no cover

    with pytest.raises(KeyError):
        list(PartitionPool(1).run(["a"], read))


def test_given_endless_partitions_when_the_consumer_stops_then_every_worker_stops_and_closes_its_reader() -> None:
    closed = {"a": threading.Event(), "b": threading.Event()}
    started = {"a": threading.Event(), "b": threading.Event()}

    def read(partition: str) -> Generator[List[Any], None, None]:
        started[partition].set()
        try:
            while True:
                yield [partition]
        finally:
            closed[partition].set()

    events = PartitionPool(2).run(["a", "b"], read)
    assert isinstance(next(events), Batch)
    assert started["a"].wait(HANG) and started["b"].wait(HANG)
    events.close()  # returns once the workers are shut down
    assert closed["a"].is_set() and closed["b"].is_set()


def test_given_readers_referenced_elsewhere_when_the_consumer_stops_then_the_pool_itself_closes_them() -> None:
    made: List[Generator[List[Any], None, None]] = []
    closed: List[str] = []

    def endless(partition: str) -> Generator[List[Any], None, None]:
        try:
            while True:
                yield [partition]
        finally:
            closed.append(partition)

    def read(partition: str) -> Generator[List[Any], None, None]:
        made.append(endless(partition))  # kept alive here: only an explicit close() ends it
        return made[-1]

    events = PartitionPool(2).run(["a"], read)
    assert next(events) == Batch("a", ["a"])
    events.close()
    assert closed == ["a"]


def test_given_a_failure_when_raised_then_the_other_workers_are_stopped_too() -> None:
    closed = threading.Event()
    started = threading.Event()

    def read(partition: str) -> Generator[List[Any], None, None]:
        if partition == "bad":
            assert started.wait(HANG)
            raise RuntimeError("bad partition")
        started.set()
        try:
            while True:
                yield [partition]
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="bad partition"):
        for _ in PartitionPool(2).run(["endless", "bad"], read):
            pass
    assert closed.is_set()


# ----- vendor feeds ----------------------------------------------------------------------------------


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    """The sync's stop flag, set by itself after HANG seconds: a reader that would wait forever fails instead."""
    flag = threading.Event()
    timer = threading.Timer(HANG, flag.set)
    timer.daemon = True
    timer.start()
    yield flag
    timer.cancel()


def producer(name: str, *events: Any, fail: BaseException = None) -> StreamProducer:  # type: ignore[assignment]
    def run() -> Iterator[Any]:
        yield from events
        if fail is not None:
            raise fail

    return StreamProducer(name, run)


def test_given_a_vendors_streams_when_read_in_order_then_each_replays_its_own_events(stop: threading.Event) -> None:
    feed = VendorFeed(
        "acme",
        [producer("a", Records([1]), Checkpoint({"s": 1}), Records([2])), producer("b", Records([3]), Checkpoint({"s": 2}))],
        stop,
    )
    assert feed.names == ["a", "b"]
    assert list(feed.events("a")) == [Records([1]), Checkpoint({"s": 1}), Records([2])]
    assert list(feed.events("b")) == [Records([3]), Checkpoint({"s": 2})]
    feed.join(HANG)


def test_given_a_stream_that_fails_when_read_then_its_failure_is_raised_in_the_reader_and_the_next_stream_still_runs(stop: threading.Event) -> None:
    boom = ValueError("a broke")
    feed = VendorFeed("acme", [producer("a", Records([1]), fail=boom), producer("b", Records([2]))], stop)
    replay = feed.events("a")
    assert next(replay) == Records([1])
    with pytest.raises(ValueError) as failure:
        next(replay)
    assert failure.value is boom
    assert list(feed.events("b")) == [Records([2])]


def test_given_streams_read_out_of_order_when_read_then_it_says_so(stop: threading.Event) -> None:
    feed = VendorFeed("acme", [producer("a", Records([1])), producer("b", Records([2]))], stop)
    with pytest.raises(RuntimeError, match="^acme: events of a arrived while reading b: streams read out of order$"):
        list(feed.events("b"))


def test_given_a_reader_that_stops_midway_when_the_next_stream_is_read_then_the_rest_was_discarded(stop: threading.Event) -> None:
    feed = VendorFeed("acme", [producer("a", Records([1]), Records([2]), Records([3])), producer("b", Records([4]))], stop)
    replay = feed.events("a")
    assert next(replay) == Records([1])
    replay.close()
    assert list(feed.events("b")) == [Records([4])]


def test_given_a_feed_when_it_runs_then_its_streams_are_produced_on_the_vendors_own_thread(stop: threading.Event) -> None:
    names: List[str] = []

    def run() -> Iterator[Any]:
        names.append(threading.current_thread().name)
        yield Records([1])

    feed = VendorFeed("acme", [StreamProducer("a", run)], stop)
    assert list(feed.events("a")) == [Records([1])]
    assert names == ["feed-acme"]


def test_given_a_feed_when_started_twice_then_it_runs_once(stop: threading.Event) -> None:
    runs: List[int] = []

    def run() -> Iterator[Any]:
        runs.append(1)
        yield Records([1])

    feed = VendorFeed("acme", [StreamProducer("a", run)], stop)
    feed.start()
    feed.start()
    assert list(feed.events("a")) == [Records([1])]
    feed.join(HANG)
    assert runs == [1]


def test_given_a_producer_running_ahead_when_the_sync_stops_then_it_abandons_its_stream() -> None:
    stop = threading.Event()
    closed = threading.Event()
    made: List[Iterator[Any]] = []

    def endless() -> Iterator[Any]:
        try:
            count = 0
            while True:
                count += 1
                yield Records([count])
        finally:
            closed.set()

    def events() -> Iterator[Any]:
        made.append(endless())  # kept alive here: only an explicit close() ends it
        return made[-1]

    feed = VendorFeed("acme", [StreamProducer("a", events), producer("b", Records(["never"]))], stop, buffered=1)
    replay = feed.events("a")
    assert next(replay) == Records([1])
    stop.set()
    replay.close()
    feed.join(HANG)
    assert not feed._thread.is_alive()
    assert closed.is_set()


def test_given_a_feed_never_started_when_joined_then_nothing_happens() -> None:
    VendorFeed("acme", [], threading.Event()).join(0.0)


# ----- batches ----------------------------------------------------------------------------------------


def test_given_records_when_batched_then_lists_of_at_most_the_size_in_order() -> None:
    assert list(batches(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batches(range(4), 2)) == [[0, 1], [2, 3]]
    assert list(batches([], 2)) == []


def test_given_the_default_size_when_batched_then_500_records_a_batch() -> None:
    assert [len(batch) for batch in batches(range(1001))] == [500, 500, 1]


def test_given_a_lazy_source_when_batched_then_records_are_pulled_only_as_batches_are_taken() -> None:
    pulled: Dict[str, int] = {"count": 0}

    def source() -> Iterator[int]:
        for value in range(10):
            pulled["count"] += 1
            yield value

    lazy = batches(source(), 3)
    assert next(lazy) == [0, 1, 2]
    assert pulled["count"] == 3


# ----- silent producers (read for the usage ledger), the end-of-sync hook, waiting for a feed -------------


def test_given_a_silent_producer_when_the_feed_runs_then_it_is_read_without_events_and_the_next_stream_follows(stop: threading.Event) -> None:
    read: List[Any] = []

    def run() -> Iterator[Any]:
        read.append("silent ran")
        yield Records([1])
        read.append("silent finished")

    feed = VendorFeed("acme", [StreamProducer("hidden", run, silent=True), producer("b", Records([2]))], stop)
    assert feed.names == ["b"]
    assert list(feed.events("b")) == [Records([2])]
    assert read == ["silent ran", "silent finished"]
    assert feed.failures == {}


def test_given_a_silent_producer_that_fails_when_the_feed_runs_then_the_failure_is_kept_and_logged_and_the_next_stream_follows(
    stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    boom = ValueError("the vendor broke")
    hidden = producer("hidden", Records([1]), fail=boom)
    hidden.silent = True
    feed = VendorFeed("acme", [hidden, producer("b", Records([2]))], stop)
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        assert list(feed.events("b")) == [Records([2])]
        feed.wait()

    assert feed.failures == {"hidden": boom}
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("airbyte", "acme: reading hidden for the usage ledger failed: the vendor broke")]


def test_given_a_silent_producer_when_the_sync_stops_then_it_stops_reading() -> None:
    stop = threading.Event()
    pulled: List[int] = []

    def run() -> Iterator[Any]:
        for count in range(1, 1000):
            pulled.append(count)
            if count == 3:
                stop.set()
            yield Records([count])

    feed = VendorFeed("acme", [StreamProducer("hidden", run, silent=True)], stop)
    feed.start()
    feed.join(HANG)
    assert pulled == [1, 2, 3]


def test_given_an_end_of_sync_hook_when_every_stream_was_produced_then_it_runs_once_on_the_feeds_thread(stop: threading.Event) -> None:
    heard: List[str] = []
    feed = VendorFeed("acme", [producer("a", Records([1]))], stop, on_finished=lambda: heard.append(threading.current_thread().name))
    assert list(feed.events("a")) == [Records([1])]
    feed.wait()
    assert heard == ["feed-acme"]


def test_given_an_end_of_sync_hook_that_fails_when_it_runs_then_a_warning_says_so_and_nothing_else_fails(
    stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("no quota figures")

    feed = VendorFeed("acme", [producer("a", Records([1]))], stop, on_finished=broken)
    with caplog.at_level(logging.WARNING, logger="airbyte"):
        assert list(feed.events("a")) == [Records([1])]
        feed.wait()
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("airbyte", "acme: the end-of-sync summary failed: no quota figures")]


def test_given_a_feed_never_started_when_waited_for_then_it_runs_to_its_end(stop: threading.Event) -> None:
    ran: List[str] = []

    def run() -> Iterator[Any]:
        ran.append("ran")
        yield from ()

    feed = VendorFeed("acme", [StreamProducer("hidden", run, silent=True)], stop)
    feed.wait()
    assert ran == ["ran"]
    assert not feed._thread.is_alive()
    assert feed._thread.daemon  # a feed never keeps the process alive


def test_given_a_stopped_sync_when_a_feed_is_waited_for_then_the_wait_ends_without_the_feed() -> None:
    stop = threading.Event()
    release = threading.Event()

    def run() -> Iterator[Any]:
        release.wait(HANG)
        yield from ()

    feed = VendorFeed("acme", [StreamProducer("hidden", run, silent=True)], stop)
    feed.start()
    stop.set()
    feed.wait()  # returns although the feed's thread still runs
    assert feed._thread.is_alive()
    release.set()
    feed.join(HANG)


def test_given_a_stream_whose_run_cannot_be_built_when_read_then_the_failure_is_raised_in_the_reader() -> None:
    stop = threading.Event()
    timer = threading.Timer(2.0, stop.set)  # the reader gives up after 2 s instead of hanging the test run
    timer.daemon = True
    timer.start()
    boom = ValueError("the saved state cannot be loaded")

    def cannot_start() -> Iterator[Any]:
        raise boom  # raised when the producer's events are asked for, before any event

    try:
        feed = VendorFeed("acme", [StreamProducer("a", cannot_start), producer("b", Records([2]))], stop)
        with pytest.raises(ValueError) as failure:
            list(feed.events("a"))
        assert failure.value is boom
        assert list(feed.events("b")) == [Records([2])]
    finally:
        timer.cancel()


def test_given_two_workers_busy_when_more_partitions_wait_then_the_next_is_taken_only_once_a_worker_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    pulled: List[str] = []
    both_inside = threading.Barrier(3)
    gate = threading.Event()
    waiting_for_events = threading.Event()  # the consumer has stopped starting partitions and waits for events
    real_poll = Channel.poll

    def poll(self: Channel, timeout: float) -> Any:
        waiting_for_events.set()
        return real_poll(self, timeout)

    monkeypatch.setattr(Channel, "poll", poll)

    def partitions() -> Iterator[str]:
        for name in ("a", "b", "c", "d"):
            pulled.append(name)
            yield name

    def read(partition: str) -> Generator[List[Any], None, str]:
        if partition in ("a", "b"):
            both_inside.wait(HANG)
            gate.wait(HANG)
        yield [partition]
        return partition

    results: List[Any] = []
    consumer = threading.Thread(target=lambda: results.extend(PartitionPool(2).run(partitions(), read)))
    consumer.start()
    both_inside.wait(HANG)  # a and b are being read; neither can finish
    assert waiting_for_events.wait(HANG)
    assert pulled == ["a", "b"]
    gate.set()
    consumer.join(HANG)
    assert sorted(event.partition for event in results if isinstance(event, PartitionDone)) == ["a", "b", "c", "d"]


class TimingOutOnce(queue.Queue):  # type: ignore[type-arg]
    """A queue whose first put and first get time out, as a real one does while the other side is slow."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.timeouts: List[str] = []

    def put(self, item: Any, block: bool = True, timeout: Any = None) -> None:
        if "put" not in self.timeouts:
            self.timeouts.append("put")
            raise queue.Full
        super().put(item, block, timeout)

    def get(self, block: bool = True, timeout: Any = None) -> Any:
        if "get" not in self.timeouts:
            self.timeouts.append("get")
            raise queue.Empty
        return super().get(block, timeout)


def test_given_a_channel_whose_put_and_get_time_out_once_when_used_then_both_try_again_until_they_succeed() -> None:
    channel: Channel[int] = Channel(1, threading.Event())
    slow = TimingOutOnce(1)
    channel._queue = slow

    channel.put(7)
    assert channel.get() == 7
    assert slow.timeouts == ["put", "get"]


def test_given_workers_slower_than_the_pools_poll_when_partitions_are_read_then_the_pool_keeps_waiting_for_them(monkeypatch: pytest.MonkeyPatch) -> None:
    real_poll = Channel.poll
    polls: List[float] = []

    def nothing_yet_the_first_time(self: Channel, timeout: float) -> Any:
        polls.append(timeout)
        return None if len(polls) == 1 else real_poll(self, timeout)

    monkeypatch.setattr(Channel, "poll", nothing_yet_the_first_time)
    events = list(PartitionPool(2).run(["a", "b"], lambda partition: listed(partition, 1)))

    assert sorted(event.partition for event in events if isinstance(event, PartitionDone)) == ["a", "b"]
    assert sorted(event.records[0] for event in events if isinstance(event, Batch)) == ["a0", "b0"]
