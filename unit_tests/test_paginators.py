"""Each paginator answers "what is the next page?" for one mechanism, whatever the vendor."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pytest
import requests
import requests_mock

from source_usage.framework.paginators import (
    HalNextLinkPaginator,
    LinkHeaderPaginator,
    NextPageUrlPaginator,
    PageNumberPaginator,
    SinglePage,
)

BASE = "https://api.example.com/v1"


def fetch(url: str, body: Any = None, headers: Optional[Mapping[str, str]] = None) -> requests.Response:
    with requests_mock.Mocker() as mock:
        mock.get(url, json=body if body is not None else [], headers=dict(headers or {}))
        return requests.get(url)


class TestLinkHeaderPaginator:
    def test_given_a_first_page_when_asked_then_it_requests_the_largest_page(self) -> None:
        assert LinkHeaderPaginator("perPage", 1000).first_page_params() == {"perPage": 1000}

    def test_given_a_next_link_when_asked_then_it_follows_it_exactly(self) -> None:
        link = (
            f"<{BASE}/items?perPage=5&startingAfter=0>; rel=first, "
            f"<{BASE}/items?perPage=5&startingAfter=105>; rel=next, "
            f"<{BASE}/items?perPage=5&endingBefore=0>; rel=last"
        )
        response = fetch(f"{BASE}/items?perPage=5", headers={"Link": link})
        assert LinkHeaderPaginator("perPage", 5).next_page(response).url == f"{BASE}/items?perPage=5&startingAfter=105"

    def test_given_a_quoted_rel_when_asked_then_it_is_understood(self) -> None:
        response = fetch(f"{BASE}/items", headers={"Link": f'<{BASE}/items?page=2>; rel="next"'})
        assert LinkHeaderPaginator().next_page(response).url == f"{BASE}/items?page=2"

    def test_given_a_relative_next_link_when_asked_then_it_resolves_against_the_response(self) -> None:
        response = fetch(f"{BASE}/items?perPage=5", headers={"Link": "</v1/items?perPage=5&startingAfter=9>; rel=next"})
        assert LinkHeaderPaginator().next_page(response).url == "https://api.example.com/v1/items?perPage=5&startingAfter=9"

    def test_given_only_first_and_last_links_when_asked_then_it_is_the_last_page(self) -> None:
        link = f"<{BASE}/items?startingAfter=0>; rel=first, <{BASE}/items?endingBefore=0>; rel=last"
        assert LinkHeaderPaginator().next_page(fetch(f"{BASE}/items", headers={"Link": link})) is None

    def test_given_no_link_header_when_asked_then_it_is_the_last_page(self) -> None:
        assert LinkHeaderPaginator().next_page(fetch(f"{BASE}/items")) is None


class TestNextPageUrlPaginator:
    def test_given_a_next_page_url_when_asked_then_it_is_followed_as_given(self) -> None:
        next_url = "https://supersim.twilio.com/v1/UsageRecords?PageSize=1000&Page=1&PageToken=PAabc"
        response = fetch(f"{BASE}/UsageRecords", {"usage_records": [], "meta": {"next_page_url": next_url}})
        assert NextPageUrlPaginator(("meta", "next_page_url"), "PageSize", 1000).next_page(response).url == next_url

    @pytest.mark.parametrize("meta", [{"next_page_url": None}, {}, None])
    def test_given_a_null_or_missing_next_page_url_when_asked_then_it_is_the_last_page(self, meta: Any) -> None:
        response = fetch(f"{BASE}/UsageRecords", {"usage_records": [], "meta": meta})
        assert NextPageUrlPaginator(("meta", "next_page_url")).next_page(response) is None


class TestPageNumberPaginator:
    def test_given_page_one_of_three_when_asked_then_it_asks_for_page_two(self) -> None:
        response = fetch(f"{BASE}/endpoint?page=1&per_page=1000", [{"id": 1}], {"X-Total-Pages": "3"})
        assert PageNumberPaginator().next_page(response).params == {"page": 2, "per_page": 1000}

    def test_given_the_last_page_by_total_pages_when_asked_then_it_stops_even_if_the_page_is_full(self) -> None:
        response = fetch(f"{BASE}/endpoint?page=3&per_page=2", [{"id": 5}, {"id": 6}], {"X-Total-Pages": "3"})
        assert PageNumberPaginator(page_size=2).next_page(response) is None

    def test_given_no_endpoints_when_asked_then_it_stops(self) -> None:
        response = fetch(f"{BASE}/endpoint?page=1&per_page=1000", [], {"X-Total-Pages": "0"})
        assert PageNumberPaginator().next_page(response) is None

    def test_given_no_total_pages_header_when_a_page_is_short_then_it_stops(self) -> None:
        response = fetch(f"{BASE}/endpoint?page=1&per_page=2", [{"id": 1}])
        assert PageNumberPaginator(page_size=2).next_page(response) is None


class TestHalNextLinkPaginator:
    def test_given_a_next_link_when_asked_then_its_href_is_followed(self) -> None:
        href = f"{BASE}/usage/units/tests?cursor=abc"
        response = fetch(f"{BASE}/usage/units/tests", {"breakdowns": [], "_links": {"next": {"href": href}}})
        assert HalNextLinkPaginator().next_page(response).url == href

    def test_given_no_next_link_when_asked_then_it_is_the_last_page(self) -> None:
        response = fetch(f"{BASE}/usage/units/tests", {"breakdowns": [], "_links": {"self": {"href": BASE}}})
        assert HalNextLinkPaginator().next_page(response) is None


def test_given_a_snapshot_when_asked_then_there_is_never_a_next_page() -> None:
    assert SinglePage().next_page(fetch(f"{BASE}/endpoint/1/stats", {"last_hour": {}})) is None
