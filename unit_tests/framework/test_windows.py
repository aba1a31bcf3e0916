"""windows.py: UTC timestamps, aligned and bounded time windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from typing import Iterator

import pytest

from source_usage.framework.windows import EPOCH, TimeWindow, clamp_to_lookback, floor_time, iso_z, parse_timestamp, split_windows

UTC = timezone.utc


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_given_the_epoch_constant_when_read_then_it_is_1970_in_utc() -> None:
    assert EPOCH == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment, text",
    [
        (at(2026, 11, 23, 12, 0, 0), "2026-11-23T12:00:00Z"),
        (datetime(2026, 11, 23, 12, 0, 0, 250000, tzinfo=UTC), "2026-11-23T12:00:00.250000Z"),
        (datetime(2026, 11, 23, 14, 30, tzinfo=timezone(timedelta(hours=2))), "2026-11-23T12:30:00Z"),
    ],
)
def test_given_a_moment_when_written_then_it_is_utc_with_a_z(moment: datetime, text: str) -> None:
    assert iso_z(moment) == text


@pytest.mark.parametrize(
    "text, moment",
    [
        ("2026-11-23T12:00:00Z", at(2026, 11, 23, 12)),
        ("2026-11-23T12:00:00+00:00", at(2026, 11, 23, 12)),
        ("2026-11-23T14:00:00+02:00", at(2026, 11, 23, 12)),
        ("2026-11-23T12:00:00", at(2026, 11, 23, 12)),  # naive is UTC
        ("2026-11-23T12:00:00.5Z", datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-23", at(2026, 11, 23)),
    ],
)
def test_given_an_iso_timestamp_when_parsed_then_it_is_an_aware_utc_datetime(text: str, moment: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == moment
    assert parsed.utcoffset() == timedelta(0)


def test_given_an_unreadable_timestamp_when_parsed_then_it_raises_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_timestamp("not a time")


@pytest.mark.parametrize(
    "moment, step, floored",
    [
        (at(2026, 11, 23, 12, 34, 56), timedelta(hours=1), at(2026, 11, 23, 12)),
        (at(2026, 11, 23, 12, 34, 56), timedelta(days=1), at(2026, 11, 23)),
        (at(2026, 11, 23), timedelta(days=1), at(2026, 11, 23)),
        (at(2026, 11, 23, 0, 0, 1), timedelta(minutes=15), at(2026, 11, 23, 0, 0)),
    ],
)
def test_given_a_moment_when_floored_then_it_is_the_latest_step_boundary_at_or_before_it(moment: datetime, step: timedelta, floored: datetime) -> None:
    assert floor_time(moment, step) == floored


def test_given_a_span_when_split_then_consecutive_windows_of_at_most_the_length_cover_it() -> None:
    windows = list(split_windows(at(2026, 1, 1), at(2026, 1, 1, 10), timedelta(hours=4)))
    assert windows == [
        TimeWindow(at(2026, 1, 1, 0), at(2026, 1, 1, 4)),
        TimeWindow(at(2026, 1, 1, 4), at(2026, 1, 1, 8)),
        TimeWindow(at(2026, 1, 1, 8), at(2026, 1, 1, 10)),
    ]


def test_given_a_span_of_exactly_one_length_when_split_then_one_window() -> None:
    assert list(split_windows(at(2026, 1, 1), at(2026, 1, 2), timedelta(days=1))) == [TimeWindow(at(2026, 1, 1), at(2026, 1, 2))]


def test_given_an_empty_or_reversed_span_when_split_then_no_window() -> None:
    assert list(split_windows(at(2026, 1, 2), at(2026, 1, 2), timedelta(days=1))) == []
    assert list(split_windows(at(2026, 1, 3), at(2026, 1, 2), timedelta(days=1))) == []


@pytest.mark.parametrize("length", [timedelta(0), timedelta(seconds=-1)])
def test_given_a_length_that_is_not_positive_when_split_then_it_is_refused(length: timedelta) -> None:
    with pytest.raises(ValueError, match="window length must be positive"):
        list(split_windows(at(2026, 1, 1), at(2026, 1, 2), length))


def test_given_a_window_when_printed_then_it_is_half_open_in_utc() -> None:
    assert str(TimeWindow(at(2026, 1, 1), at(2026, 1, 2))) == "[2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z)"


def test_given_windows_when_ordered_then_by_start() -> None:
    assert sorted([TimeWindow(at(2026, 1, 2), at(2026, 1, 3)), TimeWindow(at(2026, 1, 1), at(2026, 1, 2))])[0].start == at(2026, 1, 1)


def test_given_a_start_older_than_the_vendor_keeps_when_clamped_then_it_is_the_earliest_and_flagged() -> None:
    assert clamp_to_lookback(at(2026, 1, 1), at(2026, 2, 1)) == (at(2026, 2, 1), True)


def test_given_a_start_within_what_the_vendor_keeps_when_clamped_then_it_is_kept() -> None:
    assert clamp_to_lookback(at(2026, 3, 1), at(2026, 2, 1)) == (at(2026, 3, 1), False)
    assert clamp_to_lookback(at(2026, 2, 1), at(2026, 2, 1)) == (at(2026, 2, 1), False)


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone 5:30 ahead of UTC: what is written in UTC must not come out in local time."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_given_a_local_time_zone_ahead_of_utc_when_a_moment_is_written_then_it_is_still_utc_with_a_z(kolkata: None) -> None:
    assert iso_z(datetime(2026, 11, 23, 14, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-23T12:30:00Z"
    assert iso_z(at(2026, 11, 23, 12, 0, 0)) == "2026-11-23T12:00:00Z"


def test_given_a_window_length_of_zero_when_split_then_it_is_refused_saying_it_must_be_positive() -> None:
    with pytest.raises(ValueError) as failure:
        list(split_windows(at(2026, 1, 1), at(2026, 1, 2), timedelta(0)))
    assert str(failure.value) == "window length must be positive"
