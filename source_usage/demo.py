"""`source-usage-demo`: sync every stream into a local DuckDB file through PyAirbyte and show what landed.

Without `--config`, it starts the vendor emulator on a free loopback port (every vendor plugin that ships an
emulation, or those `--vendors` names) and syncs from it, so you can see the connector work before handing
it a production key; with `--config FILE` it syncs from the vendors in that file instead. It prints the rows
per stream (next to what the emulator holds) and a summary of the `usage_ledger` table: data used per vendor
and day, totals per vendor and metric with how much is still provisional, cost per month and currency, and
the top subjects by data used and by cost; `--report FILE` also writes that summary as one self-contained
HTML page of charts. `--summary-only` summarises a DuckDB file a previous run wrote, without syncing.
Needs the `demo` extra (`pip install .[demo]`: PyAirbyte and DuckDB).

The summary reads only the ledger's generic columns: it names no vendor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from source_usage.report import MetricTotal, MonthlyCost, Split, Subject, Summary, render_html

# PyAirbyte runs the local `source-usage` executable: no registry, no telemetry, no Docker.
os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("AIRBYTE_NO_UV", "1")

LEDGER_TABLE = 'main."usage_ledger"'
MEBIBYTE = Decimal(1024 * 1024)

Query = Callable[[str], List[tuple]]

# The ledger rows the summary adds up. A vendor could hold one metric at two granularities (a connection
# whose granularity option changed from days to hours, say): each (vendor, metric) then counts at one
# granularity only, the first of day, hour, month, billing period it has, so that no usage is added twice.
USAGE = f"""
WITH choice AS (
    SELECT vendor, metric,
           arg_min(granularity, CASE granularity WHEN 'day' THEN 1 WHEN 'hour' THEN 2 WHEN 'month' THEN 3 ELSE 4 END) AS granularity
    FROM {LEDGER_TABLE} GROUP BY vendor, metric
), usage AS (
    SELECT ledger.* FROM {LEDGER_TABLE} AS ledger JOIN choice USING (vendor, metric, granularity)
)
"""
FINAL = "coalesce(sum({column}) FILTER (WHERE is_final), 0)"
PROVISIONAL = "coalesce(sum({column}) FILTER (WHERE NOT is_final), 0)"
SPLIT = f"{FINAL}, {PROVISIONAL}"
# A headline metric is a whole figure: not the part a subject sent or received (`*_sent_*`, `*_received_*`),
# which the total of the same subject and period already holds.
HEADLINE = r"metric NOT LIKE '%\_sent\_%' ESCAPE '\' AND metric NOT LIKE '%\_received\_%' ESCAPE '\'"

QUERIES = {
    "rows": f"SELECT count(*) FROM {LEDGER_TABLE}",
    "vendors": f"SELECT DISTINCT vendor FROM {LEDGER_TABLE}",
    # Data used per vendor and day: the subjects' totals (`data_total_bytes`), hours added up into days.
    "daily": USAGE + f"""
        SELECT vendor, CAST(period_start AS DATE) AS day, {SPLIT.format(column="quantity")}
        FROM usage WHERE metric = 'data_total_bytes' AND granularity IN ('day', 'hour')
        GROUP BY ALL ORDER BY day, vendor""",
    "totals": f"""
        SELECT vendor, metric, unit, granularity, count(DISTINCT period_start), {SPLIT.format(column="quantity")}
        FROM {LEDGER_TABLE} WHERE {HEADLINE}
        GROUP BY ALL ORDER BY vendor, unit, metric, granularity""",
    # Cost per month of the period's start, per vendor and currency (a cost sits on total rows only).
    "monthly_cost": USAGE + f"""
        SELECT strftime(period_start, '%Y-%m') AS month, vendor, currency, {SPLIT.format(column="cost")}
        FROM usage WHERE cost IS NOT NULL
        GROUP BY ALL ORDER BY month, vendor, currency""",
    "top_by_bytes": USAGE + f"""
        SELECT vendor, subject_type, subject_id, max(subject_name), {SPLIT.format(column="quantity")}
        FROM usage WHERE metric = 'data_total_bytes' AND quantity IS NOT NULL
        GROUP BY vendor, subject_type, subject_id
        ORDER BY sum(quantity) DESC, vendor, subject_type, subject_id LIMIT {{top}}""",
    "top_by_cost": USAGE + f"""
        SELECT vendor, subject_type, subject_id, max(subject_name), {SPLIT.format(column="cost")}, currency
        FROM usage WHERE cost IS NOT NULL
        GROUP BY vendor, subject_type, subject_id, currency
        QUALIFY row_number() OVER (PARTITION BY currency ORDER BY sum(cost) DESC, vendor, subject_type, subject_id) <= {{top}}
        ORDER BY currency, sum(cost) DESC, vendor, subject_type, subject_id""",
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from source_usage.emulator import ALL_VENDORS

    parser = argparse.ArgumentParser(prog="source-usage-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duckdb", type=Path, default=Path("usage.duckdb"), help="DuckDB file to write (default ./usage.duckdb)")
    parser.add_argument("--config", type=Path, help="a connector config: sync from the real vendors in it instead of the emulator")
    parser.add_argument("--scale", type=int, default=1, help="emulator data size (without --config)")
    parser.add_argument(
        "--vendors", default=",".join(ALL_VENDORS), help=f"comma-separated vendors to emulate (without --config; default: every emulated one: {','.join(ALL_VENDORS)})"
    )
    parser.add_argument("--report", type=Path, help="also write the summary as a self-contained HTML page of charts to this file")
    parser.add_argument("--top", type=int, default=10, help="how many subjects the rankings show (default 10)")
    parser.add_argument("--summary-only", action="store_true", help="do not sync: summarise the usage_ledger already in --duckdb")
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


# ----- the ledger's summary ---------------------------------------------------------------------------------


def vendor_order(found: Sequence[str]) -> List[str]:
    """The installed plugins' order (the spec's), then any other vendor the ledger holds, by name."""
    from source_usage.framework.plugin import plugins

    known = [plugin.name for plugin in plugins() if plugin.name in found]
    return known + sorted(set(found) - set(known))


def ledger_summary(query: Query, source: str, top: int = 10) -> Optional[Summary]:
    """The summary of the ledger table, or None where the database has no ledger table."""
    try:
        rows = query(QUERIES["rows"])[0][0]
    except Exception as problem:  # no such table: a database written by something else
        if "usage_ledger" in str(problem) and ("does not exist" in str(problem) or "not found" in str(problem).lower()):
            return None
        raise
    vendors = vendor_order([row[0] for row in query(QUERIES["vendors"])])
    rank = {vendor: position for position, vendor in enumerate(vendors)}
    summary = Summary(source=source, ledger_rows=rows, vendors=vendors)
    for vendor, day, final, provisional in query(QUERIES["daily"]):
        summary.daily_bytes[(vendor, day if isinstance(day, date) else date.fromisoformat(str(day)))] = Split(Decimal(final), Decimal(provisional))
    summary.totals = sorted(
        (MetricTotal(vendor, metric, unit, granularity, periods, Split(Decimal(final), Decimal(provisional)))
         for vendor, metric, unit, granularity, periods, final, provisional in query(QUERIES["totals"])),
        key=lambda item: (rank[item.vendor], item.unit, item.metric, item.granularity),
    )
    summary.monthly_cost = [
        MonthlyCost(month, vendor, currency, Split(Decimal(final), Decimal(provisional)))
        for month, vendor, currency, final, provisional in query(QUERIES["monthly_cost"])
    ]
    summary.top_by_bytes = [
        Subject(vendor, subject_type, subject_id, name, Split(Decimal(final), Decimal(provisional)))
        for vendor, subject_type, subject_id, name, final, provisional in query(QUERIES["top_by_bytes"].format(top=int(top)))
    ]
    summary.top_by_cost = [
        Subject(vendor, subject_type, subject_id, name, Split(Decimal(final), Decimal(provisional)), currency)
        for vendor, subject_type, subject_id, name, final, provisional, currency in query(QUERIES["top_by_cost"].format(top=int(top)))
    ]
    return summary


# ----- printing -----------------------------------------------------------------------------------------------


def mib(value: Decimal) -> str:
    return f"{value / MEBIBYTE:,.1f}"


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def quantity(value: Decimal, unit: str) -> str:
    return f"{mib(value)} MiB" if unit == "bytes" else f"{value:,.0f} {unit}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print(f"\n{title}:")
    print("  " + " | ".join(header))
    for row in rows:
        print("  " + " | ".join(row))


def print_summary(summary: Summary) -> None:
    print(f"\nUsage ledger: {summary.ledger_rows} rows of {len(summary.vendors)} vendors ({', '.join(summary.vendors) or 'none'})")
    daily_vendors = [vendor for vendor in summary.vendors if any(key[0] == vendor for key in summary.daily_bytes)]
    print_table(
        "Data used per day, MiB (data_total_bytes; * = includes provisional figures)",
        ["day", *daily_vendors],
        [
            [day.isoformat()] + [
                "" if (vendor, day) not in summary.daily_bytes
                else mib(summary.daily_bytes[vendor, day].total) + ("*" if summary.daily_bytes[vendor, day].provisional else "")
                for vendor in daily_vendors
            ]
            for day in sorted({day for _, day in summary.daily_bytes})
        ],
    )
    print_table(
        "Totals per vendor and metric, and how much is provisional (is_final false)",
        ["vendor", "metric", "granularity", "periods", "quantity", "provisional", "provisional share"],
        [
            [item.vendor, item.metric, item.granularity, str(item.periods), quantity(item.amount.total, item.unit),
             quantity(item.amount.provisional, item.unit), "-" if item.provisional_share is None else f"{item.provisional_share:.1%}"]
            for item in summary.totals
        ],
    )
    print_table(
        "Cost per month (of the period's start), vendor and currency",
        ["month", "vendor", "currency", "cost", "provisional"],
        [[item.month, item.vendor, item.currency, money(item.cost.total), money(item.cost.provisional)] for item in summary.monthly_cost],
    )
    print_table(
        f"Top {len(summary.top_by_bytes)} subjects by data used (data_total_bytes)",
        ["rank", "vendor", "subject_type", "subject_id", "subject_name", "MiB", "provisional MiB"],
        [[str(rank), item.vendor, item.subject_type, item.subject_id, item.subject_name or "", mib(item.amount.total), mib(item.amount.provisional)]
         for rank, item in enumerate(summary.top_by_bytes, start=1)],
    )
    print_table(
        "Top subjects by cost, per currency",
        ["currency", "rank", "vendor", "subject_type", "subject_id", "subject_name", "cost", "provisional"],
        [
            [item.currency or "", str(rank), item.vendor, item.subject_type, item.subject_id, item.subject_name or "", money(item.amount.total), money(item.amount.provisional)]
            for currency in summary.currencies(summary.top_by_cost)
            for rank, item in enumerate((entry for entry in summary.top_by_cost if entry.currency == currency), start=1)
        ],
    )


def print_row_counts(duckdb_path: Path, counts: Dict[str, int], expected: Dict[str, int]) -> None:
    print(f"\nRows per stream in {duckdb_path}:")
    width = max((len(name) for name in counts), default=10)
    for stream, rows in sorted(counts.items()):
        check = f"  (emulator holds {expected[stream]})" if stream in expected else ""
        print(f"  {stream:<{width}}  {rows:>8}{check}")


def summarize(query: Query, source: Path, report: Optional[Path], top: int) -> None:
    summary = ledger_summary(query, str(source), top)
    if summary is None:
        print(f"\n{source} has no usage_ledger table: nothing to summarise.")
        return
    print_summary(summary)
    if report:
        report.write_text(render_html(summary), encoding="utf-8")
        print(f"\nWrote the report to {report.resolve()}")


@dataclass
class SqlAlchemyQuery:
    engine: Any

    def __call__(self, sql: str) -> List[tuple]:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql.replace(":", r"\:")))]


def duckdb_query(path: Path) -> Query:
    import duckdb

    def run(sql: str) -> List[tuple]:
        with duckdb.connect(str(path), read_only=True) as connection:
            return connection.execute(sql).fetchall()

    return run


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    duckdb_path = args.duckdb.resolve()
    if args.summary_only:
        if not duckdb_path.exists():
            raise SystemExit(f"source-usage-demo: {duckdb_path} does not exist: run the demo without --summary-only first")
        summarize(duckdb_query(duckdb_path), duckdb_path, args.report, args.top)
        return
    if args.config:
        cache = sync(json.loads(args.config.read_text()), duckdb_path)
        counts = row_counts(cache)
        expected: Dict[str, int] = {}
    else:
        from source_usage.emulator import Emulator

        vendors = [name.strip() for name in args.vendors.split(",") if name.strip()]
        with Emulator(scale=args.scale, vendors=vendors) as emulator:
            print(f"Started the vendor emulator ({', '.join(vendors)}) at {emulator.url}; syncing every stream into {duckdb_path}")
            cache = sync(emulator.config(), duckdb_path)
            counts = row_counts(cache)
            expected = {}
            for stream in counts:
                try:
                    expected[stream] = len(emulator.expected(stream))
                except KeyError:  # the usage ledger is built from the vendor streams, not held by the emulator
                    pass
    print_row_counts(duckdb_path, counts, expected)
    summarize(SqlAlchemyQuery(cache.get_sql_engine()), duckdb_path, args.report, args.top)


if __name__ == "__main__":
    main()
