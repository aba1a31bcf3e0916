"""Smoke tests of the two console scripts a person tries first: `source-usage-demo` (a sync into DuckDB, its
summary of the usage ledger, its HTML report) and `source-usage-sandbox --config-out FILE`.

The demo's printed figures are checked against the ledger rows in DuckDB, added up here by plain SQL.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Dict, IO, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest

from integration_tests.harness import CONNECTOR
from integration_tests.test_report_browser import stamp, write_ledger
from source_usage.emulator import ALL_VENDORS
from source_usage.framework.plugin import plugins

BIN = Path(sys.executable).parent
DEMO, SANDBOX = str(BIN / "source-usage-demo"), str(BIN / "source-usage-sandbox")
MEBIBYTE = Decimal(1024 * 1024)
TOP = 10


# ----- reading what the demo printed -------------------------------------------------------------------------


def sections(output: str) -> Dict[str, List[List[str]]]:
    """The printed tables: title (the text before the colon) -> rows of cells, the header first."""
    found: Dict[str, List[List[str]]] = {}
    title: Optional[str] = None
    for line in output.splitlines():
        if not line.strip():
            title = None
        elif title is None and line.endswith(":") and not line.startswith(" "):
            title = line[:-1]
            found[title] = []
        elif title is not None and line.startswith("  "):
            found[title].append([cell.strip() for cell in line.strip().split(" | ")])
    return found


def section(found: Dict[str, List[List[str]]], words: str) -> List[List[str]]:
    matches = [rows for title, rows in found.items() if words in title]
    assert len(matches) == 1, f"one table titled ...{words!r}...: {list(found)}"
    return matches[0]


def mib(value: Decimal) -> str:
    return f"{value / MEBIBYTE:,.1f}"


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def quantity(value: Decimal, unit: str) -> str:
    return f"{mib(value)} MiB" if unit == "bytes" else f"{value:,.0f} {unit}"


def sql(database: Path, query: str) -> List[tuple]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(query).fetchall()


# ----- the demo ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_given_the_emulator_when_the_demo_runs_then_it_prints_row_counts_and_a_ledger_summary_equal_to_the_duckdb_rows_and_writes_the_report(
    tmp_path: Path,
) -> None:
    database, report = tmp_path / "usage.duckdb", tmp_path / "usage.html"

    demo = subprocess.run([DEMO, "--scale", "1", "--duckdb", str(database), "--report", str(report)], capture_output=True, text=True, timeout=600, cwd=tmp_path)

    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    output = demo.stdout
    found = sections(output)
    # Every emulated vendor by default, and each of its streams holds what the emulator holds.
    assert sorted(row[0] for row in sql(database, "SELECT DISTINCT vendor FROM usage_ledger")) == sorted(ALL_VENDORS)
    counts = [re.fullmatch(r"(\w+)\s+(\d+)(?:\s+\(emulator holds (\d+)\))?", " ".join(row)) for row in section(found, "Rows per stream in")]
    assert all(counts), section(found, "Rows per stream in")
    for match in counts:
        stream, rows, held = match.group(1), int(match.group(2)), match.group(3)
        assert rows == sql(database, f'SELECT count(*) FROM main."{stream}"')[0][0], stream
        assert stream == "usage_ledger" or (held is not None and rows == int(held)), match.group(0)
    ledger_rows = sql(database, "SELECT count(*) FROM usage_ledger")[0][0]
    assert f"Usage ledger: {ledger_rows} rows of {len(ALL_VENDORS)} vendors" in output
    # Each vendor holds each metric at one granularity: plain sums below equal what the demo adds up.
    assert sql(database, "SELECT vendor, metric FROM usage_ledger GROUP BY ALL HAVING count(DISTINCT granularity) > 1") == []

    # Data used per vendor and day: the subjects' data_total_bytes (not sent + received + total).
    daily = section(found, "Data used per day")
    header, printed = daily[0], {(row[0], vendor): cell for row in daily[1:] for vendor, cell in zip(daily[0][1:], row[1:]) if cell}
    assert header[0] == "day"
    expected = {
        (str(day), vendor): mib(total) + ("*" if provisional else "")
        for day, vendor, total, provisional in sql(
            database,
            "SELECT CAST(period_start AS DATE), vendor, sum(quantity), sum(quantity) FILTER (WHERE NOT is_final) > 0 FROM usage_ledger "
            "WHERE metric = 'data_total_bytes' AND granularity IN ('day', 'hour') GROUP BY ALL",
        )
    }
    assert printed == expected
    assert any(cell.endswith("*") for cell in printed.values()), "the emulator's latest day is provisional"

    # Totals per vendor and whole metric (not the sent and received parts), and how much is provisional.
    totals = {(row[0], row[1], row[2]): row[3:] for row in section(found, "Totals per vendor and metric")[1:]}
    expected_totals = {
        (vendor, metric, granularity): [str(periods), quantity(total, unit), quantity(provisional, unit), f"{provisional / total:.1%}" if total else "-"]
        for vendor, metric, granularity, unit, periods, total, provisional in sql(
            database,
            "SELECT vendor, metric, granularity, unit, count(DISTINCT period_start), sum(quantity), coalesce(sum(quantity) FILTER (WHERE NOT is_final), 0) "
            "FROM usage_ledger WHERE metric NOT LIKE '%sent%' AND metric NOT LIKE '%received%' GROUP BY ALL",
        )
    }
    assert totals == expected_totals
    # the organization's totals are rows of their own, not added to the units per test
    assert {("thousandeyes", "cloud_units", "billing_period"), ("thousandeyes", "cloud_units_total", "billing_period")} <= set(totals)

    # Cost per month of the period's start, per vendor and currency.
    costs = [row for row in section(found, "Cost per month")[1:]]
    assert costs == [
        [month, vendor, currency, money(cost), money(provisional)]
        for month, vendor, currency, cost, provisional in sql(
            database,
            "SELECT strftime(period_start, '%Y-%m'), vendor, currency, sum(cost), coalesce(sum(cost) FILTER (WHERE NOT is_final), 0) "
            "FROM usage_ledger WHERE cost IS NOT NULL GROUP BY ALL ORDER BY 1, 2, 3",
        )
    ]
    assert {row[2] for row in costs} == {"EUR", "USD"}

    # The top subjects by data used and, per currency, by cost.
    assert section(found, "subjects by data used")[1:] == [
        [str(rank), vendor, subject_type, subject_id, name, mib(total), mib(provisional)]
        for rank, (vendor, subject_type, subject_id, name, total, provisional) in enumerate(sql(
            database,
            "SELECT vendor, subject_type, subject_id, coalesce(max(subject_name), ''), sum(quantity), coalesce(sum(quantity) FILTER (WHERE NOT is_final), 0) "
            f"FROM usage_ledger WHERE metric = 'data_total_bytes' GROUP BY 1, 2, 3 ORDER BY 5 DESC, 1, 2, 3 LIMIT {TOP}",
        ), start=1)
    ]
    by_cost = section(found, "Top subjects by cost")[1:]
    expected_by_cost = []
    for (currency,) in sql(database, "SELECT DISTINCT currency FROM usage_ledger WHERE cost IS NOT NULL ORDER BY 1"):
        expected_by_cost += [
            [currency, str(rank), vendor, subject_type, subject_id, name, money(total), money(provisional)]
            for rank, (vendor, subject_type, subject_id, name, total, provisional) in enumerate(sql(
                database,
                "SELECT vendor, subject_type, subject_id, coalesce(max(subject_name), ''), sum(cost), coalesce(sum(cost) FILTER (WHERE NOT is_final), 0) "
                f"FROM usage_ledger WHERE cost IS NOT NULL AND currency = '{currency}' GROUP BY 1, 2, 3 ORDER BY 5 DESC, 1, 2, 3 LIMIT {TOP}",
            ), start=1)
        ]
    assert by_cost == expected_by_cost

    # The report: one page, its four charts, the daily bars the ledger calls for, nothing fetched from elsewhere.
    page = report.read_text(encoding="utf-8")
    assert f"Wrote the report to {report}" in output
    assert re.findall(r'<svg id="([\w-]+)"', page) == ["daily-usage", "monthly-cost", "top-bytes", "top-cost"]
    daily_chart = page[page.index('<svg id="daily-usage"'):page.index("</svg>", page.index('<svg id="daily-usage"'))]
    drawn = sorted(re.findall(r'data-vendor="(\w+)" data-period="([\d-]+)" data-final="(true|false)"', daily_chart))
    assert drawn == sorted(
        (vendor, str(day), "true" if final else "false")
        for vendor, day, final in sql(
            database,
            "SELECT vendor, CAST(period_start AS DATE), is_final FROM usage_ledger WHERE metric = 'data_total_bytes' AND granularity IN ('day', 'hour') "
            "GROUP BY ALL HAVING sum(quantity) > 0",
        )
    )
    assert not re.search(r"""(?:src|href)\s*=|url\((?!#)|@import|<script|<link""", page), "the page loads nothing"


def test_given_a_vendor_holding_a_metric_by_day_and_by_hour_when_the_demo_summarises_then_it_counts_the_usage_once(tmp_path: Path) -> None:
    database = tmp_path / "usage.duckdb"
    day = date(2026, 5, 4)
    base = dict(account_id="a", subject_type="sim", subject_id="x", subject_name=None, metric="data_total_bytes", unit="bytes", cost=None,
                currency=None, period_end=None, is_final=True, observed_at=stamp(day + timedelta(days=2)), source_stream="s")
    rows = [dict(base, vendor="zeta", quantity=24 * MEBIBYTE, granularity="day", period_start=stamp(day))]
    rows += [dict(base, vendor="zeta", quantity=MEBIBYTE, granularity="hour", period_start=stamp(day, hour)) for hour in range(24)]
    write_ledger(database, rows)

    demo = subprocess.run([DEMO, "--summary-only", "--duckdb", str(database)], capture_output=True, text=True, timeout=120)

    assert demo.returncode == 0, demo.stderr[-3000:]
    found = sections(demo.stdout)
    assert section(found, "Data used per day") == [["day", "zeta"], ["2026-05-04", "24.0"]]
    assert [row[:5] for row in section(found, "Totals per vendor and metric")[1:]] == [
        ["zeta", "data_total_bytes", "day", "1", "24.0 MiB"], ["zeta", "data_total_bytes", "hour", "24", "24.0 MiB"],
    ]
    assert section(found, "subjects by data used")[1:] == [["1", "zeta", "sim", "x", "", "24.0", "0.0"]]


def test_given_the_demo_and_its_report_then_their_code_names_no_vendor() -> None:
    import source_usage.demo
    import source_usage.report

    for module in (source_usage.demo, source_usage.report):
        code = Path(module.__file__).read_text(encoding="utf-8")
        named = [plugin.name for plugin in plugins() if re.search(rf"\b{re.escape(plugin.name)}\b", code, re.IGNORECASE)]
        assert named == [], f"{module.__name__} names {named}: it must iterate the plugins and read the ledger's generic columns"


# ----- the sandbox ---------------------------------------------------------------------------------------------


def lines_of(stream: IO[str]) -> "queue.Queue[Optional[str]]":
    """The lines a pipe delivers, as they arrive (None once it closes)."""
    arrived: "queue.Queue[Optional[str]]" = queue.Queue()

    def pump() -> None:
        for line in stream:
            arrived.put(line)
        arrived.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return arrived


def wait_for_line(arrived: "queue.Queue[Optional[str]]", prefix: str, seconds: float) -> Tuple[str, List[str]]:
    """The first line starting with `prefix`, waiting on the pipe (not a clock) for at most `seconds`."""
    seen: List[str] = []
    deadline = time.monotonic() + seconds
    while True:
        try:
            line = arrived.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line starting with {prefix!r} within {seconds:.0f} s; saw {seen}") from None
        if line is None:
            raise AssertionError(f"the pipe closed before a line starting with {prefix!r}; saw {seen}")
        seen.append(line)
        if line.startswith(prefix):
            return line, seen


def test_given_the_sandbox_with_config_out_when_the_connector_checks_that_file_then_it_connects_and_sigterm_stops_the_sandbox(tmp_path: Path) -> None:
    config_file = tmp_path / "sandbox-config.json"
    sandbox = subprocess.Popen([SANDBOX, "--config-out", str(config_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # It writes the file, prints the config, then says where it listens: that line means the file is complete.
        ready, _ = wait_for_line(lines_of(sandbox.stderr), "Emulating ", seconds=60)
        config = json.loads(config_file.read_text())
        assert sorted(config) == sorted(ALL_VENDORS), "every emulated vendor by default"

        check = subprocess.run([CONNECTOR, "check", "--config", str(config_file)], capture_output=True, text=True, timeout=120)

        statuses = [json.loads(line)["connectionStatus"] for line in check.stdout.splitlines() if '"CONNECTION_STATUS"' in line]
        assert check.returncode == 0 and statuses == [{"status": "SUCCEEDED"}], check.stdout[-3000:] + check.stderr[-3000:]
    finally:
        sandbox.send_signal(signal.SIGTERM)
        try:
            sandbox.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait(timeout=30)
            raise AssertionError("SIGTERM did not stop the sandbox within 30 s") from None
    stdout = sandbox.stdout.read()  # the config it printed: a few kB, held in the pipe until now
    sandbox.stdout.close()
    assert sandbox.returncode == 0
    assert json.loads(stdout) == config, "the file holds the config it printed"
    listening = re.search(r"at (http://[\d.]+:\d+)", ready)
    assert listening, ready
    address = urlsplit(listening.group(1))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address.hostname, address.port), timeout=5).close()
