"""emnify_endpoints: the endpoint list, paged by page number until X-Total-Pages, each endpoint once, listed
again when the API counts more endpoints than were listed, and listed once per sync for every stream."""

from __future__ import annotations

from typing import Any, List
from urllib.parse import parse_qs, urlsplit

import requests_mock

from unit_tests.emnify_fixtures import (  # noqa: F401  (fixtures: fresh_process_budgets is autouse)
    BASE,
    DAILY,
    ENDPOINTS,
    LAST_HOUR,
    MONTHLY,
    emnify_config,
    endpoints,
    mock_api,
    mock_pages,
    requests_to,
    stats_endpoint_ids,
    stats_requests,
    fresh_process_budgets,
)
from unit_tests.helpers import log_lines, read_streams, records

ENDPOINT_166 = {
    "id": 166,
    "name": "arduino01",
    "tags": "arduino, meter, temp",
    "created": "2014-08-01T08:47:00Z",
    "last_updated": "2016-03-02T15:25:34Z",
    "status": {"id": 0, "description": "Enabled"},
    "service_profile": {"id": 1, "name": "Smart Meter"},
    "tariff_profile": {"id": 3, "name": "Domestic only"},
    "ip_address": "10.2.1.1",
    "ip_address_space": {"id": 2},
    "sim": {"id": 788, "iccid": "7368267364738977362", "imsi": "901991234567890", "msisdn": "88563748761"},
    "imei": "86434567888932",
    "imei_lock": True,
}


def pages_requested(mock: requests_mock.Mocker) -> List[tuple]:
    found = []
    for request in requests_to(mock, "GET", "/endpoint"):
        query = parse_qs(urlsplit(request.url).query)
        found.append((int(query["page"][0]), int(query["per_page"][0])))
    return found


def ids(output: Any) -> List[int]:
    return [record["id"] for record in records(output, ENDPOINTS)]


def warnings(output: Any) -> List[str]:
    return [line for line in log_lines(output, "WARN") if line.startswith("emnify: listed")]


def test_given_one_page_when_synced_then_every_endpoint_is_a_record_with_its_instants_in_utc_z() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [ENDPOINTS])

    assert records(output, ENDPOINTS)[0] == ENDPOINT_166, "created +00:00 and last_updated .000+0000 end in Z"
    assert [(record["created"], record["last_updated"]) for record in records(output, ENDPOINTS)] == [
        ("2014-08-01T08:47:00Z", "2016-03-02T15:25:34Z"),
        ("2019-02-11T10:00:00Z", "2020-01-05T09:00:00Z"),
        ("2020-06-30T12:00:00Z", "2020-07-01T08:30:00Z"),
    ]
    assert pages_requested(mock) == [(1, 1000)], "the largest page the API allows"


def test_given_instants_with_other_offsets_when_synced_then_they_are_converted_to_utc() -> None:
    listed = endpoints(166)
    listed[0]["created"] = "2014-08-01T10:47:00.000+0200"
    listed[0]["last_updated"] = "2016-03-02T15:25:34.250+0000"
    with requests_mock.Mocker() as mock:
        mock_api(mock, listed=listed)
        [record] = records(read_streams(emnify_config(), [ENDPOINTS]), ENDPOINTS)

    assert (record["created"], record["last_updated"]) == ("2014-08-01T08:47:00Z", "2016-03-02T15:25:34.250000Z")


def test_given_three_pages_when_synced_then_x_total_pages_ends_the_listing() -> None:
    first, second, third = endpoints()
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock_pages(mock, [[[first], [second], [third]]], total_count=3)  # page 4 would answer page 3 again
        output = read_streams(emnify_config(), [ENDPOINTS])

    assert pages_requested(mock) == [(1, 1000), (2, 1000), (3, 1000)]
    assert ids(output) == [166, 167, 170]


def test_given_an_endpoint_that_moved_to_the_next_page_during_the_listing_when_synced_then_it_is_emitted_once() -> None:
    first, second, third = endpoints()
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock_pages(mock, [[[first, second], [second, third]]], total_count=3)
        output = read_streams(emnify_config(), [ENDPOINTS])

    assert ids(output) == [166, 167, 170]
    assert len(requests_to(mock, "GET", "/endpoint")) == 2, "all three counted were listed: not listed again"
    assert warnings(output) == []


def test_given_fewer_endpoints_listed_than_counted_when_synced_then_it_lists_again_once_emitting_only_the_new_ones() -> None:
    first, second, third = endpoints()
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        # A deletion shifted the pages during the first listing: 167 was skipped; the second listing has it.
        mock_pages(mock, [[[first], [third]], [[first, second], [third]]], total_count=3)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY])

    assert ids(output) == [166, 170, 167]
    assert pages_requested(mock) == [(1, 1000), (2, 1000), (1, 1000), (2, 1000)]
    assert warnings(output) == []
    assert stats_endpoint_ids(stats_requests(mock)) == [166, 167, 170], "the usage streams read every endpoint listed"
    assert (
        "emnify: the endpoint count changed during the listing (3; 2 listed): endpoints were added or deleted, which shifts "
        "the pages; listing again"
    ) in log_lines(output)


def test_given_endpoints_still_missing_after_the_second_listing_when_synced_then_one_warning_says_how_many() -> None:
    first, second, third = endpoints()
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock_pages(mock, [[[first], [third]]], total_count=5)
        output = read_streams(emnify_config(), [ENDPOINTS])

    assert ids(output) == [166, 170]
    assert len(requests_to(mock, "GET", "/endpoint")) == 4, "two listings of two pages, no third"
    assert warnings(output) == [
        "emnify: listed the endpoints twice and still 3 fewer than the API counts (5): endpoint(s) changing during the listing "
        "may have been missed in this sync"
    ]


def test_given_no_total_pages_header_when_a_page_is_short_then_it_is_the_last() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        mock.get(f"{BASE}/endpoint", json=endpoints())
        output = read_streams(emnify_config(), [ENDPOINTS])

    assert pages_requested(mock) == [(1, 1000)]
    assert ids(output) == [166, 167, 170]


def test_given_the_listing_was_read_when_every_usage_stream_reads_then_the_endpoints_are_not_listed_again() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [ENDPOINTS, MONTHLY, LAST_HOUR, DAILY])

    assert len(requests_to(mock, "GET", "/endpoint")) == 1
    assert stats_endpoint_ids(stats_requests(mock)) == [166, 167, 170]
    assert len(records(output, ENDPOINTS)) == 3


def test_given_only_a_usage_stream_when_synced_then_it_lists_the_endpoints_once_itself() -> None:
    with requests_mock.Mocker() as mock:
        mock_api(mock)
        output = read_streams(emnify_config(), [LAST_HOUR])

    assert len(requests_to(mock, "GET", "/endpoint")) == 1
    assert sorted({record["endpoint_id"] for record in records(output, LAST_HOUR)}) == [166, 167, 170]
    assert records(output, ENDPOINTS) == []
