"""emnify authentication: one JWT per sync shared by every stream, renewed before its `exp` and after a 401;
a login that is redirected or answers no token fails clearly; the JWT never shows in what the sync prints."""

from __future__ import annotations

from typing import Any, List

import pytest
import requests_mock
from airbyte_cdk.models import FailureType

from source_usage.vendors.emnify import token_expiry
from unit_tests.emnify_fixtures import (  # noqa: F401  (fixtures: fresh_process_budgets is autouse)
    ALL_STREAMS,
    APPLICATION_TOKEN,
    BASE,
    ENDPOINTS,
    MONTHLY,
    FakeClock,
    auth_token,
    bearer_tokens,
    emnify_clock,
    emnify_config,
    endpoints,
    mock_api,
    mock_listing,
    mock_stats,
    requests_to,
    stats,
    fresh_process_budgets,
)
from unit_tests.helpers import error_messages, log_lines, read_streams, records, template

EXPIRED = {"status_code": 401, "json": template("emnify", "token_expired")}


def logins(mock: requests_mock.Mocker) -> list:
    return requests_to(mock, "POST", "/authenticate")


def failure_types(output: Any) -> List[FailureType]:
    return [message.trace.error.failure_type for message in output.errors]


# ----- one login per sync ----------------------------------------------------------------------------------


def test_given_every_emnify_stream_selected_when_synced_then_one_login_serves_them_all_with_the_jwt_as_bearer() -> None:
    with requests_mock.Mocker() as mock:
        [token, *_] = mock_api(mock)
        read_streams(emnify_config(), ALL_STREAMS)

    [login] = logins(mock)
    assert login.json() == {"application_token": APPLICATION_TOKEN}
    assert login.headers.get("Authorization") is None, "the login itself carries no bearer token"
    assert len(bearer_tokens(mock)) >= 7, "the listing, three snapshots and the daily series of three endpoints"
    assert set(bearer_tokens(mock)) == {f"Bearer {token}"}


def test_given_two_syncs_when_each_runs_then_each_logs_in_once_with_its_own_token() -> None:
    with requests_mock.Mocker() as mock:
        first, second, *_ = mock_api(mock)
        read_streams(emnify_config(), [ENDPOINTS, MONTHLY])
        read_streams(emnify_config(), [ENDPOINTS, MONTHLY])

    assert len(logins(mock)) == 2
    assert bearer_tokens(mock) == [f"Bearer {first}"] * 4 + [f"Bearer {second}"] * 4


# ----- renewal before exp (fake clock) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lifetime_minutes, minutes_passed, expected_logins",
    [
        pytest.param(20, 14.5, 1, id="20-minute JWT, 14.5 minutes later: more than 5 minutes left"),
        pytest.param(20, 15.5, 2, id="20-minute JWT, 15.5 minutes later: within 5 minutes of exp, renewed"),
        pytest.param(12, 8.5, 1, id="12-minute JWT, 8.5 minutes later: more than a quarter of its life (3 min) left"),
        pytest.param(12, 9.5, 2, id="12-minute JWT, 9.5 minutes later: within a quarter of its life, renewed"),
        pytest.param(240, 234.5, 1, id="240-minute JWT, 234.5 minutes later: more than 5 minutes left"),
        pytest.param(240, 235.5, 2, id="240-minute JWT, 235.5 minutes later: renewed"),
        pytest.param(None, 234.5, 1, id="JWT without exp, trusted for 240 minutes: more than 5 minutes left"),
        pytest.param(None, 235.5, 2, id="JWT without exp, trusted for 240 minutes: renewed"),
        pytest.param(600, 235.5, 2, id="JWT claiming 600 minutes, longer than emnify's live: trusted for 240 minutes"),
    ],
)
def test_given_a_token_when_the_clock_nears_its_exp_during_the_sync_then_the_next_request_logs_in_again_first(
    emnify_clock: FakeClock, lifetime_minutes: Any, minutes_passed: float, expected_logins: int
) -> None:
    now = emnify_clock.now
    tokens = [auth_token(lifetime_minutes * 60 if lifetime_minutes else None, now), auth_token(240 * 60, now)]
    listed = endpoints(*range(101, 109))  # eight endpoints: eight workers want the renewed token at once

    def listing_then_time_passes(request: Any, context: Any) -> Any:
        emnify_clock.now = now + minutes_passed * 60
        return listed

    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=listed, tokens=tokens)
        mock.get(f"{BASE}/endpoint", json=listing_then_time_passes)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY])

    assert len(records(output, MONTHLY)) == 8 * 4
    assert len(logins(mock)) == expected_logins
    used_for_stats = tokens[expected_logins - 1]
    assert bearer_tokens(mock) == [f"Bearer {tokens[0]}"] + [f"Bearer {used_for_stats}"] * 8


