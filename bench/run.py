"""Benchmark: how fast and how lean a sync is, measured side by side with a plain `requests` loop.

Not a test (machines are noisy): it prints figures. Scenarios:

* `open`     rate limits off, every stream at `--scale`: the connector against a plain `requests` loop that
             fetches exactly the same pages one after another and only parses them (the floor for a
             Python client); per stream: records, requests against the minimum the data needs, 429s,
             seconds; overall: records/s, CPU seconds per 10,000 records, peak RSS.
* `memory`   peak RSS of the same read at `--scale`, twice and four times that: it must not grow with scale.
* `meraki`   Meraki's limit on (10 requests/s per organization) over 4 organizations: the sync against
             the ideal time (requests per organization / 10 per second), and the share of 429s.
* `emnify`   emnify's limit on (100 stats requests/s): a statistics sweep over 2,000 endpoints against
             the time the limit allows.

Run it with `make bench` (or `.venv/bin/python bench/run.py --scale 5 --only open,memory`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import requests

BIN = Path(sys.executable).parent
ROUTES = {
    ("meraki", "/organizations"): "meraki_organizations",
    ("meraki", "/organizations/{id}/networks"): "meraki_networks",
    ("meraki", "/networks/{id}/clients"): "meraki_network_clients",
    ("meraki", "/networks/{id}/clients/usageHistories"): "meraki_client_usage_histories",
    ("meraki", "/organizations/{id}/licenses"): "meraki_organization_licenses",
    ("twilio", "/UsageRecords"): "twilio_supersim_usage_records",
    ("emnify", "/authenticate"): "emnify authentication",
    ("emnify", "/endpoint"): "emnify_endpoints",
    ("emnify", "/endpoint/{id}/stats"): "emnify_endpoint_usage_monthly + _last_hour",
    ("thousandeyes", "/usage"): "thousandeyes_usage + thousandeyes_test_usage",
    ("thousandeyes", "/usage/units/tests"): "thousandeyes_test_usage (paged fallback)",
}


# ----- the emulator, in a process of its own ------------------------------------------------------


class Sandbox:
    """`source-usage-sandbox` in a subprocess, so that it does not share our GIL or CPU accounting."""

    def __init__(self, scale: int, rate_limits: bool, vendors: Iterable[str], knobs: Optional[dict] = None) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="source-usage-bench-")
        config_path = Path(self.folder.name) / "config.json"
        args = [
            str(BIN / "source-usage-sandbox"),
            "--scale", str(scale), "--vendors", ",".join(vendors), "--record-requests",
            "--config-out", str(config_path), "--knobs", json.dumps(knobs or {}),
        ]
        if not rate_limits:
            args.append("--no-rate-limits")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not config_path.exists() or not config_path.read_text().strip().endswith("}"):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the sandbox did not start: {self.process.stderr.read() if self.process.stderr else ''}")
            time.sleep(0.05)
        self.config: Dict[str, Any] = json.loads(config_path.read_text())
        first_url = next(section["base_url"] for key, section in self.config.items() if isinstance(section, dict))
        self.control = first_url.split("/", 3)[0] + "//" + first_url.split("/", 3)[2] + "/_emulator"

    def get(self, path: str) -> Any:
        return requests.get(f"{self.control}/{path}", timeout=120).json()

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
    finished: float  # epoch seconds, to compare with the emulator's request log
    last_output: float  # epoch seconds of the last message (before the interpreter's own teardown)
    cpu: float
    peak_rss_mb: float
    records: Counter = field(default_factory=Counter)
    stream_seconds: Dict[str, float] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    reading: float = 0.0  # seconds from the first request to the last message

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def configured_catalog(config: Dict[str, Any], streams: Optional[List[str]] = None) -> Dict[str, Any]:
    import logging

    from source_usage.source import SourceUsage

    catalog = SourceUsage().discover(logging.getLogger("bench"), config)
    return {
        "streams": [
            {
                "stream": {"name": stream.name, "json_schema": stream.json_schema, "supported_sync_modes": ["full_refresh"]},
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            }
            for stream in catalog.streams
            if streams is None or stream.name in streams
        ]
    }


NO_CLIENT_BUDGETS = {"SOURCE_USAGE_CLIENT_RATE_BUDGETS": "off"}


def read_with_connector(config: Dict[str, Any], streams: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None) -> Read:
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
            elif b'"failure_type"' in line:
                errors.append(json.loads(line)["trace"]["error"]["message"])
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        finished = time.time()
    return Read(
        wall=wall,
        finished=finished,
        last_output=last_output,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        records=records,
        stream_seconds={stream: last_seen[stream] - first_seen[stream] for stream in first_seen},
        errors=errors,
    )


# ----- the floor: a plain requests loop over the same pages ---------------------------------------


def plain_loop(config: Dict[str, Any], log: List[Dict[str, Any]]) -> Dict[str, float]:
    """Fetches the pages the connector fetched, in order, one at a time, and only parses them."""
    sessions = {vendor: requests.Session() for vendor in ("meraki", "twilio", "emnify", "thousandeyes")}
    if "meraki" in config:
        sessions["meraki"].headers["Authorization"] = f"Bearer {config['meraki']['api_key']}"
    if "twilio" in config:
        sessions["twilio"].auth = (config["twilio"]["account_sid"], config["twilio"]["auth_token"])
    if "thousandeyes" in config:
        sessions["thousandeyes"].headers["Authorization"] = f"Bearer {config['thousandeyes']['bearer_token']}"
    pages = [entry for entry in log if entry["status"] == 200]
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    parsed = 0
    for entry in pages:
        session = sessions[entry["vendor"]]
        if entry["method"] == "POST":
            response = session.post(entry["url"], data=entry["body"], headers={"Content-Type": "application/json"})
            session.headers["Authorization"] = f"Bearer {response.json()['auth_token']}"
            continue
        body = session.get(entry["url"]).json()
        parsed += len(body) if isinstance(body, list) else 1
    return {"wall": time.perf_counter() - started_wall, "cpu": time.process_time() - started_cpu, "pages": len(pages)}


# ----- what the data needs at least ---------------------------------------------------------------


def minimum_requests(sandbox: Sandbox, vendors: Iterable[str]) -> Dict[str, int]:
    """The fewest requests each route needs for the data the emulator holds, at each endpoint's largest page."""
    minimum: Dict[str, int] = {}
    if "meraki" in vendors:
        organizations = sandbox.get("expected/meraki_organizations")
        networks = sandbox.get("expected/meraki_networks")
        clients = Counter(client["networkId"] for client in sandbox.get("expected/meraki_network_clients"))
        licenses = Counter(item["organizationId"] for item in sandbox.get("expected/meraki_organization_licenses"))
        minimum["meraki_organizations"] = max(1, math.ceil(len(organizations) / 9000))
        minimum["meraki_networks"] = len(organizations)
        minimum["meraki_network_clients"] = sum(max(1, math.ceil(clients[n["id"]] / 5000)) for n in networks)
        minimum["meraki_client_usage_histories"] = sum(math.ceil(clients[n["id"]] / 1000) for n in networks)
        minimum["meraki_organization_licenses"] = sum(max(1, math.ceil(licenses[o["id"]] / 1000)) for o in organizations)
    if "twilio" in vendors:
        minimum["twilio_supersim_usage_records"] = max(1, math.ceil(len(sandbox.get("expected/twilio_supersim_usage_records")) / 1000))
    if "emnify" in vendors:
        endpoints = len(sandbox.get("expected/emnify_endpoints"))
        minimum["emnify authentication"] = 1
        minimum["emnify_endpoints"] = max(1, math.ceil(endpoints / 1000))
        minimum["emnify_endpoint_usage_monthly + _last_hour"] = endpoints
    if "thousandeyes" in vendors:
        minimum["thousandeyes_usage + thousandeyes_test_usage"] = 1
    return minimum


