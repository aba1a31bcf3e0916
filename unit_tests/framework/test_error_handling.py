"""error_handling.py: what a response or network failure means, with messages a person can act on."""

from __future__ import annotations

from typing import Any, List, Optional

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction

from source_usage.framework.error_handling import (
    MalformedBody,
    VendorErrorHandler,
    VendorErrors,
    json_body,
    problem_details,
    untrusted,
)

URL = "https://api.acme.example/v1/things?token=s3cr3t"


def answer(status: int, body: bytes = b"{}", reason: str = "", method: str = "GET", **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.reason = reason
    response.url = URL
    response.headers.update(headers)
    response.request = requests.Request(method, URL).prepare()
    return response


def handler(**kwargs: Any) -> VendorErrorHandler:
    return VendorErrorHandler(VendorErrors("acme", rejected={401: "the API key was rejected"}), **kwargs)


def test_given_a_2xx_with_json_when_interpreted_then_success() -> None:
    assert handler().interpret_response(answer(200, b'{"a": 1}')).response_action == ResponseAction.SUCCESS
    assert handler().interpret_response(answer(299, b"[]")).response_action == ResponseAction.SUCCESS


def test_given_a_2xx_whose_body_is_not_json_when_interpreted_then_it_is_retried_as_transient() -> None:
    resolution = handler().interpret_response(answer(200, b"<html>oops</html>"))
    assert resolution.response_action == ResponseAction.RETRY
    assert resolution.failure_type == FailureType.transient_error
    assert resolution.error_message.startswith("HTTP 200 but the body is not valid JSON (")


def test_given_a_429_when_interpreted_then_rate_limited() -> None:
    resolution = handler().interpret_response(answer(429))
    assert (resolution.response_action, resolution.failure_type, resolution.error_message) == (
        ResponseAction.RATE_LIMITED,
        FailureType.transient_error,
        "HTTP 429 (rate limited)",
    )


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_given_a_retryable_status_when_interpreted_then_retry_naming_the_status(status: int) -> None:
    resolution = handler().interpret_response(answer(status, b"<html>Bad Gateway</html>"))
    assert (resolution.response_action, resolution.failure_type, resolution.error_message) == (
        ResponseAction.RETRY,
        FailureType.transient_error,
        f"HTTP {status}",
    )


@pytest.mark.parametrize("status", [501, 505, 520])
def test_given_another_5xx_when_interpreted_then_it_fails_as_a_system_error(status: int) -> None:
    resolution = handler().interpret_response(answer(status, b"{}", reason="Odd"))
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, FailureType.system_error)


def test_given_a_rejected_credential_when_interpreted_then_it_fails_as_config_error_and_is_reported() -> None:
    seen: List[str] = []
    resolution = handler(on_rejected=seen.append).interpret_response(answer(401))
    assert (resolution.response_action, resolution.failure_type, resolution.error_message) == (
        ResponseAction.FAIL,
        FailureType.config_error,
        "acme: the API key was rejected (HTTP 401)",
    )
    assert seen == ["acme: the API key was rejected (HTTP 401)"]


@pytest.mark.parametrize("status, failure_type", [(400, FailureType.config_error), (404, FailureType.config_error), (403, FailureType.system_error), (422, FailureType.system_error)])
def test_given_another_4xx_when_interpreted_then_it_fails_quoting_the_problem_without_the_query(status: int, failure_type: FailureType) -> None:
    resolution = handler().interpret_response(answer(status, b'{"title": "Bad thing", "detail": "field x"}', method="POST"))
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, failure_type)
    assert resolution.error_message == f"acme: POST https://api.acme.example/v1/things was refused with HTTP {status}: Bad thing: field x"


