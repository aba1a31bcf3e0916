"""Runs the real `source-usage` console script against the emulator and inspects what it printed.

Each run is its own process started by integration_tests/launcher.py: forked from a server that has the
connector imported already (the installed script itself then runs in it), or a real exec of the script with
`real_exec=True` or SOURCE_USAGE_TEST_EXEC=1."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from integration_tests import launcher
from source_usage.source import SourceUsage

CONNECTOR = str(Path(sys.executable).parent / "source-usage")
LEDGER = "usage_ledger"  # built from the vendor streams: reconciled against them (test_ledger.py), not the emulator


def start_date(days_ago: int = 20) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Run:
    """Everything one connector process wrote, parsed."""

    returncode: int
    messages: List[dict]
    stdout: str
    stderr: str
    records_by_stream: Dict[str, List[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for message in self.messages:
            if message.get("type") == "RECORD":
                record = message["record"]
                self.records_by_stream.setdefault(record["stream"], []).append(record["data"])

    def records(self, stream: str) -> List[dict]:
        return self.records_by_stream.get(stream, [])

    @property
    def state_messages(self) -> List[dict]:
        return [message["state"] for message in self.messages if message.get("type") == "STATE"]

    def final_state(self) -> List[dict]:
        """The last state of every stream, in the shape `read --state` takes."""
        latest: Dict[str, dict] = {}
        for state in self.state_messages:
            name = state["stream"]["stream_descriptor"]["name"]
            latest[name] = {"type": "STREAM", "stream": state["stream"]}
        return list(latest.values())

    @property
    def errors(self) -> List[dict]:
        return [
            message["trace"]["error"]
            for message in self.messages
            if message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR"
        ]

    def logs(self, *levels: str) -> List[str]:
        return [
            message["log"]["message"]
            for message in self.messages
            if message.get("type") == "LOG" and (not levels or message["log"]["level"] in levels)
        ]

    @property
    def connection_status(self) -> Optional[dict]:
        statuses = [message["connectionStatus"] for message in self.messages if message.get("type") == "CONNECTION_STATUS"]
        return statuses[-1] if statuses else None

    def stream_statuses(self, stream: str) -> List[str]:
        return [
            message["trace"]["stream_status"]["status"]
            for message in self.messages
            if message.get("type") == "TRACE"
            and message["trace"].get("type") == "STREAM_STATUS"
            and message["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
        ]


def run_connector(
    command: str,
    config: Optional[Mapping[str, Any]] = None,
    catalog: Optional[Mapping[str, Any]] = None,
    state: Optional[Sequence[Mapping[str, Any]]] = None,
    timeout: float = 600,
    env: Optional[Mapping[str, str]] = None,
    extra_args: Sequence[str] = (),
    real_exec: bool = False,
) -> Run:
    """`source-usage <command>` with these files, the test process's environment plus `env`; the process is
    forked from the launcher's server unless `real_exec` (the installed executable, exec'd)."""
    with tempfile.TemporaryDirectory() as folder:
        args = [CONNECTOR, command]
        for name, content in (("config", config), ("catalog", catalog), ("state", state)):
            if content is not None:
                path = Path(folder) / f"{name}.json"
                path.write_text(json.dumps(content))
                args += [f"--{name}", str(path)]
        completed = launcher.run([*args, *extra_args], timeout=timeout, env={**os.environ, **(env or {})}, real_exec=real_exec)
    messages = []
    for line in completed.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                messages.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return Run(completed.returncode, messages, completed.stdout, completed.stderr)


def configured_catalog(
    config: Mapping[str, Any], streams: Optional[Iterable[str]] = None, sync_mode: str = "incremental"
) -> Dict[str, Any]:
    """A configured catalog for `streams` (default: every vendor stream; the usage ledger only when named),
    incremental where the stream supports it."""
    catalog = SourceUsage().discover(logging.getLogger("test"), config)
    wanted = set(streams) if streams is not None else None
    configured = []
    for stream in catalog.streams:
        if (wanted is not None and stream.name not in wanted) or (wanted is None and stream.name == LEDGER):
            continue
        modes = [mode.value for mode in stream.supported_sync_modes]
        mode = sync_mode if sync_mode in modes else "full_refresh"
        configured.append(
            {
                "stream": {
                    "name": stream.name,
                    "json_schema": stream.json_schema,
                    "supported_sync_modes": modes,
                    "source_defined_cursor": stream.source_defined_cursor,
                    "default_cursor_field": stream.default_cursor_field,
                    "source_defined_primary_key": stream.source_defined_primary_key,
                },
                "sync_mode": mode,
                "cursor_field": stream.default_cursor_field or [],
                "destination_sync_mode": "append",
            }
        )
    if wanted is not None:
        missing = wanted - {entry["stream"]["name"] for entry in configured}
        assert not missing, f"streams not discovered: {missing}"
    return {"streams": configured}


def all_stream_names(config: Mapping[str, Any]) -> List[str]:
    """Every stream `discover` lists for `config`, the usage ledger included."""
    return [stream.name for stream in SourceUsage().discover(logging.getLogger("test"), config).streams]


# The keys records are matched on, written here from the vendors' data (not discovered from the connector, so
# that a connector declaring the wrong key cannot make its own records look right).
PRIMARY_KEYS: Dict[str, List[str]] = {
    "meraki_organizations": ["id"],
    "meraki_networks": ["id"],
    "meraki_network_clients": ["networkId", "id"],
    "meraki_client_usage_histories": ["networkId", "clientId", "ts"],
    "meraki_organization_licenses": ["organizationId", "id"],
    "twilio_supersim_usage_records": ["sim_sid", "start_time"],
    "emnify_endpoints": ["id"],
    "emnify_endpoint_usage_monthly": ["endpoint_id", "month", "traffic_type_id"],
    "emnify_endpoint_usage_last_hour": ["endpoint_id", "traffic_type", "minute"],
    "emnify_endpoint_usage_daily": ["endpoint_id", "date", "traffic_kind"],
    "thousandeyes_usage": ["monthStart"],
    "thousandeyes_test_usage": ["monthStart", "aid", "testId"],
    "usage_ledger": ["vendor", "account_id", "subject_type", "subject_id", "metric", "granularity", "period_start"],
}


def primary_key(catalog: Mapping[str, Any], stream: str) -> List[str]:
    """The key to match `stream`'s records on; the catalog must list the stream (and declare that key)."""
    names = {entry["stream"]["name"]: entry for entry in catalog["streams"]}
    if stream not in names:
        raise KeyError(stream)
    declared = [path[0] for path in names[stream]["stream"]["source_defined_primary_key"]]
    assert declared == PRIMARY_KEYS[stream], f"{stream} declares the primary key {declared}, not {PRIMARY_KEYS[stream]}"
    return PRIMARY_KEYS[stream]


