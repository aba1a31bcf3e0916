"""paginators.py: each paginator answers "what is the next page?" for one paging mechanism."""

from __future__ import annotations

from typing import Any, Optional

import orjson
import pytest
import requests

from source_usage.framework.paginators import (
    BodyCursorPaginator,
    HalNextLinkPaginator,
    LinkHeaderPaginator,
    NextPage,
    NextPageUrlPaginator,
    PageNumberPaginator,
    SinglePage,
)


def page(url: str = "https://api.acme.example/v1/items", body: Any = None, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.url = url
    response._content = orjson.dumps(body if body is not None else {})
    response.headers.update(headers)
    return response


def test_given_a_page_size_when_the_first_page_is_asked_then_it_is_sent_as_its_parameter() -> None:
    assert LinkHeaderPaginator("perPage", 1000).first_page_params() == {"perPage": 1000}
    assert LinkHeaderPaginator().first_page_params() == {}
    assert LinkHeaderPaginator("perPage").first_page_params() == {}


def test_given_a_single_page_endpoint_when_asked_then_there_is_never_a_next_page() -> None:
    assert SinglePage().next_page(page(**{"Link": '<https://api.acme.example/v1/items?p=2>; rel="next"'})) is None
    assert SinglePage().announced_pages(page()) is None


def test_given_a_link_header_with_rel_next_when_asked_then_its_url_is_the_next_page() -> None:
    link = '<https://api.acme.example/v1/items?startingAfter=abc>; rel="next", <https://api.acme.example/v1/items>; rel="first"'
    assert LinkHeaderPaginator().next_page(page(Link=link)) == NextPage(url="https://api.acme.example/v1/items?startingAfter=abc")


def test_given_a_relative_link_when_asked_then_it_is_resolved_against_the_response_url() -> None:
    response = page("https://n149.acme.example/v1/items?x=1", Link='</v1/items?startingAfter=b>; rel="next"')
    assert LinkHeaderPaginator().next_page(response) == NextPage(url="https://n149.acme.example/v1/items?startingAfter=b")


def test_given_a_link_header_without_rel_next_when_asked_then_it_was_the_last_page() -> None:
    assert LinkHeaderPaginator().next_page(page(Link='<https://api.acme.example/v1/items>; rel="first"')) is None
    assert LinkHeaderPaginator().next_page(page()) is None


def test_given_a_next_page_url_in_the_body_when_asked_then_it_is_the_next_page() -> None:
    paginator = NextPageUrlPaginator(("meta", "next_page_url"), "PageSize", 500)
    body = {"meta": {"next_page_url": "https://api.acme.example/v1/items?Page=1&PageToken=x"}}
    assert paginator.next_page(page(body=body)) == NextPage(url="https://api.acme.example/v1/items?Page=1&PageToken=x")
    assert paginator.first_page_params() == {"PageSize": 500}


def test_given_a_relative_next_page_url_in_the_body_when_asked_then_it_is_resolved() -> None:
    paginator = NextPageUrlPaginator(("next",))
    assert paginator.next_page(page(body={"next": "items?page=2"})) == NextPage(url="https://api.acme.example/v1/items?page=2")


@pytest.mark.parametrize("body", [{"meta": {"next_page_url": None}}, {"meta": {"next_page_url": ""}}, {"meta": {}}, {"meta": "x"}, {"meta": {"next_page_url": 5}}, [1, 2]])
def test_given_no_usable_next_page_url_when_asked_then_it_was_the_last_page(body: Any) -> None:
    assert NextPageUrlPaginator(("meta", "next_page_url")).next_page(page(body=body)) is None


def test_given_a_hal_next_link_when_asked_then_its_href_is_the_next_page() -> None:
    body = {"_links": {"next": {"href": "https://api.acme.example/v7/usage?cursor=2"}}}
    assert HalNextLinkPaginator().next_page(page(body=body)) == NextPage(url="https://api.acme.example/v7/usage?cursor=2")
    assert HalNextLinkPaginator().next_page(page(body={"_links": {"self": {"href": "x"}}})) is None
    assert HalNextLinkPaginator().first_page_params() == {}


def test_given_a_body_cursor_when_asked_then_it_is_sent_back_with_the_page_size() -> None:
    paginator = BodyCursorPaginator(("paging", "next_cursor"), "cursor", "limit", 200)
    assert paginator.next_page(page(body={"paging": {"next_cursor": "abc"}})) == NextPage(params={"cursor": "abc", "limit": 200})


def test_given_a_numeric_body_cursor_when_asked_then_it_is_sent_as_text() -> None:
    paginator = BodyCursorPaginator(("next",), "after")
    assert paginator.next_page(page(body={"next": 0})) == NextPage(params={"after": "0"})
    assert paginator.next_page(page(body={"next": 17})) == NextPage(params={"after": "17"})


@pytest.mark.parametrize("cursor", [None, "", {"a": 1}, [1], True, False])
def test_given_an_absent_or_unusable_body_cursor_when_asked_then_it_was_the_last_page(cursor: Any) -> None:
    assert BodyCursorPaginator(("next",), "after").next_page(page(body={"next": cursor})) is None
    assert BodyCursorPaginator(("next",), "after").next_page(page(body={})) is None


def test_given_page_numbers_when_the_first_page_is_asked_then_page_and_size_are_sent() -> None:
    assert PageNumberPaginator(page_size=100).first_page_params() == {"page": 1, "per_page": 100}
    assert PageNumberPaginator("p", "size", 50, first_page=0).first_page_params() == {"p": 0, "size": 50}


def test_given_a_total_pages_header_when_asked_then_it_is_the_announced_page_count() -> None:
    paginator = PageNumberPaginator()
    assert paginator.announced_pages(page(**{"X-Total-Pages": "7"})) == 7
    assert paginator.announced_pages(page(**{"X-Total-Pages": " 7 "})) == 7
    assert paginator.announced_pages(page(**{"X-Total-Pages": "0"})) == 0
    assert paginator.announced_pages(page(**{"X-Total-Pages": "-1"})) is None
    assert paginator.announced_pages(page(**{"X-Total-Pages": "many"})) is None
    assert paginator.announced_pages(page()) is None
    assert PageNumberPaginator(total_pages_header="X-Count").announced_pages(page(**{"X-Count": "3"})) == 3


def test_given_a_page_before_the_announced_last_when_asked_then_the_next_number_follows() -> None:
    paginator = PageNumberPaginator(page_size=2)
    response = page("https://api.acme.example/v1/items?page=2&per_page=2", body=[1], **{"X-Total-Pages": "3"})
    assert paginator.next_page(response) == NextPage(params={"page": 3, "per_page": 2})


def test_given_the_announced_last_page_when_asked_then_it_ends_even_if_the_page_is_full() -> None:
    paginator = PageNumberPaginator(page_size=2)
    assert paginator.next_page(page("https://api.acme.example/v1/items?page=3&per_page=2", body=[1, 2], **{"X-Total-Pages": "3"})) is None
    assert paginator.next_page(page("https://api.acme.example/v1/items?page=4&per_page=2", body=[1, 2], **{"X-Total-Pages": "3"})) is None


def test_given_no_total_and_a_full_page_when_asked_then_the_next_number_follows() -> None:
    paginator = PageNumberPaginator(page_size=2)
    assert paginator.next_page(page("https://api.acme.example/v1/items?page=1&per_page=2", body=[1, 2])) == NextPage(params={"page": 2, "per_page": 2})


def test_given_no_total_and_a_short_or_odd_page_when_asked_then_it_was_the_last() -> None:
    paginator = PageNumberPaginator(page_size=2)
    assert paginator.next_page(page("https://api.acme.example/v1/items?page=1&per_page=2", body=[1])) is None
    assert paginator.next_page(page("https://api.acme.example/v1/items?page=1&per_page=2", body={"items": [1, 2]})) is None


def test_given_no_page_number_in_the_url_when_asked_then_the_first_page_is_assumed() -> None:
    paginator = PageNumberPaginator(page_size=1, first_page=1)
    assert paginator.next_page(page("https://api.acme.example/v1/items", body=[1])) == NextPage(params={"page": 2, "per_page": 1})


def test_given_an_unreadable_page_number_in_the_url_when_asked_then_it_ends() -> None:
    assert PageNumberPaginator(page_size=1).next_page(page("https://api.acme.example/v1/items?page=x", body=[1])) is None


def test_given_a_paginator_without_announcement_when_asked_for_pages_then_none() -> None:
    response: Optional[requests.Response] = page(**{"X-Total-Pages": "3"})
    assert LinkHeaderPaginator().announced_pages(response) is None
    assert BodyCursorPaginator(("n",), "c").announced_pages(response) is None


def test_given_page_numbers_with_the_defaults_when_the_first_page_is_asked_then_a_thousand_a_page_from_page_one() -> None:
    assert PageNumberPaginator().first_page_params() == {"page": 1, "per_page": 1000}
