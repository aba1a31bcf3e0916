"""Unit tests talk to requests-mock only, and never sleep: retry and budget waits are recorded instead."""

from __future__ import annotations

from typing import Iterator, List

import pytest
from airbyte_cdk.utils.airbyte_secrets_utils import update_secrets

from source_usage.framework.budget import reset_process_layers
from source_usage.framework.settings import reload_settings


@pytest.fixture(autouse=True)
def forget_secrets() -> Iterator[None]:
    """The CDK keeps the secrets to mask in a process-wide list: start and end every test with it empty."""
    update_secrets([])
    yield
    update_secrets([])


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings come from the environment: tests that change it (monkeypatch.setenv) see their values."""
    reload_settings()
    yield
    reload_settings()


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Every retry or budget wait the HTTP client asked for, in seconds (nothing actually sleeps)."""
    recorded: List[float] = []
    monkeypatch.setattr("source_usage.framework.client.sleep", recorded.append)
    monkeypatch.setattr("source_usage.framework.budget.sleep", recorded.append)
    return recorded


@pytest.fixture(autouse=True)
def fresh_process_budgets() -> None:
    """Per-IP budgets are shared by the whole process, by design: each test starts with those of a fresh one."""
    reset_process_layers()
