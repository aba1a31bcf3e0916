"""The `source-usage` console script: the Airbyte protocol commands spec, check, discover and read."""

from __future__ import annotations

import logging
import sys
from typing import DefaultDict, Dict, List, Mapping, Optional, Tuple

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import AirbyteMessage, ConnectorSpecification, Type
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.sources.utils.schema_helpers import split_config

from source_usage.config import UsageConfig
from source_usage.framework.errors import UsageError
from source_usage.source import SourceUsage


class UsageEntrypoint(AirbyteEntrypoint):
    """The CDK entrypoint, validating the config with messages that name the offending field."""

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping) -> None:
        connector_config, _ = split_config(config)
        UsageConfig.parse(connector_config)

    _descriptors: Dict[Tuple[str, Optional[str]], HashableStreamDescriptor] = {}

    @classmethod
    def handle_record_counts(
        cls, message: AirbyteMessage, stream_message_count: DefaultDict[HashableStreamDescriptor, float]
    ) -> AirbyteMessage:
        """The CDK's record counting (state messages carry the records since the last one), with the
        descriptor of each stream built once instead of once per record: this runs for every record."""
        if message.type is Type.RECORD and message.record is not None:
            key = (message.record.stream, message.record.namespace)
            descriptor = cls._descriptors.get(key)
            if descriptor is None:
                descriptor = cls._descriptors[key] = HashableStreamDescriptor(name=key[0], namespace=key[1])
            stream_message_count[descriptor] += 1.0
            return message
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)


class HideExpectedTracebacks(logging.Filter):
    """A UsageError's message is the whole story: log it without the Python traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UsageError):
            record.exc_info = None
            record.exc_text = None
        return True


def launch(args: Optional[List[str]] = None) -> None:
    entrypoint = UsageEntrypoint(SourceUsage())
    for handler in logging.getLogger().handlers:
        handler.addFilter(HideExpectedTracebacks())
    parsed = entrypoint.parse_args(sys.argv[1:] if args is None else args)
    with PRINT_BUFFER:
        write = sys.stdout.write  # the CDK's print buffer; one call per message, newline included
        for message in entrypoint.run(parsed):
            write(message + "\n")


def run() -> None:
    launch()


if __name__ == "__main__":
    run()
