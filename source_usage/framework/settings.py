"""Operator settings from the environment, read in one place.

Every knob that is not part of the connector's config (which is per connection and shown in Airbyte's UI)
lives here: timeouts, retry and wait bounds, body size and worker counts. Each is an environment variable
`SOURCE_USAGE_<NAME>`; a value that cannot be read is a config error naming the variable, never a
silent default. The README's "Settings" table lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

from source_usage.framework.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    # Retries of failed requests (5xx, resets, timeouts, bodies that are not JSON), with exponential backoff.
    max_retries: int = 6
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 30.0
    # 429s wait as the vendor says, without using up the error retries, at most this many times per request.
    max_rate_limit_waits: int = 50
    # No single wait may be longer (an announced Retry-After or rate-limit reset beyond it fails at once)...
    max_wait_seconds: float = 120.0
    # ...and the waits of one request together stay under this.
    max_total_wait_seconds: float = 900.0
    # Waits longer than this are logged at INFO (shorter ones at DEBUG).
    log_waits_over_seconds: float = 5.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0  # per socket read
    request_deadline_seconds: float = 300.0  # one attempt, from connecting to the last byte of the body
    max_body_bytes: int = 64 * MIB  # decompressed
    max_workers: Optional[int] = None  # default: each vendor's own
    client_rate_budgets: bool = True  # off only against servers without the vendors' limits (benchmarks)

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        environ = os.environ if environ is None else environ
        values: dict = {}
        for spec in fields(cls):
            variable = env_name(spec.name)
            raw = environ.get(variable)
            if raw is None or raw.strip() == "":
                continue
            values[spec.name] = _parse(variable, raw.strip(), spec.default)
        return cls(**values)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_seconds, self.read_timeout_seconds)


def env_name(setting: str) -> str:
    return "SOURCE_USAGE_" + setting.upper()


def _parse(variable: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.lower()
        if lowered in ("on", "1", "true", "yes"):
            return True
        if lowered in ("off", "0", "false", "no"):
            return False
        raise ConfigError(variable, f"must be on or off (got {raw!r})")
    try:
        number = float(raw) if isinstance(default, float) else int(raw)
    except ValueError:
        kind = "a number" if isinstance(default, float) else "a whole number"
        raise ConfigError(variable, f"must be {kind} (got {raw!r})") from None
    if number < 0 or number != number:
        raise ConfigError(variable, f"must not be negative (got {raw!r})")
    return number


_current: Optional[Settings] = None


def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_environment()
    return _current


def reload_settings() -> Settings:
    """Read the environment again (tests that change it, and each console command at start)."""
    global _current
    _current = Settings.from_environment()
    return _current
