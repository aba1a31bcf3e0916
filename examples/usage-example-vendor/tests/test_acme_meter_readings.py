"""acme_meter_readings through the real `source-usage` console script, against the tiny Acme server."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from acme_server import API_KEY, AcmeServer

CONNECTOR = str(Path(sys.executable).parent / "source-usage")
STREAM = "acme_meter_readings"


def run(command: str, config: Dict[str, Any], catalog: Optional[dict] = None, state: Optional[list] = None) -> List[dict]:
    with tempfile.TemporaryDirectory() as folder:
        args = [CONNECTOR, command]
        for name, content in (("config", config), ("catalog", catalog), ("state", state)):
            if content is not None:
                path = Path(folder) / f"{name}.json"
                path.write_text(json.dumps(content))
                args += [f"--{name}", str(path)]
        completed = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def catalog() -> dict:
    stream = {"name": STREAM, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]}
    return {"streams": [{"stream": stream, "sync_mode": "incremental", "cursor_field": ["read_at"], "destination_sync_mode": "append"}]}


def records(messages: List[dict]) -> List[dict]:
    return [message["record"]["data"] for message in messages if message["type"] == "RECORD" and message["record"]["stream"] == STREAM]


def config(server: AcmeServer, hours_back: int = 10) -> Dict[str, Any]:
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = (hour - timedelta(hours=hours_back)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"start_date": start, "acme": {"api_key": API_KEY, "base_url": server.base_url}}


def test_given_the_plugin_installed_when_spec_and_discover_run_then_its_section_and_stream_appear() -> None:
    with AcmeServer() as server:
        completed = subprocess.run([CONNECTOR, "spec"], capture_output=True, text=True, timeout=60)
        [spec] = [json.loads(line)["spec"] for line in completed.stdout.splitlines() if '"SPEC"' in line]
        section = spec["connectionSpecification"]["properties"]["acme"]
        assert section["properties"]["api_key"]["airbyte_secret"] is True
        [catalog_message] = [message["catalog"] for message in run("discover", config(server)) if message["type"] == "CATALOG"]
    assert {stream["name"] for stream in catalog_message["streams"]} == {STREAM, "usage_ledger"}


def test_given_readings_on_several_pages_when_read_then_every_reading_since_the_start_arrives_once_with_the_key_sent() -> None:
    with AcmeServer(meters=3, hours=30) as server:
        messages = run("read", config(server, hours_back=10), catalog())
        sent_keys = {request["key"] for request in server.requests}
        pages = len(server.requests)
    got = records(messages)
    assert len(got) == 3 * 11, "hours 0..10 back for three meters"
    assert len({(record["meter_id"], record["read_at"]) for record in got}) == len(got)
    assert {record["kwh"] for record in got if record["meter_id"] == "m-2" and record["read_at"] == got[-1]["read_at"]} == {2.0}
    assert sent_keys == {API_KEY}
    assert pages == 5, "33 readings in pages of at most 7, following next_cursor"


def test_given_a_saved_state_when_read_again_then_only_the_last_two_hours_before_it_are_read_again() -> None:
    with AcmeServer(meters=2, hours=30) as server:
        first = run("read", config(server, hours_back=10), catalog())
        state = [message["state"] for message in first if message["type"] == "STATE"][-1]
        saved = state["stream"]["stream_state"]["read_at"]
        second = records(run("read", config(server, hours_back=10), catalog(), state=[state]))
    earliest = min(record["read_at"] for record in second)
    assert datetime.fromisoformat(earliest.replace("Z", "+00:00")) == datetime.fromisoformat(saved.replace("Z", "+00:00")) - timedelta(hours=2)


def test_given_a_wrong_key_when_check_runs_then_it_fails_naming_the_key() -> None:
    with AcmeServer() as server:
        broken = config(server)
        broken["acme"]["api_key"] = "wrong-key-00000000"
        [status] = [message["connectionStatus"] for message in run("check", broken) if message["type"] == "CONNECTION_STATUS"]
    assert status == {"status": "FAILED", "message": "acme: the API key was rejected (HTTP 401)"}