@pytest.mark.parametrize(
    "claims, expected",
    [
        pytest.param("not-a-jwt", 1_800_000_000 + 240 * 60, id="unreadable: 240 minutes"),
        pytest.param({"exp": 1_800_000_000 + 30 * 60}, 1_800_000_000 + 30 * 60, id="exp in 30 minutes: as claimed"),
        pytest.param({"exp": 1_800_000_000 - 60}, 1_800_000_000 + 240 * 60, id="exp already past by our clock: 240 minutes"),
        pytest.param({"exp": 1_800_000_000 + 241 * 60}, 1_800_000_000 + 240 * 60, id="exp beyond 240 minutes: 240 minutes"),
        pytest.param({"exp": "soon"}, 1_800_000_000 + 240 * 60, id="exp not a number: 240 minutes"),
        pytest.param({}, 1_800_000_000 + 240 * 60, id="no exp: 240 minutes"),
    ],
)
def test_given_a_jwt_when_its_expiry_is_read_then_exp_is_trusted_only_within_240_minutes(claims: Any, expected: int) -> None:
    import jwt

    token = claims if isinstance(claims, str) else jwt.encode(claims, "unit-test-signing-key-of-32-bytes!!", algorithm="HS256")

    assert token_expiry(token, 1_800_000_000.0) == expected


# ----- 401: authenticate again, once ---------------------------------------------------------------------


def test_given_a_token_that_expired_on_the_server_when_a_stats_request_gets_401_then_it_logs_in_again_and_retries_at_once(
    waits: List[float],
) -> None:
    sent_with: List[str] = []

    def expired_then_stats(request: Any, context: Any) -> Any:
        sent_with.append(request.headers["Authorization"])
        if len(sent_with) == 1:
            context.status_code = 401
            return template("emnify", "token_expired")
        return stats(166)

    with requests_mock.Mocker() as mock:
        first, second, *_ = mock_api(mock, listed=endpoints(166))
        mock_stats(mock, 166, expired_then_stats)
        output = read_streams(emnify_config(), [MONTHLY])

    assert len(records(output, MONTHLY)) == 4
    assert len(logins(mock)) == 2
    assert sent_with == [f"Bearer {first}", f"Bearer {second}"]
    assert waits == [0.01], "the retry with the new token does not back off"
    assert error_messages(output) == []


def test_given_a_token_that_worked_when_it_is_later_refused_then_it_is_renewed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_USAGE_MAX_WORKERS", "1")  # endpoint 166, then 167: each refusal follows a success
    ok = {"json": stats(166)}
    with requests_mock.Mocker() as mock:
        tokens = mock_api(mock, listed=endpoints(166, 167))
        mock_stats(mock, 166, [EXPIRED, ok])
        mock_stats(mock, 167, [EXPIRED, ok])
        output = read_streams(emnify_config(), [MONTHLY])

    assert len(records(output, MONTHLY)) == 8
    assert len(logins(mock)) == 3
    assert bearer_tokens(mock) == [f"Bearer {tokens[0]}"] * 2 + [f"Bearer {tokens[1]}"] * 2 + [f"Bearer {tokens[2]}"]


def test_given_an_api_that_refuses_every_token_it_issues_when_synced_then_it_fails_clearly_after_one_renewal() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock.get(f"{BASE}/endpoint", status_code=401, json=template("emnify", "token_expired"))
        output = read_streams(emnify_config(), [ENDPOINTS], expect_failure=True)

    assert error_messages(output)[0] == (
        f"emnify: GET {BASE}/endpoint was refused with HTTP 401 right after authenticating again; "
        "check that the application token is still active and may read endpoints"
    )
    assert failure_types(output)[0] == FailureType.config_error
    assert len(logins(mock)) == 2
    assert len(requests_to(mock, "GET", "/endpoint")) == 2


