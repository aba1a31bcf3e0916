"""The demo's HTML report renders in a real headless Chromium: its charts, bars, legends and provisional marks
are in the rendered DOM with a size, nothing is fetched, nothing is logged as an error.

The browser is driven over Chromium's DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
ended by NUL on file descriptors 3 and 4), with the standard library only. The ledger is written here, by the
test, for three made-up vendors: the page must draw whatever vendors the ledger holds.

Chromium comes from Debian's packages (`scripts/browser-for-tests.sh`). Where none is installed these tests
are skipped with that reason, unless SOURCE_USAGE_REQUIRE_BROWSER=1 (CI), where they fail.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

DEMO = str(Path(sys.executable).parent / "source-usage-demo")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio", "--enable-logging=stderr", "--v=0",
]
DEADLINE_SECONDS = 60.0
PAGE_WIDTH = 1040
HOSTILE_NAME = '<img src="hostile.png" onerror="console.error(1)">'  # a subject name is the vendor's data: text, never markup


# ----- a DevTools-protocol client over a pipe ----------------------------------------------------------------


def chromium_executable() -> Optional[str]:
    for candidate in (os.environ.get("SOURCE_USAGE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def high_fd(fd: int) -> int:
    """A copy of `fd` numbered 10 or more (closed on exec), so that moving it to 3 or 4 clobbers nothing."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


class Browser:
    """One headless Chromium and its DevTools pipe; every wait is bounded by DEADLINE_SECONDS."""

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        commands_read, self._commands = (high_fd(fd) for fd in os.pipe())
        self._replies, replies_write = (high_fd(fd) for fd in os.pipe())

        def onto_3_and_4() -> None:  # runs in the child between fork and exec
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, pass_fds=(3, 4), preexec_fn=onto_3_and_4,
        )
        os.close(commands_read)
        os.close(replies_write)
        self.events: List[Dict[str, Any]] = []
        self._inbox: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._next_id = 0
        self._deadline = time.monotonic() + DEADLINE_SECONDS
        threading.Thread(target=self._read, name="cdp-reader", daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._replies, 65536)
            if not chunk:
                self._inbox.put(None)  # the browser closed its end
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._inbox.put(json.loads(message))

    def _receive(self) -> Dict[str, Any]:
        remaining = self._deadline - time.monotonic()
        try:
            message = self._inbox.get(timeout=max(0.0, remaining))
        except queue.Empty:
            raise AssertionError(f"Chromium did not answer within {DEADLINE_SECONDS:.0f} s") from None
        if message is None:
            raise AssertionError(f"Chromium closed its DevTools pipe (exit code {self.process.poll()})")
        return message

    def call(self, method: str, session: Optional[str] = None, **params: Any) -> Dict[str, Any]:
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> Dict[str, Any]:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._receive()
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self._next_id += 1
                os.write(self._commands, json.dumps({"id": self._next_id, "method": "Browser.close", "params": {}}).encode() + b"\0")
                self.process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=20)
        finally:
            os.close(self._commands)
            self._log.close()


@pytest.fixture
def chromium() -> str:
    executable = chromium_executable()
    if executable is None:
        reason = "no Chromium installed: install Debian's `chromium` package (scripts/browser-for-tests.sh) to run the report's browser test"
        if os.environ.get("SOURCE_USAGE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (and SOURCE_USAGE_REQUIRE_BROWSER=1 requires it)", pytrace=False)
        pytest.skip(reason)
    return executable


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    profile = tmp_path / "profile"
    profile.mkdir()
    running = Browser(chromium, profile, tmp_path / "chromium.log")
    try:
        yield running
    finally:
        running.close()


# ----- the page, rendered -------------------------------------------------------------------------------------

