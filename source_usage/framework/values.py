"""Explicit, per-field value repairs a vendor module applies to what its API sends.

Records are validated as the vendor module built them: nothing is coerced behind its back. Where a vendor
sends a value in a shape that is not the one its schema declares (`+0000` offsets, decimal strings for
amounts, epoch seconds), the vendor module says so per field with these functions.
A value they cannot read raises `UnreadableValue`, which fails the stream naming the field and value.
A null stays null.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Optional, Union

import requests

from source_usage.framework.windows import iso_z, parse_timestamp

Number = Union[int, float]
EPOCH_MILLISECONDS_FROM = 100_000_000_000  # larger epoch numbers are milliseconds (year 5138 in seconds)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_CLOCK_SKEW = timedelta(minutes=15)  # a `Date` header further from our clock is not believed


class UnreadableValue(ValueError):
    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"field '{field}' has value {value!r}, which is not {expected}")


def instant(value: Any, field: str) -> Optional[str]:
    """An instant as RFC 3339 in UTC with a `Z` (`2026-01-28T20:02:31Z`, microseconds kept when there are
    any), from an ISO 8601 string with any offset (`+0000`, `+00:00`, `Z`; none means UTC) or epoch seconds
    or milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UnreadableValue(field, value, "a timestamp")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise UnreadableValue(field, value, "a timestamp")
        seconds = value / 1000 if abs(value) >= EPOCH_MILLISECONDS_FROM else value
        try:
            return iso_z(datetime.fromtimestamp(seconds, tz=timezone.utc))
        except (OverflowError, OSError, ValueError):
            raise UnreadableValue(field, value, "a timestamp") from None
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if "T" in text or " " in text:
            try:
                return iso_z(parse_timestamp(text))
            except (ValueError, OverflowError, TypeError):
                pass
    raise UnreadableValue(field, value, "an ISO 8601 timestamp")


def calendar_date(value: Any, field: str) -> Optional[str]:
    """A calendar date as `YYYY-MM-DD`."""
    if value is None:
        return None
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise UnreadableValue(field, value, "a YYYY-MM-DD date")


def decimal_number(value: Any, field: str) -> Optional[Number]:
    """A number from a number or a decimal string (`"29.166235"` becomes 29.166235)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UnreadableValue(field, value, "a number")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise UnreadableValue(field, value, "a finite number")
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise UnreadableValue(field, value, "a number") from None
        if not amount.is_finite():
            raise UnreadableValue(field, value, "a finite number")
        return float(amount)
    raise UnreadableValue(field, value, "a number")


def observed_at(response: requests.Response, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> str:
    """When a figure was read: the response's `Date` header, or our clock when the header is missing,
    unreadable or implausibly far from it (a server's clock must not decide what counts as final)."""
    now = clock()
    header = response.headers.get("Date")
    if header:
        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            moment = None
        if moment is not None and moment.tzinfo is not None and abs(moment - now) <= MAX_CLOCK_SKEW:
            return iso_z(moment.astimezone(timezone.utc))
    return iso_z(now.replace(microsecond=0))
