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
from typing import TYPE_CHECKING, Any, Dict, Hashable, Iterator, List, Mapping, Optional, Set

from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager

from airbyte_cdk.models import FailureType

from source_usage.framework.concurrency import BATCH_RECORDS, Records, StreamEvent, StreamProducer, VendorFeed, batches
from source_usage.framework.errors import UsageError
from source_usage.framework.ledger import LEDGER_STREAM, LedgerCollector
from source_usage.framework.validation import RecordValidator

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
        self._ledger: Optional[LedgerCollector] = None
        self._warned: Set[Hashable] = set()

    def register(self, stream: "UsageStream") -> None:
        self._streams[stream.name] = stream

    def warn_once(self, key: Hashable, message: str) -> None:
        """Logs `message` the first time `key` is seen in this sync (a skipped organization is named once, however
        many streams and threads meet it)."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        self.logger.warning(message)

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
        if stream.name == LEDGER_STREAM:
            return self._ledger_events()
        feed = self._feeds.get(stream.name)
        if feed is None:
            feed = VendorFeed(stream.vendor_name, [self._producer(stream, sync_mode, state)], self._stop)
        return feed.events(stream.name)

    def _producer(
        self, stream: "UsageStream", sync_mode: SyncMode, state: Mapping[str, Any], ledger: Optional[LedgerCollector] = None, silent: bool = False
    ) -> StreamProducer:
        from source_usage.framework.stream import StreamRun

        def events() -> Iterator[StreamEvent]:
            run = StreamRun(stream, sync_mode, state, self.logger)
            if ledger is not None:
                run.sinks.append(ledger.sink)
                run.on_checkpoint.append(ledger.keep_state(stream.name))
            return run.events()

        return StreamProducer(stream.name, events, silent)

    def _start_feeds(self) -> None:
        with self._lock:
            if self._started or self._catalog is None:
                return
            self._started = True
            self._ledger = self._ledger_collector()
            sources = self._ledger_sources() if self._ledger is not None else set()
            by_vendor: Dict[str, List[StreamProducer]] = {}
            for name in self.selected:
                stream = self._streams.get(name)
                if stream is None or name == LEDGER_STREAM:
                    continue
                state = self.saved_state(name, stream.namespace)
                if name in sources and state and self._ledger is not None and self._ledger.source_state(name) is None:
                    self.logger.info(f"{name}: read from its start this time: the usage ledger has no state for it yet")
                    state = {}
                ledger = self._ledger if name in sources else None
                by_vendor.setdefault(stream.vendor_name, []).append(self._producer(stream, self.sync_mode(name), state, ledger))
            for name in sorted(sources - set(self.selected)):
                stream = self._streams[name]
                assert self._ledger is not None
                ledger_mode = self.sync_mode(LEDGER_STREAM)
                state = (self._ledger.source_state(name) or {}) if ledger_mode == SyncMode.incremental else {}
                by_vendor.setdefault(stream.vendor_name, []).append(self._producer(stream, ledger_mode, state, self._ledger, silent=True))
            for vendor, producers in by_vendor.items():
                feed = VendorFeed(vendor, producers, self._stop, on_finished=lambda vendor=vendor: self._vendor_finished(vendor))
                for producer in producers:
                    self._feeds[producer.name] = feed
                feed.start()

    def _ledger_collector(self) -> Optional[LedgerCollector]:
        ledger = self._streams.get(LEDGER_STREAM)
        if ledger is None or LEDGER_STREAM not in self.selected:
            return None
        saved = self.saved_state(LEDGER_STREAM) if self.sync_mode(LEDGER_STREAM) == SyncMode.incremental else {}
        return LedgerCollector(saved, RecordValidator(LEDGER_STREAM, ledger.get_json_schema()))

    def _ledger_sources(self) -> set:
        """The streams the ledger is built from: per vendor, what its plugin says (by default every stream
        that feeds the ledger)."""
        from source_usage.framework.plugin import plugin_named

        by_vendor: Dict[str, List["UsageStream"]] = {}
        for stream in self._streams.values():
            if stream.name != LEDGER_STREAM:
                by_vendor.setdefault(stream.vendor_name, []).append(stream)
        sources = set()
        for vendor, streams in by_vendor.items():
            chosen = plugin_named(vendor).ledger_sources(self.selected)
            names = set(chosen) if chosen is not None else {stream.name for stream in streams if stream.feeds_ledger}
            sources |= {stream.name for stream in streams if stream.name in names and stream.feeds_ledger}
        return sources

    def _ledger_events(self) -> Iterator[StreamEvent]:
        """The ledger's rows once every vendor's streams were read, then its state; a source read only for
        the ledger that failed fails the ledger after its rows and state (both consistent) were handed on."""
        from source_usage.framework.stream import FinalCheckpoint

        collector = self._ledger
        if collector is None:
            return
        feeds = set(self._feeds.values())
        for feed in feeds:
            feed.wait()
        for batch in batches(collector.spool.drain(), BATCH_RECORDS):
            yield Records(batch)
        yield FinalCheckpoint(collector.final_state())
        failed = {name: error for feed in feeds for name, error in feed.failures.items()}
        if failed:
            names = ", ".join(sorted(failed))
            raise UsageError(f"{LEDGER_STREAM}: incomplete: reading {names} for it failed ({next(iter(failed.values()))})", FailureType.transient_error)

    def _vendor_finished(self, vendor: str) -> None:
        from source_usage.framework.plugin import plugin_named

        connection = next((stream.vendor for stream in self._streams.values() if stream.vendor_name == vendor), None)
        if connection is not None:
            plugin_named(vendor).sync_finished(connection, self)

    def stop(self) -> None:
        """Stop every feed (the sync ended, failed or was interrupted): producers abandon their work at their
        next hand-over; nothing waits for them (their threads are daemons, and a finished sync has none left)."""
        self._stop.set()
