"""thousandeyes_usage: one record per billing period from the sync's one `GET /usage?expand=test`, shared
with thousandeyes_test_usage; the period is never final."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock

from unit_tests.helpers import error_messages, final_state, read_streams, records, template
from unit_tests.thousandeyes_fixtures import (
    BOTH,
    MONTH_START,
    TEST_USAGE,
    TOKEN,
    USAGE,
    USAGE_URL,
    mock_usage,
    now_and_header,
    requests_to,
    te_config,
)


def test_given_a_usage_document_when_synced_then_one_record_has_the_counters_the_quota_and_the_period_bounds() -> None:
    observed, date = now_and_header()
    with requests_mock.Mocker() as mock:
        mock_usage(mock, headers={"Date": date})
        output = read_streams(te_config(), [USAGE])

    assert records(output, USAGE) == [
        {
            "monthStart": MONTH_START,
            "monthEnd": "2026-12-05T08:00:00Z",
            "quota": {
                "monthStart": MONTH_START,
                "monthEnd": "2026-12-05T08:00:00Z",
                "cloudUnitsIncluded": 4320000000,
                "endpointAgentsIncluded": 200,
                "endpointAgentsEssentialsIncluded": 10,
                "endpointAgentsEmbeddedIncluded": 10,
                "enterpriseAgentsIncluded": 25,
            },
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
            "observed_at": observed,
            "is_final": False,
        }
    ]


@pytest.mark.parametrize(
    "month_start, month_end",
    [
        pytest.param("2026-11-05T08:00:00+00:00", "2026-12-05T08:00:00+00:00", id="+00:00"),
        pytest.param("2026-11-05T08:00:00.000+0000", "2026-12-05T08:00:00.000+0000", id="+0000 with milliseconds"),
        pytest.param("2026-11-05T00:00:00-08:00", "2026-12-05T00:00:00-08:00", id="Pacific time"),
        pytest.param(1793865600, 1796457600, id="epoch seconds"),
    ],
)
def test_given_period_bounds_with_offsets_when_synced_then_month_start_and_end_are_utc_z(month_start: Any, month_end: Any) -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["quota"].update(monthStart=month_start, monthEnd=month_end)
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_streams(te_config(), BOTH)

    [record] = records(output, USAGE)
    assert (record["monthStart"], record["monthEnd"]) == (MONTH_START, "2026-12-05T08:00:00Z")
    assert (record["quota"]["monthStart"], record["quota"]["monthEnd"]) == (MONTH_START, "2026-12-05T08:00:00Z")
    assert {test["monthStart"] for test in records(output, TEST_USAGE)} == {MONTH_START}


def test_given_a_counter_the_schema_does_not_know_when_synced_then_it_is_kept_and_the_arrays_are_not() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["deviceAgentsUsed"] = 7
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        [record] = records(read_streams(te_config(), [USAGE]), USAGE)

    assert record["deviceAgentsUsed"] == 7
    assert not {"tests", "enterpriseAgentUnits", "endpointAgents"} & set(record)


def test_given_an_account_group_when_synced_then_aid_and_expand_are_sent_with_the_bearer_token() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        read_streams(te_config(account_group_id="1234"), [USAGE])

    [request] = requests_to(mock, USAGE_URL)
    assert parse_qs(urlsplit(request.url).query) == {"aid": ["1234"], "expand": ["test"]}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/hal+json, application/json, application/problem+json"


def test_given_no_account_group_when_synced_then_only_expand_is_sent() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        read_streams(te_config(), [USAGE])

    [request] = requests_to(mock, USAGE_URL)
    assert parse_qs(urlsplit(request.url).query) == {"expand": ["test"]}


def test_given_both_streams_when_synced_then_usage_is_requested_once() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        output = read_streams(te_config(), BOTH)

    assert len(records(output, USAGE)) == 1 and len(records(output, TEST_USAGE)) == 3
    assert len(mock.request_history) == 1


def test_given_two_syncs_when_each_runs_then_each_requests_usage_once() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        read_streams(te_config(), BOTH)
        read_streams(te_config(), BOTH)

    assert len(mock.request_history) == 2


def test_given_a_sync_when_it_ends_then_the_state_holds_the_period_start() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock)
        output = read_streams(te_config(), BOTH)

    assert final_state(output, USAGE) == {"monthStart": MONTH_START}
    assert final_state(output, TEST_USAGE) == {"monthStart": MONTH_START}


def test_given_the_current_period_was_synced_when_synced_again_then_it_is_emitted_again_with_new_counts_and_still_open() -> None:
    body = template("thousandeyes", "usage")
    body["usage"]["cloudUnitsUsed"] = 9000000
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        output = read_streams(te_config(), [USAGE], state={USAGE: {"monthStart": MONTH_START}})

    assert [(record["monthStart"], record["cloudUnitsUsed"], record["is_final"]) for record in records(output, USAGE)] == [(MONTH_START, 9000000, False)]
    assert final_state(output, USAGE) == {"monthStart": MONTH_START}


@pytest.mark.parametrize(
    "body, message",
    [
        pytest.param({"_links": {}}, "thousandeyes: GET /usage answered without a `usage` object", id="no usage object"),
        pytest.param({"usage": [1, 2]}, "thousandeyes: GET /usage answered without a `usage` object", id="usage is a list"),
        pytest.param([{"usage": {}}], f"thousandeyes: GET {USAGE_URL} answered a list, not a usage document", id="a list"),
        pytest.param("usage", f"thousandeyes: GET {USAGE_URL} answered a string, not a usage document", id="a string"),
    ],
)
def test_given_an_answer_of_the_wrong_shape_when_synced_then_both_streams_fail_saying_what_it_was(body: Any, message: str) -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, json=body)
        output = read_streams(te_config(), BOTH, expect_failure=True)

    assert error_messages(output)[:2] == [message, message]
    assert len(mock.request_history) == 1, "the test stream reuses the failure"


def test_given_a_failed_usage_request_when_the_test_stream_reads_then_it_fails_the_same_way_without_asking_again() -> None:
    with requests_mock.Mocker() as mock:
        mock_usage(mock, status_code=403, json=template("thousandeyes", "forbidden"))
        output = read_streams(te_config(), BOTH, expect_failure=True)

    usage_error, tests_error, *_ = error_messages(output)
    assert tests_error == usage_error
    assert len(mock.request_history) == 1


# ----- the usage ledger --------------------------------------------------------------------------------


@pytest.mark.parametrize("account_group, account", [({}, "organization"), ({"account_group_id": "1234"}, "1234")])
def test_given_usage_when_the_ledger_is_read_then_the_organizations_totals_and_each_tests_units_are_rows(account_group: Any, account: str) -> None:
    from unit_tests.thousandeyes_fixtures import mock_test_pages

    observed, date = now_and_header()
    with requests_mock.Mocker() as mock:
        mock_usage(mock, headers={"Date": date})
        mock_test_pages(mock)
        output = read_streams(te_config(**account_group), BOTH + ["usage_ledger"])

    period = {"unit": "units", "granularity": "billing_period", "period_start": MONTH_START, "period_end": "2026-12-05T08:00:00Z", "is_final": False, "observed_at": observed}
    rows = records(output, "usage_ledger")
    assert rows[:3] == [
        {"vendor": "thousandeyes", "account_id": account, "subject_type": "organization", "subject_id": account, "metric": "cloud_units_total", "quantity": 8500489, **period, "source_stream": USAGE},
        {"vendor": "thousandeyes", "account_id": account, "subject_type": "organization", "subject_id": account, "metric": "enterprise_units_total", "quantity": 79640902, **period, "source_stream": USAGE},
        {
            "vendor": "thousandeyes",
            "account_id": "315",
            "subject_type": "test",
            "subject_id": "1158",
            "subject_name": "https://app.thousandeyes.com",
            "metric": "cloud_units",
            "quantity": 140540,
            **period,
            "source_stream": TEST_USAGE,
        },
    ]
    assert len(rows) == 2 + len(records(output, TEST_USAGE))


def test_given_a_period_without_an_end_when_the_ledger_is_read_then_its_rows_have_no_period_end() -> None:
    from unit_tests.thousandeyes_fixtures import mock_test_pages

    body = template("thousandeyes", "usage")
    del body["usage"]["quota"]["monthEnd"]
    with requests_mock.Mocker() as mock:
        mock_usage(mock, body)
        mock_test_pages(mock)
        output = read_streams(te_config(), BOTH + ["usage_ledger"])

    rows = records(output, "usage_ledger")
    assert len(rows) == 2 + 3 and all(row.get("period_end") is None for row in rows)
