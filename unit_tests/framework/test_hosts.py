"""hosts.py: the one policy saying where a vendor's credentials may go (next-page links and redirects)."""

from __future__ import annotations

import pytest

from source_usage.framework.errors import ForeignHost, RequestRefused
from source_usage.framework.hosts import HostPolicy, Origin, parent_domain


def test_given_urls_when_their_origin_is_taken_then_scheme_host_and_port_are_normalised() -> None:
    assert Origin.of("https://API.Meraki.com./api/v1?x=1") == Origin("https", "api.meraki.com", 443)
    assert Origin.of("HTTP://127.0.0.1/x") == Origin("http", "127.0.0.1", 80)
    assert Origin.of("http://127.0.0.1:8765/meraki") == Origin("http", "127.0.0.1", 8765)
    assert Origin.of("https://user:pw@host.example:8443") == Origin("https", "host.example", 8443)


@pytest.mark.parametrize("url", ["ftp://api.meraki.com/x", "api.meraki.com/x", "https://", "https://host:99999/", "/relative/path", ""])
def test_given_an_unusable_url_when_its_origin_is_taken_then_there_is_none(url: str) -> None:
    assert Origin.of(url) is None


@pytest.mark.parametrize(
    "host, parent",
    [
        ("api.meraki.com", "meraki.com"),
        ("n149.dashboard.meraki.com", "dashboard.meraki.com"),
        ("meraki.com", None),
        ("localhost", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("[::1]", None),
    ],
)
def test_given_a_host_when_its_parent_domain_is_asked_then_only_named_hosts_of_three_labels_have_one(host: str, parent: object) -> None:
    assert parent_domain(host) == parent


def test_given_a_policy_when_the_same_origin_is_asked_then_it_is_allowed_whatever_the_path() -> None:
    policy = HostPolicy.for_base_url("https://api.meraki.com/api/v1")
    assert policy.allows("https://api.meraki.com/api/v1/organizations?perPage=10")
    assert policy.allows("https://api.meraki.com:443/other")
    assert policy.allows("https://API.MERAKI.COM./api/v1")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.meraki.com/api/v1",  # another scheme
        "https://api.meraki.com:8443/api/v1",  # another port
        "https://n149.meraki.com/api/v1",  # a shard, but the policy does not allow shards
        "http://127.0.0.2/api/v1",
        "not a url",
    ],
)
def test_given_a_policy_without_shards_when_another_origin_is_asked_then_it_is_refused(url: str) -> None:
    assert not HostPolicy.for_base_url("https://api.meraki.com/api/v1").allows(url)


def test_given_shard_redirects_when_an_https_host_under_the_parent_domain_is_asked_then_it_is_allowed() -> None:
    policy = HostPolicy.for_base_url("https://api.meraki.com/api/v1", shard_redirects=True)
    assert policy.shard_domain == "meraki.com"
    assert policy.allows("https://n149.meraki.com/api/v1/organizations")
    assert policy.allows("https://a.b.meraki.com/x")
    assert policy.allows("https://n149.meraki.com:443/x")


@pytest.mark.parametrize(
    "url",
    [
        "http://n149.meraki.com/api/v1",  # shards only over https
        "http://n149.meraki.com:443/api/v1",  # not even on the https port
        "https://n149.meraki.com:8443/api/v1",  # shards only on 443
        "https://evilmeraki.com/api/v1",  # not under the parent domain, only ends like it
        "https://meraki.com/api/v1",  # the parent itself is not a shard
        "https://meraki.com.evil.example/api/v1",
        "https://n149.meraki.ca/api/v1",
    ],
)
def test_given_shard_redirects_when_a_host_that_is_not_an_https_shard_is_asked_then_it_is_refused(url: str) -> None:
    assert not HostPolicy.for_base_url("https://api.meraki.com/api/v1", shard_redirects=True).allows(url)


def test_given_an_ip_address_base_url_when_shards_are_allowed_then_no_other_host_is() -> None:
    policy = HostPolicy.for_base_url("http://127.0.0.1:8765/meraki/api/v1", shard_redirects=True)
    assert policy.shard_domain is None
    assert policy.allows("http://127.0.0.1:8765/other")
    assert not policy.allows("https://0.0.1/x")
    assert not policy.allows("https://1.0.0.1/x")
    assert not policy.allows("http://127.0.0.2:8765/meraki/api/v1")


def test_given_a_two_label_base_host_when_shards_are_allowed_then_no_other_host_is() -> None:
    policy = HostPolicy.for_base_url("https://meraki.com/api/v1", shard_redirects=True)
    assert policy.shard_domain is None
    assert not policy.allows("https://n1.meraki.com/api/v1")


@pytest.mark.parametrize("base_url", ["ftp://api.meraki.com", "api.meraki.com/api/v1", "https:///path"])
def test_given_a_base_url_that_is_not_http_when_a_policy_is_made_then_it_is_a_value_error(base_url: str) -> None:
    with pytest.raises(ValueError, match="not an http\\(s\\) URL with a host"):
        HostPolicy.for_base_url(base_url)


def test_given_a_foreign_url_when_checked_then_it_raises_a_refusal_naming_its_origin_only() -> None:
    policy = HostPolicy.for_base_url("https://api.meraki.com/api/v1")
    with pytest.raises(ForeignHost) as refused:
        policy.check("http://user:pw@127.0.0.2:8080/steal?token=1", "sent a next-page link to")
    assert isinstance(refused.value, RequestRefused)
    assert refused.value.url == "http://user:pw@127.0.0.2:8080/steal?token=1"
    assert str(refused.value) == "sent a next-page link to http://127.0.0.2:8080, which is not this vendor's configured host: not followed"


def test_given_an_allowed_url_when_checked_then_nothing_is_raised() -> None:
    HostPolicy.for_base_url("https://api.meraki.com/api/v1").check("https://api.meraki.com/api/v1/x", "a redirect")
