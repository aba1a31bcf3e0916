"""plugin.py: vendor plugins found through the `source_usage.vendors` entry points, in spec order."""

from __future__ import annotations

from typing import Any, Iterator, List, Mapping

import pytest

from source_usage import config as config_module
from source_usage.framework import plugin as plugin_module
from source_usage.framework.errors import UsageError
from source_usage.framework.plugin import ENTRY_POINT_GROUP, VendorPlugin, plugin_named, plugins


class Toy(VendorPlugin[dict]):
    spec: Mapping[str, Any] = {"type": "object"}

    def __init__(self, name: str, position: int = 100) -> None:
        self.name = name  # type: ignore[misc]
        self.title = name.title()  # type: ignore[misc]
        self.position = position  # type: ignore[misc]

    def parse_config(self, raw: Mapping[str, Any]) -> dict:
        return dict(raw)

    def connect(self, config: dict, settings: Any) -> Any:
        raise NotImplementedError

    def streams(self, connection: Any, config: dict, sync: Any) -> List[Any]:
        return []

    def check(self, connection: Any, config: dict, sync: Any) -> None:
        return None


class Entry:
    def __init__(self, name: str, loaded: Any) -> None:
        self.name = name
        self.value = f"toy_vendors.{name}:plugin"
        self._loaded = loaded

    def load(self) -> Any:
        if isinstance(self._loaded, Exception):
            raise self._loaded
        return self._loaded


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Entry]]:
    """The entry points `plugins()` finds during the test (the real registry comes back afterwards)."""
    entries: List[Entry] = []
    groups: List[str] = []

    def entry_points(group: str) -> List[Entry]:
        groups.append(group)
        return list(entries)

    plugins.cache_clear()
    config_module.connection_specification.cache_clear()
    monkeypatch.setattr(plugin_module, "entry_points", entry_points)
    yield entries
    assert set(groups) <= {ENTRY_POINT_GROUP}
    plugins.cache_clear()
    config_module.connection_specification.cache_clear()


def test_given_the_installed_package_when_plugins_are_listed_then_the_four_vendors_come_in_spec_order() -> None:
    assert [plugin.name for plugin in plugins()] == ["meraki", "twilio", "emnify", "thousandeyes"]
    assert [plugin.position for plugin in plugins()] == [10, 20, 30, 40]
    assert ENTRY_POINT_GROUP == "source_usage.vendors"


def test_given_a_name_when_a_plugin_is_asked_then_it_is_found_or_a_key_error() -> None:
    assert plugin_named("twilio").title == "Twilio Super SIM"
    with pytest.raises(KeyError):
        plugin_named("nosuchvendor")


def test_given_plugins_when_listed_then_they_are_ordered_by_position_then_name(installed: List[Entry]) -> None:
    installed += [Entry("zeta", Toy("zeta", 5)), Entry("beta", Toy("beta", 50)), Entry("alpha", Toy("alpha", 50)), Entry("gamma", Toy("gamma"))]
    assert [plugin.name for plugin in plugins()] == ["zeta", "alpha", "beta", "gamma"]


def test_given_plugins_when_listed_twice_then_the_registry_is_read_once(installed: List[Entry]) -> None:
    installed.append(Entry("alpha", Toy("alpha")))
    first = plugins()
    installed.append(Entry("beta", Toy("beta")))
    assert plugins() is first


def test_given_a_plugin_that_cannot_be_loaded_when_listed_then_the_error_names_it(installed: List[Entry]) -> None:
    installed += [Entry("alpha", Toy("alpha")), Entry("broken", ImportError("No module named 'toy_vendors'"))]
    with pytest.raises(UsageError) as failure:
        plugins()
    assert str(failure.value) == "The vendor plugin 'broken' (toy_vendors.broken:plugin) cannot be loaded: ImportError: No module named 'toy_vendors'"


def test_given_an_entry_point_that_is_not_a_plugin_when_listed_then_the_error_names_it(installed: List[Entry]) -> None:
    installed.append(Entry("odd", object()))
    with pytest.raises(UsageError) as failure:
        plugins()
    assert str(failure.value) == "The vendor plugin 'odd' (toy_vendors.odd:plugin) is not a VendorPlugin instance"


def test_given_two_plugins_of_one_name_when_listed_then_the_first_is_kept_with_a_warning(installed: List[Entry], airbyte_log: Any) -> None:
    first, second = Toy("alpha", 10), Toy("alpha", 1)
    installed += [Entry("alpha", first), Entry("alpha-fork", second)]
    assert plugins() == [first]
    assert airbyte_log.lines() == ["Two vendor plugins are named 'alpha'; using the first one found"]


def test_given_a_vendor_no_plugin_has_when_its_plugin_is_asked_for_then_a_key_error_names_it() -> None:
    from source_usage.framework.plugin import plugin_named

    with pytest.raises(KeyError) as missing:
        plugin_named("no-such-vendor")
    assert missing.value.args == ("no-such-vendor",)
