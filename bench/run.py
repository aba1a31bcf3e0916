"""Benchmark: how fast and how lean a sync is, measured side by side with a plain `requests` loop and with
the time the vendors' own limits allow.

Not a test (machines are noisy): it prints figures, then a summary with ratios and targets. Nothing here
names a vendor: the vendors are the installed plugins (`source_usage.framework.plugin.plugins()`), each
plugin's `emulator` ("module:Class") is its emulated API, and each emulator declares its own benchmark
scenarios (`benchmark_scenarios`), the fewest requests its data needs (`minimum_requests`) and the ideal
time of a read under its limits (`ideal`). Scenarios:

* `open`     rate limits off, every vendor and stream at `--scale`: the connector against a plain `requests`
             loop that replays exactly the requests the connector sent (same URLs, headers and bodies, from
             the emulator's request log) one after another and only parses them (the floor for a Python
             client); per route: requests against the minimum the data needs, 429s; overall: records/s,
             CPU seconds per 10,000 records, peak RSS.
* `memory`   peak RSS of the same read at `--scale`, twice and four times that: it must not grow with scale.
* `shard`    the same read unsharded and as three shards (`shard.index` 0..2 of 3): per stream, whether the
             shards' union equals the unsharded read and how many records more than one shard read.
* each vendor's own scenarios (`--list` shows them): "limited" ones run with the vendor's limits on and
             report the sync against the ideal time its limits allow and its share of 429s; "memory" ones
             report peak RSS (also with one worker, to tell what the workers hold). A scenario with an
             `option` runs only with `--<option>` (e.g. `--emnify-fleet`: over 5 minutes by the limit itself).

Run it with `make bench` (or `.venv/bin/python bench/run.py --scale 5 --only open,memory`).
The emulator runs in a process of its own (`bench/run.py --serve ...`), so that it does not share the
connector's or the plain loop's GIL and CPU accounting.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import requests

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve()
NO_CLIENT_BUDGETS = {"SOURCE_USAGE_CLIENT_RATE_BUDGETS": "off"}
SKIPPED_HEADERS = {"host", "content-length", "connection", "accept-encoding"}


# ----- the registry -------------------------------------------------------------------------------


def vendor_apps() -> Dict[str, Any]:
    """Each installed vendor plugin with an emulator: its name -> the emulator's VendorApp class."""
    from source_usage.framework.plugin import plugins

    apps = {}
    for plugin in plugins():
        if plugin.emulator:
            module, _, name = plugin.emulator.partition(":")
            apps[plugin.name] = getattr(importlib.import_module(module), name)
    return apps


