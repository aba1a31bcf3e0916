"""Typed for warehouses: every record of a full `source-usage read` matches its catalog schema with STRICT
RFC 3339 instants, every instant is declared as one, cursors in the state are the greatest values emitted, and
`tap-usage` output passes `singer-check-tap`.

The format checkers are written here (a regex and the calendar), not taken from the connector: what is checked
is what a warehouse loader or a Singer validator accepts, i.e. a date-time with `Z` or `+hh:mm` (never `+0000`,
never without an offset) and a date `YYYY-MM-DD`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import pytest
from jsonschema import FormatChecker
from jsonschema.validators import validator_for

from integration_tests.harness import LEDGER, Run, all_stream_names, configured_catalog, run_connector, start_date
from source_usage.emulator import Emulator
from source_usage.source import SourceUsage

REPO = Path(__file__).resolve().parents[1]
SINGER_TOOLS = REPO / ".singer-tools"
CHECK_TAP = SINGER_TOOLS / "bin" / "singer-check-tap"
TAP = str(Path(sys.executable).parent / "tap-usage")

# The instants of every stream, from the vendors' references (see docs/typing.md), as dotted paths.
# Each must be declared `format: date-time` + `airbyte_type: timestamp_with_timezone`, and nothing else may be.
INSTANTS: Dict[str, Set[str]] = {
    "meraki_organizations": set(),  # getOrganizations: no timestamps
    "meraki_networks": set(),  # getOrganizationNetworks: no timestamps
    "meraki_network_clients": {"firstSeen", "lastSeen"},  # epoch seconds in the reference, ISO in some answers
    "meraki_client_usage_histories": {"ts", "observed_at"},  # "2018-02-11T00:00:00.090210Z"
    "meraki_organization_licenses": {"claimDate", "activationDate", "expirationDate"},  # "2019-08-29T12:40:10Z"
    "twilio_supersim_usage_records": {"period.start_time", "period.end_time", "start_time", "end_time", "observed_at"},
    "emnify_endpoints": {"created", "last_updated"},  # "2022-04-07T12:06:06.000+0000" on the wire
    "emnify_endpoint_usage_monthly": {"month", "last_updated", "observed_at"},  # "2020-11-01T00:00:00.000Z"
    "emnify_endpoint_usage_last_hour": {"minute", "observed_at"},  # "HH:MM" labels placed in the hour before Date
    "emnify_endpoint_usage_daily": {"observed_at"},  # its `date` is a calendar date (DATES)
    "thousandeyes_usage": {"monthStart", "monthEnd", "quota.monthStart", "quota.monthEnd", "observed_at"},
    "thousandeyes_test_usage": {"monthStart", "observed_at"},
    LEDGER: {"period_start", "period_end", "observed_at"},
}
DATES: Dict[str, Set[str]] = {"emnify_endpoint_usage_daily": {"date"}}
# The airbyte_type values Airbyte documents (docs.airbyte.com/understanding-airbyte/supported-data-types).
AIRBYTE_TYPES = {"timestamp_with_timezone", "timestamp_without_timezone", "time_with_timezone", "time_without_timezone", "integer"}


# ----- the strict format checker ---------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.\d+)?"
    r"(?:[Zz]|[+-](?P<offset_hours>\d{2}):(?P<offset_minutes>\d{2}))$"
)
_DATE = re.compile(r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})$")


def is_rfc3339_date_time(value: Any) -> bool:
    """RFC 3339 section 5.6 `date-time`: a full date, `T`, a full time with an offset that is `Z` or `+hh:mm`."""
    if not isinstance(value, str):
        return True  # formats apply to strings; the type keyword checks the rest
    found = _DATE_TIME.match(value)
    if not found:
        return False
    parts = {name: int(text) for name, text in found.groupdict().items() if text is not None}
    if parts["second"] > 60:  # 60: a leap second
        return False
    try:
        datetime(parts["year"], parts["month"], parts["day"], parts["hour"], parts["minute"], min(parts["second"], 59))
    except ValueError:
        return False
    return parts.get("offset_hours", 0) <= 23 and parts.get("offset_minutes", 0) <= 59


def is_calendar_date(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    found = _DATE.match(value)
    if not found:
        return False
    try:
        date(*(int(text) for text in found.groups()))
    except ValueError:
        return False
    return True


def strict_format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(is_rfc3339_date_time)
    checker.checks("date")(is_calendar_date)
    return checker


def schema_errors(schema: Mapping[str, Any], record: Mapping[str, Any]) -> List[str]:
    validator = validator_for(schema)(schema, format_checker=strict_format_checker())
    return [f"{'.'.join(str(part) for part in error.absolute_path) or '(record)'}: {error.message}" for error in validator.iter_errors(record)]


@pytest.mark.parametrize(
    "value, valid",
    [
        ("2026-01-01T00:00:00Z", True),
        ("2018-02-11T00:00:00.090210Z", True),
        ("2026-01-05T08:00:00+02:00", True),
        ("2026-01-05T08:00:00-05:30", True),
        ("2026-06-30T23:59:60Z", True),
        ("2022-04-07T12:06:06.000+0000", False),
        ("2026-01-01T00:00:00", False),
        ("2026-01-01 00:00:00Z", False),
        ("2026-02-30T00:00:00Z", False),
        ("2026-01-01T24:00:00Z", False),
        ("2026-01-01T00:00:00+24:00", False),
        ("2026-01-01", False),
        ("1767225600", False),
    ],
)
def test_given_a_value_when_checked_as_an_rfc_3339_date_time_then_only_z_or_a_colon_offset_passes(value: str, valid: bool) -> None:
    schema = {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}
    assert is_rfc3339_date_time(value) is valid
    assert (not schema_errors(schema, {"at": value})) is valid, "the checker is wired into the validator"


@pytest.mark.parametrize("value, valid", [("2026-11-30", True), ("2026-02-29", False), ("2026-1-5", False), ("2026-11-30T00:00:00Z", False)])
def test_given_a_value_when_checked_as_a_date_then_only_a_calendar_date_passes(value: str, valid: bool) -> None:
    assert is_calendar_date(value) is valid


# ----- the schemas ---------------------------------------------------------------------------------------------


def formatted_fields(schema: Mapping[str, Any], path: str = "") -> Iterator[Tuple[str, Mapping[str, Any]]]:
    """(dotted path, definition) of every field with a `format` or an `airbyte_type`, nested objects, array items
    (`[]`) and alternatives (anyOf/oneOf/allOf) included."""
    if not isinstance(schema, Mapping):
        return
    if path and ("format" in schema or "airbyte_type" in schema):
        yield path, schema
    for name, definition in (schema.get("properties") or {}).items():
        yield from formatted_fields(definition, f"{path}.{name}" if path else name)
    items = schema.get("items")
    for item in items if isinstance(items, list) else [items] if items is not None else []:
        yield from formatted_fields(item, f"{path}[]")
    for keyword in ("anyOf", "oneOf", "allOf"):
        for alternative in schema.get(keyword) or []:
            yield from formatted_fields(alternative, path)


@pytest.fixture(scope="module")
def emulator_config() -> Iterator[Dict[str, Any]]:
    with Emulator(seed=41, rate_limits=False) as emulator:
        yield emulator.config(start_date=start_date())


@pytest.fixture(scope="module")
def schemas(emulator_config: Dict[str, Any]) -> Dict[str, Mapping[str, Any]]:
    catalog = SourceUsage().discover(logging.getLogger("test"), emulator_config)
    return {stream.name: stream.json_schema for stream in catalog.streams}


def test_given_the_catalog_when_its_schemas_are_walked_then_every_instant_and_only_an_instant_is_a_timestamp_with_timezone(
    schemas: Dict[str, Mapping[str, Any]],
) -> None:
    assert set(schemas) == set(INSTANTS), "the list of instants covers every stream"
    problems = []
    for stream, schema in schemas.items():
        fields = dict(formatted_fields(schema))
        date_times = {path for path, definition in fields.items() if definition.get("format") == "date-time"}
        for path in sorted(INSTANTS[stream] - date_times):
            problems.append(f"{stream}.{path} is an instant but not declared format: date-time")
        for path in sorted(date_times - INSTANTS[stream]):
            problems.append(f"{stream}.{path} is declared date-time but not listed as an instant")
        for path in sorted(INSTANTS[stream] & date_times):
            if fields[path].get("airbyte_type") != "timestamp_with_timezone":
                problems.append(f"{stream}.{path} has airbyte_type {fields[path].get('airbyte_type')!r}")
            types = fields[path].get("type")
            if "string" not in (types if isinstance(types, list) else [types]):
                problems.append(f"{stream}.{path} is not a string type ({types!r})")
        dated = {path for path, definition in fields.items() if definition.get("format") == "date"}
        if dated != DATES.get(stream, set()):
            problems.append(f"{stream}: format date on {sorted(dated)}, expected {sorted(DATES.get(stream, set()))}")
        others = {path: definition.get("format") for path, definition in fields.items() if definition.get("format") not in (None, "date-time", "date")}
        if others:
            problems.append(f"{stream}: other formats {others}")
    assert not problems, "\n".join(problems)
    assert schemas["emnify_endpoint_usage_daily"]["properties"]["date"]["format"] == "date"


def test_given_the_catalog_when_its_schemas_are_walked_then_every_airbyte_type_is_one_airbyte_documents(schemas: Dict[str, Mapping[str, Any]]) -> None:
    used = {
        f"{stream}.{path}": definition["airbyte_type"]
        for stream, schema in schemas.items()
        for path, definition in formatted_fields(schema)
        if "airbyte_type" in definition
    }
    assert {name: kind for name, kind in used.items() if kind not in AIRBYTE_TYPES} == {}


# ----- a full read of every stream -------------------------------------------------------------------------------


@dataclass
class FullRead:
    run: Run
    catalog: Dict[str, Any]

    def schema(self, stream: str) -> Mapping[str, Any]:
        [entry] = [entry for entry in self.catalog["streams"] if entry["stream"]["name"] == stream]
        return entry["stream"]["json_schema"]

    def state(self, stream: str) -> Mapping[str, Any]:
        [state] = [entry["stream"]["stream_state"] for entry in self.run.final_state() if entry["stream"]["stream_descriptor"]["name"] == stream]
        return state


@pytest.fixture(scope="module")
def full_read() -> Iterator[FullRead]:
    with Emulator(seed=42, rate_limits=False) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, all_stream_names(config))
        run = run_connector("read", config, catalog)
        assert run.returncode == 0 and not run.errors, run.stderr[-3000:]
        yield FullRead(run, catalog)


def value_at(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def test_given_a_full_read_of_every_stream_when_each_record_is_validated_against_its_catalog_schema_then_none_fails_a_type_or_a_strict_format(
    full_read: FullRead,
) -> None:
    run = full_read.run
    streams = [entry["stream"]["name"] for entry in full_read.catalog["streams"]]
    assert set(streams) == set(INSTANTS) and LEDGER in streams
    problems: Dict[str, List[str]] = defaultdict(list)
    for stream in streams:
        records = run.records(stream)
        assert records, f"{stream} emitted records"
        schema = full_read.schema(stream)
        for record in records:
            for error in schema_errors(schema, record):
                if len(problems[stream]) < 5:
                    problems[stream].append(f"{error} in {json.dumps(record)[:300]}")
        for path in INSTANTS[stream] | DATES.get(stream, set()):
            assert any(value_at(record, path) is not None for record in records), f"some {stream} record carries {path}"
        # The schemas allow additional properties: check that nothing the emulator serves arrives untyped.
        declared = set(schema.get("properties") or {})
        undeclared = {field for record in records for field in record} - declared
        assert not undeclared, f"{stream} records carry fields their schema does not declare: {sorted(undeclared)}"
    assert not problems, json.dumps(problems, indent=1)


def test_given_a_full_read_when_its_final_state_is_read_then_each_cursor_is_the_greatest_value_emitted(full_read: FullRead) -> None:
    run = full_read.run
    # Twilio: one cursor for the stream.
    twilio = run.records("twilio_supersim_usage_records")
    assert full_read.state("twilio_supersim_usage_records")["start_time"] == max(record["start_time"] for record in twilio)
    # Meraki: one cursor per network; emnify daily: one per endpoint.
    for stream, partition_key, record_key, cursor in (
        ("meraki_client_usage_histories", "networkId", "networkId", "ts"),
        ("emnify_endpoint_usage_daily", "endpoint_id", "endpoint_id", "date"),
    ):
        greatest: Dict[str, str] = {}
        for record in run.records(stream):
            key = str(record[record_key])
            greatest[key] = max(greatest.get(key, record[cursor]), record[cursor])
        saved = {str(entry["partition"][partition_key]): entry["cursor"][cursor] for entry in full_read.state(stream)["states"]}
        assert saved == greatest, stream
        assert len(greatest) > 1


# ----- Singer: singer-check-tap ---------------------------------------------------------------------------------


def singer_check_tap() -> Optional[Path]:
    """singer-tools 0.4.1 in its own venv at the repo root (it pins jsonschema 2.6, which cannot live beside
    airbyte-cdk): created when missing; None when it cannot be (no network)."""
    if CHECK_TAP.exists():
        return CHECK_TAP
    try:
        subprocess.run([sys.executable, "-m", "venv", str(SINGER_TOOLS)], check=True, capture_output=True, timeout=300)
        subprocess.run(
            [str(SINGER_TOOLS / "bin" / "pip"), "install", "--quiet", "singer-tools==0.4.1"], check=True, capture_output=True, timeout=600
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        shutil.rmtree(SINGER_TOOLS, ignore_errors=True)
        return None
    return CHECK_TAP if CHECK_TAP.exists() else None


def check_tap(stdin: Any, folder: str) -> subprocess.CompletedProcess:
    assert CHECK_TAP.exists()
    return subprocess.run([str(CHECK_TAP)], stdin=stdin, capture_output=True, text=True, timeout=600, cwd=folder)


@pytest.mark.slow
def test_given_tap_usage_with_every_stream_selected_when_its_output_is_piped_into_singer_check_tap_then_it_is_valid() -> None:
    if singer_check_tap() is None:
        reason = "singer-tools==0.4.1 could not be installed into .singer-tools/ (no network?)"
        if os.environ.get("SOURCE_USAGE_REQUIRE_SINGER_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory() as folder, Emulator(seed=43, rate_limits=False) as emulator:
        # The check is not vacuous: an emnify-style `+0000` offset fails it.
        bad = [
            {"type": "SCHEMA", "stream": "t", "key_properties": [], "schema": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}},
            {"type": "RECORD", "stream": "t", "record": {"at": "2022-04-07T12:06:06.000+0000"}},
        ]
        refused = subprocess.run([str(CHECK_TAP)], input="\n".join(json.dumps(line) for line in bad) + "\n", capture_output=True, text=True, timeout=120, cwd=folder)
        assert refused.returncode != 0, refused.stdout

        config = emulator.config(start_date=start_date())
        config_path = Path(folder) / "config.json"
        config_path.write_text(json.dumps(config))
        tap = subprocess.Popen([TAP, "--config", str(config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder)
        assert tap.stdout is not None and tap.stderr is not None
        checked = check_tap(tap.stdout, folder)
        tap.stdout.close()
        tap_errors = tap.stderr.read().decode(errors="replace")
        tap.wait(timeout=600)

        assert tap.returncode == 0, tap_errors[-3000:]
        assert checked.returncode == 0 and "The output is valid." in checked.stdout, checked.stdout[-3000:] + checked.stderr[-3000:]
        counted = {
            found.group(1): int(found.group(2)) for found in re.finditer(r"^\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*\d+\s*\|$", checked.stdout, re.MULTILINE)
        }
        assert set(counted) == set(all_stream_names(config)), checked.stdout
        assert all(count > 0 for count in counted.values()), counted
