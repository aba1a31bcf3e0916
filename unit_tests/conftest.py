"""Unit tests talk to requests-mock only, and never sleep: retry waits are recorded instead."""

from __future__ import annotations

from typing import Iterator, List

import pytest
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets


@pytest.fixture(autouse=True)
def forget_secrets() -> Iterator[None]:
    """The CDK keeps the secrets to mask in a process-wide list: start and end every test with it empty."""
    update_secrets([])
    yield
    update_secrets([])


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Every retry wait the HTTP client asked for, in seconds (nothing actually sleeps)."""
    recorded: List[float] = []
    monkeypatch.setattr("source_usage.framework.http_client.time.sleep", recorded.append)
    return recorded
