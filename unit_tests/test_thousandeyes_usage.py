"""thousandeyes_usage: one record per billing period from the sync's one `GET /usage?expand=test`."""

from __future__ import annotations

import time
from typing import List
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from airbyte_cdk.models import FailureType, SyncMode

from source_usage.framework.errors import UsageError
from source_usage.source import CHECK_RETRY_POLICY
from source_usage.vendors import thousandeyes
from unit_tests.helpers import read_stream, template
from unit_tests.thousandeyes_fixtures import (
    START,
    TOKEN,
    USAGE_URL,
    FakeClock,
    mock_usage,
    requests_to,
    te_config,
    te_streams,
)

STREAM = "thousandeyes_usage"
PERMISSION = 'the token\'s user lacks the permission to view usage (ThousandEyes needs "View organization usage")'


def read_failure(**response: object) -> UsageError:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, **response)
        with pytest.raises(UsageError) as failure:
            read_stream(te_streams()[STREAM])
    return failure.value


def test_given_a_usage_document_when_read_then_one_record_has_the_counters_the_quota_and_the_period_bounds() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        output = read_stream(te_streams()[STREAM])

    [record] = output.records
    assert record == {
        "monthStart": "2026-11-05T08:00:00Z",
        "monthEnd": "2026-12-05T08:00:00Z",
        "quota": template("thousandeyes", "usage")["usage"]["quota"],
        "cloudUnitsUsed": 8500489,
        "cloudUnitsProjected": 20993812,
        "cloudUnitsNextBillingPeriod": 25123456,
        "enterpriseUnitsUsed": 79640902,
        "enterpriseUnitsProjected": 108016317,
        "enterpriseUnitsNextBillingPeriod": 0,
        "connectedDevicesUnitsUsed": 1200,
        "connectedDevicesUnitsProjected": 3600,
        "connectedDevicesUnitsNextBillingPeriod": 3600,
        "endpointAgentsUsed": 42,
        "endpointAgentsEssentialsUsed": 5,
        "endpointAgentsEmbeddedUsed": 5,
        "enterpriseAgentsUsed": 58,
    }


def test_given_a_counter_the_schema_does_not_know_when_read_then_it_is_kept() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["deviceAgentsUsed"] = 7
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        [record] = read_stream(te_streams()[STREAM]).records

    assert record["deviceAgentsUsed"] == 7
    assert "tests" not in record and "enterpriseAgentUnits" not in record


def test_given_an_account_group_when_read_then_aid_and_expand_are_sent_with_the_bearer_token() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        read_stream(te_streams(te_config(account_group_id="1234"))[STREAM])
        [request] = requests_to(mock, USAGE_URL)

    assert parse_qs(urlsplit(request.url).query) == {"aid": ["1234"], "expand": ["test"]}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "application/hal+json" in request.headers["Accept"]


def test_given_no_account_group_when_read_then_only_expand_is_sent() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        read_stream(te_streams()[STREAM])
        [request] = requests_to(mock, USAGE_URL)

    assert parse_qs(urlsplit(request.url).query) == {"expand": ["test"]}


def test_given_both_streams_when_read_then_usage_is_requested_once() -> None:
    streams = te_streams()
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        usage = read_stream(streams[STREAM])
        tests = read_stream(streams["thousandeyes_test_usage"])

    assert len(usage.records) == 1 and len(tests.records) == 3
    assert len(mock.request_history) == 1


def test_given_a_sync_when_read_incrementally_then_state_holds_the_period_start() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        output = read_stream(te_streams()[STREAM], SyncMode.incremental)

    assert output.final_state == {"monthStart": "2026-11-05T08:00:00Z"}


def test_given_the_current_period_was_synced_when_read_incrementally_then_it_is_emitted_again_with_new_counts() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["cloudUnitsUsed"] = 9000000
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_stream(te_streams()[STREAM], SyncMode.incremental, {"monthStart": "2026-11-05T08:00:00Z"})

    assert [(record["monthStart"], record["cloudUnitsUsed"]) for record in output.records] == [("2026-11-05T08:00:00Z", 9000000)]
    assert output.final_state == {"monthStart": "2026-11-05T08:00:00Z"}


