"""endpoint.py: an endpoint's declaration and `read_pages`, the one page loop every stream uses."""

from __future__ import annotations

from typing import Any, List, Mapping, Tuple

import pytest
import requests
import requests_mock
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ResponseAction

from source_usage.framework.endpoint import Endpoint, describe_partition, expect_list, expect_object, read_pages
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import UsageError, VendorRequestFailed
from source_usage.framework.paginators import BodyCursorPaginator, NextPageUrlPaginator, PageNumberPaginator
from source_usage.framework.settings import Settings
from source_usage.framework.vendor import VendorConnection

BASE = "https://api.acme.example/v1"
ITEMS = f"{BASE}/orgs/o1/items"


def items_of(body: Any, partition: Mapping[str, Any], response: requests.Response) -> List[dict]:
    return [{**item, "org": partition.get("org")} for item in body["items"]]


def acme() -> VendorConnection:
    return VendorConnection("acme", BASE, VendorErrors("acme"), settings=Settings(max_retries=0))


def endpoint(**kwargs: Any) -> Endpoint:
    kwargs.setdefault("paginator", NextPageUrlPaginator(("next",), "limit", 2))
    return Endpoint("orgs/{org}/items", records=items_of, **kwargs)


def read_all(vendor: VendorConnection, declared: Endpoint, partition: Mapping[str, Any]) -> List[dict]:
    return [record for page in read_pages(vendor, declared, partition) for record in page.records]


def body(*ids: int, next_url: Any = None) -> dict:
    return {"items": [{"id": value} for value in ids], "next": next_url}


def test_given_pages_linked_in_the_body_when_read_then_every_record_arrives_in_order() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, 2, next_url=f"{ITEMS}?cursor=b")}, {"json": body(3, next_url=f"{ITEMS}?cursor=c")}, {"json": body(4)}])
        assert read_all(acme(), endpoint(query=lambda p: {"since": "2026-01-01"}), {"org": "o1"}) == [
            {"id": 1, "org": "o1"},
            {"id": 2, "org": "o1"},
            {"id": 3, "org": "o1"},
            {"id": 4, "org": "o1"},
        ]
        assert [request.url for request in mock.request_history] == [
            f"{ITEMS}?limit=2&since=2026-01-01",  # the first page asks the largest page and the query
            f"{ITEMS}?cursor=b",  # next links are followed exactly as given
            f"{ITEMS}?cursor=c",
        ]


def test_given_a_body_cursor_when_read_then_the_cursor_is_sent_with_the_usual_query() -> None:
    declared = endpoint(paginator=BodyCursorPaginator(("next",), "after", "limit", 2), query=lambda p: {"since": "x"})
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, next_url="c2")}, {"json": body(2)}])
        assert [record["id"] for record in read_all(acme(), declared, {"org": "o1"})] == [1, 2]
        assert [request.qs for request in mock.request_history] == [{"limit": ["2"], "since": ["x"]}, {"limit": ["2"], "since": ["x"], "after": ["c2"]}]


def test_given_partition_values_when_the_path_is_filled_then_they_are_url_encoded() -> None:
    assert endpoint().path_for({"org": "a/../b c"}) == "orgs/a%2F..%2Fb%20c/items"
    assert Endpoint("networks/{id}/usage", records=items_of).path_for({"id": 42, "unused": "x"}) == "networks/42/usage"


def test_given_a_partition_missing_a_path_field_when_the_path_is_filled_then_it_is_a_clear_error() -> None:
    with pytest.raises(UsageError) as failure:
        endpoint().path_for({"network": "n1"})
    assert str(failure.value) == "endpoint 'orgs/{org}/items' needs 'org' in its partition"
    assert failure.value.failure_type == FailureType.system_error


def test_given_a_next_link_that_repeats_when_read_then_it_stops_there_with_a_warning(airbyte_log: Any) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, next_url=f"{ITEMS}?cursor=b")}, {"json": body(2, next_url=f"{ITEMS}?cursor=c")}, {"json": body(3, next_url=f"{ITEMS}?cursor=b")}])
        assert [record["id"] for record in read_all(acme(), endpoint(), {"org": "o1"})] == [1, 2, 3]
        assert mock.call_count == 3
    assert airbyte_log.lines() == [f"acme: {ITEMS} sent the same next-page link twice; stopping there"]


def test_given_a_next_link_to_the_page_itself_when_read_then_it_stops_with_a_warning(airbyte_log: Any) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, next_url=f"{ITEMS}?cursor=b")}, {"json": body(2, next_url=f"{ITEMS}?cursor=b")}])
        assert [record["id"] for record in read_all(acme(), endpoint(), {"org": "o1"})] == [1, 2]
        assert mock.call_count == 2
    assert len(airbyte_log.lines()) == 1


def test_given_repeating_next_parameters_when_read_then_it_stops_with_a_warning(airbyte_log: Any) -> None:
    declared = endpoint(paginator=BodyCursorPaginator(("next",), "after"))
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, next_url="c1")}, {"json": body(2, next_url="c1")}])
        assert [record["id"] for record in read_all(acme(), declared, {"org": "o1"})] == [1, 2]
        assert mock.call_count == 2
    assert airbyte_log.lines() == [f"acme: {ITEMS} sent the same next-page link twice; stopping there"]


