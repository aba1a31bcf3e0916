"""The emnify plugin as a whole: its config section, its check, its client-side budgets, the monthly API quota
(a 429 that says it is spent, and the summary of what a sync spent), and shards."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

import pytest
import requests
import requests_mock
from airbyte_cdk.models import FailureType, Status

from source_usage.config import UsageConfig
from source_usage.framework.errors import ConfigError
from source_usage.source import SourceUsage
from source_usage.vendors.emnify import budget_layers
from unit_tests.emnify_fixtures import (  # noqa: F401  (fixtures: fresh_process_budgets is autouse)
    APPLICATION_TOKEN,
    BASE,
    DAILY,
    ENDPOINTS,
    LAST_HOUR,
    MONTHLY,
    emnify_config,
    endpoints,
    mock_api,
    requests_to,
    stats_endpoint_ids,
    stats_requests,
    daily_requests,
    fresh_process_budgets,
)
from unit_tests.helpers import error_messages, log_lines, read_streams, records, template

QUOTA_SPENT = {"error_code": 1105, "error_token": "TooManyRequests", "message": "Monthly request quota exceeded"}
QUOTA_LINE = (
    "emnify: the organisation's monthly API quota (10,000,000 calls) is exhausted; emnify refuses every call until the 1st of "
    "next month (HTTP 429: Monthly request quota exceeded (error 1105))"
)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def quota_lines(output: Any) -> List[str]:
    return [line for line in log_lines(output) if line.startswith("emnify: this sync")]


# ----- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, problem",
    [
        pytest.param({}, "emnify.application_token is required", id="no token"),
        pytest.param({"application_token": "short"}, "emnify.application_token is too short to be a real credential (fewer than 8 characters)", id="short token"),
        pytest.param({"application_token": APPLICATION_TOKEN, "daily_lookback_days": 32}, "emnify.daily_lookback_days must be at most 31 (got 32)", id="lookback 32"),
        pytest.param({"application_token": APPLICATION_TOKEN, "daily_lookback_days": -1}, "emnify.daily_lookback_days must be at least 0 (got -1)", id="lookback -1"),
        pytest.param({"application_token": APPLICATION_TOKEN, "daily_lookback_days": "2"}, "emnify.daily_lookback_days must be of type integer (got '2')", id="lookback as text"),
        pytest.param({"application_token": APPLICATION_TOKEN, "base_url": "ftp://cdn.emnify.net"}, "emnify.base_url must be an http:// or https:// URL (got 'ftp://cdn.emnify.net')", id="ftp base URL"),
    ],
)
def test_given_an_invalid_emnify_section_when_the_config_is_parsed_then_the_error_names_the_field(section: Dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as invalid:
        UsageConfig.parse({"emnify": section})

    assert invalid.value.message == f"Invalid config: {problem}"
    assert APPLICATION_TOKEN not in invalid.value.message


@pytest.mark.parametrize(
    "base_url, login_url",
    [
        pytest.param(None, "https://cdn.emnify.net/api/v1/authenticate", id="default"),
        pytest.param("https://cdn.emnify.net", "https://cdn.emnify.net/api/v1/authenticate", id="host only: the version path is added"),
        pytest.param("http://127.0.0.1:8000/emnify/", "http://127.0.0.1:8000/emnify/api/v1/authenticate", id="a proxy prefix"),
        pytest.param("https://cdn.emnify.net/api/v1/", "https://cdn.emnify.net/api/v1/authenticate", id="with the version path"),
    ],
)
def test_given_a_base_url_when_synced_then_the_requests_go_under_its_api_v1(base_url: Optional[str], login_url: str) -> None:
    config = emnify_config()
    if base_url is None:
        del config["emnify"]["base_url"]
    else:
        config["emnify"]["base_url"] = base_url
    root = login_url[: -len("/authenticate")]
    with requests_mock.Mocker() as mock:
        mock.post(login_url, json={"auth_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"})
        mock.get(f"{root}/endpoint", json=endpoints(166))
        output = read_streams(config, [ENDPOINTS])

    assert [request.url for request in mock.request_history] == [login_url, f"{root}/endpoint?page=1&per_page=1000"]
    assert len(records(output, ENDPOINTS)) == 1


# ----- check --------------------------------------------------------------------------------------------------


def test_given_a_working_application_token_when_checked_then_it_logs_in_and_reads_the_first_page_of_endpoints() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        status = SourceUsage().check(logging.getLogger("airbyte"), emnify_config())

    assert status.status == Status.SUCCEEDED
    assert [(request.method, request.url) for request in mock.request_history] == [
        ("POST", f"{BASE}/authenticate"),
        ("GET", f"{BASE}/endpoint?page=1&per_page=1000"),
    ]


def test_given_a_rejected_application_token_when_checked_then_the_check_fails_saying_so() -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/authenticate", status_code=401, json=template("emnify", "invalid_credentials"))
        status = SourceUsage().check(logging.getLogger("airbyte"), emnify_config())

    assert status.status == Status.FAILED
    assert status.message == "emnify: the application token was rejected (HTTP 401)"
    assert len(mock.request_history) == 1


# ----- client-side budgets ---------------------------------------------------------------------------------


def prepared(method: str, url: str) -> requests.PreparedRequest:
    return requests.Request(method, url).prepare()


@pytest.mark.parametrize(
    "method, url, layers",
    [
        pytest.param(
            "POST", f"{BASE}/authenticate",
            ["authentication (100 per 5 minutes)", "per-IP authentication (100 per 5 minutes)", "per-IP (2,000 requests per 5 minutes)"],
            id="login",
        ),
        pytest.param("GET", f"{BASE}/endpoint?page=2&per_page=1000", ["endpoint list (10 requests/s)", "per-IP (2,000 requests per 5 minutes)"], id="listing"),
        pytest.param("GET", f"{BASE}/endpoint/166/stats", ["statistics (100 requests/s)", "per-IP (2,000 requests per 5 minutes)"], id="snapshot"),
        pytest.param(
            "GET", f"{BASE}/endpoint/166/stats/daily?start_date=2026-11-01&end_date=2026-11-30",
            ["statistics (100 requests/s)", "per-IP (2,000 requests per 5 minutes)"],
            id="daily series",
        ),
        pytest.param("GET", f"{BASE}/endpoint/166/stats/", ["statistics (100 requests/s)", "per-IP (2,000 requests per 5 minutes)"], id="trailing slash"),
        pytest.param("GET", f"{BASE}/endpoint/166", ["per-IP (2,000 requests per 5 minutes)"], id="another path: the per-IP limit only"),
    ],
)
def test_given_a_request_when_budgeted_then_it_spends_from_these_layers(method: str, url: str, layers: List[str]) -> None:
    matching = [layer.name for layer in budget_layers("cdn.emnify.net:443") if layer.policy_for(prepared(method, url)) is not None]

    assert matching == layers


def test_given_two_connections_to_one_host_when_budgeted_then_they_share_the_per_ip_layers_but_not_the_per_path_ones() -> None:
    first, second, elsewhere = budget_layers("cdn.emnify.net:443"), budget_layers("cdn.emnify.net:443"), budget_layers("127.0.0.1:8443")

    shared = [name for name, one, two in zip([layer.name for layer in first], first, second) if one is two]
    assert shared == ["per-IP authentication (100 per 5 minutes)", "per-IP (2,000 requests per 5 minutes)"]
    assert not any(one is other for one, other in zip(first, elsewhere)), "another host has limits of its own"


# ----- the monthly quota ----------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["Monthly request quota exceeded", "API quota exhausted until the 1st", "Limit for this month reached"])
def test_given_a_429_that_says_the_monthly_quota_is_spent_when_synced_then_the_stream_fails_at_once_in_one_line(
    message: str, waits: List[float]
) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=endpoints(166), snapshots={166: [{"status_code": 429, "json": {**QUOTA_SPENT, "message": message}}]})
        output = read_streams(emnify_config(), [MONTHLY], expect_failure=True)

    [line, *_] = error_messages(output)
    assert line == QUOTA_LINE.replace("Monthly request quota exceeded", message)
    assert "\n" not in line
    assert output.errors[0].trace.error.failure_type == FailureType.transient_error
    assert len(stats_requests(mock)) == 1, "no retries"
    assert waits == []


def test_given_the_quota_spent_when_the_listing_is_refused_then_the_endpoints_stream_fails_with_the_quota_line() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock.get(f"{BASE}/endpoint", status_code=429, json=QUOTA_SPENT)
        output = read_streams(emnify_config(), [ENDPOINTS], expect_failure=True)

    assert error_messages(output)[0] == QUOTA_LINE
    assert len(requests_to(mock, "GET", "/endpoint")) == 1


def test_given_the_quota_spent_when_several_emnify_streams_are_selected_then_the_others_fail_without_calling_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "1")
    with requests_mock.Mocker() as mock:
        mock_api(mock, snapshots={endpoint_id: [{"status_code": 429, "json": QUOTA_SPENT}] for endpoint_id in (166, 167, 170)})
        for endpoint_id in (166, 167, 170):
            mock.get(f"{BASE}/endpoint/{endpoint_id}/stats/daily", status_code=429, json=QUOTA_SPENT)
        output = read_streams(emnify_config(), [MONTHLY, LAST_HOUR, DAILY], expect_failure=True)

    assert error_messages(output)[:3] == [QUOTA_LINE] * 3
    assert len(stats_requests(mock)) + len(daily_requests(mock)) == 1, "the first quota answer is the last call"


def test_given_a_sync_without_an_earlier_one_in_the_state_when_it_ends_then_it_logs_the_calls_it_made() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY])

    assert quota_lines(output) == [
        "emnify: this sync made 5 API calls (0.000% of the 10,000,000 monthly quota); no earlier sync in the state tells how often it runs"
    ]


@pytest.mark.parametrize(
    "stream, ago, rate",
    [
        pytest.param(MONTHLY, timedelta(hours=6), "one sync every 6.0 hours (from the saved state) comes to about 600 calls a month", id="monthly state, 6 hours"),
        pytest.param(LAST_HOUR, timedelta(days=3), "one sync every 3.0 days (from the saved state) comes to about 50 calls a month", id="last-hour state, 3 days"),
    ],
)
def test_given_the_previous_sync_time_in_the_state_when_the_sync_ends_then_it_projects_the_calls_over_a_month(
    stream: str, ago: timedelta, rate: str
) -> None:
    previous = datetime.now(timezone.utc).replace(microsecond=0) - ago
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY, LAST_HOUR], state={stream: {"synced_at": iso(previous), "states": []}})

    assert quota_lines(output) == [f"emnify: this sync made 5 API calls (0.000% of the 10,000,000 monthly quota); {rate}"]


@pytest.mark.parametrize("synced_at", ["yesterday", "2026-13-45T00:00:00Z"])
def test_given_an_unreadable_previous_sync_time_when_the_sync_ends_then_no_projection_is_made(synced_at: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY], state={MONTHLY: {"synced_at": synced_at, "states": []}})

    assert quota_lines(output)[0].endswith("; no earlier sync in the state tells how often it runs")


@pytest.mark.parametrize(
    "quota, share, warned",
    [
        pytest.param(400, "1.250%", True, id="5 of 400 calls: 1.25%, above 1%"),
        pytest.param(500, "1.000%", False, id="5 of 500 calls: exactly 1%, not above"),
    ],
)
def test_given_a_sync_spending_more_than_one_percent_of_the_quota_when_it_ends_then_it_warns(
    monkeypatch: pytest.MonkeyPatch, quota: int, share: str, warned: bool
) -> None:
    # A unit test cannot make 100,001 calls: the quota is made smaller instead.
    monkeypatch.setattr("source_usage.vendors.emnify.MONTHLY_QUOTA", quota)
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY])

    warnings = [line for line in log_lines(output, "WARN") if line.startswith("emnify: this sync")]
    if warned:
        assert warnings == [
            "emnify: this sync alone spent 1.2% of the organisation's monthly API quota (5 of 400 calls); "
            "consider syncing less often or selecting fewer emnify streams"
        ]
    else:
        assert warnings == []
    assert quota_lines(output)[0].startswith(f"emnify: this sync made 5 API calls ({share} of the {quota} monthly quota)")


# ----- shards -----------------------------------------------------------------------------------------------


def test_given_two_shards_when_each_syncs_then_they_read_disjoint_endpoints_that_together_are_all_of_them() -> None:
    ids = list(range(101, 121))
    read_by: Dict[int, Dict[str, List[int]]] = {}
    for index in (0, 1):
        with requests_mock.Mocker() as mock:
            mock_api(mock, listed=endpoints(*ids))
            output = read_streams(emnify_config(shard={"index": index, "count": 2}), [MONTHLY, LAST_HOUR, DAILY])
        read_by[index] = {
            "stats": stats_endpoint_ids(stats_requests(mock)),
            "daily": sorted(int(request.path.split("/")[-3]) for request in daily_requests(mock)),
            "records": sorted({record["endpoint_id"] for record in records(output, MONTHLY)}),
        }

    first, second = read_by[0], read_by[1]
    assert first["stats"] and second["stats"], "both shards have work"
    assert not set(first["stats"]) & set(second["stats"])
    assert sorted(first["stats"] + second["stats"]) == ids
    assert first["records"] == first["stats"] and second["records"] == second["stats"]
    assert sorted(set(first["daily"])) == first["stats"] and sorted(set(second["daily"])) == second["stats"], "the daily series is sharded alike"


@pytest.mark.parametrize(
    "body, described",
    [
        ({"error_code": 1101, "message": "Invalid token", "errors": [{"message": "expired"}, "second", {"field": "x"}]}, "Invalid token; expired; second; {'field': 'x'} (error 1101)"),
        ({"message": "Invalid token"}, "Invalid token"),
        ({"errors": ["only details"], "error_code": 7}, "only details (error 7)"),
        ({"error_code": 1101}, None),
        ({"message": "", "errors": "not a list"}, None),
        (["not", "an", "object"], None),
    ],
)
def test_given_an_emnify_error_body_when_described_then_message_details_and_code_are_one_sentence(body: Any, described: Any) -> None:
    from source_usage.vendors.emnify import describe_error

    assert describe_error(body) == described
