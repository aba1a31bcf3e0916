"""Readers for the kinds of fields vendor config sections share: base URLs, ids, secrets, integers."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from source_usage.framework.errors import ConfigError
from source_usage.framework.secrets import checked_secret, register_secret, register_url_credentials


def secret(section: str, raw: Mapping[str, Any], key: str) -> str:
    """A secret field, stripped, checked (no control characters, not too short) and masked in every form."""
    value = checked_secret(f"{section}.{key}", raw.get(key))
    register_secret(value)
    return value


def nonempty(section: str, raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{section}.{key}", "is required and must not be empty")
    if any(not char.isprintable() for char in value.strip()):
        raise ConfigError(f"{section}.{key}", "contains a control character")
    return value.strip()


def optional_text(raw: Mapping[str, Any], key: str) -> Optional[str]:
    value = raw.get(key)
    if value in (None, ""):
        return None
    text = str(value).strip()
    return text or None


def ids(raw: Mapping[str, Any], key: str) -> Tuple[str, ...]:
    return tuple(str(item).strip() for item in raw.get(key) or () if str(item).strip())


def integer(section: str, raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{section}.{key}", f"must be a whole number (got {value!r})")
    return value


def base_url(section: str, raw: Mapping[str, Any], default: str, version_path: str) -> str:
    """The configured base URL, checked, completed with the API version path when it was left out.

    The defaults carry the version path (`/api/v1`, `/v1`, `/v7`); a user who gives only a host or a
    proxy prefix (`https://api.example.ca`, `http://127.0.0.1:8000/vendor`) means the same API, so the
    missing version segments are appended. A URL that already ends with the version is used as given.
    Credentials in the URL (a proxy's `user:password@`) are masked in every log line.
    """
    url = str(raw.get("base_url") or default).strip().rstrip("/")
    field = f"{section}.base_url"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as problem:
        raise ConfigError(field, f"is not a valid URL ({problem})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(field, "must start with http:// or https://")
    if not host:
        raise ConfigError(field, "has no host name")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(field, f"has port {port}, which is not between 1 and 65535")
    if parts.query or parts.fragment:
        raise ConfigError(field, "must not carry a query string or fragment")
    if any(not char.isprintable() or char.isspace() for char in url):
        raise ConfigError(field, "contains spaces or control characters")
    register_url_credentials(url)
    segments = version_path.strip("/").split("/")
    for keep in range(len(segments), 0, -1):
        if url.endswith("/" + "/".join(segments[:keep])):
            return url + "".join("/" + part for part in segments[keep:])
    if url.endswith("/" + segments[-1]):
        return url
    return url + version_path
