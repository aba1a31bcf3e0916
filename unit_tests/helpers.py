"""Helpers for unit tests: response templates, configs, and reads through the CDK's test entrypoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, discover, read
from airbyte_cdk.test.state_builder import StateBuilder

from source_usage.framework.settings import reload_settings
from source_usage.source import SourceUsage

RESOURCES = Path(__file__).parent / "resources"


def template(vendor: str, name: str) -> Any:
    """A JSON response template from unit_tests/resources/<vendor>/<name>.json (a fresh copy each time)."""
    return json.loads((RESOURCES / vendor / f"{name}.json").read_text())


def catalog(config: Mapping[str, Any], streams: Union[Sequence[str], Mapping[str, SyncMode]]) -> ConfiguredAirbyteCatalog:
    """A configured catalog of `streams` (name -> sync mode; a plain list reads each incrementally where the
    stream supports it, else in full)."""
    available = {stream.name: stream for stream in SourceUsage().streams(config)}
    modes = dict(streams) if isinstance(streams, Mapping) else {
        name: SyncMode.incremental if available[name].supports_incremental else SyncMode.full_refresh for name in streams
    }
    builder = CatalogBuilder()
    for name, mode in modes.items():
        builder.with_stream(ConfiguredAirbyteStreamBuilder().with_name(name).with_sync_mode(mode))
    return builder.build()


def states(saved: Optional[Mapping[str, Any]]) -> Optional[List[AirbyteStateMessage]]:
    """Per-stream saved states ({stream: state}) as the state messages `read` takes."""
    if saved is None:
        return None
    builder = StateBuilder()
    for name, state in saved.items():
        builder.with_stream_state(name, state)
    return builder.build()


def read_streams(
    config: Mapping[str, Any],
    streams: Union[Sequence[str], Mapping[str, SyncMode]],
    state: Optional[Mapping[str, Any]] = None,
    expect_failure: bool = False,
) -> EntrypointOutput:
    """`source-usage read` in-process (the CDK's test entrypoint), with `streams` selected."""
    reload_settings()
    return read(SourceUsage(), dict(config), catalog(config, streams), states(state), expecting_exception=expect_failure)


def discover_streams(config: Mapping[str, Any]) -> EntrypointOutput:
    return discover(SourceUsage(), dict(config))


def records(output: EntrypointOutput, stream: str) -> List[Dict[str, Any]]:
    return [dict(message.record.data) for message in output.records if message.record.stream == stream]


def stream_states(output: EntrypointOutput, stream: str) -> List[Dict[str, Any]]:
    """Every state checkpoint of `stream`, in order."""
    found = []
    for message in output.state_messages:
        stream_state = message.state.stream
        if stream_state is not None and stream_state.stream_descriptor.name == stream:
            found.append(dict(stream_state.stream_state.__dict__))
    return found


def final_state(output: EntrypointOutput, stream: str) -> Optional[Dict[str, Any]]:
    found = stream_states(output, stream)
    return found[-1] if found else None


def error_messages(output: EntrypointOutput) -> List[str]:
    return [message.trace.error.message for message in output.errors]


def log_lines(output: EntrypointOutput, *levels: str) -> List[str]:
    return [message.log.message for message in output.logs if not levels or message.log.level.value in levels]


def warnings(output: EntrypointOutput) -> List[str]:
    return log_lines(output, "WARN")
