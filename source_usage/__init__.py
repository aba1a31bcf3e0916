"""source-usage: an Airbyte source for usage and cost data from network and IoT vendors."""

from source_usage.source import SourceUsage

__all__ = ["SourceUsage"]