def requests_by_route(log: List[Dict[str, Any]]) -> Dict[str, Counter]:
    from source_usage.emulator.app import route_of
    from urllib.parse import urlsplit

    counts: Dict[str, Counter] = defaultdict(Counter)
    for entry in log:
        path = urlsplit(entry["url"]).path
        prefix = {"meraki": "/meraki/api/v1", "twilio": "/twilio/v1", "emnify": "/emnify/api/v1", "thousandeyes": "/thousandeyes/v7"}[entry["vendor"]]
        name = ROUTES.get((entry["vendor"], route_of(path[len(prefix):])), f"{entry['vendor']} {path}")
        counts[name]["requests"] += 1
        counts[name]["429"] += entry["status"] == 429
    return counts


# ----- scenarios ----------------------------------------------------------------------------------

VENDORS = ("meraki", "twilio", "emnify", "thousandeyes")


def open_read(scale: int, repeat: int) -> Read:
    print(f"\n== Rate limits off, every stream, scale {scale} (median of {repeat} runs of each, alternating) ==")
    with Sandbox(scale, rate_limits=False, vendors=VENDORS) as sandbox:
        minimum = minimum_requests(sandbox, VENDORS)
        runs, floors = [], []
        for _ in range(repeat):
            sandbox.reset()
            result = read_with_connector(sandbox.config, env=NO_CLIENT_BUDGETS)
            log = sandbox.get("requests")
            result.reading = result.last_output - min(entry["started"] for entry in log)
            runs.append(result)
            floors.append(plain_loop(sandbox.config, log))
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
        f"\nconnector: {result.total_records} records, {total_requests} requests, {result.wall:.2f} s wall "
        f"({reading:.2f} s from its first request to its last message; the rest is Python and airbyte-cdk starting and stopping), "
        f"{result.total_records / reading:,.0f} records/s, "
        f"{10000 * result.cpu / max(1, result.total_records):.2f} CPU s per 10,000 records (start-up included), peak RSS {result.peak_rss_mb:.0f} MB"
    )
    print(f"plain requests loop over the same {floor['pages']:.0f} pages: {floor['wall']:.2f} s wall, {floor['cpu']:.2f} CPU s")
    print(
        f"ratio connector / plain loop: {reading / floor['wall']:.2f}x from the first request (target <= 1.5x), "
        f"{result.wall / floor['wall']:.2f}x with start-up"
    )
    if result.errors:
        print("errors:", *result.errors, sep="\n  ")
    return result


