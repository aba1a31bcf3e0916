"""SourceUsage wires the configured vendor plugins' streams together; the vendors live in their plugins."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Iterator, List, Mapping, MutableMapping, Optional, Tuple

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateBlob,
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    AirbyteStreamStatus,
    ConfiguredAirbyteCatalog,
    ConnectorSpecification,
    FailureType,
    Status,
    StreamDescriptor,
    SyncMode,
    TraceType,
    Type,
)
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_usage.config import UsageConfig, specification, unknown_keys
from source_usage.framework.errors import ConfigError, UsageError
from source_usage.framework.settings import Settings, settings
from source_usage.framework.ledger import UsageLedger
from source_usage.framework.sync import SyncContext

MAX_STATE_DEPTH = 32  # a saved state nested deeper than this is not one the connector wrote


def check_settings(base: Settings) -> Settings:
    """`check` answers quickly: one retry, short waits."""
    return dataclasses.replace(
        base, max_retries=1, backoff_base_seconds=0.5, backoff_cap_seconds=2.0, max_rate_limit_waits=2, max_wait_seconds=10.0, max_total_wait_seconds=20.0
    )


class SourceUsage(AbstractSource):
    def __init__(self) -> None:
        super().__init__()
        self._sync: Optional[SyncContext] = None

    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        spec = specification()
        return ConnectorSpecification(documentationUrl=spec["documentationUrl"], connectionSpecification=spec["connectionSpecification"])

    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        try:
            return AbstractSource.read_config(config_path)
        except (OSError, ValueError, RecursionError) as problem:
            raise ConfigError("(config file)", f"cannot be read: {str(problem)[:200]}") from None

    @classmethod
    def read_catalog(cls, catalog_path: str) -> ConfiguredAirbyteCatalog:
        try:
            return super().read_catalog(catalog_path)
        except Exception as problem:  # the CDK's deserializer raises several kinds of error
            raise UsageError(f"The configured catalog {catalog_path} cannot be read: {str(problem)[:300]}", FailureType.config_error) from None

    @classmethod
    def read_state(cls, state_path: str) -> List[AirbyteStateMessage]:
        """The saved state. A state file of the legacy shape (an object of stream states) is converted; one of a
        shape nobody writes (or nested absurdly deep) is ignored with a warning, and the sync starts from
        `start_date`."""
        if not state_path:
            return []
        try:
            with open(state_path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as problem:
            raise ConfigError("(state file)", f"{state_path} cannot be read: {problem.strerror or problem}") from None
        try:
            raw = json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            raw = None
        if raw is not None and state_depth(raw) <= MAX_STATE_DEPTH:
            try:
                return super().read_state(state_path)
            except Exception:
                pass
            if isinstance(raw, Mapping) and raw and all(isinstance(value, Mapping) for value in raw.values()):
                return [
                    AirbyteStateMessage(
                        type=AirbyteStateType.STREAM,
                        stream=AirbyteStreamState(stream_descriptor=StreamDescriptor(name=str(name)), stream_state=AirbyteStateBlob(dict(value))),
                    )
                    for name, value in raw.items()
                ]
        logging.getLogger("airbyte").warning(
            f"Ignoring the state file {state_path}: it is not an Airbyte state (or not readable); every stream syncs from the start date"
        )
        return []

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """A cheap authenticated request per configured vendor; one actionable line per failure."""
        parsed = UsageConfig.parse(config)
        sync = SyncContext(parsed.start_date, parsed.shard)
        quick = check_settings(settings())
        failures = []
        for plugin, vendor_config in parsed.vendors:
            try:
                plugin.check(plugin.connect(vendor_config, quick), vendor_config, sync)
                logger.info(f"{plugin.name}: connection succeeded")
            except UsageError as failure:
                failures.append(str(failure))
            except Exception as bug:  # a plugin's bug must not hide the other vendors' answers
                failures.append(f"{plugin.name}: the check failed unexpectedly ({type(bug).__name__}: {str(bug)[:200]})")
        if failures:
            return AirbyteConnectionStatus(status=Status.FAILED, message="\n".join(failures))
        return AirbyteConnectionStatus(status=Status.SUCCEEDED)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        status = self.check(logger, config)
        return status.status == Status.SUCCEEDED, status.message

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        """The configured vendors' streams, each vendor's listings before the streams that use them."""
        parsed = UsageConfig.parse(config)
        sync = self._sync or SyncContext(parsed.start_date, parsed.shard)
        return build_streams(parsed, sync)

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        for key in unknown_keys(config):
            logger.warning(f"Ignoring unknown config key '{key}': check its spelling against the spec")
        parsed = UsageConfig.parse(config)
        available = build_streams(parsed, SyncContext(parsed.start_date, parsed.shard))
        ordered = in_dependency_order(catalog, available)
        warn_about_catalog(logger, ordered, available)
        self._sync = SyncContext(parsed.start_date, parsed.shard, ordered, state, logger)
        failed: List[str] = []
        try:
            for message in super().read(logger, config, ordered, state):
                if message.type is Type.TRACE and _is_incomplete_status(message):
                    failed.append(message.trace.stream_status.stream_descriptor.name)  # type: ignore[union-attr]
                yield message
        except UsageError:
            raise
        except AirbyteTracedException as summary:
            # The CDK ends a sync in which streams failed with a summary error; each stream's own error was
            # already emitted, so say which streams failed, in one line, without a stack trace.
            names = ", ".join(failed) or "some streams"
            raise UsageError(f"The sync finished, but these streams failed (see their errors above): {names}", summary.failure_type) from None
        finally:
            self._sync.stop()
            self._sync = None


def build_streams(parsed: UsageConfig, sync: SyncContext) -> List[Stream]:
    """Each configured vendor's streams, then the usage ledger built from them (read last)."""
    streams: List[Stream] = []
    for plugin, vendor_config in parsed.vendors:
        streams.extend(plugin.streams(plugin.connect(vendor_config, settings()), vendor_config, sync))
    streams.append(UsageLedger(sync))
    return streams


