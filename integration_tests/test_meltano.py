"""`meltano run tap-usage target-jsonl` with the repository's meltano.yml, against the emulator.

Meltano is installed from the package index once, outside the test, into `.meltano-venv/` at the repository
root (git-ignored), and reused by later runs: the venv holds Meltano, its `meltano-sys/` folder the plugins
`meltano install` put there (tap-usage editable from this checkout, target-jsonl), refreshed when meltano.yml
or setup.py change. CI pre-installs it the same way (.ci/run). Without the package index the
test skips with the reason, unless SOURCE_USAGE_REQUIRE_MELTANO=1.

Each test runs a fresh project (a copy of meltano.yml whose `pip_url` points at this repository) with its own
state database; the emulator's URLs and credentials reach the tap as Meltano environment variables
(TAP_USAGE_<SETTING>).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, NoReturn, Optional

import pytest

from integration_tests.harness import (
    LEDGER,
    PRIMARY_KEYS,
    all_stream_names,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    key_of,
    primary_key,
    start_date,
)
from source_usage.emulator import Emulator
from source_usage.framework.windows import floor_time, parse_timestamp


REPO = Path(__file__).resolve().parent.parent
MELTANO = "meltano>=4,<5"
MELTANO_VERSION = re.compile(r"\bversion 4\.")  # `meltano --version` of a release MELTANO allows
MELTANO_HOME = REPO / ".meltano-venv"  # Meltano's venv, reused by every run
PLUGINS = MELTANO_HOME / "meltano-sys"  # Meltano's system folder (MELTANO_SYS_DIR_ROOT): the plugins' venvs
INSTALL_TIMEOUT_SECONDS = 900
pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_SECONDS + 300)]  # the first run installs Meltano
# What pip or uv print when the package index cannot be reached (anything else is a real failure).
NO_INDEX = re.compile(
    r"Could not find a version|No matching distribution|Failed to establish a new connection|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|Connection refused|ConnectTimeout|ReadTimeout|timed out|Failed to fetch"
    r"|error sending request|dns error|No solution found",
    re.IGNORECASE,
)
STATE_ID = "dev:tap-usage-to-target-jsonl"  # <environment>:<extractor>-to-<loader>
COMMAND_TIMEOUT_SECONDS = 300

Rule = Callable[[dict, dict, List[dict], Mapping[str, Any]], bool]

# What the second run may read again, per incremental stream, as each vendor module documents it:
# (record, its copy from the first run, the first run's records, the stream's bookmark) -> allowed?
REREAD_RULES: Dict[str, Rule] = {
    # Meraki: the last `lookback_days` (default 1) before the newest usage point, whose bucket still grows.
    "meraki_client_usage_histories": lambda record, _, first, __: parse_timestamp(record["ts"])
    >= max(parse_timestamp(old["ts"]) for old in first) - timedelta(days=1),
    # Twilio: `lookback_hours` (default 48) before the saved period start, for late usage and billing.
    "twilio_supersim_usage_records": lambda record, _, __, bookmark: parse_timestamp(record["start_time"])
    >= floor_time(parse_timestamp(bookmark["start_time"]) - timedelta(hours=48), timedelta(days=1)),
    # emnify: only monthly figures that changed, a minute again only when it was provisional (now final),
    # and the daily series' `daily_lookback_days` (default 2) before each endpoint's newest day.
    "emnify_endpoint_usage_monthly": lambda record, old, _, __: record != old,
    "emnify_endpoint_usage_last_hour": lambda record, old, _, __: not old["is_final"] and record["is_final"],
    "emnify_endpoint_usage_daily": lambda record, _, first, __: date.fromisoformat(record["date"])
    >= max(date.fromisoformat(old["date"]) for old in first if old["endpoint_id"] == record["endpoint_id"]) - timedelta(days=2),
    # ThousandEyes: the current billing period, which keeps changing until it ends.
    "thousandeyes_usage": lambda record, _, first, __: record["monthStart"] == max(old["monthStart"] for old in first),
    "thousandeyes_test_usage": lambda record, _, first, __: record["monthStart"] == max(old["monthStart"] for old in first),
}


def run(command: List[str], cwd: Path, env: Mapping[str, str]) -> str:
    completed = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}"
    return completed.stdout


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("SOURCE_USAGE_REQUIRE_MELTANO") == "1":
        pytest.fail(f"SOURCE_USAGE_REQUIRE_MELTANO=1 but {reason}")
    pytest.skip(reason)


def install_step(command: List[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    """Runs an installation command: skips (see `unavailable`) when it could not reach the package index,
    fails on any other error."""
    try:
        completed = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        unavailable(f"{what} took more than {INSTALL_TIMEOUT_SECONDS} s (is the package index reachable?)")
    if completed.returncode == 0:
        return
    output = f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    lines = [line.strip() for line in output.splitlines() if NO_INDEX.search(line)]
    if lines:
        where = [line.strip() for line in output.splitlines() if line.startswith("Looking in indexes")]
        unavailable(f"{what} could not get it from the package index: {lines[-1][:300]}{' (' + where[0] + ')' if where else ''}")
    pytest.fail(f"{what} failed ({' '.join(command)}):\n{output}")


def meltano_version(executable: Path) -> Optional[str]:
    try:
        completed = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() if completed.returncode == 0 and MELTANO_VERSION.search(completed.stdout) else None


def project_from_repository(folder: Path) -> Path:
    """The repository's meltano.yml, with the tap installed from this checkout."""
    text = (REPO / "meltano.yml").read_text()
    assert "pip_url: -e .\n" in text, "meltano.yml installs tap-usage from the checkout it is in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meltano.yml").write_text(text.replace("pip_url: -e .\n", f"pip_url: -e {REPO}\n"))
    return folder


