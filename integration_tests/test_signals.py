"""SIGINT and SIGTERM in the middle of a sync: a prompt, quiet exit that leaves a resumable output.

The connector's promise (`source_usage.run.interruptible`): every message written before the signal is
complete and in order, so the last STATE written is one the next sync can resume from; the threads still
reading are abandoned and the process exits at once with 130 (SIGINT) or 143 (SIGTERM).

No assertion here depends on how fast the machine is:

* A Twilio server (hourly usage, one-day windows, each window two pages) answers the older windows at once
  and holds every request for the newest day and a half without answering (until the client hangs up).
  Once the connector printed some records and a STATE and the server holds a request, the test sends the
  signal. The sync cannot end by itself any more: exiting at all shows the held reads were abandoned
  (a connector that waited for its threads, or ignored the signal, never exits; the test kills it after a
  minute, far above the fraction of a second it takes, and fails). Then: the exit code, no traceback,
  every line of stdout a complete JSON message, no STATE claiming a period whose records were not all
  printed before it, and nothing printed of the held windows.
* A fast server and a consumer that falls behind (stdout's pipe fills up, as behind a slow destination):
  the test stops reading until the kernel shows a thread of the connector blocked writing to the pipe
  (/proc/<pid>/task/*/wchan or syscall), then signals, and still every line must be complete.
"""

from __future__ import annotations

import glob
import json
import platform
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Set, Tuple

import pytest

from integration_tests.harness import configured_catalog
from integration_tests.hostile import (
    BIN,
    SIM_SIDS,
    TWILIO_PREFIX,
    Exchange,
    HostileServer,
    child_environment,
    iso,
    parse_iso,
    play_twilio,
    twilio_page,
    twilio_records_for,
    utc_now,
)

STREAM = "twilio_supersim_usage_records"
DAYS = 9  # one-day windows of hourly records: ten windows for four workers
RECORDS_PER_PAGE = 24  # 48 records a window (24 hours, 2 SIMs): two pages
HELD = timedelta(hours=36)  # requests for windows starting less than this before now are held, never answered
MANY_SIMS = tuple(f"HS{number:032x}" for number in range(20))
HANG_GUARD_SECONDS = 60  # a process still running this long after the signal is killed (it takes well under 1 s)

SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]


class HoldingTwilio:
    """Twilio answering the older windows at once, in pages linked by `meta.next_page_url`, and holding every
    request for a window that starts less than `HELD` before now until the client hangs up."""

    def __init__(self, server: HostileServer) -> None:
        self.server = server
        self.config = {**play_twilio(server), "granularity": "hour"}
        self.hold_from = utc_now() - HELD
        self._lock = threading.Lock()
        self.holding = 0  # requests held right now
        self.held = 0  # requests held so far
        server.route("GET", TWILIO_PREFIX + "/UsageRecords$", self._usage_records)

    def _usage_records(self, ex: Exchange) -> None:
        if parse_iso(ex.query["StartTime"]) >= self.hold_from:
            with self._lock:
                self.holding += 1
                self.held += 1
            try:
                ex.hold(HANG_GUARD_SECONDS * 3)
            finally:
                with self._lock:
                    self.holding -= 1
            return
        records = twilio_records_for(ex)
        page = int(ex.query.get("Page", "0"))
        chunk = records[page * RECORDS_PER_PAGE : (page + 1) * RECORDS_PER_PAGE]
        next_url = None
        if (page + 1) * RECORDS_PER_PAGE < len(records):
            query = "&".join(f"{key}={ex.query[key]}" for key in ("Group", "Granularity", "StartTime", "EndTime"))
            next_url = f"{ex.server.url}{TWILIO_PREFIX}/UsageRecords?{query}&PageSize={RECORDS_PER_PAGE}&Page={page + 1}&PageToken=PT{page + 1}"
        ex.json(twilio_page(chunk, next_url))

    def holds_a_request(self) -> bool:
        with self._lock:
            return self.holding > 0


