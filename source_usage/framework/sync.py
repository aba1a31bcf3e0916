"""What one sync shares across vendors: its start date, its shard, the configured catalog and the feeds.

`SourceUsage.read` builds a `SyncContext` from the configured catalog and the saved state before the CDK
reads the first stream; every stream registers with it when it is built. When the CDK starts reading the
first stream, every vendor's selected streams start on that vendor's feed (see `VendorFeed`), in catalog
order. A stream read outside a sync (a unit test, `read_only_records`) gets a feed of its own.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional

from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager

from source_usage.framework.concurrency import StreamEvent, StreamProducer, VendorFeed

if TYPE_CHECKING:
    from source_usage.framework.stream import UsageStream

LOGGER = logging.getLogger("airbyte")


@dataclass(frozen=True)
class Shard:
    """This instance's share of the partitions that dominate a sync: those whose key hashes to `index`
    modulo `count`. The hash is stable across processes, machines and Python versions."""

    index: int = 0
    count: int = 1

    def owns(self, *key: Any) -> bool:
        if self.count <= 1:
            return True
        digest = hashlib.blake2b("\x1f".join(str(part) for part in key).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"shard {self.index + 1} of {self.count}"


class SyncContext:
    def __init__(
        self,
        start_date: datetime,
        shard: Shard = Shard(),
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        state: Optional[List[Any]] = None,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        self.start_date = start_date
        self.shard = shard
        self.logger = logger or LOGGER
        self._catalog = catalog
        self._states = ConnectorStateManager(state=state) if catalog is not None else None
        self._streams: Dict[str, "UsageStream"] = {}
        self._feeds: Dict[str, VendorFeed] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = False

    def register(self, stream: "UsageStream") -> None:
        self._streams[stream.name] = stream

    @property
    def selected(self) -> List[str]:
        return [configured.stream.name for configured in self._catalog.streams] if self._catalog is not None else []

    def saved_state(self, name: str, namespace: Optional[str] = None) -> Mapping[str, Any]:
        if self._states is None:
            return {}
        return self._states.get_stream_state(name, namespace) or {}

    def sync_mode(self, name: str) -> SyncMode:
        for configured in self._catalog.streams if self._catalog is not None else ():
            if configured.stream.name == name:
                return configured.sync_mode
        return SyncMode.full_refresh

    def events_for(self, stream: "UsageStream", sync_mode: SyncMode, state: Mapping[str, Any]) -> Iterator[StreamEvent]:
        """The events of `stream`: from its vendor's feed in a sync, else from a feed of its own."""
        self._start_feeds()
        feed = self._feeds.get(stream.name)
        if feed is None:
            feed = VendorFeed(stream.vendor_name, [self._producer(stream, sync_mode, state)], self._stop)
        return feed.events(stream.name)

    def _producer(self, stream: "UsageStream", sync_mode: SyncMode, state: Mapping[str, Any]) -> StreamProducer:
        from source_usage.framework.stream import StreamRun

        def events() -> Iterator[StreamEvent]:
            return StreamRun(stream, sync_mode, state, self.logger).events()

        return StreamProducer(stream.name, events)

    def _start_feeds(self) -> None:
        with self._lock:
            if self._started or self._catalog is None:
                return
            self._started = True
            by_vendor: Dict[str, List[StreamProducer]] = {}
            for name in self.selected:
                stream = self._streams.get(name)
                if stream is None:
                    continue
                producer = self._producer(stream, self.sync_mode(name), self.saved_state(name, stream.namespace))
                by_vendor.setdefault(stream.vendor_name, []).append(producer)
            for vendor, producers in by_vendor.items():
                feed = VendorFeed(vendor, producers, self._stop, on_finished=lambda vendor=vendor: self._vendor_finished(vendor))
                for producer in producers:
                    self._feeds[producer.name] = feed
                feed.start()

    def _vendor_finished(self, vendor: str) -> None:
        from source_usage.framework.plugin import plugin_named

        connection = next((stream.vendor for stream in self._streams.values() if stream.vendor_name == vendor), None)
        if connection is not None:
            plugin_named(vendor).sync_finished(connection, self)

    def stop(self) -> None:
        """Stop every feed (the sync ended or failed): producers abandon their work promptly."""
        self._stop.set()
        for feed in set(self._feeds.values()):
            feed.join(timeout=5)
