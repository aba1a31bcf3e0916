"""The connector's config: validated once, before any request, into typed settings per vendor."""

from __future__ import annotations

import json
import pkgutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Mapping, Optional

import pendulum
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

from source_usage.framework.errors import ConfigError

DEFAULT_START_LOOKBACK = timedelta(days=30)


@dataclass(frozen=True)
class MerakiConfig:
    api_key: str
    base_url: str
    organization_ids: tuple[str, ...]
    network_ids: tuple[str, ...]
    lookback: timedelta


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    username: str
    password: str
    credential_name: str
    base_url: str
    granularity: str
    lookback: timedelta


@dataclass(frozen=True)
class EmnifyConfig:
    application_token: str
    base_url: str


@dataclass(frozen=True)
class ThousandEyesConfig:
    bearer_token: str
    base_url: str
    account_group_id: Optional[str]


@dataclass(frozen=True)
class UsageConfig:
    start_date: datetime
    meraki: Optional[MerakiConfig] = None
    twilio: Optional[TwilioConfig] = None
    emnify: Optional[EmnifyConfig] = None
    thousandeyes: Optional[ThousandEyesConfig] = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], now: Optional[datetime] = None) -> "UsageConfig":
        """Validate `raw` against the spec and the rules JSON Schema cannot express."""
        validate_against_spec(raw)
        now = now or datetime.now(timezone.utc)
        vendors = [name for name in VENDOR_KEYS if raw.get(name) is not None]
        if not vendors:
            raise ConfigError(
                "(top level)", f"needs at least one vendor object: {', '.join(VENDOR_KEYS)}"
            )
        return cls(
            start_date=_start_date(raw.get("start_date"), now),
            meraki=_meraki(raw["meraki"]) if raw.get("meraki") is not None else None,
            twilio=_twilio(raw["twilio"]) if raw.get("twilio") is not None else None,
            emnify=_emnify(raw["emnify"]) if raw.get("emnify") is not None else None,
            thousandeyes=_thousandeyes(raw["thousandeyes"]) if raw.get("thousandeyes") is not None else None,
        )


VENDOR_KEYS = ("meraki", "twilio", "emnify", "thousandeyes")


@lru_cache(maxsize=1)
def connection_specification() -> Mapping[str, Any]:
    raw = pkgutil.get_data("source_usage", "spec.json")
    assert raw is not None
    return json.loads(raw)["connectionSpecification"]