def fast_twilio(server: HostileServer) -> dict:
    """Twilio answering at once, with many SIMs: the connector writes faster than a slow consumer reads."""
    config = play_twilio(server)
    server.route("GET", TWILIO_PREFIX + "/UsageRecords$", lambda ex: ex.json(twilio_page(twilio_records_for(ex, sims=MANY_SIMS))))
    return {**config, "granularity": "hour"}


def served_keys(start: datetime, until: datetime, sims: Sequence[str]) -> Set[Tuple[str, str]]:
    """(sim, start_time) of every hourly record the server holds from `start` up to `until` included."""
    keys = set()
    moment = start.replace(minute=0, second=0, microsecond=0)
    while moment <= until:
        keys |= {(sim, iso(moment)) for sim in sims}
        moment += timedelta(hours=1)
    return keys


def command_line(program: str, config: dict, folder: str) -> List[str]:
    config_path = Path(folder) / "config.json"
    config_path.write_text(json.dumps(config))
    if program == "tap-usage":
        return [str(BIN / "tap-usage"), "--config", str(config_path)]
    catalog_path = Path(folder) / "catalog.json"
    catalog_path.write_text(json.dumps(configured_catalog(config, [STREAM])))
    return [str(BIN / "source-usage"), "read", "--config", str(config_path), "--catalog", str(catalog_path)]


def interrupt_mid_sync(
    argv: List[str], signal_number: int, ready: Callable[[subprocess.Popen], bool], keep_reading: bool = False
) -> Tuple[int, str, str]:
    """Runs `argv`, reading its stdout as it comes; once some records and a STATE were printed, stops reading
    (or, with `keep_reading`, goes on reading in the background, so a full pipe cannot stall the sync before
    `ready`) and waits (polling, a minute at most) until `ready(process)`, then sends `signal_number`. Returns
    (exit code, stdout, stderr); a process still running `HANG_GUARD_SECONDS` after the signal is killed (-9)."""
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL, env=child_environment())
        assert process.stdout is not None
        printed: List[bytes] = []
        rest = b""
        records = states_after_records = 0
        try:
            while True:
                line = process.stdout.readline()
                if not line:
                    break
                printed.append(line)
                kind = _kind(line)
                records += kind == "RECORD"
                states_after_records += kind == "STATE" and records > 0
                if records >= 5 and states_after_records >= 1:
                    break
            assert records >= 5 and states_after_records >= 1, b"".join(printed)[-2000:]
            reader = None
            if keep_reading:
                reader = threading.Thread(target=lambda: printed.extend(iter(process.stdout.readline, b"")), daemon=True)
                reader.start()
            assert poll_until(lambda: ready(process) or process.poll() is not None), "the condition to signal on never came"
            assert process.poll() is None, "the sync ended before it could be interrupted"
            process.send_signal(signal_number)
            killer = threading.Timer(HANG_GUARD_SECONDS, process.kill)
            killer.start()
            try:
                if reader is not None:
                    reader.join()
                else:
                    rest = process.stdout.read()  # what it printed until it exited (and what was read ahead)
                process.wait()
            finally:
                killer.cancel()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr_file.seek(0)
        return process.returncode, (b"".join(printed) + rest).decode(errors="replace"), stderr_file.read().decode(errors="replace")


def poll_until(condition: Callable[[], bool], limit: float = 60.0) -> bool:
    """Polls `condition` every 10 ms, at most `limit` seconds (a hang guard); whether it became true."""
    give_up = time.monotonic() + limit
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.01)
    return True


WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64, "arm64": 64}.get(platform.machine())


def blocked_writing_stdout(process: subprocess.Popen) -> bool:
    """Whether a thread of `process` is asleep writing to a full pipe: the kernel's wait channel
    (`pipe_write`, `anon_pipe_write`) or, where that is hidden, its syscall (`write` on fd 1)."""
    for task in glob.glob(f"/proc/{process.pid}/task/*"):
        try:
            if "pipe_write" in Path(task, "wchan").read_text():
                return True
            call = Path(task, "syscall").read_text().split()
        except OSError:
            continue
        if WRITE_SYSCALL is not None and len(call) > 1 and call[0] == str(WRITE_SYSCALL) and int(call[1], 16) == 1:
            return True
    return False


