"""The per-source-IP budgets at fleet scale, read from the budget objects the plugins' connections build.

The limits written here are the vendors' documented ones (emnify: 2,000 requests and 100 logins per 5
minutes per source IP; Meraki: 100 requests/s per source IP, 10 per organization). The emnify tests count
calls against them with the real clock (acquiring 2,000 calls takes milliseconds of a five-minute window) and
record waits instead of sleeping; the Meraki ones (one-second windows) run the budget on a virtual clock
(`VirtualClock`: the CDK's rate policies and the budget read it, a wait moves it), so a slow machine
cannot let a window slide by. Each test uses a host of its own, so the process-wide layers it gets are fresh.

The fleet test (the connector's own budget accounting, where integration_tests/test_fleet.py can only count
429s that depend on the machine's speed): every request of 12 Meraki organizations, granted by the budget
the plugin builds, reaches the emulator's limiters at the virtual moment it was granted, and the emulator
(on the same virtual time) refuses none; without the per-IP layer it refuses some.
"""

from __future__ import annotations

import itertools
from collections import Counter
import logging
import re
from types import SimpleNamespace
from typing import Any, List

import pyrate_limiter.clocks
import pytest
import requests

from source_usage.framework.budget import LayeredBudget
from source_usage.framework.plugin import plugin_named
from source_usage.framework.settings import settings

_hosts = itertools.count(1)


class StopWaiting(Exception):
    """Raised by the recording sleep: the test has seen the wait it wanted to see."""


def connect(vendor: str, section: dict) -> Any:
    plugin = plugin_named(vendor)
    return plugin.connect(plugin.parse_config(section), settings())


def budget_of(connection: Any) -> LayeredBudget:
    budget = connection.session._api_budget
    assert isinstance(budget, LayeredBudget)
    return budget


def prepared(method: str, url: str) -> requests.PreparedRequest:
    return requests.Request(method, url).prepare()


def emnify_connection(host: str) -> Any:
    return connect("emnify", {"application_token": "fleet-test-application-token", "base_url": f"http://{host}/api/v1"})


