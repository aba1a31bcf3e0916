"""emnify_endpoints: the endpoint list, paged by page number until X-Total-Pages, listed once per sync."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests_mock

from unit_tests.emnify_fixtures import BASE, emnify_streams, mock_api, page_headers, requests_to, stats_requests
from unit_tests.helpers import read_stream, template

STREAM = "emnify_endpoints"


def page_requested(request) -> tuple:  # type: ignore[no-untyped-def]
    query = parse_qs(urlsplit(request.url).query)
    return int(query["page"][0]), int(query["per_page"][0])


def mock_pages(mock: requests_mock.Mocker, pages: list, total_count: int) -> None:
    """Page n answers `pages[n-1]`; a page past the end answers the LAST page again, as emnify does."""

    def answer(request, context):  # type: ignore[no-untyped-def]
        page = min(int(parse_qs(urlsplit(request.url).query)["page"][0]), len(pages))
        context.headers.update(page_headers(page, len(pages), total_count))
        return pages[page - 1]

    mock.get(f"{BASE}/endpoint", json=answer)


def test_given_one_page_when_read_then_every_endpoint_is_a_record_as_the_api_gives_it() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_stream(emnify_streams()[STREAM])

    assert output.records == template("emnify", "endpoints")


def test_given_three_pages_when_read_then_it_asks_for_the_largest_pages_and_stops_at_x_total_pages() -> None:
    endpoints = template("emnify", "endpoints")
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock_pages(mock, [[endpoint] for endpoint in endpoints], total_count=3)
        output = read_stream(emnify_streams()[STREAM])

    assert [page_requested(request) for request in requests_to(mock, "GET", "/endpoint")] == [(1, 1000), (2, 1000), (3, 1000)]
    assert [record["id"] for record in output.records] == [166, 167, 170]


def test_given_no_total_pages_header_when_a_page_is_short_then_it_is_the_last() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock.get(f"{BASE}/endpoint", json=template("emnify", "endpoints"))
        output = read_stream(emnify_streams()[STREAM])

    assert len(requests_to(mock, "GET", "/endpoint")) == 1
    assert len(output.records) == 3


def test_given_an_endpoint_that_moved_to_the_next_page_during_the_listing_when_read_then_it_is_emitted_once() -> None:
    first, second, third = template("emnify", "endpoints")
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock_pages(mock, [[first, second], [second, third]], total_count=4)
        output = read_stream(emnify_streams()[STREAM])

    assert [record["id"] for record in output.records] == [166, 167, 170]


def test_given_the_listing_was_read_when_the_stats_streams_read_then_the_endpoints_are_not_listed_again() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        streams = emnify_streams()
        read_stream(streams[STREAM])
        read_stream(streams["emnify_endpoint_usage_monthly"])
        read_stream(streams["emnify_endpoint_usage_last_hour"])

    assert len(requests_to(mock, "GET", "/endpoint")) == 1
    assert len(stats_requests(mock)) == 3


def test_given_only_a_stats_stream_when_read_then_it_lists_the_endpoints_once_itself() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_stream(emnify_streams()["emnify_endpoint_usage_last_hour"])

    assert len(requests_to(mock, "GET", "/endpoint")) == 1
    assert sorted({record["endpoint_id"] for record in output.records}) == [166, 167, 170]
