"""Schema validation of every record, as the vendor module built it: types, formats and keys.

Nothing is coerced here (the CDK's type normaliser would turn a null into the text "None" or truncate a
float in an integer field): a record that does not match its schema fails its stream, naming the stream,
the field and the value. Vendor modules repair values explicitly, per field (`values.py`).

* `date-time` must be RFC 3339 (an offset with a colon or `Z`) and `date` a calendar date `YYYY-MM-DD`:
  what typed destinations and Singer validators accept.
* Records whose primary-key or cursor field is null are not validated here: the stream run skips them
  with a warning (a null key would be a row no destination can deduplicate).

Validation runs for every record, so it has a fast path: the schema is compiled once into Python code by
fastjsonschema (a few microseconds a record); only a failing record is checked again by `jsonschema`,
which describes the first problem for the error message.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Callable, Mapping

import fastjsonschema
from jsonschema import FormatChecker
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from source_usage.framework.errors import SchemaViolation

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_rfc3339(value: Any) -> bool:
    """Formats apply to strings only (a wrong type is the type check's to report)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value[:19])
    except ValueError:
        return False
    return True


def is_calendar_date(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


FORMATS: Mapping[str, Callable[[Any], bool]] = {"date-time": is_rfc3339, "date": is_calendar_date}


def format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(check)
    return checker


class RecordValidator:
    def __init__(self, stream: str, schema: Mapping[str, Any]) -> None:
        self._stream = stream
        self._schema = schema
        self._fast_check: Callable[[Any], Any] = fastjsonschema.compile(
            dict(schema), use_default=False, use_formats=True, formats=dict(FORMATS), detailed_exceptions=False
        )

    def validate(self, record: Mapping[str, Any]) -> None:
        """Raise SchemaViolation unless `record` matches the schema, formats included."""
        try:
            self._fast_check(record)
            return
        except fastjsonschema.JsonSchemaValueException:
            pass
        validator = validator_for(self._schema)(self._schema, format_checker=format_checker())
        error = best_match(validator.iter_errors(record))
        if error is None:  # the two validators disagree: trust the reference implementation
            return
        field = ".".join(str(part) for part in error.absolute_path) or "(record)"
        raise SchemaViolation(self._stream, field, error.instance, _describe(error))


def _describe(error: Any) -> str:
    if error.validator == "type":
        return f"is not of type {error.validator_value}"
    if error.validator == "enum":
        return f"is not one of {error.validator_value}"
    if error.validator == "format":
        return f"is not a valid {error.validator_value} ({'RFC 3339, e.g. 2026-01-01T00:00:00Z' if error.validator_value == 'date-time' else 'YYYY-MM-DD'})"
    if error.validator == "required":
        return error.message
    if error.validator == "additionalProperties":
        return f"is not allowed: {error.message}"
    return f"does not satisfy {error.validator} {error.validator_value!r}"
