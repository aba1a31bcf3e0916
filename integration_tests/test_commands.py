"""spec, check, discover and read of every stream, through the real `source-usage` process."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from collections import Counter
from typing import List

import pytest

from integration_tests.harness import (
    assert_read_matches_emulator,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator

USAGE_STREAMS = {
    "meraki_client_usage_histories",
    "meraki_organization_licenses",
    "twilio_supersim_usage_records",
    "emnify_endpoint_usage_monthly",
    "emnify_endpoint_usage_last_hour",
    "emnify_endpoint_usage_daily",
    "thousandeyes_usage",
    "thousandeyes_test_usage",
    "usage_ledger",
}
LISTINGS = {"meraki_organizations", "meraki_networks", "meraki_network_clients", "emnify_endpoints"}


def test_spec_marks_every_secret_and_exposes_exactly_the_documented_keys() -> None:
    run = run_connector("spec", real_exec=True)
    assert run.returncode == 0
    [spec] = [message["spec"] for message in run.messages if message["type"] == "SPEC"]
    properties = spec["connectionSpecification"]["properties"]
    assert set(properties) == {"start_date", "meraki", "twilio", "emnify", "thousandeyes", "shard"}
    secrets = {
        (vendor, key)
        for vendor in ("meraki", "twilio", "emnify", "thousandeyes")
        for key, field in properties[vendor]["properties"].items()
        if field.get("airbyte_secret")
    }
    assert secrets == {
        ("meraki", "api_key"),
        ("twilio", "auth_token"),
        ("twilio", "api_key_secret"),
        ("emnify", "application_token"),
        ("thousandeyes", "bearer_token"),
    }


def test_spec_assembled_from_the_plugins_equals_the_published_spec_for_the_four_vendors() -> None:
    """The published spec (integration_tests/published_spec.json, the connector's spec before vendors became
    plugins) is what users' configs were written against: assembling it from the plugins changes nothing."""
    published = json.loads((Path(__file__).parent / "published_spec.json").read_text())
    run = run_connector("spec")
    [spec] = [message["spec"] for message in run.messages if message["type"] == "SPEC"]
    assert spec["documentationUrl"] == published["documentationUrl"]
    assembled = spec["connectionSpecification"]
    for key in ("$schema", "title", "type", "additionalProperties"):
        assert assembled[key] == published["connectionSpecification"][key]
    added_since = {"emnify": {"daily_lookback_days"}}  # options added after publication, on purpose
    for name, schema in published["connectionSpecification"]["properties"].items():
        new = {key: value for key, value in assembled["properties"][name].get("properties", {}).items() if key not in added_since.get(name, set())}
        assert {**assembled["properties"][name], "properties": new} == {**schema, "properties": schema.get("properties", {})}, name
        assert set(assembled["properties"][name].get("properties", {})) - set(schema.get("properties", {})) == added_since.get(name, set())


def test_check_succeeds_against_every_vendor(emulator: Emulator) -> None:
    run = run_connector("check", emulator.config(), real_exec=True)
    assert run.returncode == 0
    assert run.connection_status == {"status": "SUCCEEDED"}


def test_check_reports_each_rejected_credential_on_its_own_line(emulator: Emulator) -> None:
    config = emulator.config()
    config["meraki"]["api_key"] = "f" * 40
    config["emnify"]["application_token"] = "not-a-token"
    run = run_connector("check", config)

    assert run.returncode == 0
    status = run.connection_status
    assert status["status"] == "FAILED"
    assert status["message"].splitlines() == [
        "meraki: the API key was rejected (HTTP 401)",
        "emnify: the application token was rejected (HTTP 401)",
    ]


def test_discover_lists_only_the_configured_vendors_streams(emulator: Emulator) -> None:
    everything = run_connector("discover", emulator.config(), real_exec=True)
    names = {stream["name"] for message in everything.messages if message["type"] == "CATALOG" for stream in message["catalog"]["streams"]}
    assert names == USAGE_STREAMS | LISTINGS

    only_twilio = run_connector("discover", emulator.config(vendors=["twilio"]))
    [catalog] = [message["catalog"] for message in only_twilio.messages if message["type"] == "CATALOG"]
    assert {stream["name"] for stream in catalog["streams"]} == {"twilio_supersim_usage_records", "usage_ledger"}


def test_discover_declares_primary_keys_and_cursors(emulator: Emulator) -> None:
    catalog = configured_catalog(emulator.config())
    declared = {
        entry["stream"]["name"]: (entry["stream"]["source_defined_primary_key"], entry["stream"]["default_cursor_field"] or [])
        for entry in catalog["streams"]
    }
    assert declared["meraki_client_usage_histories"] == ([["networkId"], ["clientId"], ["ts"]], ["ts"])
    assert declared["meraki_organization_licenses"] == ([["organizationId"], ["id"]], [])
    assert declared["twilio_supersim_usage_records"] == ([["sim_sid"], ["start_time"]], ["start_time"])
    assert declared["emnify_endpoint_usage_monthly"] == ([["endpoint_id"], ["month"], ["traffic_type_id"]], ["last_updated"])
    assert declared["emnify_endpoint_usage_last_hour"] == ([["endpoint_id"], ["traffic_type"], ["minute"]], ["minute"])
    assert declared["thousandeyes_usage"] == ([["monthStart"]], ["monthStart"])
    assert declared["thousandeyes_test_usage"] == ([["monthStart"], ["aid"], ["testId"]], ["monthStart"])