def state_depth(value: Any, limit: int = MAX_STATE_DEPTH + 1) -> int:
    """How deeply `value` nests (counted without recursion, up to `limit`)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if deepest >= limit:
            return deepest
        if isinstance(item, Mapping):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return deepest


def _is_incomplete_status(message: AirbyteMessage) -> bool:
    trace = message.trace
    return bool(trace and trace.type == TraceType.STREAM_STATUS and trace.stream_status.status == AirbyteStreamStatus.INCOMPLETE)


def in_dependency_order(catalog: ConfiguredAirbyteCatalog, streams: List[Stream]) -> ConfiguredAirbyteCatalog:
    """Reads listings (organizations, networks, clients, endpoints) before the streams that use them, so
    that what a listing fetched is reused instead of requested again. A catalog naming a stream this config
    does not have is a config error naming it (the CDK would only mark it incomplete)."""
    rank = {stream.name: position for position, stream in enumerate(streams)}
    unknown = [configured.stream.name for configured in catalog.streams if configured.stream.name not in rank]
    if unknown:
        raise UsageError(
            f"The configured catalog names streams this config does not provide: {', '.join(sorted(unknown))}. "
            f"Configure their vendor, or refresh the catalog (discover) and remove them.",
            FailureType.config_error,
        )
    ordered = sorted(catalog.streams, key=lambda configured: rank[configured.stream.name])
    return ConfiguredAirbyteCatalog(streams=ordered)


def warn_about_catalog(logger: logging.Logger, catalog: ConfiguredAirbyteCatalog, streams: List[Stream]) -> None:
    """A sync mode or cursor a stream does not support is not fatal: say what the stream does instead."""
    by_name = {stream.name: stream for stream in streams}
    for configured in catalog.streams:
        stream = by_name[configured.stream.name]
        if configured.sync_mode == SyncMode.incremental and not stream.supports_incremental:
            logger.warning(f"{stream.name}: supports full refresh only; reading it in full")
        own = stream.cursor_field if isinstance(stream.cursor_field, list) else [stream.cursor_field]
        if configured.cursor_field and [field for field in configured.cursor_field] != [field for field in own if field]:
            logger.warning(
                f"{stream.name}: ignoring the configured cursor {configured.cursor_field}: the stream's cursor is its own ({', '.join(own) or 'none'})"
            )
