"""`meltano run tap-usage target-jsonl` with the repository's meltano.yml, against the emulator.

Meltano is installed from the package index into its own virtual environment, as the README says;
the project is a copy of meltano.yml in a temporary folder whose `pip_url` points at this repository.
The emulator's URLs and credentials reach the tap as Meltano environment variables (TAP_USAGE_<SETTING>).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping

import pytest

from integration_tests.harness import assert_records_match, configured_catalog, distinct_keys, key_of, primary_key, start_date
from source_usage.emulator import Emulator
from source_usage.framework.windows import floor_time, parse_timestamp

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
MELTANO = "meltano>=4,<5"
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
    # emnify: only monthly figures that changed, and never a minute already delivered.
    "emnify_endpoint_usage_monthly": lambda record, old, _, __: record != old,
    "emnify_endpoint_usage_last_hour": lambda *_: False,
    # ThousandEyes: the current billing period, which keeps changing until it ends.
    "thousandeyes_usage": lambda record, _, first, __: record["monthStart"] == max(old["monthStart"] for old in first),
    "thousandeyes_test_usage": lambda record, _, first, __: record["monthStart"] == max(old["monthStart"] for old in first),
}


def run(command: List[str], cwd: Path, env: Mapping[str, str]) -> str:
    completed = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}"
    return completed.stdout


@pytest.fixture(scope="module")
def meltano(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Meltano in its own virtual environment (pip's download cache keeps repeated runs quick)."""
    venv = tmp_path_factory.mktemp("meltano") / "meltano-venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent, env=os.environ)
    run([str(venv / "bin" / "pip"), "install", "--quiet", MELTANO], cwd=venv.parent, env=os.environ)
    return venv / "bin" / "meltano"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=31, rate_limits=True) as running:
        yield running


def project_from_repository(folder: Path) -> Path:
    """The repository's meltano.yml, with the tap installed from this checkout."""
    text = (REPO / "meltano.yml").read_text()
    assert "pip_url: -e .\n" in text, "meltano.yml installs tap-usage from the checkout it is in"
    folder.mkdir()
    (folder / "meltano.yml").write_text(text.replace("pip_url: -e .\n", f"pip_url: -e {REPO}\n"))
    return folder


def meltano_env(config: Mapping[str, Any]) -> Dict[str, str]:
    """The connector config as Meltano setting variables: `meraki.api_key` is TAP_USAGE_MERAKI_API_KEY."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false", MELTANO_CLI_DISABLE_VERSION_CHECK="true", TARGET_JSONL_DO_TIMESTAMP_FILE="false")
    for name, value in config.items():
        for key, setting in (value.items() if isinstance(value, Mapping) else [(None, value)]):
            variable = "_".join(part for part in ("TAP_USAGE", name, key) if part).upper()
            env[variable] = json.dumps(setting) if isinstance(setting, (list, dict)) else str(setting)
    return env


def jsonl_records(folder: Path) -> Dict[str, List[dict]]:
    return {path.stem: [json.loads(line) for line in path.read_text().splitlines()] for path in sorted(folder.glob("*.jsonl"))}


def test_meltano_runs_tap_usage_into_jsonl_and_the_second_run_continues_from_the_saved_state(
    meltano: Path, emulator: Emulator, tmp_path: Path
) -> None:
    project = project_from_repository(tmp_path / "project")
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config)
    streams = [entry["stream"]["name"] for entry in catalog["streams"]]
    incremental = [entry["stream"]["name"] for entry in catalog["streams"] if entry["sync_mode"] == "incremental"]
    assert set(REREAD_RULES) == set(incremental), "every incremental stream has its documented re-read rule"
    written = (project / "meltano.yml").read_text()
    env = meltano_env(config)
    run([str(meltano), "install"], project, env)

    run([str(meltano), "run", "tap-usage", "target-jsonl"], project, {**env, "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "first")})

    first = jsonl_records(tmp_path / "first")
    assert set(first) == set(streams)
    for stream in streams:
        expected = emulator.expected(stream, start_date=config["start_date"])
        assert_records_match(first[stream], expected, primary_key(catalog, stream), stream)
    saved = json.loads(run([str(meltano), "state", "get", STATE_ID], project, env))["singer_state"]["bookmarks"]
    assert set(saved) == set(incremental)

    emulator.advance(1)
    run([str(meltano), "run", "tap-usage", "target-jsonl"], project, {**env, "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "second")})

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