def test_given_a_failed_response_without_a_readable_body_when_described_then_its_reason_or_status_is_used() -> None:
    assert handler().interpret_response(answer(418, b"<html/>", reason="I'm a teapot")).error_message.endswith("HTTP 418: I'm a teapot")
    assert handler().interpret_response(answer(418, b"", reason="")).error_message.endswith("HTTP 418: HTTP 418")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_given_a_redirect_that_reached_the_handler_when_interpreted_then_it_fails_naming_only_the_targets_origin(status: int) -> None:
    response = answer(status, b"", Location="https://elsewhere.example:8443/path?token=x")
    resolution = handler().interpret_response(response)
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, FailureType.system_error)
    assert resolution.error_message == (
        f"acme: GET https://api.acme.example/v1/things answered with an HTTP {status} redirect to "
        "https://elsewhere.example:8443, which is not followed here"
    )


def test_given_a_redirect_without_location_when_interpreted_then_it_says_nowhere() -> None:
    assert handler().interpret_response(answer(302, b"")).error_message.endswith("redirect to nowhere, which is not followed here")


def test_given_an_action_override_when_its_status_arrives_then_the_override_wins() -> None:
    resolution = handler(overrides={404: ResponseAction.IGNORE}).interpret_response(answer(404))
    assert resolution.response_action == ResponseAction.IGNORE


def test_given_a_callable_override_when_it_declines_then_the_usual_meaning_applies() -> None:
    def only_coterm(response: requests.Response) -> Optional[ErrorResolution]:
        return ErrorResolution(ResponseAction.IGNORE) if b"co-term" in response.content else None

    overridden = handler(overrides={400: only_coterm})
    assert overridden.interpret_response(answer(400, b'{"title": "co-term"}')).response_action == ResponseAction.IGNORE
    assert overridden.interpret_response(answer(400, b'{"title": "other"}')).response_action == ResponseAction.FAIL


def test_given_overrides_when_added_then_the_original_handler_is_unchanged_and_both_apply() -> None:
    base = handler(overrides={404: ResponseAction.IGNORE})
    extended = base.with_overrides({403: ResponseAction.IGNORE})
    assert extended.interpret_response(answer(404)).response_action == ResponseAction.IGNORE
    assert extended.interpret_response(answer(403)).response_action == ResponseAction.IGNORE
    assert base.interpret_response(answer(403)).response_action == ResponseAction.FAIL
    assert base.with_overrides({}) is base


def test_given_overrides_when_added_then_the_rejection_callback_and_retries_are_kept() -> None:
    seen: List[str] = []
    extended = handler(max_retries=2, on_rejected=seen.append).with_overrides({404: ResponseAction.IGNORE})
    extended.interpret_response(answer(401))
    assert seen == ["acme: the API key was rejected (HTTP 401)"]
    assert extended.max_retries == 2
    assert extended.max_time is None


@pytest.mark.parametrize(
    "failure, message",
    [
        (requests.exceptions.ConnectionError("reset"), "the connection failed or was reset"),
        (requests.exceptions.ReadTimeout("slow"), "the request timed out"),
        (requests.exceptions.ConnectTimeout("slow"), "the request timed out"),
        (requests.exceptions.ChunkedEncodingError("cut"), "the connection closed in the middle of the body"),
        (requests.exceptions.ContentDecodingError("bad gzip"), "ContentDecodingError"),
    ],
)
def test_given_a_network_failure_when_interpreted_then_it_is_retried(failure: Exception, message: str) -> None:
    resolution = handler().interpret_response(failure)
    assert (resolution.response_action, resolution.failure_type, resolution.error_message) == (
        ResponseAction.RETRY,
        FailureType.transient_error,
        message,
    )


@pytest.mark.parametrize(
    "failure, failure_type",
    [
        (requests.exceptions.InvalidURL("bad url"), FailureType.config_error),
        (requests.exceptions.InvalidSchema("no adapter"), FailureType.config_error),
        (requests.exceptions.TooManyRedirects("loop"), FailureType.system_error),
        (ValueError("odd"), FailureType.system_error),
    ],
)
def test_given_a_request_that_cannot_be_sent_when_interpreted_then_it_fails_for_good(failure: Exception, failure_type: FailureType) -> None:
    resolution = handler().interpret_response(failure)
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, failure_type)
    assert resolution.error_message == f"acme: the request could not be sent ({type(failure).__name__}: {failure})"


