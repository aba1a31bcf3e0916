"""config_fields.py: readers for the fields vendor sections share (base URLs, ids, secrets, integers)."""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_usage.framework.config_fields import base_url, ids, integer, nonempty, optional_text, secret
from source_usage.framework.errors import ConfigError

DEFAULT = "https://api.acme.example/api/v1"


def url(value: Any) -> str:
    return base_url("acme", {"base_url": value}, DEFAULT, "/api/v1")


def refused(value: Any) -> ConfigError:
    with pytest.raises(ConfigError) as failure:
        url(value)
    assert failure.value.field == "acme.base_url"
    return failure.value


@pytest.mark.parametrize(
    "given, used",
    [
        (None, "https://api.acme.example/api/v1"),
        ("", "https://api.acme.example/api/v1"),
        ("https://api.acme.ca", "https://api.acme.ca/api/v1"),
        ("https://api.acme.ca/", "https://api.acme.ca/api/v1"),
        ("https://api.acme.ca/api", "https://api.acme.ca/api/v1"),
        ("https://api.acme.ca/api/v1", "https://api.acme.ca/api/v1"),
        ("https://api.acme.ca/api/v1/", "https://api.acme.ca/api/v1"),
        ("  https://api.acme.ca/api/v1  ", "https://api.acme.ca/api/v1"),
        ("http://127.0.0.1:8000/proxy", "http://127.0.0.1:8000/proxy/api/v1"),
        ("http://127.0.0.1:8000/proxy/v1", "http://127.0.0.1:8000/proxy/v1"),  # ends with the version: used as given
        ("https://api.acme.ca:65535", "https://api.acme.ca:65535/api/v1"),
        ("https://api.acme.ca:1/api/v1", "https://api.acme.ca:1/api/v1"),
    ],
)
def test_given_a_base_url_when_read_then_the_missing_version_path_is_appended(given: Any, used: str) -> None:
    assert url(given) == used


def test_given_a_single_segment_version_when_a_base_url_is_read_then_it_is_appended_once() -> None:
    assert base_url("twilio", {"base_url": "http://proxy.local/twilio"}, "https://supersim.twilio.com/v1", "/v1") == "http://proxy.local/twilio/v1"
    assert base_url("twilio", {"base_url": "http://proxy.local/twilio/v1"}, "https://supersim.twilio.com/v1", "/v1") == "http://proxy.local/twilio/v1"
    assert base_url("twilio", {}, "https://supersim.twilio.com/v1", "/v1") == "https://supersim.twilio.com/v1"


@pytest.mark.parametrize(
    "value, message",
    [
        ("api.acme.example/api/v1", "Invalid config: acme.base_url must start with http:// or https://"),
        ("ftp://api.acme.example", "Invalid config: acme.base_url must start with http:// or https://"),
        ("https://", "Invalid config: acme.base_url has no host name"),
        ("https:///api/v1", "Invalid config: acme.base_url has no host name"),
        ("https://api.acme.example:0/api/v1", "Invalid config: acme.base_url has port 0, which is not between 1 and 65535"),
        ("https://api.acme.example:99999/api/v1", "Invalid config: acme.base_url is not a valid URL (Port out of range 0-65535)"),
        ("https://api.acme.example:http/api/v1", "Invalid config: acme.base_url is not a valid URL (Port could not be cast to integer value as 'http')"),
        ("https://api.acme.example/api/v1?key=1", "Invalid config: acme.base_url must not carry a query string or fragment"),
        ("https://api.acme.example/api/v1#top", "Invalid config: acme.base_url must not carry a query string or fragment"),
        ("https://api.acme.example/api v1", "Invalid config: acme.base_url contains spaces or control characters"),
        ("https://api.acme.example/api/v1\x00", "Invalid config: acme.base_url contains spaces or control characters"),
    ],
)
def test_given_an_unusable_base_url_when_read_then_a_config_error_names_the_vendors_field(value: str, message: str) -> None:
    assert refused(value).message == message


def test_given_a_base_url_with_proxy_credentials_when_read_then_the_password_is_masked() -> None:
    assert url("https://user:pr0xy-pass@proxy.local/api/v1") == "https://user:pr0xy-pass@proxy.local/api/v1"
    assert filter_secrets("via https://user:pr0xy-pass@proxy.local") == "via https://****@proxy.local"


def test_given_a_secret_field_when_read_then_it_is_stripped_checked_and_masked_in_its_derived_forms() -> None:
    assert secret("acme", {"token": "  tok/en+0123456789 "}, "token") == "tok/en+0123456789"
    assert filter_secrets("q=tok%2Fen%2B0123456789 raw=tok/en+0123456789") == "q=**** raw=****"


