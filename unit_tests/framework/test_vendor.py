"""VendorConnection: its URLs, its session's pool, its error handlers per endpoint, and how a rejection
(credentials refused, a quota spent) stops every further request of the sync."""

from __future__ import annotations

from typing import Any, List

import pytest
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ResponseAction

from source_usage.framework.budget import LayeredBudget, Unlimited
from source_usage.framework.endpoint import Endpoint
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import UsageError
from source_usage.framework.settings import reload_settings
from source_usage.framework.vendor import VendorConnection

BASE = "https://api.acme.example/v1"


def acme(**options: Any) -> VendorConnection:
    return VendorConnection("acme", options.pop("base_url", BASE), VendorErrors("acme", rejected={401: "the API key was rejected"}), **options)


@pytest.mark.parametrize("base", [BASE, BASE + "/", BASE + "//"])
def test_given_a_base_url_with_or_without_trailing_slashes_when_paths_are_joined_then_there_is_one_slash(base: str) -> None:
    connection = acme(base_url=base)

    assert connection.base_url == BASE
    assert connection.url("things") == f"{BASE}/things"
    assert connection.url("/things") == f"{BASE}/things"
    assert connection.url("//things/") == f"{BASE}/things/"


@pytest.mark.parametrize("max_workers, pool", [(4, 10), (5, 10), (8, 16)])
def test_given_a_number_of_workers_when_the_connection_is_made_then_its_pool_holds_two_connections_a_worker_and_at_least_ten(
    max_workers: int, pool: int
) -> None:
    adapter = acme(max_workers=max_workers).session.get_adapter(BASE)

    assert adapter._pool_maxsize == pool  # type: ignore[attr-defined]


def test_given_no_budget_layers_when_the_connection_is_made_then_its_budget_is_unlimited() -> None:
    assert isinstance(acme().session._api_budget, Unlimited)


def test_given_budget_layers_when_the_connection_is_made_then_its_budget_is_layered_under_the_vendors_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from source_usage.framework.budget import BudgetLayer

    layer = BudgetLayer("per host", lambda request: None)
    budget = acme(budget_layers=[layer]).session._api_budget

    assert isinstance(budget, LayeredBudget)
    assert (budget.vendor, budget.layers) == ("acme", [layer])
    monkeypatch.setenv("SOURCE_USAGE_CLIENT_RATE_BUDGETS", "false")
    reload_settings()
    assert isinstance(acme(budget_layers=[layer]).session._api_budget, Unlimited)


def test_given_the_retry_setting_when_the_connection_is_made_then_its_error_handler_retries_that_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_RETRIES", "2")
    reload_settings()

    assert acme().error_handler.max_retries == 2


def test_given_an_endpoint_when_its_handler_is_asked_twice_then_it_is_the_same_one_and_carries_the_endpoints_overrides() -> None:
    connection = acme(error_overrides={404: ResponseAction.IGNORE})
    plain = Endpoint("things", records=lambda body: body)
    special = Endpoint("others", records=lambda body: body, overrides={409: ResponseAction.IGNORE})

    assert connection.handler_for(plain) is connection.handler_for(plain)
    assert connection.handler_for(plain) is connection.error_handler  # no overrides of its own
    assert connection.handler_for(special) is connection.handler_for(special)
    assert connection.handler_for(special) is not connection.error_handler
    assert connection.handler_for(special)._overrides == {404: ResponseAction.IGNORE, 409: ResponseAction.IGNORE}
    assert connection.error_handler._overrides == {404: ResponseAction.IGNORE}


def test_given_rejected_credentials_when_a_request_is_refused_then_every_further_read_fails_with_the_same_message_unsent() -> None:
    connection = acme()
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/things", status_code=401, json={})
        with pytest.raises(UsageError) as first:
            connection.send("GET", "things")
        with pytest.raises(UsageError) as again:
            list(connection.records(Endpoint("things", records=lambda body: body), {}))

    assert mock.call_count == 1
    assert str(first.value) == "acme: the API key was rejected (HTTP 401)"
    assert str(again.value) == "acme: the API key was rejected (HTTP 401)"
    assert again.value.failure_type == FailureType.config_error


def test_given_a_refusal_when_another_follows_then_the_first_one_is_kept() -> None:
    connection = acme()
    connection.refuse_further("acme: the monthly quota is spent", FailureType.transient_error)
    connection.refuse_further("acme: something else", FailureType.config_error)

    with pytest.raises(UsageError) as refused:
        connection.raise_if_rejected()
    assert str(refused.value) == "acme: the monthly quota is spent"
    assert refused.value.failure_type == FailureType.transient_error
    assert connection.rejection is not None and connection.rejection.message == "acme: the monthly quota is spent"


def test_given_no_refusal_when_checked_then_nothing_is_raised() -> None:
    connection = acme()
    connection.raise_if_rejected()
    assert connection.rejection is None


def test_given_a_full_url_or_a_path_when_sent_then_the_path_is_joined_to_the_base_and_the_url_kept() -> None:
    connection = acme()
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/things", json={"a": 1})
        mock.get(f"{BASE}/next?page=2", json={"b": 2})
        first = connection.send("GET", "/things")
        second = connection.send("GET", f"{BASE}/next?page=2")

    seen: List[str] = [request.url for request in mock.request_history]
    assert seen == [f"{BASE}/things", f"{BASE}/next?page=2"]
    assert (first.json(), second.json()) == ({"a": 1}, {"b": 2})
    assert connection.requests_sent == 2


def test_given_a_status_an_override_retries_without_a_message_when_retries_run_out_then_the_failure_names_the_action(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_RETRIES", "1")
    reload_settings()
    connection = acme(error_overrides={418: ResponseAction.RETRY})
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/things", status_code=418, json={})
        with pytest.raises(UsageError) as failure:
            connection.send("GET", "things")

    assert str(failure.value) == f"acme: GET {BASE}/things failed after 2 attempts (last: ResponseAction.RETRY)"


def test_given_an_override_answering_an_action_the_client_has_no_use_for_when_sent_then_it_fails_as_a_system_error_naming_it() -> None:
    connection = acme(error_overrides={409: ResponseAction.RESET_PAGINATION})
    with requests_mock.Mocker() as mock:
        mock.get(f"{BASE}/things", status_code=409, json={})
        with pytest.raises(UsageError) as failure:
            connection.send("GET", "things")

    assert str(failure.value) == f"acme: GET {BASE}/things got an answer the connector cannot act on (ResponseAction.RESET_PAGINATION)"
    assert failure.value.failure_type == FailureType.system_error


def test_given_a_request_that_cannot_be_built_when_sent_then_a_config_error_quotes_why_cut_to_160_characters() -> None:
    connection = acme()
    with pytest.raises(UsageError) as failure:
        connection.send("GET", "things", headers={"X-Long": "v\n" + "x" * 300})

    text = str(failure.value)
    assert text.startswith(f"acme: the request for {BASE}/things could not be built (InvalidHeader: ")
    quoted = text[len(f"acme: the request for {BASE}/things could not be built (InvalidHeader: ") : -1]
    assert len(quoted) == 160 and quoted.endswith("...") and "xxx" in quoted
    assert failure.value.failure_type == FailureType.config_error


def test_given_a_base_url_and_paths_with_capital_xs_at_their_ends_when_joined_then_only_slashes_are_trimmed() -> None:
    connection = acme(base_url="http://proxy.local/acmeX/")

    assert connection.base_url == "http://proxy.local/acmeX"
    assert connection.url("/Xthings") == "http://proxy.local/acmeX/Xthings"
