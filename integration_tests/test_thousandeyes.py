"""ThousandEyes streams against the emulator, through the real `source-usage` process."""

from __future__ import annotations

import re

import pytest

from integration_tests.harness import (
    assert_read_matches_emulator,
    assert_records_match,
    configured_catalog,
    primary_key,
    run_connector,
)
from source_usage.emulator import Emulator
from source_usage.emulator.thousandeyes import UNITS_NEED_USAGE_BASED_PRICING, ThousandEyesApp

STREAMS = ["thousandeyes_usage", "thousandeyes_test_usage"]
WAIT_LOGGED = re.compile(r"^thousandeyes: GET \S*/usage: .*429.*; retrying in ([0-9.]+)s$")
PERMISSION = 'the token\'s user lacks the permission "View organization usage" (called "View Billing" in the usage SDK\'s docs)'


def thousandeyes(emulator: Emulator) -> ThousandEyesApp:
    app = emulator.apps["thousandeyes"]
    assert isinstance(app, ThousandEyesApp)
    return app


def test_full_read_of_both_streams_returns_exactly_the_emulators_records_from_one_request() -> None:
    with Emulator(seed=5, scale=2, rate_limits=True, vendors=["thousandeyes"], thousandeyes={"account_group_id": True}) as emulator:
        config = emulator.config()
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True)
        assert any(record.get("cloudUnitsProjected") is None for record in run.records("thousandeyes_test_usage")), "a brand-new test"
        assert emulator.stats()["thousandeyes"]["by_route"] == {"/usage": {"200": 1}}, "both streams share one GET /usage"


