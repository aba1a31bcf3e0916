"""Meraki streams against the emulator, through the real `source-usage` process."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Iterator, List

import pytest

from integration_tests.harness import (
    Run,
    assert_read_matches_emulator,
    assert_records_match,
    configured_catalog,
    distinct_keys,
    key_of,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator
from source_usage.emulator.meraki import LICENSE_ERROR, MerakiApp
from source_usage.framework.windows import parse_timestamp

STREAMS = [
    "meraki_organizations",
    "meraki_networks",
    "meraki_network_clients",
    "meraki_client_usage_histories",
    "meraki_organization_licenses",
]


def test_full_read_returns_exactly_the_emulators_records_under_the_rate_limit() -> None:
    with Emulator(seed=3, scale=2, rate_limits=True, vendors=["meraki"], meraki={"organizations": 3}) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])
        # How many requests the emulator refused depends on the machine's scheduling (a request granted at the
        # limit may arrive late); that the budget keeps them under it is shown on a virtual clock in
        # unit_tests/test_fleet_budgets.py. Here: whatever was refused was ridden out, the read is exact.
        assert any("co-termination" in line for line in run.logs("WARN")), "the co-term organization is skipped with a warning"


def test_incremental_read_returns_the_new_usage_points_and_only_the_lookback_again(meraki_emulator: Emulator) -> None:
    emulator = meraki_emulator
    config = emulator.config(start_date=start_date())
    catalog = configured_catalog(config, ["meraki_client_usage_histories"])
    pk = primary_key(catalog, "meraki_client_usage_histories")
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-2000:]
    first_keys = distinct_keys(first.records("meraki_client_usage_histories"), pk)

    emulator.advance(1)
    second = run_connector("read", config, catalog, state=first.final_state())

    assert second.returncode == 0, second.stderr[-2000:]
    expected = emulator.expected("meraki_client_usage_histories", start_date=config["start_date"])
    expected_keys = distinct_keys(expected, pk)
    second_keys = distinct_keys(second.records("meraki_client_usage_histories"), pk)
    new_keys = expected_keys - first_keys
    assert new_keys, "advancing the emulator adds usage points"
    assert new_keys <= second_keys, "the incremental read returns every new usage point"
    assert first_keys | second_keys == expected_keys
    # Re-read records are limited to the one-day lookback before the saved state.
    latest = max(parse_timestamp(record["ts"]) for record in first.records("meraki_client_usage_histories"))
    reread = [record for record in second.records("meraki_client_usage_histories") if key_of(record, pk) in first_keys]
    assert reread, "the lookback re-reads the still-growing last bucket"
    assert all(parse_timestamp(record["ts"]) >= latest - timedelta(days=1) for record in reread)


# ----- real vendor behaviour: organizations and networks that cannot be read, shard redirects ------------------

UNREADABLE = {"organizations": 4, "disabled_organizations": 2, "shard_redirect_rate": 0.1, "deleted_networks": 2}
# Seed 16: among the requests that carry no time (an organization's networks and licenses, whose query never
# changes) some are redirected to the shard, so the sync meets redirects whatever the day it runs.
UNREADABLE_SEED = 16


@dataclass
class Sync:
    emulator: Emulator
    config: Dict[str, Any]
    catalog: Dict[str, Any]
    run: Run

    def expected(self, stream: str) -> List[dict]:
        return self.emulator.expected(stream, start_date=self.config["start_date"])

    def assert_exact(self, stream: str) -> None:
        assert_records_match(self.run.records(stream), self.expected(stream), primary_key(self.catalog, stream), stream)


@contextmanager
def sync_once(seed: int, knobs: Dict[str, Any]) -> Iterator[Sync]:
    """A full read of every Meraki stream against an emulator with `knobs`."""
    with Emulator(seed=seed, scale=2, rate_limits=True, vendors=["meraki"], meraki=knobs) as emulator:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config, STREAMS)
        yield Sync(emulator, config, catalog, run_connector("read", config, catalog))


@pytest.fixture(scope="module")
def unreadable_sync() -> Iterator[Sync]:
    """One sync of 4 organizations: 2 with API access disabled, 1 readable, 1 co-term; 2 networks deleted
    after they were listed; 10% of the scoped requests redirected to the organization's shard."""
    with sync_once(UNREADABLE_SEED, UNREADABLE) as sync:
        yield sync


def meraki_app(emulator: Emulator) -> MerakiApp:
    app = emulator.apps["meraki"]
    assert isinstance(app, MerakiApp)
    return app


def redirects(emulator: Emulator) -> int:
    return sum(
        count for statuses in emulator.stats()["meraki"]["by_route"].values() for status, count in statuses.items() if status.startswith("3")
    )


