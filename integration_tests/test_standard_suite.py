"""The Airbyte CDK's standard source tests (spec, check, discover, basic read), offline against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase

from source_usage import SourceUsage
from source_usage.emulator import Emulator

GENERATED = Path(__file__).parent / ".generated"


@pytest.fixture(scope="module", autouse=True)
def emulated_vendors() -> Iterator[Emulator]:
    """Starts the emulator and writes the configs acceptance-test-config.yml points at."""
    with Emulator(seed=5, scale=1, rate_limits=True) as emulator:
        GENERATED.mkdir(exist_ok=True)
        config = emulator.config()
        (GENERATED / "config.json").write_text(json.dumps(config, indent=2))
        invalid = json.loads(json.dumps(config))
        invalid["meraki"]["api_key"] = "0000000000000000000000000000000000000000"
        (GENERATED / "invalid_config.json").write_text(json.dumps(invalid, indent=2))
        yield emulator


class TestSourceUsage(SourceTestSuiteBase):
    connector = SourceUsage
