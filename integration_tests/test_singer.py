"""`tap-usage` (Singer mode) against the emulator, through the real console script."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pytest

from integration_tests import launcher
from integration_tests.harness import (
    all_stream_names,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    key_of,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.config import connection_specification
from source_usage.emulator import Emulator
from source_usage.framework.windows import parse_timestamp
from source_usage.singer import singer_catalog
from source_usage.source import SourceUsage

TAP = str(Path(sys.executable).parent / "tap-usage")
SINGER_TYPES = {"SCHEMA", "RECORD", "STATE"}


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> List[dict]:
        """Every stdout line, each of which must be a Singer message."""
        messages = [json.loads(line) for line in self.stdout.splitlines()]
        strays = [message for message in messages if message.get("type") not in SINGER_TYPES]
        assert not strays, f"stdout holds messages that are not Singer's: {strays[:3]}"
        return messages

    def records(self, stream: str) -> List[dict]:
        return [message["record"] for message in self.messages if message["type"] == "RECORD" and message["stream"] == stream]

    @property
    def streams(self) -> set:
        return {message["stream"] for message in self.messages if message["type"] == "RECORD"}

    @property
    def last_state(self) -> dict:
        states = [message["value"] for message in self.messages if message["type"] == "STATE"]
        assert states, "the sync wrote no STATE"
        return states[-1]


def run_tap(
    *args: str,
    config: Optional[Mapping[str, Any]] = None,
    catalog: Optional[Mapping[str, Any]] = None,
    state: Optional[Mapping[str, Any]] = None,
) -> TapRun:
    with tempfile.TemporaryDirectory() as folder:
        command = [TAP, *args]
        for option, content in (("--config", config), ("--catalog", catalog), ("--state", state)):
            if content is not None:
                path = Path(folder) / f"{option.strip('-')}.json"
                path.write_text(json.dumps(content))
                command += [option, str(path)]
        completed = launcher.run(command, timeout=300, env={**os.environ})
    return TapRun(completed.returncode, completed.stdout, completed.stderr)


def discover(config: Mapping[str, Any]) -> Dict[str, Any]:
    run = run_tap("--discover", config=config)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def discovered(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The same catalog as `--discover` prints, built in-process to save a process start."""
    return singer_catalog(SourceUsage().discover(logging.getLogger("test"), config))


def root_metadata(entry: Mapping[str, Any]) -> Dict[str, Any]:
    [root] = [item["metadata"] for item in entry["metadata"] if item["breadcrumb"] == []]
    return root