def test_given_a_json_body_when_read_twice_then_it_is_parsed_once_and_remembered() -> None:
    response = answer(200, b'{"a": [1, 2]}')
    first = json_body(response)
    response._content = b"not json any more"
    assert json_body(response) is first
    assert first == {"a": [1, 2]}


def test_given_a_body_that_is_not_json_when_read_then_malformed_body() -> None:
    with pytest.raises(MalformedBody, match="^the body is not valid JSON \\("):
        json_body(answer(200, b"{"))


def test_given_server_text_when_quoted_then_it_is_one_printable_line_within_the_limit() -> None:
    assert untrusted("line one\nline\ttwo\x1b[31m  red ") == "line one line two [31m red"
    assert untrusted("x" * 10, limit=8) == "xxxxx..."
    assert untrusted("x" * 8, limit=8) == "xxxxxxxx"
    assert len(untrusted("y" * 1000)) == 300


@pytest.mark.parametrize(
    "body, text",
    [
        ({"title": "Not Found", "detail": "no such thing"}, "Not Found: no such thing"),
        ({"title": "Not Found"}, "Not Found"),
        ({"detail": "only detail"}, "only detail"),
        ({"error": "other shape"}, None),
        ("  plain text  ", "plain text"),
        ("   ", None),
        ([1, 2], None),
    ],
)
def test_given_an_error_body_when_read_as_problem_details_then_title_and_detail_are_joined(body: Any, text: Optional[str]) -> None:
    assert problem_details(body) == text


def test_given_a_vendor_describer_when_a_failure_is_described_then_its_text_is_quoted_safely() -> None:
    errors = VendorErrors("acme", describe=lambda body: "; ".join(body.get("errors", [])) or None)
    assert errors.text_of(answer(400, b'{"errors": ["first\\nproblem", "second"]}')) == "first problem; second"
    assert errors.text_of(answer(400, b'{"unexpected": 1}', reason="Bad Request")) == "Bad Request"


def test_given_a_300_with_a_json_body_when_interpreted_then_it_is_no_success_but_a_refusal() -> None:
    resolution = handler().interpret_response(answer(300, b'{"choices": []}'))
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.FAIL, FailureType.system_error)
    assert resolution.error_message == "acme: GET https://api.acme.example/v1/things was refused with HTTP 300: HTTP 300"


def test_given_a_response_without_its_request_when_refused_then_the_method_is_taken_as_get() -> None:
    response = answer(418, b"", reason="I'm a teapot", method="POST")
    response.request = None  # type: ignore[assignment]
    assert handler().interpret_response(response).error_message == "acme: GET https://api.acme.example/v1/things was refused with HTTP 418: I'm a teapot"


def test_given_a_relative_redirect_target_over_120_characters_when_interpreted_then_it_is_quoted_cut_to_120() -> None:
    target = "/" + "a" * 130
    message = handler().interpret_response(answer(302, b"", Location=target)).error_message
    assert message == f"acme: GET https://api.acme.example/v1/things answered with an HTTP 302 redirect to /{'a' * 116}..., which is not followed here"


def test_given_a_request_that_cannot_be_sent_with_a_long_reason_when_interpreted_then_the_reason_is_cut_to_160() -> None:
    failure = requests.exceptions.InvalidURL("x" * 200)
    message = handler().interpret_response(failure).error_message
    assert message == f"acme: the request could not be sent (InvalidURL: {'x' * 157}...)"


def test_given_a_body_that_is_not_json_when_read_then_the_parser_message_is_quoted_cut_to_120() -> None:
    with pytest.raises(MalformedBody) as failure:
        json_body(answer(200, b"{" + b"x" * 300))
    text = str(failure.value)
    assert text.startswith("the body is not valid JSON (") and text.endswith(")")
    assert 0 < len(text) - len("the body is not valid JSON ()") <= 120
    assert "None" not in text
