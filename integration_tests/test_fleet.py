"""Fleet scale (issue #16): the per-source-IP limits, emnify's monthly quota, and shards, through the real
`source-usage` process against the emulator at a reduced scale."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Sequence, Set, Tuple
from urllib.parse import unquote, urlsplit

import pytest

from integration_tests.harness import (
    Run,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator
from source_usage.emulator.app import route_of

MERAKI_STREAMS = [
    "meraki_organizations",
    "meraki_networks",
    "meraki_network_clients",
    "meraki_client_usage_histories",
    "meraki_organization_licenses",
]
EMNIFY_STREAMS = ["emnify_endpoints", "emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour", "emnify_endpoint_usage_daily"]
EMNIFY_USAGE_STREAMS = EMNIFY_STREAMS[1:]

# What every shard reads in full: the listings the sharded partitions come from.
SHARED_LISTINGS = {"meraki_organizations", "meraki_networks", "emnify_endpoints"}
SHARED_REQUESTS = {
    ("meraki", "GET", "/organizations"),
    ("meraki", "GET", "/organizations/{id}/networks"),
    ("emnify", "POST", "/authenticate"),
    ("emnify", "GET", "/endpoint"),
}
VENDOR_PREFIXES = {"meraki": "/meraki/api/v1", "emnify": "/emnify/api/v1", "twilio": "/twilio/v1", "thousandeyes": "/thousandeyes/v7"}


def request_key(entry: Dict[str, Any]) -> Tuple[str, str, str, str]:
    """A logged request as (vendor, method, path and query below the vendor's prefix, body)."""
    parts = urlsplit(entry["url"])
    path = parts.path[len(VENDOR_PREFIXES[entry["vendor"]]) :]
    return entry["vendor"], entry["method"], unquote(path + ("?" + parts.query if parts.query else "")), entry["body"] or ""


def request_route(key: Tuple[str, str, str, str]) -> Tuple[str, str, str]:
    vendor, method, target, _ = key
    return vendor, method, route_of(target.split("?", 1)[0])


# ----- Meraki at the per-IP limit ---------------------------------------------------------------------


@pytest.mark.slow
def test_given_12_meraki_organizations_behind_one_ip_when_syncing_with_the_real_limits_then_the_read_is_exact() -> None:
    """12 organizations at 10 requests/s each would send 120/s, over the per-IP limit (100/s): the read
    must still be exact, whatever the emulator refuses. That the budgets alone keep every request under
    both limits is shown where time can be controlled: the plugin's own budget, on a virtual clock, against
    the emulator's limiters on the same virtual time (unit_tests/test_fleet_budgets.py). Here a request
    granted at the limit can reach the emulator late, behind a busy machine's scheduling, and be refused:
    how many are depends on the machine, so that count is not asserted."""
    knobs = {"organizations": 12, "networks_per_organization": 20}
    with Emulator(seed=16, scale=1, rate_limits=True, vendors=["meraki"], meraki=knobs) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, MERAKI_STREAMS)

        run = run_connector("read", config, catalog)

        assert run.returncode == 0, run.stderr[-3000:]
        assert not run.errors
        for stream in MERAKI_STREAMS:
            expected = emulator.expected(stream, start_date=config["start_date"])
            assert expected, f"the emulator holds no {stream}"
            assert_records_match(run.records(stream), expected, primary_key(catalog, stream), stream)
        stats = emulator.stats()["meraki"]
        assert stats["requests"] > 12 * 40, "enough requests to run into the per-IP limit (120/s by the organizations' own budgets)"


# ----- emnify's monthly quota ---------------------------------------------------------------------------

QUOTA = 12  # calls: the login, the listing and ten statistics requests


def quota_run() -> Tuple[Run, List[Dict[str, Any]], Dict[str, Any]]:
    with Emulator(seed=16, scale=1, rate_limits=True, vendors=["emnify"], record_requests=True, emnify={"endpoints": 40, "monthly_quota": QUOTA}) as emulator:
        config = emulator.config(start_date=start_date())
        run = run_connector("read", config, configured_catalog(config, EMNIFY_STREAMS))
        return run, list(emulator.request_log), emulator.stats()["emnify"]


def test_given_emnifys_monthly_quota_runs_out_during_a_sync_when_it_answers_429_then_the_usage_streams_fail_with_one_clear_message() -> None:
    run, log, stats = quota_run()

    assert run.returncode != 0
    assert stats["monthly_calls"] == QUOTA and stats["rate_limited_by"]["monthly_quota"] > 0
    assert run.stream_statuses("emnify_endpoints")[-1] == "COMPLETE", "the listing was read within the quota"
    for stream in EMNIFY_USAGE_STREAMS:
        assert run.stream_statuses(stream)[-1] == "INCOMPLETE", stream
    stream_errors = [error for error in run.errors if error.get("stream_descriptor")]
    assert {error["stream_descriptor"]["name"] for error in stream_errors} == set(EMNIFY_USAGE_STREAMS)
    messages = {error["message"] for error in stream_errors}
    assert len(messages) == 1, messages
    message = messages.pop()
    assert "monthly API quota" in message and "exhausted" in message and "1st of next month" in message
    assert "resets on" in message, "the vendor's own words (when the quota resets) are quoted"
    # never waited out: no retry back-off was announced for any refusal (the client logs each one it takes)
    assert not [line for line in run.logs() if "retrying in" in line], "a refusal by the exhausted quota was retried"
    assert any("this sync made" in line and "monthly quota" in line for line in run.logs()), "the quota summary is logged at the end"