def _kind(line: bytes) -> Optional[str]:
    try:
        return json.loads(line).get("type")
    except ValueError:
        return None


def check_resumable(stdout: str, start: datetime, sims: Sequence[str], singer: bool) -> None:
    """Every line a complete JSON message; every STATE's cursor covers only records printed before it."""
    assert stdout.endswith("\n"), "the last message is complete"
    printed: Set[Tuple[str, str]] = set()
    states = 0
    for number, line in enumerate(stdout.splitlines(), 1):
        try:
            message = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not a complete JSON message: {line[:150]!r}...{line[-150:]!r}") from None
        if message.get("type") == "RECORD":
            data = message["record"] if singer else message["record"]["data"]
            printed.add((data["sim_sid"], data["start_time"]))
        elif message.get("type") == "STATE":
            value = message["value"]["bookmarks"].get(STREAM) if singer else message["state"]["stream"]["stream_state"]
            cursor = (value or {}).get("start_time")
            if cursor is None:
                continue
            states += 1
            missing = served_keys(start, parse_iso(cursor), sims) - printed
            assert not missing, f"line {number}: a STATE at {cursor} before these records were printed: {sorted(missing)[:5]}"
    assert states, "at least one STATE with a cursor was printed"


def records_printed(stdout: str, singer: bool) -> List[dict]:
    records = []
    for line in stdout.splitlines():
        message = json.loads(line)
        if message.get("type") == "RECORD":
            records.append(message["record"] if singer else message["record"]["data"])
    return records


def hours_ago(days: int) -> datetime:
    return (datetime.now(timezone.utc) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="watches the connector's threads through Linux's /proc")
@pytest.mark.parametrize("program", ["source-usage", "tap-usage"])
@pytest.mark.parametrize("signal_number, exit_code", SIGNALS)
def test_a_signal_mid_sync_exits_at_once_abandoning_held_reads_leaving_complete_messages_and_a_resumable_state(program: str, signal_number: int, exit_code: int) -> None:
    with HostileServer() as server, tempfile.TemporaryDirectory() as folder:
        twilio = HoldingTwilio(server)
        start = hours_ago(DAYS)
        argv = command_line(program, {"start_date": iso(start), "twilio": twilio.config}, folder)

        code, stdout, stderr = interrupt_mid_sync(argv, signal_number, lambda process: twilio.holds_a_request(), keep_reading=True)

        assert code == exit_code, (f"killed: still running {HANG_GUARD_SECONDS} s after the signal" if code == -9 else code, stderr[-2000:])
        assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
        assert f"interrupted ({signal.Signals(signal_number).name})" in stderr.strip().splitlines()[-1]
        check_resumable(stdout, start, SIM_SIDS, singer=program == "tap-usage")
        held_from = min(request.query["StartTime"] for request in server.requests() if parse_iso(request.query["StartTime"]) >= twilio.hold_from)
        printed = records_printed(stdout, singer=program == "tap-usage")
        assert not [record for record in printed if record["start_time"] >= held_from], "nothing of a held window was printed"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="watches the connector's threads through Linux's /proc")
@pytest.mark.parametrize("program", ["source-usage", "tap-usage"])
@pytest.mark.parametrize("signal_number, exit_code", SIGNALS)
def test_a_signal_while_stdout_is_backed_up_still_leaves_only_complete_messages(program: str, signal_number: int, exit_code: int) -> None:
    with HostileServer() as server, tempfile.TemporaryDirectory() as folder:
        start = hours_ago(60)
        argv = command_line(program, {"start_date": iso(start), "twilio": fast_twilio(server)}, folder)

        code, stdout, stderr = interrupt_mid_sync(argv, signal_number, blocked_writing_stdout)

        assert code == exit_code, (f"killed: still running {HANG_GUARD_SECONDS} s after the signal" if code == -9 else code, stderr[-2000:])
        assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
        check_resumable(stdout, start, MANY_SIMS, singer=program == "tap-usage")