def test_given_fresh_next_links_forever_when_the_page_cap_is_passed_then_it_fails_with_a_clear_message() -> None:
    counter = iter(range(10_000))
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, json=lambda request, context: body(1, next_url=f"{ITEMS}?cursor={next(counter)}"))
        with pytest.raises(VendorRequestFailed) as failure:
            read_all(acme(), endpoint(max_pages=3), {"org": "o1", "name": "First org"})
        assert mock.call_count == 3
    assert str(failure.value) == f"acme: GET {ITEMS} kept sending next pages past 3 pages for org o1, name First org; giving up"
    assert failure.value.failure_type == FailureType.system_error


def test_given_exactly_the_page_cap_when_the_last_page_ends_the_sequence_then_it_succeeds() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, next_url=f"{ITEMS}?cursor=b")}, {"json": body(2, next_url=f"{ITEMS}?cursor=c")}, {"json": body(3)}])
        assert [record["id"] for record in read_all(acme(), endpoint(max_pages=3), {"org": "o1"})] == [1, 2, 3]


def test_given_a_server_announcing_more_pages_than_the_cap_when_read_then_it_fails_at_once_before_any_record() -> None:
    declared = Endpoint("orgs/{org}/items", records=lambda body, partition, response: body, paginator=PageNumberPaginator(page_size=2), max_pages=5)
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, json=[{"id": 1}, {"id": 2}], headers={"X-Total-Pages": "6"})
        pages = read_pages(acme(), declared, {"org": "o1"})
        with pytest.raises(VendorRequestFailed) as failure:
            next(pages)
        assert mock.call_count == 1
    assert str(failure.value) == f"acme: GET {ITEMS} announces 6 pages, more than the 5 this endpoint can sensibly have; giving up"


def test_given_a_server_announcing_exactly_the_cap_when_read_then_every_page_is_read() -> None:
    declared = Endpoint("orgs/{org}/items", records=lambda body, partition, response: body, paginator=PageNumberPaginator(page_size=1), max_pages=2)
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": [{"id": 1}], "headers": {"X-Total-Pages": "2"}}, {"json": [{"id": 2}], "headers": {"X-Total-Pages": "2"}}])
        assert read_all(acme(), declared, {"org": "o1"}) == [{"id": 1}, {"id": 2}]
        assert [request.qs for request in mock.request_history] == [{"page": ["1"], "per_page": ["1"]}, {"page": ["2"], "per_page": ["1"]}]


@pytest.mark.parametrize("foreign", ["http://127.0.0.2/v1/orgs/o1/items?cursor=b", "http://api.acme.example/v1/orgs/o1/items?cursor=b", "https://api.acme.example:8443/v1/x"])
def test_given_a_next_link_to_another_host_when_read_then_it_fails_before_any_request_reaches_it(foreign: str) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, json=body(1, next_url=foreign))
        stolen = mock.get(foreign, json=body(2))
        pages = read_pages(acme(), endpoint(), {"org": "o1"})
        assert [record["id"] for record in next(pages).records] == [1]
        with pytest.raises(VendorRequestFailed) as failure:
            next(pages)
        assert stolen.call_count == 0
        assert mock.call_count == 1
    assert str(failure.value).startswith(f"acme: GET {ITEMS} sent a next-page link to ")
    assert str(failure.value).endswith(", which is not this vendor's configured host: not followed")
    assert failure.value.failure_type == FailureType.system_error


def test_given_a_shard_vendor_when_a_next_link_points_at_a_shard_then_it_is_followed() -> None:
    vendor = VendorConnection("acme", BASE, VendorErrors("acme"), shard_redirects=True, settings=Settings(max_retries=0))
    shard = "https://n7.acme.example/v1/orgs/o1/items?cursor=b"
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, json=body(1, next_url=shard))
        mock.get(shard, json=body(2))
        assert [record["id"] for record in read_all(vendor, endpoint(), {"org": "o1"})] == [1, 2]


def test_given_an_ignored_response_when_read_then_on_ignored_is_told_and_the_sequence_ends() -> None:
    told: List[Tuple[int, Mapping[str, Any]]] = []
    declared = endpoint(overrides={404: ResponseAction.IGNORE}, on_ignored=lambda response, partition: told.append((response.status_code, partition)))
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, status_code=404, json={"title": "gone"})
        assert read_all(acme(), declared, {"org": "o1"}) == []
        assert mock.call_count == 1
    assert told == [(404, {"org": "o1"})]


def test_given_an_ignored_response_without_a_callback_when_read_then_a_warning_names_partition_and_reason(airbyte_log: Any) -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, status_code=403, json={"title": "Forbidden", "detail": "not yours"})
        assert read_all(acme(), endpoint(overrides={403: ResponseAction.IGNORE}), {"org": "o1"}) == []
    assert airbyte_log.lines() == [f"acme: skipping org o1 after HTTP 403 from {ITEMS}: Forbidden: not yours"]


