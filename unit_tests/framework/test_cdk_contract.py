"""What the framework relies on in airbyte-cdk's public API. If a CDK release changes any of it, these fail
loudly here instead of as lost records or states in a sync (see the docstring of framework/stream.py)."""

from __future__ import annotations

import logging
from typing import Any, Iterable, List, Mapping, MutableMapping, Optional, Tuple

from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, ConfiguredAirbyteCatalog, SyncMode, Type
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import CheckpointMixin, Stream
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.state_builder import StateBuilder

LOGGER = logging.getLogger("test.cdk_contract")


class Recording(Stream, CheckpointMixin):
    """A stream that reads fixed slices and records how the CDK drives it."""

    name = "recording"
    primary_key = "id"
    cursor_field = "n"
    state_checkpoint_interval = None

    def __init__(self, slices: List[List[int]], as_messages: bool = False) -> None:
        self._slices = slices
        self._as_messages = as_messages
        self._state: MutableMapping[str, Any] = {}
        self.calls: List[Any] = []
        self.yielded: List[AirbyteMessage] = []

    @property
    def state(self) -> MutableMapping[str, Any]:
        return dict(self._state)

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self.calls.append(("set state", dict(value)))
        self._state = dict(value)

    def get_json_schema(self) -> Mapping[str, Any]:
        return {"type": "object", "properties": {"id": {"type": "string"}, "n": {"type": "integer"}}}

    def stream_slices(self, *, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_state: Optional[Mapping[str, Any]] = None) -> Iterable[Optional[Mapping[str, Any]]]:
        self.calls.append(("stream_slices", dict(stream_state or {})))
        for index in range(len(self._slices)):
            yield {"slice": index}

    def read_records(self, sync_mode: SyncMode, cursor_field: Optional[List[str]] = None, stream_slice: Optional[Mapping[str, Any]] = None, stream_state: Optional[Mapping[str, Any]] = None) -> Iterable[Any]:
        assert stream_slice is not None
        index = stream_slice["slice"]
        self.calls.append(("read_records", index))
        for n in self._slices[index]:
            data = {"id": f"r{n}", "n": n}
            if self._as_messages:
                message = AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream=self.name, data=data, emitted_at=1))
                self.yielded.append(message)
                yield message
            else:
                yield data
        self._state = {"n": max(self._slices[index], default=self._state.get("n", 0))}


class Source(AbstractSource):
    def __init__(self, stream: Stream) -> None:
        super().__init__()
        self.stream = stream
        self.streams_calls = 0

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        return True, None

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        self.streams_calls += 1
        return [self.stream]


def catalog(mode: SyncMode) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(ConfiguredAirbyteStreamBuilder().with_name("recording").with_sync_mode(mode)).build()


def read(source: Source, mode: SyncMode = SyncMode.incremental, saved: Optional[Mapping[str, Any]] = None) -> List[AirbyteMessage]:
    state = StateBuilder().with_stream_state("recording", saved).build() if saved is not None else None
    return list(source.read(LOGGER, {}, catalog(mode), state))


def data_messages(messages: List[AirbyteMessage]) -> List[Any]:
    return [
        ("record", message.record.data["n"]) if message.type == Type.RECORD else ("state", message.state.stream.stream_state.__dict__)
        for message in messages
        if message.type in (Type.RECORD, Type.STATE)
    ]


def test_given_a_read_when_the_cdk_runs_it_then_streams_is_called_exactly_once() -> None:
    source = Source(Recording([[1]]))
    read(source)
    assert source.streams_calls == 1


def test_given_an_incremental_stream_when_read_then_slices_are_asked_once_and_records_read_per_slice() -> None:
    stream = Recording([[1, 2], [3], [4, 5]])
    read(Source(stream))
    assert [call for call in stream.calls if call[0] != "set state"] == [("stream_slices", {}), ("read_records", 0), ("read_records", 1), ("read_records", 2)]


def test_given_an_incremental_stream_when_read_then_a_state_from_self_state_follows_each_slice_and_none_interrupts_one() -> None:
    assert data_messages(read(Source(Recording([[1, 2], [3], [4, 5]])))) == [
        ("record", 1),
        ("record", 2),
        ("state", {"n": 2}),
        ("record", 3),
        ("state", {"n": 3}),
        ("record", 4),
        ("record", 5),
        ("state", {"n": 5}),
    ]


def test_given_a_saved_state_when_read_then_the_stream_state_is_set_before_slices_are_asked() -> None:
    stream = Recording([[7]])
    read(Source(stream), saved={"n": 6})
    assert stream.calls[:2] == [("set state", {"n": 6}), ("stream_slices", {"n": 6})]


def test_given_a_saved_no_cursor_marker_when_read_then_the_stream_starts_from_an_empty_state() -> None:
    stream = Recording([[7]])
    read(Source(stream), saved={"__ab_no_cursor_state_message": True})
    assert stream.calls[0] == ("set state", {})


def test_given_records_yielded_as_airbyte_messages_when_read_then_they_pass_through_unchanged() -> None:
    stream = Recording([[1, 2]], as_messages=True)
    records = [message for message in read(Source(stream)) if message.type == Type.RECORD]
    assert len(records) == 2
    assert all(out is sent for out, sent in zip(records, stream.yielded))
    assert [record.record.emitted_at for record in records] == [1, 1]


def test_given_a_stream_without_a_cursor_read_in_full_when_it_has_several_slices_then_only_the_final_no_cursor_state_is_emitted() -> None:
    class Snapshot(Recording):
        cursor_field: List[str] = []

    assert data_messages(read(Source(Snapshot([[1], [2]])), SyncMode.full_refresh)) == [
        ("record", 1),
        ("record", 2),
        ("state", {"__ab_no_cursor_state_message": True}),
    ]