# What the test reads from the rendered page: the facts only a browser knows (sizes, computed fills) included.
INSPECT = """(() => {
  const visible = (element) => { const box = element.getBoundingClientRect(); return box.width > 0 && box.height > 0; };
  const bars = (chart) => [...document.querySelectorAll(`#${chart} rect.bar`)].map((rect) => ({
      vendor: rect.dataset.vendor, period: rect.dataset.period, final: rect.dataset.final === "true",
      fill: rect.getAttribute("fill"), visible: visible(rect), value: rect.dataset.value}));
  const legend = (chart) => [...document.querySelectorAll(`#${chart} .legend-item`)].map((item) => ({
      kind: item.dataset.legend, vendor: item.dataset.vendor, text: item.textContent, visible: visible(item)}));
  return {
    outside: [...document.querySelectorAll("svg text")].filter((text) => {
      const box = text.getBoundingClientRect(), frame = text.ownerSVGElement.getBoundingClientRect();
      return box.left < frame.left - 0.5 || box.right > frame.right + 0.5 || box.top < frame.top - 0.5 || box.bottom > frame.bottom + 0.5;
    }).map((text) => text.textContent),
    charts: [...document.querySelectorAll("svg")].map((svg) => ({id: svg.id, visible: visible(svg),
      title: svg.querySelector(":scope > title")?.textContent || "",
      texts: [...svg.querySelectorAll("text")].map((text) => text.textContent)})),
    bars: Object.fromEntries(["daily-usage", "monthly-cost", "top-bytes", "top-cost"].map((chart) => [chart, bars(chart)])),
    legends: Object.fromEntries(["daily-usage", "monthly-cost", "top-bytes", "top-cost"].map((chart) => [chart, legend(chart)])),
    panels: [...document.querySelectorAll("#daily-usage .panel")].map((panel) => panel.dataset.vendor),
    currencies: [...document.querySelectorAll("#monthly-cost .panel")].map((panel) => panel.dataset.currency),
    ranking: [...document.querySelectorAll("#top-bytes .subject")].map((subject) => subject.textContent),
    images: document.querySelectorAll("img").length,
    scripts: document.querySelectorAll("script").length,
    table: [...document.querySelectorAll("#provisional tbody tr")].map((row) => [...row.cells].map((cell) => cell.textContent.trim())),
    fonts: getComputedStyle(document.body).fontFamily,
  };
})()"""


