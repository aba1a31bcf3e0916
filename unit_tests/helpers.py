"""Helpers for unit tests: response templates and reading one stream in-process."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from airbyte_cdk.models import (
    AirbyteStream,
    ConfiguredAirbyteStream,
    DestinationSyncMode,
    SyncMode,
    Type,
)
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.utils.schema_helpers import InternalConfig
from airbyte_cdk.sources.utils.slice_logger import DebugSliceLogger

from source_usage.framework.stream import UsageStream

RESOURCES = Path(__file__).parent / "resources"


def template(vendor: str, name: str) -> Any:
    """A JSON response template from unit_tests/resources/<vendor>/<name>.json (a fresh copy each time)."""
    return json.loads((RESOURCES / vendor / f"{name}.json").read_text())


@dataclass
class StreamOutput:
    records: List[dict] = field(default_factory=list)
    states: List[dict] = field(default_factory=list)

    @property
    def final_state(self) -> Optional[dict]:
        return self.states[-1] if self.states else None


def read_stream(stream: UsageStream, sync_mode: SyncMode = SyncMode.full_refresh, state: Optional[Mapping[str, Any]] = None) -> StreamOutput:
    """Runs `stream.read` as AbstractSource would and collects its records and state checkpoints."""
    configured = ConfiguredAirbyteStream(
        stream=AirbyteStream(name=stream.name, json_schema={}, supported_sync_modes=[SyncMode.full_refresh, SyncMode.incremental]),
        sync_mode=sync_mode,
        destination_sync_mode=DestinationSyncMode.append,
    )
    output = StreamOutput()
    stream.state = dict(state or {})
    for item in stream.read(configured, logging.getLogger("test"), DebugSliceLogger(), dict(state or {}), ConnectorStateManager(), InternalConfig()):
        if isinstance(item, Mapping):
            output.records.append(dict(item))
        elif getattr(item, "type", None) == Type.RECORD:
            output.records.append(dict(item.record.data))
        elif getattr(item, "type", None) == Type.STATE:
            output.states.append(dict(item.state.stream.stream_state.__dict__))
    return output


def by_name(streams: List[UsageStream]) -> Dict[str, UsageStream]:
    return {stream.name: stream for stream in streams}
