"""Placeholder while the twilio streams are being written."""
from datetime import datetime
from typing import Any, List


def check(config: Any, start: datetime, retry_policy: Any) -> None:
    raise NotImplementedError


def streams(config: Any, start: datetime) -> List[Any]:
    raise NotImplementedError
