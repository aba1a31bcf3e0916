"""SourceUsage wires the configured vendors' streams together; the vendors live in `source_usage.vendors`."""

from __future__ import annotations

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
    FailureType,
    Status,
    StreamDescriptor,
    TraceType,
    Type,
)
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.utils.schema_helpers import split_config
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_usage.config import UsageConfig, unknown_keys
from source_usage.framework.errors import ConfigError, UsageError
from source_usage.framework.prefetch import VendorPrefetcher, group_by_vendor
from source_usage.framework.stream import UsageStream
from source_usage.framework.http_client import RetryPolicy
from source_usage.vendors import emnify, meraki, thousandeyes, twilio

# `check` answers quickly: one retry, no long backoff.
CHECK_RETRY_POLICY = RetryPolicy(max_retries=1, backoff_base=0.5, backoff_cap=2.0, max_rate_limit_waits=2, max_single_wait=10.0)

VENDORS = (
    ("meraki", meraki),
    ("twilio", twilio),
    ("emnify", emnify),
    ("thousandeyes", thousandeyes),
)


class SourceUsage(AbstractSource):
    def __init__(self) -> None:
        super().__init__()
        self._built: Optional[Tuple[str, List[Stream]]] = None

    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        try:
            return AbstractSource.read_config(config_path)
        except (OSError, ValueError) as problem:
            raise ConfigError("(config file)", f"cannot be read: {problem}") from None

    @classmethod
    def read_catalog(cls, catalog_path: str) -> ConfiguredAirbyteCatalog:
        try:
            return super().read_catalog(catalog_path)
        except Exception as problem:  # the CDK's deserializer raises several kinds of error
            raise UsageError(f"The configured catalog {catalog_path} cannot be read: {problem}", FailureType.config_error) from None

    @classmethod
    def read_state(cls, state_path: str) -> List[AirbyteStateMessage]:
        """The saved state. A state file of the legacy shape (an object of stream states) is converted; one of a
        shape nobody writes is ignored with a warning, and the sync starts from `start_date`."""
        try:
            return super().read_state(state_path)
        except Exception:
            pass
        try:
            raw = json.loads(open(state_path, encoding="utf-8").read())
        except (OSError, ValueError):
            raw = None
        if isinstance(raw, Mapping) and raw and all(isinstance(value, Mapping) for value in raw.values()):
            return [
                AirbyteStateMessage(
                    type=AirbyteStateType.STREAM,
                    stream=AirbyteStreamState(stream_descriptor=StreamDescriptor(name=str(name)), stream_state=AirbyteStateBlob(dict(value))),
                )
                for name, value in raw.items()
            ]
        logging.getLogger("airbyte").warning(
            f"Ignoring the state file {state_path}: it is not an Airbyte state; every stream syncs from the start date"
        )
        return []

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """One cheap authenticated request per configured vendor; one actionable line per failure."""
        settings = UsageConfig.parse(config)
        failures = []
        for name, module in VENDORS:
            section = getattr(settings, name)
            if section is None:
                continue
            try:
                module.check(section, settings.start_date, CHECK_RETRY_POLICY)
                logger.info(f"{name}: connection succeeded")
            except UsageError as failure:
                failures.append(str(failure))
        if failures:
            return AirbyteConnectionStatus(status=Status.FAILED, message="\n".join(failures))
        return AirbyteConnectionStatus(status=Status.SUCCEEDED)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        status = self.check(logger, config)
        return status.status == Status.SUCCEEDED, status.message

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        """The configured vendors' streams, listings before the streams that depend on them.

        Built once per config: the streams of one vendor share what they learn (organizations, networks,
        endpoints, tokens), so `read` must use the same instances it ordered.
        """
        key = json.dumps(config, sort_keys=True, default=str)
        if self._built is None or self._built[0] != key:
            settings = UsageConfig.parse(config)
            streams: List[Stream] = []
            for name, module in VENDORS:
                section = getattr(settings, name)
                if section is not None:
                    streams.extend(module.streams(section, settings.start_date))
            self._built = (key, streams)
        return self._built[1]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        for key in unknown_keys(config):
            logger.warning(f"Ignoring unknown config key '{key}': check its spelling against the spec")
        self._built = None  # a new read starts from what the vendors say now
        ordered = in_dependency_order(catalog, self.streams(config))
        prefetcher = self._start_prefetching(logger, config, ordered, state)
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
            prefetcher.stop()

    def _start_prefetching(
        self, logger: logging.Logger, config: Mapping[str, Any], catalog: ConfiguredAirbyteCatalog, state: Optional[List[AirbyteStateMessage]]
    ) -> VendorPrefetcher:
        """Starts reading every vendor's configured streams on a thread per vendor (see `VendorPrefetcher`)."""
        instances = {stream.name: stream for stream in self.streams(config)}
        state_manager = ConnectorStateManager(state=state)
        _, internal_config = split_config(config)
        planned = [
            (instances[configured.stream.name], configured, state_manager.get_stream_state(configured.stream.name, None))
            for configured in catalog.streams
            if isinstance(instances.get(configured.stream.name), UsageStream)
        ]
        prefetcher = VendorPrefetcher()
        prefetcher.start(group_by_vendor(planned), logger, self._slice_logger, state_manager, internal_config)
        return prefetcher


def _is_incomplete_status(message: AirbyteMessage) -> bool:
    trace = message.trace
    return bool(trace and trace.type == TraceType.STREAM_STATUS and trace.stream_status.status == AirbyteStreamStatus.INCOMPLETE)


def in_dependency_order(catalog: ConfiguredAirbyteCatalog, streams: List[Stream]) -> ConfiguredAirbyteCatalog:
    """Reads listings (organizations, networks, clients, endpoints) before the streams that use them,
    so that what a listing fetched is reused instead of requested again."""
    rank = {stream.name: position for position, stream in enumerate(streams)}
    ordered = sorted(catalog.streams, key=lambda configured: rank.get(configured.stream.name, len(rank)))
    return ConfiguredAirbyteCatalog(streams=ordered)
