"""thousandeyes_test_usage: one record per test in the period, from `/usage?expand=test`, or from the HAL-paged
`/usage/units/tests` when the server did not expand the tests."""

from __future__ import annotations

from typing import Any, List
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock

from unit_tests.helpers import error_messages, log_lines, read_streams, records, template
from unit_tests.thousandeyes_fixtures import (
    MONTH_START,
    TEST_USAGE,
    TESTS_URL,
    USAGE,
    USAGE_URL,
    mock_test_pages,
    mock_usage,
    now_and_header,
    requests_to,
    te_config,
    usage_test_item,
    usage_without_tests,
)

FALLBACK_WARNING = (
    "thousandeyes_test_usage: GET /usage did not expand the tests; reading them from GET /usage/units/tests, which serves "
    "usage-based-pricing organizations and counts enterprise-agent units per account group running a test"
)
EXPECTED = [
    {
        "monthStart": MONTH_START,
        "aid": "315",
        "accountGroupName": "Documentation",
        "testId": "1158",
        "testName": "https://app.thousandeyes.com",
        "testType": "Web - Page Load",
        "cloudUnitsUsed": 140540,
        "cloudUnitsProjected": 340674,
        "is_final": False,
    },
    {
        "monthStart": MONTH_START,
        "aid": "315",
        "accountGroupName": "Documentation",
        "testId": "1161",
        "testName": "api.thousandeyes.com",
        "testType": "Network - Agent to Server",
        "cloudUnitsUsed": 8359949,
        "cloudUnitsProjected": 20653138,
        "is_final": False,
    },
    {
        # a brand-new test: no projection yet (the serialised record leaves the null out)
        "monthStart": MONTH_START,
        "aid": "7625",
        "accountGroupName": "Support",
        "testId": "2290",
        "testName": "support-dns",
        "testType": "DNS - Server",
        "cloudUnitsUsed": 0,
        "is_final": False,
    },
]


def without_observed_at(output: Any) -> List[dict]:
    return [{key: value for key, value in record.items() if key != "observed_at"} for record in records(output, TEST_USAGE)]


def fallback_warnings(output: Any) -> List[str]:
    return [line for line in log_lines(output, "WARN") if "did not expand" in line]


def test_given_expanded_tests_when_synced_then_one_record_per_test_with_the_period_start_and_no_other_request() -> None:
    observed, date = now_and_header()
    with requests_mock.Mocker() as mock:
        mock_usage(mock, headers={"Date": date})
        output = read_streams(te_config(), [TEST_USAGE])

    assert records(output, TEST_USAGE) == [{**record, "observed_at": observed} for record in EXPECTED]
    assert requests_to(mock, TESTS_URL) == []
    assert fallback_warnings(output) == []


def test_given_numeric_ids_when_synced_then_they_become_strings() -> None:
    body = template("thousandeyes", "usage")
    for test in body["usage"]["tests"]:
        test["aid"], test["testId"] = int(test["aid"]), int(test["testId"])
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_streams(te_config(), [TEST_USAGE])

    assert [(record["aid"], record["testId"]) for record in records(output, TEST_USAGE)] == [("315", "1158"), ("315", "1161"), ("7625", "2290")]


@pytest.mark.parametrize(
    "missing, field",
    [
        pytest.param({"aid": ...}, "aid", id="no aid"),
        pytest.param({"aid": None}, "aid", id="null aid"),
        pytest.param({"testId": ...}, "testId", id="no testId"),
        pytest.param({"testId": None}, "testId", id="null testId"),
    ],
)
def test_given_a_test_without_an_account_group_or_id_when_synced_then_it_is_skipped_with_a_warning(missing: dict, field: str) -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["tests"][0] = usage_test_item(**missing)
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_streams(te_config(), [TEST_USAGE])

    assert [(record["aid"], record["testId"]) for record in records(output, TEST_USAGE)] == [("315", "1161"), ("7625", "2290")]
    assert [line for line in log_lines(output, "WARN") if "skipped" in line] == [
        f"thousandeyes: thousandeyes_test_usage: skipped 1 record(s) whose {field} (a primary-key or cursor field) the API sent "
        "as null or left out: such a record cannot be deduplicated or checkpointed"
    ]
    assert error_messages(output) == []