def test_given_a_rejected_application_token_when_synced_then_every_stream_fails_with_one_config_error_and_one_login() -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/authenticate", status_code=401, json=template("emnify", "invalid_credentials"))
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY], expect_failure=True)

    stream_errors = [message for message in error_messages(output) if message.startswith("emnify:")]
    assert stream_errors == ["emnify: the application token was rejected (HTTP 401)"] * 2
    assert failure_types(output)[0] == FailureType.config_error
    assert len(logins(mock)) == 1, "a rejected application token is not tried again"
    assert [request.method for request in mock.request_history] == ["POST"]


def test_given_a_flaky_login_when_authenticating_then_it_goes_through_the_retries(waits: List[float]) -> None:
    token = auth_token()
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock.post(
            f"{BASE}/authenticate",
            [
                {"status_code": 503, "json": {"message": "unavailable"}},
                {"status_code": 429, "json": template("emnify", "too_many_requests")},
                {"json": {"auth_token": token}},
            ],
        )
        output = read_streams(emnify_config(), [ENDPOINTS])

    assert len(records(output, ENDPOINTS)) == 3
    assert len(logins(mock)) == 3
    assert len(waits) == 2 and all(0.5 <= wait <= 1.0 for wait in waits), "exponential backoff, first step each: no Retry-After"
    assert bearer_tokens(mock) == [f"Bearer {token}"]


# ----- a login that is redirected or answers no token ------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize(
    "location, problem",
    [
        pytest.param(
            "https://login.example.net/api/v1/authenticate",
            "was answered with an HTTP {status} redirect to https://login.example.net, which is not this vendor's configured host: not followed",
            id="another host",
        ),
        pytest.param(
            f"{BASE}/v2/authenticate",
            "answered with an HTTP {status} redirect to https://cdn.emnify.net, which is not followed here",
            id="the same host",
        ),
    ],
)
def test_given_a_login_answered_with_a_redirect_when_synced_then_the_application_token_is_not_sent_there_and_the_sync_fails_clearly(
    status: int, location: str, problem: str
) -> None:
    with requests_mock.Mocker() as mock:
        mock_listing(mock, endpoints())
        mock.post(f"{BASE}/authenticate", status_code=status, headers={"Location": location}, json={})
        elsewhere = mock.post(location, json={"auth_token": auth_token()})
        output = read_streams(emnify_config(), [ENDPOINTS], expect_failure=True)

    assert not elsewhere.called, "nothing is sent to the Location"
    assert len(logins(mock)) == 1, "not retried either"
    assert [request.url for request in mock.request_history] == [f"{BASE}/authenticate"]
    assert error_messages(output)[0] == f"emnify: POST {BASE}/authenticate " + problem.format(status=status)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="an empty object"),
        pytest.param({"token": "eyJhbGciOi.x.y"}, id="another key"),
        pytest.param({"auth_token": ""}, id="an empty token"),
        pytest.param({"auth_token": None}, id="a null token"),
        pytest.param({"auth_token": 12345}, id="a number"),
        pytest.param([{"auth_token": "eyJhbGciOi.x.y"}], id="a list"),
    ],
)
def test_given_a_login_answer_without_an_auth_token_when_synced_then_it_fails_saying_so(body: Any) -> None:
    with requests_mock.Mocker() as mock:
        mock_listing(mock, endpoints())
        mock.post(f"{BASE}/authenticate", json=body)
        output = read_streams(emnify_config(), [ENDPOINTS], expect_failure=True)

    assert error_messages(output)[0] == "emnify: POST /authenticate succeeded but its answer has no usable auth_token"
    assert requests_to(mock, "GET", "/endpoint") == [], "no request is sent without a token"


# ----- the JWT is a secret ---------------------------------------------------------------------------------


def test_given_an_error_body_that_echoes_the_jwt_when_the_stream_fails_then_the_jwt_is_masked_everywhere() -> None:
    with requests_mock.Mocker() as mock:
        [token, *_] = mock_api(mock, listed=endpoints(166))

        def echo(request: Any, context: Any) -> Any:
            context.status_code = 400
            return {"error_code": 1000, "error_token": "BadRequest", "message": f"bad header {request.headers['Authorization']}"}

        mock_stats(mock, 166, echo)
        output = read_streams(emnify_config(), [MONTHLY], expect_failure=True)

    printed = "\n".join(str(message) for message in output.get_message_iterator()) + (output.stderr or "")
    assert token not in printed, "not in any message the sync printed"
    assert token not in "\n".join(error_messages(output) + log_lines(output))
    assert error_messages(output)[0] == (
        f"emnify: GET {BASE}/endpoint/166/stats was refused with HTTP 400: bad header Bearer **** (error 1000)"
    )