def validate_against_spec(raw: Mapping[str, Any]) -> None:
    """Raise a ConfigError naming the first offending field (never echoing a secret)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("(top level)", "must be a JSON object")
    spec = connection_specification()
    error = best_match(Draft7Validator(spec).iter_errors(raw))
    if error is not None:
        raise ConfigError(_field_of(error), _describe(error, spec))


def unknown_keys(raw: Mapping[str, Any]) -> list[str]:
    """Keys the spec does not know, such as a misspelt `granularty`: they are ignored, so say so."""
    spec = connection_specification()["properties"]
    unknown = [key for key in raw if key not in spec and not key.startswith("_")]
    for vendor in VENDOR_KEYS:
        section = raw.get(vendor)
        if isinstance(section, Mapping):
            known = spec[vendor]["properties"]
            unknown += [f"{vendor}.{key}" for key in section if key not in known]
    return unknown


def _field_of(error: ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        path.append(missing)
    return ".".join(path) or "(top level)"


def _is_secret(error: ValidationError) -> bool:
    return bool(isinstance(error.schema, Mapping) and error.schema.get("airbyte_secret"))


def _describe(error: ValidationError, spec: Mapping[str, Any]) -> str:
    value = "a value" if _is_secret(error) else repr(error.instance)
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
    return error.message if not _is_secret(error) else "is invalid"


def _start_date(value: Optional[str], now: datetime) -> datetime:
    if not value:
        return now - DEFAULT_START_LOOKBACK
    try:
        parsed = pendulum.parse(value, strict=False)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        raise ConfigError("start_date", f"must be an ISO 8601 UTC timestamp like 2026-01-01T00:00:00Z (got {value!r})") from None
    if not isinstance(parsed, datetime):
        raise ConfigError("start_date", f"must be an ISO 8601 UTC timestamp like 2026-01-01T00:00:00Z (got {value!r})")
    start = parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    start = datetime.fromtimestamp(start.timestamp(), tz=timezone.utc)
    if start > now:
        raise ConfigError("start_date", f"is in the future ({value!r})")
    return start


def _base_url(raw: Mapping[str, Any], default: str, version_path: str) -> str:
    """The configured base URL, completed with the API version path when it was left out.

    The defaults carry the version path (`/api/v1`, `/v1`, `/v7`); a user who gives only a host or a
    proxy prefix (`https://api.meraki.ca`, `http://127.0.0.1:8000/twilio`) means the same API, so the
    missing version segments are appended. A URL that already ends with the version is used as given.
    """
    url = str(raw.get("base_url") or default).rstrip("/")
    segments = version_path.strip("/").split("/")
    for keep in range(len(segments), 0, -1):
        if url.endswith("/" + "/".join(segments[:keep])):
            return url + "".join("/" + part for part in segments[keep:])
    if url.endswith("/" + segments[-1]):
        return url
    return url + version_path


def _nonempty(section: str, raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{section}.{key}", "is required and must not be empty")
    return value.strip()


def _ids(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(item).strip() for item in raw.get(key) or () if str(item).strip())


def _meraki(raw: Mapping[str, Any]) -> MerakiConfig:
    return MerakiConfig(
        api_key=_nonempty("meraki", raw, "api_key"),
        base_url=_base_url(raw, "https://api.meraki.com/api/v1", "/api/v1"),
        organization_ids=_ids(raw, "organization_ids"),
        network_ids=_ids(raw, "network_ids"),
        lookback=timedelta(days=int(raw.get("lookback_days", 1))),
    )


def _twilio(raw: Mapping[str, Any]) -> TwilioConfig:
    account_sid = _nonempty("twilio", raw, "account_sid")
    has_token = bool(raw.get("auth_token"))
    has_key = bool(raw.get("api_key_sid")) or bool(raw.get("api_key_secret"))
    if has_token and has_key:
        raise ConfigError("twilio", "takes either auth_token or api_key_sid + api_key_secret, not both")
    if has_key:
        username = _nonempty("twilio", raw, "api_key_sid")
        password = _nonempty("twilio", raw, "api_key_secret")
        credential = f"API key {username}"
    elif has_token:
        username, password, credential = account_sid, _nonempty("twilio", raw, "auth_token"), "Auth Token"
    else:
        raise ConfigError("twilio.auth_token", "is required (or api_key_sid + api_key_secret)")
    return TwilioConfig(
        account_sid=account_sid,
        username=username,
        password=password,
        credential_name=credential,
        base_url=_base_url(raw, "https://supersim.twilio.com/v1", "/v1"),
        granularity=str(raw.get("granularity") or "day"),
        lookback=timedelta(hours=int(raw.get("lookback_hours", 48))),
    )


def _emnify(raw: Mapping[str, Any]) -> EmnifyConfig:
    return EmnifyConfig(
        application_token=_nonempty("emnify", raw, "application_token"),
        base_url=_base_url(raw, "https://cdn.emnify.net/api/v1", "/api/v1"),
    )


def _thousandeyes(raw: Mapping[str, Any]) -> ThousandEyesConfig:
    account_group = raw.get("account_group_id")
    return ThousandEyesConfig(
        bearer_token=_nonempty("thousandeyes", raw, "bearer_token"),
        base_url=_base_url(raw, "https://api.thousandeyes.com/v7", "/v7"),
        account_group_id=str(account_group).strip() if account_group not in (None, "") else None,
    )
