"""The ThousandEyes plugin as a whole: its config section and check, what its errors say (OAuth 401, the
permission behind a 403, problem details), and the organization's rate budget read from its headers."""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List

import pytest
import requests_mock
from airbyte_cdk.models import FailureType, Status

from source_usage.config import UsageConfig
from source_usage.framework.errors import ConfigError
from source_usage.source import SourceUsage
from unit_tests.helpers import error_messages, log_lines, read_streams, records, template
from unit_tests.thousandeyes_fixtures import (  # noqa: F401  (budget_clock is a fixture)
    BOTH,
    TEST_USAGE,
    TESTS_URL,
    TOKEN,
    USAGE,
    USAGE_URL,
    BudgetClock,
    budget_clock,
    mock_test_pages,
    mock_usage,
    rate_headers,
    requests_to,
    te_config,
    usage_without_tests,
)

PERMISSION = 'the token\'s user lacks the permission "View organization usage" (called "View Billing" in the usage SDK\'s docs)'


def failure_types(output: Any) -> List[FailureType]:
    return [message.trace.error.failure_type for message in output.errors]


# ----- config and check ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, problem",
    [
        pytest.param({}, "thousandeyes.bearer_token is required", id="no token"),
        pytest.param({"bearer_token": "abc"}, "thousandeyes.bearer_token is too short to be a real credential (fewer than 8 characters)", id="short token"),
        pytest.param({"bearer_token": TOKEN, "base_url": "api.thousandeyes.com"}, "thousandeyes.base_url must be an http:// or https:// URL (got 'api.thousandeyes.com')", id="no scheme"),
    ],
)
def test_given_an_invalid_thousandeyes_section_when_the_config_is_parsed_then_the_error_names_the_field(section: Dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as invalid:
        UsageConfig.parse({"thousandeyes": section})

    assert invalid.value.message == f"Invalid config: {problem}"


def test_given_a_base_url_without_the_version_when_synced_then_v7_is_added() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        read_streams(te_config(base_url="https://api.thousandeyes.com"), [USAGE])

    assert [request.url for request in mock.request_history] == [f"{USAGE_URL}?expand=test"]


def test_given_a_working_token_when_checked_then_one_usage_request_is_sent() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        status = SourceUsage().check(logging.getLogger("airbyte"), te_config(account_group_id="315"))

    assert status.status == Status.SUCCEEDED
    assert [request.url for request in mock.request_history] == [f"{USAGE_URL}?aid=315&expand=test"]


def test_given_a_rejected_token_when_checked_then_the_check_fails_with_the_reason() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=401, json=template("thousandeyes", "unauthorized"))
        status = SourceUsage().check(logging.getLogger("airbyte"), te_config())

    assert status.status == Status.FAILED
    assert status.message == "thousandeyes: the bearer token was rejected (HTTP 401)"
    assert len(mock.request_history) == 1


# ----- errors ------------------------------------------------------------------------------------------------


def test_given_an_oauth_401_body_when_synced_then_both_streams_fail_with_one_config_error_and_one_request() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=401, json=template("thousandeyes", "unauthorized"), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        output = read_streams(te_config(), BOTH, expect_failure=True)

    assert error_messages(output)[:2] == ["thousandeyes: the bearer token was rejected (HTTP 401)"] * 2
    assert failure_types(output)[0] == FailureType.config_error
    assert len(mock.request_history) == 1, "not retried"


def test_given_an_oauth_error_body_on_another_status_when_synced_then_its_error_and_description_are_quoted() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=400, json={"error": "invalid_request", "error_description": "Malformed aid parameter"})
        output = read_streams(te_config(), [USAGE], expect_failure=True)

    assert error_messages(output)[0] == f"thousandeyes: GET {USAGE_URL} was refused with HTTP 400: invalid_request: Malformed aid parameter"


def test_given_a_user_without_the_usage_permission_when_synced_then_the_error_names_the_permission_and_the_problem() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=403, json=template("thousandeyes", "forbidden"), headers={"Content-Type": "application/problem+json"})
        output = read_streams(te_config(), [USAGE], expect_failure=True)

    assert error_messages(output)[0] == f"thousandeyes: {PERMISSION} (HTTP 403: Forbidden: Insufficient permissions to query endpoint)"
    assert failure_types(output)[0] == FailureType.config_error


def test_given_an_account_group_the_user_is_not_assigned_to_when_synced_then_the_error_names_it() -> None:
    problem = {**template("thousandeyes", "forbidden"), "detail": "User is not assigned to the account group with ID 99"}
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=403, json=problem)
        output = read_streams(te_config(account_group_id="99"), [USAGE], expect_failure=True)

    assert error_messages(output)[0] == (
        f"thousandeyes: {PERMISSION} or is not assigned to account group 99 "
        "(HTTP 403: Forbidden: User is not assigned to the account group with ID 99)"
    )


def test_given_a_problem_json_400_when_synced_then_its_title_and_detail_are_surfaced() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=400, json=template("thousandeyes", "bad_request"))
        output = read_streams(te_config(), [USAGE], expect_failure=True)

    assert error_messages(output)[0] == f"thousandeyes: GET {USAGE_URL} was refused with HTTP 400: Bad Request: The request has invalid parameters"
    assert failure_types(output)[0] == FailureType.config_error


# ----- the organization's rate budget ------------------------------------------------------------------


def test_given_no_requests_left_in_the_window_when_the_next_request_is_due_then_it_waits_for_the_reset(budget_clock: BudgetClock) -> None:
    reset = int(time.time()) + 30
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests(), headers=rate_headers(0, reset))
        mock_test_pages(mock)
        started = time.time()
        output = read_streams(te_config(), BOTH)
        finished = time.time()

    assert len(records(output, TEST_USAGE)) == 3
    assert len(requests_to(mock, TESTS_URL)) == 2, "slowed down instead of refused: no 429, no retry"
    [wait] = budget_clock.waits
    # until the announced reset, from the moment (during the read) the budget was asked
    assert reset - finished - 0.01 <= wait <= reset - started + 0.01, (wait, reset - finished, reset - started)


