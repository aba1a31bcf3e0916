"""The connector's config: its spec, assembled from the vendor plugins, and its parsing into typed settings.

The config is validated once, before any request: against the JSON schema of the spec (a message names
the offending field and never echoes a secret), then by each configured vendor's own parser.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pendulum
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

from source_usage.framework.errors import ConfigError
from source_usage.framework.plugin import VendorPlugin, plugins
from source_usage.framework.secrets import mask_config_secrets
from source_usage.framework.sync import Shard

DEFAULT_START_LOOKBACK = timedelta(days=30)
DOCUMENTATION_URL = "https://github.com/source-usage/source-usage#configuration"

START_DATE = {
    "type": "string",
    "title": "Start date",
    "description": (
        "The earliest usage to sync, as an ISO 8601 UTC timestamp (for example 2026-01-01T00:00:00Z). Defaults to 30 "
        "days before the sync starts. Vendors that cannot look back that far start at their limit and log one warning."
    ),
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$",
    "pattern_descriptor": "YYYY-MM-DDTHH:mm:ssZ",
    "examples": ["2026-01-01T00:00:00Z"],
    "format": "date-time",
}

SHARD = {
    "type": "object",
    "title": "Shard",
    "description": (
        "For syncs that outgrow one machine: run `count` connections with the same config and `index` 0 to "
        "count-1. Each reads a disjoint part of the partitions that dominate the sync (networks, organizations, "
        "endpoints: each vendor's section of the README says which), with its own state; together they read "
        "everything exactly once. Default: one shard."
    ),
    "required": ["index", "count"],
    "properties": {
        "index": {"type": "integer", "title": "Shard index", "description": "This connection's shard, from 0 to count-1.", "minimum": 0, "order": 0},
        "count": {"type": "integer", "title": "Shard count", "description": "How many shards there are.", "minimum": 1, "maximum": 1000, "order": 1},
    },
}


@lru_cache(maxsize=1)
def connection_specification() -> Mapping[str, Any]:
    """The connector's config schema: the start date, each vendor plugin's section in order, the shard."""
    properties: Dict[str, Any] = {"start_date": {**START_DATE, "order": 0}}
    order = 1
    for plugin in plugins():
        properties[plugin.name] = {**copy.deepcopy(dict(plugin.spec)), "order": order}
        order += 1
    properties["shard"] = {**SHARD, "order": order}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Usage and cost from network and IoT vendors",
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
    }


def specification() -> Dict[str, Any]:
    return {"documentationUrl": DOCUMENTATION_URL, "connectionSpecification": copy.deepcopy(dict(connection_specification()))}


@dataclass(frozen=True)
class UsageConfig:
    start_date: datetime
    vendors: Tuple[Tuple[VendorPlugin, Any], ...]
    shard: Shard = Shard()

    @classmethod
    def parse(cls, raw: Mapping[str, Any], now: Optional[datetime] = None) -> "UsageConfig":
        """Validate `raw` against the spec and the rules JSON Schema cannot express."""
        if not isinstance(raw, Mapping):
            raise ConfigError("(top level)", "must be a JSON object")
        mask_config_secrets(connection_specification(), raw)
        validate_against_spec(raw)
        now = now or datetime.now(timezone.utc)
        configured = [plugin for plugin in plugins() if raw.get(plugin.name) is not None]
        if not configured:
            names = ", ".join(plugin.name for plugin in plugins())
            raise ConfigError("(top level)", f"needs at least one vendor object: {names}")
        return cls(
            start_date=_start_date(raw.get("start_date"), now),
            vendors=tuple((plugin, plugin.parse_config(raw[plugin.name])) for plugin in configured),
            shard=_shard(raw.get("shard")),
        )

    def section(self, name: str) -> Optional[Any]:
        for plugin, config in self.vendors:
            if plugin.name == name:
                return config
        return None


def validate_against_spec(raw: Mapping[str, Any]) -> None:
    """Raise a ConfigError naming the first offending field (never echoing a secret)."""
    spec = connection_specification()
    error = best_match(Draft7Validator(spec).iter_errors(raw))
    if error is not None:
        raise ConfigError(_field_of(error), _describe(error))


def unknown_keys(raw: Mapping[str, Any]) -> List[str]:
    """Keys the spec does not know, such as a misspelt `granularty`: they are ignored, so say so."""
    spec = connection_specification()["properties"]
    unknown = [key for key in raw if key not in spec and not key.startswith("_")]
    for plugin in plugins():
        section = raw.get(plugin.name)
        if isinstance(section, Mapping):
            known = spec[plugin.name].get("properties", {})
            unknown += [f"{plugin.name}.{key}" for key in section if key not in known]
    return unknown


def _field_of(error: ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        path.append(missing)
    return ".".join(path) or "(top level)"


def _is_secret(error: ValidationError) -> bool:
    return bool(isinstance(error.schema, Mapping) and error.schema.get("airbyte_secret"))


def _describe(error: ValidationError) -> str:
    value = "a value" if _is_secret(error) else _shown(error.instance)
    if error.validator == "required":
        return "is required"
    if error.validator == "enum":
        allowed = ", ".join(repr(option) for option in error.validator_value)
        return f"must be one of {allowed} (got {value})"
    if error.validator == "type":
        return f"must be of type {error.validator_value} (got {value})"
    if error.validator == "pattern":
        hint = error.schema.get("pattern_descriptor") if isinstance(error.schema, Mapping) else None
        if error.validator_value == "^https?://":
            hint = "an http:// or https:// URL"
        return f"must be {hint or 'of the form ' + error.validator_value} (got {value})"
    if error.validator in ("minimum", "maximum"):
        return f"must be {'at least' if error.validator == 'minimum' else 'at most'} {error.validator_value} (got {value})"
    return "is invalid" if _is_secret(error) else error.message[:200]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _start_date(value: Optional[str], now: datetime) -> datetime:
    if not value:
        return now - DEFAULT_START_LOOKBACK
    problem = f"must be an ISO 8601 UTC timestamp like 2026-01-01T00:00:00Z (got {_shown(value)})"
    try:
        parsed = pendulum.parse(value, strict=False)
    except (ValueError, OverflowError, pendulum.parsing.exceptions.ParserError):
        raise ConfigError("start_date", problem) from None
    if not isinstance(parsed, datetime):
        raise ConfigError("start_date", problem)
    start = parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    start = datetime.fromtimestamp(start.timestamp(), tz=timezone.utc)
    if start.year < 1970:
        raise ConfigError("start_date", f"is before 1970 (got {_shown(value)})")
    if start > now:
        raise ConfigError("start_date", f"is in the future ({_shown(value)})")
    return start


def _shard(raw: Optional[Mapping[str, Any]]) -> Shard:
    if not raw:
        return Shard()
    index, count = raw.get("index"), raw.get("count")
    if not isinstance(index, int) or not isinstance(count, int) or isinstance(index, bool) or isinstance(count, bool):
        raise ConfigError("shard", "needs whole numbers index and count")
    if not 0 <= index < count:
        raise ConfigError("shard.index", f"must be between 0 and count-1 ({count - 1}) (got {index})")
    return Shard(index, count)
