"""Paginators: each answers one question, "what is the next page?", for one mechanism.

A paginator is named for how an API pages, not for a vendor, and is stateless, so one instance serves
every partition of a stream on any thread. `first_page_params` are the query parameters of the first
request (the largest page the endpoint allows); `next_page` looks at a response and returns either a
URL to fetch exactly as given or parameters to send with the stream's usual request, or None at the end.
Loop protection (a next link that repeats) and the page cap live in the page loop (`endpoint.py`), which
sees the whole sequence; so does the host check of next-page URLs, which a server chooses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from source_usage.framework.error_handling import json_body


@dataclass(frozen=True)
class NextPage:
    """Either an absolute `url` to GET as given, or `params` to merge into the stream's request."""

    url: Optional[str] = None
    params: Mapping[str, Any] = field(default_factory=dict)


class Paginator(ABC):
    def __init__(self, page_size_param: Optional[str] = None, page_size: Optional[int] = None) -> None:
        self._page_size_param = page_size_param
        self._page_size = page_size

    def first_page_params(self) -> Mapping[str, Any]:
        """The page size to ask for (the endpoint's largest), when the endpoint takes one."""
        if self._page_size_param and self._page_size:
            return {self._page_size_param: self._page_size}
        return {}

    @abstractmethod
    def next_page(self, response: requests.Response) -> Optional[NextPage]:
        """The next page after `response`, or None when it was the last."""

    def announced_pages(self, response: requests.Response) -> Optional[int]:
        """How many pages the server says the sequence has, where it says so."""
        return None


class SinglePage(Paginator):
    """A fixed-shape body, such as a statistics snapshot: there is never a next page."""

    def next_page(self, response: requests.Response) -> Optional[NextPage]:
        return None


class LinkHeaderPaginator(Paginator):
    """RFC 8288 (formerly 5988) `Link: <url>; rel=next` headers, followed until there is no `rel=next`.

    Relative links are resolved against the URL of the response that carried them.
    """

    def next_page(self, response: requests.Response) -> Optional[NextPage]:
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        return NextPage(url=urljoin(response.url, link))


class NextPageUrlPaginator(Paginator):
    """A next-page URL in the body (for example `meta.next_page_url`), null on the last page."""

    def __init__(self, path: Sequence[str], page_size_param: Optional[str] = None, page_size: Optional[int] = None) -> None:
        super().__init__(page_size_param, page_size)
        self._path = tuple(path)

    def next_page(self, response: requests.Response) -> Optional[NextPage]:
        url = _dig(json_body(response), self._path)
        if not isinstance(url, str) or not url:
            return None
        return NextPage(url=urljoin(response.url, url))


class HalNextLinkPaginator(NextPageUrlPaginator):
    """HAL `_links.next.href` links, followed until the link is absent."""

    def __init__(self) -> None:
        super().__init__(("_links", "next", "href"))


class BodyCursorPaginator(Paginator):
    """An opaque cursor in the body (`{"next_cursor": "abc"}`), sent back as a query parameter with the
    stream's usual request; an absent, null or empty cursor ends the sequence."""

    def __init__(self, path: Sequence[str], cursor_param: str, page_size_param: Optional[str] = None, page_size: Optional[int] = None) -> None:
        super().__init__(page_size_param, page_size)
        self._path = tuple(path)
        self._cursor_param = cursor_param

    def next_page(self, response: requests.Response) -> Optional[NextPage]:
        cursor = _dig(json_body(response), self._path)
        if cursor is None or cursor == "" or isinstance(cursor, (dict, list, bool)):
            return None
        return NextPage(params={self._cursor_param: str(cursor), **self.first_page_params()})


class PageNumberPaginator(Paginator):
    """`page`/`per_page` numbering that stops on a total-pages header.

    Some APIs answer a page past the end with the last page again rather than an empty one, so the
    total-pages header, not an empty page, ends the sequence. Without the header, a short page ends it.
    """

    def __init__(
        self,
        page_param: str = "page",
        page_size_param: str = "per_page",
        page_size: int = 1000,
        total_pages_header: str = "X-Total-Pages",
        first_page: int = 1,
    ) -> None:
        super().__init__(page_size_param, page_size)
        self._page_param = page_param
        self._total_pages_header = total_pages_header
        self._first_page = first_page

    def first_page_params(self) -> Mapping[str, Any]:
        return {self._page_param: self._first_page, **super().first_page_params()}

    def announced_pages(self, response: requests.Response) -> Optional[int]:
        return _int_or_none(response.headers.get(self._total_pages_header))

    def next_page(self, response: requests.Response) -> Optional[NextPage]:
        query = parse_qs(urlsplit(response.url).query)
        current = _int_or_none(query.get(self._page_param, [str(self._first_page)])[0])
        if current is None:
            return None
        total = self.announced_pages(response)
        if total is not None:
            if current >= total:
                return None
        else:
            body = json_body(response)
            if not isinstance(body, list) or len(body) < self._page_size:
                return None
        return NextPage(params={self._page_param: current + 1, self._page_size_param: self._page_size})


def _int_or_none(value: Optional[str]) -> Optional[int]:
    try:
        number = int(value.strip()) if value is not None else None
    except (ValueError, AttributeError):
        return None
    return number if number is None or number >= 0 else None


def _dig(body: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(body, Mapping):
            return None
        body = body.get(key)
    return body
