"""The console scripts' entry points, in a module that imports nothing heavy.

airbyte-cdk's import creates a few hundred thousand long-lived objects (models, serializers, schemas).
Python's cyclic garbage collector would walk them again and again while they are created and on every
full collection afterwards, through to the interpreter's teardown: about a fifth of a short sync's CPU
time. So the connector is imported with the collector paused, and what the import created is then
frozen out of the collector's sight (`gc.freeze`): it lives as long as the process anyway.
"""

from __future__ import annotations

import gc
from importlib import import_module
from typing import Any, Callable


def _import_frozen(module: str, attribute: str) -> Callable[..., Any]:
    gc.disable()
    try:
        entry_point = getattr(import_module(module), attribute)
        gc.freeze()
    finally:
        gc.enable()
    return entry_point  # type: ignore[no-any-return]


def airbyte_main() -> None:
    """`source-usage`: spec, check, discover and read on the Airbyte protocol."""
    _import_frozen("source_usage.run", "run")()


def singer_main() -> None:
    """`tap-usage`: the same connector as a Singer tap, for Meltano."""
    _import_frozen("source_usage.singer", "main")()