def test_given_disabled_organizations_deleted_networks_a_coterm_organization_and_shard_redirects_when_read_then_every_usage_stream_is_exact_and_each_skip_is_warned_once(
    unreadable_sync: Sync,
) -> None:
    sync, app = unreadable_sync, meraki_app(unreadable_sync.emulator)
    run = sync.run

    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.errors
    assert len(app.disabled) == 2 and len(app.deleted_networks) == 2 and len(app.coterm) == 1
    assert redirects(sync.emulator) > 0, "the sync met shard redirects (pick another seed if the request shapes changed)"
    for stream in STREAMS:
        assert sync.expected(stream), f"the emulator holds {stream}"
        sync.assert_exact(stream)
    # The listing shows what Meraki listed: a network deleted after it was listed is in it, and skipped later.
    listed = distinct_keys(run.records("meraki_networks"), ["id"])
    assert {key_of({"id": network}, ["id"]) for network in app.deleted_networks} <= listed
    warnings = run.logs("WARN")
    for org_id in app.disabled | app.coterm:
        assert len([line for line in warnings if f"skipping organization {org_id}" in line]) == 1, (org_id, warnings)
    for network_id in app.deleted_networks:
        assert len([line for line in warnings if f"skipping network {network_id}" in line]) == 1, (network_id, warnings)
    assert len(warnings) == len(app.disabled) + len(app.coterm) + len(app.deleted_networks), warnings
    assert all("API access is disabled" in line for line in warnings if any(f"organization {org_id}" in line for org_id in app.disabled))
    assert not [
        record for record in run.records("meraki_networks") if record.get("organizationId") in app.disabled
    ], "nothing is read under an organization whose API access is disabled"


def test_given_an_organization_whose_licenses_answer_another_400_when_read_then_only_the_licenses_stream_fails_with_merakis_text() -> None:
    knobs = {"organizations": 3, "license_error_organizations": 1}
    with sync_once(5, knobs) as sync:
        run, app = sync.run, meraki_app(sync.emulator)
        [failing] = app.license_error

        assert run.returncode != 0
        per_stream = [error for error in run.errors if error.get("stream_descriptor")]
        assert [error["stream_descriptor"]["name"] for error in per_stream] == ["meraki_organization_licenses"]
        [error] = per_stream
        assert LICENSE_ERROR in error["message"] and failing in error["message"], error
        assert "co-termination" not in error["message"]
        assert run.stream_statuses("meraki_organization_licenses")[-1] == "INCOMPLETE"
        for stream in STREAMS[:-1]:
            assert run.stream_statuses(stream)[-1] == "COMPLETE", stream
            sync.assert_exact(stream)
        assert not [record for record in run.records("meraki_organization_licenses") if record["organizationId"] == failing]


@pytest.fixture(scope="module")
def forbidden_sync() -> Iterator[Sync]:
    """One sync of 3 organizations, the first of which the key's administrator can only read networks of (403)."""
    with sync_once(7, {"organizations": 3, "forbidden_organizations": 1}) as sync:
        yield sync


def test_given_an_organization_that_answers_403_when_read_then_it_is_skipped_with_one_warning_naming_the_permission(forbidden_sync: Sync) -> None:
    sync, app = forbidden_sync, meraki_app(forbidden_sync.emulator)
    run = sync.run
    [forbidden] = app.forbidden

    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.errors
    skipped = [line for line in run.logs("WARN") if f"skipping organization {forbidden}" in line]
    assert len(skipped) == 1, run.logs("WARN")
    assert "read access" in skipped[0] and "organization-level administrator" in skipped[0] and "HTTP 403" in skipped[0], skipped
    for stream in STREAMS:
        sync.assert_exact(stream)
    # The organization is listed (its API access is enabled): only what is under it is skipped.
    assert key_of({"id": forbidden}, ["id"]) in distinct_keys(run.records("meraki_organizations"), ["id"])


def test_given_an_api_that_redirects_every_scoped_request_to_a_shard_when_checked_then_check_succeeds_after_an_organization_scoped_call() -> None:
    knobs = {"organizations": 3, "disabled_organizations": 1, "shard_redirect_rate": 1.0}
    with Emulator(seed=3, rate_limits=True, vendors=["meraki"], meraki=knobs) as emulator:
        run = run_connector("check", emulator.config())

        assert run.connection_status == {"status": "SUCCEEDED"}, run.connection_status
        routes = emulator.stats()["meraki"]["by_route"]
        scoped = routes["/organizations/{id}/networks"]
        assert sum(count for status, count in scoped.items() if status.startswith("3")) == 1, routes
        assert scoped.get("200") == 1, "the redirected organization-scoped call was answered on the shard"
