"""Secrets: checked before any request, and masked in every form they can take in a log line.

The CDK masks the values of the spec's `airbyte_secret` fields exactly as configured. A secret also
travels in other shapes: stripped of the whitespace a copy-paste added, URL-encoded in a query string,
JSON-escaped inside a logged body, base64-encoded in a Basic `Authorization` header, or as the userinfo
of a URL. Every one of those is registered for masking here.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any, Iterable, List, Mapping, Optional
from urllib.parse import quote, quote_plus, unquote, urlsplit

from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets, get_secrets, update_secrets

from source_usage.framework.errors import ConfigError

MIN_SECRET_LENGTH = 8  # a shorter secret would be masked inside ordinary words of every log line


def checked_secret(field: str, value: Any) -> str:
    """The configured secret without surrounding whitespace; a config error if it cannot be a real one."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "is required and must not be empty")
    stripped = value.strip()
    if any(unicodedata.category(char) == "Cc" for char in stripped):
        raise ConfigError(field, "contains a control character (a line break or tab inside the value?); paste it again")
    if len(stripped) < MIN_SECRET_LENGTH:
        raise ConfigError(field, f"is too short to be a real credential (fewer than {MIN_SECRET_LENGTH} characters)")
    return stripped


def masked_forms(secret: str) -> List[str]:
    """The shapes `secret` can take in text we log."""
    forms = {secret, secret.strip(), quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return sorted((form for form in forms if form), key=len, reverse=True)


def register_secret(secret: Optional[str]) -> None:
    if secret:
        for form in masked_forms(secret):
            add_to_secrets(form)


def register_basic_auth(username: str, password: str) -> None:
    """The password and the header value `base64(username:password)` a Basic authenticator sends."""
    register_secret(password)
    register_secret(base64.b64encode(f"{username}:{password}".encode()).decode())


def register_url_credentials(url: str) -> None:
    """The password (and `user:password`) of a URL's userinfo, such as a proxy's in a base URL."""
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return
    if password:
        if username:  # first: masking applies in order, and the password alone would leave `user:****`
            register_secret(f"{username}:{password}")
        for value in (password, unquote(password)):
            register_secret(value)


def mask_config_secrets(connection_specification: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Registers the config's `airbyte_secret` values (except those too short to mask without garbling
    every line: they are config errors anyway) and their derived forms."""
    values: Iterable[Any] = get_secrets(connection_specification, config)
    secrets = [str(value) for value in values if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH]
    update_secrets(list(secrets))
    for secret in secrets:
        register_secret(secret)
