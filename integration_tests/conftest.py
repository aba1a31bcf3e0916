"""Integration tests run the real console script as a subprocess against the emulator on 127.0.0.1."""

from __future__ import annotations

from typing import Iterator

import pytest

from source_usage.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator of all four vendors with rate limits on and no faults."""
    with Emulator(seed=11, scale=1, rate_limits=True) as running:
        yield running


@pytest.fixture
def meraki_emulator() -> Iterator[Emulator]:
    with Emulator(seed=11, scale=1, rate_limits=True, vendors=["meraki"]) as running:
        yield running
