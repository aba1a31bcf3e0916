"""Deterministic data helpers shared by the emulated vendors."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone


def stable_int(*parts: object, modulo: int = 2**63) -> int:
    """A reproducible pseudo-random integer for `parts` (independent of Python's hash seed)."""
    digest = hashlib.blake2b(":".join(str(part) for part in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % modulo


def stable_hex(length: int, *parts: object) -> str:
    return hashlib.blake2b(":".join(str(part) for part in parts).encode(), digest_size=16).hexdigest()[:length]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def iso(moment: datetime, fraction: bool = False) -> str:
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (".000000Z" if fraction else "Z")


def parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
