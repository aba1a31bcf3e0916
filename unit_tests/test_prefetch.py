"""Vendors are read side by side; each stream's messages still come out whole and in order."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace
from typing import Any, Iterator, List

import pytest
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, Type
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig
from airbyte_cdk.sources.utils.slice_logger import DebugSliceLogger

from source_usage.framework.prefetch import VendorPrefetcher, group_by_vendor


def record(stream: str, value: int) -> AirbyteMessage:
    return AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream=stream, data={"n": value}, emitted_at=0))


class FakeStream:
    def __init__(self, vendor: str, name: str, count: int, fail_after: int = -1, started: List[str] = None) -> None:  # type: ignore[assignment]
        self.vendor = SimpleNamespace(name=vendor)
        self.name = name
        self.count = count
        self.fail_after = fail_after
        self.started = started if started is not None else []
        self.produced = 0

    def read_now(self, *args: Any) -> Iterator[AirbyteMessage]:
        self.started.append(self.name)
        for value in range(self.count):
            if value == self.fail_after:
                raise RuntimeError(f"{self.name} broke")
            self.produced += 1
            yield record(self.name, value)


def start(streams: List[FakeStream], batches: int = 64) -> VendorPrefetcher:
    prefetcher = VendorPrefetcher(buffered_batches=batches)
    planned = [(stream, None, {}) for stream in streams]
    prefetcher.start(group_by_vendor(planned), logging.getLogger("test"), DebugSliceLogger(), None, InternalConfig())
    return prefetcher


def values(messages: Iterator[AirbyteMessage]) -> List[int]:
    return [message.record.data["n"] for message in messages]


def test_given_two_vendors_when_prefetched_then_each_streams_messages_come_out_whole_and_in_order() -> None:
    streams = [FakeStream("a", "a1", 500), FakeStream("a", "a2", 3), FakeStream("b", "b1", 450)]
    prefetcher = start(streams)
    try:
        assert values(prefetcher.messages("a1")) == list(range(500))
        assert values(prefetcher.messages("a2")) == [0, 1, 2]
        assert values(prefetcher.messages("b1")) == list(range(450))
    finally:
        prefetcher.stop()


def test_given_a_second_vendor_when_the_first_is_read_then_the_second_is_already_being_read() -> None:
    started: List[str] = []
    streams = [FakeStream("a", "a1", 10, started=started), FakeStream("b", "b1", 10, started=started)]
    prefetcher = start(streams)
    try:
        deadline = time.time() + 5
        while "b1" not in started and time.time() < deadline:
            time.sleep(0.01)
        assert "b1" in started, "vendor b started without waiting for vendor a to be emitted"
        values(prefetcher.messages("a1"))
        values(prefetcher.messages("b1"))
    finally:
        prefetcher.stop()


def test_given_a_slow_consumer_when_prefetching_then_the_buffer_bounds_how_far_a_vendor_reads_ahead() -> None:
    stream = FakeStream("a", "a1", 100_000)
    prefetcher = start([stream], batches=2)
    try:
        time.sleep(0.3)
        assert stream.produced <= (2 + 2) * 200, "at most the buffered batches, the one being put and the one being built"
        assert len(values(prefetcher.messages("a1"))) == 100_000
    finally:
        prefetcher.stop()


def test_given_a_failing_stream_when_its_messages_are_read_then_the_error_is_raised_there_and_the_next_stream_still_reads() -> None:
    streams = [FakeStream("a", "a1", 10, fail_after=4), FakeStream("a", "a2", 2)]
    prefetcher = start(streams)
    try:
        received: List[int] = []
        with pytest.raises(RuntimeError, match="a1 broke"):
            for message in prefetcher.messages("a1"):
                received.append(message.record.data["n"])
        assert received == [0, 1, 2, 3]
        assert values(prefetcher.messages("a2")) == [0, 1]
    finally:
        prefetcher.stop()


def test_given_a_stream_abandoned_midway_when_the_next_one_is_read_then_the_buffer_is_still_aligned() -> None:
    streams = [FakeStream("a", "a1", 1000), FakeStream("a", "a2", 5)]
    prefetcher = start(streams, batches=2)
    try:
        first = prefetcher.messages("a1")
        next(first)
        first.close()
        assert values(prefetcher.messages("a2")) == list(range(5))
    finally:
        prefetcher.stop()


def test_given_a_stop_when_producers_are_blocked_then_they_end() -> None:
    prefetcher = start([FakeStream("a", "a1", 100_000)], batches=1)
    time.sleep(0.1)
    prefetcher.stop()
    assert not any(thread.is_alive() for thread in threading.enumerate() if thread.name == "prefetch-a")
