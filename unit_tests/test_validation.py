"""Every record is validated against its stream's schema after the CDK's normalisation."""

from __future__ import annotations

import pytest

from source_usage.framework.errors import SchemaViolation
from source_usage.framework.validation import RecordValidator

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["id", "recv"],
    "properties": {"id": {"type": "string"}, "recv": {"type": "integer"}, "when": {"type": ["null", "string"], "format": "date-time"}},
}


def test_given_a_valid_record_when_validated_then_it_is_returned_unchanged() -> None:
    record = {"id": "k1", "recv": 3, "when": "not a date, but formats are annotations"}
    assert RecordValidator("s", SCHEMA).normalize_and_validate(dict(record)) == record


def test_given_a_numeric_string_when_validated_then_the_cdk_normalises_it() -> None:
    assert RecordValidator("s", SCHEMA).normalize_and_validate({"id": "k1", "recv": "42"}) == {"id": "k1", "recv": 42}


def test_given_a_value_of_the_wrong_type_when_validated_then_the_error_names_stream_field_and_value() -> None:
    with pytest.raises(SchemaViolation) as failure:
        RecordValidator("meraki_client_usage_histories", SCHEMA).normalize_and_validate({"id": "k1", "recv": "lots"})
    assert str(failure.value) == "meraki_client_usage_histories: record field 'recv' has value 'lots', which is not of type integer"


def test_given_a_missing_required_field_when_validated_then_it_fails() -> None:
    with pytest.raises(SchemaViolation, match="'recv' is a required property"):
        RecordValidator("s", SCHEMA).normalize_and_validate({"id": "k1"})
