"""`source-usage-sandbox`: run the vendor emulator on 127.0.0.1 and print a ready-to-use connector config."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from source_usage.emulator.faults import FaultPlan
from source_usage.emulator.server import ALL_VENDORS, Emulator


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="source-usage-sandbox",
        description="Emulate the vendor plugins' APIs on 127.0.0.1 for source-usage.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the deterministic data")
    parser.add_argument("--scale", type=int, default=1, help="size of the data (1 = small)")
    parser.add_argument("--vendors", default=",".join(ALL_VENDORS), help="comma-separated vendors to emulate")
    parser.add_argument("--no-rate-limits", action="store_true", help="answer every request, however fast")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with 5xx")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of responses cut off mid-body")
    parser.add_argument("--malformed-rate", type=float, default=0.0, help="share of 200s with a body that is not JSON")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share of responses delayed by --slow-seconds")
    parser.add_argument("--slow-seconds", type=float, default=0.5)
    parser.add_argument("--start-date", help="start_date to put in the printed config")
    parser.add_argument("--record-requests", action="store_true", help="log every request (GET /_emulator/requests)")
    parser.add_argument("--knobs", type=json.loads, default={}, help="per-vendor knobs as JSON: {\"<vendor>\": {\"<knob>\": value}} (see each vendor's emulator)")
    parser.add_argument("--config-out", type=Path, help="also write the connector config to this file")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    faults = FaultPlan(args.error_rate, args.drop_rate, args.malformed_rate, args.slow_rate, args.slow_seconds)
    vendors = [name.strip() for name in args.vendors.split(",") if name.strip()]
    emulator = Emulator(
        seed=args.seed,
        scale=args.scale,
        rate_limits=not args.no_rate_limits,
        vendors=vendors,
        faults=faults,
        port=args.port,
        record_requests=args.record_requests,
        **args.knobs,
    )
    emulator.start()
    config = json.dumps(emulator.config(start_date=args.start_date), indent=2)
    if args.config_out:
        args.config_out.write_text(config + "\n")
    print(config, flush=True)
    print(f"Emulating {', '.join(vendors)} at {emulator.url} (control API under {emulator.url}/_emulator/). Ctrl-C stops.", file=sys.stderr, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
