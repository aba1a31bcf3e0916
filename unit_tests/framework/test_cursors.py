"""cursors.py: per-stream state, moved only when a partition completes, and a saved state that can never
stop a stream."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, List

import pytest

from source_usage.framework.cursors import NO_CURSOR_STATE, NoCursor, PerPartitionCursor, WindowedCursor

UTC = timezone.utc
NOW = datetime(2026, 11, 30, 12, 0, 0, 750000, tzinfo=UTC)


def clock() -> datetime:
    return NOW


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        assert record.levelno == logging.WARNING
        self.lines.append(record.getMessage())


@pytest.fixture
def warnings() -> Warnings:
    return Warnings()


def logger_for(handler: Warnings) -> logging.Logger:
    logger = logging.getLogger(f"test.cursors.{id(handler)}")
    logger.propagate = False
    logger.handlers = [handler]
    return logger


def entry(network: str, ts: Any) -> dict:
    return {"partition": {"networkId": network}, "cursor": {"ts": ts}}


def per_network(**kwargs: Any) -> PerPartitionCursor:
    return PerPartitionCursor("ts", ["networkId"], clock=clock, **kwargs)


def loaded(state: Any, warnings: Warnings, **kwargs: Any) -> PerPartitionCursor:
    cursor = per_network(**kwargs)
    cursor.load(state, logger_for(warnings), "usage")
    return cursor


# ----- no cursor -------------------------------------------------------------------------------------


def test_given_a_snapshot_stream_when_partitions_close_then_its_state_is_the_no_cursor_marker_and_never_changes() -> None:
    cursor = NoCursor()
    cursor.load({"anything": 1}, logging.getLogger("test"), "s")
    assert cursor.state == {"__ab_no_cursor_state_message": True} == NO_CURSOR_STATE
    assert cursor.close_partition({}, "2026-01-01T00:00:00Z") is False
    assert cursor.emit_filter({}) is None
    assert cursor.saw_every_partition([{}]) is False
    assert len(cursor) == 1


# ----- per partition ---------------------------------------------------------------------------------


def test_given_a_saved_state_when_loaded_then_each_partition_keeps_its_value(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z"), entry("N2", "2026-11-02T00:00:00Z")]}, warnings)
    assert cursor.value_for({"networkId": "N1", "other": "x"}) == "2026-11-01T00:00:00Z"
    assert cursor.value_for({"networkId": "N2"}) == "2026-11-02T00:00:00Z"
    assert cursor.value_for({"networkId": "N3"}) is None
    assert cursor.state == {"states": [entry("N1", "2026-11-01T00:00:00Z"), entry("N2", "2026-11-02T00:00:00Z")]}
    assert len(cursor) == 2
    assert warnings.lines == []


def test_given_partition_keys_of_other_types_when_loaded_then_they_match_as_text(warnings: Warnings) -> None:
    cursor = loaded({"states": [{"partition": {"networkId": 42}, "cursor": {"ts": "2026-11-01T00:00:00Z"}}]}, warnings)
    assert cursor.value_for({"networkId": "42"}) == "2026-11-01T00:00:00Z"
    assert cursor.value_for({"networkId": 42}) == "2026-11-01T00:00:00Z"


def test_given_a_partition_when_it_closes_with_a_later_value_then_the_state_moves_and_says_so(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z")]}, warnings)
    assert cursor.close_partition({"networkId": "N1"}, "2026-11-03T00:00:00Z") is True
    assert cursor.close_partition({"networkId": "N2"}, "2026-11-02T00:00:00Z") is True
    assert cursor.state == {"states": [entry("N1", "2026-11-03T00:00:00Z"), entry("N2", "2026-11-02T00:00:00Z")]}


def test_given_a_partition_when_it_closes_with_an_earlier_equal_or_no_value_then_the_state_stays(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-03T00:00:00Z")]}, warnings)
    assert cursor.close_partition({"networkId": "N1"}, "2026-11-01T00:00:00Z") is False
    assert cursor.close_partition({"networkId": "N1"}, "2026-11-03T01:00:00+01:00") is False  # the same instant
    assert cursor.close_partition({"networkId": "N1"}, None) is False
    assert cursor.close_partition({"networkId": "N9"}, None) is False
    assert cursor.state == {"states": [entry("N1", "2026-11-03T00:00:00Z")]}


def test_given_values_with_offsets_when_compared_then_instants_decide_not_text(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-03T10:00:00Z")]}, warnings)
    assert cursor.close_partition({"networkId": "N1"}, "2026-11-03T09:00:00-02:00") is True  # 11:00 UTC
    assert cursor.state == {"states": [entry("N1", "2026-11-03T09:00:00-02:00")]}


def test_given_a_closed_partition_when_the_start_value_is_asked_then_it_is_still_the_saved_one(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z")]}, warnings)
    cursor.close_partition({"networkId": "N1"}, "2026-11-03T00:00:00Z")
    assert cursor.value_for({"networkId": "N1"}) == "2026-11-01T00:00:00Z"


def test_given_emit_only_newer_when_a_partition_has_a_saved_value_then_only_later_records_are_emitted(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z")]}, warnings, emit_only_newer=True)
    emit = cursor.emit_filter({"networkId": "N1"})
    assert emit is not None
    assert emit({"ts": "2026-11-01T00:00:01Z"}) is True
    assert emit({"ts": "2026-11-01T00:00:00Z"}) is False  # delivered already
    assert emit({"ts": "2026-11-01T01:00:00+02:00"}) is False  # an earlier instant, though later text
    assert cursor.emit_filter({"networkId": "N2"}) is None  # nothing delivered: everything


def test_given_emit_only_newer_when_the_state_moved_during_the_sync_then_the_filter_keeps_the_start_value(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z")]}, warnings, emit_only_newer=True)
    cursor.close_partition({"networkId": "N1"}, "2026-11-05T00:00:00Z")
    assert cursor.emit_filter({"networkId": "N1"})({"ts": "2026-11-02T00:00:00Z"}) is True  # type: ignore[misc]


def test_given_no_emit_filtering_when_asked_then_every_record_is_emitted(warnings: Warnings) -> None:
    assert loaded({"states": [entry("N1", "2026-11-01T00:00:00Z")]}, warnings).emit_filter({"networkId": "N1"}) is None


def test_given_every_partition_was_listed_when_some_are_gone_then_they_are_pruned_from_the_state(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z"), entry("N2", "2026-11-01T00:00:00Z"), entry("N3", "2026-11-01T00:00:00Z")]}, warnings)
    assert cursor.saw_every_partition([{"networkId": "N2"}, {"networkId": "N4"}]) is True
    assert cursor.state == {"states": [entry("N2", "2026-11-01T00:00:00Z")]}
    assert len(cursor) == 1
    assert cursor.saw_every_partition([{"networkId": "N2"}]) is False


def test_given_a_clamp_clock_when_a_saved_value_is_later_than_now_then_it_is_clamped_to_now_with_one_warning(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2027-01-01T00:00:00Z"), entry("N2", "2030-01-01T00:00:00Z"), entry("N3", "2026-11-01T00:00:00Z")]}, warnings)
    assert cursor.value_for({"networkId": "N1"}) == "2026-11-30T12:00:00Z"
    assert cursor.value_for({"networkId": "N2"}) == "2026-11-30T12:00:00Z"
    assert cursor.value_for({"networkId": "N3"}) == "2026-11-01T00:00:00Z"
    assert warnings.lines == [
        "usage: the saved state holds 2 cursor value(s) later than now; reading from now (minus the stream's lookback) instead, so that recent records are not skipped"
    ]


def test_given_a_saved_value_of_exactly_now_when_loaded_then_it_is_kept_without_warning(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-30T12:00:00.750000Z")]}, warnings)
    assert cursor.value_for({"networkId": "N1"}) == "2026-11-30T12:00:00.750000Z"
    assert warnings.lines == []


@pytest.mark.parametrize(
    "bad",
    [
        entry("N2", "1969-12-31T23:59:59Z"),  # before 1970
        entry("N2", 1764504000),  # not a string
        entry("N2", None),
        entry("N2", "yesterday"),
        {"partition": {"networkId": {"nested": 1}}, "cursor": {"ts": "2026-11-01T00:00:00Z"}},
        {"partition": {"other": "N2"}, "cursor": {"ts": "2026-11-01T00:00:00Z"}},
        {"partition": {"networkId": "N2"}, "cursor": {"other": "2026-11-01T00:00:00Z"}},
        {"partition": {"networkId": "N2"}},
        "not an entry",
    ],
)
def test_given_an_unusable_saved_value_when_loaded_then_it_is_ignored_with_a_warning_and_the_rest_kept(bad: Any, warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z"), bad]}, warnings)
    assert cursor.state == {"states": [entry("N1", "2026-11-01T00:00:00Z")]}
    assert warnings.lines == [
        "usage: ignoring 1 saved cursor value(s) that are not timestamps between 1970 and now; those partitions sync from the start date"
    ]


def test_given_the_first_second_of_1970_when_loaded_then_it_is_a_usable_value(warnings: Warnings) -> None:
    assert loaded({"states": [entry("N1", "1970-01-01T00:00:00Z")]}, warnings).value_for({"networkId": "N1"}) == "1970-01-01T00:00:00Z"
    assert warnings.lines == []


@pytest.mark.parametrize("state", [{"ts": "2026-11-01T00:00:00Z"}, {"states": None}, ["N1"]])
def test_given_a_state_of_an_unknown_shape_when_loaded_then_it_is_ignored_with_a_warning_naming_the_expected_shape(state: Any, warnings: Warnings) -> None:
    cursor = loaded(state, warnings)
    assert cursor.state == {"states": []}
    assert warnings.lines == [
        "usage: ignoring saved state of an unknown shape and syncing from the start date; expected "
        "{'states': [{'partition': {networkId}, 'cursor': {'ts': <timestamp>}}]}"
    ]


@pytest.mark.parametrize("state", [{"states": "N1"}, {"states": {"partition": {"networkId": "N1"}}}])
def test_given_states_that_are_not_a_list_when_loaded_then_only_the_unknown_shape_warning_is_given(state: Any, warnings: Warnings) -> None:
    cursor = loaded(state, warnings)
    assert cursor.state == {"states": []}
    assert warnings.lines == [
        "usage: ignoring saved state of an unknown shape and syncing from the start date; expected "
        "{'states': [{'partition': {networkId}, 'cursor': {'ts': <timestamp>}}]}"
    ]


@pytest.mark.parametrize("state", [None, {}, {"states": []}])
def test_given_no_saved_state_when_loaded_then_it_starts_empty_silently(state: Any, warnings: Warnings) -> None:
    assert loaded(state, warnings).state == {"states": []}
    assert warnings.lines == []


def test_given_a_cursor_with_values_when_loaded_again_then_the_old_values_are_forgotten(warnings: Warnings) -> None:
    cursor = loaded({"states": [entry("N1", "2026-11-01T00:00:00Z")]}, warnings)
    cursor.close_partition({"networkId": "N2"}, "2026-11-02T00:00:00Z")
    cursor.load(None, logger_for(warnings), "usage")
    assert cursor.state == {"states": []}
    assert cursor.value_for({"networkId": "N1"}) is None


def test_given_several_partition_fields_when_state_is_written_then_each_field_is_named_and_sorted() -> None:
    cursor = PerPartitionCursor("minute", ["endpoint_id", "traffic"], clock=clock)
    cursor.close_partition({"endpoint_id": 2, "traffic": "data"}, "2026-11-01T00:01:00Z")
    cursor.close_partition({"endpoint_id": 1, "traffic": "sms"}, "2026-11-01T00:02:00Z")
    assert cursor.state == {
        "states": [
            {"partition": {"endpoint_id": "1", "traffic": "sms"}, "cursor": {"minute": "2026-11-01T00:02:00Z"}},
            {"partition": {"endpoint_id": "2", "traffic": "data"}, "cursor": {"minute": "2026-11-01T00:01:00Z"}},
        ]
    }
    assert cursor.cursor_field == "minute"


# ----- windowed ---------------------------------------------------------------------------------------


def windowed(**kwargs: Any) -> WindowedCursor:
    return WindowedCursor("start_time", order=lambda partition: partition["position"], clock=clock, **kwargs)


def window(position: int) -> dict:
    return {"position": position, "window": f"w{position}"}


def test_given_windows_finishing_out_of_order_when_closed_then_the_value_advances_only_over_the_contiguous_prefix() -> None:
    cursor = windowed()
    assert cursor.close_partition(window(2), "2026-11-03T00:00:00Z") is False
    assert cursor.state == {}
    assert cursor.close_partition(window(1), "2026-11-02T00:00:00Z") is False
    assert cursor.state == {}
    assert cursor.close_partition(window(0), "2026-11-01T00:00:00Z") is True  # 0, 1 and 2 are all done now
    assert cursor.state == {"start_time": "2026-11-03T00:00:00Z"}
    assert cursor.close_partition(window(4), "2026-11-05T00:00:00Z") is False  # 3 is still in flight
    assert cursor.state == {"start_time": "2026-11-03T00:00:00Z"}
    assert cursor.close_partition(window(3), None) is True  # an empty window still completes the prefix
    assert cursor.state == {"start_time": "2026-11-05T00:00:00Z"}


def test_given_an_empty_first_window_when_closed_then_nothing_changes_until_a_value_arrives() -> None:
    cursor = windowed()
    assert cursor.close_partition(window(0), None) is False
    assert cursor.state == {}
    assert cursor.close_partition(window(1), "2026-11-02T00:00:00Z") is True
    assert cursor.state == {"start_time": "2026-11-02T00:00:00Z"}


def test_given_a_saved_value_when_windows_bring_older_values_then_it_never_goes_back(warnings: Warnings) -> None:
    cursor = windowed()
    cursor.load({"start_time": "2026-11-10T00:00:00Z"}, logger_for(warnings), "records")
    assert cursor.close_partition(window(0), "2026-11-09T00:00:00Z") is False
    assert cursor.state == {"start_time": "2026-11-10T00:00:00Z"}
    assert cursor.close_partition(window(1), "2026-11-11T00:00:00Z") is True
    assert cursor.value == "2026-11-10T00:00:00Z"  # the value the sync started from


def test_given_extra_keys_when_the_state_is_written_then_they_are_kept_beside_the_cursor() -> None:
    cursor = windowed()
    cursor.extra["granularity"] = "hour"
    cursor.close_partition(window(0), "2026-11-01T05:00:00Z")
    assert cursor.state == {"granularity": "hour", "start_time": "2026-11-01T05:00:00Z"}


def test_given_a_saved_state_with_extra_keys_when_loaded_then_its_value_is_used_silently(warnings: Warnings) -> None:
    cursor = windowed()
    cursor.extra["granularity"] = "day"
    cursor.load({"granularity": "day", "start_time": "2026-11-01T00:00:00Z"}, logger_for(warnings), "records")
    assert cursor.value == "2026-11-01T00:00:00Z"
    assert cursor.state == {"granularity": "day", "start_time": "2026-11-01T00:00:00Z"}
    assert warnings.lines == []


def test_given_a_saved_state_of_only_extra_keys_when_loaded_then_it_starts_over_silently(warnings: Warnings) -> None:
    cursor = windowed()
    cursor.extra["granularity"] = "day"
    cursor.load({"granularity": "day"}, logger_for(warnings), "records")
    assert (cursor.value, warnings.lines) == (None, [])


def test_given_a_windowed_saved_value_later_than_now_when_loaded_then_it_is_clamped_with_one_warning(warnings: Warnings) -> None:
    cursor = windowed()
    cursor.load({"start_time": "2027-03-01T00:00:00Z"}, logger_for(warnings), "records")
    assert cursor.value == "2026-11-30T12:00:00Z"
    assert cursor.state == {"start_time": "2026-11-30T12:00:00Z"}
    assert warnings.lines == [
        "records: the saved state holds 1 cursor value(s) later than now; reading from now (minus the stream's lookback) instead, so that recent records are not skipped"
    ]


@pytest.mark.parametrize("raw", ["1969-07-20T20:17:00Z", 1764504000, "tomorrow-ish", ["2026-11-01T00:00:00Z"]])
def test_given_a_windowed_saved_value_that_is_not_a_timestamp_since_1970_when_loaded_then_it_is_ignored_with_a_warning(raw: Any, warnings: Warnings) -> None:
    cursor = windowed()
    cursor.load({"start_time": raw}, logger_for(warnings), "records")
    assert (cursor.value, cursor.state) == (None, {})
    assert warnings.lines == [
        "records: ignoring 1 saved cursor value(s) that are not timestamps between 1970 and now; those partitions sync from the start date"
    ]


def test_given_a_windowed_state_of_an_unknown_shape_when_loaded_then_it_is_ignored_with_a_warning(warnings: Warnings) -> None:
    cursor = windowed()
    cursor.load({"startTime": "2026-11-01T00:00:00Z"}, logger_for(warnings), "records")
    assert cursor.value is None
    assert warnings.lines == ["records: ignoring saved state of an unknown shape and syncing from the start date; expected {'start_time': <timestamp>}"]


def test_given_a_windowed_cursor_when_loaded_again_then_progress_of_the_previous_run_is_forgotten(warnings: Warnings) -> None:
    cursor = windowed()
    cursor.close_partition(window(0), "2026-11-01T00:00:00Z")
    cursor.close_partition(window(2), "2026-11-03T00:00:00Z")
    cursor.load(None, logger_for(warnings), "records")
    assert cursor.state == {}
    assert cursor.close_partition(window(1), "2026-11-02T00:00:00Z") is False  # position 0 must come first again
    assert cursor.close_partition(window(0), "2026-11-01T00:00:00Z") is True
    assert cursor.state == {"start_time": "2026-11-02T00:00:00Z"}


def test_given_several_unusable_saved_values_when_loaded_then_the_warning_counts_each_kind_and_the_rest_is_kept(warnings: Warnings) -> None:
    state = {
        "states": [
            entry("N2", "yesterday"),  # unreadable
            entry("N3", 1764504000),  # not a string
            entry("N4", "1969-12-31T23:59:59Z"),  # before 1970
            {"partition": {"other": "N5"}, "cursor": {"ts": "2026-11-01T00:00:00Z"}},  # no partition key
            "not an entry",
            entry("N1", "2026-11-01T00:00:00Z"),  # after all of them: still read
        ]
    }
    cursor = loaded(state, warnings)

    assert cursor.state == {"states": [entry("N1", "2026-11-01T00:00:00Z")]}
    assert warnings.lines == [
        "usage: ignoring 5 saved cursor value(s) that are not timestamps between 1970 and now; those partitions sync from the start date"
    ]


def test_given_a_state_of_an_unknown_shape_when_a_cursor_of_two_partition_fields_loads_it_then_the_expected_shape_lists_both(warnings: Warnings) -> None:
    cursor = PerPartitionCursor("ts", ["organizationId", "networkId"], clock=clock)
    cursor.load({"ts": "2026-11-01T00:00:00Z"}, logger_for(warnings), "usage")

    assert warnings.lines == [
        "usage: ignoring saved state of an unknown shape and syncing from the start date; expected "
        "{'states': [{'partition': {organizationId, networkId}, 'cursor': {'ts': <timestamp>}}]}"
    ]


def test_given_a_fresh_per_partition_cursor_when_asked_before_loading_then_no_partition_has_a_value() -> None:
    cursor = per_network()
    assert cursor.value_for({"networkId": "N1"}) is None
    assert cursor.emit_filter({"networkId": "N1"}) is None


def test_given_a_window_ending_at_the_saved_instant_spelled_otherwise_when_closed_then_the_saved_value_stays_and_nothing_changed(
    warnings: Warnings,
) -> None:
    cursor = WindowedCursor("ts", order=lambda partition: partition["i"], clock=clock)
    cursor.load({"ts": "2026-11-01T00:00:00Z"}, logger_for(warnings), "usage")

    assert cursor.close_partition({"i": 0}, "2026-11-01T00:00:00.000Z") is False
    assert cursor.state == {"ts": "2026-11-01T00:00:00Z"}
    assert cursor.value == "2026-11-01T00:00:00Z"


def test_given_a_windowed_state_that_is_a_list_when_loaded_then_it_is_ignored_with_the_unknown_shape_warning(warnings: Warnings) -> None:
    cursor = WindowedCursor("ts", order=lambda partition: partition["i"], clock=clock)
    cursor.load(["2026-11-01T00:00:00Z"], logger_for(warnings), "usage")  # type: ignore[arg-type]

    assert cursor.state == {} and cursor.value is None
    assert warnings.lines == ["usage: ignoring saved state of an unknown shape and syncing from the start date; expected {'ts': <timestamp>}"]


# ----- versioned: per partition, the version of each record emitted ---------------------------------------


def versioned(**kwargs: Any) -> "VersionedCursor":
    from source_usage.framework.cursors import VersionedCursor

    return VersionedCursor("updated", ["endpoint"], key_of=lambda record: record["kind"], version_of=lambda record: record["updated"], clock=clock, **kwargs)


def saved_versions(endpoint: str, updated: str, **versions: str) -> dict:
    return {"partition": {"endpoint": endpoint}, "cursor": {"updated": updated, "versions": versions}}


def test_given_saved_versions_when_a_snapshot_is_read_then_only_records_whose_version_changed_are_emitted_and_kept(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load({"states": [saved_versions("7", "2026-11-01T00:00:00Z", data="2026-11-01T00:00:00Z", sms="2026-10-31T00:00:00Z")]}, logger_for(warnings), "usage")
    emit = cursor.emit_filter({"endpoint": "7"})
    assert emit is not None
    records = [
        {"kind": "data", "updated": "2026-11-01T00:00:00Z"},  # unchanged
        {"kind": "sms", "updated": "2026-10-31T12:00:00Z"},  # changed, though older than the data row
        {"kind": "voice", "updated": "2026-10-30T00:00:00Z"},  # new
    ]
    assert [emit(record) for record in records] == [False, True, True]
    assert cursor.close_partition({"endpoint": "7"}, "2026-11-01T00:00:00Z") is True
    assert cursor.state == {
        "states": [
            {
                "partition": {"endpoint": "7"},
                "cursor": {
                    "updated": "2026-11-01T00:00:00Z",
                    "versions": {"data": "2026-11-01T00:00:00Z", "sms": "2026-10-31T12:00:00Z", "voice": "2026-10-30T00:00:00Z"},
                },
            }
        ]
    }
    assert cursor.value_for({"endpoint": "7"}) == "2026-11-01T00:00:00Z"
    assert cursor.cursor_field == "updated"
    assert warnings.lines == []


def test_given_a_snapshot_with_the_saved_versions_when_closed_then_nothing_changed(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load({"states": [saved_versions("7", "2026-11-01T00:00:00Z", data="2026-11-01T00:00:00Z")]}, logger_for(warnings), "usage")
    emit = cursor.emit_filter({"endpoint": "7"})
    assert emit is not None and emit({"kind": "data", "updated": "2026-11-01T00:00:00Z"}) is False
    assert cursor.close_partition({"endpoint": "7"}, "2026-11-01T00:00:00Z") is False


def test_given_a_partition_closed_without_reading_records_when_closed_then_only_its_cursor_value_counts(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load(None, logger_for(warnings), "usage")
    assert cursor.close_partition({"endpoint": "9"}, None) is False
    assert cursor.close_partition({"endpoint": "9"}, "2026-11-02T00:00:00Z") is True
    assert cursor.state == {"states": [{"partition": {"endpoint": "9"}, "cursor": {"updated": "2026-11-02T00:00:00Z", "versions": {}}}]}


def test_given_partitions_gone_from_the_listing_when_every_partition_was_seen_then_their_versions_are_forgotten(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load(
        {"states": [saved_versions("7", "2026-11-01T00:00:00Z", data="v1"), saved_versions("8", "2026-11-01T00:00:00Z", data="v2")]},
        logger_for(warnings),
        "usage",
    )
    assert cursor.saw_every_partition([{"endpoint": "7"}, {"endpoint": "8"}]) is False
    assert cursor.saw_every_partition([{"endpoint": "7"}]) is True
    assert [entry["cursor"]["versions"] for entry in cursor.state["states"]] == [{"data": "v1"}]


def test_given_saved_entries_some_unusable_when_loaded_then_the_usable_ones_after_them_keep_their_versions(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load(
        {
            "states": [
                {"partition": {"other": "1"}, "cursor": {"updated": "2026-11-01T00:00:00Z", "versions": {"data": "v0"}}},
                saved_versions("7", "2026-11-01T00:00:00Z", data="v1", sms=3),  # type: ignore[arg-type]
            ]
        },
        logger_for(warnings),
        "usage",
    )
    assert [entry["cursor"]["versions"] for entry in cursor.state["states"]] == [{"data": "v1"}]  # a version that is no string is dropped
    emit = cursor.emit_filter({"endpoint": "7"})
    assert emit is not None and emit({"kind": "data", "updated": "v1"}) is False


def test_given_a_versioned_state_of_an_unknown_shape_when_loaded_then_the_stream_is_warned_about_by_name(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load({"updated": "2026-11-01T00:00:00Z"}, logger_for(warnings), "usage")
    assert warnings.lines == [
        "usage: ignoring saved state of an unknown shape and syncing from the start date; expected "
        "{'states': [{'partition': {endpoint}, 'cursor': {'updated': <timestamp>}}]}"
    ]


def test_given_a_saved_value_later_than_the_clock_when_a_versioned_cursor_loads_it_then_its_own_clock_and_parser_are_used(warnings: Warnings) -> None:
    parsed: List[str] = []

    def parse(text: str) -> datetime:
        parsed.append(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    cursor = versioned(parse=parse)
    cursor.load({"states": [saved_versions("7", "2027-01-01T00:00:00Z", data="v1")]}, logger_for(warnings), "usage")
    assert cursor.value_for({"endpoint": "7"}) == "2026-11-30T12:00:00Z"  # clamped to the test clock
    assert "2027-01-01T00:00:00Z" in parsed


def test_given_a_versioned_state_that_is_a_list_or_has_versions_of_another_shape_when_loaded_then_it_is_ignored_without_failing(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load(["not", "a", "state"], logger_for(warnings), "usage")  # type: ignore[arg-type]
    assert cursor.state == {"states": []}

    cursor.load({"states": [{"partition": {"endpoint": "7"}, "cursor": {"updated": "2026-11-01T00:00:00Z", "versions": "v1"}}]}, logger_for(warnings), "usage")
    assert cursor.state == {"states": [{"partition": {"endpoint": "7"}, "cursor": {"updated": "2026-11-01T00:00:00Z", "versions": {}}}]}


def test_given_a_partition_read_without_records_and_nothing_saved_when_closed_then_nothing_changed(warnings: Warnings) -> None:
    cursor = versioned()
    cursor.load(None, logger_for(warnings), "usage")
    assert cursor.emit_filter({"endpoint": "9"}) is not None
    assert cursor.close_partition({"endpoint": "9"}, None) is False


def test_given_two_unreadable_saved_values_among_others_when_loaded_then_both_are_counted(warnings: Warnings) -> None:
    loaded({"states": [entry("N2", 1764504000), entry("N3", "yesterday"), entry("N4", "soon"), entry("N1", "2026-11-01T00:00:00Z")]}, warnings)
    assert warnings.lines == [
        "usage: ignoring 3 saved cursor value(s) that are not timestamps between 1970 and now; those partitions sync from the start date"
    ]
