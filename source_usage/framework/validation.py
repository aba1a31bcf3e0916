"""Schema validation of every record, after the CDK's type normalisation.

The CDK's `TypeTransformer` only coerces types where it can (a numeric string to a number, say); a record
that still does not match its schema must fail its stream, naming the stream, the field and the value.
The validator class for the schema's draft is built once per stream (`jsonschema` caches its compiled
checks on the instance), and a cheap `is_valid` call guards the slower error report.
"""

from __future__ import annotations

from typing import Any, Mapping

from airbyte_cdk.sources.utils.transform import TransformConfig, TypeTransformer
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from source_usage.framework.errors import SchemaViolation


class RecordValidator:
    def __init__(self, stream: str, schema: Mapping[str, Any]) -> None:
        self._stream = stream
        self._schema = schema
        validator_class = validator_for(schema)
        validator_class.check_schema(schema)
        self._validator = validator_class(schema)
        self._normalizer = TypeTransformer(TransformConfig.DefaultSchemaNormalization)

    def normalize_and_validate(self, record: dict) -> dict:
        """Normalise `record` in place as the CDK would, then raise SchemaViolation if it is still invalid."""
        self._normalizer.transform(record, self._schema)
        if not self._validator.is_valid(record):
            error = best_match(self._validator.iter_errors(record))
            field = ".".join(str(part) for part in error.absolute_path) or "(record)"
            problem = error.message
            if error.validator in ("type", "enum", "format", "pattern", "minimum", "maximum"):
                problem = _describe(error)
            raise SchemaViolation(self._stream, field, error.instance, problem)
        return record


def _describe(error: Any) -> str:
    if error.validator == "type":
        return f"is not of type {error.validator_value}"
    if error.validator == "enum":
        return f"is not one of {error.validator_value}"
    return f"does not satisfy {error.validator} {error.validator_value!r}"
