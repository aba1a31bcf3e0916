"""`source-usage-demo`: sync every stream into a local DuckDB file through PyAirbyte and show what landed.

Without `--config`, it starts the vendor emulator on a free loopback port and syncs from it, so you can
see the connector work before handing it a production key; with `--config FILE` it syncs from the
vendors in that file instead. Needs the `demo` extra (`pip install .[demo]`: PyAirbyte and DuckDB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

# PyAirbyte runs the local `source-usage` executable: no registry, no telemetry, no Docker.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("AIRBYTE_NO_UV", "1")

SUMMARIES = {
    "meraki_client_usage_histories": (
        "Top Meraki clients by data used",
        "SELECT clientId, coalesce(clientMac, '') AS mac, round(sum(recv + sent) / 1024.0, 1) AS mb "
        "FROM {table} GROUP BY 1, 2 ORDER BY mb DESC LIMIT 5",
    ),
    "twilio_supersim_usage_records": (
        "Top Twilio Super SIMs by data used",
        "SELECT sim_sid, round(sum(data_total) / 1048576.0, 1) AS mb, round(sum(data_total_billed), 2) AS billed "
        "FROM {table} GROUP BY 1 ORDER BY mb DESC LIMIT 5",
    ),
    "emnify_endpoint_usage_monthly": (
        "emnify cost per month and traffic type",
        "SELECT substr(CAST(month AS VARCHAR), 1, 7) AS month, period, count(*) AS records, round(sum(cost), 2) AS cost "
        "FROM {table} GROUP BY 1, 2 ORDER BY 1 DESC LIMIT 5",
    ),
    "thousandeyes_usage": (
        "ThousandEyes units this billing period",
        "SELECT monthStart, cloudUnitsUsed, cloudUnitsProjected FROM {table} ORDER BY monthStart DESC LIMIT 5",
    ),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="source-usage-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duckdb", type=Path, default=Path("usage.duckdb"), help="DuckDB file to write (default ./usage.duckdb)")
    parser.add_argument("--config", type=Path, help="a connector config: sync from the real vendors in it instead of the emulator")
    parser.add_argument("--scale", type=int, default=1, help="emulator data size (without --config)")
    parser.add_argument("--vendors", default="meraki,twilio,emnify,thousandeyes", help="vendors to emulate (without --config)")
    return parser.parse_args(argv)


def connector_executable() -> str:
    return str(Path(sys.executable).parent / "source-usage")


def sync(config: Dict[str, Any], duckdb_path: Path) -> Any:
    """Reads every stream into `duckdb_path` (incrementally when the file already has state)."""
    import airbyte as ab
    from airbyte.caches import DuckDBCache

    source = ab.get_source("source-usage", config=config, local_executable=connector_executable())
    source.select_all_streams()
    cache = DuckDBCache(db_path=duckdb_path, schema_name="main", cache_dir=duckdb_path.parent / ".pyairbyte")
    source.read(cache=cache)
    return cache


def row_counts(cache: Any) -> Dict[str, int]:
    return {name: len(dataset) for name, dataset in cache.streams.items()}


def summarize(cache: Any, counts: Dict[str, int]) -> None:
    """The first things a person wants to see: who used the most, and what it cost."""
    from sqlalchemy import text

    with cache.get_sql_engine().connect() as connection:
        for stream, (title, query) in SUMMARIES.items():
            if not counts.get(stream):
                continue
            result = connection.execute(text(query.format(table=f'main."{stream}"')))
            print(f"\n{title}:")
            print("  " + " | ".join(result.keys()))
            for row in result:
                print("  " + " | ".join(str(value) for value in row))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    duckdb_path = args.duckdb.resolve()
    if args.config:
        cache = sync(json.loads(args.config.read_text()), duckdb_path)
        counts = row_counts(cache)
        expected: Dict[str, int] = {}
    else:
        from source_usage.emulator import Emulator

        vendors = [name.strip() for name in args.vendors.split(",") if name.strip()]
        with Emulator(scale=args.scale, vendors=vendors) as emulator:
            print(f"Started the vendor emulator at {emulator.url}; syncing every stream into {duckdb_path}")
            cache = sync(emulator.config(), duckdb_path)
            counts = row_counts(cache)
            expected = {}
            for stream in counts:
                try:
                    expected[stream] = len(emulator.expected(stream))
                except KeyError:  # the usage ledger is built from the vendor streams, not held by the emulator
                    pass
    print(f"\nRows per stream in {duckdb_path}:")
    width = max((len(name) for name in counts), default=10)
    for stream, rows in sorted(counts.items()):
        check = f"  (emulator holds {expected[stream]})" if stream in expected else ""
        print(f"  {stream:<{width}}  {rows:>8}{check}")
    summarize(cache, counts)


if __name__ == "__main__":
    main()
