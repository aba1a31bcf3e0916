"""usage_ledger in-process: its rows, its state (each source's state), and how it reads its sources.

Twilio's usage stream is the source here (three rows per record: bytes sent, received and in total, the billed
amount on the total); the clock is frozen at 2026-11-23T12:34:56Z and the start date is 2026-11-20.
The integration tests (integration_tests/test_ledger.py) reconcile the ledger with every vendor's records.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Dict, List

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode

from source_usage.framework.ledger import (
    LedgerCollector,
    LedgerCursor,
    ledger_row,
    period_end,
    rows_in_batches,
    saved_source_state,
    scaled,
)
from source_usage.framework.plugin import plugin_named
from unit_tests.helpers import error_messages, final_state, log_lines, read_streams, records, stream_states
from unit_tests.twilio_fixtures import (
    SIM_B,
    STREAM,
    USAGE_URL,
    day,
    frozen,  # noqa: F401  (fixture)
    serve_usage,
    twilio_config,
    windows_requested,
)

pytestmark = pytest.mark.usefixtures("frozen")

LEDGER = "usage_ledger"
ACCOUNT = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # the account_sid of the template's record
SIM_A = "HSaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def row(metric: str, quantity: Any, start: str, end: str, is_final: bool, **more: Any) -> Dict[str, Any]:
    """A Twilio ledger row as emitted (the CDK leaves null fields out of a record)."""
    values = {
        "vendor": "twilio",
        "account_id": ACCOUNT,
        "subject_type": "sim",
        "subject_id": SIM_A,
        "metric": metric,
        "quantity": quantity,
        "unit": "bytes",
        "granularity": "day",
        "period_start": start,
        "period_end": end,
        "is_final": is_final,
        "observed_at": "2026-11-23T12:34:56Z",
        "source_stream": STREAM,
    }
    values.update(more)
    return values


# ----- rows --------------------------------------------------------------------------------------------


def test_given_the_ledger_selected_with_its_source_when_read_then_each_record_becomes_its_rows_and_both_streams_emit() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20"), day("2026-11-21", billed_unit=None)])
        output = read_streams(twilio_config(), {STREAM: SyncMode.incremental, LEDGER: SyncMode.incremental})

    assert len(records(output, STREAM)) == 2
    assert records(output, LEDGER) == [
        row("data_sent_bytes", 150000, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", True),
        row("data_received_bytes", 162000, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", True),
        row("data_total_bytes", 312000, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", True, cost=0.0312, currency="USD"),
        row("data_sent_bytes", 150000, "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z", False),
        row("data_received_bytes", 162000, "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z", False),
        row("data_total_bytes", 312000, "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z", False),
    ]
    assert stream_states(output, LEDGER) == [{"sources": {STREAM: {"granularity": "day", "start_time": "2026-11-21T00:00:00Z"}}}]
    assert windows_requested(mock) == [("2026-11-20T00:00:00Z", "2026-11-23T12:34:56Z")]  # one read for both
    assert error_messages(output) == []


def test_given_the_ledger_selected_alone_when_read_then_its_source_is_read_for_it_without_emitting_its_records() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20")])
        output = read_streams(twilio_config(), {LEDGER: SyncMode.incremental})

    assert records(output, STREAM) == [] and stream_states(output, STREAM) == []
    assert [(r["metric"], r["quantity"]) for r in records(output, LEDGER)] == [
        ("data_sent_bytes", 150000),
        ("data_received_bytes", 162000),
        ("data_total_bytes", 312000),
    ]
    assert final_state(output, LEDGER) == {"sources": {STREAM: {"granularity": "day", "start_time": "2026-11-20T00:00:00Z"}}}


def test_given_more_rows_than_a_batch_when_the_ledger_is_read_then_every_row_is_emitted_once() -> None:
    served = [day("2026-11-20", sim_sid=f"HS{index:032d}") for index in range(400)]  # 1,200 rows
    with requests_mock.Mocker() as mock:
        serve_usage(mock, served)
        output = read_streams(twilio_config(), {LEDGER: SyncMode.incremental})

    rows = records(output, LEDGER)
    assert len(rows) == 1200
    assert len({(r["subject_id"], r["metric"]) for r in rows}) == 1200


# ----- state -------------------------------------------------------------------------------------------


def test_given_the_ledgers_saved_state_when_it_is_read_alone_incrementally_then_its_source_continues_from_it() -> None:
    saved = {"sources": {STREAM: {"granularity": "day", "start_time": "2026-11-22T00:00:00Z"}}}
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-22")])
        output = read_streams(twilio_config(start_date="2026-11-01T00:00:00Z"), {LEDGER: SyncMode.incremental}, {LEDGER: saved})

    assert windows_requested(mock)[0][0] == "2026-11-20T00:00:00Z"  # the state minus Twilio's 48-hour lookback
    assert final_state(output, LEDGER) == saved


def test_given_the_ledgers_saved_state_when_it_is_read_alone_in_full_then_its_source_reads_from_the_start_date() -> None:
    saved = {"sources": {STREAM: {"granularity": "day", "start_time": "2026-11-22T00:00:00Z"}}}
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [])
        read_streams(twilio_config(start_date="2026-11-01T00:00:00Z"), {LEDGER: SyncMode.full_refresh}, {LEDGER: saved})

    assert windows_requested(mock)[0][0] == "2026-11-01T00:00:00Z"


@pytest.mark.parametrize("saved", [{"sources": [1]}, {"sources": {STREAM: "2026-11-22"}}, {"other": {}}])
def test_given_a_ledger_state_without_a_mapping_for_the_source_when_read_then_the_source_reads_from_the_start_date(saved: Any) -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [])
        read_streams(twilio_config(start_date="2026-11-01T00:00:00Z"), {LEDGER: SyncMode.incremental}, {LEDGER: saved})

    assert windows_requested(mock)[0][0] == "2026-11-01T00:00:00Z"


def test_given_a_source_with_state_and_a_ledger_without_when_both_are_read_then_the_source_reads_from_its_start_and_says_so() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [])
        output = read_streams(
            twilio_config(start_date="2026-11-01T00:00:00Z"),
            {STREAM: SyncMode.incremental, LEDGER: SyncMode.incremental},
            {STREAM: {"granularity": "day", "start_time": "2026-11-22T00:00:00Z"}},
        )

    assert windows_requested(mock)[0][0] == "2026-11-01T00:00:00Z"
    assert f"{STREAM}: read from its start this time: the usage ledger has no state for it yet" in log_lines(output, "INFO")


def test_given_a_source_with_state_and_a_ledger_with_state_for_it_when_both_are_read_then_the_source_continues_from_its_own() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [])
        output = read_streams(
            twilio_config(start_date="2026-11-01T00:00:00Z"),
            {STREAM: SyncMode.incremental, LEDGER: SyncMode.incremental},
            {
                STREAM: {"granularity": "day", "start_time": "2026-11-22T00:00:00Z"},
                LEDGER: {"sources": {STREAM: {"granularity": "day", "start_time": "2026-11-05T00:00:00Z"}}},
            },
        )

    assert windows_requested(mock)[0][0] == "2026-11-20T00:00:00Z"
    assert not [line for line in log_lines(output, "INFO") if "read from its start this time" in line]


def test_given_a_source_with_state_and_the_ledger_in_full_when_both_are_read_then_the_source_reads_from_its_start() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [])
        read_streams(
            twilio_config(start_date="2026-11-01T00:00:00Z"),
            {STREAM: SyncMode.incremental, LEDGER: SyncMode.full_refresh},
            {
                STREAM: {"granularity": "day", "start_time": "2026-11-22T00:00:00Z"},
                LEDGER: {"sources": {STREAM: {"granularity": "day", "start_time": "2026-11-22T00:00:00Z"}}},
            },
        )

    assert windows_requested(mock)[0][0] == "2026-11-01T00:00:00Z"


def test_given_only_the_source_selected_when_read_then_no_ledger_is_built() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20")])
        output = read_streams(twilio_config(), {STREAM: SyncMode.incremental})

    assert records(output, LEDGER) == [] and stream_states(output, LEDGER) == []
    assert len(records(output, STREAM)) == 1


# ----- failures ----------------------------------------------------------------------------------------


def test_given_a_source_read_for_the_ledger_that_fails_when_read_then_the_ledger_fails_naming_it_and_why() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=403, json={"code": 20003, "message": "Permission denied"})
        output = read_streams(twilio_config(), {LEDGER: SyncMode.incremental}, expect_failure=True)

    assert error_messages(output)[0] == (
        f"usage_ledger: incomplete: reading {STREAM} for it failed (twilio: the Auth Token for account "
        "AC0123456789abcdef0123456789abcdef is not allowed to read Super SIM usage records (HTTP 403))"
    )
    assert output.errors[0].trace.error.failure_type.value == "transient_error"


# ----- the vendor's hook -------------------------------------------------------------------------------


def test_given_a_sync_when_a_vendors_streams_are_read_then_its_plugin_hears_once_that_the_sync_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    heard: List[Any] = []
    monkeypatch.setattr(plugin_named("twilio"), "sync_finished", lambda connection, sync: heard.append((connection.name, sync.selected)))
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20")])
        read_streams(twilio_config(), {STREAM: SyncMode.incremental, LEDGER: SyncMode.incremental})

    assert heard == [("twilio", [STREAM, LEDGER])]


# ----- the pieces ----------------------------------------------------------------------------------------


def test_given_every_field_when_a_ledger_row_is_built_then_ids_are_strings_and_each_field_is_in_place() -> None:
    built = ledger_row(
        vendor="v",
        account_id=12,
        subject_type="sim",
        subject_id=34,
        metric="data_total_bytes",
        quantity=5,
        unit="bytes",
        granularity="day",
        period_start="2026-11-20T00:00:00Z",
        period_end="2026-11-21T00:00:00Z",
        is_final=True,
        observed_at="2026-11-23T12:34:56Z",
        source_stream="s",
        subject_name="n",
        cost=1.5,
        currency="EUR",
    )
    assert built == {
        "vendor": "v",
        "account_id": "12",
        "subject_type": "sim",
        "subject_id": "34",
        "subject_name": "n",
        "metric": "data_total_bytes",
        "quantity": 5,
        "unit": "bytes",
        "cost": 1.5,
        "currency": "EUR",
        "granularity": "day",
        "period_start": "2026-11-20T00:00:00Z",
        "period_end": "2026-11-21T00:00:00Z",
        "is_final": True,
        "observed_at": "2026-11-23T12:34:56Z",
        "source_stream": "s",
    }


def test_given_no_ids_and_no_optional_fields_when_a_ledger_row_is_built_then_they_are_null() -> None:
    built = ledger_row(
        vendor="v", account_id=None, subject_type="sim", subject_id=None, metric="m", quantity=None, unit="bytes",
        granularity="day", period_start=None, period_end=None, is_final=False, observed_at="2026-11-23T12:34:56Z", source_stream="s",
    )  # fmt: skip
    assert (built["account_id"], built["subject_id"], built["subject_name"], built["cost"], built["currency"]) == (None, None, None, None, None)


def test_given_a_value_or_none_when_scaled_then_the_value_is_multiplied_and_none_stays_none() -> None:
    assert scaled(3, 1024) == 3072
    assert scaled(None, 1024) is None
    assert scaled(0, 1024) == 0


def test_given_a_start_or_none_when_the_period_end_is_asked_then_it_is_the_start_plus_the_length_in_utc_z() -> None:
    assert period_end("2026-11-20T00:00:00Z", timedelta(days=1)) == "2026-11-21T00:00:00Z"
    assert period_end("2026-11-30T23:00:00+01:00", timedelta(hours=2)) == "2026-12-01T00:00:00Z"
    assert period_end(None, timedelta(days=1)) is None


@pytest.mark.parametrize(
    "ledger_state, expected",
    [
        ({"sources": {"s": {"a": 1}}}, {"a": 1}),
        ({"sources": {"s": {}}}, {}),
        ({"sources": {"other": {"a": 1}}}, None),
        ({"sources": {"s": [1]}}, None),
        ({"sources": ["s"]}, None),
        ({}, None),
        ([], None),
    ],
)
def test_given_a_ledger_state_when_a_sources_state_is_asked_then_only_a_mapping_under_sources_is_returned(ledger_state: Any, expected: Any) -> None:
    assert saved_source_state(ledger_state, "s") == expected


def test_given_rows_when_batched_then_batches_are_full_except_the_last_and_none_is_empty() -> None:
    assert list(rows_in_batches(iter(range(5)), 2)) == [[0, 1], [2, 3], [4]]
    assert list(rows_in_batches(iter(range(4)), 2)) == [[0, 1], [2, 3]]
    assert list(rows_in_batches(iter(range(1)), 1)) == [[0]]
    assert list(rows_in_batches(iter([]), 3)) == []


def test_given_a_saved_ledger_state_when_its_cursor_loads_it_then_each_source_with_a_mapping_state_is_kept_sorted(caplog: pytest.LogCaptureFixture) -> None:
    cursor = LedgerCursor()
    cursor.load({"sources": {"b": {"x": 1}, "a": {"y": 2}, "c": "not a state", 7: {"z": 3}}}, logging.getLogger("test"), LEDGER)

    assert cursor.state == {"sources": {"7": {"z": 3}, "a": {"y": 2}, "b": {"x": 1}}}
    assert list(cursor.state["sources"]) == ["7", "a", "b"]
    assert caplog.records == []
    assert cursor.close_partition({}, "2026-11-20T00:00:00Z") is False
    assert cursor.cursor_field == "period_start"


@pytest.mark.parametrize(
    "saved",
    [
        {"sources": [1]},
        {"other": 1},
    ],
)
def test_given_a_ledger_state_of_another_shape_when_its_cursor_loads_it_then_it_warns_and_starts_empty(saved: Any, caplog: pytest.LogCaptureFixture) -> None:
    cursor = LedgerCursor()
    with caplog.at_level(logging.WARNING, logger="test"):
        cursor.load(saved, logging.getLogger("test"), LEDGER)

    assert cursor.state == {"sources": {}}
    assert [record.getMessage() for record in caplog.records] == [
        "usage_ledger: ignoring saved state of an unknown shape; expected {'sources': {<stream>: <its state>}}"
    ]


@pytest.mark.parametrize("saved", [None, {}])
def test_given_no_ledger_state_when_its_cursor_loads_it_then_it_starts_empty_without_a_warning(saved: Any, caplog: pytest.LogCaptureFixture) -> None:
    cursor = LedgerCursor()
    cursor.load(saved, logging.getLogger("test"), LEDGER)

    assert cursor.state == {"sources": {}} and cursor.extra == {}
    assert caplog.records == []


class Validator:
    def __init__(self) -> None:
        self.seen: List[Any] = []

    def validate(self, row: Any) -> None:
        self.seen.append(row)


class Source:
    name = "s"

    def ledger_rows(self, record: Any) -> List[Dict[str, Any]]:
        return [{"n": record["n"]}, {"n": record["n"] * 10}]


def test_given_records_when_the_collector_sinks_them_then_each_row_is_validated_and_kept_in_order() -> None:
    validator = Validator()
    collector = LedgerCollector({"sources": {"s": {"at": 1}}}, validator)  # type: ignore[arg-type]
    collector.sink(Source(), {}, [{"n": 1}, {"n": 2}])  # type: ignore[arg-type]

    assert validator.seen == [{"n": 1}, {"n": 10}, {"n": 2}, {"n": 20}]
    assert list(collector.spool.drain()) == [{"n": 1}, {"n": 10}, {"n": 2}, {"n": 20}]
    assert collector.source_state("s") == {"at": 1}
    assert collector.source_state("t") is None


def test_given_states_kept_per_source_when_the_final_state_is_asked_then_it_has_the_latest_of_each_sorted() -> None:
    collector = LedgerCollector({}, Validator())  # type: ignore[arg-type]
    collector.keep_state("b")({"at": 1})
    collector.keep_state("a")({"at": 2})
    collector.keep_state("b")({"at": 3})

    assert collector.final_state() == {"sources": {"a": {"at": 2}, "b": {"at": 3}}}
    assert list(collector.final_state()["sources"]) == ["a", "b"]
    assert collector.saved == {}


# ----- two vendors ---------------------------------------------------------------------------------------


def two_vendors() -> Dict[str, Any]:
    from unit_tests.thousandeyes_fixtures import te_config

    return {**twilio_config(), "thousandeyes": te_config()["thousandeyes"]}


def test_given_two_vendors_when_the_ledger_is_read_alone_then_it_is_built_from_every_source_of_both() -> None:
    from unit_tests.thousandeyes_fixtures import mock_test_pages, mock_usage

    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20")])
        mock_usage(mock)
        mock_test_pages(mock)
        output = read_streams(two_vendors(), {LEDGER: SyncMode.incremental})

    assert sorted({r["source_stream"] for r in records(output, LEDGER)}) == ["thousandeyes_test_usage", "thousandeyes_usage", STREAM]
    assert sorted(final_state(output, LEDGER)["sources"]) == ["thousandeyes_test_usage", "thousandeyes_usage", STREAM]  # type: ignore[index]
    assert error_messages(output) == []


def test_given_several_sources_failing_for_the_ledger_when_read_then_its_error_names_them_all() -> None:
    from unit_tests.thousandeyes_fixtures import TESTS_URL, USAGE_URL as TE_USAGE_URL

    with requests_mock.Mocker() as mock:
        mock.get(USAGE_URL, status_code=403, json={})
        mock.get(TE_USAGE_URL, status_code=403, json={})
        mock.get(TESTS_URL, status_code=403, json={})
        output = read_streams(two_vendors(), {LEDGER: SyncMode.incremental}, expect_failure=True)

    assert error_messages(output)[0].startswith(
        f"usage_ledger: incomplete: reading thousandeyes_test_usage, thousandeyes_usage, {STREAM} for it failed ("
    )


@pytest.mark.parametrize(
    "selected, sources",
    [
        ([LEDGER], ["emnify_endpoint_usage_daily"]),  # the daily series unless only the monthly figures are selected
        (["emnify_endpoint_usage_monthly", LEDGER], ["emnify_endpoint_usage_monthly"]),
        (["emnify_endpoint_usage_daily", "emnify_endpoint_usage_monthly", LEDGER], ["emnify_endpoint_usage_daily"]),  # never both
    ],
)
def test_given_a_vendor_that_picks_its_ledger_sources_when_the_ledger_is_read_then_only_those_are_read_for_it(selected: List[str], sources: List[str]) -> None:
    from unit_tests.emnify_fixtures import emnify_config, mock_api

    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), {name: SyncMode.incremental for name in selected})

    assert sorted(final_state(output, LEDGER)["sources"]) == sources  # type: ignore[index]
    assert {row["source_stream"] for row in records(output, LEDGER)} <= set(sources)
    assert error_messages(output) == []


def test_given_the_ledger_listed_before_its_source_in_the_catalog_when_read_then_both_streams_emit_from_one_read() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20")])
        output = read_streams(twilio_config(), {LEDGER: SyncMode.incremental, STREAM: SyncMode.incremental})

    assert len(records(output, STREAM)) == 1
    assert [(r["metric"], r["quantity"]) for r in records(output, LEDGER)] == [
        ("data_sent_bytes", 150000),
        ("data_received_bytes", 162000),
        ("data_total_bytes", 312000),
    ]
    assert windows_requested(mock) == [("2026-11-20T00:00:00Z", "2026-11-23T12:34:56Z")]
    assert error_messages(output) == []


def test_given_two_vendors_and_one_stream_selected_without_the_ledger_when_read_then_the_other_vendor_is_never_asked() -> None:
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [day("2026-11-20")])
        output = read_streams(two_vendors(), {STREAM: SyncMode.incremental})

    assert len(records(output, STREAM)) == 1
    assert records(output, LEDGER) == []
    assert {request.hostname for request in mock.request_history} == {"supersim.twilio.com"}
    assert error_messages(output) == []