def key_of(record: Mapping[str, Any], pk: Sequence[str]) -> tuple:
    return tuple(json.dumps(record.get(field), sort_keys=True) for field in pk)


def without_nulls(record: Mapping[str, Any]) -> dict:
    """The Airbyte protocol serializer leaves out top-level null fields: a missing field means null."""
    return {key: value for key, value in record.items() if value is not None}


def check_observed_at(records: Iterable[Mapping[str, Any]], stream: str, within: timedelta = timedelta(minutes=15)) -> List[dict]:
    """The records without `observed_at` (when the figure was read cannot be known in advance), after
    checking that each usage record carries one: an RFC 3339 UTC instant of the read, so no earlier than the
    start of this test process (which ran the read), and no later than now plus `within` (emnify's
    `observed_at` is the server's `Date`, and the emulator's clock runs ahead by 5 minutes a step when a
    test advances it). Where the process's start cannot be read (no /proc), `within` before now."""
    now = datetime.now(timezone.utc)
    earliest, latest = now - within, now + within
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # starttime, clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        earliest = datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    stripped = []
    for record in records:
        if "is_final" in record:
            observed = record.get("observed_at")
            assert isinstance(observed, str) and observed.endswith("Z"), f"{stream}: observed_at {observed!r} is not a UTC instant"
            moment = datetime.fromisoformat(observed.replace("Z", "+00:00"))
            assert earliest <= moment <= latest, f"{stream}: observed_at {observed} is not between this test process's start ({earliest}) and {latest}"
        stripped.append({key: value for key, value in record.items() if key != "observed_at"})
    return stripped


def assert_records_match(actual: List[dict], expected: List[dict], pk: Sequence[str], stream: str) -> None:
    """Same records by primary key, no duplicate keys, and every field equal (a missing field is null)."""
    actual = [without_nulls(record) for record in check_observed_at(actual, stream)]
    expected = [without_nulls({key: value for key, value in record.items() if key != "observed_at"}) for record in expected]
    actual_keys = [key_of(record, pk) for record in actual]
    duplicates = len(actual_keys) - len(set(actual_keys))
    assert duplicates == 0, f"{stream}: {duplicates} duplicate primary keys"
    actual_by_key = dict(zip(actual_keys, actual))
    expected_by_key = {key_of(record, pk): record for record in expected}
    missing = expected_by_key.keys() - actual_by_key.keys()
    extra = actual_by_key.keys() - expected_by_key.keys()
    assert not missing and not extra, (
        f"{stream}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(extra)} extra (e.g. {sorted(extra)[:3]})"
    )
    for key, record in expected_by_key.items():
        assert actual_by_key[key] == record, f"{stream} {key}: got {actual_by_key[key]}, expected {record}"


def assert_read_matches_emulator(
    run: Run,
    emulator: Any,
    catalog: Mapping[str, Any],
    streams: Optional[Sequence[str]] = None,
    holds_records: bool = False,
    **options: Any,
) -> None:
    """A read that succeeded and returned, for each of `streams` (default: the catalog's), exactly what the
    emulator holds for the run's options (start date, granularity...). `holds_records`: also insist the
    emulator holds some records for each stream, so that the comparison cannot pass on empty streams."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.errors
    for stream in streams or [entry["stream"]["name"] for entry in catalog["streams"] if entry["stream"]["name"] != LEDGER]:
        expected = emulator.expected(stream, **options)
        if holds_records:
            assert expected, f"the emulator holds no {stream}"
        assert_records_match(run.records(stream), expected, primary_key(catalog, stream), stream)


def distinct_keys(records: Iterable[Mapping[str, Any]], pk: Sequence[str]) -> set:
    return {key_of(record, pk) for record in records}
