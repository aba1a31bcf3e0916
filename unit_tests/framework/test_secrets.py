"""secrets.py: a secret is checked before any request, and masked in every form it can take in a log line."""

from __future__ import annotations

import pytest
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_usage.framework.errors import ConfigError
from source_usage.framework.secrets import (
    checked_secret,
    mask_config_secrets,
    masked_forms,
    register_basic_auth,
    register_secret,
    register_url_credentials,
)

SPEC = {
    "type": "object",
    "properties": {
        "acme": {
            "type": "object",
            "properties": {
                "token": {"type": "string", "airbyte_secret": True},
                "short": {"type": "string", "airbyte_secret": True},
                "name": {"type": "string"},
            },
        }
    },
}


def test_given_a_secret_with_whitespace_around_when_checked_then_it_is_stripped() -> None:
    assert checked_secret("acme.token", "  abcdefgh1234\n") == "abcdefgh1234"


@pytest.mark.parametrize("value", [None, "", "   ", 12345678])
def test_given_a_missing_or_empty_secret_when_checked_then_a_config_error_names_the_field(value: object) -> None:
    with pytest.raises(ConfigError) as failure:
        checked_secret("acme.token", value)
    assert failure.value.field == "acme.token"
    assert failure.value.message == "Invalid config: acme.token is required and must not be empty"


def test_given_a_secret_of_seven_characters_when_checked_then_it_is_too_short() -> None:
    with pytest.raises(ConfigError) as failure:
        checked_secret("acme.token", " abcdefg ")
    assert failure.value.field == "acme.token"
    assert failure.value.message == "Invalid config: acme.token is too short to be a real credential (fewer than 8 characters)"


def test_given_a_secret_of_eight_characters_when_checked_then_it_is_accepted() -> None:
    assert checked_secret("acme.token", "abcdefgh") == "abcdefgh"


@pytest.mark.parametrize("value", ["abcd\nefghijkl", "abcd\tefghijkl", "abcdefgh\x00ijkl", "abcdefgh\x7fijkl"])
def test_given_a_control_character_inside_when_checked_then_a_config_error_names_the_field(value: str) -> None:
    with pytest.raises(ConfigError) as failure:
        checked_secret("acme.token", value)
    assert failure.value.field == "acme.token"
    assert failure.value.message == (
        "Invalid config: acme.token contains a control character (a line break or tab inside the value?); paste it again"
    )


def test_given_a_short_secret_with_a_control_character_when_checked_then_the_control_character_is_reported() -> None:
    with pytest.raises(ConfigError, match="control character"):
        checked_secret("acme.token", "ab\tc")


def test_given_a_secret_when_its_forms_are_listed_then_every_shape_is_there_longest_first() -> None:
    assert masked_forms(' p@ss w/rd+"é\\x ') == [
        "%20p%40ss%20w%2Frd%2B%22%C3%A9%5Cx%20",
        "+p%40ss+w%2Frd%2B%22%C3%A9%5Cx+",
        ' p@ss w/rd+\\"\\u00e9\\\\x ',
        ' p@ss w/rd+\\"é\\\\x ',
        ' p@ss w/rd+"é\\x ',
        'p@ss w/rd+"é\\x',
    ]


@pytest.mark.parametrize(
    "logged",
    [
        "token=s3cr3t/t0k+n&x=1 raw",
        "token=s3cr3t%2Ft0k%2Bn url-encoded",
        "token=s3cr3t%2Ft0k%2Bn+ quote_plus of the padded value",
        '{"token": "s3cr3t/t0k+n"} in a body',
    ],
)
def test_given_a_registered_secret_when_logged_in_any_form_then_it_is_masked(logged: str) -> None:
    register_secret("s3cr3t/t0k+n")
    assert "s3cr3t" not in filter_secrets(logged)
    assert "t0k" not in filter_secrets(logged)


def test_given_a_secret_with_quotes_when_logged_json_escaped_then_it_is_masked() -> None:
    register_secret('pa"ss\\word-123')
    assert filter_secrets('body {"password": "pa\\"ss\\\\word-123"}') == 'body {"password": "****"}'


def test_given_a_non_ascii_secret_when_logged_as_ascii_json_then_it_is_masked() -> None:
    register_secret("pässwörd-1234")
    assert filter_secrets('{"p": "p\\u00e4ssw\\u00f6rd-1234"}') == '{"p": "****"}'


def test_given_a_secret_pasted_with_whitespace_when_logged_stripped_then_it_is_masked() -> None:
    register_secret("  tokentoken99  ")
    assert filter_secrets("Authorization: Bearer tokentoken99") == "Authorization: Bearer ****"


def test_given_no_secret_when_registered_then_nothing_is_masked() -> None:
    register_secret(None)
    register_secret("")
    assert filter_secrets("nothing to hide") == "nothing to hide"


def test_given_basic_auth_when_the_header_is_logged_then_its_base64_value_is_masked() -> None:
    register_basic_auth("ACuser0001", "hunter2hunter2")
    # base64("ACuser0001:hunter2hunter2")
    assert filter_secrets("Authorization: Basic QUN1c2VyMDAwMTpodW50ZXIyaHVudGVyMg==") == "Authorization: Basic ****"
    assert filter_secrets("password hunter2hunter2") == "password ****"


def test_given_a_url_with_userinfo_when_logged_then_the_password_in_every_form_is_masked() -> None:
    register_url_credentials("http://proxyuser:p%40ssw0rd-xyz@proxy.local:3128/meraki")
    assert filter_secrets("proxy http://proxyuser:p%40ssw0rd-xyz@proxy.local:3128/meraki") == "proxy http://****@proxy.local:3128/meraki"
    assert filter_secrets("decoded p@ssw0rd-xyz") == "decoded ****"
    assert filter_secrets("encoded p%40ssw0rd-xyz") == "encoded ****"


def test_given_a_url_without_password_or_unreadable_when_registered_then_nothing_is_masked() -> None:
    register_url_credentials("https://user@api.acme.example/v1")
    register_url_credentials("http://[::1")
    assert filter_secrets("user@api.acme.example and [::1") == "user@api.acme.example and [::1"


def test_given_a_config_when_masked_then_its_secrets_are_masked_and_short_ones_and_plain_fields_are_not() -> None:
    config = {"acme": {"token": " tok-en/0123456789 ", "short": "abc", "name": "public-name-123"}}
    mask_config_secrets(SPEC, config)
    assert filter_secrets("t=%20tok-en%2F0123456789%20 and tok-en/0123456789") == "t=**** and ****"
    assert filter_secrets("abc public-name-123") == "abc public-name-123"


def test_given_earlier_secrets_when_a_config_is_masked_then_the_list_is_replaced_by_the_configs() -> None:
    register_secret("old-secret-0001")
    mask_config_secrets(SPEC, {"acme": {"token": "new-secret-0002"}})
    assert filter_secrets("old-secret-0001 new-secret-0002") == "old-secret-0001 ****"


@pytest.mark.parametrize("token, masked", [("abcd1234", True), ("abcd123", False), (" abcd123 ", False)])
def test_given_a_config_secret_at_the_length_limit_when_masked_then_eight_characters_are_masked_and_seven_are_not(token: str, masked: bool) -> None:
    mask_config_secrets(SPEC, {"acme": {"token": token}})
    logged = filter_secrets(f"token {token.strip()}")
    assert logged == ("token ****" if masked else f"token {token.strip()}")

