"""sync.py: `Shard`, this instance's stable share of the partitions that dominate a sync."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder, ConfiguredAirbyteStreamBuilder
from airbyte_cdk.test.state_builder import StateBuilder

from source_usage.framework.sync import Shard, SyncContext

KEYS = [("meraki", "network", f"N{index}") for index in range(300)]


def test_given_one_shard_when_asked_then_it_owns_everything() -> None:
    assert Shard().owns("anything")
    assert Shard(0, 1).owns("meraki", "network", "N1")
    assert Shard(0, 0).owns("x")


def test_given_several_shards_when_keys_are_asked_then_each_key_has_exactly_one_owner() -> None:
    shards = [Shard(index, 3) for index in range(3)]
    owners = [[shard.index for shard in shards if shard.owns(*key)] for key in KEYS]
    assert all(len(found) == 1 for found in owners)
    counts = [sum(1 for found in owners if found == [index]) for index in range(3)]
    assert all(70 <= count <= 130 for count in counts)  # every shard gets a fair part of 300 keys


@pytest.mark.parametrize(
    "key, index_of_3, index_of_2",
    [(("meraki", "network", "N1"), 1, 1), (("meraki", "network", "N2"), 2, 0), (("emnify", "endpoint", "42"), 1, 0), (("a",), 2, 1)],
)
def test_given_a_key_when_hashed_then_its_owner_is_the_same_on_every_machine_and_python(key: tuple, index_of_3: int, index_of_2: int) -> None:
    # blake2b-64 of the parts joined by \x1f, modulo the count: fixed values, not Python's salted hash()
    assert [index for index in range(3) if Shard(index, 3).owns(*key)] == [index_of_3]
    assert [index for index in range(2) if Shard(index, 2).owns(*key)] == [index_of_2]


def test_given_key_parts_when_hashed_then_their_boundaries_matter() -> None:
    owners_joined = {index for index in range(1000) if Shard(index, 1000).owns("ab", "c")}
    owners_split = {index for index in range(1000) if Shard(index, 1000).owns("a", "bc")}
    assert owners_joined != owners_split


def test_given_parts_of_other_types_when_hashed_then_they_count_as_their_text() -> None:
    assert [Shard(index, 5).owns("emnify", "endpoint", 42) for index in range(5)] == [Shard(index, 5).owns("emnify", "endpoint", "42") for index in range(5)]


def test_given_a_shard_when_printed_then_it_counts_from_one() -> None:
    assert str(Shard(0, 3)) == "shard 1 of 3"
    assert str(Shard(2, 3)) == "shard 3 of 3"


def test_given_a_sync_with_a_catalog_when_asked_then_it_knows_the_selected_streams_their_modes_and_states() -> None:
    catalog = (
        CatalogBuilder()
        .with_stream(ConfiguredAirbyteStreamBuilder().with_name("b_usage").with_sync_mode(SyncMode.incremental))
        .with_stream(ConfiguredAirbyteStreamBuilder().with_name("a_list").with_sync_mode(SyncMode.full_refresh))
        .build()
    )
    state = StateBuilder().with_stream_state("b_usage", {"ts": "2026-11-01T00:00:00Z"}).build()
    sync = SyncContext(datetime(2026, 11, 1, tzinfo=timezone.utc), Shard(1, 2), catalog, state)
    assert sync.selected == ["b_usage", "a_list"]
    assert sync.sync_mode("b_usage") == SyncMode.incremental
    assert sync.sync_mode("a_list") == SyncMode.full_refresh
    assert sync.sync_mode("unknown") == SyncMode.full_refresh
    assert sync.saved_state("b_usage") == {"ts": "2026-11-01T00:00:00Z"}
    assert sync.saved_state("a_list") == {}
    assert sync.shard == Shard(1, 2)


def test_given_a_sync_without_a_catalog_when_asked_then_nothing_is_selected_and_nothing_saved() -> None:
    sync = SyncContext(datetime(2026, 11, 1, tzinfo=timezone.utc))
    assert sync.selected == []
    assert sync.saved_state("x") == {}
    assert sync.sync_mode("x") == SyncMode.full_refresh
    assert sync.shard == Shard(0, 1)


def test_given_the_same_key_warned_twice_when_a_sync_warns_once_then_each_key_is_logged_only_the_first_time(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.warn_once")
    sync = SyncContext(datetime(2026, 11, 1, tzinfo=timezone.utc), logger=logger)
    with caplog.at_level(logging.WARNING, logger="test.warn_once"):
        sync.warn_once(("meraki", "org/1"), "skipping organization 1")
        sync.warn_once(("meraki", "org/1"), "skipping organization 1 again")
        sync.warn_once(("emnify", "org/1"), "another vendor's key")

    assert [(record.name, record.levelname, record.getMessage()) for record in caplog.records] == [
        ("test.warn_once", "WARNING", "skipping organization 1"),
        ("test.warn_once", "WARNING", "another vendor's key"),
    ]


def test_given_two_syncs_when_each_warns_the_same_key_then_each_logs_it() -> None:
    logged = []

    class Recorder(logging.Logger):
        def warning(self, msg: object, *args: object, **kwargs: object) -> None:
            logged.append(msg)

    for _ in range(2):
        SyncContext(datetime(2026, 11, 1, tzinfo=timezone.utc), logger=Recorder("r")).warn_once("k", "once per sync")
    assert logged == ["once per sync", "once per sync"]