@dataclass(frozen=True)
class Meltano:
    executable: Path
    env: Mapping[str, str]  # what every command of a test's project needs besides the tap's settings


@pytest.fixture(scope="session")
def meltano() -> Iterator[Meltano]:
    """Meltano and the project's plugins, installed once into `.meltano-venv/` and reused (under a lock: two
    test runs in one checkout take turns)."""
    import fcntl

    MELTANO_HOME.mkdir(exist_ok=True)
    with open(REPO / ".meltano-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        executable = MELTANO_HOME / "bin" / "meltano"
        version = meltano_version(executable)
        if version is None:
            shutil.rmtree(MELTANO_HOME, ignore_errors=True)
            install_step([sys.executable, "-m", "venv", str(MELTANO_HOME)], REPO, os.environ, "creating .meltano-venv")
            pip = [str(MELTANO_HOME / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off", MELTANO]
            install_step(pip, REPO, os.environ, f"installing {MELTANO}")
            version = meltano_version(executable)
            assert version, f"{executable} does not run after installing {MELTANO}"
        env = {
            **{key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONHOME")},
            "MELTANO_SYS_DIR_ROOT": str(PLUGINS),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        }
        # The plugins again when what they are installed from changed (tap-usage is editable: code changes need none).
        project = project_from_repository(MELTANO_HOME / "project")
        fingerprint = hashlib.sha256(
            "\n".join([version, (project / "meltano.yml").read_text(), (REPO / "setup.py").read_text()]).encode()
        ).hexdigest()
        stamp = PLUGINS / "source-usage-fingerprint"
        installed = [PLUGINS / "extractors" / "tap-usage" / "venv" / "bin" / "tap-usage", PLUGINS / "loaders" / "target-jsonl" / "venv" / "bin" / "target-jsonl"]
        if not (stamp.exists() and stamp.read_text() == fingerprint and all(path.exists() for path in installed)):
            stamp.unlink(missing_ok=True)
            install_env = {**env, "MELTANO_DATABASE_URI": f"sqlite:///{project / 'meltano.db'}"}
            install_step([str(executable), "install"], project, install_env, "meltano install (tap-usage, target-jsonl)")
            stamp.write_text(fingerprint)
        yield Meltano(executable, env)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=31, rate_limits=True) as running:
        yield running


def meltano_env(config: Mapping[str, Any], base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The connector config as Meltano setting variables: `meraki.api_key` is TAP_USAGE_MERAKI_API_KEY."""
    env = dict(base) if base is not None else {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false", MELTANO_CLI_DISABLE_VERSION_CHECK="true", TARGET_JSONL_DO_TIMESTAMP_FILE="false")
    for name, value in config.items():
        for key, setting in (value.items() if isinstance(value, Mapping) else [(None, value)]):
            variable = "_".join(part for part in ("TAP_USAGE", name, key) if part).upper()
            env[variable] = json.dumps(setting) if isinstance(setting, (list, dict)) else str(setting)
    return env


def jsonl_records(folder: Path) -> Dict[str, List[dict]]:
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines()] for path in sorted(folder.glob("*.jsonl"))}


def test_meltano_runs_tap_usage_into_jsonl_and_the_second_run_continues_from_the_saved_state(
    meltano: Meltano, emulator: Emulator, tmp_path: Path
) -> None:
    project = project_from_repository(tmp_path / "project")
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config, all_stream_names(config))  # Meltano selects every stream, the ledger too
    streams = [entry["stream"]["name"] for entry in catalog["streams"] if entry["stream"]["name"] != LEDGER]
    incremental = [entry["stream"]["name"] for entry in catalog["streams"] if entry["sync_mode"] == "incremental" and entry["stream"]["name"] != LEDGER]
    assert set(REREAD_RULES) == set(incremental), "every incremental stream has its documented re-read rule"
    written = (project / "meltano.yml").read_text()
    env = meltano_env(config, {**meltano.env, "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}"})  # this test's own state
    command = [str(meltano.executable), "run", "tap-usage", "target-jsonl"]

    run(command, project, {**env, "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "first")})

    first = jsonl_records(tmp_path / "first")
    assert set(first) == set(streams) | {LEDGER}
    for stream in streams:
        expected = emulator.expected(stream, start_date=config["start_date"])
        assert_records_match(first[stream], expected, primary_key(catalog, stream), stream)
    assert_ledger_rows_once_and_as_their_sources(first)
    assert {row["vendor"] for row in first[LEDGER]} == {"meraki", "twilio", "emnify", "thousandeyes"}
    saved = json.loads(run([str(meltano.executable), "state", "get", STATE_ID], project, env))["singer_state"]["bookmarks"]
    assert set(saved) == set(incremental) | {LEDGER}

    emulator.advance(1)
    run(command, project, {**env, "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "second")})

    second = jsonl_records(tmp_path / "second")
    assert (project / "meltano.yml").read_text() == written, "Meltano left meltano.yml as committed (a clone stays clean)"
    for stream in streams:
        if stream in incremental:
            assert_only_new_and_documented_rereads(stream, first[stream], second.get(stream, []), saved[stream], emulator, config, catalog)
        else:  # snapshots are read whole every time
            expected = emulator.expected(stream, start_date=config["start_date"])
            assert_records_match(second[stream], expected, primary_key(catalog, stream), stream)
    assert sum(len(second.get(stream, [])) for stream in incremental) < sum(len(first[stream]) for stream in incremental)
    for stream in ("meraki_client_usage_histories", "twilio_supersim_usage_records", "emnify_endpoint_usage_last_hour"):
        pk = primary_key(catalog, stream)
        assert distinct_keys(second.get(stream, []), pk) - distinct_keys(first[stream], pk), f"{stream}: the new usage arrived"
    assert_ledger_rows_once_and_as_their_sources(second)
    assert 0 < len(second[LEDGER]) < len(first[LEDGER]), "the ledger continued from its saved state"


def assert_ledger_rows_once_and_as_their_sources(run_files: Mapping[str, List[dict]]) -> None:
    """One run's ledger file: each key once, and each Meraki and Twilio row as final as the record of the same
    run it was built from."""
    rows = run_files[LEDGER]
    keys = [tuple(row[field] for field in PRIMARY_KEYS[LEDGER]) for row in rows]
    duplicates = len(keys) - len(set(keys))
    assert duplicates == 0, f"{duplicates} ledger keys twice in one run"
    finality = {
        ("meraki_client_usage_histories", f"{record['networkId']}/{record['clientId']}", record["ts"]): record["is_final"]
        for record in run_files.get("meraki_client_usage_histories", [])
    }
    finality.update(
        {("twilio_supersim_usage_records", record["sim_sid"], record["start_time"]): record["is_final"] for record in run_files.get("twilio_supersim_usage_records", [])}
    )
    checked = [row for row in rows if row["source_stream"] in ("meraki_client_usage_histories", "twilio_supersim_usage_records")]
    assert checked, "the run's ledger holds Meraki and Twilio rows"
    for row in checked:
        assert row["is_final"] == finality[(row["source_stream"], row["subject_id"], row["period_start"])], row


def assert_only_new_and_documented_rereads(
    stream: str,
    first: List[dict],
    second: List[dict],  # target-jsonl writes no file for a stream without records: may be empty
    bookmark: Mapping[str, Any],
    emulator: Emulator,
    config: Mapping[str, Any],
    catalog: Mapping[str, Any],
) -> None:
    """The second run brings every new or changed record, and reads known ones again only as documented."""
    pk = primary_key(catalog, stream)
    expected = emulator.expected(stream, start_date=config["start_date"])
    before = {key_of(record, pk): record for record in first}
    latest = {**before, **{key_of(record, pk): record for record in second}}  # what a merging destination holds
    assert_records_match([latest[key] for key in (key_of(record, pk) for record in expected) if key in latest], expected, pk, stream)
    allowed = REREAD_RULES[stream]
    reread = [(record, before[key_of(record, pk)]) for record in second if key_of(record, pk) in before]
    outside = [record for record, old in reread if not allowed(record, old, first, bookmark)]
    assert not outside, f"{stream}: read again outside its documented lookback: {outside[:2]}"
