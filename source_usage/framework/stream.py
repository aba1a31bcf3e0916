"""`UsageStream`: one vendor endpoint as an Airbyte stream.

A vendor module declares a stream by saying where it reads (`endpoint`, `query`), how it pages
(`paginator`), how a body becomes records (`extract_records`), what its partitions are (`partitions`)
and how its state works (`make_cursor`). This class does the rest, the same way for every vendor:

* requests go through the CDK's `HttpStream` request building and our `UsageHttpClient` (retries,
  rate-limit waits, the vendor's API budget and authenticator);
* pages are followed until the paginator says there is no next page (a repeated next link ends the
  sequence with a warning, and the number of pages is bounded);
* partitions are read concurrently by a bounded `PartitionPool`; every record is normalised and
  validated against the stream's JSON schema before it is emitted;
* state is checkpointed as partitions complete, never ahead of an unfinished one.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from itertools import islice
from typing import Any, Generator, Iterable, List, Mapping, MutableMapping, Optional

import requests
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, ConfiguredAirbyteStream, SyncMode, Type
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig
from airbyte_cdk.sources.utils.slice_logger import SliceLogger

from source_usage.framework.concurrency import Batch, PartitionPool
from source_usage.framework.cursors import NoCursor, Partition, StreamCursor
from source_usage.framework.error_handling import Override, VendorErrorHandler, json_body
from source_usage.framework.errors import UsageError
from source_usage.framework.paginators import NextPage, Paginator, SinglePage
from source_usage.framework.validation import RecordValidator
from source_usage.framework.vendor import Vendor
from source_usage.framework.windows import parse_timestamp

MAX_PAGES_PER_PARTITION = 100_000
BATCH_RECORDS = 500  # records handed from a partition's worker to the stream's thread at a time
# A state made of many partitions is large; write it at most this often (and always at the end).
LARGE_STATE_PARTITIONS = 20
LARGE_STATE_CHECKPOINT_SECONDS = 1.0


class UsageStream(HttpStream, ABC):
    paginator: Paginator = SinglePage()
    max_workers: Optional[int] = None  # default: the vendor's
    prefetched_by: Optional[Any] = None  # the VendorPrefetcher reading this stream ahead, in a sync

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor
        super().__init__(authenticator=vendor.authenticator)
        self._http_client = vendor.client(self.name, self.logger, self.get_error_handler())
        self.stream_cursor: StreamCursor = self.make_cursor()
        self._incoming_state: Mapping[str, Any] = {}
        self._validator: Optional[RecordValidator] = None

    # ----- what a vendor module declares -------------------------------------------------------------

    @abstractmethod
    def endpoint(self, partition: Partition) -> str:
        """The path of the first request for `partition`, relative to the vendor's base URL."""

    def query(self, partition: Partition) -> Mapping[str, Any]:
        """Query parameters of the first request for `partition` (page size comes from the paginator)."""
        return {}

    @abstractmethod
    def extract_records(self, body: Any, partition: Partition, response: requests.Response) -> Iterable[dict]:
        """The records in one page's JSON body."""

    def partitions(self, sync_mode: SyncMode) -> Iterable[Partition]:
        """The independent pieces of this stream (networks, endpoints, time windows); default: one."""
        yield {}

    def make_cursor(self) -> StreamCursor:
        return NoCursor()

    def error_overrides(self) -> Mapping[int, Override]:
        """Statuses this endpoint treats specially, such as a 400 that means "skip this partition"."""
        return {}

    def ignored_response(self, response: requests.Response, partition: Partition) -> None:
        """Called for a response an override chose to ignore; say why in the log."""
        self.logger.warning(f"{self.name}: skipping {partition or 'the request'} after HTTP {response.status_code}")

    # ----- HttpStream plumbing ----------------------------------------------------------------------

    @property
    def url_base(self) -> str:
        return self.vendor.base_url + "/"

    def get_error_handler(self) -> VendorErrorHandler:
        return self.vendor.error_handler.with_overrides(self.error_overrides())

    def path(
        self,
        *,
        stream_state: Optional[Mapping[str, Any]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> str:
        if next_page_token and next_page_token.get("url"):
            return str(next_page_token["url"])
        return self.endpoint(stream_slice or {})

    def request_params(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> MutableMapping[str, Any]:
        if next_page_token and next_page_token.get("url"):
            return {}  # a next-page URL is followed exactly as the server gave it
        params = {**self.paginator.first_page_params(), **self.query(stream_slice or {})}
        if next_page_token:
            params.update(next_page_token.get("params") or {})
        return params

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        next_page = self.paginator.next_page(response)
        return _token(next_page) if next_page else None

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        return self.extract_records(json_body(response), stream_slice or {}, response)

    # ----- reading ------------------------------------------------------------------------------------

    @property
    def validator(self) -> RecordValidator:
        if self._validator is None:
            self._validator = RecordValidator(self.name, self.get_json_schema())
        return self._validator

    def fetch_pages(self, partition: Partition) -> Iterable[Iterable[dict]]:
        """The raw records of `partition`, one iterable per page, from the first page to the last. Each page
        is consumed before the next one is requested; its records are built as they are consumed."""
        token: Optional[Mapping[str, Any]] = None
        followed: set = set()
        for _ in range(MAX_PAGES_PER_PARTITION):
            _, response = self._fetch_next_page(partition, {}, token)
            if not response.ok:  # an override chose to ignore this status
                self.ignored_response(response, partition)
                return
            yield self.parse_response(response, stream_state={}, stream_slice=partition)
            next_page = self.paginator.next_page(response)
            if next_page is None:
                return
            marker = next_page.url or tuple(sorted(next_page.params.items()))
            if marker in followed or next_page.url == response.url:
                self.logger.warning(f"{self.name}: the server sent the same next-page link twice; stopping there")
                return
            followed.add(marker)
            token = _token(next_page)
            del response  # one page's body in memory at a time, not two while the next one downloads
        raise UsageError(f"{self.name}: more than {MAX_PAGES_PER_PARTITION} pages for {partition}; giving up")

    def read_partition(self, partition: Partition) -> Generator[List[dict], None, Optional[str]]:
        """Validated records of one partition, a batch at a time; returns its greatest cursor value."""
        cursor_field = self.cursor_field if isinstance(self.cursor_field, str) else None
        greatest: Optional[str] = None
        greatest_at = None
        validate = self.validator.normalize_and_validate
        should_emit = self.stream_cursor.emit_filter(partition)
        for page in self.fetch_pages(partition):
            # Built and handed over in batches of a bounded size, so that the records in flight do not grow
            # with the page size (a Meraki usage page can hold 31 days of 1,000 clients).
            records = iter(page)
            while True:
                batch = list(islice(records, BATCH_RECORDS))
                if not batch:
                    break
                for record in batch:
                    validate(record)
                    if cursor_field is not None:
                        value = record.get(cursor_field)
                        if value is not None:
                            moment = parse_timestamp(value)
                            if greatest_at is None or moment > greatest_at:
                                greatest, greatest_at = value, moment
                yield batch if should_emit is None else [record for record in batch if should_emit(record)]
        return greatest

    @property
    def state(self) -> MutableMapping[str, Any]:
        return dict(self.stream_cursor.state)

    @state.setter
    def state(self, value: Mapping[str, Any]) -> None:
        self._incoming_state = value or {}

    def read(  # type: ignore[override]
        self,
        configured_stream: ConfiguredAirbyteStream,
        logger: logging.Logger,
        slice_logger: SliceLogger,
        stream_state: MutableMapping[str, Any],
        state_manager: Any,
        internal_config: InternalConfig,
    ) -> Iterable[Any]:
        """The stream's records and checkpoints: read ahead by the vendor's prefetch thread when one runs."""
        if self.prefetched_by is not None and self.prefetched_by.handles(self.name):
            yield from self.prefetched_by.messages(self.name)
        else:
            yield from self.read_now(configured_stream, logger, slice_logger, stream_state, state_manager, internal_config)

    def read_now(
        self,
        configured_stream: ConfiguredAirbyteStream,
        logger: logging.Logger,
        slice_logger: SliceLogger,
        stream_state: MutableMapping[str, Any],
        state_manager: Any,
        internal_config: InternalConfig,
    ) -> Iterable[Any]:
        """Reads the stream's partitions on the pool and yields records and state checkpoints."""
        self.vendor.raise_if_rejected()
        sync_mode = configured_stream.sync_mode
        saved = stream_state or self._incoming_state
        self.stream_cursor.load(saved if sync_mode == SyncMode.incremental else None, self.logger, self.name)
        workers = int(os.environ.get("SOURCE_USAGE_MAX_WORKERS") or self.max_workers or self.vendor.max_workers)
        pool = PartitionPool(workers, thread_name=self.name)
        emitted = 0
        last_checkpoint = time.monotonic()
        for event in pool.run(self.partitions(sync_mode), self.read_partition):
            if isinstance(event, Batch):
                # Records are validated already: build their messages here rather than have the CDK copy and
                # transform each one again (a third of the per-record cost).
                emitted_at = time.time_ns() // 1_000_000
                for record in event.records:
                    yield AirbyteMessage(type=Type.RECORD, record=AirbyteRecordMessage(stream=self.name, data=record, emitted_at=emitted_at))
                    emitted += 1
                    if internal_config and internal_config.is_limit_reached(emitted):
                        return
            elif self.stream_cursor.close_partition(event.partition, event.result) and state_manager is not None:
                if len(self.stream_cursor) < LARGE_STATE_PARTITIONS or time.monotonic() - last_checkpoint >= LARGE_STATE_CHECKPOINT_SECONDS:
                    last_checkpoint = time.monotonic()
                    yield self._checkpoint(state_manager)
        if state_manager is not None:
            yield self._checkpoint(state_manager)

    def _checkpoint(self, state_manager: Any) -> AirbyteMessage:
        state_manager.update_state_for_stream(self.name, self.namespace, self.state)
        return state_manager.create_state_message(self.name, self.namespace)

    def probe(self, partition: Optional[Partition] = None) -> None:
        """Send the first request of `partition` once; a failure raises a UsageError saying what went wrong."""
        self._fetch_next_page(partition or {}, {}, None)

    def read_all(self, partition: Partition) -> Iterable[dict]:
        """Every validated record of one partition, fetched from the API, for other streams that need them."""
        for page in UsageStream.read_partition(self, partition):
            yield from page


def _token(next_page: NextPage) -> Mapping[str, Any]:
    return {"url": next_page.url} if next_page.url else {"params": dict(next_page.params)}
