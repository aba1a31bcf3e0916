"""The Meraki emulator's knobs, checked over HTTP on 127.0.0.1 (no connector involved)."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

import pytest
import requests

from source_usage.emulator import Emulator
from source_usage.emulator.meraki import API_DISABLED, FORBIDDEN, LICENSE_ERROR, NETWORK_NOT_FOUND, MerakiApp


def meraki(rate_limits: bool = False, virtual_time: bool = False, **knobs: Any) -> Emulator:
    return Emulator(seed=17, rate_limits=rate_limits, vendors=["meraki"], virtual_time=virtual_time, meraki=knobs)


def app_of(emulator: Emulator) -> MerakiApp:
    app = emulator.apps["meraki"]
    assert isinstance(app, MerakiApp)
    return app


def session_for(emulator: Emulator) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {app_of(emulator).api_key}"
    return session


def read_all(session: requests.Session, url: str, **params: Any) -> List[dict]:
    """Every item of a listing, following redirects and `rel=next` links."""
    items: List[dict] = []
    response = session.get(url, params=params, timeout=10)
    while True:
        assert response.status_code == 200, (response.status_code, response.text)
        items += response.json()
        next_url = response.links.get("next", {}).get("url")
        if not next_url:
            return items
        response = session.get(next_url, timeout=10)


# ----- shard redirects ------------------------------------------------------------------------------


def test_scoped_requests_are_redirected_to_the_organizations_shard_on_the_same_host_with_the_same_query() -> None:
    with meraki(organizations=3, networks_per_organization=5, shard_redirect_rate=1.0) as emulator:
        session = session_for(emulator)
        base = emulator.base_url("meraki")
        organizations = session.get(f"{base}/organizations", allow_redirects=False, timeout=10)
        assert organizations.status_code == 200, "GET /organizations is never redirected"
        statuses = set()
        for org in organizations.json():
            url = f"{base}/organizations/{org['id']}/networks?perPage=3"
            redirect = session.get(url, allow_redirects=False, timeout=10)
            assert redirect.status_code in (302, 307, 308)
            statuses.add(redirect.status_code)
            shard = org["url"].split("//")[1].split(".")[0]  # the organization's own shard, e.g. n101
            assert redirect.headers["Location"] == f"{emulator.url}/meraki/shard/{shard}/api/v1/organizations/{org['id']}/networks?perPage=3"
            assert redirect.headers["Content-Type"].startswith("text/html")

            on_shard = session.get(redirect.headers["Location"], allow_redirects=False, timeout=10)
            assert on_shard.status_code == 200, "the shard serves the request and never redirects it again"
            assert len(on_shard.json()) == 3
            shard_base = f"{emulator.url}/meraki/shard/{shard}/api/v1/"
            assert on_shard.links["next"]["url"].startswith(shard_base), "next pages stay on the shard"
            assert all(link["url"].startswith(shard_base) for link in on_shard.links.values())
            rest = session.get(on_shard.links["next"]["url"], allow_redirects=False, timeout=10)
            assert rest.status_code == 200 and len(rest.json()) == 2
        for network_id in list(app_of(emulator).clients)[:6]:
            statuses.add(session.get(f"{base}/networks/{network_id}/clients", allow_redirects=False, timeout=10).status_code)
        assert statuses <= {302, 307, 308} and len(statuses) >= 2, statuses


def test_the_shard_path_requires_the_api_key() -> None:
    with meraki(organizations=2, shard_redirect_rate=1.0) as emulator:
        org_id = app_of(emulator).organizations[0]["id"]
        url = f"{emulator.base_url('meraki')}/organizations/{org_id}/networks"
        location = session_for(emulator).get(url, allow_redirects=False, timeout=10).headers["Location"]

        anonymous = requests.get(location, timeout=10)
        wrong = requests.get(location, headers={"Authorization": "Bearer " + "0" * 40}, timeout=10)
        keyed = requests.get(location, headers={"X-Cisco-Meraki-API-Key": app_of(emulator).api_key}, timeout=10)

        assert (anonymous.status_code, anonymous.json()) == (401, {"errors": ["Missing API key"]})
        assert (wrong.status_code, wrong.json()) == (401, {"errors": ["Invalid API key"]})
        assert keyed.status_code == 200


def test_which_requests_are_redirected_and_how_depends_only_on_the_seed_and_the_request() -> None:
    def answers() -> Dict[str, Optional[int]]:
        with meraki(organizations=4, shard_redirect_rate=0.5) as emulator:
            session = session_for(emulator)
            seen: Dict[str, Optional[int]] = {}
            for network_id in sorted(app_of(emulator).clients):
                for query in ("", "?perPage=3", "?timespan=86400"):
                    path = f"/networks/{network_id}/clients{query}"
                    response = session.get(emulator.base_url("meraki") + path, allow_redirects=False, timeout=10)
                    seen[path] = response.status_code
            return seen

    first, second = answers(), answers()
    assert first == second
    assert 200 in first.values() and set(first.values()) & {302, 307, 308}
    assert 0.2 < sum(status != 200 for status in first.values()) / len(first) < 0.8


def test_a_read_that_follows_redirects_gets_exactly_what_expected_holds() -> None:
    with meraki(organizations=3, networks_per_organization=4, shard_redirect_rate=0.6) as emulator:
        session = session_for(emulator)
        base = emulator.base_url("meraki")
        networks = []
        for org in session.get(f"{base}/organizations", timeout=10).json():
            networks += read_all(session, f"{base}/organizations/{org['id']}/networks", perPage=3)
        clients = []
        for network in networks:
            clients += read_all(session, f"{base}/networks/{network['id']}/clients", perPage=3, timespan=2678400 - 7200)

        assert networks == emulator.expected("meraki_networks")
        assert {client["id"] for client in clients} == {client["id"] for client in emulator.expected("meraki_network_clients")}
        served = emulator.stats()["meraki"]["by_route"]["/networks/{id}/clients"]
        assert "200" in served and served.keys() & {"302", "307", "308"}, "some requests were redirected on the way"


# ----- organizations and networks that cannot be read ----------------------------------------------------


def test_an_organization_with_api_access_disabled_is_listed_but_answers_404_under_it() -> None:
    with meraki(organizations=4, disabled_organizations=1) as emulator:
        app = app_of(emulator)
        session = session_for(emulator)
        base = emulator.base_url("meraki")
        [disabled] = app.disabled
        listed = {org["id"]: org for org in session.get(f"{base}/organizations", timeout=10).json()}
        assert listed[disabled]["api"] == {"enabled": False}
        assert all(org["api"] == {"enabled": True} for org_id, org in listed.items() if org_id != disabled)
        assert disabled not in app.coterm

        network_id = app.networks[disabled][0]["id"]
        for path in (
            f"/organizations/{disabled}/networks",
            f"/organizations/{disabled}/licenses",
            f"/networks/{network_id}/clients",
            f"/networks/{network_id}/clients/usageHistories?clients=k1",
        ):
            refused = session.get(base + path, timeout=10)
            assert (refused.status_code, refused.json()) == (404, {"errors": [API_DISABLED]}), path
        assert API_DISABLED.startswith("API access is disabled for this organization")

        assert disabled not in {org["id"] for org in emulator.expected("meraki_organizations")}
        assert disabled in {org["id"] for org in emulator.expected("meraki_organizations", include_unreadable=True)}
        for stream in ("meraki_networks", "meraki_network_clients", "meraki_client_usage_histories", "meraki_organization_licenses"):
            records = emulator.expected(stream)
            assert records and all(record.get("organizationId") != disabled for record in records), stream


def test_an_organization_the_admin_only_has_network_access_to_answers_403_to_its_listings() -> None:
    with meraki(organizations=3, forbidden_organizations=1) as emulator:
        app = app_of(emulator)
        session = session_for(emulator)
        base = emulator.base_url("meraki")
        [forbidden] = app.forbidden
        for path in (f"/organizations/{forbidden}/networks", f"/organizations/{forbidden}/licenses"):
            refused = session.get(base + path, timeout=10)
            assert (refused.status_code, refused.json()) == (403, {"errors": [FORBIDDEN]})
        assert forbidden in {org["id"] for org in session.get(f"{base}/organizations", timeout=10).json()}

        assert forbidden in {org["id"] for org in emulator.expected("meraki_organizations")}, "listed, its API access enabled"
        for stream in ("meraki_networks", "meraki_network_clients", "meraki_client_usage_histories", "meraki_organization_licenses"):
            assert all(record.get("organizationId") != forbidden for record in emulator.expected(stream)), stream


def test_a_license_error_is_not_the_coterm_refusal_and_neither_has_expected_licenses() -> None:
    with meraki(organizations=4, license_error_organizations=1) as emulator:
        app = app_of(emulator)
        session = session_for(emulator)
        base = emulator.base_url("meraki")
        [broken] = app.license_error
        [coterm] = app.coterm
        failed = session.get(f"{base}/organizations/{broken}/licenses", timeout=10)
        coterm_refusal = session.get(f"{base}/organizations/{coterm}/licenses", timeout=10)

        assert (failed.status_code, failed.json()) == (400, {"errors": [LICENSE_ERROR]})
        assert coterm_refusal.status_code == 400
        assert coterm_refusal.json() == {"errors": [f"Organization with ID {coterm} does not support per-device licensing"]}
        assert "per-device licensing" not in LICENSE_ERROR
        licenses = emulator.expected("meraki_organization_licenses")
        assert {record["organizationId"] for record in licenses} == {org["id"] for org in app.organizations} - {broken, coterm}
        assert session.get(f"{base}/organizations/{broken}/networks", timeout=10).status_code == 200


def test_a_deleted_network_is_listed_but_answers_404_and_contributes_nothing() -> None:
    with meraki(organizations=2, networks_per_organization=3, deleted_networks=2) as emulator:
        app = app_of(emulator)
        session = session_for(emulator)
        base = emulator.base_url("meraki")
        listed = [
            network["id"]
            for org in app.organizations
            for network in session.get(f"{base}/organizations/{org['id']}/networks", timeout=10).json()
        ]
        assert app.deleted_networks <= set(listed) and len(app.deleted_networks) == 2
        for network_id in app.deleted_networks:
            for path in (f"/networks/{network_id}/clients", f"/networks/{network_id}/clients/usageHistories?clients=k1"):
                gone = session.get(base + path, timeout=10)
                assert (gone.status_code, gone.json()) == (404, {"errors": [NETWORK_NOT_FOUND]})

        # the listing shows what was listed; what is under a deleted network contributes nothing
        assert {network["id"] for network in emulator.expected("meraki_networks")} == set(listed)
        for stream in ("meraki_network_clients", "meraki_client_usage_histories"):
            records = emulator.expected(stream)
            assert records and not {record["networkId"] for record in records} & app.deleted_networks


def test_more_unreadable_organizations_than_there_are_is_refused() -> None:
    with pytest.raises(ValueError):
        MerakiApp(1, 1, False, organizations=3, disabled_organizations=2, forbidden_organizations=1)  # one is co-term


def test_every_role_at_once_leaves_exactly_the_readable_data_expected() -> None:
    knobs = dict(organizations=6, disabled_organizations=1, forbidden_organizations=1, license_error_organizations=1, deleted_networks=1)
    with meraki(**knobs) as emulator:
        app = app_of(emulator)
        readable = {org["id"] for org in app.organizations} - app.disabled - app.forbidden
        assert {org["id"] for org in emulator.expected("meraki_organizations")} == readable | app.forbidden  # listed, API enabled
        assert {network["organizationId"] for network in emulator.expected("meraki_networks")} == readable
        licensed = {record["organizationId"] for record in emulator.expected("meraki_organization_licenses")}
        assert licensed == readable - app.coterm - app.license_error
        assert len(licensed) == 2


# ----- rate limits ---------------------------------------------------------------------------------


def test_an_organization_gets_a_burst_of_ten_then_429_with_an_integer_retry_after() -> None:
    with meraki(rate_limits=True, virtual_time=True, organizations=2) as emulator:
        session = session_for(emulator)
        org_id = app_of(emulator).organizations[0]["id"]
        statuses, refusal = [], None
        for _ in range(15):
            response = session.get(f"{emulator.base_url('meraki')}/organizations/{org_id}/networks", timeout=10)
            statuses.append(response.status_code)
            if response.status_code == 429 and refusal is None:
                refusal = response
        assert statuses == [200] * 10 + [429] * 5, "the bucket holds ten requests, and no time passed to refill it"
        assert refusal is not None
        assert refusal.json() == {"errors": ["API rate limit exceeded for organization"]}
        assert int(refusal.headers["Retry-After"]) >= 1
        assert emulator.stats()["meraki"]["rate_limited_by"]["organization"] >= 1
        other = app_of(emulator).organizations[1]["id"]
        assert session.get(f"{emulator.base_url('meraki')}/organizations/{other}/networks", timeout=10).status_code == 200


def hammer_sixteen_organizations(emulator: Emulator, per_organization: int) -> None:
    """`per_organization` requests to each of 16 organizations from 16 threads."""
    organizations = [org["id"] for org in app_of(emulator).organizations]
    assert len(organizations) == 16
    base = emulator.base_url("meraki")

    def worker(org_id: str) -> None:
        session = session_for(emulator)
        for _ in range(per_organization):
            session.get(f"{base}/organizations/{org_id}/networks", timeout=10)

    threads = [threading.Thread(target=worker, args=(org_id,)) for org_id in organizations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_sixteen_organizations_within_their_own_budgets_exceed_the_per_ip_budget() -> None:
    # A long window makes the count exact in real time too: 160 requests, 100 allowed.
    with meraki(rate_limits=True, organizations=16, ip_window_seconds=60) as emulator:
        hammer_sixteen_organizations(emulator, per_organization=10)

        stats = emulator.stats()["meraki"]
        assert stats["rate_limited_by"] == {"ip": 60, "organization": 0}
        assert stats["by_route"]["/organizations/{id}/networks"] == {"200": 100, "429": 60}


def test_the_default_per_ip_budget_is_100_requests_in_any_second() -> None:
    with meraki(rate_limits=True, virtual_time=True, organizations=16) as emulator:
        session = session_for(emulator)
        hammer_sixteen_organizations(emulator, per_organization=10)
        assert emulator.stats()["meraki"]["rate_limited_by"] == {"ip": 60, "organization": 0}

        emulator.pass_time(0.999)
        assert session.get(f"{emulator.base_url('meraki')}/organizations", timeout=10).status_code == 429, "still the same second"
        emulator.pass_time(0.001)
        statuses = [session.get(f"{emulator.base_url('meraki')}/organizations", timeout=10).status_code for _ in range(101)]
        assert statuses == [200] * 100 + [429], "a second later, another 100"


def test_a_thousand_clients_per_network_are_paged_and_expected() -> None:
    with meraki(organizations=1, networks_per_organization=1, clients_per_network=1000) as emulator:
        session = session_for(emulator)
        [network_id] = app_of(emulator).clients
        clients = read_all(session, f"{emulator.base_url('meraki')}/networks/{network_id}/clients", perPage=300, timespan=2678400 - 7200)
        expected = emulator.expected("meraki_network_clients")
        assert len(clients) == len(expected) > 900
        assert [client["id"] for client in clients] == sorted(record["id"] for record in expected)
        assert len(emulator.expected("meraki_client_usage_histories")) > 5000


def test_the_knobs_come_through_the_sandbox_cli_and_the_control_api_takes_the_options() -> None:
    from source_usage.emulator.cli import parse_args

    args = parse_args(["--vendors", "meraki", "--knobs", '{"meraki": {"organizations": 3, "disabled_organizations": 1}}'])
    with Emulator(seed=args.seed, vendors=["meraki"], **args.knobs) as emulator:
        control = f"{emulator.url}/_emulator/expected/meraki_organizations"
        readable = requests.get(control, timeout=10).json()
        listed = requests.get(control, params={"include_unreadable": "true"}, timeout=10).json()
        assert len(readable) == 2 and len(listed) == 3
        assert [org for org in listed if not org["api"]["enabled"]] == [org for org in listed if org not in readable]


def test_licenses_expire_relative_to_the_emulators_clock_on_both_sides_of_a_month_by_their_state() -> None:
    from datetime import timedelta

    from source_usage.emulator.data import parse_iso

    with meraki(organizations=3) as emulator:
        now = app_of(emulator).now
        licenses = emulator.expected("meraki_organization_licenses")
        by_state: Dict[str, List[Any]] = {}
        for license_ in licenses:
            expires = parse_iso(license_["expirationDate"])
            assert parse_iso(license_["claimDate"]) < parse_iso(license_["activationDate"]) < expires
            by_state.setdefault(license_["state"], []).append(expires - now)
        assert all(timedelta(days=-201) < left < timedelta(days=-1) for left in by_state["expired"])
        assert all(timedelta(days=1) < left < timedelta(days=30) for left in by_state["expiring"])
        others = [left for state, lefts in by_state.items() if state not in ("expired", "expiring") for left in lefts]
        assert others and all(timedelta(days=44) < left < timedelta(days=402) for left in others)
        served = read_all(session_for(emulator), f"{emulator.base_url('meraki')}/organizations/{licenses[0]['organizationId']}/licenses")
        assert {item["id"]: item["expirationDate"] for item in served} == {
            item["id"]: item["expirationDate"] for item in licenses if item["organizationId"] == licenses[0]["organizationId"]
        }


def test_passing_time_needs_virtual_time_and_the_control_api_does_it() -> None:
    with meraki(rate_limits=True, organizations=1) as real:
        with pytest.raises(RuntimeError, match="stopped timer"):
            real.pass_time(1)
        assert requests.post(f"{real.url}/_emulator/pass_time?seconds=1", timeout=10).status_code == 409
    with meraki(rate_limits=True, virtual_time=True, organizations=1) as emulator:
        session = session_for(emulator)
        org_id = app_of(emulator).organizations[0]["id"]
        url = f"{emulator.base_url('meraki')}/organizations/{org_id}/networks"
        assert [session.get(url, timeout=10).status_code for _ in range(11)] == [200] * 10 + [429]
        assert requests.post(f"{emulator.url}/_emulator/pass_time?seconds=0.1", timeout=10).json() == {"ok": True}
        assert [session.get(url, timeout=10).status_code for _ in range(2)] == [200, 429], "a tenth of a second refills one token"
