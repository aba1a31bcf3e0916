"""The tests' process launcher (integration_tests/launcher.py): a forked run is a fresh process of its own that
behaves as the exec'd console script does, and nothing the connector reads once at start is frozen in the
fork server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import timedelta
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from integration_tests import launcher
from integration_tests.harness import configured_catalog, run_connector
from integration_tests.hostile import TWILIO_PREFIX, HostileServer, child_environment, iso, play_twilio, twilio_page, utc_now
from source_usage.emulator import Emulator

pytestmark = pytest.mark.skipif(launcher.real_exec_forced(), reason="SOURCE_USAGE_TEST_EXEC=1: no fork server")

SOURCE = str(launcher.BIN / "source-usage")
TAP = str(launcher.BIN / "tap-usage")


def messages(stdout: str) -> List[dict]:
    found = []
    for line in stdout.splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [message for message in found if isinstance(message, dict) and "type" in message]


def types(stdout: str) -> List[str]:
    return [message["type"] for message in messages(stdout)]


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def proc_status(pid: int) -> Dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)


def fd_targets(pid: int) -> Dict[int, str]:
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return targets


def write_files(folder: Path, **contents: object) -> Dict[str, str]:
    paths = {}
    for name, content in contents.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(content))
        paths[name] = str(path)
    return paths


# ----- a sync that waits on the server for as long as the test needs -----------------------------------------


class HeldSync:
    """A Twilio read whose first request the server holds open: the process stays in the middle of a sync."""

    def __init__(self, server: HostileServer, folder: Path) -> None:
        self.server = server
        self.arrived = threading.Event()
        config = {"start_date": "2024-01-01T00:00:00Z", "twilio": {**play_twilio(server), "granularity": "hour"}}
        server.route("GET", TWILIO_PREFIX + "/UsageRecords$", self._hold)
        files = write_files(folder, config=config, catalog=configured_catalog(config, ["twilio_supersim_usage_records"]))
        self.argv = [SOURCE, "read", "--config", files["config"], "--catalog", files["catalog"]]

    def _hold(self, exchange) -> None:  # type: ignore[no-untyped-def]
        self.arrived.set()
        exchange.hold(120)

    def start(self, real_exec: bool = False, **streams: object) -> launcher.Process:
        self.arrived = threading.Event()
        options = {"stdin": launcher.DEVNULL, "stdout": launcher.DEVNULL, "stderr": launcher.DEVNULL, **streams}
        process = launcher.popen(self.argv, env=child_environment(), real_exec=real_exec, **options)  # type: ignore[arg-type]
        assert self.arrived.wait(120), "the sync never reached the server"
        return process


@pytest.fixture
def held(tmp_path: Path) -> Iterator[HeldSync]:
    with HostileServer() as server:
        yield HeldSync(server, tmp_path)


# ----- the server ----------------------------------------------------------------------------------------------


def test_given_the_fork_server_when_it_has_imported_the_connector_then_nothing_read_once_at_start_was_read() -> None:
    hello = launcher.server().hello

    assert hello["preloaded"] == ["source_usage.console", "source_usage.run", "source_usage.singer"]
    assert hello["pristine"] == {
        "settings_read": False,  # SOURCE_USAGE_* knobs: read by each run
        "plugins_cached": 0,  # the plugin registry: loaded by each run
        "spec_cached": 0,
        "process_budget_layers": 0,  # budgets' process-wide layers
        "print_buffer": "",  # the CDK's PRINT_BUFFER: nothing buffered to be written by every child
        "print_buffer_flush_wrapped": False,
        "root_handler_filters": 0,  # the logging set-up of `launch()`
    }
    assert hello["threads"] == 1, "a fork server must not hold threads"
    assert hello["open_fds"] == [0, 1, 2]
    assert not hello["environment_iterated"]


def test_given_a_variable_the_imports_read_or_the_interpreter_reads_when_a_run_changes_it_then_that_run_is_exec_d(tmp_path: Path) -> None:
    server = launcher.server()
    environment = dict(os.environ)
    assert "HOME" in server.hello["environment_read"]  # read while importing (so frozen into the server)

    assert server.forks([SOURCE, "spec"], {**environment, "SOURCE_USAGE_MAX_RETRIES": "2"})
    assert not server.forks([SOURCE, "spec"], {**environment, "HOME": str(tmp_path)})
    assert not server.forks([SOURCE, "spec"], {**environment, "PYTHONPATH": str(tmp_path)})
    assert not server.forks([SOURCE, "spec"], {**environment, "LC_ALL": "C"})
    run = launcher.run([SOURCE, "spec"], env={**environment, "PYTHONPATH": str(tmp_path)})
    assert not run.forked and run.returncode == 0


def test_given_a_program_that_is_not_a_console_script_of_the_package_then_it_is_exec_d() -> None:
    run = launcher.run([sys.executable, "-c", "import os; print(os.getpid())"])

    assert not run.forked and run.returncode == 0 and run.stdout.strip().isdigit()
    assert launcher.is_forkable(SOURCE) and launcher.is_forkable(TAP)
    assert not launcher.is_forkable(str(launcher.BIN / "source-usage-demo"))


def test_given_source_usage_test_exec_then_every_run_is_exec_d(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(launcher.EXEC_SWITCH, "1")

    run = launcher.run([SOURCE, "spec"])

    assert not run.forked and run.returncode == 0 and types(run.stdout)[-1] == "SPEC"


def test_given_a_dead_fork_server_when_the_next_run_starts_then_a_new_server_runs_it() -> None:
    dead = launcher.server()
    dead.process.kill()
    dead.process.wait()

    run = launcher.run([SOURCE, "spec"])

    assert run.forked and run.returncode == 0
    assert launcher.server().hello["pid"] != dead.hello["pid"]


# ----- a forked run is the console script, in a process of its own ------------------------------------------


@pytest.mark.parametrize(
    "argv, extra_env",
    [
        ([SOURCE, "spec"], {}),
        ([SOURCE, "no-such-command"], {}),  # argparse: exit 2
        ([SOURCE, "spec"], {"SOURCE_USAGE_MAX_RETRIES": "many"}),  # an uncaught exception: exit 1
        ([TAP, "--about", "--format", "json"], {}),
        ([TAP, "--discover", "--config", "/nonexistent/config.json"], {}),  # SystemExit with a message
    ],
    ids=["spec", "bad-command", "bad-setting", "tap-about", "tap-missing-config"],
)
def test_given_a_command_when_forked_and_when_exec_d_then_exit_code_and_output_are_the_same(argv: List[str], extra_env: Dict[str, str]) -> None:
    env = {**child_environment(), **extra_env}

    forked = launcher.run(argv, env=env, timeout=120)
    executed = launcher.run(argv, env=env, timeout=120, real_exec=True)

    assert forked.forked and not executed.forked
    assert forked.returncode == executed.returncode, (forked.stderr[-2000:], executed.stderr[-2000:])
    assert forked.stdout == executed.stdout
    if executed.stderr.strip():
        assert last_line(forked.stderr) == last_line(executed.stderr)


def test_given_runs_in_sequence_with_different_settings_then_each_reads_its_own() -> None:
    environment = child_environment()

    retries = launcher.run([SOURCE, "spec"], env={**environment, "SOURCE_USAGE_MAX_RETRIES": "many"})
    timeout = launcher.run([SOURCE, "spec"], env={**environment, "SOURCE_USAGE_CONNECT_TIMEOUT_SECONDS": "-1"})
    neither = launcher.run([SOURCE, "spec"], env=environment)

    assert retries.forked and timeout.forked and neither.forked
    assert retries.returncode == 1 and "SOURCE_USAGE_MAX_RETRIES must be a whole number" in retries.stderr
    assert timeout.returncode == 1 and "SOURCE_USAGE_CONNECT_TIMEOUT_SECONDS must not be negative" in timeout.stderr
    assert "SOURCE_USAGE_MAX_RETRIES" not in timeout.stderr
    assert neither.returncode == 0 and "SOURCE_USAGE" not in neither.stderr


def test_given_a_body_limit_set_for_one_run_then_only_that_run_is_limited(emulator: Emulator) -> None:
    config = {**emulator.config(vendors=["twilio"])}

    limited = run_connector("check", config, env={"SOURCE_USAGE_MAX_BODY_BYTES": "16", "SOURCE_USAGE_MAX_RETRIES": "0"})
    unlimited = run_connector("check", config)
    limited_again = run_connector("check", config, env={"SOURCE_USAGE_MAX_BODY_BYTES": "16", "SOURCE_USAGE_MAX_RETRIES": "0"})

    assert unlimited.connection_status == {"status": "SUCCEEDED"}
    for run in (limited, limited_again):
        assert run.connection_status["status"] == "FAILED"
        assert "16" in run.connection_status["message"] or "limit" in run.connection_status["message"], run.connection_status


def test_given_a_debug_run_then_a_plain_run_then_only_the_first_prints_debug_output(emulator: Emulator) -> None:
    config = emulator.config(vendors=["twilio"])

    debug = run_connector("check", config, extra_args=["--debug"])
    plain = run_connector("check", config)

    # --debug: the CDK prints {"type": "DEBUG", "message": "Debug logs enabled"} (exec'd as forked)
    assert [m["message"] for m in debug.messages if m["type"] == "DEBUG"] == ["Debug logs enabled"], debug.stdout[-2000:]
    assert not [m for m in plain.messages if m["type"] == "DEBUG"] and not plain.logs("DEBUG")
    assert plain.connection_status == debug.connection_status == {"status": "SUCCEEDED"}


def test_given_runs_in_sequence_then_each_prints_only_its_own_messages(emulator: Emulator) -> None:
    spec = launcher.run([SOURCE, "spec"])
    check = run_connector("check", emulator.config(vendors=["twilio"]))

    assert [kind for kind in types(spec.stdout) if kind != "LOG"] == ["SPEC"]
    assert [message["type"] for message in check.messages if message["type"] != "LOG"] == ["CONNECTION_STATUS"]


def test_given_concurrent_runs_then_each_has_its_own_pid_and_output(emulator: Emulator) -> None:
    config = emulator.config(vendors=["twilio"])
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda command: (command, run_connector(command, config if command != "spec" else None)), ["spec", "check", "discover"]))

    kinds = {command: [m["type"] for m in run.messages if m["type"] != "LOG"] for command, run in runs}
    assert kinds == {"spec": ["SPEC"], "check": ["CONNECTION_STATUS"], "discover": ["CATALOG"]}


def test_given_a_relative_config_path_and_a_working_directory_then_the_run_reads_it_there(tmp_path: Path, emulator: Emulator) -> None:
    (tmp_path / "config.json").write_text(json.dumps(emulator.config(vendors=["twilio"])))

    run = launcher.run([SOURCE, "check", "--config", "config.json"], cwd=tmp_path)

    assert run.forked and run.returncode == 0
    assert [m for m in messages(run.stdout) if m["type"] == "CONNECTION_STATUS"][0]["connectionStatus"]["status"] == "SUCCEEDED"


def test_given_a_forked_and_an_exec_d_sync_mid_read_then_their_signal_state_and_standard_streams_are_alike(held: HeldSync, tmp_path: Path) -> None:
    seen = {}
    stdin_file = tmp_path / "stdin.txt"
    stdin_file.write_text("")
    for real_exec in (False, True):
        with open(stdin_file) as stdin, tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as out:
            process = held.start(real_exec=real_exec, stdin=stdin, stdout=out)
            try:
                status, fds = proc_status(process.pid), fd_targets(process.pid)
                server_fds = set(fd_targets(launcher.server().hello["pid"]).values())
            finally:
                process.terminate()
                process.wait(60)
        assert process.forked is not real_exec
        assert process.returncode == 143  # the connector's own SIGTERM handling
        assert fds[0] == str(stdin_file) and fds[1] == out.name
        assert all(target.startswith("socket:") for fd, target in fds.items() if fd > 2), fds
        if not real_exec:
            assert int(status["PPid"]) == launcher.server().hello["pid"] != os.getpid()
            leaked = (set(fds.values()) & server_fds) - {"/dev/null"}
            assert not leaked, f"the child holds the server's descriptors {leaked}"
        seen[real_exec] = {name: status[name] for name in ("SigBlk", "SigIgn", "SigCgt", "Umask")}
    assert seen[False] == seen[True]


@pytest.mark.parametrize("number, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -signal.SIGKILL), (signal.SIGUSR1, -signal.SIGUSR1)])
def test_given_a_forked_sync_when_signalled_then_it_exits_as_the_real_one_does_and_still_reports_its_peak_rss(
    held: HeldSync, number: int, code: int
) -> None:
    process = held.start(stderr=launcher.PIPE, text=True)

    process.send_signal(number)
    process.wait(60)

    assert process.forked and process.returncode == code
    assert process.usage is not None and process.usage.own and process.usage.maxrss_kb > 0
    assert process.stderr is not None
    if number in (signal.SIGINT, signal.SIGTERM):
        assert f"interrupted ({signal.Signals(number).name})" in process.stderr.read()
    process.stderr.close()


def test_given_a_sync_that_outlives_its_timeout_then_it_is_killed_and_the_timeout_raised_or_reported(held: HeldSync) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        launcher.run(held.argv, env=child_environment(), timeout=1)

    killed = launcher.run(held.argv, env=child_environment(), timeout=1, kill_on_timeout=True)

    assert killed.forked and killed.timed_out and killed.returncode == -signal.SIGKILL
    assert killed.usage.own and killed.usage.maxrss_kb > 0


def test_given_a_test_process_holding_much_memory_then_a_forked_runs_peak_rss_is_the_childs_own() -> None:
    ballast = bytearray(256 * 1024 * 1024)
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1  # resident

    forked = launcher.run([SOURCE, "spec"])
    executed = launcher.run([SOURCE, "spec"], real_exec=True)
    del ballast

    assert forked.usage.own and forked.usage.peak_rss_mb < 200
    # exec'd, Linux counts the test process's resident memory at the spawn (hence `own` is False there)
    assert not executed.usage.own and executed.usage.peak_rss_mb > 256


def test_given_a_run_that_reads_one_big_body_then_its_peak_rss_shows_the_growth_over_the_same_read_without_it() -> None:
    padding = "x" * (32 * 1024 * 1024)

    def read(padded: bool) -> launcher.Completed:
        served = []
        lock = threading.Lock()

        def usage_records(exchange) -> None:  # type: ignore[no-untyped-def]
            with lock:
                first = not served
                served.append(exchange.path)
            page = {**twilio_page([]), "padding": padding} if padded and first else twilio_page([])
            exchange.send(200, json.dumps(page).encode())

        with HostileServer() as server, tempfile.TemporaryDirectory() as folder:
            config = {"start_date": iso(utc_now() - timedelta(days=2)), "twilio": {**play_twilio(server), "granularity": "day"}}
            server.route("GET", TWILIO_PREFIX + "/UsageRecords$", usage_records)
            files = write_files(Path(folder), config=config, catalog=configured_catalog(config, ["twilio_supersim_usage_records"]))
            run = launcher.run([SOURCE, "read", "--config", files["config"], "--catalog", files["catalog"]], env=child_environment(), timeout=300)
        assert run.forked and run.returncode == 0, run.stderr[-2000:]
        assert served, "the read asked for usage records"
        return run

    plain = read(padded=False)
    padded = read(padded=True)

    # the 32 MiB body is held at least once as bytes and once as the parsed str
    assert padded.usage.peak_rss_mb > plain.usage.peak_rss_mb + 24, (plain.usage, padded.usage)


def test_given_a_thread_waiting_on_a_forked_sync_when_another_thread_kills_it_then_both_return(held: HeldSync) -> None:
    process = held.start()
    waiter = threading.Thread(target=process.wait, daemon=True)
    waiter.start()

    process.kill()  # as a timer does while the test waits: never blocked by the waiting thread
    waiter.join(60)

    assert not waiter.is_alive() and process.returncode == -signal.SIGKILL
