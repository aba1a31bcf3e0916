"""How to read one vendor endpoint, declared once, and the one page loop every stream uses.

An `Endpoint` says where a request goes (a path template filled from the partition, relative to the
vendor's base URL), what it asks (query, headers), how it pages, how a page's JSON body becomes records,
which statuses it treats specially (a 400 that means "skip this organization") and how many pages a
partition may sensibly have. `read_pages` follows the pages:

* next-page URLs are a server's choice: one outside the vendor's allowed hosts is never requested, and
  the stream fails naming the foreign host;
* a next link that repeats ends the sequence with a warning; a server announcing more pages than the
  endpoint's cap, or sending fresh next links past it, fails the partition with a clear error;
* each page is handed on before the next one is requested, so one page's body is in memory at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional
from urllib.parse import quote

import requests
from airbyte_cdk.models import FailureType

from source_usage.framework.error_handling import Override, json_body, untrusted
from source_usage.framework.errors import ForeignHost, UsageError, VendorRequestFailed, endpoint_of
from source_usage.framework.paginators import Paginator, SinglePage

if TYPE_CHECKING:
    from source_usage.framework.vendor import VendorConnection

Partition = Mapping[str, Any]
RecordsOf = Callable[[Any, Partition, requests.Response], Iterable[dict]]
LOGGER = logging.getLogger("airbyte")


def _no_query(partition: Partition) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Endpoint:
    path: str  # relative to the base URL; `{field}` is filled (URL-encoded) from the partition
    records: RecordsOf
    query: Callable[[Partition], Mapping[str, Any]] = _no_query
    paginator: Paginator = field(default_factory=SinglePage)
    max_pages: int = 1000
    overrides: Mapping[int, Override] = field(default_factory=dict)
    on_ignored: Optional[Callable[[requests.Response, Partition], None]] = None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"

    def path_for(self, partition: Partition) -> str:
        try:
            return self.path.format_map({key: quote(str(value), safe="") for key, value in partition.items()})
        except (KeyError, IndexError, ValueError) as missing:
            raise UsageError(f"endpoint {self.path!r} needs {missing} in its partition", FailureType.system_error) from None


@dataclass
class Page:
    records: Iterable[dict]
    response: requests.Response


def read_pages(vendor: "VendorConnection", endpoint: Endpoint, partition: Partition) -> Iterator[Page]:
    """The pages of `endpoint` for `partition`, first to last. An ignored response (an override chose to
    skip it) ends the sequence after `endpoint.on_ignored` says why."""
    url = vendor.url(endpoint.path_for(partition))
    first_params = {**endpoint.paginator.first_page_params(), **endpoint.query(partition)}
    params: Optional[Mapping[str, Any]] = first_params
    handler = vendor.handler_for(endpoint)
    followed: set = set()
    for _ in range(endpoint.max_pages):
        response = vendor.client.send(endpoint.method, url, params=params, headers=endpoint.headers or None, error_handler=handler)
        if not response.ok:
            _ignored(vendor, endpoint, response, partition)
            return
        announced = endpoint.paginator.announced_pages(response)
        if announced is not None and announced > endpoint.max_pages:
            raise VendorRequestFailed(
                vendor.name, endpoint.method, response.url,
                f"announces {announced:,} pages, more than the {endpoint.max_pages:,} this endpoint can sensibly have; giving up",
                FailureType.system_error,
            )
        yield Page(endpoint.records(json_body(response), partition, response), response)
        next_page = endpoint.paginator.next_page(response)
        if next_page is None:
            return
        if next_page.url:
            try:
                vendor.policy.check(next_page.url, "sent a next-page link to")
            except ForeignHost as foreign:
                raise VendorRequestFailed(vendor.name, endpoint.method, response.url, str(foreign), FailureType.system_error) from None
        marker = next_page.url or tuple(sorted((str(k), str(v)) for k, v in next_page.params.items()))
        if marker in followed or next_page.url == response.url:
            LOGGER.warning(f"{vendor.name}: {endpoint_of(response.url)} sent the same next-page link twice; stopping there")
            return
        followed.add(marker)
        url, params = (next_page.url, None) if next_page.url else (url, {**first_params, **next_page.params})
        del response  # one page's body in memory at a time, not two while the next one downloads
    raise VendorRequestFailed(
        vendor.name, endpoint.method, url,
        f"kept sending next pages past {endpoint.max_pages:,} pages for {describe_partition(partition)}; giving up",
        FailureType.system_error,
    )


def _ignored(vendor: "VendorConnection", endpoint: Endpoint, response: requests.Response, partition: Partition) -> None:
    if endpoint.on_ignored is not None:
        endpoint.on_ignored(response, partition)
    else:
        LOGGER.warning(
            f"{vendor.name}: skipping {describe_partition(partition)} after HTTP {response.status_code} from "
            f"{endpoint_of(response.url)}: {vendor.errors.text_of(response)}"
        )


def describe_partition(partition: Partition) -> str:
    shown = {key: value for key, value in partition.items() if isinstance(value, (str, int, float))}
    return untrusted(", ".join(f"{key} {value}" for key, value in shown.items()) or "the request", 200)


def expect_list(body: Any, vendor: str, response: requests.Response, what: str) -> list:
    """The body as a JSON array, or a clear error naming the endpoint and what it answered instead."""
    if not isinstance(body, list):
        raise UsageError(
            f"{vendor}: {response.request.method if response.request else 'GET'} {endpoint_of(response.url)} answered "
            f"{_kind(body)}, not a list of {what}",
            FailureType.system_error,
        )
    return body


def expect_object(body: Any, vendor: str, response: requests.Response, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise UsageError(
            f"{vendor}: {response.request.method if response.request else 'GET'} {endpoint_of(response.url)} answered "
            f"{_kind(body)}, not {what}",
            FailureType.system_error,
        )
    return body


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