def test_full_read_of_every_stream_equals_what_the_emulator_holds(emulator: Emulator) -> None:
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config)
    run = run_connector("read", config, catalog, real_exec=True)

    assert_read_matches_emulator(run, emulator, catalog, start_date=config["start_date"])
    assert_state_messages_count_the_records_before_them(run.messages)


def assert_state_messages_count_the_records_before_them(messages: List[dict]) -> None:
    """Airbyte checks each state's `sourceStats.recordCount` against the records it received since the last one."""
    since_last_state: Counter = Counter()
    checked = 0
    for message in messages:
        if message.get("type") == "RECORD":
            since_last_state[message["record"]["stream"]] += 1
        elif message.get("type") == "STATE":
            stream = message["state"]["stream"]["stream_descriptor"]["name"]
            assert message["state"]["sourceStats"]["recordCount"] == since_last_state.pop(stream, 0), stream
            checked += 1
    assert checked and not since_last_state, f"records after the last state: {dict(since_last_state)}"


def test_incremental_read_returns_new_usage_and_nothing_delivered_before_beyond_the_lookbacks(emulator: Emulator) -> None:
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config)
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]

    emulator.advance(1)
    second = run_connector("read", config, catalog, state=first.final_state())

    assert second.returncode == 0, second.stderr[-3000:]
    for entry in catalog["streams"]:
        stream = entry["stream"]["name"]
        if entry["sync_mode"] != "incremental":
            continue
        pk = primary_key(catalog, stream)
        expected = distinct_keys(emulator.expected(stream, start_date=config["start_date"]), pk)
        delivered = distinct_keys(first.records(stream), pk) | distinct_keys(second.records(stream), pk)
        assert expected <= delivered, f"{stream}: {len(expected - delivered)} records never delivered"
        assert len(second.records(stream)) <= len(first.records(stream)) + len(expected - distinct_keys(first.records(stream), pk)), stream


@pytest.mark.parametrize(
    "change, field, problem",
    [
        (lambda config: config["meraki"].pop("api_key"), "meraki.api_key", "is required"),
        (lambda config: config.__setitem__("start_date", "23/11/2026"), "start_date", "must be YYYY-MM-DDTHH:mm:ssZ"),
        (lambda config: config["twilio"].__setitem__("granularity", "month"), "twilio.granularity", "must be one of 'hour', 'day'"),
        (lambda config: config["emnify"].__setitem__("base_url", "ftp://cdn.emnify.net/api/v1"), "emnify.base_url", "http:// or https://"),
    ],
)
@pytest.mark.parametrize("command", ["check", "discover", "read"])
def test_an_invalid_config_is_a_one_line_config_error_naming_the_field_before_any_request(
    emulator: Emulator, command: str, change, field: str, problem: str
) -> None:
    valid = emulator.config()
    catalog = configured_catalog(valid, ["meraki_organizations"])
    config = copy.deepcopy(valid)
    change(config)
    emulator.reset_stats()

    run = run_connector(command, config, catalog if command == "read" else None)

    message = f"Invalid config: {field} "
    if command == "check":
        assert run.returncode == 0
        assert run.connection_status["status"] == "FAILED"
        assert run.connection_status["message"].startswith(message) and problem in run.connection_status["message"]
    else:
        assert run.returncode != 0
        [error] = run.errors
        assert error["failure_type"] == "config_error"
        assert error["message"].startswith(message) and problem in error["message"]
        assert "\n" not in error["message"]
    assert "Traceback" not in run.stdout + run.stderr
    assert sum(app["requests"] for app in emulator.stats().values()) == 0


FOREIGN_STATES = [
    pytest.param(
        [
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "meraki_client_usage_histories"}, "stream_state": {"ts": "2026-11-01"}}},
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "twilio_supersim_usage_records"}, "stream_state": {"states": [1, 2]}}},
        ],
        2,
        id="another-cursor-shape",
    ),
    pytest.param({"meraki_client_usage_histories": {"ts": "2026-11-01T00:00:00Z"}}, 1, id="legacy-object-of-stream-states"),
    pytest.param("not a state", 1, id="not-a-state-at-all"),
]


@pytest.mark.parametrize("state, warnings", FOREIGN_STATES)
def test_a_state_of_a_foreign_shape_is_ignored_with_a_warning_and_the_sync_starts_over(emulator: Emulator, state, warnings: int) -> None:
    config = emulator.config(vendors=["meraki", "twilio"], start_date=start_date())
    catalog = configured_catalog(config, ["meraki_client_usage_histories", "twilio_supersim_usage_records"])

    run = run_connector("read", config, catalog, state=state)

    assert run.returncode == 0, run.stderr[-2000:]
    expected = emulator.expected("meraki_client_usage_histories", start_date=config["start_date"])
    assert_records_match(run.records("meraki_client_usage_histories"), expected, primary_key(catalog, "meraki_client_usage_histories"), "meraki")
    assert len([line for line in run.logs("WARN") if "state" in line]) == warnings
    assert "Traceback" not in run.stdout + run.stderr


def test_a_config_file_that_is_not_json_is_a_one_line_config_error(tmp_path) -> None:
    broken = tmp_path / "config.json"
    broken.write_text('{"meraki": {"api_key": ')
    run = run_connector("check", extra_args=["--config", str(broken)])

    [error] = run.errors
    message = error["message"]
    assert error["failure_type"] == "config_error"
    assert message.startswith("Invalid config: (config file) cannot be read")
    assert "Traceback" not in run.stdout + run.stderr