def memory(scale: int) -> None:
    print("\n== Peak memory against scale (rate limits off) ==")
    for factor in (scale, 2 * scale, 4 * scale):
        with Sandbox(factor, rate_limits=False, vendors=VENDORS) as sandbox:
            result = read_with_connector(sandbox.config, env=NO_CLIENT_BUDGETS)
        print(f"scale {factor:>3}: {result.total_records:>9} records, peak RSS {result.peak_rss_mb:.0f} MB (target < 300 MB, flat)")


def meraki_limited(scale: int) -> None:
    print("\n== Meraki with its limit on (10 requests/s per organization), 4 organizations ==")
    knobs = {"meraki": {"organizations": 4, "networks_per_organization": 30 * scale}}
    with Sandbox(scale, rate_limits=True, vendors=["meraki"], knobs=knobs) as sandbox:
        result = read_with_connector(sandbox.config)
        log = sandbox.get("requests")
    by_org = defaultdict(list)
    for entry in log:
        if entry["tenant"]:
            by_org[entry["tenant"]].append(entry)
    ideal = max(len(entries) for entries in by_org.values()) / 10
    span = max(entry["finished"] for entry in log) - min(entry["started"] for entry in log)
    limited = sum(entry["status"] == 429 for entry in log)
    print(f"requests per organization: {sorted(len(entries) for entries in by_org.values())}, {len(log)} in all")
    print(f"ideal (the busiest organization's requests / 10 per s): {ideal:.1f} s")
    print(f"first to last request: {span:.1f} s = {span / ideal:.2f}x ideal; whole process: {result.wall:.1f} s = {result.wall / ideal:.2f}x (target <= 1.15x)")
    print(f"429s: {limited} of {len(log)} requests = {100 * limited / len(log):.2f}% (target < 2%)")
    if result.errors:
        print("errors:", *result.errors, sep="\n  ")


def emnify_limited(endpoints: int) -> None:
    print(f"\n== emnify with its limits on, statistics sweep over {endpoints} endpoints ==")
    with Sandbox(1, rate_limits=True, vendors=["emnify"], knobs={"emnify": {"endpoints": endpoints}}) as sandbox:
        result = read_with_connector(sandbox.config, ["emnify_endpoints", "emnify_endpoint_usage_monthly"])
        log = sandbox.get("requests")
    stats = [entry for entry in log if entry["url"].endswith("/stats")]
    ideal = len(stats) / 100
    sweep = max(entry["finished"] for entry in stats) - min(entry["started"] for entry in stats)
    limited = sum(entry["status"] == 429 for entry in log)
    print(f"{len(stats)} stats requests; the limit allows them in {ideal:.1f} s")
    print(f"sweep (first to last stats request): {sweep:.1f} s = {sweep / ideal:.2f}x (target <= 1.2x); whole process {result.wall:.1f} s")
    print(f"429s: {limited} of {len(log)} requests")
    if result.errors:
        print("errors:", *result.errors, sep="\n  ")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--only", default="open,memory,meraki,emnify", help="comma-separated scenarios")
    parser.add_argument("--emnify-endpoints", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the open read (medians are reported)")
    args = parser.parse_args(argv)
    scenarios = set(args.only.split(","))
    print(f"source-usage benchmark on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if "open" in scenarios:
        open_read(args.scale, args.repeat)
    if "memory" in scenarios:
        memory(args.scale)
    if "meraki" in scenarios:
        meraki_limited(args.scale)
    if "emnify" in scenarios:
        emnify_limited(args.emnify_endpoints)


if __name__ == "__main__":
    main()
