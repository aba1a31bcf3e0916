"""source_usage/config.py: the spec assembled from the vendor plugins, and the config parsed once, before any
request, into typed settings (shard, start date, unknown keys)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict

import pytest
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_usage.config import UsageConfig, connection_specification, specification, unknown_keys
from source_usage.framework.errors import ConfigError
from source_usage.framework.sync import Shard

PUBLISHED = json.loads((Path(__file__).parents[2] / "integration_tests" / "published_spec.json").read_text())
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
KEY = "0123456789abcdef0123456789abcdef01234567"
MINIMAL: Dict[str, Dict[str, Any]] = {
    "meraki": {"api_key": KEY},
    "twilio": {"account_sid": "AC" + "0" * 32, "auth_token": "a1" * 16},
    "emnify": {"application_token": "emnify-application-token-0001"},
    "thousandeyes": {"bearer_token": "thousandeyes-bearer-token-0001"},
}


def parse(raw: Any) -> UsageConfig:
    return UsageConfig.parse(raw, now=NOW)


def refused(raw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as failure:
        parse(raw)
    return failure.value


# ----- the spec ----------------------------------------------------------------------------------------


def test_given_the_four_vendor_plugins_when_the_spec_is_assembled_then_it_equals_the_published_one_plus_the_shard() -> None:
    assembled = specification()
    assert assembled["documentationUrl"] == PUBLISHED["documentationUrl"] == "https://github.com/source-usage/source-usage#configuration"
    published = PUBLISHED["connectionSpecification"]
    ours = assembled["connectionSpecification"]
    assert {key: value for key, value in ours.items() if key != "properties"} == {key: value for key, value in published.items() if key != "properties"}
    assert list(ours["properties"]) == ["start_date", "meraki", "twilio", "emnify", "thousandeyes", "shard"]
    added_since = {"emnify": {"daily_lookback_days"}}  # options added after publication, on purpose
    for name, schema in published["properties"].items():
        kept = {key: value for key, value in ours["properties"][name].get("properties", {}).items() if key not in added_since.get(name, set())}
        assert {**ours["properties"][name], "properties": kept} == {**schema, "properties": schema.get("properties", {})}, name


def test_given_the_assembled_spec_when_the_shard_is_read_then_it_is_last_with_its_bounds() -> None:
    shard = connection_specification()["properties"]["shard"]
    assert shard["order"] == 5
    assert shard["required"] == ["index", "count"]
    assert shard["properties"]["index"]["minimum"] == 0
    assert (shard["properties"]["count"]["minimum"], shard["properties"]["count"]["maximum"]) == (1, 1000)
    assert [connection_specification()["properties"][name]["order"] for name in ("start_date", "meraki", "twilio", "emnify", "thousandeyes")] == [0, 1, 2, 3, 4]


def test_given_a_spec_when_changed_by_its_caller_then_the_next_one_is_intact() -> None:
    first = specification()
    first["connectionSpecification"]["properties"]["meraki"]["properties"].clear()
    first["documentationUrl"] = "changed"
    assert specification()["connectionSpecification"]["properties"]["meraki"]["properties"]["api_key"]["airbyte_secret"] is True
    assert specification()["documentationUrl"] == PUBLISHED["documentationUrl"]


# ----- parsing -----------------------------------------------------------------------------------------


def test_given_one_vendor_when_parsed_then_only_it_is_configured_with_the_defaults() -> None:
    parsed = parse({"meraki": {"api_key": KEY}})
    assert [plugin.name for plugin, _ in parsed.vendors] == ["meraki"]
    assert parsed.section("meraki").base_url == "https://api.meraki.com/api/v1"
    assert parsed.section("twilio") is None
    assert parsed.start_date == datetime(2026, 10, 31, 12, 0, tzinfo=timezone.utc)  # 30 days before now
    assert parsed.shard == Shard(0, 1)


def test_given_every_vendor_in_any_key_order_when_parsed_then_they_come_in_plugin_order() -> None:
    raw = {name: MINIMAL[name] for name in ("thousandeyes", "emnify", "twilio", "meraki")}
    assert [plugin.name for plugin, _ in parse(raw).vendors] == ["meraki", "twilio", "emnify", "thousandeyes"]


def test_given_a_null_vendor_section_when_parsed_then_it_is_a_type_error_naming_it() -> None:
    failure = refused({"meraki": None, "twilio": MINIMAL["twilio"]})
    assert (failure.field, failure.message) == ("meraki", "Invalid config: meraki must be of type object (got None)")


def test_given_no_vendor_when_parsed_then_the_error_lists_every_vendor() -> None:
    failure = refused({"start_date": "2026-01-01T00:00:00Z"})
    assert failure.message == "Invalid config: (top level) needs at least one vendor object: meraki, twilio, emnify, thousandeyes"


@pytest.mark.parametrize("raw", [[], "meraki", None])
def test_given_a_config_that_is_not_an_object_when_parsed_then_it_is_refused(raw: Any) -> None:
    assert refused(raw).message == "Invalid config: (top level) must be a JSON object"


def test_given_a_config_when_parsed_then_its_secrets_are_masked_before_anything_is_logged() -> None:
    parse({"meraki": {"api_key": KEY}, "twilio": {"account_sid": "AC" + "0" * 32, "auth_token": "tw1l10-auth-token"}})
    assert filter_secrets(f"key {KEY} token tw1l10-auth-token") == "key **** token ****"


def test_given_a_secret_of_the_wrong_type_when_parsed_then_the_message_never_echoes_it() -> None:
    failure = refused({"meraki": {"api_key": 1234567890123}})
    assert (failure.field, failure.message) == ("meraki.api_key", "Invalid config: meraki.api_key must be of type string (got a value)")


@pytest.mark.parametrize(
    "raw, field, message",
    [
        ({"meraki": {}}, "meraki.api_key", "Invalid config: meraki.api_key is required"),
        ({"meraki": {"api_key": KEY, "lookback_days": 31}}, "meraki.lookback_days", "Invalid config: meraki.lookback_days must be at most 30 (got 31)"),
        ({"meraki": {"api_key": KEY, "lookback_days": -1}}, "meraki.lookback_days", "Invalid config: meraki.lookback_days must be at least 0 (got -1)"),
        ({"meraki": {"api_key": KEY, "organization_ids": "549236"}}, "meraki.organization_ids", "Invalid config: meraki.organization_ids must be of type array (got '549236')"),
        ({"twilio": {**MINIMAL["twilio"], "granularity": "week"}}, "twilio.granularity", "Invalid config: twilio.granularity must be one of 'hour', 'day' (got 'week')"),
        ({"meraki": {"api_key": "short"}}, "meraki.api_key", "Invalid config: meraki.api_key is too short to be a real credential (fewer than 8 characters)"),
    ],
)
def test_given_a_field_breaking_the_spec_when_parsed_then_the_error_names_the_field(raw: Any, field: str, message: str) -> None:
    failure = refused(raw)
    assert (failure.field, failure.message) == (field, message)


@pytest.mark.parametrize("vendor", ["meraki", "twilio", "emnify", "thousandeyes"])
@pytest.mark.parametrize(
    "base_url, problem",
    [
        ("api.vendor.example/v1", "must be an http:// or https:// URL (got 'api.vendor.example/v1')"),
        ("https://", "has no host name"),
        ("https://api.vendor.example:0/v1", "has port 0, which is not between 1 and 65535"),
        ("https://api.vendor.example:99999/v1", "is not a valid URL (Port out of range 0-65535)"),
        ("https://api.vendor.example/v1?region=eu", "must not carry a query string or fragment"),
        ("https://api.vendor.example/my api/v1", "contains spaces or control characters"),
    ],
)
def test_given_an_unusable_base_url_when_parsed_then_the_error_names_the_vendors_base_url(vendor: str, base_url: str, problem: str) -> None:
    failure = refused({vendor: {**MINIMAL[vendor], "base_url": base_url}})
    assert failure.field == f"{vendor}.base_url"
    assert failure.message == f"Invalid config: {vendor}.base_url {problem}"


# ----- start date ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, start",
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("2026-01-01T00:00", datetime(2026, 1, 1, tzinfo=timezone.utc)),
        ("2026-01-01T02:30:00+02:00", datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)),
        ("2026-01-01T00:00:00.250Z", datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=timezone.utc)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=timezone.utc)),
        ("2026-11-30T12:00:00Z", datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)),  # exactly now
    ],
)
def test_given_a_start_date_when_parsed_then_it_is_an_aware_utc_moment(value: str, start: datetime) -> None:
    parsed = parse({"start_date": value, **{"meraki": MINIMAL["meraki"]}}).start_date
    assert parsed == start
    assert parsed.tzinfo == timezone.utc
    assert type(parsed) is datetime


@pytest.mark.parametrize(
    "value, message",
    [
        ("1969-12-31T23:59:59Z", "Invalid config: start_date is before 1970 (got '1969-12-31T23:59:59Z')"),
        ("2026-11-30T12:00:01Z", "Invalid config: start_date is in the future ('2026-11-30T12:00:01Z')"),
        ("2026-13-01", "Invalid config: start_date must be an ISO 8601 UTC timestamp like 2026-01-01T00:00:00Z (got '2026-13-01')"),
        ("2026/01/01", "Invalid config: start_date must be YYYY-MM-DDTHH:mm:ssZ (got '2026/01/01')"),
        ("", "Invalid config: start_date must be YYYY-MM-DDTHH:mm:ssZ (got '')"),
        (20260101, "Invalid config: start_date must be of type string (got 20260101)"),
    ],
)
def test_given_an_unusable_start_date_when_parsed_then_the_error_names_start_date(value: Any, message: str) -> None:
    failure = refused({"start_date": value, "meraki": MINIMAL["meraki"]})
    assert (failure.field, failure.message) == ("start_date", message)


# ----- shard ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shard, expected", [({"index": 1, "count": 2}, Shard(1, 2)), ({"index": 0, "count": 1}, Shard(0, 1)), ({"index": 999, "count": 1000}, Shard(999, 1000))])
def test_given_a_shard_when_parsed_then_it_is_this_instances_share(shard: dict, expected: Shard) -> None:
    assert parse({"meraki": MINIMAL["meraki"], "shard": shard}).shard == expected


@pytest.mark.parametrize(
    "shard, field, message",
    [
        ({"index": 2, "count": 2}, "shard.index", "Invalid config: shard.index must be between 0 and count-1 (1) (got 2)"),
        ({"index": -1, "count": 2}, "shard.index", "Invalid config: shard.index must be at least 0 (got -1)"),
        ({"index": 0, "count": 0}, "shard.count", "Invalid config: shard.count must be at least 1 (got 0)"),
        ({"index": 0, "count": 1001}, "shard.count", "Invalid config: shard.count must be at most 1000 (got 1001)"),
        ({"index": True, "count": 2}, "shard.index", "Invalid config: shard.index must be of type integer (got True)"),
        ({"index": 0, "count": 2.0}, "shard", "Invalid config: shard needs whole numbers index and count"),  # 2.0 passes JSON Schema
        (None, "shard", "Invalid config: shard must be of type object (got None)"),
        ({"count": 2}, "shard.index", "Invalid config: shard.index is required"),
        ({"index": 0}, "shard.count", "Invalid config: shard.count is required"),
        ("1/2", "shard", "Invalid config: shard must be of type object (got '1/2')"),
    ],
)
def test_given_an_invalid_shard_when_parsed_then_the_error_names_the_shard_field(shard: Any, field: str, message: str) -> None:
    failure = refused({"meraki": MINIMAL["meraki"], "shard": shard})
    assert (failure.field, failure.message) == (field, message)


def test_given_no_shard_when_parsed_then_there_is_one_shard() -> None:
    assert parse({"meraki": MINIMAL["meraki"]}).shard == Shard(0, 1)


# ----- unknown keys --------------------------------------------------------------------------------------


def test_given_misspelt_keys_when_checked_then_each_is_named_with_its_section() -> None:
    raw = {
        "start_date": "2026-01-01T00:00:00Z",
        "strat_date": "x",
        "_private": 1,
        "shard": {"index": 0, "count": 1},
        "meraki": {"api_key": KEY, "organisation_ids": []},
        "twilio": {**MINIMAL["twilio"], "granularty": "hour"},
        "emnify": "not a section",
    }
    assert unknown_keys(raw) == ["strat_date", "meraki.organisation_ids", "twilio.granularty"]


def test_given_only_known_keys_when_checked_then_none_are_named() -> None:
    assert unknown_keys({"start_date": "x", **MINIMAL, "shard": {}}) == []


def test_given_unknown_keys_when_parsed_then_they_are_not_an_error() -> None:
    assert [plugin.name for plugin, _ in parse({"meraki": {**MINIMAL["meraki"], "extra": 1}, "other": 2}).vendors] == ["meraki"]
