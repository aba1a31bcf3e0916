"""usage_ledger against the emulator: it reconciles with its source streams, and it costs no extra request."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping, Tuple

import pytest

from integration_tests.harness import Run, configured_catalog, run_connector, start_date
from source_usage.emulator import Emulator

LEDGER = "usage_ledger"
KIB = 1024  # Meraki's kilobyte, as the README documents it
MIB = 1024 * 1024  # emnify's megabyte
VENDOR_STREAMS = [
    "meraki_organizations",
    "meraki_networks",
    "meraki_network_clients",
    "meraki_client_usage_histories",
    "twilio_supersim_usage_records",
    "emnify_endpoints",
    "emnify_endpoint_usage_daily",
    "thousandeyes_usage",
    "thousandeyes_test_usage",
]
LEDGER_KEY = ("vendor", "account_id", "subject_type", "subject_id", "metric", "granularity", "period_start")

Totals = Dict[Tuple[str, str, str], float]  # (vendor, metric, day) -> quantity


def source_totals(run: Run) -> Totals:
    """What the ledger must add up to, computed from the vendor streams' records with the documented units."""
    totals: Totals = defaultdict(float)
    for record in run.records("meraki_client_usage_histories"):
        day = record["ts"][:10]
        totals[("meraki", "data_sent_bytes", day)] += record["sent"] * KIB
        totals[("meraki", "data_received_bytes", day)] += record["recv"] * KIB
        totals[("meraki", "data_total_bytes", day)] += (record["sent"] + record["recv"]) * KIB
    for record in run.records("twilio_supersim_usage_records"):
        day = record["start_time"][:10]
        for metric, field in (("data_sent_bytes", "data_upload"), ("data_received_bytes", "data_download"), ("data_total_bytes", "data_total")):
            if record.get(field) is not None:
                totals[("twilio", metric, day)] += record[field]
    units = {"data": ("data_total_bytes", "data_sent_bytes", "data_received_bytes", MIB), "sms": ("sms_count", "sms_sent_count", "sms_received_count", 1)}
    for record in run.records("emnify_endpoint_usage_daily"):
        total, sent, received, factor = units[record["traffic_kind"]]
        for metric, field in ((total, "volume"), (sent, "volume_tx"), (received, "volume_rx")):
            totals[("emnify", metric, record["date"])] += record[field] * factor
    for record in run.records("thousandeyes_usage"):
        day = record["monthStart"][:10]
        totals[("thousandeyes", "cloud_units_total", day)] += record["cloudUnitsUsed"]
        totals[("thousandeyes", "enterprise_units_total", day)] += record["enterpriseUnitsUsed"]
    for record in run.records("thousandeyes_test_usage"):
        totals[("thousandeyes", "cloud_units", record["monthStart"][:10])] += record["cloudUnitsUsed"]
    return dict(totals)


def ledger_totals(rows: Iterable[Mapping[str, Any]]) -> Totals:
    totals: Totals = defaultdict(float)
    for row in rows:
        if row.get("quantity") is not None:
            totals[(row["vendor"], row["metric"], row["period_start"][:10])] += row["quantity"]
    return dict(totals)


def assert_reconciles(run: Run) -> None:
    expected, actual = source_totals(run), ledger_totals(run.records(LEDGER))
    assert expected, "the sources hold usage"
    assert set(actual) == set(expected), f"missing {sorted(set(expected) - set(actual))[:5]}, extra {sorted(set(actual) - set(expected))[:5]}"
    for key, total in expected.items():
        assert actual[key] == pytest.approx(total, rel=1e-9), key
    keys = [tuple(row[field] for field in LEDGER_KEY) for row in run.records(LEDGER)]
    assert len(keys) == len(set(keys)), "each ledger row once per sync"


def requests_by_route(emulator: Emulator) -> Dict[str, int]:
    counts: Dict[str, int] = defaultdict(int)
    for vendor, stats in emulator.stats().items():
        for route, statuses in stats["by_route"].items():
            counts[f"{vendor} {route}"] += sum(statuses.values())
    return dict(counts)


def test_the_ledger_equals_its_sources_totals_per_vendor_metric_and_day_in_a_full_and_an_incremental_sync() -> None:
    with Emulator(seed=31, rate_limits=False) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, VENDOR_STREAMS + [LEDGER])
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-3000:]
        assert_reconciles(first)
        assert {row["vendor"] for row in first.records(LEDGER)} == {"meraki", "twilio", "emnify", "thousandeyes"}

        emulator.advance(1)
        second = run_connector("read", config, catalog, state=first.final_state())
        assert second.returncode == 0, second.stderr[-3000:]
        assert_reconciles(second)
        assert len(second.records(LEDGER)) < len(first.records(LEDGER)), "the second sync read only what its sources re-read"


def test_selecting_the_ledger_next_to_the_vendor_streams_sends_no_extra_request() -> None:
    counts = []
    for streams in (VENDOR_STREAMS, VENDOR_STREAMS + [LEDGER]):
        with Emulator(seed=32, rate_limits=False) as emulator:
            config = emulator.config(start_date=start_date())
            run = run_connector("read", config, configured_catalog(config, streams))
            assert run.returncode == 0, run.stderr[-3000:]
            counts.append(requests_by_route(emulator))
    assert counts[0] == counts[1]


def test_the_ledger_alone_reads_its_sources_without_emitting_them_and_continues_from_its_own_state() -> None:
    with Emulator(seed=33, rate_limits=False) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, [LEDGER])
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-3000:]
        assert set(first.records_by_stream) == {LEDGER}
        rows = first.records(LEDGER)
        assert {row["vendor"] for row in rows} == {"meraki", "twilio", "emnify", "thousandeyes"}
        assert {row["source_stream"] for row in rows} == {
            "meraki_client_usage_histories",
            "twilio_supersim_usage_records",
            "emnify_endpoint_usage_daily",
            "thousandeyes_usage",
            "thousandeyes_test_usage",
        }
        [state] = [entry["stream"]["stream_state"] for entry in first.final_state() if entry["stream"]["stream_descriptor"]["name"] == LEDGER]
        assert set(state["sources"]) == {row["source_stream"] for row in rows}

        emulator.reset_stats()
        second = run_connector("read", config, catalog, state=first.final_state())
        assert second.returncode == 0, second.stderr[-3000:]
        assert 0 < len(second.records(LEDGER)) < len(rows), "the second sync continues from the ledger's state"