def select(catalog: Dict[str, Any], streams: Sequence[str], deselect_fields: Mapping[str, str] = {}) -> Dict[str, Any]:
    """The catalog with only `streams` selected (as Meltano marks it), minus one field per stream if asked."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
            elif item["breadcrumb"] == ["properties", deselect_fields.get(entry["tap_stream_id"])]:
                item["metadata"]["selected"] = False
    return catalog


def test_discover_prints_a_singer_catalog_of_every_configured_stream(emulator: Emulator) -> None:
    config = emulator.config()
    airbyte = configured_catalog(config, all_stream_names(config))

    catalog = discover(config)

    entries = {entry["tap_stream_id"]: entry for entry in catalog["streams"]}
    assert set(entries) == {configured["stream"]["name"] for configured in airbyte["streams"]}
    assert {name.split("_")[0] for name in entries} == {"meraki", "twilio", "emnify", "thousandeyes", "usage"}
    for configured in airbyte["streams"]:
        stream = configured["stream"]
        entry = entries[stream["name"]]
        root = root_metadata(entry)
        assert entry["stream"] == stream["name"] and entry["schema"] == stream["json_schema"]
        assert entry["key_properties"] == primary_key(airbyte, stream["name"])
        assert root["selected"] is True and root["inclusion"] == "available"
        if "incremental" in stream["supported_sync_modes"]:
            [cursor] = stream["default_cursor_field"]
            assert entry["replication_key"] == cursor and root["valid-replication-keys"] == [cursor]
            assert root["forced-replication-method"] == "INCREMENTAL"
        else:
            assert "replication_key" not in entry and root["forced-replication-method"] == "FULL_TABLE"
        fields = {item["breadcrumb"][1]: item["metadata"] for item in entry["metadata"] if item["breadcrumb"]}
        assert set(fields) == set(stream["json_schema"]["properties"])
        automatic = {name for name, field in fields.items() if field["inclusion"] == "automatic"}
        assert automatic == set(entry["key_properties"]) | ({entry["replication_key"]} if "replication_key" in entry else set())


def test_sync_writes_only_the_selected_streams_and_fields_each_schema_before_its_records(emulator: Emulator) -> None:
    config = emulator.config(start_date=start_date())
    wanted = ["meraki_networks", "twilio_supersim_usage_records", "emnify_endpoint_usage_monthly", "thousandeyes_test_usage"]
    catalog = select(discovered(config), wanted, deselect_fields={"meraki_networks": "timeZone"})

    run = run_tap(config=config, catalog=catalog)

    assert run.returncode == 0, run.stderr[-2000:]
    messages = run.messages
    assert {message["stream"] for message in messages if message["type"] == "SCHEMA"} == set(wanted)
    assert run.streams == set(wanted)
    airbyte = configured_catalog(config, wanted)
    for stream in wanted:
        schemas = [index for index, message in enumerate(messages) if message["type"] == "SCHEMA" and message["stream"] == stream]
        records = [index for index, message in enumerate(messages) if message["type"] == "RECORD" and message["stream"] == stream]
        assert len(schemas) == 1 and schemas[0] < records[0], f"{stream}: one SCHEMA, before the first RECORD"
        expected = emulator.expected(stream, start_date=config["start_date"])
        if stream == "meraki_networks":
            assert "timeZone" not in messages[schemas[0]]["schema"]["properties"]
            expected = [{key: value for key, value in record.items() if key != "timeZone"} for record in expected]
        assert_records_match(run.records(stream), expected, primary_key(airbyte, stream), stream)
    incremental = {stream for stream in wanted if "replication_key" in catalog_entry(catalog, stream)}
    assert set(run.last_state["bookmarks"]) == incremental


def without_sync_times(value: Any) -> Any:
    """A state without the `synced_at` stamps (when each of the two syncs ran) at any depth."""
    if isinstance(value, Mapping):
        return {key: without_sync_times(item) for key, item in value.items() if key != "synced_at"}
    if isinstance(value, list):
        return [without_sync_times(item) for item in value]
    return value


def catalog_entry(catalog: Mapping[str, Any], stream: str) -> Mapping[str, Any]:
    return next(entry for entry in catalog["streams"] if entry["tap_stream_id"] == stream)


def test_state_round_trips_and_the_next_sync_continues_exactly_as_the_airbyte_read_does(emulator: Emulator) -> None:
    config = emulator.config(start_date=start_date())
    airbyte_catalog = configured_catalog(config, all_stream_names(config))  # what the tap selects by default
    incremental = [entry["stream"]["name"] for entry in airbyte_catalog["streams"] if entry["sync_mode"] == "incremental"]

    first = run_tap(config=config)
    airbyte_first = run_connector("read", config, airbyte_catalog)

    assert first.returncode == 0 and airbyte_first.returncode == 0, first.stderr[-2000:] + airbyte_first.stderr[-2000:]
    bookmarks = first.last_state["bookmarks"]
    assert set(bookmarks) == set(incremental), "every incremental stream, and only those, has a bookmark"
    airbyte_states = {
        state["stream"]["stream_descriptor"]["name"]: state["stream"]["stream_state"]
        for state in airbyte_first.final_state()
    }
    assert without_sync_times(bookmarks) == without_sync_times({stream: airbyte_states[stream] for stream in incremental}), (
        "a bookmark is the stream's Airbyte state"
    )

    emulator.advance(1)
    second = run_tap(config=config, state=first.last_state)
    airbyte_second = run_connector("read", config, airbyte_catalog, state=airbyte_first.final_state())

    assert second.returncode == 0 and airbyte_second.returncode == 0, second.stderr[-2000:] + airbyte_second.stderr[-2000:]
    for stream in incremental:
        pk = primary_key(airbyte_catalog, stream)
        assert_records_match(second.records(stream), airbyte_second.records(stream), pk, stream)
    assert sum(len(second.records(stream)) for stream in incremental) < sum(len(first.records(stream)) for stream in incremental)
    # Meraki, the reference: new usage points, and only the documented one-day lookback again.
    usage = "meraki_client_usage_histories"
    pk = primary_key(airbyte_catalog, usage)
    first_keys, second_keys = distinct_keys(first.records(usage), pk), distinct_keys(second.records(usage), pk)
    expected_keys = distinct_keys(emulator.expected(usage, start_date=config["start_date"]), pk)
    assert expected_keys - first_keys and expected_keys - first_keys <= second_keys
    latest = max(parse_timestamp(record["ts"]) for record in first.records(usage))
    reread = [record for record in second.records(usage) if key_of(record, pk) in first_keys]
    assert reread and all(parse_timestamp(record["ts"]) >= latest - timedelta(days=1) for record in reread)
    assert second.last_state["bookmarks"] != bookmarks, "the second sync moved the bookmarks on"


def test_rate_limit_waits_are_logged_on_stderr_and_never_reach_stdout() -> None:
    with Emulator(seed=4, rate_limits=True, vendors=["meraki"]) as emulator:
        config = emulator.config(start_date=start_date())
        emulator.storm("meraki", 3)

        run = run_tap(config=config, catalog=select(discovered(config), ["meraki_organizations", "meraki_networks"]))

        assert run.returncode == 0, run.stderr[-2000:]
        assert emulator.stats()["meraki"]["rate_limited"] >= 3
        assert "rate limited" in run.stderr
        assert run.streams == {"meraki_organizations", "meraki_networks"}  # `messages` checked every stdout line


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("rejected key", "meraki: the API key was rejected (HTTP 401)"),
        ("no vendor", "Invalid config: (top level) needs at least one vendor object"),
        ("unknown stream", "The catalog selects twilio_supersim_usage_records, which this config does not provide"),
    ],
)
def test_a_failure_exits_non_zero_with_one_clear_line_and_no_traceback(problem: str, expected: str) -> None:
    with Emulator(seed=4, rate_limits=False, vendors=["meraki"]) as emulator:
        config = emulator.config(start_date=start_date())
        secret = config["meraki"]["api_key"]
        catalog = None
        if problem == "rejected key":
            secret = config["meraki"]["api_key"] = "0" * 39 + "9"
        elif problem == "no vendor":
            del config["meraki"]
        else:
            selected = [{"breadcrumb": [], "metadata": {"selected": True}}]
            catalog = {"streams": [{"tap_stream_id": "twilio_supersim_usage_records", "metadata": selected}]}

        run = run_tap(config=config, catalog=catalog)

    assert run.returncode == 1
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line.startswith("tap-usage: ") and expected in last_line, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and secret not in run.stderr
    assert not run.streams  # and stdout held only Singer messages


def test_about_describes_the_capabilities_meltano_uses_and_the_spec_settings() -> None:
    run = run_tap("--about", "--format", "json")

    assert run.returncode == 0, run.stderr[-2000:]
    about = json.loads(run.stdout)
    assert about["name"] == "tap-usage"
    assert set(about["capabilities"]) >= {"catalog", "discover", "state", "about"}
    assert about["settings"] == connection_specification()
