"""Vendors as plugins: one module per vendor declares everything about it, and one registry finds them.

A vendor plugin is an instance of a `VendorPlugin` subclass, registered under the Python entry-point group
`source_usage.vendors` (the four built-in vendors in this package's `setup.py`, a third-party vendor in its
own package's). It declares:

* `name` (its config section and the prefix of its streams), `title`, `position` (its place in the spec);
* `spec`: the JSON schema of its config section, secrets marked `airbyte_secret`;
* `parse_config(raw)`: the section as a typed, validated config object (a ConfigError names the field);
* `connect(config)`: its `VendorConnection` (base URL, authentication, errors, budgets, allowed hosts);
* `streams(connection, config, sync)` and `check(connection, config, sync)`;
* optionally `emulator`: "module:Class" of a local emulation of its API (the sandbox, demo and benchmark).

Nothing outside a vendor's module names the vendor: the spec, config parsing, discover, check, read, the
Singer adapter, the demo and the benchmark all iterate `plugins()`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Generic, List, Mapping, Optional, Sequence, TypeVar

from airbyte_cdk.models import FailureType

from source_usage.framework.errors import UsageError

if TYPE_CHECKING:
    from source_usage.framework.settings import Settings
    from source_usage.framework.stream import UsageStream
    from source_usage.framework.sync import SyncContext
    from source_usage.framework.vendor import VendorConnection

ENTRY_POINT_GROUP = "source_usage.vendors"
Config = TypeVar("Config")


class VendorPlugin(ABC, Generic[Config]):
    name: ClassVar[str]
    title: ClassVar[str]
    position: ClassVar[int] = 100
    spec: ClassVar[Mapping[str, Any]]
    emulator: ClassVar[Optional[str]] = None

    @abstractmethod
    def parse_config(self, raw: Mapping[str, Any]) -> Config:
        """The vendor's config section, validated (the spec's JSON schema was already checked)."""

    @abstractmethod
    def connect(self, config: Config, settings: "Settings") -> "VendorConnection":
        """The vendor's connection for one sync or check."""

    @abstractmethod
    def streams(self, connection: "VendorConnection", config: Config, sync: "SyncContext") -> List["UsageStream"]:
        """The vendor's streams, listings before the streams that use them."""

    @abstractmethod
    def check(self, connection: "VendorConnection", config: Config, sync: "SyncContext") -> None:
        """A cheap authenticated request (or two) proving the config works; raises a UsageError."""

    def ledger_sources(self, selected: Sequence[str]) -> Optional[Sequence[str]]:
        """Which of the vendor's streams the usage ledger is built from, given the streams selected; None
        means every stream that feeds the ledger (a vendor with two views of the same usage picks one)."""
        return None

    def sync_finished(self, connection: "VendorConnection", sync: "SyncContext") -> None:
        """Called once the vendor's selected streams were read (to log, say, the calls spent of a monthly quota)."""


@lru_cache(maxsize=1)
def plugins() -> List[VendorPlugin]:
    """Every installed vendor plugin, in spec order."""
    found: List[VendorPlugin] = []
    seen = set()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = entry.load()
        except Exception as problem:  # a broken third-party package must say which one it is
            raise UsageError(
                f"The vendor plugin {entry.name!r} ({entry.value}) cannot be loaded: {type(problem).__name__}: {problem}",
                FailureType.system_error,
            ) from None
        if not isinstance(plugin, VendorPlugin):
            raise UsageError(f"The vendor plugin {entry.name!r} ({entry.value}) is not a VendorPlugin instance", FailureType.system_error)
        if plugin.name in seen:
            logging.getLogger("airbyte").warning(f"Two vendor plugins are named {plugin.name!r}; using the first one found")
            continue
        seen.add(plugin.name)
        found.append(plugin)
    return sorted(found, key=lambda plugin: (plugin.position, plugin.name))


def plugin_named(name: str) -> VendorPlugin:
    for plugin in plugins():
        if plugin.name == name:
            return plugin
    raise KeyError(name)
