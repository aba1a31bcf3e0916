"""State only moves over partitions whose every record was emitted."""

from __future__ import annotations

import logging

from source_usage.framework.cursors import NO_CURSOR_STATE, NoCursor, PerPartitionCursor, WindowedCursor

LOG = logging.getLogger("test")


def test_given_windows_completing_out_of_order_when_closed_then_state_waits_for_the_earlier_window() -> None:
    cursor = WindowedCursor("start_time")
    cursor.load({}, LOG, "stream")

    assert cursor.close_partition({"window_index": 1}, "2026-11-08T00:00:00Z") is False
    assert cursor.state == {}
    assert cursor.close_partition({"window_index": 0}, "2026-11-01T00:00:00Z") is True
    assert cursor.state == {"start_time": "2026-11-08T00:00:00Z"}


def test_given_an_empty_window_when_closed_then_state_keeps_its_value() -> None:
    cursor = WindowedCursor("start_time")
    cursor.load({"start_time": "2026-11-01T00:00:00Z"}, LOG, "stream")
    assert cursor.close_partition({"window_index": 0}, None) is False
    assert cursor.state == {"start_time": "2026-11-01T00:00:00Z"}


def test_given_saved_partition_states_when_a_partition_completes_then_only_it_advances() -> None:
    cursor = PerPartitionCursor("ts", ["networkId"])
    cursor.load({"states": [{"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-01T00:00:00Z"}}]}, LOG, "stream")

    cursor.close_partition({"networkId": "N_2"}, "2026-11-20T00:00:00Z")
    cursor.close_partition({"networkId": "N_1"}, "2026-10-01T00:00:00Z")  # older: ignored

    assert cursor.state == {
        "states": [
            {"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-01T00:00:00Z"}},
            {"partition": {"networkId": "N_2"}, "cursor": {"ts": "2026-11-20T00:00:00Z"}},
        ]
    }
    assert cursor.value_for({"networkId": "N_1"}) == "2026-11-01T00:00:00Z"
    assert cursor.value_for({"networkId": "N_2"}) is None  # as it was when the sync started


def test_given_emit_only_newer_when_a_record_is_not_newer_than_its_partition_state_then_it_is_not_emitted() -> None:
    cursor = PerPartitionCursor("last_updated", ["endpoint_id"], emit_only_newer=True)
    cursor.load({"states": [{"partition": {"endpoint_id": 166}, "cursor": {"last_updated": "2026-11-01T10:00:00.000Z"}}]}, LOG, "stream")

    should_emit = cursor.emit_filter({"endpoint_id": 166})
    assert should_emit is not None
    assert not should_emit({"last_updated": "2026-11-01T10:00:00.000Z"})
    assert should_emit({"last_updated": "2026-11-01T10:00:01.000Z"})
    assert cursor.emit_filter({"endpoint_id": 167}) is None  # no state for this endpoint: everything is emitted


def test_given_a_cursor_without_emit_only_newer_when_asked_then_it_filters_nothing() -> None:
    cursor = PerPartitionCursor("ts", ["networkId"])
    cursor.load({"states": [{"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-01T00:00:00Z"}}]}, LOG, "stream")

    assert cursor.emit_filter({"networkId": "N_1"}) is None  # lookback re-reads are emitted again


def test_given_foreign_states_when_loaded_then_they_are_ignored_with_a_warning(caplog) -> None:
    for state in ({"ts": "2026-11-01"}, {"states": "nope"}, {"states": [{"partition": {}, "cursor": {"ts": "x"}}]}):
        cursor = PerPartitionCursor("ts", ["networkId"])
        cursor.load(state, LOG, "stream")
        assert cursor.state == {"states": []}
    windowed = WindowedCursor("start_time")
    windowed.load({"states": []}, LOG, "stream")
    assert windowed.state == {}
    assert sum("unknown shape" in record.getMessage() for record in caplog.records) == 4


def test_given_a_snapshot_when_checkpointed_then_it_says_there_is_no_cursor() -> None:
    assert NoCursor().state == NO_CURSOR_STATE
