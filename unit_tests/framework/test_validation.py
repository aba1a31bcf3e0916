"""validation.py: every record matches its schema as built (no coercion), with RFC 3339 and calendar dates,
(records without their primary-key or cursor field are skipped before it, by the stream run: test_stream.py)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from source_usage.framework.errors import SchemaViolation, UsageError
from source_usage.framework.validation import RecordValidator, format_checker, is_calendar_date, is_rfc3339

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
        "count": {"type": "integer"},
        "name": {"type": "string"},
        "note": {"type": ["null", "string"]},
        "kind": {"type": "string", "enum": ["a", "b"]},
    },
}
GOOD: Dict[str, Any] = {"id": "r1", "ts": "2026-01-01T00:00:00Z", "day": "2026-01-01", "count": 3, "name": "x", "note": None, "kind": "a"}


def validator() -> RecordValidator:
    return RecordValidator("toy_stream", SCHEMA)


def violation(**changes: Any) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as failure:
        validator().validate({**GOOD, **changes})
    return failure.value


@pytest.mark.parametrize(
    "value",
    ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00.123456Z", "2026-01-01T02:00:00+02:00", "2026-01-01T00:00:00-05:30", "2026-01-01t00:00:00z"],
)
def test_given_an_rfc3339_timestamp_when_checked_then_it_is_accepted(value: str) -> None:
    assert is_rfc3339(value)
    validator().validate({**GOOD, "ts": value})


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00+0000",  # an offset without a colon is ISO 8601 but not RFC 3339
        "2026-01-01T00:00:00",  # no offset
        "2026-01-01 00:00:00Z",
        "2026-01-01",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00Z",
        "x2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Zx",
    ],
)
def test_given_a_timestamp_that_is_not_rfc3339_when_validated_then_the_record_fails_naming_the_field(value: str) -> None:
    assert not is_rfc3339(value)
    failure = violation(ts=value)
    assert str(failure) == f"toy_stream: record field 'ts' has value {value!r}, which is not a valid date-time (RFC 3339, e.g. 2026-01-01T00:00:00Z)"


def test_given_a_value_of_another_type_when_format_checked_then_the_format_does_not_judge_it() -> None:
    assert is_rfc3339(5)
    assert is_calendar_date(None)


@pytest.mark.parametrize("value, ok", [("2026-01-31", True), ("2024-02-29", True), ("2026-02-29", False), ("2026-1-31", False), ("2026-01-31T00:00:00Z", False), ("20260131", False)])
def test_given_a_date_when_checked_then_only_real_yyyy_mm_dd_dates_pass(value: str, ok: bool) -> None:
    assert is_calendar_date(value) is ok
    if ok:
        validator().validate({**GOOD, "day": value})
    else:
        assert str(violation(day=value)) == f"toy_stream: record field 'day' has value {value!r}, which is not a valid date (YYYY-MM-DD)"


def test_given_the_format_checker_when_asked_then_it_knows_exactly_the_two_formats() -> None:
    checker = format_checker()
    assert set(checker.checkers) == {"date-time", "date"}
    assert checker.conforms("2026-01-01T00:00:00Z", "date-time")
    assert not checker.conforms("2026-01-01T00:00:00+0000", "date-time")


def test_given_a_good_record_when_validated_then_nothing_is_raised() -> None:
    validator().validate(dict(GOOD))


def test_given_a_float_in_an_integer_field_when_validated_then_it_fails_instead_of_being_truncated() -> None:
    assert str(violation(count=1.5)) == "toy_stream: record field 'count' has value 1.5, which is not of type integer"


@pytest.mark.parametrize("value", ["3", True])
def test_given_a_string_or_boolean_in_an_integer_field_when_validated_then_it_fails_uncoerced(value: Any) -> None:
    assert str(violation(count=value)) == f"toy_stream: record field 'count' has value {value!r}, which is not of type integer"


def test_given_a_null_in_a_string_field_when_validated_then_it_fails_instead_of_becoming_text() -> None:
    assert str(violation(name=None)) == "toy_stream: record field 'name' has value None, which is not of type string"


def test_given_a_null_where_the_schema_allows_null_when_validated_then_it_passes() -> None:
    validator().validate({**GOOD, "note": None, "day": None})


def test_given_a_value_outside_an_enum_when_validated_then_the_allowed_values_are_named() -> None:
    assert str(violation(kind="c")) == "toy_stream: record field 'kind' has value 'c', which is not one of ['a', 'b']"


def test_given_a_long_value_when_it_fails_then_it_is_shortened_in_the_message() -> None:
    message = str(violation(name=["y" * 200]))
    assert message.startswith("toy_stream: record field 'name' has value ['yyyy")
    assert "..., which is not of type string" in message
    assert len(message) < 200


def test_given_a_record_that_is_not_an_object_when_validated_then_the_record_itself_is_named() -> None:
    with pytest.raises(SchemaViolation, match="record field '\\(record\\)' has value"):
        RecordValidator("toy_stream", SCHEMA).validate(["not", "an", "object"])  # type: ignore[arg-type]


def test_given_a_nested_field_when_it_fails_then_its_dotted_path_is_named() -> None:
    schema = {"type": "object", "properties": {"usage": {"type": "object", "properties": {"bytes": {"type": "integer"}}}}}
    with pytest.raises(SchemaViolation) as failure:
        RecordValidator("toy_stream", schema).validate({"usage": {"bytes": "12"}})
    assert str(failure.value) == "toy_stream: record field 'usage.bytes' has value '12', which is not of type integer"


def test_given_a_closed_schema_when_an_extra_field_arrives_then_it_is_refused() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    with pytest.raises(SchemaViolation, match="is not allowed"):
        RecordValidator("toy_stream", schema).validate({"a": "x", "b": 1})


def test_given_a_missing_required_schema_field_when_validated_then_the_message_says_so() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(SchemaViolation) as failure:
        RecordValidator("toy_stream", schema).validate({})
    assert str(failure.value) == "toy_stream: record field '(record)' has value {}, which 'a' is a required property"


def test_given_another_keyword_when_it_fails_then_the_keyword_and_its_value_are_named() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}
    with pytest.raises(SchemaViolation) as failure:
        RecordValidator("toy_stream", schema).validate({"n": -1})
    assert str(failure.value) == "toy_stream: record field 'n' has value -1, which does not satisfy minimum 0"


def test_given_a_violation_when_reported_then_it_belongs_to_the_stream() -> None:
    assert violation(count=1.5).as_airbyte_message().trace.error.stream_descriptor.name == "toy_stream"


def test_given_a_format_other_than_the_two_when_the_fast_validator_objects_then_the_reference_implementation_wins() -> None:
    schema = {"type": "object", "properties": {"contact": {"type": "string", "format": "email"}}}
    RecordValidator("toy_stream", schema).validate({"contact": "not an email address"})  # only date-time and date are judged