class VirtualClock:
    """Time for the connector's budget: the CDK's rate policies (pyrate_limiter's clock) and the budget's own
    monotonic clock read it; the budget's sleeps move it (and are recorded) instead of sleeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_000_000.0
        self.waits: List[float] = []
        monkeypatch.setattr(pyrate_limiter.clocks, "time", lambda: self.now)
        monkeypatch.setattr("source_usage.framework.budget.time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr("source_usage.framework.budget.sleep", self.sleep)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    return VirtualClock(monkeypatch)


def stop_at_first_wait(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record the first sleep the budget asks for, then stop the request (instead of sleeping). The budget
    sleeps at most 60 s at a time: a longer wait shows in its log line (`announced_wait`)."""
    waits: List[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise StopWaiting()

    monkeypatch.setattr("source_usage.framework.budget.sleep", sleep)
    return waits


def announced_wait(caplog: pytest.LogCaptureFixture, layer: str) -> float:
    """The wait the budget logged before sleeping for `layer` ("waiting 301 s for the ... budget")."""
    found = [re.search(r"waiting (\d+) s for the (.+) budget", record.getMessage()) for record in caplog.records]
    seconds = [float(match.group(1)) for match in found if match and layer in match.group(2)]
    assert len(seconds) == 1, [record.getMessage() for record in caplog.records]
    return seconds[0]


def fill_layer(budget: LayeredBudget, name_part: str, request: requests.PreparedRequest, calls: int) -> None:
    """Spend `calls` calls of the layer whose name contains `name_part` only (the others are not asked)."""
    layer = next(layer for layer in budget.layers if name_part in layer.name)
    policy = layer.policy_for(request)
    assert policy is not None, f"the {layer.name} layer does not cover {request.method} {request.url}"
    for _ in range(calls):
        policy.try_acquire(request, weight=1)


def test_given_2000_emnify_requests_in_five_minutes_when_the_2001st_is_sent_then_it_waits_for_the_per_ip_window(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host = f"emnify-fleet-{next(_hosts)}.invalid:8080"
    budget = budget_of(emnify_connection(host))
    # 2,000 calls spread over the paths, as a sync does (statistics, daily series, listing, login)
    paths = ["GET /api/v1/endpoint/{n}/stats", "GET /api/v1/endpoint/{n}/stats/daily", "GET /api/v1/endpoint"]
    for n in range(2000):
        method, path = paths[n % 3].split(" ")
        fill_layer(budget, "per-IP (2,000", prepared(method, f"http://{host}{path.format(n=n)}"), 1)
    waits = stop_at_first_wait(monkeypatch)

    with pytest.raises(StopWaiting):
        budget.acquire_call(prepared("GET", f"http://{host}/api/v1/endpoint/9999/stats"))

    assert len(waits) == 1 and waits[0] > 0
    # the first call leaves the 5-minute window (plus the client's one-second margin) in about 301 s
    assert 290 <= announced_wait(caplog, "per-IP (2,000") <= 302


def test_given_2000_emnify_requests_when_another_connection_of_the_process_sends_then_it_waits_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The per-IP layer is the process's: a second sync or shard in the same process shares it."""
    caplog.set_level(logging.INFO)
    host = f"emnify-fleet-{next(_hosts)}.invalid:8080"
    first, second = emnify_connection(host), emnify_connection(host)
    fill_layer(budget_of(first), "per-IP (2,000", prepared("GET", f"http://{host}/api/v1/endpoint/1/stats"), 2000)
    waits = stop_at_first_wait(monkeypatch)

    with pytest.raises(StopWaiting):
        budget_of(second).acquire_call(prepared("GET", f"http://{host}/api/v1/endpoint/2/stats"))

    assert len(waits) == 1 and announced_wait(caplog, "per-IP (2,000") > 290


def test_given_1999_emnify_requests_when_one_more_is_sent_then_it_does_not_wait_for_the_per_ip_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = f"emnify-fleet-{next(_hosts)}.invalid:8080"
    budget = budget_of(emnify_connection(host))
    fill_layer(budget, "per-IP (2,000", prepared("GET", f"http://{host}/api/v1/endpoint"), 1999)
    waits = stop_at_first_wait(monkeypatch)

    budget.acquire_call(prepared("GET", f"http://{host}/api/v1/endpoint/7/stats"))

    assert waits == []


def test_given_100_emnify_logins_in_five_minutes_when_another_connection_logs_in_then_it_waits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host = f"emnify-fleet-{next(_hosts)}.invalid:8080"
    first, second = emnify_connection(host), emnify_connection(host)
    login = prepared("POST", f"http://{host}/api/v1/authenticate")
    fill_layer(budget_of(first), "per-IP authentication", login, 100)
    waits = stop_at_first_wait(monkeypatch)

    with pytest.raises(StopWaiting):
        budget_of(second).acquire_call(login)

    assert len(waits) == 1 and announced_wait(caplog, "per-IP authentication") > 290
    # a statistics request is not a login: the login limit does not hold it back
    budget_of(second).acquire_call(prepared("GET", f"http://{host}/api/v1/endpoint/3/stats"))
    assert len(waits) == 1


def test_given_100_meraki_requests_within_a_second_over_eleven_organizations_when_the_101st_is_sent_then_it_waits(
    virtual_clock: VirtualClock,
) -> None:
    host = f"meraki-fleet-{next(_hosts)}.invalid:8080"
    budget = budget_of(connect("meraki", {"api_key": "k" * 40, "base_url": f"http://{host}/api/v1"}))
    organizations = [str(600000 + n) for n in range(11)]
    for n in range(100):  # 10 per organization for 10 of them: no organization is over its own limit
        budget.acquire_call(prepared("GET", f"http://{host}/api/v1/organizations/{organizations[n % 10]}/networks?n={n}"))
    assert virtual_clock.waits == []

    budget.acquire_call(prepared("GET", f"http://{host}/api/v1/organizations/{organizations[10]}/networks"))

    # the 11th organization's first request waits until the first of the 100 leaves the per-IP window
    # (one second and the client's 6% margin)
    assert sum(virtual_clock.waits) == pytest.approx(1.06, abs=0.002)


def test_given_10_meraki_requests_of_one_organization_when_its_11th_is_sent_then_it_waits_for_the_organization(
    virtual_clock: VirtualClock,
) -> None:
    host = f"meraki-fleet-{next(_hosts)}.invalid:8080"
    budget = budget_of(connect("meraki", {"api_key": "k" * 40, "base_url": f"http://{host}/api/v1"}))
    for n in range(10):
        budget.acquire_call(prepared("GET", f"http://{host}/api/v1/organizations/600001/licenses?n={n}"))
    assert virtual_clock.waits == []

    budget.acquire_call(prepared("GET", f"http://{host}/api/v1/organizations/600001/licenses?n=10"))
    assert sum(virtual_clock.waits) == pytest.approx(1.02, abs=0.002), "a second and the client's 2% margin"
    waited = len(virtual_clock.waits)
    budget.acquire_call(prepared("GET", f"http://{host}/api/v1/organizations/600002/licenses"))
    assert len(virtual_clock.waits) == waited, "another organization goes on at once"


def meraki_fleet_requests(app: Any) -> List[str]:
    """What a fleet sync asks per network (its clients and their usage), organizations alternating."""
    networks = [[network["id"] for network in app.networks[org["id"]]] for org in app.organizations]
    rounds = max(len(ids) for ids in networks)
    return [
        f"/networks/{ids[index]}/{route}"
        for index in range(rounds)
        for route in ("clients", "clients/usageHistories")
        for ids in networks
        if index < len(ids)
    ]


def emulator_statuses_for_budgeted_requests(virtual_clock: VirtualClock, per_ip_layer: bool) -> List[int]:
    """Every request of a 12-organization fleet granted by the Meraki plugin's budget (optionally without its
    per-IP layer) and answered by the emulator's limiters at the virtual moment it was granted."""
    from source_usage.emulator.http import Request
    from source_usage.emulator.meraki import MerakiApp

    app = MerakiApp(16, 1, True, organizations=12, networks_per_organization=20)
    app.timer.freeze()
    host = f"meraki-fleet-{next(_hosts)}.invalid:8080"
    connection = connect("meraki", {"api_key": app.api_key, "base_url": f"http://{host}/api/v1"})
    for org in app.organizations:  # what the connector learns from the networks listing
        connection.organizations_of_networks.learn(app.networks[org["id"]], org["id"])
    budget = budget_of(connection)
    if not per_ip_layer:
        budget.layers = [layer for layer in budget.layers if "per-IP" not in layer.name]
    statuses, last = [], virtual_clock.now
    for path in meraki_fleet_requests(app):
        budget.acquire_call(prepared("GET", f"http://{host}/api/v1{path}"))
        app.timer.advance(virtual_clock.now - last)  # the request reaches the emulator when it was granted
        last = virtual_clock.now
        request = Request("GET", path, {}, {"authorization": f"Bearer {app.api_key}"}, b"", "http://127.0.0.1:1" + app.prefix, prefix=app.prefix)
        statuses.append(app.handle(request).status)
    return statuses


def test_given_12_meraki_organizations_when_the_plugins_budget_paces_a_fleet_sync_then_the_emulators_real_limits_refuse_nothing(
    virtual_clock: VirtualClock,
) -> None:
    statuses = emulator_statuses_for_budgeted_requests(virtual_clock, per_ip_layer=True)

    assert len(statuses) == 12 * 20 * 2 and 429 not in statuses, Counter(statuses)
    # 480 requests at 100 per 1.06 s take at least four windows: the per-IP layer did the pacing
    assert sum(virtual_clock.waits) >= 4 * 1.06 - 0.01


def test_given_12_meraki_organizations_when_paced_by_their_own_budgets_alone_then_the_per_ip_limit_refuses_some(
    virtual_clock: VirtualClock,
) -> None:
    statuses = emulator_statuses_for_budgeted_requests(virtual_clock, per_ip_layer=False)

    assert statuses.count(429) > 0, "12 organizations at 10/s each send 120/s: over the per-IP 100/s"


# ----- the ideal times the benchmark reports against (computed by the emulators from their own limits) -----


def log_entries(prefix: str, paths: List[str], status: int = 200) -> List[dict]:
    return [{"method": "GET", "url": f"http://127.0.0.1:1{prefix}{path}", "status": status, "started": float(n)} for n, path in enumerate(paths)]


def test_given_2300_emnify_statistics_requests_when_the_ideal_is_computed_then_the_last_ones_wait_for_the_per_ip_window() -> None:
    from source_usage.emulator.emnify import EmnifyApp

    app = EmnifyApp(7, 1, True, endpoints=3)
    requests_sent = log_entries(app.prefix, ["/endpoint?page=1"] + [f"/endpoint/{n}/stats" for n in range(2299)])

    ideal = app.ideal(requests_sent)

    # 2,000 requests at once and then at 100/s (after a burst of 50); the 2,001st waits until the first
    # leaves the 300 s window, the rest follow at the rate they first went: 300 s + 300 requests / 100 per s
    assert ideal is not None and 302 <= ideal.seconds <= 303.1


def test_given_16_meraki_organizations_when_the_ideal_is_computed_then_it_is_the_larger_of_the_per_organization_and_per_ip_bounds() -> None:
    from source_usage.emulator.meraki import MerakiApp

    app = MerakiApp(7, 1, True, organizations=16)
    organizations = [org["id"] for org in app.organizations]
    busy = log_entries(app.prefix, [f"/organizations/{org}/licenses?n={n}" for org in organizations for n in range(62)])
    refused = log_entries(app.prefix, ["/organizations"], status=429)

    ideal = app.ideal(busy + refused)

    # per IP: 992 requests at 100 per second = 9 s after the first; per organization: (62 - 10) / 10 = 5.2 s
    assert ideal is not None and ideal.seconds == 9.0
    one_organization = app.ideal(log_entries(app.prefix, [f"/organizations/{organizations[0]}/licenses?n={n}" for n in range(62)]))
    assert one_organization is not None and abs(one_organization.seconds - 5.2) < 1e-9