def render(browser: Browser, page: Path, screenshot: Path) -> Dict[str, Any]:
    """Loads `page` in a new tab, returns what INSPECT reads, saves a full-page screenshot."""
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.call(f"{domain}.enable", session)
    browser.call("Emulation.setDeviceMetricsOverride", session, width=PAGE_WIDTH, height=900, deviceScaleFactor=1, mobile=False)
    browser.call("Page.navigate", session, url=page.as_uri())
    browser.wait_for("Page.loadEventFired", session)
    facts = browser.call("Runtime.evaluate", session, expression=INSPECT, returnByValue=True)
    assert "exceptionDetails" not in facts, facts
    size = browser.call("Page.getLayoutMetrics", session)["cssContentSize"]
    shot = browser.call(
        "Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    )
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return facts["result"]["value"]


def problems_logged(browser: Browser) -> List[str]:
    """Console errors and warnings, uncaught exceptions and log errors (a blocked or failed load among them)."""
    found = []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
            found.append(f"console.{params['type']}: {[argument.get('value', argument.get('description')) for argument in params.get('args', [])]}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            found.append(f"log {params['entry']['level']}: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {params.get('errorText')}")
    return found


def requested_urls(browser: Browser) -> List[str]:
    return [event["params"]["request"]["url"] for event in browser.events if event.get("method") == "Network.requestWillBeSent"]


def png_size(path: Path) -> Tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


# ----- a ledger written by the test -------------------------------------------------------------------------

DAY = date(2026, 3, 29)  # four days over a month's end: the costs fall in two months


def stamp(day: date, hour: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour).isoformat(sep=" ")


def ledger_rows() -> List[Dict[str, Any]]:
    """Three made-up vendors: daily data with a provisional last day (one subject final, one not), hourly data
    added up into days, cost in two currencies, units per billing period with an organization total."""
    rows: List[Dict[str, Any]] = []

    def row(vendor: str, subject: str, metric: str, quantity: Any, unit: str, granularity: str, start: str, final: bool, cost: Any = None,
            currency: Optional[str] = None, name: Optional[str] = None, subject_type: str = "device") -> None:
        rows.append(dict(vendor=vendor, account_id="a1", subject_type=subject_type, subject_id=subject, subject_name=name, metric=metric,
                         quantity=quantity, unit=unit, cost=cost, currency=currency, granularity=granularity, period_start=start,
                         period_end=start, is_final=final, observed_at=stamp(DAY + timedelta(days=5)), source_stream=f"{vendor}_usage"))

    for offset in range(4):
        day = DAY + timedelta(days=offset)
        for subject, base, name in (("s1", 3 * 2**30, HOSTILE_NAME), ("s2", 2**30, "gateway two")):
            total = base + offset * 2**28
            final = offset < 3 or subject == "s2"
            row("acme", subject, "data_total_bytes", total, "bytes", "day", stamp(day), final, cost=Decimal(total) / 2**30, currency="EUR", name=name)
            row("acme", subject, "data_sent_bytes", total // 4, "bytes", "day", stamp(day), final, name=name)
            row("acme", subject, "data_received_bytes", total - total // 4, "bytes", "day", stamp(day), final, name=name)
    for offset in (1, 2):
        day = DAY + timedelta(days=offset)
        for hour in range(0, 24, 6):
            final = not (offset == 2 and hour == 18)
            row("globex", "sim-9", "data_total_bytes", 40 * 2**20 + hour * 2**20, "bytes", "hour", stamp(day, hour), final, cost=Decimal("0.25"), currency="USD",
                subject_type="sim")
        row("globex", "sim-9", "sms_count", 3, "messages", "day", stamp(day), True, subject_type="sim")
    row("initech", "t1", "cloud_units", 120, "units", "billing_period", stamp(DAY), False, subject_type="test")
    row("initech", "t2", "cloud_units", 80, "units", "billing_period", stamp(DAY), False, subject_type="test")
    row("initech", "org", "cloud_units_total", 200, "units", "billing_period", stamp(DAY), False, subject_type="organization")
    return rows


def write_ledger(path: Path, rows: List[Dict[str, Any]]) -> None:
    """The table the way PyAirbyte's DuckDB cache writes it (decimal quantities, naive UTC timestamps)."""
    import duckdb

    columns = [
        ("vendor", "VARCHAR"), ("account_id", "VARCHAR"), ("subject_type", "VARCHAR"), ("subject_id", "VARCHAR"), ("subject_name", "VARCHAR"),
        ("metric", "VARCHAR"), ("quantity", "DECIMAL(38,9)"), ("unit", "VARCHAR"), ("cost", "DECIMAL(38,9)"), ("currency", "VARCHAR"),
        ("granularity", "VARCHAR"), ("period_start", "TIMESTAMP"), ("period_end", "TIMESTAMP"), ("is_final", "BOOLEAN"),
        ("observed_at", "TIMESTAMP"), ("source_stream", "VARCHAR"),
    ]
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"CREATE TABLE main.usage_ledger ({', '.join(f'{name} {kind}' for name, kind in columns)})")
        if rows:
            connection.executemany(
                f"INSERT INTO main.usage_ledger VALUES ({', '.join('?' for _ in columns)})",
                [[None if row[name] is None else str(row[name]) if isinstance(row[name], Decimal) else row[name] for name, _ in columns] for row in rows],
            )


def expected_daily_bars(rows: List[Dict[str, Any]]) -> Dict[str, Counter]:
    """Per vendor, how many final and how many provisional bar parts the daily chart draws: one of each kind
    per day that has a (non-zero) total of that kind."""
    sums: Dict[Tuple[str, str, bool], int] = defaultdict(int)
    for row in rows:
        if row["metric"] == "data_total_bytes" and row["granularity"] in ("day", "hour"):
            sums[row["vendor"], row["period_start"][:10], row["is_final"]] += row["quantity"]
    bars: Dict[str, Counter] = defaultdict(Counter)
    for (vendor, _, final), total in sums.items():
        if total:
            bars[vendor][final] += 1
    return bars


# ----- the tests ----------------------------------------------------------------------------------------------


def test_given_a_ledger_of_three_vendors_when_the_demo_writes_its_report_then_chromium_renders_every_chart_with_its_bars_legend_and_provisional_marks(
    browser: Browser, tmp_path: Path
) -> None:
    rows = ledger_rows()
    database, page, screenshot = tmp_path / "usage.duckdb", tmp_path / "usage.html", tmp_path / "usage.png"
    write_ledger(database, rows)

    demo = subprocess.run([DEMO, "--summary-only", "--duckdb", str(database), "--report", str(page)], capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr[-3000:]
    facts = render(browser, page, screenshot)

    # One visible SVG per chart, each with its title.
    assert [(chart["id"], chart["visible"]) for chart in facts["charts"]] == [
        ("daily-usage", True), ("monthly-cost", True), ("top-bytes", True), ("top-cost", True)
    ]
    assert all(chart["title"] for chart in facts["charts"])
    assert facts["outside"] == [], "every label is drawn inside its chart"
    assert facts["scripts"] == 0 and facts["images"] == 0, "the hostile subject name is text, not markup"

    # Daily usage: a panel per vendor with daily data (not the one with units only), the bars per vendor and
    # kind the ledger's rows call for, all drawn with a size; provisional parts hatched, final ones solid.
    daily = facts["bars"]["daily-usage"]
    assert facts["panels"] == ["acme", "globex"]
    assert {vendor: Counter(bar["final"] for bar in daily if bar["vendor"] == vendor) for vendor in ("acme", "globex")} == {
        vendor: expected_daily_bars(rows)[vendor] for vendor in ("acme", "globex")
    }
    assert all(bar["visible"] for bar in daily), [bar for bar in daily if not bar["visible"]]
    assert all(bar["fill"].startswith("url(#hatch-") for bar in daily if not bar["final"])
    assert all(bar["fill"].startswith("#") for bar in daily if bar["final"])
    fills = {bar["vendor"]: bar["fill"] for bar in daily if bar["final"]}
    assert len(set(fills.values())) == 2, f"each vendor has its own colour: {fills}"
    # the provisional last day of acme: its one provisional subject is hatched on top of the final one
    last = [bar for bar in daily if bar["vendor"] == "acme" and bar["period"] == str(DAY + timedelta(days=3))]
    assert sorted(bar["final"] for bar in last) == [False, True]
    assert Decimal(next(bar["value"] for bar in last if not bar["final"])) == 3 * 2**30 + 3 * 2**28

    # The legend names each vendor drawn and says what solid and hatched bars mean; the axes are labelled.
    for chart, vendors in (("daily-usage", ["acme", "globex"]), ("monthly-cost", ["acme", "globex"])):
        legend = facts["legends"][chart]
        assert [item["vendor"] for item in legend if item["kind"] == "vendor"] == vendors
        assert [item["kind"] for item in legend if item["kind"] != "vendor"] == ["final", "provisional"]
        assert all(item["visible"] for item in legend)
        assert "provisional" in next(item["text"] for item in legend if item["kind"] == "provisional")
    daily_texts = next(chart["texts"] for chart in facts["charts"] if chart["id"] == "daily-usage")
    assert "GiB per day" in daily_texts and "MiB per day" in daily_texts
    assert any(text.startswith("day (UTC)") for text in daily_texts)

    # Cost per month: a panel per currency; acme's EUR spans March and April, globex's USD is March only.
    cost = facts["bars"]["monthly-cost"]
    assert facts["currencies"] == ["EUR", "USD"]
    assert sorted({(bar["vendor"], bar["period"]) for bar in cost}) == [("acme", "2026-03"), ("acme", "2026-04"), ("globex", "2026-03")]
    assert [(bar["vendor"], bar["period"]) for bar in cost if not bar["final"]] == [("acme", "2026-04"), ("globex", "2026-03")]
    cost_texts = next(chart["texts"] for chart in facts["charts"] if chart["id"] == "monthly-cost")
    assert "cost (EUR)" in cost_texts and "cost (USD)" in cost_texts

    # Top subjects by data used: the three subjects with data, the largest first, its name shown as text.
    assert len(facts["ranking"]) == 3
    assert facts["ranking"][0].startswith("1. acme · device s1 (<img")
    assert all(bar["visible"] for bar in facts["bars"]["top-bytes"] + facts["bars"]["top-cost"])

    # The totals table keeps the organization total apart from the per-test units.
    table = {(row[0], row[1]): row for row in facts["table"]}
    assert table["initech", "cloud_units"][4] == "200 units" and table["initech", "cloud_units_total"][4] == "200 units"
    assert table["initech", "cloud_units"][6] == "100.0%"

    # Nothing fetched but the page itself, nothing logged as a problem.
    assert requested_urls(browser) == [page.as_uri()]
    assert problems_logged(browser) == []

    # The screenshot is the page's full width and height.
    width, height = png_size(screenshot)
    assert width == PAGE_WIDTH and height > 1500


def test_given_an_empty_ledger_when_the_demo_writes_its_report_then_chromium_renders_each_chart_saying_so(browser: Browser, tmp_path: Path) -> None:
    database, page = tmp_path / "usage.duckdb", tmp_path / "usage.html"
    write_ledger(database, [])

    demo = subprocess.run([DEMO, "--summary-only", "--duckdb", str(database), "--report", str(page)], capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr[-3000:]
    facts = render(browser, page, tmp_path / "empty.png")

    assert [chart["id"] for chart in facts["charts"]] == ["daily-usage", "monthly-cost", "top-bytes", "top-cost"]
    assert all(not bars for bars in facts["bars"].values())
    assert facts["outside"] == []
    assert [chart["texts"] for chart in facts["charts"]] == [
        ["No daily data usage in the ledger."], ["No vendor in the ledger states a cost."],
        ["No subject in the ledger used data."], ["No vendor in the ledger states a cost per subject."],
    ]
    assert problems_logged(browser) == []
