"""Integration tests run the real console script as a subprocess against the emulator on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from typing import Iterator, List

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


def docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """The standard suite's image tests build the Docker image: they need a Docker engine (and network)."""
    docker_tests = [item for item in items if item.name.startswith("test_docker_image")]
    if docker_tests and not docker_engine_available():
        skip = pytest.mark.skip(reason="no Docker engine here: the image tests of the standard suite need one")
        for item in docker_tests:
            item.add_marker(skip)
