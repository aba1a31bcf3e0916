"""Unit tests talk to requests-mock only, and never sleep: retry waits are recorded instead."""

from __future__ import annotations

from typing import List

import pytest


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Every retry wait the HTTP client asked for, in seconds (nothing actually sleeps)."""
    recorded: List[float] = []
    monkeypatch.setattr("source_usage.framework.http_client.time.sleep", recorded.append)
    return recorded
