"""The `source-usage` console script: the Airbyte protocol commands spec, check, discover and read."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Mapping, Optional

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.sources.utils.schema_helpers import split_config

from source_usage.config import UsageConfig
from source_usage.framework.errors import UsageError
from source_usage.framework.settings import reload_settings
from source_usage.source import SourceUsage

INTERRUPTED_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class UsageEntrypoint(AirbyteEntrypoint):
    """The CDK entrypoint, validating the config with messages that name the offending field."""

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> None:
        connector_config, _ = split_config(config)
        UsageConfig.parse(connector_config)


class HideExpectedTracebacks(logging.Filter):
    """A UsageError's message is the whole story: log it without the Python traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UsageError):
            record.exc_info = None
            record.exc_text = None
        return True


class QuietTransportWarnings(logging.Filter):
    """urllib3 logs a malformed response's header-parsing problem with its traceback; the message says it all
    (and the HTTP client fails or retries the request with its own one-line error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def signal_safe(flush: Callable[[], None]) -> Callable[[], None]:
    """`flush` with SIGINT and SIGTERM held back in the main thread while it writes: an interruption then
    happens between complete messages, never in the middle of one (which the print buffer would then write
    again, whole, at exit)."""

    def flush_whole() -> None:
        if threading.current_thread() is not threading.main_thread():
            return flush()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(INTERRUPTED_EXIT_CODES))
        try:
            flush()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return flush_whole


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop now, keeping what was already written."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number


@contextmanager
def interruptible(program: str) -> Iterator[None]:
    """Turns SIGINT and SIGTERM into a prompt, quiet exit. Every message written before the signal is complete
    and in order, so the last STATE written is one the next sync can resume from; the threads still reading
    are abandoned (their records were never written), and the process exits at once with 130 or 143."""

    def interrupt(signal_number: int, frame: Any) -> None:
        raise Interrupted(signal_number)

    previous = {number: signal.signal(number, interrupt) for number in INTERRUPTED_EXIT_CODES}
    try:
        yield
    except (Interrupted, KeyboardInterrupt) as stop:
        number = stop.signal_number if isinstance(stop, Interrupted) else signal.SIGINT
        try:
            sys.stdout.flush()
        except Exception:
            pass
        sys.stderr.write(f"{program}: interrupted ({signal.Signals(number).name}); the last STATE message written is where the next sync resumes\n")
        sys.stderr.flush()
        os._exit(INTERRUPTED_EXIT_CODES[number])
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def launch(args: Optional[List[str]] = None) -> None:
    reload_settings()
    entrypoint = UsageEntrypoint(SourceUsage())
    for handler in logging.getLogger().handlers:
        handler.addFilter(HideExpectedTracebacks())
    for name in ("urllib3.connectionpool", "urllib3.response", "urllib3.connection"):
        logging.getLogger(name).addFilter(QuietTransportWarnings())  # a logger's filters are not inherited
    PRINT_BUFFER.flush = signal_safe(PRINT_BUFFER.flush)  # type: ignore[method-assign]
    parsed = entrypoint.parse_args(sys.argv[1:] if args is None else args)
    with interruptible("source-usage"):
        with PRINT_BUFFER:
            write = sys.stdout.write  # the CDK's print buffer; one call per message, newline included
            for message in entrypoint.run(parsed):
                write(message + "\n")


def run() -> None:
    launch()


if __name__ == "__main__":
    run()
