"""Faults, resumable state, bad input and secrets, proven against the emulator through the real process."""

from __future__ import annotations

import base64
import json
import signal
import socket
import tempfile
from pathlib import Path
from typing import Dict, List

from integration_tests import launcher
from integration_tests.harness import (
    CONNECTOR,
    Run,
    assert_read_matches_emulator,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator, FaultPlan

REALISTIC_FAULTS = FaultPlan(error_rate=0.10, drop_rate=0.02, malformed_rate=0.02)
QUICK_RETRIES = {"SOURCE_USAGE_BACKOFF_BASE_SECONDS": "0.1"}


def test_full_read_under_realistic_faults_on_every_vendor_equals_the_emulators_records() -> None:
    with Emulator(seed=23, scale=2, rate_limits=True, faults=REALISTIC_FAULTS) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config)

        run = run_connector("read", config, catalog, env=QUICK_RETRIES)

        assert_read_matches_emulator(run, emulator, catalog, start_date=config["start_date"])
        injected = sum(sum(app["by_route"].get("(injected)", {}).values()) for app in emulator.stats().values())
        assert injected > 0
        assert any("retrying in" in line for line in run.logs("INFO"))


def read_until_killed(config: dict, catalog: dict, kill_after_records: int) -> Run:
    """Starts a read and SIGKILLs it once it has printed `kill_after_records` records."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: Path(folder) / f"{name}.json" for name in ("config", "catalog")}
        paths["config"].write_text(json.dumps(config))
        paths["catalog"].write_text(json.dumps(catalog))
        process = launcher.popen(
            [CONNECTOR, "read", "--config", str(paths["config"]), "--catalog", str(paths["catalog"])],
            stdout=launcher.PIPE,
            stderr=launcher.DEVNULL,
            text=True,
        )
        messages: List[dict] = []
        records = 0
        assert process.stdout is not None
        for line in process.stdout:
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            messages.append(message)
            records += message["type"] == "RECORD"
            if records >= kill_after_records:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=60)
        return Run(process.returncode, messages, "", "")


def test_a_read_killed_halfway_and_resumed_from_its_last_state_delivers_every_record() -> None:
    slow = FaultPlan(slow_rate=1.0, slow_seconds=0.02)
    with Emulator(seed=29, scale=2, rate_limits=True, faults=slow) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config)
        expected: Dict[str, set] = {
            entry["stream"]["name"]: distinct_keys(
                emulator.expected(entry["stream"]["name"], start_date=config["start_date"]), primary_key(catalog, entry["stream"]["name"])
            )
            for entry in catalog["streams"]
        }
        total = sum(len(keys) for keys in expected.values())

        first = read_until_killed(config, catalog, kill_after_records=total // 2)
        assert first.returncode == -signal.SIGKILL
        assert first.state_messages, "the killed run checkpointed before it was killed"
        second = run_connector("read", config, catalog, state=first.final_state())

        assert second.returncode == 0, second.stderr[-3000:]
        for stream, keys in expected.items():
            pk = primary_key(catalog, stream)
            delivered = distinct_keys(first.records(stream), pk) | distinct_keys(second.records(stream), pk)
            assert delivered == keys, f"{stream}: {len(keys - delivered)} missing, {len(delivered - keys)} extra"


def test_a_record_that_breaks_its_schema_fails_its_stream_naming_field_and_value_without_a_traceback() -> None:
    with Emulator(seed=31, vendors=["meraki"], meraki={"corrupt_usage": True}) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, ["meraki_client_usage_histories", "meraki_organization_licenses"])

        run = run_connector("read", config, catalog)

        assert run.returncode != 0
        failures = [error for error in run.errors if error.get("stream_descriptor", {}).get("name") == "meraki_client_usage_histories"]
        assert failures and failures[0]["message"] == (
            "meraki_client_usage_histories: record field 'recv' has value 'n/a', which is not of type integer"
        )
        assert run.records("meraki_organization_licenses"), "the other stream still syncs"
        assert "Traceback" not in run.stdout + run.stderr


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_one_vendor_failing_does_not_sink_the_others(emulator: Emulator) -> None:
    config = emulator.config(start_date=start_date())
    config["meraki"]["api_key"] = "e" * 40
    config["twilio"]["base_url"] = f"http://127.0.0.1:{closed_port()}/twilio/v1"
    catalog = configured_catalog(config)

    run = run_connector("read", config, catalog, env={"SOURCE_USAGE_MAX_RETRIES": "1", **QUICK_RETRIES})

    assert run.returncode != 0
    for stream in ("emnify_endpoints", "emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour", "thousandeyes_usage", "thousandeyes_test_usage"):
        expected = emulator.expected(stream, start_date=config["start_date"])
        assert_records_match(run.records(stream), expected, primary_key(catalog, stream), stream)
        assert any(state["stream"]["stream_descriptor"]["name"] == stream for state in run.state_messages)
    messages = {error["message"] for error in run.errors if error.get("stream_descriptor")}
    assert "meraki: the API key was rejected (HTTP 401)" in messages
    assert any(message.startswith("twilio: GET http://127.0.0.1:") and "failed after 2 attempts (last: the connection failed or was reset)" in message for message in messages)
    assert "Traceback" not in run.stdout + run.stderr


def test_no_secret_appears_in_any_output_of_any_command() -> None:
    secrets = {
        "meraki": {"api_key": "a7f3c9e1b5d2f8a4c6e0b9d7f1a3c5e7b9d0f2a4"},
        "twilio": {"auth_token": "tw1l10-t0ken-s3cr3t-7f3c9e1b5d2f8a4c6e0b"},
        "emnify": {"application_token": "emn1fy-app-t0ken-s3cr3t-9d7f1a3c5e7b9d0f"},
        "thousandeyes": {"bearer_token": "th0us4nd-bearer-s3cr3t-e1b5d2f8a4c6e0b9"},
    }
    knobs = {vendor: {key if key != "bearer_token" else "token": value for key, value in values.items()} for vendor, values in secrets.items()}
    with Emulator(seed=37, rate_limits=True, faults=REALISTIC_FAULTS, **knobs) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config)
        basic = base64.b64encode(f"{config['twilio']['account_sid']}:{secrets['twilio']['auth_token']}".encode()).decode()
        forbidden = [value for values in secrets.values() for value in values.values()] + [basic]

        outputs = [
            run_connector("spec"),
            run_connector("check", config, env=QUICK_RETRIES),
            run_connector("discover", config),
            # --debug: everything a plain read prints (records, state, logs, errors) and the debug logs besides
            run_connector("read", config, catalog, env=QUICK_RETRIES, extra_args=["--debug"]),
        ]
        wrong = json.loads(json.dumps(config))
        for vendor, values in secrets.items():
            for key, value in values.items():
                wrong[vendor][key] = value[::-1]
        forbidden += [value[::-1] for values in secrets.values() for value in values.values()]
        outputs += [run_connector("check", wrong, env=QUICK_RETRIES), run_connector("read", wrong, catalog, env=QUICK_RETRIES)]
        forbidden += list(emulator.apps["emnify"].issued_tokens)

        for run in outputs:
            for secret in forbidden:
                assert secret not in run.stdout and secret not in run.stderr