def test_given_requests_left_in_the_window_when_the_next_request_is_due_then_it_does_not_wait(budget_clock: BudgetClock) -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests(), headers=rate_headers(2, int(time.time()) + 30))
        mock_test_pages(mock, [{"json": template("thousandeyes", "tests_page_1"), "headers": rate_headers(1, int(time.time()) + 30)}, {"json": template("thousandeyes", "tests_page_2")}])
        output = read_streams(te_config(), BOTH)

    assert len(records(output, TEST_USAGE)) == 3
    assert budget_clock.waits == []


def test_given_a_429_without_retry_after_when_synced_then_it_waits_until_the_reset_header_and_asks_once_more(budget_clock: BudgetClock) -> None:
    reset = int(time.time()) + 30
    with requests_mock.Mocker() as mock:
        mock.get(
            USAGE_URL,
            [
                {"status_code": 429, "json": template("thousandeyes", "rate_limited"), "headers": rate_headers(0, reset)},
                {"json": template("thousandeyes", "usage")},
            ],
        )
        started = time.time()
        output = read_streams(te_config(), BOTH)
        finished = time.time()

    assert len(records(output, USAGE)) == 1
    assert len(mock.request_history) == 2, "one 429, then the request again after the reset"
    # until the announced reset, from the moment (during the read) the 429 arrived, plus the 0.25 s margin
    waited = sum(budget_clock.waits)
    assert reset - finished + 0.25 - 0.01 <= waited <= reset - started + 0.25 + 0.01, (waited, reset - finished, reset - started)


def test_given_a_reset_115_days_away_when_the_next_request_is_due_then_the_stream_fails_at_once_naming_the_vendor(budget_clock: BudgetClock) -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests(), headers=rate_headers(0, int(time.time()) + 115 * 86400))
        mock_test_pages(mock)
        output = read_streams(te_config(), BOTH, expect_failure=True)

    [failure, *_] = error_messages(output)
    assert failure.startswith(
        f"thousandeyes: GET {TESTS_URL} the organization (240 requests/minute) budget is spent: the vendor asks to wait "
        "115.0 days before the next request, longer than the 120 s allowed (SOURCE_USAGE_MAX_WAIT_SECONDS); try again after 2"
    )
    assert requests_to(mock, TESTS_URL) == []
    assert budget_clock.waits == []
    assert len(records(output, USAGE)) == 1


def test_given_a_429_whose_reset_is_115_days_away_when_synced_then_it_fails_at_once_naming_the_vendor(budget_clock: BudgetClock) -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=429, json=template("thousandeyes", "rate_limited"), headers=rate_headers(0, int(time.time()) + 115 * 86400))
        output = read_streams(te_config(), BOTH, expect_failure=True)

    assert error_messages(output)[0].startswith(
        f"thousandeyes: GET {USAGE_URL} HTTP 429 (rate limited): the vendor asks to wait 115.0 days before the next request"
    )
    assert len(mock.request_history) == 1
    assert budget_clock.waits == []


@pytest.mark.parametrize(
    "remaining, reset",
    [
        pytest.param("many", "soon", id="words"),
        pytest.param("-1", "-5", id="negative"),
        pytest.param("NaN", "1e400", id="not a number and infinite"),
        pytest.param("", "", id="empty"),
        pytest.param("2.5e", "0x1F", id="almost numbers"),
    ],
)
def test_given_rate_limit_headers_that_are_not_usable_numbers_when_synced_then_they_are_ignored_without_a_traceback(
    budget_clock: BudgetClock, remaining: str, reset: str
) -> None:
    garbled = {"X-Organization-Rate-Limit-Remaining": remaining, "X-Organization-Rate-Limit-Reset": reset}
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests(), headers=garbled)
        mock_test_pages(mock, [{"json": template("thousandeyes", "tests_page_1"), "headers": garbled}, {"json": template("thousandeyes", "tests_page_2")}])
        output = read_streams(te_config(), BOTH)

    assert len(records(output, TEST_USAGE)) == 3
    assert error_messages(output) == []
    assert budget_clock.waits == []
    assert not [line for line in log_lines(output) if "Traceback" in line]


def test_given_no_requests_left_and_an_unusable_reset_when_the_next_request_is_due_then_it_waits_at_most_the_one_minute_window(
    budget_clock: BudgetClock,
) -> None:
    spent = {"X-Organization-Rate-Limit-Remaining": "0", "X-Organization-Rate-Limit-Reset": "soon"}
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests(), headers=spent)
        mock_test_pages(mock)
        output = read_streams(te_config(), BOTH)

    assert len(records(output, TEST_USAGE)) == 3
    [wait] = budget_clock.waits
    assert 0 < wait <= 60


def test_given_a_reset_past_the_year_9999_when_the_next_request_is_due_then_it_fails_at_once_without_a_traceback(budget_clock: BudgetClock) -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests(), headers=rate_headers(0, "99999999999999999999"))
        mock_test_pages(mock)
        output = read_streams(te_config(), BOTH, expect_failure=True)

    assert error_messages(output)[0].startswith(f"thousandeyes: GET {TESTS_URL} the organization (240 requests/minute) budget is spent")
    assert "longer than the 120 s allowed (SOURCE_USAGE_MAX_WAIT_SECONDS)" in error_messages(output)[0]
    assert requests_to(mock, TESTS_URL) == []
    assert output.errors[0].trace.error.stack_trace is None
