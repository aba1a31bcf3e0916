"""budget.py: client-side rate budgets in layers; every matching layer grants a call, waits are bounded."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any, Iterator, List, Optional

import pytest
import requests
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.call_rate import AbstractCallRatePolicy, CallRateLimitHit

from source_usage.framework import budget as budget_module
from source_usage.framework.budget import (
    BudgetLayer,
    LayeredBudget,
    MovingWindowLayer,
    ReportedWindowLayer,
    Unlimited,
    everything,
    process_layer,
)
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import UsageError, WaitTooLong
from source_usage.framework.settings import Settings, reload_settings
from source_usage.framework.vendor import VendorConnection

BASE = "https://api.acme.example/v1"


def request(path: str) -> requests.PreparedRequest:
    return requests.Request("GET", f"{BASE}/{path}").prepare()


def organization(prepared: requests.PreparedRequest) -> Optional[str]:
    parts = prepared.path_url.split("/")
    return parts[3] if len(parts) > 3 and parts[2] == "orgs" else None


def hourly(name: str, key_of: Any, limit: int, max_wait: Optional[float] = 0) -> MovingWindowLayer:
    return MovingWindowLayer(name, key_of, limit, timedelta(hours=1), max_wait=max_wait)


def refused(budget: LayeredBudget, path: str) -> WaitTooLong:
    with pytest.raises(WaitTooLong) as failure:
        budget.acquire_call(request(path))
    return failure.value


class Scripted(AbstractCallRatePolicy):
    """A policy whose calls wait the scripted seconds in turn (None: the call is granted)."""

    def __init__(self, *waits: Optional[float]) -> None:
        self._waits: Iterator[Optional[float]] = iter(waits)
        self.granted = 0

    def try_acquire(self, request: Any, weight: int) -> None:
        wait = next(self._waits)
        if wait is not None:
            raise CallRateLimitHit(error="spent", item=request, weight=weight, rate="1/h", time_to_wait=timedelta(seconds=wait))
        self.granted += 1

    def matches(self, request: Any) -> bool:
        return True

    def update(self, available_calls: Optional[int], call_reset_ts: Any) -> None:
        pass


class ScriptedLayer(BudgetLayer):
    def __init__(self, policy: Scripted, max_wait: Optional[float] = None) -> None:
        super().__init__("scripted", everything, max_wait)
        self._policy = policy

    def make_policy(self) -> AbstractCallRatePolicy:
        return self._policy


# ----- layers ----------------------------------------------------------------------------------------


def test_given_per_key_and_shared_layers_when_calls_are_made_then_every_matching_layer_is_spent() -> None:
    budget = LayeredBudget("acme", [hourly("per-organization", organization, 1), hourly("per-IP", everything, 2)])
    budget.acquire_call(request("orgs/1/networks"))
    budget.acquire_call(request("orgs/2/networks"))  # another organization: its own per-key call
    assert str(refused(budget, "orgs/3/networks")).startswith("the per-IP budget is spent: ")  # the shared layer counted both
    assert str(refused(budget, "orgs/1/networks")).startswith("the per-organization budget is spent: ")


def test_given_a_layer_whose_key_does_not_match_when_a_call_is_made_then_that_layer_does_not_apply() -> None:
    budget = LayeredBudget("acme", [hourly("per-organization", organization, 1)])
    for _ in range(3):
        budget.acquire_call(request("networks/N1/clients"))
    budget.acquire_call(request("orgs/1/networks"))
    refused(budget, "orgs/1/networks")


def test_given_layers_when_the_matching_policy_is_asked_then_it_is_the_first_matching_layers() -> None:
    per_org, shared = hourly("per-organization", organization, 1), hourly("per-IP", everything, 2)
    budget = LayeredBudget("acme", [per_org, shared])
    assert budget.get_matching_policy(request("orgs/1/x")) is per_org.policy_for(request("orgs/1/x"))
    assert budget.get_matching_policy(request("networks/x")) is shared.policy_for(request("networks/y"))
    assert budget.get_matching_policy("not a prepared request") is None
    assert LayeredBudget("acme", [per_org]).get_matching_policy(request("networks/x")) is None


def test_given_a_layer_when_policies_are_asked_per_key_then_each_key_keeps_its_own() -> None:
    layer = hourly("per-organization", organization, 1)
    assert layer.policy_for(request("orgs/1/a")) is layer.policy_for(request("orgs/1/b"))
    assert layer.policy_for(request("orgs/1/a")) is not layer.policy_for(request("orgs/2/a"))
    assert layer.policy_for(request("other")) is None
    assert everything(request("anything")) == ""


# ----- waiting ---------------------------------------------------------------------------------------


def test_given_a_spent_layer_when_a_call_is_made_then_it_waits_the_time_the_policy_says(waits: List[float]) -> None:
    policy = Scripted(2.0, 2.0, None)
    LayeredBudget("acme", [ScriptedLayer(policy)]).acquire_call(request("x"))
    assert waits == [2.0]
    assert policy.granted == 1


def test_given_a_long_wait_within_the_bounds_when_waiting_then_it_sleeps_at_most_a_minute_at_a_time(waits: List[float]) -> None:
    LayeredBudget("acme", [ScriptedLayer(Scripted(100.0, 100.0, 40.0, None))]).acquire_call(request("x"))
    assert waits == [60.0, 40.0]


def test_given_a_zero_wait_when_waiting_then_it_yields_briefly_instead_of_spinning(waits: List[float]) -> None:
    LayeredBudget("acme", [ScriptedLayer(Scripted(0.0, 0.0, None))]).acquire_call(request("x"))
    assert waits == [0.001]


def test_given_a_wait_longer_than_the_layer_allows_when_a_call_is_made_then_it_fails_at_once(waits: List[float]) -> None:
    with pytest.raises(WaitTooLong) as failure:
        LayeredBudget("acme", [ScriptedLayer(Scripted(31.0, 31.0, None), max_wait=30.0)]).acquire_call(request("x"))
    assert waits == []
    assert failure.value.seconds == 31.0
    assert str(failure.value).startswith("the scripted budget is spent: the vendor asks to wait 31 s before the next request, longer than the 30 s allowed")


def test_given_a_wait_of_exactly_what_the_layer_allows_when_a_call_is_made_then_it_waits(waits: List[float]) -> None:
    LayeredBudget("acme", [ScriptedLayer(Scripted(30.0, 30.0, None), max_wait=30.0)]).acquire_call(request("x"))
    assert waits == [30.0]


def test_given_a_layer_without_its_own_bound_when_the_wait_exceeds_the_total_then_it_fails(monkeypatch: pytest.MonkeyPatch, waits: List[float]) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS", "10")
    reload_settings()
    with pytest.raises(WaitTooLong, match="longer than the 10 s allowed"):
        LayeredBudget("acme", [ScriptedLayer(Scripted(11.0, 11.0, None))]).acquire_call(request("x"))
    assert waits == []
    LayeredBudget("acme", [ScriptedLayer(Scripted(9.0, 9.0, None))]).acquire_call(request("x"))
    assert waits == [9.0]


def test_given_a_wait_of_at_least_the_log_threshold_when_waiting_then_it_is_logged(airbyte_log: Any, waits: List[float]) -> None:
    LayeredBudget("acme", [ScriptedLayer(Scripted(5.0, 5.0, None))]).acquire_call(request("x"))
    assert airbyte_log.lines() == ["acme: waiting 5 s for the scripted budget before the next request"]


def test_given_a_wait_under_the_log_threshold_when_waiting_then_nothing_is_logged(airbyte_log: Any, waits: List[float]) -> None:
    LayeredBudget("acme", [ScriptedLayer(Scripted(4.9, 4.9, None))]).acquire_call(request("x"))
    assert waits == [4.9]
    assert airbyte_log.lines() == []


class FakeTime:
    """A monotonic clock that moves only when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: List[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_given_waits_when_a_layer_grants_the_call_then_the_time_waited_is_added_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    monkeypatch.setattr(budget_module, "time", clock)
    layer = ScriptedLayer(Scripted(2.0, 2.0, 3.0, None))
    LayeredBudget("acme", [layer], sleep=clock.sleep).acquire_call(request("x"))
    assert clock.slept == [2.0, 3.0]
    assert layer.waited_seconds == 5.0


def test_given_waits_already_spent_when_the_next_would_pass_the_total_then_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS", "10")
    reload_settings()
    clock = FakeTime()
    monkeypatch.setattr(budget_module, "time", clock)
    with pytest.raises(WaitTooLong):
        LayeredBudget("acme", [ScriptedLayer(Scripted(6.0, 6.0, 6.0, None))], sleep=clock.sleep).acquire_call(request("x"))
    assert clock.slept == [6.0]  # 6 s waited and 6 s more would make 12 s, over the 10 s allowed


def test_given_an_injected_sleep_when_waiting_then_it_is_used(waits: List[float]) -> None:
    slept: List[float] = []
    LayeredBudget("acme", [ScriptedLayer(Scripted(3.0, 3.0, None))], sleep=slept.append).acquire_call(request("x"))
    assert (slept, waits) == ([3.0], [])


# ----- a window the server reports -------------------------------------------------------------------


def reported(limit: int = 10, max_wait: Optional[float] = 60.0) -> ReportedWindowLayer:
    return ReportedWindowLayer("ThousandEyes (240 requests/min)", everything, limit, timedelta(hours=1), "X-Remaining", "X-Reset", max_wait)


def reply(status: int = 200, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_given_a_reset_far_in_the_future_when_the_budget_is_spent_then_it_fails_with_wait_too_long_instead_of_sleeping(waits: List[float]) -> None:
    layer = reported()
    budget = LayeredBudget("thousandeyes", [layer])
    budget.acquire_call(request("usage"))
    budget.update_from_response(request("usage"), reply(**{"X-Remaining": "0", "X-Reset": str(int(time.time()) + 2 * 86400 + 3600)}))
    failure = refused(budget, "usage")
    assert failure.seconds > 86000
    assert "the vendor asks to wait 2.0 days before the next request" in str(failure)
    assert waits == []


def test_given_a_429_without_a_remaining_header_when_learnt_then_the_window_counts_as_spent(waits: List[float]) -> None:
    budget = LayeredBudget("thousandeyes", [reported()])
    budget.update_from_response(request("usage"), reply(429, **{"X-Reset": str(int(time.time()) + 7200)}))
    assert refused(budget, "usage").seconds > 7000
    assert waits == []


def test_given_a_remaining_count_when_learnt_then_only_that_many_calls_are_granted(waits: List[float]) -> None:
    budget = LayeredBudget("thousandeyes", [reported(limit=10, max_wait=0)])
    budget.update_from_response(request("usage"), reply(**{"X-Remaining": "2"}))
    budget.acquire_call(request("usage"))
    budget.acquire_call(request("usage"))
    refused(budget, "usage")


@pytest.mark.parametrize(
    "headers", [{"X-Remaining": "soon", "X-Reset": "later"}, {"X-Remaining": "-3", "X-Reset": "-1"}, {"X-Remaining": "nan", "X-Reset": "inf"}, {}]
)
def test_given_unusable_rate_limit_headers_when_learnt_then_they_are_ignored_without_error(headers: dict, waits: List[float]) -> None:
    budget = LayeredBudget("thousandeyes", [reported(limit=2, max_wait=0)])
    budget.update_from_response(request("usage"), reply(**headers))
    budget.acquire_call(request("usage"))
    budget.acquire_call(request("usage"))
    refused(budget, "usage")


def test_given_a_reset_beyond_the_year_9999_when_learnt_then_it_does_not_break_and_the_call_fails_at_once(waits: List[float]) -> None:
    budget = LayeredBudget("thousandeyes", [reported()])
    budget.update_from_response(request("usage"), reply(**{"X-Remaining": "0", "X-Reset": "1e20"}))
    assert refused(budget, "usage").seconds > 86400 * 365
    assert waits == []


def test_given_something_other_than_a_response_when_learnt_then_it_is_ignored() -> None:
    layer = reported(limit=1, max_wait=0)
    layer.update(request("usage"), requests.ConnectionError("reset"))
    layer.update("not a request", reply(**{"X-Remaining": "0"}))
    LayeredBudget("thousandeyes", [layer]).acquire_call(request("usage"))


# ----- shared per process, and off when asked ---------------------------------------------------------


def test_given_a_key_when_layers_are_asked_per_process_then_one_layer_is_made_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_module, "_process_layers", {})
    made: List[BudgetLayer] = []

    def make() -> BudgetLayer:
        made.append(hourly("per-IP", everything, 100))
        return made[-1]

    first = process_layer(("acme", "api.acme.example:443", "per IP"), make)
    again = process_layer(("acme", "api.acme.example:443", "per IP"), make)
    other = process_layer(("acme", "api.acme.ca:443", "per IP"), make)
    assert first is again is made[0]
    assert other is made[1]
    assert len(made) == 2


def test_given_no_limits_when_calls_are_made_then_nothing_is_counted() -> None:
    unlimited = Unlimited()
    for _ in range(5):
        unlimited.acquire_call(request("x"))
    unlimited.update_from_response(request("x"), reply(429))
    assert unlimited.get_matching_policy(request("x")) is None


def test_given_a_vendor_with_a_spent_budget_when_it_sends_then_it_fails_unretried_and_nothing_reaches_the_server(waits: List[float]) -> None:
    connection = VendorConnection("acme", BASE, VendorErrors("acme"), budget_layers=[hourly("per-organization", organization, 1)], settings=Settings())
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/orgs/1/networks", json=[])
        connection.send("GET", "orgs/1/networks")
        with pytest.raises(UsageError) as failure:
            connection.send("GET", "orgs/1/networks")
        assert mock.call_count == 1
    assert str(failure.value).startswith(f"acme: GET {BASE}/orgs/1/networks the per-organization budget is spent: ")
    assert waits == []


def test_given_a_vendor_with_a_budget_spent_for_long_when_it_sends_then_it_fails_as_transient_like_a_long_retry_after(waits: List[float]) -> None:
    connection = VendorConnection("acme", BASE, VendorErrors("acme"), budget_layers=[hourly("per-organization", organization, 1)], settings=Settings())
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/orgs/1/networks", json=[])
        connection.send("GET", "orgs/1/networks")
        with pytest.raises(UsageError) as failure:
            connection.send("GET", "orgs/1/networks")
    assert failure.value.failure_type == FailureType.transient_error


def test_given_a_vendor_when_a_response_reports_the_window_spent_then_the_next_request_fails_before_it_is_sent(waits: List[float]) -> None:
    connection = VendorConnection("acme", BASE, VendorErrors("acme"), budget_layers=[reported()], settings=Settings())
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/usage", json={}, headers={"X-Remaining": "0", "X-Reset": str(int(time.time()) + 2 * 86400 + 3600)})
        connection.send("GET", "usage")
        with pytest.raises(UsageError, match="budget is spent: the vendor asks to wait 2.0 days"):
            connection.send("GET", "usage")
        assert mock.call_count == 1


def test_given_budgets_switched_off_when_a_vendor_sends_then_its_layers_do_not_apply(waits: List[float]) -> None:
    connection = VendorConnection(
        "acme", BASE, VendorErrors("acme"), budget_layers=[hourly("per-organization", organization, 1)], settings=replace(Settings(), client_rate_budgets=False)
    )
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/orgs/1/networks", json=[])
        for _ in range(3):
            connection.send("GET", "orgs/1/networks")
        assert mock.call_count == 3


def test_given_layers_with_a_name_and_a_longest_wait_when_made_then_both_are_kept() -> None:
    moving = MovingWindowLayer("emnify (2,000 requests/5 min)", lambda request: "ip", 2000, timedelta(minutes=5), max_wait=30.0)
    reported = ReportedWindowLayer("ThousandEyes (240 requests/min)", lambda request: "org", 240, timedelta(minutes=1), "X-Remaining", "X-Reset", 45.0)

    assert (moving.name, moving.max_wait) == ("emnify (2,000 requests/5 min)", 30.0)
    assert (reported.name, reported.max_wait) == ("ThousandEyes (240 requests/min)", 45.0)
    assert MovingWindowLayer("m", lambda request: "k", 1, timedelta(seconds=1)).max_wait is None


def test_given_a_reported_window_layer_when_its_policy_is_made_then_the_window_is_the_layers_period() -> None:
    layer = ReportedWindowLayer("ThousandEyes", lambda request: "org", 240, timedelta(minutes=1), "X-Remaining", "X-Reset", None)
    policy = layer.make_policy()

    assert policy._offset == timedelta(minutes=1)  # type: ignore[attr-defined]
    assert policy._call_limit == 240  # type: ignore[attr-defined]


def answered(status: int = 200, **headers: str) -> Any:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_given_only_a_reset_header_when_a_reported_window_updates_then_its_window_moves_to_that_second() -> None:
    from datetime import datetime

    layer = ReportedWindowLayer("ThousandEyes", everything, 240, timedelta(minutes=1), "X-Remaining", "X-Reset", None)
    request = requests.Request("GET", "https://api.example.com/v7/usage").prepare()
    policy = layer.policy_for(request)
    layer.update(request, answered(**{"X-Reset": "4102444800"}))  # 2100-01-01T00:00:00Z

    assert policy._next_reset_ts == datetime.fromtimestamp(4102444800)  # type: ignore[union-attr]


def test_given_a_reset_header_no_local_date_can_hold_when_a_reported_window_updates_then_it_is_ignored_and_calls_still_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # the last second of 9999 in UTC is in the year 10000 here
    time.tzset()
    layer = ReportedWindowLayer("ThousandEyes", everything, 240, timedelta(minutes=1), "X-Remaining", "X-Reset", None)
    request = requests.Request("GET", "https://api.example.com/v7/usage").prepare()
    policy = layer.policy_for(request)
    before = policy._next_reset_ts  # type: ignore[union-attr]
    try:
        layer.update(request, answered(**{"X-Reset": "253402300799"}))
        assert policy._next_reset_ts == before  # type: ignore[union-attr]
        policy.try_acquire(request, weight=1)  # type: ignore[union-attr]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_given_a_wait_under_a_second_when_waiting_then_it_sleeps_that_long(waits: List[float]) -> None:
    LayeredBudget("acme", [ScriptedLayer(Scripted(0.5, 0.25, None))]).acquire_call(request("x"))
    assert waits == [0.25]


def test_given_two_calls_that_each_wait_when_granted_then_the_layer_adds_up_both_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    clock.now = 100.0  # a monotonic clock is far from zero
    monkeypatch.setattr(budget_module, "time", clock)
    layer = ScriptedLayer(Scripted(2.0, 2.0, None, 3.0, 3.0, None))
    budget = LayeredBudget("acme", [layer], sleep=clock.sleep)

    budget.acquire_call(request("x"))
    budget.acquire_call(request("y"))

    assert clock.slept == [2.0, 3.0]
    assert layer.waited_seconds == 5.0


def test_given_a_wait_that_ends_exactly_at_the_total_limit_when_waiting_then_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS", "10")
    reload_settings()
    clock = FakeTime()
    monkeypatch.setattr(budget_module, "time", clock)
    LayeredBudget("acme", [ScriptedLayer(Scripted(4.0, 4.0, 6.0, None))], sleep=clock.sleep).acquire_call(request("x"))
    assert clock.slept == [4.0, 6.0]


class Recording(Scripted):
    def __init__(self, *waits: Optional[float]) -> None:
        super().__init__(*waits)
        self.asked: List[Any] = []

    def try_acquire(self, request: Any, weight: int) -> None:
        self.asked.append((request, weight))
        super().try_acquire(request, weight)


def test_given_a_call_when_a_layer_is_asked_then_its_policy_is_asked_about_that_request_each_time(waits: List[float]) -> None:
    policy = Recording(1.0, None)
    call = request("x")
    LayeredBudget("acme", [ScriptedLayer(policy)]).acquire_call(call)
    assert policy.asked == [(call, 1), (call, 1)]
