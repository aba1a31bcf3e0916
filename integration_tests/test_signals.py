"""SIGINT and SIGTERM in the middle of a sync: a prompt, quiet exit that leaves a resumable output.

The connector's promise (`source_usage.run.interruptible`): every message written before the signal is
complete and in order, so the last STATE written is one the next sync can resume from; the threads still
reading are abandoned and the process exits at once with 130 (SIGINT) or 143 (SIGTERM).

* A slow Twilio server (hourly usage, one-day windows, each window two pages answered 1.5 s late) keeps the
  sync busy. Once the connector printed some records and a STATE, the test sends the signal and checks:
  the exit code, an exit within 2 seconds, no traceback, every line of stdout a complete JSON message, and
  no STATE claiming a period whose records were not all printed before it.
* A fast server and a consumer that falls behind (stdout's pipe fills up, as behind a slow destination):
  the signal arrives while the connector is blocked writing, and still every line must be complete.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

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
)

STREAM = "twilio_supersim_usage_records"
DAYS = 9  # one-day windows of hourly records: ten windows for four workers
RECORDS_PER_PAGE = 24  # 48 records a window (24 hours, 2 SIMs): two pages
PAGE_SECONDS = 1.5  # each page answered this late: a window takes 3 s, the sync about 9 s
MANY_SIMS = tuple(f"HS{number:032x}" for number in range(20))

SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]



def slow_twilio(server: HostileServer) -> dict:
    """Twilio answering every page late, a window in several pages linked by `meta.next_page_url`."""
    config = play_twilio(server)

    def usage_records(ex: Exchange) -> None:
        if not ex.sleep(PAGE_SECONDS):
            return
        records = twilio_records_for(ex)
        page = int(ex.query.get("Page", "0"))
        chunk = records[page * RECORDS_PER_PAGE : (page + 1) * RECORDS_PER_PAGE]
        next_url = None
        if (page + 1) * RECORDS_PER_PAGE < len(records):
            query = "&".join(f"{key}={ex.query[key]}" for key in ("Group", "Granularity", "StartTime", "EndTime"))
            next_url = f"{ex.server.url}{TWILIO_PREFIX}/UsageRecords?{query}&PageSize={RECORDS_PER_PAGE}&Page={page + 1}&PageToken=PT{page + 1}"
        ex.json(twilio_page(chunk, next_url))

    server.route("GET", TWILIO_PREFIX + "/UsageRecords$", usage_records)
    return {**config, "granularity": "hour"}


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


def interrupt_mid_sync(argv: List[str], signal_number: int, fall_behind: float = 0.0) -> Tuple[int, float, str, str]:
    """Runs `argv`, reading its stdout as it comes; once some records and a STATE were printed, stops reading
    for `fall_behind` seconds, then sends `signal_number`. Returns (exit code, seconds from the signal to the
    exit, stdout, stderr)."""
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL, env=child_environment())
        assert process.stdout is not None
        printed: List[bytes] = []
        records = states_after_records = 0
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
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
            time.sleep(fall_behind)
            assert process.poll() is None, "the sync ended before it could be interrupted"
            signalled = time.monotonic()
            process.send_signal(signal_number)
            killer = threading.Timer(30, process.kill)  # in case it does not stop
            killer.start()
            try:
                rest = process.stdout.read()  # what it printed until it exited (and what was read ahead)
                process.wait()
            finally:
                killer.cancel()
            seconds = time.monotonic() - signalled
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr_file.seek(0)
        return process.returncode, seconds, (b"".join(printed) + rest).decode(errors="replace"), stderr_file.read().decode(errors="replace")


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


def hours_ago(days: int) -> datetime:
    return (datetime.now(timezone.utc) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("program", ["source-usage", "tap-usage"])
@pytest.mark.parametrize("signal_number, exit_code", SIGNALS)
def test_a_signal_mid_sync_exits_within_2_seconds_leaving_complete_messages_and_a_resumable_state(program: str, signal_number: int, exit_code: int) -> None:
    with HostileServer() as server, tempfile.TemporaryDirectory() as folder:
        start = hours_ago(DAYS)
        argv = command_line(program, {"start_date": iso(start), "twilio": slow_twilio(server)}, folder)

        code, seconds, stdout, stderr = interrupt_mid_sync(argv, signal_number)

        assert code == exit_code, (code, stderr[-2000:])
        assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
        assert f"interrupted ({signal.Signals(signal_number).name})" in stderr.strip().splitlines()[-1]
        check_resumable(stdout, start, SIM_SIDS, singer=program == "tap-usage")
        assert seconds < 2, f"took {seconds:.2f} s to exit after the signal"


@pytest.mark.parametrize(
    "program",
    ["source-usage", "tap-usage"],
)
@pytest.mark.parametrize("signal_number, exit_code", SIGNALS)
def test_a_signal_while_stdout_is_backed_up_still_leaves_only_complete_messages(program: str, signal_number: int, exit_code: int) -> None:
    with HostileServer() as server, tempfile.TemporaryDirectory() as folder:
        start = hours_ago(60)
        argv = command_line(program, {"start_date": iso(start), "twilio": fast_twilio(server)}, folder)

        code, seconds, stdout, stderr = interrupt_mid_sync(argv, signal_number, fall_behind=1.0)

        assert code == exit_code, (code, stderr[-2000:])
        assert seconds < 2, f"took {seconds:.2f} s to exit after the signal"
        assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
        check_resumable(stdout, start, MANY_SIMS, singer=program == "tap-usage")