def test_given_emnifys_monthly_quota_runs_out_when_the_first_429_says_so_then_no_request_is_refused_twice_and_nothing_more_is_sent() -> None:
    run, log, stats = quota_run()

    refused = [request_key(entry) for entry in log if entry["status"] == 429]
    repeated = [key for key, count in Counter(refused).items() if count > 1]
    assert not repeated, f"requests sent again after the quota refused them: {repeated[:3]}"
    assert len(refused) <= 8, f"{len(refused)} requests answered 429 after the quota ran out (the emnify connection has 8 workers)"


# ----- shards ---------------------------------------------------------------------------------------------


def shard_config(config: Dict[str, Any], index: int, count: int = 3) -> Dict[str, Any]:
    return {**config, "shard": {"index": index, "count": count}}


def read_shards(emulator: Emulator, config: Dict[str, Any], catalog: Dict[str, Any], states: Sequence[Any] = (None, None, None)) -> Tuple[List[Run], List[List[Dict[str, Any]]]]:
    runs, logs = [], []
    for index in range(3):
        emulator.reset_stats()  # also empties the request log
        run = run_connector("read", shard_config(config, index), catalog, state=states[index])
        assert run.returncode == 0, run.stderr[-3000:]
        assert not run.errors, run.errors
        runs.append(run)
        logs.append(list(emulator.request_log))
    return runs, logs


def assert_sharded_streams_disjoint(runs: Sequence[Run], catalog: Dict[str, Any], streams: Sequence[str]) -> None:
    for stream in streams:
        pk = primary_key(catalog, stream)
        keys = [distinct_keys(run.records(stream), pk) for run in runs]
        if stream in SHARED_LISTINGS:
            assert keys[0] == keys[1] == keys[2], f"{stream}: every shard reads the whole listing"
        else:
            for first in range(3):
                for second in range(first + 1, 3):
                    both = keys[first] & keys[second]
                    assert not both, f"{stream}: {len(both)} records in shards {first} and {second}, e.g. {sorted(both)[:2]}"


def assert_requests_disjoint(logs: Sequence[List[Dict[str, Any]]]) -> Counter:
    """No request is sent by two shards, except the shared listings; the routes of the shared ones."""
    sent: List[Set[Tuple[str, str, str, str]]] = [{request_key(entry) for entry in log} for log in logs]
    shared: Counter = Counter()
    for first in range(3):
        for second in range(first + 1, 3):
            for key in sent[first] & sent[second]:
                shared[request_route(key)] += 1
    unexpected = {route: count for route, count in shared.items() if route not in SHARED_REQUESTS}
    assert not unexpected, f"requests sent by two shards: {unexpected}"
    return shared


@pytest.mark.slow
def test_given_three_shards_with_their_own_state_when_each_syncs_meraki_and_emnify_twice_then_together_they_read_everything_once() -> None:
    knobs = {"meraki": {"organizations": 5, "networks_per_organization": 4}, "emnify": {"endpoints": 45}}
    with Emulator(seed=16, scale=1, rate_limits=True, vendors=["meraki", "emnify"], record_requests=True, **knobs) as emulator:
        config = emulator.config(start_date=start_date())
        streams = MERAKI_STREAMS + EMNIFY_STREAMS
        catalog = configured_catalog(config, streams)

        runs, logs = read_shards(emulator, config, catalog)

        for stream in streams:
            union = [record for run in runs for record in run.records(stream)]
            if stream in SHARED_LISTINGS:
                union = runs[0].records(stream)
            expected = emulator.expected(stream, start_date=config["start_date"])
            assert expected, f"the emulator holds no {stream}"
            assert_records_match(union, expected, primary_key(catalog, stream), stream)
            if stream not in SHARED_LISTINGS:
                assert all(run.records(stream) for run in runs) or stream == "meraki_organization_licenses", f"{stream}: a shard read nothing"
        assert_sharded_streams_disjoint(runs, catalog, streams)
        shared = assert_requests_disjoint(logs)
        assert ("emnify", "GET", "/endpoint") in shared and ("meraki", "GET", "/organizations/{id}/networks") in shared

        # the next sync: each shard from its own state finds the new usage, still in its own partitions only
        emulator.advance(1)
        again, again_logs = read_shards(emulator, config, catalog, [run.final_state() for run in runs])

        assert_sharded_streams_disjoint(again, catalog, streams)
        assert_requests_disjoint(again_logs)
        for stream in ("meraki_client_usage_histories", "emnify_endpoint_usage_daily"):
            pk = primary_key(catalog, stream)
            expected = distinct_keys(emulator.expected(stream, start_date=config["start_date"]), pk)
            first_keys = set().union(*(distinct_keys(run.records(stream), pk) for run in runs))
            second_keys = set().union(*(distinct_keys(run.records(stream), pk) for run in again))
            assert expected - first_keys, f"{stream}: advancing the emulator adds records"
            assert first_keys | second_keys == expected, f"{stream}: the shards' two syncs together hold every record"


def test_given_three_shards_when_each_syncs_twilio_and_thousandeyes_then_no_record_is_read_by_two_shards() -> None:
    with Emulator(seed=16, scale=1, rate_limits=True, vendors=["twilio", "thousandeyes"], record_requests=True) as emulator:
        config = emulator.config(start_date=start_date())
        streams = ["twilio_supersim_usage_records", "thousandeyes_usage", "thousandeyes_test_usage"]
        catalog = configured_catalog(config, streams)

        runs, logs = read_shards(emulator, config, catalog)

        for stream in streams:
            union = [record for run in runs for record in run.records(stream)]
            assert len(distinct_keys(union, primary_key(catalog, stream))) == len(union), f"{stream}: records read by more than one shard"
        assert_requests_disjoint(logs)
