"""client.py: every vendor request is authenticated, retried and waited for within bounds, and fails with a
message naming the vendor, the endpoint and the last problem."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import replace
from typing import Any, List, Optional

import pytest
import requests
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator
from requests.auth import AuthBase

from source_usage.framework.backoff import RateLimitResetBackoff, RetryAfterBackoff
from source_usage.framework.client import ResponseAware
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import UsageError, VendorRequestFailed
from source_usage.framework.settings import Settings
from source_usage.framework.vendor import VendorConnection

BASE = "https://api.acme.example/v1"
THINGS = f"{BASE}/things"
FAST = Settings(max_retries=2, backoff_base_seconds=1.0, backoff_cap_seconds=4.0, max_rate_limit_waits=3, max_wait_seconds=120.0, max_total_wait_seconds=900.0)


class Highest(random.Random):
    """Jitter at its top: every exponential backoff is exactly its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def acme(settings: Settings = FAST, **kwargs: Any) -> VendorConnection:
    base_url = kwargs.pop("base_url", BASE)
    kwargs.setdefault("authenticator", TokenAuthenticator("acme-token-0001"))
    connection = VendorConnection("acme", base_url, VendorErrors("acme", rejected={401: "the token was rejected"}), settings=settings, **kwargs)
    connection.client._rng = Highest()
    return connection


def failure_of(connection: VendorConnection, path: str = "things", **kwargs: Any) -> VendorRequestFailed:
    with pytest.raises(UsageError) as failure:
        connection.send("GET", path, **kwargs)
    assert isinstance(failure.value, VendorRequestFailed)
    return failure.value


def rate_limited(retry_after: Optional[str] = None, **headers: str) -> dict:
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return {"status_code": 429, "json": {"title": "slow down"}, "headers": headers}


OK = {"status_code": 200, "json": {"ok": True}}


# ----- errors: retried a bounded number of times ------------------------------------------------------


def test_given_a_5xx_then_success_when_sent_then_it_is_retried_once(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 502, "text": "<html>Bad Gateway</html>"}, OK])
        assert acme().send("GET", "things").json() == {"ok": True}
        assert mock.call_count == 2
    assert waits == [1.0]


def test_given_persistent_5xx_when_retries_run_out_then_the_error_names_vendor_endpoint_and_last_status(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}}, {"status_code": 500, "json": {}}, {"status_code": 504, "json": {}}])
        failure = failure_of(acme(), params={"token": "s3cr3t-query"})
        assert mock.call_count == 3
    assert str(failure) == f"acme: GET {THINGS} failed after 3 attempts (last: HTTP 504)"
    assert failure.failure_type == FailureType.transient_error
    assert waits == [1.0, 2.0]


def test_given_max_retries_zero_when_a_5xx_arrives_then_it_fails_after_one_attempt(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=503, json={})
        failure = failure_of(acme(replace(FAST, max_retries=0)))
        assert mock.call_count == 1
    assert str(failure) == f"acme: GET {THINGS} failed after 1 attempts (last: HTTP 503)"
    assert waits == []


@pytest.mark.parametrize(
    "fault", [requests.exceptions.ConnectionError("reset"), requests.exceptions.ReadTimeout("slow"), requests.exceptions.ChunkedEncodingError("cut")]
)
def test_given_a_network_fault_then_success_when_sent_then_it_is_retried(fault: Exception, waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"exc": fault}, OK])
        assert acme().send("GET", "things").ok
    assert waits == [1.0]


def test_given_persistent_network_faults_when_retries_run_out_then_the_last_problem_is_named(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, exc=requests.exceptions.ConnectionError("reset"))
        failure = failure_of(acme())
    assert str(failure) == f"acme: GET {THINGS} failed after 3 attempts (last: the connection failed or was reset)"


def test_given_a_2xx_that_is_not_json_when_sent_then_it_is_retried(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 200, "text": "<html>maintenance</html>"}, OK])
        assert acme().send("GET", "things").json() == {"ok": True}
    assert waits == [1.0]


