"""emnify authentication: one JWT per sync shared by the streams, renewed before it expires and after a 401."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import List

import pytest
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_usage.framework.errors import UsageError
from source_usage.vendors.emnify import TOKEN_LIFETIME, EmnifyAuthenticator, make_vendor, token_expiry
from unit_tests.emnify_fixtures import (
    APPLICATION_TOKEN,
    BASE,
    STATS_DATE,
    auth_token,
    emnify_config,
    emnify_streams,
    mock_api,
    requests_to,
)
from unit_tests.helpers import read_stream, template


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


def bearer_tokens(mock: requests_mock.Mocker) -> List[str]:
    return [request.headers.get("Authorization") for request in mock.request_history if request.method == "GET"]


def test_given_a_sync_of_every_stream_when_read_then_it_authenticates_once_and_sends_the_jwt_as_bearer() -> None:
    with requests_mock.Mocker() as mock:
        [token, *_] = mock_api(mock)
        streams = emnify_streams()
        for name in ("emnify_endpoints", "emnify_endpoint_usage_monthly", "emnify_endpoint_usage_last_hour"):
            read_stream(streams[name])
        [login] = requests_to(mock, "POST", "/authenticate")

    assert login.json() == {"application_token": APPLICATION_TOKEN}
    assert set(bearer_tokens(mock)) == {f"Bearer {token}"}


def test_given_a_token_close_to_its_exp_when_a_request_is_sent_then_it_authenticates_again_first() -> None:
    clock = FakeClock()
    tokens = [auth_token(timedelta(minutes=20), clock.now), auth_token(timedelta(minutes=20), clock.now + 16 * 60)]
    with requests_mock.Mocker() as mock:
        mock_api(mock, tokens=tokens)
        endpoints = emnify_streams(clock=clock)["emnify_endpoints"]
        read_stream(endpoints)
        clock.now += 14 * 60  # more than 5 minutes (a quarter of the 20-minute lifetime) before exp
        read_stream(endpoints)
        assert len(requests_to(mock, "POST", "/authenticate")) == 1
        clock.now += 2 * 60  # now within 5 minutes of exp
        read_stream(endpoints)

    assert len(requests_to(mock, "POST", "/authenticate")) == 2
    assert bearer_tokens(mock) == [f"Bearer {tokens[0]}", f"Bearer {tokens[0]}", f"Bearer {tokens[1]}"]


def test_given_a_jwt_whose_exp_is_unreadable_or_past_when_issued_then_it_is_trusted_for_240_minutes() -> None:
    now = datetime.now(timezone.utc).timestamp()
    assert token_expiry("not-a-jwt", now) == now + TOKEN_LIFETIME.total_seconds()
    assert token_expiry(auth_token(expires_in=None, now=now), now) == now + TOKEN_LIFETIME.total_seconds()
    assert token_expiry(auth_token(timedelta(minutes=-1), now), now) == now + TOKEN_LIFETIME.total_seconds()
    assert token_expiry(auth_token(timedelta(minutes=30), now), now) == int(now) + 30 * 60


def test_given_a_token_that_expired_on_the_server_when_a_stats_request_gets_401_then_it_authenticates_again_and_retries(
    waits: List[float],
) -> None:
    sent_with: List[str] = []

    def expired_then_stats(request, context):  # type: ignore[no-untyped-def]
        sent_with.append(request.headers["Authorization"])  # the request object is re-sent: record it now
        if len(sent_with) == 1:
            context.status_code = 401
            return template("emnify", "token_expired")
        context.headers["Date"] = STATS_DATE
        return template("emnify", "stats")

    with requests_mock.Mocker() as mock:
        first, second, *_ = mock_api(mock, endpoints=template("emnify", "endpoints")[:1])
        mock.get(f"{BASE}/endpoint/166/stats", json=expired_then_stats)
        output = read_stream(emnify_streams()["emnify_endpoint_usage_monthly"])

    assert len(output.records) == 4
    assert len(requests_to(mock, "POST", "/authenticate")) == 2
    assert sent_with == [f"Bearer {first}", f"Bearer {second}"]
    assert waits == [pytest.approx(0.01)], "the retry with the new token does not back off"


def test_given_a_rejected_application_token_when_read_then_a_config_error_says_so_and_the_other_streams_fail_fast() -> None:
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/authenticate", status_code=401, json=template("emnify", "invalid_credentials"))
        streams = emnify_streams()
        with pytest.raises(UsageError) as rejected:
            read_stream(streams["emnify_endpoints"])
        with pytest.raises(UsageError) as also_rejected:
            read_stream(streams["emnify_endpoint_usage_monthly"])

    assert rejected.value.failure_type == FailureType.config_error
    assert rejected.value.message == "emnify: the application token was rejected (HTTP 401)"
    assert also_rejected.value.message == rejected.value.message
    assert len(requests_to(mock, "POST", "/authenticate")) == 1, "a rejected application token is not retried"


def test_given_an_api_that_refuses_every_token_it_issues_when_read_then_it_fails_clearly_after_one_renewal() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock.get(f"{BASE}/endpoint", status_code=401, json=template("emnify", "token_expired"))
        with pytest.raises(UsageError) as refused:
            read_stream(emnify_streams()["emnify_endpoints"])

    assert refused.value.failure_type == FailureType.config_error
    assert refused.value.message.startswith(f"emnify: GET {BASE}/endpoint was refused with HTTP 401 right after authenticating again")
    assert "Token expired (error 1103)" in refused.value.message
    assert len(requests_to(mock, "POST", "/authenticate")) == 2
    assert len(requests_to(mock, "GET", "/endpoint")) == 2


def test_given_a_token_that_worked_when_it_is_later_refused_then_it_is_renewed_again() -> None:
    expired = {"status_code": 401, "json": template("emnify", "token_expired")}
    ok = {"json": template("emnify", "stats")}
    with requests_mock.Mocker() as mock:
        mock_api(mock, snapshots={166: [expired, ok, expired, ok], 167: [expired, ok]}, endpoints=template("emnify", "endpoints")[:2])
        stream = emnify_streams()["emnify_endpoint_usage_monthly"]
        stream.max_workers = 1  # endpoint 166, then 167: each refusal comes after a success with the same token
        output = read_stream(stream)

    assert len(output.records) == 8
    assert len(requests_to(mock, "POST", "/authenticate")) == 3


def test_given_many_threads_needing_a_token_at_once_when_authenticating_then_only_one_logs_in() -> None:
    release = threading.Event()
    logins = []

    def slow_login(request, context):  # type: ignore[no-untyped-def]
        logins.append(request)
        release.wait(0.3)  # let the other threads pile up on the authenticator's lock
        return {"auth_token": auth_token()}

    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/authenticate", json=slow_login)
        authenticator = make_vendor(emnify_config()).authenticator
        assert isinstance(authenticator, EmnifyAuthenticator)
        with ThreadPoolExecutor(max_workers=8) as pool:
            tokens = list(pool.map(lambda _: authenticator.token(), range(8)))

    assert len(logins) == 1
    assert len(set(tokens)) == 1


def test_given_an_issued_token_when_anything_is_logged_then_it_is_masked() -> None:
    with requests_mock.Mocker() as mock:
        [token, *_] = mock_api(mock)
        read_stream(emnify_streams()["emnify_endpoints"])

    assert filter_secrets(f"Authorization: Bearer {token}") == "Authorization: Bearer ****"


def test_given_a_flaky_login_when_authenticating_then_it_goes_through_the_retries_and_the_budget(waits: List[float]) -> None:
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
        output = read_stream(emnify_streams()["emnify_endpoints"])

    assert len(output.records) == 3
    assert len(requests_to(mock, "POST", "/authenticate")) == 3
    assert len(waits) == 2 and all(0 < wait <= 1.0 for wait in waits), "exponential backoff: no Retry-After to follow"