# ----- the emulator, in a process of its own --------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """The emulator with the benchmark's additions: the request log keeps each request's headers and its
    route label, and `GET /_emulator/bench/minimum`, `GET /_emulator/bench/ideal?vendor=` answer from the
    vendor apps."""
    from source_usage.emulator import Emulator
    from source_usage.emulator.http import json_response

    class BenchEmulator(Emulator):
        def log_request(self, app: Any, request: Any, status: int, started: float) -> None:
            entry = {
                "vendor": app.name,
                "method": request.method,
                "url": request.url(),
                "raw_url": request.base_url + request.path + ("?" + request.raw_query if request.raw_query else ""),
                "headers": {name: value for name, value in request.headers.items() if name not in SKIPPED_HEADERS},
                "body": request.body.decode() if request.body else None,
                "status": status,
                "tenant": app.tenant_of(request),
                "label": app.route_label(request.path),
                "started": started,
                "finished": time.time(),
            }
            with self._log_lock:
                self.request_log.append(entry)

        def control(self, method: str, path: str, query: Dict[str, list], body: bytes) -> Any:
            action = path[len("/_emulator/"):]
            if method == "GET" and action == "bench/minimum":
                minimum: Dict[str, int] = {}
                for app in self.apps.values():
                    minimum.update(app.minimum_requests())
                return json_response(minimum)
            if method == "GET" and action == "bench/ideal":
                app = self.apps[query["vendor"][0]]
                with self._log_lock:
                    log = [entry for entry in self.request_log if entry["vendor"] == app.name]
                ideal = app.ideal(log)
                return json_response({"seconds": ideal.seconds, "explanation": ideal.explanation} if ideal else None)
            return super().control(method, path, query, body)

    knobs = json.loads(args.knobs)
    emulator = BenchEmulator(
        seed=args.seed, scale=args.scale, rate_limits=not args.no_rate_limits, vendors=args.vendors.split(","), record_requests=True, **knobs
    )
    emulator.start()
    Path(args.config_out).write_text(json.dumps({"config": emulator.config(), "control": emulator.url + "/_emulator"}))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    emulator.stop()


class Sandbox:
    """`bench/run.py --serve` in a subprocess."""

    def __init__(self, scale: int, rate_limits: bool, vendors: Iterable[str], knobs: Optional[dict] = None, seed: int = 7) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="source-usage-bench-")
        out = Path(self.folder.name) / "emulator.json"
        args = [
            sys.executable, str(HERE), "--serve", "--seed", str(seed), "--scale", str(scale),
            "--vendors", ",".join(vendors), "--knobs", json.dumps(knobs or {}), "--config-out", str(out),
        ]
        if not rate_limits:
            args.append("--no-rate-limits")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while not out.exists() or not out.read_text().strip().endswith("}"):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the emulator did not start: {self.process.stderr.read() if self.process.stderr else ''}")
            time.sleep(0.05)
        started = json.loads(out.read_text())
        self.config: Dict[str, Any] = started["config"]
        self.control: str = started["control"]

    def get(self, path: str) -> Any:
        return requests.get(f"{self.control}/{path}", timeout=300).json()

    def requests(self) -> List[Dict[str, Any]]:
        return self.get("requests")

    def reset(self) -> None:
        requests.post(f"{self.control}/stats/reset", timeout=30)

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.folder.cleanup()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ----- one connector read -----------------------------------------------------------------------


@dataclass
class Read:
    wall: float
    last_output: float  # epoch seconds of the last message (before the interpreter's own teardown)
    cpu: float
    peak_rss_mb: float
    records: Counter = field(default_factory=Counter)
    stream_seconds: Dict[str, float] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    kept: Dict[str, List[dict]] = field(default_factory=dict)  # the records themselves, when asked for
    reading: float = 0.0  # seconds from the first request to the last message

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def discovered(config: Dict[str, Any]) -> List[Any]:
    import logging

    from source_usage.source import SourceUsage

    return list(SourceUsage().discover(logging.getLogger("bench"), config).streams)


def configured_catalog(config: Dict[str, Any], streams: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {"name": stream.name, "json_schema": stream.json_schema, "supported_sync_modes": ["full_refresh"]},
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            }
            for stream in discovered(config)
            if streams is None or stream.name in streams
        ]
    }


def read_with_connector(
    config: Dict[str, Any], streams: Optional[Sequence[str]] = None, env: Optional[Dict[str, str]] = None, keep_records: bool = False
) -> Read:
    with tempfile.TemporaryDirectory() as folder:
        config_path, catalog_path = Path(folder) / "config.json", Path(folder) / "catalog.json"
        config_path.write_text(json.dumps(config))
        catalog_path.write_text(json.dumps(configured_catalog(config, streams)))
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(BIN / "source-usage"), "read", "--config", str(config_path), "--catalog", str(catalog_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=1 << 20,
            env={**os.environ, **(env or {})},
        )
        records: Counter = Counter()
        kept: Dict[str, List[dict]] = defaultdict(list)
        first_seen: Dict[str, float] = {}
        last_seen: Dict[str, float] = {}
        errors: List[str] = []
        marker = b'{"type":"RECORD","record":{"stream":"'
        assert process.stdout is not None
        last_output = time.time()
        for line in process.stdout:
            last_output = time.time()
            if line.startswith(marker):
                stream = line[len(marker) : line.index(b'"', len(marker))].decode()
                records[stream] += 1
                now = time.perf_counter()
                first_seen.setdefault(stream, now)
                last_seen[stream] = now
                if keep_records:
                    kept[stream].append(json.loads(line)["record"]["data"])
            elif b'"failure_type"' in line:
                errors.append(json.loads(line)["trace"]["error"]["message"])
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    return Read(
        wall=wall,
        last_output=last_output,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        records=records,
        stream_seconds={stream: last_seen[stream] - first_seen[stream] for stream in first_seen},
        errors=errors,
        kept=dict(kept),
    )


# ----- the floor: a plain requests loop over the same requests --------------------------------------


def plain_loop(log: List[Dict[str, Any]]) -> Dict[str, float]:
    """Replays the requests the connector sent and the emulator answered 200, in order, one at a time, with
    the same method, URL, headers and body, and only parses them."""
    session = requests.Session()
    session.trust_env = False
    replayed = [entry for entry in log if entry["status"] == 200]
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    parsed = 0
    for entry in replayed:
        body = entry["body"].encode() if entry["body"] is not None else None
        response = session.request(entry["method"], entry["raw_url"], data=body, headers=entry["headers"])
        document = response.json()
        parsed += len(document) if isinstance(document, list) else 1
    return {"wall": time.perf_counter() - started_wall, "cpu": time.process_time() - started_cpu, "requests": len(replayed)}


# ----- reporting ------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    measured: str
    reference: str
    ratio: Optional[float]
    limited: str
    target: str
    met: Optional[bool]


SUMMARY: List[Row] = []


def requests_by_route(log: List[Dict[str, Any]]) -> Dict[str, Counter]:
    counts: Dict[str, Counter] = defaultdict(Counter)
    for entry in log:
        counts[entry["label"]]["requests"] += 1
        counts[entry["label"]]["429"] += entry["status"] == 429
    return counts


def span_of(log: List[Dict[str, Any]]) -> float:
    return max(entry["finished"] for entry in log) - min(entry["started"] for entry in log)


def print_errors(read: Read) -> None:
    if read.errors:
        print("errors:", *read.errors[:10], sep="\n  ")


# ----- scenarios ------------------------------------------------------------------------------------


def open_read(vendors: Sequence[str], scale: int, repeat: int) -> None:
    print(f"\n== Rate limits off, every stream, scale {scale} (median of {repeat} runs of each, alternating) ==")
    with Sandbox(scale, rate_limits=False, vendors=vendors) as sandbox:
        minimum = sandbox.get("bench/minimum")
        runs, floors = [], []
        for _ in range(repeat):
            sandbox.reset()
            result = read_with_connector(sandbox.config, env=NO_CLIENT_BUDGETS)
            log = sandbox.requests()
            result.reading = result.last_output - min(entry["started"] for entry in log)
            runs.append(result)
            floors.append(plain_loop(log))
    result = sorted(runs, key=lambda run: run.reading)[len(runs) // 2]
    floor = sorted(floors, key=lambda run: run["wall"])[len(floors) // 2]
    routes = requests_by_route(log)
    print(f"{'stream':40} {'records':>9} {'seconds':>8}")
    for stream in sorted(result.records):
        print(f"{stream:40} {result.records[stream]:>9} {result.stream_seconds[stream]:>8.2f}")
    print(f"\n{'requests to':46} {'sent':>6} {'minimum':>8} {'429s':>5}")
    for name in sorted(routes):
        print(f"{name:46} {routes[name]['requests']:>6} {minimum.get(name, ''):>8} {routes[name]['429']:>5}")
    total_requests = sum(route["requests"] for route in routes.values())
    reading = result.reading
    print(
        f"\nconnector: {result.total_records} records, {total_requests} requests (minimum {sum(minimum.values())}), {result.wall:.2f} s wall "
        f"({reading:.2f} s from its first request to its last message; the rest is Python and airbyte-cdk starting and stopping), "
        f"{result.total_records / reading:,.0f} records/s, "
        f"{10000 * result.cpu / max(1, result.total_records):.2f} CPU s per 10,000 records (start-up included), peak RSS {result.peak_rss_mb:.0f} MB"
    )
    print(f"plain requests loop replaying the same {floor['requests']:.0f} requests: {floor['wall']:.2f} s wall, {floor['cpu']:.2f} CPU s")
    ratio = reading / floor["wall"]
    print(f"ratio connector / plain loop: {ratio:.2f}x from the first request (target <= 1.5x), {result.wall / floor['wall']:.2f}x with start-up")
    print_errors(result)
    SUMMARY.append(
        Row(
            f"open read, scale {scale}: {result.total_records:,} records, {total_requests} requests (minimum {sum(minimum.values())})",
            f"{reading:.2f} s (whole process {result.wall:.2f} s)",
            f"plain loop {floor['wall']:.2f} s",
            ratio,
            f"{sum(route['429'] for route in routes.values())}",
            "<= 1.5x",
            ratio <= 1.5 and not result.errors,
        )
    )


def memory(vendors: Sequence[str], scale: int) -> None:
    print("\n== Peak memory against scale (rate limits off) ==")
    figures = []
    for factor in (scale, 2 * scale, 4 * scale):
        with Sandbox(factor, rate_limits=False, vendors=vendors) as sandbox:
            result = read_with_connector(sandbox.config, env=NO_CLIENT_BUDGETS)
        figures.append((factor, result.total_records, result.peak_rss_mb))
        print(f"scale {factor:>3}: {result.total_records:>9} records, peak RSS {result.peak_rss_mb:.0f} MB (target < 300 MB, flat)")
        print_errors(result)
    SUMMARY.append(
        Row(
            "peak RSS at scale " + ", ".join(f"{factor} ({records:,} records)" for factor, records, _ in figures),
            ", ".join(f"{rss:.0f} MB" for _, _, rss in figures),
            "",
            None,
            "",
            "< 300 MB, flat",
            max(rss for _, _, rss in figures) < 300,
        )
    )


def canonical(record: Dict[str, Any]) -> str:
    return json.dumps({key: value for key, value in record.items() if key != "observed_at"}, sort_keys=True)


def sharded(vendors: Sequence[str], scale: int, count: int = 3) -> None:
    print(f"\n== {count} shards against one unsharded read (rate limits off, scale {scale}) ==")
    with Sandbox(scale, rate_limits=False, vendors=vendors) as sandbox:
        keys = {stream.name: [path[0] for path in stream.source_defined_primary_key or []] for stream in discovered(sandbox.config)}
        whole = read_with_connector(sandbox.config, env=NO_CLIENT_BUDGETS, keep_records=True)
        shards = [
            read_with_connector({**sandbox.config, "shard": {"index": index, "count": count}}, env=NO_CLIENT_BUDGETS, keep_records=True)
            for index in range(count)
        ]
    print(f"{'stream':40} {'unsharded':>9} {'per shard':>20} {'union = unsharded':>18} {'in 2+ shards':>13}")
    all_equal, duplicated_streams = True, []
    for stream in sorted(set(whole.kept) | {name for shard in shards for name in shard.kept}):
        full = {canonical(record) for record in whole.kept.get(stream, [])}
        union = {canonical(record) for shard in shards for record in shard.kept.get(stream, [])}
        pk = keys.get(stream) or []
        by_key: Counter = Counter()
        for shard in shards:
            for key in {json.dumps([record.get(name) for name in pk]) for record in shard.kept.get(stream, [])}:
                by_key[key] += 1
        in_several = sum(1 for seen in by_key.values() if seen > 1)
        equal = union == full
        all_equal &= equal
        if in_several:
            duplicated_streams.append(stream)
        per_shard = "/".join(str(len(shard.kept.get(stream, []))) for shard in shards)
        print(f"{stream:40} {len(full):>9} {per_shard:>20} {'yes' if equal else 'NO':>18} {in_several:>13}")
    print(f"unsharded read {whole.wall:.1f} s; shards {', '.join(f'{shard.wall:.1f} s' for shard in shards)}")
    print(f"check: the shards' union equals the unsharded read for every stream: {'yes' if all_equal else 'NO'}")
    print(f"streams read by more than one shard: {', '.join(duplicated_streams) or 'none'}")
    for read in (whole, *shards):
        print_errors(read)
    SUMMARY.append(
        Row(
            f"{count} shards, scale {scale}",
            f"union = unsharded: {'yes' if all_equal else 'NO'}",
            f"{whole.total_records:,} records unsharded",
            None,
            "",
            "union = unsharded",
            all_equal,
        )
    )
    if duplicated_streams:
        SUMMARY.append(Row(f"{count} shards: streams every shard reads", ", ".join(duplicated_streams), "", None, "", "", None))


def limited(vendor: str, app: Any, scenario: Any, scale: int) -> None:
    print(f"\n== {scenario.title} [{scenario.name}] ==")
    with Sandbox(scenario.scale or scale, rate_limits=True, vendors=[vendor], knobs={vendor: dict(scenario.knobs)}) as sandbox:
        result = read_with_connector(sandbox.config, list(scenario.streams or app.streams))
        log = sandbox.requests()
        ideal = sandbox.get(f"bench/ideal?vendor={vendor}")
    refused = sum(entry["status"] == 429 for entry in log)
    span = span_of(log)
    share = refused / len(log)
    ratio = span / ideal["seconds"] if ideal and ideal["seconds"] else None
    routes = requests_by_route(log)
    print(f"{'requests to':46} {'sent':>6} {'429s':>5}")
    for name in sorted(routes):
        print(f"{name:46} {routes[name]['requests']:>6} {routes[name]['429']:>5}")
    if ideal:
        print(f"ideal: {ideal['seconds']:.1f} s ({ideal['explanation']})")
    print(
        f"first to last request: {span:.1f} s" + (f" = {ratio:.2f}x ideal" if ratio else "")
        + f"; whole process: {result.wall:.1f} s" + (f" = {result.wall / ideal['seconds']:.2f}x" if ratio else "")
        + f" (target <= {scenario.target_ratio}x)"
    )
    print(f"429s: {refused} of {len(log)} requests = {100 * share:.2f}% (target < {100 * scenario.target_429_share:g}%); {result.total_records:,} records")
    print_errors(result)
    SUMMARY.append(
        Row(
            f"{scenario.name}: {len(log):,} requests",
            f"{span:.1f} s first to last request (whole process {result.wall:.1f} s)",
            f"ideal {ideal['seconds']:.1f} s" if ideal else "",
            ratio,
            f"{refused} ({100 * share:.2f}%)",
            f"<= {scenario.target_ratio}x, < {100 * scenario.target_429_share:g}% 429",
            (ratio is None or ratio <= scenario.target_ratio) and share < scenario.target_429_share and not result.errors,
        )
    )


def memory_scenario(vendor: str, app: Any, scenario: Any, scale: int) -> None:
    print(f"\n== {scenario.title} [{scenario.name}] ==")
    figures = []
    for label, env in (("default workers", {}), ("one worker", {"SOURCE_USAGE_MAX_WORKERS": "1"})):
        with Sandbox(scenario.scale or scale, rate_limits=False, vendors=[vendor], knobs={vendor: dict(scenario.knobs)}) as sandbox:
            result = read_with_connector(sandbox.config, list(scenario.streams or app.streams), env={**NO_CLIENT_BUDGETS, **env})
            log = sandbox.requests()
        largest = max(requests.utils.urlparse(entry["url"]).query.count(",") + 1 for entry in log)
        figures.append((label, result))
        print(
            f"{label:16}: {result.total_records:>9,} records, {len(log)} requests, {result.wall:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB"
            f" (target < {scenario.target_rss_mb} MB); the longest comma-separated query parameter held {largest} items"
        )
        print_errors(result)
    rss = figures[0][1].peak_rss_mb
    SUMMARY.append(
        Row(
            f"{scenario.name}: {figures[0][1].total_records:,} records",
            f"peak RSS {rss:.0f} MB ({figures[1][1].peak_rss_mb:.0f} MB with one worker)",
            "",
            None,
            "",
            f"< {scenario.target_rss_mb} MB",
            rss < (scenario.target_rss_mb or float("inf")) and not figures[0][1].errors,
        )
    )


def print_summary() -> None:
    print("\n== Summary ==")
    print(f"{'scenario':72} | {'measured':52} | {'reference':26} | {'ratio':>6} | {'429s':>11} | {'target':26} | met")
    for row in SUMMARY:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = {True: "yes", False: "NO", None: ""}[row.met]
        print(f"{row.scenario:72} | {row.measured:52} | {row.reference:26} | {ratio:>6} | {row.limited:>11} | {row.target:26} | {met}")


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--serve" in argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--serve", action="store_true")
        for name in ("--seed", "--scale"):
            parser.add_argument(name, type=int)
        for name in ("--vendors", "--knobs", "--config-out"):
            parser.add_argument(name)
        parser.add_argument("--no-rate-limits", action="store_true")
        serve(parser.parse_args(argv))
        return
    apps = vendor_apps()
    scenarios = [(vendor, app, scenario) for vendor, app in apps.items() for scenario in app.benchmark_scenarios(1)]
    options = sorted({scenario.option for _, _, scenario in scenarios if scenario.option})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--only", help="comma-separated scenarios (default: open, memory, shard and every vendor scenario without an option)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the open read (medians are reported)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and stop")
    for option in options:
        parser.add_argument(f"--{option}", action="store_true", help=f"also run the scenarios that need --{option}")
    args = parser.parse_args(argv)
    vendor_scenarios = [(vendor, app, scenario) for vendor, app in apps.items() for scenario in app.benchmark_scenarios(args.scale)]
    if args.list:
        for name in ("open", "memory", "shard"):
            print(name)
        for vendor, _, scenario in vendor_scenarios:
            print(f"{scenario.name} ({vendor}, {scenario.kind}{', with --' + scenario.option if scenario.option else ''}): {scenario.title}")
        return
    asked = {option for option in options if getattr(args, option.replace("-", "_"))}
    if args.only:
        chosen = set(args.only.split(","))
    else:
        chosen = {"open", "memory", "shard"} | {scenario.name for _, _, scenario in vendor_scenarios if not scenario.option}
    chosen |= {scenario.name for _, _, scenario in vendor_scenarios if scenario.option in asked}
    vendors = list(apps)
    print(
        f"source-usage benchmark on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; vendors: {', '.join(vendors)}; "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    if "open" in chosen:
        open_read(vendors, args.scale, args.repeat)
    if "memory" in chosen:
        memory(vendors, args.scale)
    if "shard" in chosen:
        sharded(vendors, args.scale)
    for vendor, app, scenario in vendor_scenarios:
        if scenario.name in chosen:
            (memory_scenario if scenario.kind == "memory" else limited)(vendor, app, scenario, args.scale)
    print_summary()
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine slows every figure but the ideals)")


if __name__ == "__main__":
    main()