def test_given_a_4xx_when_sent_then_it_fails_at_once_with_the_handlers_message(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=401, json={})
        with pytest.raises(UsageError) as failure:
            acme().send("GET", "things")
        assert mock.call_count == 1
    assert str(failure.value) == "acme: the token was rejected (HTTP 401)"
    assert failure.value.failure_type == FailureType.config_error
    assert waits == []


def test_given_an_ignoring_override_when_its_status_arrives_then_the_response_is_returned_unretried(waits: List[float]) -> None:
    connection = acme()
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=404, json={})
        response = connection.send("GET", "things", error_handler=connection.error_handler.with_overrides({404: ResponseAction.IGNORE}))
        assert mock.call_count == 1
    assert response.status_code == 404
    assert waits == []


def test_given_an_override_asking_to_refresh_the_token_when_its_status_arrives_then_it_is_retried_as_an_error(waits: List[float]) -> None:
    connection = acme(authenticator=FreshToken())
    handler = connection.error_handler.with_overrides({401: ResponseAction.REFRESH_TOKEN_THEN_RETRY})
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 401, "json": {}}, OK])
        assert connection.send("GET", "things", error_handler=handler).ok
        assert [request.headers["Authorization"] for request in mock.request_history] == ["Bearer token-1", "Bearer token-2"]
    assert waits == [1.0]


def test_given_a_5xx_announcing_retry_after_when_retried_then_the_announced_wait_is_used(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}, "headers": {"Retry-After": "7"}}, OK])
        acme().send("GET", "things")
    assert waits == [7.0]


# ----- 429: waits as the vendor says ------------------------------------------------------------------


def test_given_a_429_with_retry_after_when_sent_then_it_waits_exactly_that_long(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("2"), OK])
        acme().send("GET", "things")
    assert waits == [2.0]


def test_given_a_429_with_an_http_date_when_sent_then_it_waits_until_that_date_by_the_clock(waits: List[float]) -> None:
    connection = acme(backoff=[RetryAfterBackoff(clock=lambda: 1_800_000_000.0)])  # 2027-01-15T08:00:00Z
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("Fri, 15 Jan 2027 08:01:30 GMT"), OK])
        connection.send("GET", "things")
    assert waits == [90.0]


def test_given_a_429_with_a_reset_header_when_sent_then_it_waits_until_the_reset(waits: List[float]) -> None:
    connection = acme(backoff=[RetryAfterBackoff(), RateLimitResetBackoff("X-Reset", margin=0.25, clock=lambda: 1_800_000_000.0)])
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited(**{"X-Reset": "1800000012"}), OK])
        connection.send("GET", "things")
    assert waits == [12.25]


@pytest.mark.parametrize("retry_after", ["soon", "-5", "NaN"])
def test_given_429s_without_a_usable_wait_when_sent_then_it_backs_off_exponentially_up_to_the_cap(retry_after: str, waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited(retry_after)] * 3 + [OK])
        acme(replace(FAST, max_rate_limit_waits=10, backoff_cap_seconds=3.0)).send("GET", "things")
    assert waits == [1.0, 2.0, 3.0]


def test_given_429s_without_any_header_when_sent_then_backoff_doubles_then_stays_at_the_cap(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited()] * 5 + [OK])
        acme(replace(FAST, max_rate_limit_waits=10, backoff_base_seconds=0.5, backoff_cap_seconds=4.0)).send("GET", "things")
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_given_a_429_storm_when_it_outlasts_the_error_retries_then_it_is_ridden_out(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("1")] * 3 + [OK])
        assert acme(replace(FAST, max_retries=0)).send("GET", "things").ok
    assert waits == [1.0, 1.0, 1.0]


