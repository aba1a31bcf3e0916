"""Reads the vendors side by side, while the CDK emits their streams one after another.

The CDK's `AbstractSource` reads the catalog's streams in order, so a sync would wait for Meraki's rate
limit, then for emnify's, then for ThousandEyes'. Their limits are independent, so `VendorPrefetcher`
runs each vendor's streams, in catalog order, on a thread of its own and hands their messages to the
stream when the CDK reaches it. Each vendor's buffer is bounded (it blocks when full), so memory stays
flat; within a vendor the streams still run in order, so listings are read before the streams that use
them; and a stream's messages (records and state checkpoints alike) come out exactly in the order it
produced them, so state never gets ahead of the records.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from airbyte_cdk.models import AirbyteMessage, ConfiguredAirbyteStream, Type
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig
from airbyte_cdk.sources.utils.slice_logger import SliceLogger

_END = object()
BATCH_RECORDS = 200  # records handed over at once (fewer queue operations per record)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stopped(Exception):
    pass


class VendorPrefetcher:
    """One producer thread per vendor; `messages(stream)` replays what the stream produced, in order."""

    def __init__(self, buffered_batches: int = 16) -> None:
        self._buffered_batches = buffered_batches
        self._queues: Dict[str, "queue.Queue[Tuple[str, Any]]"] = {}
        self._threads: List[threading.Thread] = []
        self._stop = threading.Event()

    def start(
        self,
        vendors: Sequence[Tuple[str, Sequence[Tuple[Any, ConfiguredAirbyteStream, Any]]]],
        logger: logging.Logger,
        slice_logger: SliceLogger,
        state_manager: Any,
        internal_config: InternalConfig,
    ) -> None:
        """`vendors`: (vendor name, [(stream, configured stream, its saved state), ...] in reading order)."""
        for vendor, streams in vendors:
            buffer: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=self._buffered_batches)
            for stream, _, _ in streams:
                self._queues[stream.name] = buffer
                stream.prefetched_by = self
            thread = threading.Thread(
                target=self._produce,
                args=(buffer, streams, logger, slice_logger, state_manager, internal_config),
                name=f"prefetch-{vendor}",
                daemon=True,
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def _put(self, buffer: "queue.Queue[Tuple[str, Any]]", item: Tuple[str, Any]) -> None:
        while not self._stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _produce(
        self,
        buffer: "queue.Queue[Tuple[str, Any]]",
        streams: Sequence[Tuple[Any, ConfiguredAirbyteStream, Any]],
        logger: logging.Logger,
        slice_logger: SliceLogger,
        state_manager: Any,
        internal_config: InternalConfig,
    ) -> None:
        try:
            for stream, configured_stream, stream_state in streams:
                batch: List[AirbyteMessage] = []
                messages = stream.read_now(configured_stream, logger, slice_logger, stream_state, state_manager, internal_config)
                try:
                    for message in messages:
                        batch.append(message)
                        if len(batch) >= BATCH_RECORDS or message.type is not Type.RECORD:
                            self._put(buffer, (stream.name, batch))
                            batch = []
                    if batch:
                        self._put(buffer, (stream.name, batch))
                    self._put(buffer, (stream.name, _END))
                except _Stopped:
                    messages.close()
                    return
                except BaseException as error:  # raised where the CDK reads this stream
                    if batch:
                        self._put(buffer, (stream.name, batch))
                    self._put(buffer, (stream.name, _Failed(error)))
        except _Stopped:
            return

    def messages(self, stream_name: str) -> Iterator[AirbyteMessage]:
        """The stream's messages as it produced them; its failure is raised here, in the CDK's thread."""
        buffer = self._queues[stream_name]
        finished = False
        try:
            while True:
                name, item = buffer.get()
                if name != stream_name:
                    raise RuntimeError(f"prefetched messages of {name} arrived while reading {stream_name}: streams out of order")
                if item is _END:
                    finished = True
                    return
                if isinstance(item, _Failed):
                    finished = True
                    raise item.error
                yield from item
        finally:
            # Abandoned midway (the sync stopped): discard the rest of this stream, keeping the vendor's
            # buffer aligned on its next stream.
            while not finished and not self._stop.is_set():
                try:
                    name, item = buffer.get(timeout=0.1)
                except queue.Empty:
                    continue
                finished = item is _END or isinstance(item, _Failed)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def handles(self, stream_name: str) -> bool:
        return stream_name in self._queues


def group_by_vendor(streams: Sequence[Tuple[Any, ConfiguredAirbyteStream, Any]]) -> List[Tuple[str, List[Tuple[Any, ConfiguredAirbyteStream, Any]]]]:
    """Streams grouped by vendor, keeping their order within each vendor."""
    groups: Dict[str, List[Tuple[Any, ConfiguredAirbyteStream, Any]]] = {}
    for entry in streams:
        groups.setdefault(entry[0].vendor.name, []).append(entry)
    return list(groups.items())


def is_prefetched(stream: Any) -> Optional[VendorPrefetcher]:
    return getattr(stream, "prefetched_by", None)