def test_given_a_test_entry_that_is_not_an_object_when_synced_then_the_stream_fails_saying_so() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["tests"].append("2291")
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_streams(te_config(), [TEST_USAGE], expect_failure=True)

    assert error_messages(output)[0] == "thousandeyes: a test usage entry is not an object"


def test_given_an_empty_tests_array_when_synced_then_there_are_no_records_and_no_paged_requests() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["tests"] = []
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_streams(te_config(), [TEST_USAGE])

    assert records(output, TEST_USAGE) == []
    assert requests_to(mock, TESTS_URL) == []
    assert fallback_warnings(output) == []


# ----- the fallback: /usage/units/tests ----------------------------------------------------------------------


def test_given_a_server_that_ignores_expand_when_synced_then_the_paged_tests_endpoint_is_followed_to_the_end_with_a_warning() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock_test_pages(mock)
        output = read_streams(te_config(account_group_id="315"), [USAGE, TEST_USAGE])

    first, second = requests_to(mock, TESTS_URL)
    assert without_observed_at(output) == EXPECTED
    assert parse_qs(urlsplit(first.url).query) == {"aid": ["315"]}, "no dates: the current billing cycle"
    assert second.url == "https://api.thousandeyes.com/v7/usage/units/tests?cursor=MjpmOTUxNjUzZg", "the next link as given"
    assert len(requests_to(mock, USAGE_URL)) == 1
    assert fallback_warnings(output) == [FALLBACK_WARNING]
    assert len(records(output, USAGE)) == 1


def test_given_tests_sent_as_null_when_synced_then_they_are_read_from_the_paged_endpoint_too() -> None:
    body = usage_without_tests()
    body["usage"]["tests"] = None
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        mock_test_pages(mock)
        output = read_streams(te_config(), [TEST_USAGE])

    assert without_observed_at(output) == EXPECTED
    assert fallback_warnings(output) == [FALLBACK_WARNING]


def test_given_units_tests_refused_with_403_when_synced_then_the_error_says_it_serves_usage_based_pricing_only() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock.get(TESTS_URL, status_code=403, json={**template("thousandeyes", "forbidden"), "instance": "/v7/usage/units/tests"})
        output = read_streams(te_config(), [USAGE, TEST_USAGE], expect_failure=True)

    assert error_messages(output)[0] == (
        "thousandeyes: GET /usage/units/tests was refused (HTTP 403): that endpoint serves only organizations on usage-based "
        "pricing, and this one's GET /usage did not expand its tests (Forbidden: Insufficient permissions to query endpoint)"
    )
    assert len(records(output, USAGE)) == 1, "the usage stream is not affected"
    assert len(requests_to(mock, TESTS_URL)) == 1


@pytest.mark.parametrize(
    "page, message",
    [
        pytest.param({"breakdowns": {"1158": {}}}, "thousandeyes: GET /usage/units/tests answered breakdowns that are not a list", id="breakdowns an object"),
        pytest.param([], f"thousandeyes: GET {TESTS_URL} answered a list, not an object with breakdowns", id="a list"),
        pytest.param({"breakdowns": ["1158"]}, "thousandeyes: a test usage entry is not an object", id="an entry that is not an object"),
    ],
)
def test_given_a_units_page_of_the_wrong_shape_when_synced_then_the_stream_fails_saying_so(page: Any, message: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock.get(TESTS_URL, json=page)
        output = read_streams(te_config(), [TEST_USAGE], expect_failure=True)

    assert error_messages(output)[0] == message


def test_given_a_units_page_without_breakdowns_when_synced_then_it_has_no_tests() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock.get(TESTS_URL, json={"_links": {"self": {"href": TESTS_URL}}})
        output = read_streams(te_config(), [TEST_USAGE])

    assert records(output, TEST_USAGE) == []
    assert error_messages(output) == []


def test_given_a_next_link_to_another_host_when_paging_then_it_is_not_followed() -> None:
    page = template("thousandeyes", "tests_page_1")
    page["_links"]["next"]["href"] = "https://collector.example.net/v7/usage/units/tests?cursor=x"
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock.get(TESTS_URL, json=page)
        elsewhere = mock.get("https://collector.example.net/v7/usage/units/tests", json=template("thousandeyes", "tests_page_2"))
        output = read_streams(te_config(), [TEST_USAGE], expect_failure=True)

    assert not elsewhere.called
    assert "link to https://collector.example.net, which is not this vendor's configured host: not followed" in error_messages(output)[0]