def test_given_a_429_storm_when_it_never_ends_then_it_fails_after_max_rate_limit_waits_with_a_clear_message(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("1")] * 10)
        failure = failure_of(acme())
        assert mock.call_count == 4
    assert str(failure) == f"acme: GET {THINGS} was still rate limited after 3 waits (HTTP 429)"
    assert failure.failure_type == FailureType.transient_error
    assert waits == [1.0, 1.0, 1.0]


def test_given_errors_between_429s_when_counted_then_each_kind_has_its_own_budget(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}}, rate_limited("1"), rate_limited("1"), {"status_code": 503, "json": {}}, rate_limited("1"), OK])
        assert acme(replace(FAST, max_retries=2, max_rate_limit_waits=3)).send("GET", "things").ok
    assert waits == [1.0, 1.0, 1.0, 2.0, 1.0]


def test_given_an_error_after_429s_when_the_error_budget_is_spent_then_429s_did_not_count(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}}, rate_limited("1"), {"status_code": 500, "json": {}}])
        failure = failure_of(acme(replace(FAST, max_retries=1)))
    assert str(failure) == f"acme: GET {THINGS} failed after 2 attempts (last: HTTP 500)"


# ----- bounded waits ----------------------------------------------------------------------------------


def test_given_an_announced_wait_over_the_maximum_when_sent_then_it_fails_at_once_saying_when_to_come_back(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("3600"), OK])
        failure = failure_of(acme())
        assert mock.call_count == 1
    assert waits == []
    assert re.fullmatch(
        rf"acme: GET {re.escape(THINGS)} HTTP 429 \(rate limited\): the vendor asks to wait 1\.0 hours before the next request, "
        r"longer than the 120 s allowed \(SOURCE_USAGE_MAX_WAIT_SECONDS\); try again after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
        str(failure),
    )


def test_given_an_announced_wait_of_exactly_the_maximum_when_sent_then_it_is_waited(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("120"), OK])
        acme().send("GET", "things")
    assert waits == [120.0]


def test_given_a_5xx_announcing_a_wait_over_the_maximum_when_sent_then_it_fails_at_once(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}, "headers": {"Retry-After": "121"}}, OK])
        failure = failure_of(acme())
    assert waits == []
    assert "HTTP 503: the vendor asks to wait 121 s before the next request" in str(failure)


def test_given_waits_adding_up_over_the_total_when_sent_then_it_fails_before_the_wait_that_would_pass_it(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("5")] * 4 + [OK])
        failure = failure_of(acme(replace(FAST, max_total_wait_seconds=10.0, max_rate_limit_waits=10)))
        assert mock.call_count == 3
    assert waits == [5.0, 5.0]
    assert str(failure) == (
        f"acme: GET {THINGS} would wait more than 10 s in total (SOURCE_USAGE_MAX_TOTAL_WAIT_SECONDS); last: HTTP 429 (rate limited)"
    )


def test_given_a_total_wait_budget_when_backoff_is_exponential_then_it_counts_too(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=503, json={})
        failure = failure_of(acme(replace(FAST, max_retries=10, max_total_wait_seconds=6.0)))
    assert waits == [1.0, 2.0]
    assert "would wait more than 6 s in total" in str(failure)


def test_given_a_wait_when_retrying_then_it_is_logged_with_vendor_endpoint_reason_and_delay(waits: List[float]) -> None:
    logger = logging.getLogger("test.client.waits")
    seen: List[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with requests_mock.Mocker() as mock:
            mock.get(THINGS, [rate_limited("30"), OK])
            acme(logger=logger).send("GET", "things", params={"token": "x"})
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in seen] == [f"acme: GET {THINGS}: HTTP 429 (rate limited); retrying in 30.00s"]
    assert seen[0].levelno == logging.INFO