def test_given_a_rejected_token_when_read_then_a_config_error_says_so() -> None:
    failure = read_failure(status_code=401, json=template("thousandeyes", "unauthorized"))

    assert failure.message == "thousandeyes: the bearer token was rejected (HTTP 401)"
    assert failure.failure_type == FailureType.config_error


def test_given_a_user_without_the_usage_permission_when_read_then_the_error_names_the_permission_and_the_problem() -> None:
    failure = read_failure(status_code=403, json=template("thousandeyes", "forbidden"), headers={"Content-Type": "application/problem+json"})

    assert failure.message == f"thousandeyes: {PERMISSION} (HTTP 403: Forbidden: Insufficient permissions to query endpoint)"
    assert failure.failure_type == FailureType.config_error


def test_given_an_account_group_the_user_is_not_assigned_to_when_read_then_the_error_names_it() -> None:
    problem = {**template("thousandeyes", "forbidden"), "detail": "User is not assigned to the account group with ID 99"}
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=403, json=problem)
        with pytest.raises(UsageError) as failure:
            read_stream(te_streams(te_config(account_group_id="99"))[STREAM])

    assert failure.value.message == (
        f"thousandeyes: {PERMISSION} or is not assigned to account group 99 "
        "(HTTP 403: Forbidden: User is not assigned to the account group with ID 99)"
    )


def test_given_a_problem_json_400_when_read_then_its_title_detail_and_field_errors_are_surfaced() -> None:
    failure = read_failure(status_code=400, json=template("thousandeyes", "bad_request"))

    assert failure.message == (
        f"thousandeyes: GET {USAGE_URL} was refused with HTTP 400: Bad Request: The request has invalid parameters "
        "(Invalid value 'tests' (error INVALID_PARAMETER))"
    )
    assert failure.failure_type == FailureType.config_error


def test_given_an_answer_without_a_usage_object_when_read_then_the_error_says_so() -> None:
    failure = read_failure(json={"_links": {}})

    assert failure.message == "thousandeyes: GET /usage answered without a `usage` object"


def test_given_a_429_without_retry_after_when_read_then_it_waits_until_the_reset_header(
    monkeypatch: pytest.MonkeyPatch, waits: List[float]
) -> None:
    FakeClock(waits).install(monkeypatch)
    reset = int(time.time()) + 30
    limited = {"X-Organization-Rate-Limit-Limit": "240", "X-Organization-Rate-Limit-Remaining": "0", "X-Organization-Rate-Limit-Reset": str(reset)}
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [
                {"status_code": 429, "json": template("thousandeyes", "rate_limited"), "headers": limited},
                {"json": template("thousandeyes", "usage")},
            ],
        )
        started = time.time()
        output = read_stream(te_streams()[STREAM])

    assert len(output.records) == 1
    assert len(mock.request_history) == 2, "one 429, then the request again after the reset; no blind retries"
    [wait] = waits
    assert reset - started <= wait <= reset - started + 0.5, "waits until the announced reset, plus a small margin"


def test_given_a_failed_usage_request_when_the_test_stream_reads_then_it_fails_the_same_way_without_asking_again() -> None:
    streams = te_streams()
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=403, json=template("thousandeyes", "forbidden"))
        with pytest.raises(UsageError) as usage_failure:
            read_stream(streams[STREAM])
        with pytest.raises(UsageError) as tests_failure:
            read_stream(streams["thousandeyes_test_usage"])

    assert tests_failure.value.message == usage_failure.value.message
    assert len(mock.request_history) == 1


def test_given_a_working_token_when_checked_then_one_usage_request_is_sent() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        thousandeyes.check(te_config(), START, CHECK_RETRY_POLICY)

    assert len(mock.request_history) == 1


def test_given_a_rejected_token_when_checked_then_the_check_fails_with_the_reason() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=401, json=template("thousandeyes", "unauthorized"))
        with pytest.raises(UsageError, match=r"thousandeyes: the bearer token was rejected \(HTTP 401\)"):
            thousandeyes.check(te_config(), START, CHECK_RETRY_POLICY)
