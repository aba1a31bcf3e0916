"""stream.py: `StreamRun` (validated batches, checkpoints only as partitions complete) and `UsageStream`'s
checkpoint-slice protocol with the CDK's `Stream.read` (every STATE follows the records it covers)."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import pytest
import requests_mock
from airbyte_cdk.models import AirbyteMessage, AirbyteStateMessage, ConfiguredAirbyteCatalog, SyncMode, Type
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.state_builder import StateBuilder

from source_usage.framework import stream as stream_module
from source_usage.framework.concurrency import Checkpoint, Records
from source_usage.framework.cursors import NO_CURSOR_STATE, PerPartitionCursor, StreamCursor, WindowedCursor
from source_usage.framework.endpoint import Endpoint
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import SchemaViolation
from source_usage.framework.settings import Settings
from source_usage.framework.stream import LARGE_STATE_PARTITIONS, FinalCheckpoint, StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import instant
from source_usage.framework.vendor import VendorConnection

HANG = 10.0
LOGGER = logging.getLogger("test.stream")
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "networkId": {"type": "string"},
        "id": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "bytes": {"type": "integer"},
    },
}


def usage(network: str, ident: str, ts: str, used: int = 1) -> dict:
    return {"networkId": network, "id": ident, "ts": ts, "bytes": used}


def vendor(workers: int = 1, settings: Settings = Settings()) -> VendorConnection:
    return VendorConnection("toy", "https://api.toy.example/v1", VendorErrors("toy"), max_workers=workers, settings=settings)


def sync() -> SyncContext:
    return SyncContext(datetime(2026, 11, 1, tzinfo=timezone.utc))


class ToyUsage(UsageStream[PerPartitionCursor]):
    """One partition per network; `data` maps a network to its records (or a callable making them)."""

    name = "toy_usage"
    primary_key = ["networkId", "id"]
    cursor_field = "ts"

    def __init__(self, data: Mapping[str, Any], workers: int = 1, emit_only_newer: bool = False, cursor: Optional[Callable[[], StreamCursor]] = None) -> None:
        self.data = data
        self.emit_only_newer = emit_only_newer
        self.cursor_factory = cursor
        super().__init__(vendor(workers), sync())

    def get_json_schema(self) -> Mapping[str, Any]:
        return SCHEMA

    def partitions(self, run: StreamRun) -> Iterable[Mapping[str, Any]]:
        for network in self.data:
            yield {"networkId": network}

    def read_partition(self, partition: Mapping[str, Any], run: StreamRun) -> Iterable[dict]:
        records = self.data[partition["networkId"]]
        return records() if callable(records) else records

    def make_cursor(self) -> Any:
        if self.cursor_factory is not None:
            return self.cursor_factory()
        return PerPartitionCursor("ts", ["networkId"], emit_only_newer=self.emit_only_newer)


class ToySnapshot(UsageStream):
    name = "toy_networks"
    primary_key = "id"

    def get_json_schema(self) -> Mapping[str, Any]:
        return {"type": "object", "properties": {"id": {"type": "string"}}}

    def read_partition(self, partition: Mapping[str, Any], run: StreamRun) -> Iterable[dict]:
        return [{"id": "n1"}, {"id": "n2"}]


def state_of(*entries: Tuple[str, str]) -> dict:
    return {"states": [{"partition": {"networkId": network}, "cursor": {"ts": ts}} for network, ts in entries]}


def run_events(stream: UsageStream, mode: SyncMode = SyncMode.incremental, saved: Any = None) -> List[Any]:
    return list(StreamRun(stream, mode, saved, LOGGER).events())


# ----- StreamRun ----------------------------------------------------------------------------------------


def test_given_partitions_when_run_then_each_checkpoint_follows_the_records_it_covers() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-01T00:00:00Z"), usage("N1", "b", "2026-11-02T00:00:00Z")], "N2": [usage("N2", "c", "2026-11-03T00:00:00Z")]})
    assert run_events(stream) == [
        Records([usage("N1", "a", "2026-11-01T00:00:00Z"), usage("N1", "b", "2026-11-02T00:00:00Z")]),
        Checkpoint(state_of(("N1", "2026-11-02T00:00:00Z"))),
        Records([usage("N2", "c", "2026-11-03T00:00:00Z")]),
        Checkpoint(state_of(("N1", "2026-11-02T00:00:00Z"), ("N2", "2026-11-03T00:00:00Z"))),
        FinalCheckpoint(state_of(("N1", "2026-11-02T00:00:00Z"), ("N2", "2026-11-03T00:00:00Z"))),
    ]


def test_given_records_out_of_time_order_when_run_then_the_partitions_greatest_instant_is_saved() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-03T10:00:00Z"), usage("N1", "b", "2026-11-03T09:00:00-02:00"), usage("N1", "c", "2026-11-02T00:00:00Z")]})
    assert run_events(stream)[-1] == FinalCheckpoint(state_of(("N1", "2026-11-03T09:00:00-02:00")))


def test_given_a_partition_without_records_when_run_then_it_does_not_checkpoint() -> None:
    stream = ToyUsage({"N1": [], "N2": [usage("N2", "a", "2026-11-01T00:00:00Z")]})
    assert run_events(stream) == [
        Records([usage("N2", "a", "2026-11-01T00:00:00Z")]),
        Checkpoint(state_of(("N2", "2026-11-01T00:00:00Z"))),
        FinalCheckpoint(state_of(("N2", "2026-11-01T00:00:00Z"))),
    ]


def test_given_a_saved_state_when_run_incrementally_then_the_cursor_starts_from_it() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-01T00:00:00Z")]})
    run = StreamRun(stream, SyncMode.incremental, state_of(("N1", "2026-11-05T00:00:00Z")), LOGGER)
    assert run.incremental
    assert run.cursor.value_for({"networkId": "N1"}) == "2026-11-05T00:00:00Z"
    assert list(run.events())[-1] == FinalCheckpoint(state_of(("N1", "2026-11-05T00:00:00Z")))


@pytest.mark.parametrize("mode, saved", [(SyncMode.full_refresh, state_of(("N1", "2026-11-05T00:00:00Z"))), (SyncMode.incremental, NO_CURSOR_STATE), (SyncMode.incremental, None)])
def test_given_a_full_refresh_or_no_usable_saved_state_when_run_then_the_cursor_starts_empty(mode: SyncMode, saved: Any) -> None:
    run = StreamRun(ToyUsage({"N1": []}), mode, saved, LOGGER)
    assert run.cursor.value_for({"networkId": "N1"}) is None
    assert run.incremental is (mode == SyncMode.incremental)


def test_given_emit_only_newer_when_run_then_delivered_records_are_dropped_but_the_state_still_moves() -> None:
    stream = ToyUsage(
        {"N1": [usage("N1", "old", "2026-11-01T00:00:00Z"), usage("N1", "new", "2026-11-06T00:00:00Z")], "N2": [usage("N2", "old", "2026-11-01T00:00:00Z")]},
        emit_only_newer=True,
    )
    events = run_events(stream, saved=state_of(("N1", "2026-11-05T00:00:00Z"), ("N2", "2026-11-05T00:00:00Z")))
    assert [event for event in events if isinstance(event, Records)] == [Records([usage("N1", "new", "2026-11-06T00:00:00Z")])]
    assert events[-1] == FinalCheckpoint(state_of(("N1", "2026-11-06T00:00:00Z"), ("N2", "2026-11-05T00:00:00Z")))


def test_given_partitions_that_are_gone_when_the_run_ends_then_the_final_checkpoint_prunes_them() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-06T00:00:00Z")]})
    events = run_events(stream, saved=state_of(("N1", "2026-11-05T00:00:00Z"), ("N9", "2026-11-05T00:00:00Z")))
    assert events[1] == Checkpoint(state_of(("N1", "2026-11-06T00:00:00Z"), ("N9", "2026-11-05T00:00:00Z")))
    assert events[-1] == FinalCheckpoint(state_of(("N1", "2026-11-06T00:00:00Z")))


def test_given_a_record_breaking_the_schema_when_run_then_it_fails_naming_stream_field_and_value_and_nothing_of_its_batch_is_emitted() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-01T00:00:00Z")], "N2": [usage("N2", "b", "2026-11-02T00:00:00Z"), {**usage("N2", "c", "2026-11-02T00:00:00Z"), "bytes": 1.5}]})
    events = StreamRun(stream, SyncMode.incremental, None, LOGGER).events()
    assert next(events) == Records([usage("N1", "a", "2026-11-01T00:00:00Z")])
    assert next(events) == Checkpoint(state_of(("N1", "2026-11-01T00:00:00Z")))
    with pytest.raises(SchemaViolation) as failure:
        next(events)
    assert str(failure.value) == "toy_usage: record field 'bytes' has value 1.5, which is not of type integer"


def test_given_a_null_cursor_value_when_run_then_the_record_is_skipped_with_one_warning_naming_the_field(caplog: pytest.LogCaptureFixture) -> None:
    records = [usage("N1", "a", None), usage("N1", "b", "2026-11-05T00:00:00Z"), usage("N1", "c", None)]  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        events = run_events(ToyUsage({"N1": records}))
    emitted = [record["id"] for event in events if isinstance(event, Records) for record in event.records]
    assert emitted == ["b"]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        "toy: toy_usage: skipped 2 record(s) whose ts (a primary-key or cursor field) the API sent as null or left out: "
        "such a record cannot be deduplicated or checkpointed"
    ]


def test_given_a_record_without_a_primary_key_field_when_run_then_it_is_skipped_and_the_others_checkpoint(caplog: pytest.LogCaptureFixture) -> None:
    record = usage("N1", "a", "2026-11-05T00:00:00Z")
    del record["id"]
    events = run_events(ToyUsage({"N1": [record, usage("N1", "b", "2026-11-04T00:00:00Z")]}))
    assert [record["id"] for event in events if isinstance(event, Records) for record in event.records] == ["b"]
    assert events[-1].state == state_of(("N1", "2026-11-04T00:00:00Z"))


def test_given_a_value_a_vendor_repair_cannot_read_when_run_then_it_fails_as_a_schema_violation_naming_the_field() -> None:
    def records() -> Iterator[dict]:
        yield {**usage("N1", "a", "2026-11-01T00:00:00Z"), "ts": instant("last tuesday", "ts")}

    with pytest.raises(SchemaViolation) as failure:
        run_events(ToyUsage({"N1": records}))
    assert str(failure.value) == "toy_usage: record field 'ts' has value 'last tuesday', which is not an ISO 8601 timestamp"
    assert failure.value.as_airbyte_message().trace.error.stream_descriptor.name == "toy_usage"


def test_given_a_sink_when_run_then_it_sees_every_validated_batch_even_those_filtered_from_the_output() -> None:
    stream = ToyUsage({"N1": [usage("N1", "old", "2026-11-01T00:00:00Z"), usage("N1", "new", "2026-11-06T00:00:00Z")]}, emit_only_newer=True)
    run = StreamRun(stream, SyncMode.incremental, state_of(("N1", "2026-11-05T00:00:00Z")), LOGGER)
    seen: List[Tuple[str, Mapping[str, Any], List[dict]]] = []
    run.sinks.append(lambda stream, partition, batch: seen.append((stream.name, partition, list(batch))))
    list(run.events())
    assert seen == [("toy_usage", {"networkId": "N1"}, [usage("N1", "old", "2026-11-01T00:00:00Z"), usage("N1", "new", "2026-11-06T00:00:00Z")])]


def test_given_a_large_partition_when_run_then_records_are_handed_over_in_batches_of_500() -> None:
    records = [usage("N1", str(index), "2026-11-01T00:00:00Z") for index in range(1201)]
    events = run_events(ToyUsage({"N1": records}))
    assert [len(event.records) for event in events if isinstance(event, Records)] == [500, 500, 201]


def frozen_monotonic(monkeypatch: pytest.MonkeyPatch, step: float) -> None:
    ticks = iter(range(1_000_000))
    monkeypatch.setattr(stream_module, "time", SimpleNamespace(monotonic=lambda: next(ticks) * step, time_ns=time.time_ns))


def test_given_a_state_of_many_partitions_when_time_stands_still_then_it_is_checkpointed_only_while_small(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_monotonic(monkeypatch, step=0.0)
    stream = ToyUsage({f"N{index:02d}": [usage(f"N{index:02d}", "a", "2026-11-01T00:00:00Z")] for index in range(25)})
    events = run_events(stream)
    checkpoints = [event for event in events if type(event) is Checkpoint]
    assert LARGE_STATE_PARTITIONS == 20
    assert [len(checkpoint.state["states"]) for checkpoint in checkpoints] == list(range(1, 20))
    assert len(events[-1].state["states"]) == 25


def test_given_a_state_of_many_partitions_when_a_second_passes_between_closes_then_each_is_checkpointed(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_monotonic(monkeypatch, step=1.0)
    stream = ToyUsage({f"N{index:02d}": [usage(f"N{index:02d}", "a", "2026-11-01T00:00:00Z")] for index in range(22)})
    checkpoints = [event for event in run_events(stream) if type(event) is Checkpoint]
    assert [len(checkpoint.state["states"]) for checkpoint in checkpoints] == list(range(1, 23))


def test_given_concurrent_windows_when_a_later_one_completes_first_then_no_checkpoint_passes_the_earlier_one() -> None:
    later_closed = threading.Event()

    class Watched(WindowedCursor):
        def close_partition(self, partition: Mapping[str, Any], greatest: Optional[str]) -> bool:
            changed = super().close_partition(partition, greatest)
            if partition["networkId"] == "W1":
                later_closed.set()
            return changed

    def earlier() -> Iterator[dict]:
        if not later_closed.wait(HANG):
            raise AssertionError("the later window never completed while the earlier one was read")
        yield usage("W0", "a", "2026-11-01T00:00:00Z")

    stream = ToyUsage(
        {"W0": earlier, "W1": [usage("W1", "b", "2026-11-02T00:00:00Z")]},
        workers=2,
        cursor=lambda: Watched("ts", order=lambda partition: int(partition["networkId"][1:])),
    )
    assert run_events(stream) == [
        Records([usage("W1", "b", "2026-11-02T00:00:00Z")]),
        Records([usage("W0", "a", "2026-11-01T00:00:00Z")]),
        Checkpoint({"ts": "2026-11-02T00:00:00Z"}),
        FinalCheckpoint({"ts": "2026-11-02T00:00:00Z"}),
    ]


def test_given_a_snapshot_stream_when_run_then_its_only_state_is_the_no_cursor_marker() -> None:
    assert run_events(ToySnapshot(vendor(), sync()), SyncMode.full_refresh) == [Records([{"id": "n1"}, {"id": "n2"}]), FinalCheckpoint(NO_CURSOR_STATE)]


# ----- UsageStream -------------------------------------------------------------------------------------


def test_given_a_primary_key_and_a_cursor_when_required_fields_are_asked_then_both_are() -> None:
    assert ToyUsage({}).required_fields() == ["networkId", "id", "ts"]
    assert ToySnapshot(vendor(), sync()).required_fields() == ["id"]


def test_given_worker_settings_when_a_stream_runs_then_the_operator_wins_then_the_stream_then_the_vendor() -> None:
    stream = ToyUsage({})
    stream.vendor = vendor(workers=3)
    assert stream.workers == 3
    stream.max_workers = 2
    assert stream.workers == 2
    stream.vendor = vendor(workers=3, settings=Settings(max_workers=5))
    assert stream.workers == 5


def test_given_a_stream_with_an_endpoint_when_a_partition_is_read_then_every_page_of_it_is() -> None:
    class Listed(ToySnapshot):
        endpoint = Endpoint("networks", records=lambda body, partition, response: body)

        def read_partition(self, partition: Mapping[str, Any], run: StreamRun) -> Iterable[dict]:
            return UsageStream.read_partition(self, partition, run)

    with requests_mock.Mocker() as mock:
        mock.get("https://api.toy.example/v1/networks", json=[{"id": "n7"}])
        assert run_events(Listed(vendor(), sync()), SyncMode.full_refresh)[0] == Records([{"id": "n7"}])


def test_given_a_stream_without_endpoint_or_reader_when_read_then_it_says_what_is_missing() -> None:
    class Bare(ToySnapshot):
        def read_partition(self, partition: Mapping[str, Any], run: StreamRun) -> Iterable[dict]:
            return UsageStream.read_partition(self, partition, run)

    with pytest.raises(NotImplementedError, match="Bare declares neither `endpoint` nor `read_partition`"):
        run_events(Bare(vendor(), sync()), SyncMode.full_refresh)


def test_given_a_stream_when_its_state_is_set_then_a_copy_is_kept_and_given() -> None:
    stream = ToyUsage({})
    saved = state_of(("N1", "2026-11-01T00:00:00Z"))
    stream.state = saved
    given = stream.state
    given["states"] = []
    assert stream.state == saved
    stream.state = None  # type: ignore[assignment]
    assert stream.state == {}


def test_given_a_stream_when_built_then_it_registers_with_its_sync() -> None:
    context = sync()
    stream = ToySnapshot(vendor(), context)
    assert context._streams == {"toy_networks": stream}


# ----- the checkpoint-slice protocol through the CDK's Stream.read -----------------------------------


class ToySource(AbstractSource):
    def __init__(self, *streams: Stream) -> None:
        super().__init__()
        self._streams = list(streams)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        return True, None

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        return self._streams


def configured(name: str, mode: SyncMode) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(ConfiguredAirbyteStreamBuilder().with_name(name).with_sync_mode(mode)).build()


def read(stream: Stream, mode: SyncMode, saved: Optional[Dict[str, Any]] = None) -> List[AirbyteMessage]:
    state: Optional[List[AirbyteStateMessage]] = StateBuilder().with_stream_state(stream.name, saved).build() if saved is not None else None
    return [message for message in ToySource(stream).read(LOGGER, {}, configured(stream.name, mode), state) if message.type in (Type.RECORD, Type.STATE)]


def shown(messages: List[AirbyteMessage]) -> List[Any]:
    return [
        ("record", message.record.data["id"]) if message.type == Type.RECORD else ("state", message.state.stream.stream_state.__dict__)
        for message in messages
    ]


def test_given_an_incremental_read_through_the_cdk_when_partitions_complete_then_a_state_follows_each_and_none_interrupts_a_partition() -> None:
    stream = ToyUsage(
        {
            "N1": [usage("N1", "a", "2026-11-01T00:00:00Z"), usage("N1", "b", "2026-11-02T00:00:00Z")],
            "N2": [usage("N2", "c", "2026-11-03T00:00:00Z"), usage("N2", "d", "2026-11-04T00:00:00Z")],
        }
    )
    assert shown(read(stream, SyncMode.incremental)) == [
        ("record", "a"),
        ("record", "b"),
        ("state", state_of(("N1", "2026-11-02T00:00:00Z"))),
        ("record", "c"),
        ("record", "d"),
        ("state", state_of(("N1", "2026-11-02T00:00:00Z"), ("N2", "2026-11-04T00:00:00Z"))),
        ("state", state_of(("N1", "2026-11-02T00:00:00Z"), ("N2", "2026-11-04T00:00:00Z"))),
    ]


def test_given_a_saved_state_through_the_cdk_when_read_then_the_stream_starts_from_it() -> None:
    stream = ToyUsage({"N1": [usage("N1", "old", "2026-11-01T00:00:00Z"), usage("N1", "new", "2026-11-06T00:00:00Z")]}, emit_only_newer=True)
    assert shown(read(stream, SyncMode.incremental, state_of(("N1", "2026-11-05T00:00:00Z")))) == [
        ("record", "new"),
        ("state", state_of(("N1", "2026-11-06T00:00:00Z"))),
        ("state", state_of(("N1", "2026-11-06T00:00:00Z"))),
    ]


def test_given_records_through_the_cdk_when_emitted_then_they_carry_the_stream_and_the_data_as_built() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-01T00:00:00+00:00", 7)]})
    [record] = [message for message in read(stream, SyncMode.incremental) if message.type == Type.RECORD]
    assert record.record.stream == "toy_usage"
    assert record.record.data == {"networkId": "N1", "id": "a", "ts": "2026-11-01T00:00:00+00:00", "bytes": 7}
    assert record.record.emitted_at > 1_700_000_000_000


def test_given_a_snapshot_when_read_in_full_through_the_cdk_then_records_then_the_no_cursor_state() -> None:
    assert shown(read(ToySnapshot(vendor(), sync()), SyncMode.full_refresh)) == [
        ("record", "n1"),
        ("record", "n2"),
        ("state", {"__ab_no_cursor_state_message": True}),
    ]


def test_given_a_stream_that_fails_midway_when_read_through_the_cdk_then_the_state_never_passes_the_emitted_records() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-01T00:00:00Z")], "N2": [{"networkId": "N2", "id": "b", "ts": "2026-11-02T00:00:00Z", "bytes": "x"}]})
    messages: List[AirbyteMessage] = []
    with pytest.raises(Exception):  # the CDK's summary of the failed streams, at the end of the read
        for message in ToySource(stream).read(LOGGER, {}, configured("toy_usage", SyncMode.incremental), None):
            messages.append(message)
    data = [message for message in messages if message.type in (Type.RECORD, Type.STATE)]
    assert shown(data) == [("record", "a"), ("state", state_of(("N1", "2026-11-01T00:00:00Z")))]
    [error] = [message for message in messages if message.type == Type.TRACE and message.trace.error is not None]
    assert error.trace.error.message == "toy_usage: record field 'bytes' has value 'x', which is not of type integer"


# ----- what a run keeps, names and stamps -----------------------------------------------------------------


class SyncTimed(ToyUsage):
    records_sync_time = True


def test_given_a_stream_that_keeps_its_sync_time_when_run_incrementally_then_the_final_state_has_it_to_the_second() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    final = run_events(SyncTimed({"N1": [usage("N1", "a", "2026-11-01T00:00:00Z")]}))[-1]
    after = datetime.now(timezone.utc)

    synced_at = final.state["synced_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", synced_at)
    assert before <= datetime.strptime(synced_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) <= after
    assert "synced_at" not in run_events(SyncTimed({"N1": []}), SyncMode.full_refresh)[-1].state


@pytest.mark.parametrize("saved, kept", [(state_of(("N1", "2026-11-01T00:00:00Z")), state_of(("N1", "2026-11-01T00:00:00Z"))), (["not", "a", "state"], {}), (None, {})])
def test_given_a_saved_state_when_a_run_is_made_then_only_a_mapping_is_kept_as_its_saved_state(saved: Any, kept: Any) -> None:
    assert StreamRun(ToyUsage({}), SyncMode.incremental, saved, LOGGER).saved_state == kept


def test_given_a_saved_state_of_an_unknown_shape_when_run_then_the_runs_logger_warns_naming_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="test.stream"):
        run_events(ToyUsage({}), SyncMode.incremental, {"ts": "2026-11-01T00:00:00Z"})
    assert [(record.name, record.getMessage().split(";")[0]) for record in caplog.records] == [
        ("test.stream", "toy_usage: ignoring saved state of an unknown shape and syncing from the start date")
    ]


def test_given_several_workers_when_a_stream_runs_then_its_partitions_are_read_on_threads_named_after_it() -> None:
    names: List[str] = []

    def reader() -> List[dict]:
        names.append(threading.current_thread().name)
        return []

    run_events(ToyUsage({"N1": reader, "N2": reader}, workers=2))
    assert len(names) == 2 and all(name.startswith("toy_usage") for name in names)


def test_given_the_greatest_instant_spelled_twice_when_a_partition_closes_then_the_first_spelling_is_saved() -> None:
    stream = ToyUsage({"N1": [usage("N1", "a", "2026-11-02T00:00:00Z"), usage("N1", "b", "2026-11-02T00:00:00.000Z"), usage("N1", "c", "2026-11-01T00:00:00Z")]})
    assert run_events(stream)[-1] == FinalCheckpoint(state_of(("N1", "2026-11-02T00:00:00Z")))


def test_given_a_stream_never_read_when_its_state_is_asked_then_it_is_empty() -> None:
    assert ToyUsage({}).state == {}


def test_given_records_through_the_cdk_when_emitted_then_they_are_stamped_with_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    messages = read(ToyUsage({"N1": [usage("N1", "a", "2026-11-01T00:00:00Z")]}), SyncMode.incremental)
    after = time.time_ns() // 1_000_000
    [stamp] = [message.record.emitted_at for message in messages if message.type == Type.RECORD]
    assert before <= stamp <= after


def test_given_a_stream_read_outside_a_sync_when_its_partitions_run_inline_then_they_run_on_a_feed_named_after_its_vendor() -> None:
    names: List[str] = []

    def reader() -> List[dict]:
        names.append(threading.current_thread().name)
        return []

    read(ToyUsage({"N1": reader}), SyncMode.incremental)
    assert names == ["feed-toy"]


def test_given_no_logger_when_a_sync_is_made_then_it_logs_to_airbyte_and_without_a_catalog_it_has_no_saved_state() -> None:
    context = SyncContext(datetime(2026, 11, 1, tzinfo=timezone.utc), state=StateBuilder().with_stream_state("toy_usage", {"ts": "x"}).build())
    assert context.logger is logging.getLogger("airbyte")
    assert context.saved_state("toy_usage") == {}


def test_given_a_saved_state_already_large_when_time_stands_still_then_only_the_final_checkpoint_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    # The monotonic clock reads 1000 s throughout (a real one is far from zero): less than a second passes.
    monkeypatch.setattr(stream_module, "time", SimpleNamespace(monotonic=lambda: 1000.0, time_ns=time.time_ns))
    networks = [f"N{index:02d}" for index in range(25)]
    saved = state_of(*[(network, "2026-11-01T00:00:00Z") for network in networks])
    stream = ToyUsage({network: [usage(network, "a", "2026-11-02T00:00:00Z")] for network in networks})

    events = run_events(stream, saved=saved)

    assert [type(event).__name__ for event in events if isinstance(event, Checkpoint)] == ["FinalCheckpoint"]
    assert events[-1].state == state_of(*[(network, "2026-11-02T00:00:00Z") for network in networks])


def test_given_a_partition_whose_only_record_lacks_every_key_field_when_run_then_it_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        events = run_events(ToyUsage({"N1": [{"bytes": 5}]}))

    assert [event for event in events if isinstance(event, Records)] == []
    assert [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING] == [
        "toy: toy_usage: skipped 1 record(s) whose networkId (a primary-key or cursor field) the API sent as null or left out: "
        "such a record cannot be deduplicated or checkpointed"
    ]