def test_given_a_wait_shorter_than_log_waits_over_seconds_when_retrying_then_it_is_still_logged_at_info(waits: List[float]) -> None:
    """The README's rule: every retry (an error or a 429) is logged at INFO, with why; the threshold applies to
    the waits of client-side budgets, which happen far more often."""
    logger = logging.getLogger("test.client.short-waits")
    seen: List[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with requests_mock.Mocker() as mock:
            mock.get(THINGS, [rate_limited("1"), OK])
            acme(replace(FAST, log_waits_over_seconds=5.0), logger=logger).send("GET", "things")
    finally:
        logger.removeHandler(handler)
    assert [record.levelno for record in seen] == [logging.INFO]


# ----- authentication --------------------------------------------------------------------------------


class FreshToken(AuthBase):
    """A new token on every call, as an authenticator renewing an expiring token would."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.calls += 1
        request.headers["Authorization"] = f"Bearer token-{self.calls}"
        return request


class Watching(FreshToken, ResponseAware):
    def __init__(self) -> None:
        super().__init__()
        self.seen: List[int] = []

    def update_from_response(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        assert request.headers["Authorization"] == f"Bearer token-{self.calls}"
        self.seen.append(response.status_code)


def test_given_retries_when_each_attempt_is_sent_then_authentication_is_applied_again(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}}, rate_limited("1"), OK])
        acme(authenticator=FreshToken()).send("GET", "things")
        assert [request.headers["Authorization"] for request in mock.request_history] == ["Bearer token-1", "Bearer token-2", "Bearer token-3"]


def test_given_a_response_aware_authenticator_when_responses_arrive_then_it_sees_every_one(waits: List[float]) -> None:
    authenticator = Watching()
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}}, rate_limited("1"), OK])
        acme(authenticator=authenticator).send("GET", "things")
    assert authenticator.seen == [503, 429, 200]


def test_given_a_response_aware_authenticator_when_a_failure_ends_the_request_then_it_saw_that_response_too(waits: List[float]) -> None:
    authenticator = Watching()
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=401, json={})
        with pytest.raises(UsageError):
            acme(authenticator=authenticator).send("GET", "things")
    assert authenticator.seen == [401]


def test_given_an_unauthenticated_request_when_sent_then_no_credentials_and_the_authenticator_sees_nothing(waits: List[float]) -> None:
    authenticator = Watching()
    with requests_mock.Mocker() as mock:
        mock.post(f"{BASE}/auth", json={"token": "t"})
        acme(authenticator=authenticator).send("POST", "auth", json={"application_token": "x"}, authenticated=False)
        assert "Authorization" not in mock.last_request.headers
        assert mock.last_request.json() == {"application_token": "x"}
    assert (authenticator.calls, authenticator.seen) == (0, [])


# ----- redirects and refusals ------------------------------------------------------------------------


def test_given_a_same_origin_redirect_when_followed_then_the_authorization_header_is_kept(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=302, headers={"Location": "/v1/moved"})
        mock.get(f"{BASE}/moved", json={"ok": True})
        assert acme().send("GET", "things").json() == {"ok": True}
        assert [(request.url, request.headers.get("Authorization")) for request in mock.request_history] == [
            (THINGS, "Bearer acme-token-0001"),
            (f"{BASE}/moved", "Bearer acme-token-0001"),
        ]


def test_given_shard_redirects_when_redirected_to_an_https_shard_then_the_authorization_header_is_kept(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=307, headers={"Location": "https://n149.acme.example/v1/things"})
        mock.get("https://n149.acme.example/v1/things", json={"ok": True})
        assert acme(shard_redirects=True).send("GET", "things").json() == {"ok": True}
        assert mock.request_history[-1].url == "https://n149.acme.example/v1/things"
        assert mock.request_history[-1].headers["Authorization"] == "Bearer acme-token-0001"


@pytest.mark.parametrize(
    "location, shard_redirects",
    [
        ("http://127.0.0.2/v1/things", True),  # another host altogether
        ("https://n149.acme.example/v1/things", False),  # a shard, but this vendor declares none
        ("http://n149.acme.example/v1/things", True),  # a shard over http
        ("https://evilacme.example/v1/things", True),
        ("http://api.acme.example/v1/things", False),  # a downgrade to http on the same host
    ],
)
def test_given_a_redirect_to_a_host_the_credentials_must_not_reach_when_sent_then_it_raises_before_any_request_there(
    location: str, shard_redirects: bool, waits: List[float]
) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, status_code=302, headers={"Location": location})
        foreign = mock.get(location, json={"stolen": True})
        failure = failure_of(acme(shard_redirects=shard_redirects))
        assert foreign.call_count == 0
        assert mock.call_count == 1
    assert str(failure).startswith(f"acme: GET {THINGS} was answered with an HTTP 302 redirect to ")
    assert str(failure).endswith(", which is not this vendor's configured host: not followed")
    assert failure.failure_type == FailureType.system_error
    assert waits == []


def test_given_an_ip_address_base_url_when_redirected_to_another_host_then_no_shard_is_allowed(waits: List[float]) -> None:
    base = "http://127.0.0.1:8765/acme/v1"
    with requests_mock.Mocker() as mock:
        mock.get(f"{base}/things", status_code=302, headers={"Location": "https://0.0.1/acme/v1/things"})
        foreign = mock.get("https://0.0.1/acme/v1/things", json={})
        failure = failure_of(acme(base_url=base, shard_redirects=True))
        assert foreign.call_count == 0
    assert "redirect to https://0.0.1, which is not this vendor's configured host" in str(failure)


def test_given_a_request_that_cannot_be_built_when_sent_then_it_is_a_config_error_and_nothing_is_sent(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        with pytest.raises(UsageError) as failure:
            acme().send("POST", "things", json={"amount": float("nan")})
        assert mock.call_count == 0
    assert failure.value.failure_type == FailureType.config_error
    assert str(failure.value).startswith(f"acme: the request for {THINGS} could not be built (InvalidJSONError: ")


def test_given_requests_when_sent_then_each_attempt_is_counted(waits: List[float]) -> None:
    connection = acme()
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [{"status_code": 503, "json": {}}, OK])
        connection.send("GET", "things")
        connection.send("GET", THINGS)
    assert connection.requests_sent == 3


def test_given_query_headers_and_method_when_sent_then_they_reach_the_server(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.put(THINGS, json={})
        acme().send("PUT", "things", params={"a": "1", "b": "x y"}, headers={"X-Extra": "yes"}, json={"k": 2})
        request = mock.last_request
    assert request.qs == {"a": ["1"], "b": ["x y"]}
    assert request.headers["X-Extra"] == "yes"
    assert request.headers["User-Agent"] == "source-usage (Airbyte source; https://github.com/source-usage/source-usage)"
    assert request.json() == {"k": 2}


def test_given_retry_after_zero_when_sent_then_it_retries_without_waiting(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("0"), OK])
        acme().send("GET", "things")
    assert waits == [0.0]


def test_given_several_strategies_when_a_wait_is_announced_then_the_first_that_knows_wins(waits: List[float]) -> None:
    connection = acme(backoff=[RetryAfterBackoff(), RateLimitResetBackoff("X-Reset", clock=lambda: 1_800_000_000.0)])
    with requests_mock.Mocker() as mock:
        mock.get(THINGS, [rate_limited("3", **{"X-Reset": "1800000050"}), OK])
        connection.send("GET", "things")
    assert waits == [3.0]


def test_given_redirects_not_allowed_when_a_same_origin_redirect_answers_then_it_is_not_followed_and_fails_naming_it(waits: List[float]) -> None:
    with requests_mock.Mocker() as mock:
        mock.post(THINGS, status_code=302, headers={"Location": "/v1/moved"})
        mock.post(f"{BASE}/moved", json={"ok": True})
        with pytest.raises(UsageError) as failure:
            acme().send("POST", "things", allow_redirects=False)
        assert [request.url for request in mock.request_history] == [THINGS]
    assert str(failure.value) == "acme: POST https://api.acme.example/v1/things answered with an HTTP 302 redirect to /v1/moved, which is not followed here"
