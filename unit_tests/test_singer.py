"""Singer mode: catalog metadata, selection, state conversion and message translation, in-process."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import yaml
from airbyte_cdk.models import AirbyteCatalog, AirbyteMessage, AirbyteMessageSerializer, AirbyteStateMessageSerializer

from source_usage.config import connection_specification
from source_usage.framework.errors import UsageError
from source_usage.singer import (
    CAPABILITIES,
    PrintedMessagesToLog,
    SingerTranslator,
    airbyte_state,
    bookmarks_of,
    configured_catalog,
    dotted_settings,
    main,
    selected_streams,
    singer_catalog,
)
from source_usage.source import SourceUsage

USAGE = "meraki_client_usage_histories"
NETWORKS = "meraki_networks"
CONFIG = {"meraki": {"api_key": "k" * 40, "base_url": "http://127.0.0.1:9/meraki/api/v1"}}
USAGE_STATE = {"states": [{"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-20T00:00:00.000000Z"}}]}
MELTANO_YML = Path(__file__).resolve().parent.parent / "meltano.yml"


@pytest.fixture(scope="module")
def discovered() -> AirbyteCatalog:
    return SourceUsage().discover(logging.getLogger("test"), CONFIG)


def entry(catalog: Dict[str, Any], stream: str) -> Dict[str, Any]:
    return next(item for item in catalog["streams"] if item["tap_stream_id"] == stream)


def metadata(catalog_entry: Dict[str, Any], *breadcrumb: str) -> Dict[str, Any]:
    return next(item["metadata"] for item in catalog_entry["metadata"] if item["breadcrumb"] == list(breadcrumb))


def only(catalog: Dict[str, Any], *streams: str) -> Dict[str, Any]:
    for item in catalog["streams"]:
        metadata(item)["selected"] = item["tap_stream_id"] in streams
    return catalog


def message(**fields: Any) -> AirbyteMessage:
    return AirbyteMessageSerializer.load(fields)


def record(stream: str, data: Dict[str, Any]) -> AirbyteMessage:
    return message(type="RECORD", record={"stream": stream, "data": data, "emitted_at": 1_795_440_000_000})  # 2026-11-23T13:20:00Z


def state(stream: str, value: Dict[str, Any]) -> AirbyteMessage:
    return message(type="STATE", state={"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": value}})


def stream_status(stream: str, status: str, reasons: Optional[List[dict]] = None) -> Dict[str, Any]:
    stream_status = {"stream_descriptor": {"name": stream}, "status": status, **({"reasons": reasons} if reasons else {})}
    return {"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0, "stream_status": stream_status}}


def translate(translator: SingerTranslator, *messages: AirbyteMessage) -> List[Dict[str, Any]]:
    return [singer for airbyte in messages for singer in translator.translate(airbyte)]


# ----- catalog ------------------------------------------------------------------------------------------


def test_given_an_incremental_stream_when_discovered_then_its_metadata_forces_incremental_on_its_cursor(discovered: AirbyteCatalog) -> None:
    usage = entry(singer_catalog(discovered), USAGE)

    root = metadata(usage)
    assert usage["replication_key"] == "ts" and usage["replication_method"] == "INCREMENTAL"
    assert usage["key_properties"] == ["networkId", "clientId", "ts"]
    assert root == {
        "inclusion": "available",
        "selected": True,
        "selected-by-default": True,
        "table-key-properties": ["networkId", "clientId", "ts"],
        "forced-replication-method": "INCREMENTAL",
        "valid-replication-keys": ["ts"],
    }
    assert metadata(usage, "properties", "ts") == {"inclusion": "automatic"}
    assert metadata(usage, "properties", "recv") == {"inclusion": "available", "selected-by-default": True}


def test_given_a_snapshot_stream_when_discovered_then_it_is_full_table_without_replication_key(discovered: AirbyteCatalog) -> None:
    networks = entry(singer_catalog(discovered), NETWORKS)

    assert "replication_key" not in networks and networks["replication_method"] == "FULL_TABLE"
    assert metadata(networks)["forced-replication-method"] == "FULL_TABLE"
    assert "valid-replication-keys" not in metadata(networks)
    assert metadata(networks, "properties", "id") == {"inclusion": "automatic"}


# ----- selection ------------------------------------------------------------------------------------------


def test_given_streams_deselected_when_selecting_then_only_the_selected_ones_are_configured_in_their_modes(discovered: AirbyteCatalog) -> None:
    catalog = only(singer_catalog(discovered), USAGE, NETWORKS)

    configured = configured_catalog(selected_streams(catalog, discovered))

    modes = {stream.stream.name: (stream.sync_mode.value, stream.cursor_field) for stream in configured.streams}
    assert modes == {NETWORKS: ("full_refresh", []), USAGE: ("incremental", ["ts"])}


def test_given_no_selected_flag_when_selecting_then_selected_by_default_decides_and_legacy_schema_flags_count(discovered: AirbyteCatalog) -> None:
    catalog = singer_catalog(discovered)
    for item in catalog["streams"]:
        root = metadata(item)
        del root["selected"]
        root["selected-by-default"] = item["tap_stream_id"] == USAGE
    entry(catalog, NETWORKS)["schema"] = {**entry(catalog, NETWORKS)["schema"], "selected": True}

    names = [stream.name for stream in selected_streams(catalog, discovered)]

    assert sorted(names) == [USAGE, NETWORKS]


def test_given_a_deselected_field_when_translating_then_it_leaves_schema_and_records_but_keys_stay(discovered: AirbyteCatalog) -> None:
    catalog = only(singer_catalog(discovered), USAGE)
    for field in ("recv", "ts"):  # `ts` is the replication key: automatic, so it stays
        metadata(entry(catalog, USAGE), "properties", field)["selected"] = False
    translator = SingerTranslator(selected_streams(catalog, discovered))

    usage = {"networkId": "N_1", "clientId": "k1", "ts": "2026-11-20T00:00:00Z", "recv": 5, "sent": 2}

    schema, singer_record = translate(translator, record(USAGE, usage))

    assert "recv" not in schema["schema"]["properties"] and "ts" in schema["schema"]["properties"]
    assert singer_record["record"] == {"networkId": "N_1", "clientId": "k1", "ts": "2026-11-20T00:00:00Z", "sent": 2}


def test_given_a_selected_stream_this_config_lacks_when_selecting_then_a_config_error_names_it(discovered: AirbyteCatalog) -> None:
    catalog = {"streams": [{"tap_stream_id": "emnify_endpoints", "metadata": [{"breadcrumb": [], "metadata": {"selected": True}}]}]}

    with pytest.raises(UsageError, match="selects emnify_endpoints, which this config does not provide"):
        selected_streams(catalog, discovered)


# ----- state ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "singer_state, expected",
    [
        (None, {}),
        ({}, {}),
        ({"bookmarks": {USAGE: USAGE_STATE, "empty": {}}}, {USAGE: USAGE_STATE}),
        ({"singer_state": {"bookmarks": {USAGE: USAGE_STATE}}}, {USAGE: USAGE_STATE}),  # `meltano state get` output
    ],
)
def test_given_a_singer_state_when_read_then_its_bookmarks_are_the_streams_states(singer_state: Any, expected: Dict[str, Any]) -> None:
    assert bookmarks_of(singer_state) == expected


@pytest.mark.parametrize("singer_state", [[{"type": "STREAM"}], {"bookmarks": ["not", "a", "map"]}, "text"])
def test_given_a_state_that_is_not_singers_when_read_then_a_config_error_shows_the_expected_shape(singer_state: Any) -> None:
    with pytest.raises(UsageError, match='must be a Singer state: {"bookmarks"'):
        bookmarks_of(singer_state)


def test_given_bookmarks_when_converted_then_each_becomes_the_airbyte_stream_state_read_takes() -> None:
    [converted] = airbyte_state({USAGE: USAGE_STATE})

    assert AirbyteStateMessageSerializer.dump(converted) == {
        "type": "STREAM",
        "stream": {"stream_descriptor": {"name": USAGE}, "stream_state": USAGE_STATE},
    }


def test_given_airbyte_states_when_translated_then_each_emits_the_cumulative_bookmarks_that_round_trip(discovered: AirbyteCatalog) -> None:
    streams = selected_streams(only(singer_catalog(discovered), USAGE, NETWORKS), discovered)
    translator = SingerTranslator(streams, {"other_stream": {"cursor": 1}})
    later = {"states": [{"partition": {"networkId": "N_1"}, "cursor": {"ts": "2026-11-21T00:00:00.000000Z"}}]}

    states = translate(
        translator,
        state(NETWORKS, {"__ab_no_cursor_state_message": True}),
        state(USAGE, USAGE_STATE),
        state(USAGE, later),
    )

    assert [singer["value"]["bookmarks"] for singer in states] == [
        {"other_stream": {"cursor": 1}},
        {"other_stream": {"cursor": 1}, USAGE: USAGE_STATE},
        {"other_stream": {"cursor": 1}, USAGE: later},
    ]
    assert all(singer["type"] == "STATE" for singer in states)
    round_trip = airbyte_state(bookmarks_of(json.loads(json.dumps(states[-1]["value"]))))
    assert [AirbyteStateMessageSerializer.dump(message)["stream"]["stream_state"] for message in round_trip] == [{"cursor": 1}, later]


# ----- messages ---------------------------------------------------------------------------------------------


def test_given_records_when_translated_then_the_schema_comes_once_before_them_and_unselected_streams_are_dropped(discovered: AirbyteCatalog) -> None:
    translator = SingerTranslator(selected_streams(only(singer_catalog(discovered), NETWORKS), discovered))

    messages = translate(
        translator,
        record(NETWORKS, {"id": "N_1", "name": "HQ"}),
        record("meraki_organizations", {"id": "1"}),
        record(NETWORKS, {"id": "N_2", "name": "Lab"}),
    )

    assert [(singer["type"], singer["stream"]) for singer in messages] == [("SCHEMA", NETWORKS), ("RECORD", NETWORKS), ("RECORD", NETWORKS)]
    assert messages[0]["key_properties"] == ["id"] and "bookmark_properties" not in messages[0]
    assert messages[1] == {
        "type": "RECORD",
        "stream": NETWORKS,
        "record": {"id": "N_1", "name": "HQ"},
        "time_extracted": "2026-11-23T13:20:00.000000Z",
    }


def test_given_a_stream_starts_when_translated_then_its_schema_is_written_even_before_any_record(discovered: AirbyteCatalog) -> None:
    translator = SingerTranslator(selected_streams(only(singer_catalog(discovered), USAGE), discovered))

    started = AirbyteMessageSerializer.load(stream_status(USAGE, "STARTED"))

    messages = translate(translator, started, record(USAGE, {"networkId": "N", "clientId": "c", "ts": "t"}))

    assert [singer["type"] for singer in messages] == ["SCHEMA", "RECORD"]
    assert messages[0]["bookmark_properties"] == ["ts"]


def test_given_error_traces_when_translated_then_the_summary_groups_failed_streams_by_reason(discovered: AirbyteCatalog) -> None:
    translator = SingerTranslator(selected_streams(singer_catalog(discovered), discovered))
    rejected = {"message": "meraki: the API key was rejected (HTTP 401)"}
    errors = [
        message(type="TRACE", trace={"type": "ERROR", "emitted_at": 1.0, "error": {**rejected, "stream_descriptor": {"name": stream}}})
        for stream in (NETWORKS, USAGE)
    ]

    assert translate(translator, *errors) == []

    assert translator.failure_summary() == f"{NETWORKS}, {USAGE} failed: meraki: the API key was rejected (HTTP 401)"


def test_given_the_cdk_prints_a_rate_limited_status_when_stdout_is_redirected_then_it_becomes_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    printed = PrintedMessagesToLog()

    with caplog.at_level(logging.INFO, logger="tap_usage"):
        printed.write(json.dumps(stream_status(USAGE, "RUNNING", [{"type": "RATE_LIMITED"}])) + "\n")
        printed.write("a stray print without newline")
        printed.flush()

    assert [record.getMessage() for record in caplog.records] == [
        f"{USAGE}: rate limited by the vendor, waiting as it asks",
        "a stray print without newline",
    ]


# ----- command line and Meltano -----------------------------------------------------------------------------


def test_given_about_json_when_run_then_it_prints_the_capabilities_and_the_spec(capsys: pytest.CaptureFixture) -> None:
    main(["--about", "--format", "json"])

    about = json.loads(capsys.readouterr().out)
    assert about["capabilities"] == list(CAPABILITIES) and about["settings"] == connection_specification()


@pytest.fixture
def root_logging() -> Iterator[None]:
    """main() sends logs to stderr by replacing the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_given_a_missing_config_file_when_run_then_it_exits_with_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(tmp_path / "missing.json"), "--discover"])

    assert str(exit_info.value.code) == f"tap-usage: Cannot read the --config file {tmp_path / 'missing.json'}: No such file or directory"


def test_given_meltano_yml_then_tap_usage_settings_mirror_the_spec_with_dotted_names_and_secrets_sensitive() -> None:
    project = yaml.safe_load(MELTANO_YML.read_text())
    [tap] = project["plugins"]["extractors"]
    [target] = project["plugins"]["loaders"]
    settings = {setting["name"]: setting for setting in tap["settings"]}
    spec = {name: schema for name, schema, _ in dotted_settings(connection_specification())}

    assert (tap["name"], tap["namespace"], tap["executable"]) == ("tap-usage", "tap_usage", "tap-usage")
    assert tap["capabilities"] == list(CAPABILITIES)
    assert (target["name"], target["executable"]) == ("target-jsonl", "target-jsonl")
    assert list(settings) == list(spec)
    kinds = {"string": {"string", "date_iso8601", "options"}, "integer": {"integer"}, "array": {"array"}}
    for name, schema in spec.items():
        setting = settings[name]
        assert setting["kind"] in kinds[schema["type"]], name
        assert bool(setting.get("sensitive")) == bool(schema.get("airbyte_secret")), name
        assert "value" not in setting, f"{name}: a default would create its vendor's section in every config"
        if "enum" in schema:
            assert [option["value"] for option in setting["options"]] == schema["enum"], name
