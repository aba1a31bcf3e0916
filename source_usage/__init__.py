"""source-usage: an Airbyte source for usage and cost data from network and IoT vendors."""

from typing import Any

__all__ = ["SourceUsage"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the console scripts (source_usage.console) can set up the
    # interpreter before airbyte-cdk is imported.
    if name == "SourceUsage":
        from source_usage.source import SourceUsage

        return SourceUsage
    raise AttributeError(f"module 'source_usage' has no attribute {name!r}")