@pytest.mark.parametrize("raw, message", [({}, "is required and must not be empty"), ({"token": "short"}, "is too short")])
def test_given_a_bad_secret_field_when_read_then_the_error_names_section_and_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        secret("acme", raw, "token")
    assert failure.value.field == "acme.token"
    assert message in failure.value.message


def test_given_a_required_text_when_read_then_it_is_stripped() -> None:
    assert nonempty("twilio", {"account_sid": " ACabc "}, "account_sid") == "ACabc"


@pytest.mark.parametrize("raw, message", [({}, "is required and must not be empty"), ({"sid": "  "}, "is required and must not be empty"), ({"sid": 5}, "is required and must not be empty"), ({"sid": "AC\x07x"}, "contains a control character")])
def test_given_a_missing_or_odd_required_text_when_read_then_the_error_names_the_field(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        nonempty("twilio", raw, "sid")
    assert failure.value.field == "twilio.sid"
    assert failure.value.message == f"Invalid config: twilio.sid {message}"


@pytest.mark.parametrize("value, text", [(None, None), ("", None), ("   ", None), (" 1234 ", "1234"), (1234, "1234")])
def test_given_an_optional_text_when_read_then_blank_is_none(value: Any, text: Any) -> None:
    assert optional_text({"aid": value}, "aid") == text
    assert optional_text({}, "aid") is None


def test_given_ids_when_read_then_they_are_text_stripped_and_blanks_dropped() -> None:
    assert ids({"organization_ids": [" 549236 ", 123, "", "  "]}, "organization_ids") == ("549236", "123")
    assert ids({"organization_ids": None}, "organization_ids") == ()
    assert ids({}, "organization_ids") == ()


def test_given_an_integer_field_when_read_then_its_value_or_the_default() -> None:
    assert integer("meraki", {"lookback_days": 3}, "lookback_days", 1) == 3
    assert integer("meraki", {}, "lookback_days", 1) == 1
    assert integer("meraki", {"lookback_days": 0}, "lookback_days", 1) == 0


@pytest.mark.parametrize("value", [True, 1.5, "2", None])
def test_given_an_integer_field_that_is_not_a_whole_number_when_read_then_the_error_names_it(value: Any) -> None:
    with pytest.raises(ConfigError) as failure:
        integer("meraki", {"lookback_days": value}, "lookback_days", 1)
    assert failure.value.field == "meraki.lookback_days"
    assert failure.value.message == f"Invalid config: meraki.lookback_days must be a whole number (got {value!r})"


def test_given_an_optional_text_of_capital_xs_when_read_then_it_is_kept() -> None:
    assert optional_text({"aid": "XXXX"}, "aid") == "XXXX"


def test_given_the_highest_and_one_past_the_highest_port_when_a_base_url_is_read_then_65535_is_accepted_and_65536_is_refused_by_urllib() -> None:
    assert base_url("acme", {"base_url": "https://api.acme.example:65535"}, DEFAULT, "/api/v1") == "https://api.acme.example:65535/api/v1"
    with pytest.raises(ConfigError) as failure:
        base_url("acme", {"base_url": "https://api.acme.example:65536"}, DEFAULT, "/api/v1")
    assert failure.value.message == "Invalid config: acme.base_url is not a valid URL (Port out of range 0-65535)"


def test_given_a_base_url_whose_path_ends_in_capital_xs_when_read_then_only_trailing_slashes_are_removed() -> None:
    assert base_url("acme", {"base_url": "http://proxy.local/XX/"}, DEFAULT, "/api/v1") == "http://proxy.local/XX/api/v1"


def test_given_a_version_path_of_three_segments_when_a_base_url_ends_with_part_of_it_then_only_the_missing_segments_are_appended() -> None:
    version = "/api/v2/usage"
    assert base_url("acme", {"base_url": "http://proxy.local/api/v2"}, DEFAULT, version) == "http://proxy.local/api/v2/usage"
    assert base_url("acme", {"base_url": "http://proxy.local/api"}, DEFAULT, version) == "http://proxy.local/api/v2/usage"
    assert base_url("acme", {"base_url": "http://proxy.local/api/v2/usage"}, DEFAULT, version) == "http://proxy.local/api/v2/usage"
    assert base_url("acme", {"base_url": "http://proxy.local"}, DEFAULT, version) == "http://proxy.local/api/v2/usage"


def test_given_a_version_path_with_capital_xs_at_its_ends_when_a_base_url_is_read_then_the_xs_are_kept() -> None:
    assert base_url("acme", {"base_url": "http://proxy.local"}, DEFAULT, "/Xv1X/") == "http://proxy.local/Xv1X/"
    assert base_url("acme", {"base_url": "http://proxy.local/Xv1X"}, DEFAULT, "/Xv1X/") == "http://proxy.local/Xv1X"
