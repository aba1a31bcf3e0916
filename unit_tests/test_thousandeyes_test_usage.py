"""thousandeyes_test_usage: one record per test in the period, from `/usage?expand=test` or the paged units endpoint."""

from __future__ import annotations

import time
from typing import List
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode

from unit_tests.helpers import read_stream, template
from unit_tests.thousandeyes_fixtures import (
    TESTS_URL,
    USAGE_URL,
    FakeClock,
    mock_test_pages,
    mock_usage,
    requests_to,
    te_config,
    te_streams,
    usage_without_tests,
)

STREAM = "thousandeyes_test_usage"
MONTH_START = "2026-11-05T08:00:00Z"
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
    },
    {
        "monthStart": MONTH_START,
        "aid": "7625",
        "accountGroupName": "Support",
        "testId": "2290",
        "testName": "support-dns",
        "testType": "DNS - Server",
        "cloudUnitsUsed": 0,
        "cloudUnitsProjected": None,
    },
]


def test_given_expanded_tests_when_read_then_one_record_per_test_with_the_period_start() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        output = read_stream(te_streams()[STREAM])

    assert output.records == EXPECTED
    assert not requests_to(mock, TESTS_URL), "the expanded tests need no other request"


def test_given_a_brand_new_test_without_projection_when_read_then_its_projection_is_null() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        records = read_stream(te_streams()[STREAM]).records

    new_test = next(record for record in records if record["testId"] == "2290")
    assert new_test["cloudUnitsProjected"] is None


def test_given_numeric_ids_when_read_then_they_become_strings() -> None:
    body = template("thousandeyes", "usage")
    for test in body["usage"]["tests"]:
        test["aid"], test["testId"] = int(test["aid"]), int(test["testId"])
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        records = read_stream(te_streams()[STREAM]).records

    assert [(record["aid"], record["testId"]) for record in records] == [("315", "1158"), ("315", "1161"), ("7625", "2290")]


def test_given_a_server_that_ignores_expand_when_read_then_the_paged_tests_endpoint_is_followed_to_the_end() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock_test_pages(mock)
        output = read_stream(te_streams(te_config(account_group_id="315"))[STREAM])
        first, second = requests_to(mock, TESTS_URL)

    assert output.records == EXPECTED
    assert parse_qs(urlsplit(first.url).query) == {"aid": ["315"]}
    assert second.url == template("thousandeyes", "tests_page_1")["_links"]["next"]["href"], "the next link is followed as given"
    assert len(requests_to(mock, USAGE_URL)) == 1


def test_given_an_empty_tests_array_when_read_then_there_are_no_records_and_no_paged_requests() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["tests"] = []
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_stream(te_streams()[STREAM])

    assert output.records == []
    assert not requests_to(mock, TESTS_URL)


def test_given_a_sync_when_read_incrementally_then_state_holds_the_period_start() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        output = read_stream(te_streams()[STREAM], SyncMode.incremental, {"monthStart": MONTH_START})

    assert len(output.records) == 3, "the current period is emitted again"
    assert output.final_state == {"monthStart": MONTH_START}


def test_given_no_requests_left_in_the_window_when_paging_then_the_next_page_waits_for_the_reset(
    monkeypatch: pytest.MonkeyPatch, waits: List[float]
) -> None:
    clock = FakeClock(waits).install(monkeypatch)
    reset = int(time.time()) + 20
    last_call = {"X-Organization-Rate-Limit-Limit": "240", "X-Organization-Rate-Limit-Remaining": "0", "X-Organization-Rate-Limit-Reset": str(reset)}
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock_test_pages(mock, [{"json": template("thousandeyes", "tests_page_1"), "headers": last_call}, {"json": template("thousandeyes", "tests_page_2")}])
        started = time.time()
        output = read_stream(te_streams()[STREAM])

    assert len(output.records) == 3
    assert len(requests_to(mock, TESTS_URL)) == 2, "slowed down instead of being refused: no 429, no retry"
    assert sum(waits) >= reset - started - 1, "the budget held the second page until the window reset"
    assert clock.offset <= reset - started + 1.5


def test_given_rate_limit_headers_that_are_not_numbers_when_read_then_they_are_ignored() -> None:
    garbled = {"X-Organization-Rate-Limit-Remaining": "many", "X-Organization-Rate-Limit-Reset": "soon"}
    with requests_mock.Mocker() as mock:
        mock_usage(mock, usage_without_tests())
        mock_test_pages(mock, [{"json": template("thousandeyes", "tests_page_1"), "headers": garbled}, {"json": template("thousandeyes", "tests_page_2")}])
        output = read_stream(te_streams()[STREAM])

    assert len(output.records) == 3
