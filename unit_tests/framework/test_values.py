"""values.py: the explicit per-field repairs vendor modules apply; what they cannot read is an UnreadableValue."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from source_usage.framework.values import UnreadableValue, calendar_date, decimal_number, instant, observed_at

UTC = timezone.utc


@pytest.mark.parametrize(
    "value, text",
    [
        ("2026-01-28T20:02:31+0000", "2026-01-28T20:02:31Z"),  # emnify's offsets without a colon
        ("2026-01-28T20:02:31+00:00", "2026-01-28T20:02:31Z"),
        ("2026-01-28T20:02:31Z", "2026-01-28T20:02:31Z"),
        ("2026-01-28T22:02:31+02:00", "2026-01-28T20:02:31Z"),
        ("2026-01-28T15:02:31-0500", "2026-01-28T20:02:31Z"),
        ("2026-01-28T20:02:31", "2026-01-28T20:02:31Z"),  # naive means UTC
        ("2026-01-28 20:02:31", "2026-01-28T20:02:31Z"),
        (" 2026-01-28T20:02:31Z ", "2026-01-28T20:02:31Z"),
        ("2026-01-28T20:02:31.5Z", "2026-01-28T20:02:31.500000Z"),
        (1769630551, "2026-01-28T20:02:31Z"),  # epoch seconds
        (1769630551000, "2026-01-28T20:02:31Z"),  # epoch milliseconds
        (1769630551.25, "2026-01-28T20:02:31.250000Z"),
        (99_999_999_999, "5138-11-16T09:46:39Z"),  # the largest number still read as seconds
        (100_000_000_000, "1973-03-03T09:46:40Z"),  # the smallest read as milliseconds
        (0, "1970-01-01T00:00:00Z"),
    ],
)
def test_given_an_instant_in_a_vendor_shape_when_repaired_then_it_is_rfc3339_utc_with_z(value: Any, text: str) -> None:
    assert instant(value, "ts") == text


def test_given_text_of_64_characters_when_repaired_then_it_is_read_and_of_65_it_is_refused_unread() -> None:
    assert instant("2026-01-28T20:02:31Z".rjust(64), "ts") == "2026-01-28T20:02:31Z"
    with pytest.raises(UnreadableValue):
        instant("2026-01-28T20:02:31Z".rjust(65), "ts")
    assert decimal_number("5".rjust(64), "cost") == 5.0
    with pytest.raises(UnreadableValue):
        decimal_number("5".rjust(65), "cost")


def test_given_a_null_instant_when_repaired_then_it_stays_null() -> None:
    assert instant(None, "ts") is None


@pytest.mark.parametrize(
    "value", ["2026-01-28", "garbage", "2026-13-01T00:00:00Z", "x" * 65, True, float("nan"), float("inf"), 10**20, [], {"t": 1}]
)
def test_given_an_unreadable_instant_when_repaired_then_it_raises_naming_field_and_value(value: Any) -> None:
    with pytest.raises(UnreadableValue) as failure:
        instant(value, "last_updated")
    assert failure.value.field == "last_updated"
    assert failure.value.value is value or failure.value.value == value
    assert "timestamp" in failure.value.expected
    assert str(failure.value).startswith(f"field 'last_updated' has value {value!r}, which is not ")


def test_given_an_unreadable_string_instant_when_repaired_then_the_message_says_what_was_expected() -> None:
    with pytest.raises(UnreadableValue) as failure:
        instant("soon", "ts")
    assert str(failure.value) == "field 'ts' has value 'soon', which is not an ISO 8601 timestamp"
    assert isinstance(failure.value, ValueError)


@pytest.mark.parametrize(
    "value, number",
    [("29.166235", 29.166235), (" 3 ", 3.0), ("1e3", 1000.0), ("-0.5", -0.5), (3, 3), (2.5, 2.5), (None, None)],
)
def test_given_a_decimal_when_repaired_then_it_is_a_number(value: Any, number: Any) -> None:
    repaired = decimal_number(value, "cost")
    assert repaired == number
    assert type(repaired) is type(number)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("abc", "a number"),
        ("", "a number"),
        (True, "a number"),
        ("NaN", "a finite number"),
        ("Infinity", "a finite number"),
        (float("inf"), "a finite number"),
        (float("nan"), "a finite number"),
        ("1" * 65, "a number"),
        ([1], "a number"),
    ],
)
def test_given_an_unreadable_decimal_when_repaired_then_it_raises_saying_what_was_expected(value: Any, expected: str) -> None:
    with pytest.raises(UnreadableValue) as failure:
        decimal_number(value, "cost")
    assert (failure.value.field, failure.value.expected) == ("cost", expected)


@pytest.mark.parametrize("value, text", [("2026-02-28", "2026-02-28"), (" 2024-02-29 ", "2024-02-29"), (None, None)])
def test_given_a_calendar_date_when_repaired_then_it_is_yyyy_mm_dd(value: Any, text: Any) -> None:
    assert calendar_date(value, "month") == text


@pytest.mark.parametrize("value", ["2026-02-30", "2026-2-3", "2026-02-28T00:00:00Z", "28.02.2026", 20260228, ""])
def test_given_an_unreadable_date_when_repaired_then_it_raises_naming_the_field(value: Any) -> None:
    with pytest.raises(UnreadableValue) as failure:
        calendar_date(value, "month")
    assert (failure.value.field, failure.value.expected) == ("month", "a YYYY-MM-DD date")


def at_noon() -> datetime:
    return datetime(2026, 11, 30, 12, 0, 0, 400000, tzinfo=UTC)


def dated(header: Any) -> requests.Response:
    answer = requests.Response()
    answer.status_code = 200
    if header is not None:
        answer.headers["Date"] = header
    return answer


def test_given_a_plausible_date_header_when_observed_then_the_servers_time_is_used() -> None:
    assert observed_at(dated("Mon, 30 Nov 2026 12:10:00 GMT"), at_noon) == "2026-11-30T12:10:00Z"


def test_given_a_date_header_exactly_fifteen_minutes_off_when_observed_then_it_is_still_believed() -> None:
    assert observed_at(dated("Mon, 30 Nov 2026 12:15:00 GMT"), lambda: datetime(2026, 11, 30, 12, 0, tzinfo=UTC)) == "2026-11-30T12:15:00Z"


@pytest.mark.parametrize("header", [None, "yesterday", "Mon, 30 Nov 2026 12:16:00 GMT", "Mon, 30 Nov 2026 11:40:00 GMT", "Mon, 30 Nov 2026 12:10:00"])
def test_given_a_missing_unreadable_or_implausible_date_when_observed_then_our_clock_is_used(header: Any) -> None:
    assert observed_at(dated(header), at_noon) == "2026-11-30T12:00:00Z"


@pytest.mark.parametrize("value", [True, float("nan"), float("-inf"), 10**20])
def test_given_a_number_that_is_no_instant_when_repaired_then_it_raises_expecting_a_timestamp(value: Any) -> None:
    with pytest.raises(UnreadableValue) as failure:
        instant(value, "ts")
    assert failure.value.expected == "a timestamp"
    assert str(failure.value) == f"field 'ts' has value {value!r}, which is not a timestamp"


@pytest.mark.parametrize(
    "value, expected",
    [("abc", "a number"), (True, "a number"), ("NaN", "a finite number"), (float("inf"), "a finite number"), ([1], "a number")],
)
def test_given_an_unreadable_decimal_when_repaired_then_the_message_names_the_value(value: Any, expected: str) -> None:
    with pytest.raises(UnreadableValue) as failure:
        decimal_number(value, "cost")
    assert str(failure.value) == f"field 'cost' has value {value!r}, which is not {expected}"
    assert failure.value.value is value


@pytest.mark.parametrize("value", ["2026-02-30", "28.02.2026", 20260228])
def test_given_an_unreadable_date_when_repaired_then_the_message_names_the_value(value: Any) -> None:
    with pytest.raises(UnreadableValue) as failure:
        calendar_date(value, "month")
    assert str(failure.value) == f"field 'month' has value {value!r}, which is not a YYYY-MM-DD date"