def test_given_an_ignored_page_after_records_when_read_then_the_records_so_far_are_kept() -> None:
    declared = endpoint(overrides={404: ResponseAction.IGNORE}, on_ignored=lambda response, partition: None)
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1, next_url=f"{ITEMS}?cursor=b")}, {"status_code": 404, "json": {}}])
        assert [record["id"] for record in read_all(acme(), declared, {"org": "o1"})] == [1]


def test_given_an_endpoint_with_headers_and_a_method_when_read_then_they_are_sent() -> None:
    declared = Endpoint("orgs/{org}/items", records=items_of, method="POST", headers={"X-Expand": "tests"})
    with requests_mock.Mocker() as mock:
        mock.post(ITEMS, json=body(1))
        read_all(acme(), declared, {"org": "o1"})
        assert mock.last_request.headers["X-Expand"] == "tests"


def test_given_a_page_when_read_then_it_carries_its_response() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, json=body(1), headers={"Date": "Mon, 30 Nov 2026 12:00:00 GMT"})
        [page] = list(read_pages(acme(), endpoint(), {"org": "o1"}))
    assert page.response.headers["Date"] == "Mon, 30 Nov 2026 12:00:00 GMT"


def test_given_a_partition_when_described_then_only_its_scalar_fields_are_shown() -> None:
    assert describe_partition({"org": "o1", "n": 3, "window": object(), "ids": ["a"]}) == "org o1, n 3"
    assert describe_partition({}) == "the request"
    assert describe_partition({"org": "evil\nline"}) == "org evil line"


def response_of(method: str = "GET") -> requests.Response:
    response = requests.Response()
    response.url = f"{ITEMS}?token=x"
    response.request = requests.Request(method, response.url).prepare()
    return response


@pytest.mark.parametrize("value, kind", [({"a": 1}, "an object"), ("x", "a string"), (3, "a number"), (None, "null"), (True, "a boolean")])
def test_given_a_body_that_is_not_a_list_when_a_list_is_expected_then_the_error_says_what_came_instead(value: Any, kind: str) -> None:
    with pytest.raises(UsageError) as failure:
        expect_list(value, "acme", response_of(), "items")
    assert str(failure.value) == f"acme: GET {ITEMS} answered {kind}, not a list of items"


def test_given_a_body_that_is_not_an_object_when_an_object_is_expected_then_the_error_says_what_came_instead() -> None:
    with pytest.raises(UsageError) as failure:
        expect_object([1], "acme", response_of("POST"), "a usage summary")
    assert str(failure.value) == f"acme: POST {ITEMS} answered a list, not a usage summary"
    assert expect_list([1], "acme", response_of(), "items") == [1]
    assert expect_object({"a": 1}, "acme", response_of(), "x") == {"a": 1}


def test_given_a_long_partition_when_described_then_it_is_cut_to_200_characters() -> None:
    described = describe_partition({"org": "x" * 300})
    assert described == "org " + "x" * 193 + "..."
    assert len(described) == 200


@pytest.mark.parametrize("value, kind", [(2.5, "a number"), (b"x", "bytes"), ((1,), "tuple")])
def test_given_a_float_or_an_unusual_value_when_a_list_is_expected_then_the_error_names_its_kind(value: Any, kind: str) -> None:
    with pytest.raises(UsageError) as failure:
        expect_list(value, "acme", response_of(), "items")
    assert str(failure.value) == f"acme: GET {ITEMS} answered {kind}, not a list of items"


def test_given_a_response_without_its_request_when_the_body_is_of_the_wrong_kind_then_the_method_is_taken_as_get() -> None:
    response = response_of("POST")
    response.request = None  # type: ignore[assignment]
    with pytest.raises(UsageError) as as_list:
        expect_list({}, "acme", response, "items")
    with pytest.raises(UsageError) as as_object:
        expect_object([], "acme", response, "a summary")
    assert str(as_list.value) == f"acme: GET {ITEMS} answered an object, not a list of items"
    assert str(as_object.value) == f"acme: GET {ITEMS} answered a list, not a summary"


def test_given_three_numbered_pages_when_read_then_each_page_number_is_asked_once() -> None:
    with requests_mock.Mocker() as mock:
        mock.get(ITEMS, [{"json": body(1), "headers": {"X-Total-Pages": "3"}}, {"json": body(2), "headers": {"X-Total-Pages": "3"}}, {"json": body(3), "headers": {"X-Total-Pages": "3"}}])
        records = read_all(acme(), endpoint(paginator=PageNumberPaginator(page_size=1)), {"org": "o1"})

    assert [record["id"] for record in records] == [1, 2, 3]
    assert [request.qs["page"] for request in mock.request_history] == [["1"], ["2"], ["3"]]


def test_given_a_post_answered_with_an_object_when_a_list_is_expected_then_the_error_names_the_post() -> None:
    with pytest.raises(UsageError) as failure:
        expect_list({"a": 1}, "acme", response_of("POST"), "items")
    assert str(failure.value) == f"acme: POST {ITEMS} answered an object, not a list of items"
