"""`tap-usage`: the same connector as a Singer tap, for Meltano and any other Singer runner.

It is a thin adapter, not a second implementation: it runs `SourceUsage` in-process through the same
entrypoint as `source-usage` (config validation, secret filtering) and translates the Airbyte messages.

Singer spec (hub.meltano.com/singer/spec) facts it relies on:

* `--discover --config FILE` prints a catalog: per stream `tap_stream_id`, `schema`, `key_properties`,
  `replication_key`, and `metadata` whose root entry (breadcrumb `[]`) says `selected`, `inclusion`,
  `forced-replication-method` and `valid-replication-keys`; property entries say each field's inclusion.
* `--config FILE --catalog FILE --state FILE` (`--properties` is the older name of `--catalog`) syncs the
  selected streams and fields: stdout carries only SCHEMA, RECORD and STATE messages, one JSON object a
  line, a stream's SCHEMA before its first RECORD; logs go to stderr.
* A STATE message's `value` is what the runner hands back with `--state` next time. Here it is
  `{"bookmarks": {"<stream>": <that stream's Airbyte stream state>}}`, cumulative, written after every
  Airbyte STATE checkpoint and once more at the end.
* `--about --format json` describes the tap (Meltano's `about` capability).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import threading
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from importlib import metadata as package_metadata
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import orjson
from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteRecordMessage,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    AirbyteStream,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    FailureType,
    SyncMode,
    Type,
)
from airbyte_cdk.models.airbyte_protocol_serializers import AirbyteStreamSerializer
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_usage.framework.errors import UsageError
from source_usage.framework.plugin import plugins
from source_usage.framework.settings import reload_settings
from source_usage.run import HideExpectedTracebacks, UsageEntrypoint, interruptible
from source_usage.source import MAX_STATE_DEPTH, SourceUsage, state_depth

TAP_NAME = "tap-usage"
CAPABILITIES = ("catalog", "discover", "state", "about")
SUPPORTED_PYTHON_VERSIONS = ("3.10", "3.11", "3.12")
# The CDK's state for a stream without a cursor: nothing to resume from, so not a Singer bookmark.
NO_CURSOR_STATE_KEY = "__ab_no_cursor_state_message"

logger = logging.getLogger("tap_usage")


# ----- discovery: Airbyte catalog -> Singer catalog --------------------------------------------------


def key_properties(stream: AirbyteStream) -> List[str]:
    """Top-level primary key fields (Singer keys cannot point into nested objects)."""
    return [path[0] for path in stream.source_defined_primary_key or [] if len(path) == 1]


def replication_key(stream: AirbyteStream) -> Optional[str]:
    if SyncMode.incremental not in stream.supported_sync_modes:
        return None
    cursor = stream.default_cursor_field or []
    return cursor[0] if len(cursor) == 1 else None


def replication_method(stream: AirbyteStream) -> str:
    """Singer's name for how the stream is read: incremental wherever it can be."""
    return "INCREMENTAL" if replication_key(stream) else "FULL_TABLE"


def automatic_properties(stream: AirbyteStream) -> Set[str]:
    """Fields every sync of the stream must include: its keys and its replication key."""
    fields = set(key_properties(stream))
    cursor = replication_key(stream)
    if cursor:
        fields.add(cursor)
    return fields


def singer_catalog_entry(stream: AirbyteStream) -> Dict[str, Any]:
    cursor = replication_key(stream)
    keys = key_properties(stream)
    root: Dict[str, Any] = {
        "inclusion": "available",
        "selected": True,
        "selected-by-default": True,
        "table-key-properties": keys,
        "forced-replication-method": replication_method(stream),
    }
    if cursor:
        root["valid-replication-keys"] = [cursor]
    automatic = automatic_properties(stream)
    fields = [
        {
            "breadcrumb": ["properties", name],
            "metadata": {"inclusion": "automatic"} if name in automatic else {"inclusion": "available", "selected-by-default": True},
        }
        for name in (stream.json_schema.get("properties") or {})
    ]
    entry: Dict[str, Any] = {
        "tap_stream_id": stream.name,
        "stream": stream.name,
        "schema": stream.json_schema,
        "key_properties": keys,
        "replication_method": replication_method(stream),
        "metadata": [{"breadcrumb": [], "metadata": root}, *fields],
    }
    if cursor:
        entry["replication_key"] = cursor
    return entry