def test_a_server_that_ignores_expand_is_read_through_the_paged_tests_endpoint() -> None:
    with Emulator(seed=5, scale=2, rate_limits=True, vendors=["thousandeyes"], thousandeyes={"expand_supported": False, "page_size": 3}) as emulator:
        config = emulator.config()
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True)
        tests = len(emulator.expected("thousandeyes_test_usage"))
        routes = emulator.stats()["thousandeyes"]["by_route"]
        assert routes == {"/usage": {"200": 1}, "/usage/units/tests": {"200": -(-tests // 3)}}, "every page once, until no next link"


def test_incremental_read_emits_the_current_period_again_with_its_new_usage() -> None:
    with Emulator(seed=5, vendors=["thousandeyes"]) as emulator:
        config = emulator.config()
        catalog = configured_catalog(config, STREAMS)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-2000:]

        emulator.advance(1)
        second = run_connector("read", config, catalog, state=first.final_state())

        assert_read_matches_emulator(second, emulator, catalog, holds_records=True)
        [before], [after] = first.records("thousandeyes_usage"), second.records("thousandeyes_usage")
        assert after["monthStart"] == before["monthStart"] and after["cloudUnitsUsed"] > before["cloudUnitsUsed"]
        new_tests = {record["testId"] for record in second.records("thousandeyes_test_usage")} - {
            record["testId"] for record in first.records("thousandeyes_test_usage")
        }
        assert new_tests, "a test that appeared during the period is read"
        assert [state["stream"]["stream_state"] for state in second.final_state()] == [{"monthStart": before["monthStart"]}] * 2


def test_a_429_storm_is_ridden_out_by_waiting_for_each_announced_reset() -> None:
    with Emulator(seed=5, rate_limits=True, vendors=["thousandeyes"], thousandeyes={"storm_reset_seconds": 1.0}) as emulator:
        config = emulator.config()
        catalog = configured_catalog(config, STREAMS)
        emulator.storm("thousandeyes", 2)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True)
        served = list(thousandeyes(emulator).served)
        assert [request.status for request in served] == [429, 429, 200], "two refusals, then one success: no blind retries"
        waits = [float(found.group(1)) for line in run.logs("INFO") for found in [WAIT_LOGGED.search(line)] if found]
        assert len(waits) == 2, run.logs("INFO")
        for refused, following, wait in zip(served, served[1:], waits):
            assert following.at >= refused.reset, "the next request waited for the reset the 429 announced"
            # and no longer: the wait it took is the time left until that reset when the 429 arrived (the 429
            # arrived after the emulator answered it), plus the connector's 0.25 s margin (logged to 0.01 s)
            assert 0 < wait <= refused.reset - refused.at + 0.25 + 0.005, (wait, refused)


@pytest.mark.parametrize(
    "knobs, token, message",
    [
        ({}, "not-the-token", "thousandeyes: the bearer token was rejected (HTTP 401)"),
        ({"can_view_usage": False}, None, f"thousandeyes: {PERMISSION} (HTTP 403: Forbidden: Insufficient permissions to query endpoint)"),
        (
            {"account_group_id": "404"},
            None,
            f"thousandeyes: {PERMISSION} or is not assigned to account group 404 "
            "(HTTP 403: Forbidden: User is not assigned to the account group with ID 404)",
        ),
    ],
    ids=["rejected-token", "missing-permission", "unassigned-account-group"],
)
def test_credential_problems_fail_the_read_with_an_actionable_config_error(knobs: dict, token: str, message: str) -> None:
    with Emulator(seed=5, vendors=["thousandeyes"], thousandeyes=knobs) as emulator:
        config = emulator.config()
        if token:
            config["thousandeyes"]["bearer_token"] = token
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert run.returncode != 0
        per_stream = [error for error in run.errors if error.get("stream_descriptor")]
        assert [error["message"] for error in per_stream] == [message, message]
        assert all(error["failure_type"] == "config_error" for error in run.errors)
        assert emulator.stats()["thousandeyes"]["requests"] == 1, "the second stream reuses the first one's answer"


def test_check_sends_one_request_and_reports_a_missing_permission() -> None:
    with Emulator(seed=5, vendors=["thousandeyes"]) as emulator:
        config = emulator.config()

        working = run_connector("check", config)
        thousandeyes(emulator).can_view_usage = False
        refused = run_connector("check", config)

        assert working.connection_status == {"status": "SUCCEEDED"}
        assert refused.connection_status == {
            "status": "FAILED",
            "message": f"thousandeyes: {PERMISSION} (HTTP 403: Forbidden: Insufficient permissions to query endpoint)",
        }
        assert emulator.stats()["thousandeyes"]["by_route"] == {"/usage": {"200": 1, "403": 1}}


# ----- real vendor behaviour: no usage-based pricing, tests without ids ---------------------------------------------


def test_given_an_organization_without_usage_based_pricing_and_a_server_that_does_not_expand_tests_when_read_then_test_usage_fails_with_its_own_403_message() -> None:
    knobs = {"usage_based_pricing": False, "expand_supported": False}
    with Emulator(seed=5, scale=2, rate_limits=True, vendors=["thousandeyes"], thousandeyes=knobs) as emulator:
        config = emulator.config()
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert run.returncode != 0
        [error] = [error for error in run.errors if error.get("stream_descriptor")]
        assert error["stream_descriptor"]["name"] == "thousandeyes_test_usage"
        assert error["failure_type"] == "config_error"
        message = error["message"]
        assert "GET /usage/units/tests was refused (HTTP 403)" in message and "usage-based pricing" in message, message
        assert "did not expand its tests" in message
        assert UNITS_NEED_USAGE_BASED_PRICING in message, "ThousandEyes' own text is kept"
        assert PERMISSION not in message, "not the missing-permission message"
        assert run.stream_statuses("thousandeyes_usage")[-1] == "COMPLETE"
        assert_records_match(
            run.records("thousandeyes_usage"), emulator.expected("thousandeyes_usage"), primary_key(catalog, "thousandeyes_usage"), "thousandeyes_usage"
        )
        assert emulator.stats()["thousandeyes"]["by_route"] == {"/usage": {"200": 1}, "/usage/units/tests": {"403": 1}}


def test_given_a_test_reported_without_its_id_when_read_then_the_other_tests_are_exact_and_the_skipped_one_is_warned_about() -> None:
    with Emulator(seed=5, scale=2, rate_limits=True, vendors=["thousandeyes"], thousandeyes={"tests_without_ids": 1}) as emulator:
        config = emulator.config()
        catalog = configured_catalog(config, STREAMS)

        run = run_connector("read", config, catalog)

        assert_read_matches_emulator(run, emulator, catalog, holds_records=True)
        [skipped] = [test for test in thousandeyes(emulator).tests if test.omitted]
        assert skipped.test_name not in {record.get("testName") for record in run.records("thousandeyes_test_usage")}
        assert len(run.records("thousandeyes_test_usage")) == len(emulator.expected("thousandeyes_test_usage")) > 0
        warnings = [line for line in run.logs("WARN") if "thousandeyes_test_usage" in line]
        assert len(warnings) == 1, run.logs("WARN")
        assert "skipped 1 record" in warnings[0], warnings
        assert any(f"whose {field} " in warnings[0] for field in skipped.omitted), (skipped.omitted, warnings)