def singer_catalog(catalog: AirbyteCatalog) -> Dict[str, Any]:
    """The discovered catalog in Singer's shape, every stream and field selected."""
    return {"streams": [singer_catalog_entry(stream) for stream in catalog.streams]}


# ----- selection: Singer catalog -> what to sync ------------------------------------------------------


@dataclass(frozen=True)
class SingerStream:
    """One selected stream as the Singer side sees it; `properties` is None when every field is selected."""

    stream: AirbyteStream
    properties: Optional[frozenset] = None

    @property
    def name(self) -> str:
        return self.stream.name

    def schema_message(self) -> Dict[str, Any]:
        schema = dict(self.stream.json_schema)
        if self.properties is not None:
            schema["properties"] = {
                name: definition for name, definition in (schema.get("properties") or {}).items() if name in self.properties
            }
        message: Dict[str, Any] = {
            "type": "SCHEMA",
            "stream": self.name,
            "schema": schema,
            "key_properties": key_properties(self.stream),
        }
        cursor = replication_key(self.stream)
        if cursor:
            message["bookmark_properties"] = [cursor]
        return message

    def record_data(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.properties is None:
            return data
        return {name: value for name, value in data.items() if name in self.properties}


def _is_selected(node: Mapping[str, Any], default: bool) -> bool:
    """Singer's rule for one metadata node: automatic always, unsupported never, else `selected`."""
    inclusion = node.get("inclusion")
    if inclusion == "automatic":
        return True
    if inclusion == "unsupported":
        return False
    if "selected" in node:
        return bool(node["selected"])
    return bool(node.get("selected-by-default", default))


def selected_streams(catalog: Mapping[str, Any], discovered: AirbyteCatalog) -> List[SingerStream]:
    """The streams (and fields) a Singer catalog selects, checked against what this config provides."""
    if not isinstance(catalog, Mapping) or not isinstance(catalog.get("streams"), list):
        raise UsageError("The --catalog file must be a Singer catalog: a JSON object with a 'streams' list", FailureType.config_error)
    available = {stream.name: stream for stream in discovered.streams}
    selected: List[SingerStream] = []
    unknown: List[str] = []
    for entry in catalog["streams"]:
        name = entry.get("tap_stream_id") or entry.get("stream")
        nodes = {tuple(item.get("breadcrumb") or ()): item.get("metadata") or {} for item in entry.get("metadata") or []}
        legacy_selected = (entry.get("schema") or {}).get("selected")  # pre-metadata catalogs marked the schema
        root = nodes.get((), {})
        if not _is_selected({"selected": legacy_selected, **root} if legacy_selected is not None else root, default=False):
            continue
        if name not in available:
            unknown.append(str(name))
            continue
        stream = available[name]
        method = root.get("replication-method")
        if method and method != replication_method(stream):
            logger.warning(f"{name}: ignoring replication-method {method}: its method is forced (drop the state for a full read)")
        excluded = {
            breadcrumb[1]
            for breadcrumb, node in nodes.items()
            if len(breadcrumb) == 2 and breadcrumb[0] == "properties" and not _is_selected(node, default=True)
        } - automatic_properties(stream)
        fields = set(stream.json_schema.get("properties") or {})
        selected.append(SingerStream(stream, frozenset(fields - excluded) if excluded else None))
    if unknown:
        raise UsageError(
            f"The catalog selects {', '.join(sorted(unknown))}, which this config does not provide "
            f"(configure the vendor, or run --discover again)",
            FailureType.config_error,
        )
    return selected


def configured_catalog(streams: Sequence[SingerStream]) -> ConfiguredAirbyteCatalog:
    """Incremental where the stream supports it (Singer's forced replication method), else full refresh."""
    configured = []
    for singer_stream in streams:
        stream = singer_stream.stream
        incremental = replication_key(stream) is not None
        configured.append(
            {
                "stream": AirbyteStreamSerializer.dump(stream),
                "sync_mode": "incremental" if incremental else "full_refresh",
                "cursor_field": list(stream.default_cursor_field or []) if incremental else [],
                "destination_sync_mode": "append",
            }
        )
    return ConfiguredAirbyteCatalogSerializer.load({"streams": configured})


# ----- state: Singer bookmarks <-> Airbyte per-stream state -------------------------------------------


def bookmarks_of(state: Any) -> Dict[str, Any]:
    """The bookmarks of a Singer state (`meltano state get` output, wrapped in `singer_state`, works too)."""
    if state in (None, {}):
        return {}
    if isinstance(state, Mapping) and "bookmarks" not in state and isinstance(state.get("singer_state"), Mapping):
        state = state["singer_state"]
    if not isinstance(state, Mapping) or not isinstance(state.get("bookmarks", {}), Mapping):
        raise UsageError('The --state file must be a Singer state: {"bookmarks": {"<stream>": {...}}}', FailureType.config_error)
    return {str(name): bookmark for name, bookmark in state.get("bookmarks", {}).items() if isinstance(bookmark, Mapping) and bookmark}


def airbyte_state(bookmarks: Mapping[str, Any]) -> List[AirbyteStateMessage]:
    """One Airbyte STREAM state message per bookmark, the shape `SourceUsage.read` takes."""
    return [
        AirbyteStateMessageSerializer.load(
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": dict(bookmark)}}
        )
        for name, bookmark in bookmarks.items()
    ]


def bookmark_of(state: AirbyteStateMessage) -> Optional[Tuple[str, Optional[Dict[str, Any]]]]:
    """(stream, bookmark) of a per-stream Airbyte state; the bookmark is None for a stream without a cursor."""
    dumped = AirbyteStateMessageSerializer.dump(state)
    stream = dumped.get("stream")
    if dumped.get("type") != "STREAM" or not stream:
        return None
    value = stream.get("stream_state") or {}
    if not value or value.get(NO_CURSOR_STATE_KEY):
        return stream["stream_descriptor"]["name"], None
    return stream["stream_descriptor"]["name"], value


# ----- sync: Airbyte messages -> Singer messages --------------------------------------------------------


class SingerTranslator:
    """Turns the Airbyte messages of one read into Singer messages; everything else becomes a log line."""

    def __init__(self, streams: Sequence[SingerStream], bookmarks: Optional[Mapping[str, Any]] = None) -> None:
        self.streams = {stream.name: stream for stream in streams}
        self.bookmarks: Dict[str, Any] = dict(bookmarks or {})  # kept for unselected streams too
        self.errors: Dict[str, List[str]] = {}  # error message -> the streams that failed with it
        self._described: Set[str] = set()

    def translate(self, message: AirbyteMessage) -> Iterator[Dict[str, Any]]:
        if message.type == Type.RECORD and message.record is not None:
            yield from self.record(message.record)
        elif message.type == Type.STATE and message.state is not None:
            yield from self.state(message.state)
        else:
            dumped = AirbyteMessageSerializer.dump(message)
            started = _started_stream(dumped)
            if started in self.streams:
                yield from self.schema(started)
            self.log(dumped)

    def schema(self, name: str) -> Iterator[Dict[str, Any]]:
        if name not in self._described:
            self._described.add(name)
            yield self.streams[name].schema_message()

    def record(self, record: AirbyteRecordMessage) -> Iterator[Dict[str, Any]]:
        stream = self.streams.get(record.stream)
        if stream is None:
            return
        yield from self.schema(stream.name)
        yield {
            "type": "RECORD",
            "stream": stream.name,
            "record": stream.record_data(record.data),
            "time_extracted": _iso_from_millis(record.emitted_at),
        }

    def state(self, state: AirbyteStateMessage) -> Iterator[Dict[str, Any]]:
        found = bookmark_of(state)
        if found is None:
            logger.warning("Ignoring a state message that is not per stream")
            return
        name, bookmark = found
        if bookmark is None:
            self.bookmarks.pop(name, None)
        else:
            self.bookmarks[name] = bookmark
        yield self.state_message()

    def state_message(self) -> Dict[str, Any]:
        return {"type": "STATE", "value": {"bookmarks": dict(self.bookmarks)}}

    def log(self, message: Mapping[str, Any]) -> None:
        """A LOG or TRACE message as a log line; an ERROR trace is remembered for the exit status."""
        error = _error_of(message)
        if error:
            stream = ((message["trace"].get("error") or {}).get("stream_descriptor") or {}).get("name") or "the sync"
            self.errors.setdefault(error, []).append(stream)
        log_airbyte_message(message)

    def failure_summary(self) -> str:
        """One line: which streams failed, and why (streams failing for the same reason grouped)."""
        return "; ".join(f"{', '.join(streams)} failed: {error}" for error, streams in self.errors.items())


def _started_stream(message: Mapping[str, Any]) -> Optional[str]:
    trace = message.get("trace") or {}
    status = trace.get("stream_status") or {}
    if message.get("type") == "TRACE" and status.get("status") == "STARTED":
        return status["stream_descriptor"]["name"]
    return None


def _error_of(message: Mapping[str, Any]) -> Optional[str]:
    trace = message.get("trace") or {}
    if message.get("type") == "TRACE" and trace.get("type") == "ERROR":
        error = trace.get("error") or {}
        return one_line(error.get("message") or error.get("internal_message") or "unknown error")
    return None


LOG_LEVELS = {
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": logging.DEBUG,
}


def log_airbyte_message(message: Mapping[str, Any]) -> None:
    """Logs what an Airbyte LOG or TRACE message says, for a person reading stderr."""
    kind = message.get("type")
    if kind == "LOG":
        log = message.get("log") or {}
        logger.log(LOG_LEVELS.get(str(log.get("level")), logging.INFO), log.get("message", ""))
    elif kind == "TRACE":
        trace = message.get("trace") or {}
        error = _error_of(message)
        if error:
            logger.error(error)
        elif trace.get("type") == "STREAM_STATUS":
            status = trace.get("stream_status") or {}
            reasons = [reason.get("type") for reason in status.get("reasons") or []]
            name = (status.get("stream_descriptor") or {}).get("name")
            if "RATE_LIMITED" in reasons:
                logger.info(f"{name}: rate limited by the vendor, waiting as it asks")
            else:
                logger.debug(f"{name}: {status.get('status')}")
    elif kind is not None:
        logger.debug(f"Airbyte {kind} message: {json.dumps(message, default=str)[:500]}")


# ----- output: stdout for Singer messages only, stderr for people -------------------------------------


class SingerOutput:
    """Writes Singer messages, one JSON object a line, to the real stdout."""

    def __init__(self, stream: IO[str]) -> None:
        self._binary = getattr(stream, "buffer", None)
        self._text = stream

    def write(self, message: Mapping[str, Any]) -> None:
        line = orjson.dumps(message, default=_json_default, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
        if self._binary is not None:
            self._binary.write(line)
        else:
            self._text.write(line.decode())

    def write_document(self, document: Mapping[str, Any]) -> None:
        """One indented JSON document, such as the catalog a person may edit."""
        self._text.write(json.dumps(document, indent=2) + "\n")
        self._text.flush()

    def flush(self) -> None:
        (self._binary or self._text).flush()


class PrintedMessagesToLog(io.TextIOBase):
    """Stands in for sys.stdout during a run: the CDK prints some Airbyte messages itself (a rate-limited
    stream status, for one), which must not reach a Singer target; they become log lines on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._log_line(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._pending = self._pending, ""
        self._log_line(line)

    @staticmethod
    def _log_line(line: str) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict) and "type" in message:
            log_airbyte_message(message)
        else:
            logger.info(line)


class ReadableFormatter(logging.Formatter):
    """Plain log lines, with configured secrets masked like the CDK's own formatter does."""

    def format(self, record: logging.LogRecord) -> str:
        return filter_secrets(super().format(record))


def log_to_stderr() -> None:
    """Sends every log record to stderr as a readable line; the CDK's handler writes Airbyte JSON to stdout."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ReadableFormatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(HideExpectedTracebacks())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _iso_from_millis(millis: Optional[float]) -> str:
    moment = datetime.fromtimestamp(millis / 1000, tz=timezone.utc) if millis else datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def one_line(text: str) -> str:
    return " ".join(filter_secrets(str(text)).split())


# ----- commands ------------------------------------------------------------------------------------------


def read_state_file(path: str) -> Any:
    """A Singer state as `source-usage` answers a state file: a missing file is an error; one that is not
    JSON, or not a Singer state, is ignored with a warning (the sync starts from the start date)."""
    try:
        with open(path, encoding="utf-8") as file:
            content = file.read()
    except OSError as error:
        raise UsageError(f"Invalid config: (state file) {path} cannot be read: {error.strerror}", FailureType.config_error) from None
    try:
        state = json.loads(content) if content.strip() else None
    except (ValueError, RecursionError):
        state = "unreadable"
    try:
        if state_depth(state) > MAX_STATE_DEPTH:
            raise UsageError("nested too deeply")
        bookmarks_of(state)
        return state
    except (UsageError, RecursionError):
        logger.warning(f"Ignoring the state file {path}: it is not a Singer state (or not readable); every stream syncs from the start date")
        return None


def read_json(path: str, option: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            content = file.read()
    except OSError as error:
        raise UsageError(f"Cannot read the {option} file {path}: {error.strerror}", FailureType.config_error) from None
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError as error:
        raise UsageError(f"The {option} file {path} is not valid JSON: {error}", FailureType.config_error) from None


def usage_entrypoint() -> UsageEntrypoint:
    entrypoint = UsageEntrypoint(SourceUsage())
    # The CDK's hook prints uncaught errors as Airbyte TRACE messages on stdout; main() reports them instead.
    sys.excepthook = sys.__excepthook__
    return entrypoint


def discover(entrypoint: UsageEntrypoint, config: Mapping[str, Any]) -> AirbyteCatalog:
    """Validates the config (and registers its secrets for masking), then lists the configured streams."""
    spec = entrypoint.source.spec(entrypoint.logger)
    for message in entrypoint.discover(spec, config):
        if message.type == Type.CATALOG and message.catalog is not None:
            return message.catalog
        log_airbyte_message(AirbyteMessageSerializer.dump(message))
    raise UsageError("Discovery returned no catalog")


def sync(
    entrypoint: UsageEntrypoint,
    config: Mapping[str, Any],
    catalog: Optional[Mapping[str, Any]],
    state: Any,
    output: SingerOutput,
) -> None:
    """Reads the selected streams, writing SCHEMA, RECORD and STATE messages to `output`."""
    discovered = discover(entrypoint, config)
    streams = selected_streams(catalog if catalog is not None else singer_catalog(discovered), discovered)
    if not streams:
        logger.warning("The catalog selects no stream: nothing to sync")
        return
    bookmarks = bookmarks_of(state)
    translator = SingerTranslator(streams, bookmarks)
    spec = entrypoint.source.spec(entrypoint.logger)
    try:
        for message in entrypoint.read(spec, config, configured_catalog(streams), airbyte_state(bookmarks)):
            for singer_message in translator.translate(message):
                output.write(singer_message)
                if singer_message["type"] == "STATE":
                    output.flush()
    except AirbyteTracedException as failure:
        if translator.errors:  # the CDK's closing error only says "see above": name the streams and reasons
            raise UsageError(translator.failure_summary(), failure.failure_type) from failure
        raise
    output.write(translator.state_message())  # a target keeps only the state after its last record
    output.flush()


def about(output_format: str) -> str:
    spec = SourceUsage().spec(logger).connectionSpecification
    info = {
        "name": TAP_NAME,
        "description": f"Usage and cost data from {', '.join(plugin.title for plugin in plugins())} (Singer mode of source-usage)",
        "version": package_metadata.version("source-usage"),
        "capabilities": list(CAPABILITIES),
        "supported_python_versions": list(SUPPORTED_PYTHON_VERSIONS),
        "settings": spec,
    }
    if output_format == "json":
        return json.dumps(info, indent=2)
    lines = [f"# {info['name']}", "", info["description"], "", f"Version: {info['version']}", "", "## Capabilities", ""]
    lines += [f"- `{capability}`" for capability in CAPABILITIES]
    lines += ["", "## Settings", "", "| Setting | Required (with its vendor) | Secret | Description |", "| --- | --- | --- | --- |"]
    for name, schema, required in dotted_settings(spec):
        description = str(schema.get("description") or schema.get("title") or "").replace("|", "\\|")
        lines.append(f"| `{name}` | {'yes' if required else ''} | {'yes' if schema.get('airbyte_secret') else ''} | {description} |")
    return "\n".join(lines)


def dotted_settings(spec: Mapping[str, Any], prefix: str = "") -> List[Tuple[str, Mapping[str, Any], bool]]:
    """(dotted name, schema, required) of every leaf setting: `<vendor>.api_key`, as Meltano names nested
    settings. A vendor's setting is required only once that vendor's object is configured."""
    settings: List[Tuple[str, Mapping[str, Any], bool]] = []
    required = set(spec.get("required") or ())
    for name, schema in (spec.get("properties") or {}).items():
        dotted = f"{prefix}{name}"
        if schema.get("type") == "object" and schema.get("properties"):
            settings += dotted_settings(schema, prefix=f"{dotted}.")
        else:
            settings.append((dotted, schema, name in required))
    return settings


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=TAP_NAME,
        description="Singer tap for usage and cost data (the Singer mode of the source-usage Airbyte connector).",
    )
    parser.add_argument("-c", "--config", help="connector config JSON (the same file source-usage takes)")
    parser.add_argument("-d", "--discover", action="store_true", help="print the Singer catalog")
    parser.add_argument("--catalog", help="Singer catalog selecting the streams to sync (default: every stream)")
    parser.add_argument("-p", "--properties", help="older name of --catalog")
    parser.add_argument("-s", "--state", help="Singer state from a previous sync's last STATE message")
    parser.add_argument("--about", action="store_true", help="describe the tap and its settings")
    parser.add_argument("--format", choices=("json", "markdown"), default="markdown", help="--about output format")
    args = parser.parse_args(argv)
    if args.catalog and args.properties:
        parser.error("give --catalog or --properties, not both")
    if not args.about and not args.config:
        parser.error("--config is required (except with --about)")
    return args


def run_command(args: argparse.Namespace, output: SingerOutput) -> None:
    """Discover or sync; while it runs, whatever else prints to stdout is logged to stderr instead."""
    printed = PrintedMessagesToLog()
    try:
        with redirect_stdout(printed):
            entrypoint = usage_entrypoint()
            config = read_json(args.config, "--config")
            if not isinstance(config, Mapping):
                raise UsageError(f"The --config file {args.config} must hold a JSON object", FailureType.config_error)
            if args.discover:
                output.write_document(singer_catalog(discover(entrypoint, config)))
                return
            catalog_path = args.catalog or args.properties
            catalog = read_json(catalog_path, "--catalog") if catalog_path else None
            state = read_state_file(args.state) if args.state else None
            sync(entrypoint, config, catalog, state, output)
    finally:
        printed.flush()


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.about:
        print(about(args.format))
        return
    output = SingerOutput(sys.stdout)
    log_to_stderr()
    try:
        reload_settings()
        with interruptible(TAP_NAME):
            run_command(args, output)
    except AirbyteTracedException as failure:
        raise SystemExit(f"{TAP_NAME}: {one_line(failure.message or failure.internal_message or 'failed')}") from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        raise SystemExit(f"{TAP_NAME}: stdout was closed before the sync ended (did the target stop?)") from None
    except Exception as failure:  # unexpected: keep the traceback for a bug report, end with one clear line
        logger.exception("Unexpected failure")
        raise SystemExit(f"{TAP_NAME}: unexpected {type(failure).__name__}: {one_line(str(failure))}") from None


if __name__ == "__main__":
    main()
