"""Emulated Cisco Meraki Dashboard API v1.

Serves `GET /organizations`, `/organizations/{id}/networks`, `/networks/{id}/clients`,
`/networks/{id}/clients/usageHistories` and `/organizations/{id}/licenses` with the real contract:
Bearer or `X-Cisco-Meraki-API-Key` auth; RFC 5988 `Link` pagination (`perPage`, `startingAfter`,
`endingBefore`, absolute first/prev/next/last links) within each endpoint's `perPage` range; the 31-day
lookback of `t0` and the 31-day span of `t0`..`t1`; `{"errors": [...]}` bodies. With `rate_limits`:
10 requests/s per organization (a token bucket holding 10, refilled at 10/s: 20 requests in the first
second, 30 in the first two, as developer.cisco.com/meraki/api-v1/rate-limit says) and `ip_limit`
requests per `ip_window_seconds` per source IP (100 per second: a moving window, so 16 organizations read
side by side, 160/s by their own budgets, run into it), answered with 429
`{"errors": ["API rate limit exceeded for organization"]}` and an integer `Retry-After`. `stats()` adds
`rate_limited_by: {"ip": n, "organization": n}`. The last organization (when there are several) uses
co-termination licensing and answers the licenses endpoint with 400.

Licenses expire relative to the emulator's clock (`now`, when it was created): by their state, `expired` ones
2-200 days before today, `expiring` ones 2-28 days after, all others 45-400 days after (activation 425 days
before the expiration, the claim three days before that); so "licenses expiring within a month" has
licenses on both sides.

Usage is daily, in kilobytes, for `days` days ending the day before yesterday; `advance()` reveals the
following day (up to yesterday), so an incremental sync finds new points.

Knobs (all off by default):

* `shard_redirect_rate` (0.0): that share of organization- and network-scoped requests
  (`/organizations/{id}/...`, `/networks/{id}/...`, never `GET /organizations`), chosen from the seed and
  the request's path and query, is answered with a redirect (302, 307 or 308, also from the seed and the
  path) to the same request on the organization's shard: `Location:
  {scheme}://{host}:{port}/meraki/shard/n{NNN}/api/v1/<path>?<same query>` (the shard of the
  organization's `url`), with the small HTML body the real front end sends. The shard path is served
  exactly like the normal one (the API key is still required: 401 without it) and never redirects again;
  the `Link` URLs of its pages point at the shard path, as the real shard host's do. The per-IP budget
  counts the redirect too; the organization's budget only the request that is served.
* `disabled_organizations` (0): that many organizations (never a co-term one) have API access disabled:
  `GET /organizations` lists them with `"api": {"enabled": false}` and every call under them (their
  networks, those networks' clients and usage, their licenses) answers 404 `{"errors": ["API access is
  disabled for this organization. To make API requests for this organization you must first enable API
  access."]}` (the wording reported in centreon/centreon-plugins#3588, 2022; meraki/dashboard-api-python#134
  reported an older 404 "To make requests you must first enable API access via
  https://nNNN.meraki.com/o/.../manage/organization/edit").
* `forbidden_organizations` (0): organizations the key's admin only has network-scoped access to:
  `/organizations/{id}/networks` and `/organizations/{id}/licenses` answer 403 `{"errors": ["You do not
  have permission to access this organization"]}` (wording not documented by Meraki; the docs say only
  "403 - Forbidden: You don't have permissions to do that"). Their networks, if asked for directly,
  are served.
* `license_error_organizations` (0): organizations whose licenses endpoint answers 400 `{"errors":
  ["Invalid request: perPage must be between 3 and 1000"]}` whatever is asked: a real failure, not the
  co-term refusal.
* `deleted_networks` (0): that many networks of readable organizations are listed by
  `/organizations/{id}/networks` but answer 404 `{"errors": ["Network not found"]}` (unverified wording)
  on `/networks/{id}/clients` and `/usageHistories`, as a network deleted between listing and reading.
* `ip_limit` (100) and `ip_window_seconds` (1.0): the per-source-IP budget.

Organizations take these roles by their position (disabled first, then forbidden, then license-error;
co-term ones are the last); there must be enough organizations for the roles asked for.

`expected()` is computed from the generated organizations, networks, clients and daily amounts with
Meraki's rules (31-day retention of client usage): every stream holds only what the enabled, readable
organizations and the networks that still exist hold. Disabled and forbidden organizations contribute
nothing (not even their `meraki_organizations` record), deleted networks nothing (not even their
`meraki_networks` record), co-term and license-error organizations no licenses. `include_unreadable=True`
adds back what the listings show anyway: the disabled and forbidden organizations' records and the
deleted networks' records.
"""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from source_usage.emulator.app import BenchScenario, Ideal, VendorApp, moving_window_bound, token_bucket_bound
from source_usage.emulator.data import DAY, iso, midnight, parse_iso, stable_hex, stable_int, utc_now
from source_usage.emulator.http import (
    Request,
    Response,
    RollingWindow,
    TokenBucket,
    json_response,
    retry_after_seconds,
)

LOOKBACK = timedelta(days=31)  # client usage is kept for 31 days
API_KEY = "5a1dbox0meraki0key0000000000000000000001"
SHARD_PREFIX = re.compile(r"^/meraki/shard/(n[0-9]+)/api/v1(?=/|$)")
REDIRECT_STATUSES = (302, 307, 308)
API_DISABLED = (
    "API access is disabled for this organization. "
    "To make API requests for this organization you must first enable API access."
)
FORBIDDEN = "You do not have permission to access this organization"
LICENSE_ERROR = "Invalid request: perPage must be between 3 and 1000"
NETWORK_NOT_FOUND = "Network not found"
LICENSE_STATES = ("active", "expired", "expiring", "recentlyQueued", "unused", "unusedActive")
# Days from the clock's midnight to a license's expiration, by state (see MerakiApp._expiration).
LICENSE_EXPIRY_DAYS = {"expired": (-200, -2), "expiring": (2, 28)}
LICENSE_EXPIRY_DAYS.update({state: (45, 400) for state in LICENSE_STATES if state not in LICENSE_EXPIRY_DAYS})
ORG_RATE, ORG_BURST = 10, 10  # requests per second per organization, and the bucket they refill


def _errors(status: int, *messages: str, headers: Optional[list] = None) -> Response:
    return json_response({"errors": list(messages)}, status, headers)


class MerakiApp(VendorApp):
    name = "meraki"
    prefix = "/meraki/api/v1"
    streams = (
        "meraki_organizations",
        "meraki_networks",
        "meraki_network_clients",
        "meraki_client_usage_histories",
        "meraki_organization_licenses",
    )
    limit_names = ("ip", "organization")

    def __init__(
        self,
        seed: int,
        scale: int,
        rate_limits: bool,
        organizations: int = 2,
        networks_per_organization: Optional[int] = None,
        clients_per_network: Optional[int] = None,
        licenses_per_organization: Optional[int] = None,
        days: int = 7,
        hidden_days: int = 2,
        coterm_organizations: Optional[int] = None,
        api_key: str = API_KEY,
        corrupt_usage: bool = False,
        shard_redirect_rate: float = 0.0,
        disabled_organizations: int = 0,
        deleted_networks: int = 0,
        license_error_organizations: int = 0,
        forbidden_organizations: int = 0,
        ip_limit: int = 100,
        ip_window_seconds: float = 1.0,
    ) -> None:
        super().__init__(seed, scale, rate_limits)
        self.api_key = api_key
        self.shard_redirect_rate = shard_redirect_rate
        self.corrupt_usage = corrupt_usage  # one usage point says recv "n/a": a record that breaks the schema
        self.now = utc_now()
        total_days = days + hidden_days
        yesterday = midnight(self.now) - DAY
        self.day_starts = [yesterday - (total_days - 1 - index) * DAY for index in range(total_days)]
        self.revealed_days = days
        networks_per_organization = networks_per_organization or 2 * self.scale
        clients_per_network = clients_per_network or 6 * self.scale
        licenses_per_organization = licenses_per_organization or 5 * self.scale
        if coterm_organizations is None:
            coterm_organizations = 1 if organizations > 1 else 0
        roles = [("disabled", disabled_organizations), ("forbidden", forbidden_organizations), ("license_error", license_error_organizations)]
        if sum(count for _, count in roles) > organizations - coterm_organizations:
            raise ValueError(
                f"{organizations} organizations ({coterm_organizations} co-term) cannot hold {disabled_organizations} disabled, "
                f"{forbidden_organizations} forbidden and {license_error_organizations} license-error ones"
            )
        role_of: Dict[int, str] = {}
        position = 0
        for role, count in roles:
            for _ in range(count):
                role_of[position] = role
                position += 1
        self.disabled: set = set()
        self.forbidden: set = set()
        self.license_error: set = set()
        self.shard_of: Dict[str, str] = {}
        self.organizations: List[dict] = []
        self.networks: Dict[str, List[dict]] = {}
        self.network_org: Dict[str, str] = {}
        self.clients: Dict[str, List[dict]] = {}
        self.client_days: Dict[str, Tuple[int, int]] = {}
        self.licenses: Dict[str, List[dict]] = {}
        self.coterm: set = set()
        for org_index in range(organizations):
            org_id = str(500000 + stable_int(seed, "org", org_index, modulo=400000))
            coterm = org_index >= organizations - coterm_organizations
            if coterm:
                self.coterm.add(org_id)
            role = role_of.get(org_index)
            if role:
                getattr(self, role).add(org_id)
            self.shard_of[org_id] = f"n{100 + org_index}"
            self.organizations.append(
                {
                    "id": org_id,
                    "name": f"Org {org_index + 1}",
                    "url": f"https://{self.shard_of[org_id]}.meraki.com/o/{stable_hex(6, seed, org_id)}/manage/organization/overview",
                    "api": {"enabled": role != "disabled"},
                    "licensing": {"model": "co-term" if coterm else "per-device"},
                    "cloud": {"region": {"name": "North America", "host": {"name": "United States"}}},
                    "management": {"details": []},
                }
            )
            self.networks[org_id] = []
            for net_index in range(networks_per_organization):
                network_id = f"N_{600000000000000000 + stable_int(seed, 'net', org_id, net_index, modulo=10**17)}"
                self.network_org[network_id] = org_id
                self.networks[org_id].append(
                    {
                        "id": network_id,
                        "organizationId": org_id,
                        "name": f"Site {org_index + 1}-{net_index + 1}",
                        "productTypes": ["appliance", "switch", "wireless"],
                        "timeZone": "America/Los_Angeles",
                        "tags": ["branch"] if net_index % 2 else [],
                        "enrollmentString": None,
                        "url": f"https://n{100 + org_index}.meraki.com/{network_id}/manage/usage/list",
                        "notes": "",
                        "isBoundToConfigTemplate": False,
                        "isVirtual": False,
                    }
                )
                self.clients[network_id] = [self._client(network_id, index, total_days) for index in range(clients_per_network)]
            self.licenses[org_id] = [self._license(org_id, index) for index in range(licenses_per_organization)]
        self.organizations.sort(key=lambda org: org["id"])
        for networks in self.networks.values():
            networks.sort(key=lambda network: network["id"])
        self.deleted_networks = self._pick_deleted_networks(deleted_networks)
        self.org_buckets: Dict[str, TokenBucket] = {}
        self.ip_window = RollingWindow(ip_limit, ip_window_seconds, self.timer)

    # ----- data --------------------------------------------------------------------------------------

    def _client(self, network_id: str, index: int, total_days: int) -> dict:
        client_id = "k" + stable_hex(6, self.seed, network_id, index)
        mac = ":".join(stable_hex(12, self.seed, "mac", network_id, index)[i : i + 2] for i in range(0, 12, 2))
        first = stable_int(self.seed, "first", client_id, modulo=3) if index % 3 == 0 else 0
        last = total_days - 1 - (stable_int(self.seed, "last", client_id, modulo=4) if index % 5 == 4 else 0)
        self.client_days[client_id] = (first, max(first, last))
        return {
            "id": client_id,
            "mac": mac,
            "ip": f"10.{index % 250}.{stable_int(self.seed, 'ip', client_id, modulo=250)}.{10 + index % 200}",
            "ip6": None,
            "ip6Local": f"fe80::{stable_hex(4, self.seed, 'ip6', client_id)}",
            "description": f"device-{index}",
            "user": None,
            "manufacturer": ["Apple", "Dell", "Cisco", "Samsung"][index % 4],
            "os": ["macOS", "Windows 11", "IOS XE", "Android"][index % 4],
            "deviceTypePrediction": None,
            "recentDeviceSerial": f"Q2XX-{stable_hex(4, self.seed, 'sn', network_id).upper()}-0001",
            "recentDeviceName": "AP-1",
            "recentDeviceMac": "00:18:0a:00:00:01",
            "recentDeviceConnection": "Wireless",
            "ssid": "corp",
            "vlan": 10,
            "namedVlan": None,
            "switchport": None,
            "status": "Online",
            "notes": None,
            "groupPolicy8021x": None,
            "adaptivePolicyGroup": None,
            "smInstalled": False,
            "pskGroup": None,
            "wirelessCapabilities": "802.11ac - 2.4 and 5 GHz",
        }

    def _license(self, org_id: str, index: int) -> dict:
        license_id = str(1000000 + stable_int(self.seed, "license", org_id, index, modulo=9000000))
        networks = self.networks[org_id]
        state = LICENSE_STATES[index % len(LICENSE_STATES)]
        expiration = self._expiration(license_id, state)
        activation = expiration - timedelta(days=425)
        return {
            "id": license_id,
            "licenseType": ["MX64-ENT", "MR-ENT", "MS220-8P", "SM"][index % 4],
            "licenseKey": "Z2" + stable_hex(10, self.seed, "key", license_id).upper(),
            "orderNumber": "4C" + stable_hex(7, self.seed, "order", license_id).upper(),
            "deviceSerial": f"Q234-{stable_hex(4, self.seed, 'dev', license_id).upper()}-5678" if index % 4 != 3 else None,
            "networkId": networks[index % len(networks)]["id"] if networks else None,
            "state": state,
            "seatCount": 25 if index % 4 == 3 else None,
            "totalDurationInDays": 425,
            "durationInDays": 365,
            "permanentlyQueuedLicenses": [],
            "claimDate": iso(activation - timedelta(days=3, hours=2, minutes=21, seconds=36)),
            "activationDate": iso(activation),
            "expirationDate": iso(expiration),
            "headLicenseId": None,
        }

    def _expiration(self, license_id: str, state: str) -> datetime:
        """When a license expires, from the emulator's clock and the license's state: an `expired` one 1-200
        days ago, an `expiring` one within the next month (2-28 days ahead), every other one 45-400 days
        ahead; at a seeded second of its day. None falls within a day of now or of a month from now, so
        "expiring within a month" has licenses on both sides and none at its edge."""
        low, high = LICENSE_EXPIRY_DAYS[state]
        days = low + stable_int(self.seed, "expires", license_id, modulo=high - low + 1)
        second = stable_int(self.seed, "expires-at", license_id, modulo=86400)
        return midnight(self.now) + timedelta(days=days, seconds=second)

    def _pick_deleted_networks(self, count: int) -> set:
        """`count` networks of readable organizations, spread by the seed."""
        if count <= 0:
            return set()
        candidates = [network["id"] for org_id in self._readable_organizations() for network in self.networks[org_id]]
        if count > len(candidates):
            raise ValueError(f"only {len(candidates)} networks of readable organizations can be deleted, not {count}")
        return set(sorted(candidates, key=lambda network_id: stable_int(self.seed, "deleted-network", network_id))[:count])

    def _readable_organizations(self) -> List[str]:
        """Organizations whose networks the key can list: API access enabled, not merely network-scoped."""
        return [org["id"] for org in self.organizations if org["id"] not in self.disabled and org["id"] not in self.forbidden]

    def _amounts(self, client_id: str, day: int) -> Tuple[int, int]:
        """(received, sent) kilobytes of a client on day `day`: the data model of the usage."""
        recv = stable_int(self.seed, "recv", client_id, day, modulo=900000) + 100
        sent = stable_int(self.seed, "sent", client_id, day, modulo=300000) + 10
        return recv, sent

    def _active_days(self, client_id: str) -> range:
        """The revealed days on which the client was on the network."""
        first, last = self.client_days[client_id]
        return range(first, min(last, self.revealed_days - 1) + 1)

    def _last_seen(self, client_id: str) -> Optional[datetime]:
        days = self._active_days(client_id)
        if not days:
            return None
        return min(self.now, self.day_starts[days[-1]] + DAY - timedelta(seconds=1))

    def advance(self, steps: int = 1) -> None:
        with self.lock:
            self.revealed_days = min(len(self.day_starts), self.revealed_days + steps)

    # ----- what a test expects (from the data model, never from what is served) -------------------------

    def expected(
        self, stream: str, start_date: Optional[str] = None, include_unreadable: Any = False, lookback_days: Any = 1, **options: Any
    ) -> List[dict]:
        """Records as the connector must deliver them: instants in RFC 3339 UTC (`...T00:00:00Z`) and, for
        usage, whether each daily bucket is final: it ended more than the lookback (days) ago."""
        include_unreadable = str(include_unreadable).lower() in ("1", "true", "yes")
        final_before = utc_now() - timedelta(days=int(lookback_days))
        # Meraki keeps client usage for 31 days: a read cannot reach further back than that (an hour of slack
        # for the time between this call and the read).
        start = parse_iso(start_date) if start_date else self.now - timedelta(days=30)
        start = max(start, utc_now() - LOOKBACK + timedelta(hours=1))
        readable = set(self._readable_organizations())
        with self.lock:
            # The listings are what the API lists: every organization but those whose API access is disabled
            # (listed with api.enabled false, skipped up front), and every network of an organization whose
            # networks can be listed, those deleted after the listing included (they were listed).
            if stream == "meraki_organizations":
                return [copy.deepcopy(org) for org in self.organizations if include_unreadable or org["id"] not in self.disabled]
            if stream == "meraki_networks":
                return [copy.deepcopy(network) for org in self.organizations if org["id"] in readable for network in self.networks[org["id"]]]
            if stream == "meraki_network_clients":
                return [
                    self._expected_client(org_id, network_id, client)
                    for org_id, network_id in self._expected_networks(readable)
                    for client in self.clients[network_id]
                    if self._seen_since(client["id"], start)
                ]
            if stream == "meraki_client_usage_histories":
                return [
                    {
                        "organizationId": org_id,
                        "networkId": network_id,
                        "clientId": client["id"],
                        "clientMac": client["mac"],
                        "clientIp": client["ip"],
                        "ts": iso(self.day_starts[day]),
                        "recv": recv,
                        "sent": sent,
                        "is_final": self.day_starts[day] + DAY < final_before,
                    }
                    for org_id, network_id in self._expected_networks(readable)
                    for client in self.clients[network_id]
                    if self._seen_since(client["id"], start)
                    for day in self._active_days(client["id"])
                    if self.day_starts[day] >= midnight(start)
                    for recv, sent in [self._amounts(client["id"], day)]
                ]
            if stream == "meraki_organization_licenses":
                return [
                    {**copy.deepcopy(license_), "organizationId": org["id"]}
                    for org in self.organizations
                    if org["id"] in readable and org["id"] not in self.coterm and org["id"] not in self.license_error
                    for license_ in self.licenses[org["id"]]
                ]
        raise KeyError(stream)

    def _expected_networks(self, readable: set) -> List[Tuple[str, str]]:
        """(organization, network) of every network whose clients and usage can be read."""
        return [
            (org["id"], network["id"])
            for org in self.organizations
            if org["id"] in readable
            for network in self.networks[org["id"]]
            if network["id"] not in self.deleted_networks
        ]

    def _seen_since(self, client_id: str, since: datetime) -> bool:
        last_seen = self._last_seen(client_id)
        return last_seen is not None and last_seen >= since

    def _expected_client(self, org_id: str, network_id: str, client: dict) -> dict:
        days = list(self._active_days(client["id"]))
        recv = sum(self._amounts(client["id"], day)[0] for day in days)
        sent = sum(self._amounts(client["id"], day)[1] for day in days)
        return {
            **copy.deepcopy(client),
            "firstSeen": iso(self.day_starts[days[0]]),
            "lastSeen": iso(self._last_seen(client["id"])),  # type: ignore[arg-type]
            "usage": {"sent": sent, "recv": recv, "total": sent + recv},
            "networkId": network_id,
            "organizationId": org_id,
        }

    def connector_config(self, base_url: str) -> Dict[str, Any]:
        return {"api_key": self.api_key, "base_url": base_url}

    # ----- for the benchmark -----------------------------------------------------------------------------

    route_labels = {
        "/organizations": "meraki_organizations",
        "/organizations/{id}/networks": "meraki_networks",
        "/networks/{id}/clients": "meraki_network_clients",
        "/networks/{id}/clients/usageHistories": "meraki_client_usage_histories",
        "/organizations/{id}/licenses": "meraki_organization_licenses",
    }

    @classmethod
    def benchmark_scenarios(cls, scale: int) -> List[BenchScenario]:
        return [
            BenchScenario(
                "meraki-fleet",
                "Meraki over 16 organizations with its limits on (10 requests/s per organization, 100/s per source IP)",
                {"organizations": 16, "networks_per_organization": 6 * scale},
            ),
            BenchScenario(
                "meraki-memory",
                "Meraki with networks of 1,000 clients and 31 days of usage, rate limits off, every worker busy",
                {"organizations": 2, "networks_per_organization": 8, "clients_per_network": 1000, "days": 31, "hidden_days": 0},
                kind="memory",
                target_rss_mb=300,
                scale=1,
            ),
        ]

    def minimum_requests(self) -> Dict[str, int]:
        """One page per listing at the largest `perPage` (organizations 9,000, networks 100,000, clients 5,000,
        licenses 1,000) and one usage request per 1,000 clients of a network."""
        organizations = self.expected("meraki_organizations")
        networks = self.expected("meraki_networks")
        clients = Counter(client["networkId"] for client in self.expected("meraki_network_clients"))
        licenses = Counter(item["organizationId"] for item in self.expected("meraki_organization_licenses"))
        return {
            "meraki_organizations": max(1, math.ceil(len(organizations) / 9000)),
            "meraki_networks": len(organizations),
            "meraki_network_clients": sum(max(1, math.ceil(clients[network["id"]] / 5000)) for network in networks),
            "meraki_client_usage_histories": sum(math.ceil(clients[network["id"]] / 1000) for network in networks),
            "meraki_organization_licenses": sum(max(1, math.ceil(licenses[org["id"]] / 1000)) for org in organizations),
        }

    def ideal(self, requests: Sequence[Dict[str, Any]]) -> Optional[Ideal]:
        """The larger of the per-organization bound (the busiest organization's requests from a full bucket of
        10 at 10/s) and the per-IP bound (every request, `ip_limit` per `ip_window_seconds`), for the requests
        that were served (429s are not needed)."""
        served = [entry for entry in requests if entry["status"] != 429]
        per_org = Counter(self._organization_of(self.path_of(entry["url"]).strip("/").split("/")) for entry in served)
        per_org.pop(None, None)
        busiest = max(per_org.values(), default=0)
        org_bound = token_bucket_bound(busiest, ORG_RATE, ORG_BURST)
        ip_bound = moving_window_bound(len(served), self.ip_window.limit, self.ip_window.period)
        counts = sorted(per_org.values())
        return Ideal(
            max(org_bound, ip_bound),
            f"{len(served)} requests, per organization {counts[0] if counts else 0}-{busiest}: per organization "
            f"{org_bound:.1f} s ({busiest} at {ORG_RATE}/s after a burst of {ORG_BURST}), per IP {ip_bound:.1f} s "
            f"({len(served)} at {self.ip_window.limit} per {self.ip_window.period:g} s)",
        )

    # ----- serving -----------------------------------------------------------------------------------

    def prefix_of(self, path: str) -> Optional[str]:
        found = SHARD_PREFIX.match(path)
        return found.group(0) if found else super().prefix_of(path)

    def rate_limited(self, request: Request, wait: float = 1.0) -> Response:
        return _errors(429, "API rate limit exceeded for organization", headers=[("Retry-After", retry_after_seconds(wait))])

    def handle(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        key = request.headers.get("x-cisco-meraki-api-key") or (authorization[7:] if authorization.lower().startswith("bearer ") else "")
        if not key:
            return _errors(401, "Missing API key")
        if key != self.api_key:
            return _errors(401, "Invalid API key")
        if request.method != "GET":
            return _errors(404, "Not found")
        parts = request.path.strip("/").split("/")
        limited = self._take_ip_limit(request)
        if limited is not None:
            return limited
        redirect = self._redirect(request, parts)
        if redirect is not None:
            return redirect
        limited = self._take_organization_limit(parts)
        if limited is not None:
            return limited
        if parts == ["organizations"]:
            return self._page(request, self.organizations, 3, 9000, 9000)
        if len(parts) >= 2 and parts[0] == "organizations":
            return self._organization_scoped(request, parts)
        if len(parts) >= 2 and parts[0] == "networks":
            return self._network_scoped(request, parts)
        return _errors(404, "Not found")

    def _organization_scoped(self, request: Request, parts: List[str]) -> Response:
        org_id = parts[1]
        if org_id not in self.networks:
            return _errors(404, "Resource not found")
        if org_id in self.disabled:
            return _errors(404, API_DISABLED)
        if len(parts) == 3 and parts[2] in ("networks", "licenses") and org_id in self.forbidden:
            return _errors(403, FORBIDDEN)
        if parts[2:] == ["networks"]:
            return self._page(request, self.networks[org_id], 3, 100000, 1000)
        if parts[2:] == ["licenses"]:
            if org_id in self.coterm:
                return _errors(400, f"Organization with ID {org_id} does not support per-device licensing")
            if org_id in self.license_error:
                return _errors(400, LICENSE_ERROR)
            return self._page(request, self.licenses[org_id], 3, 1000, 1000)
        return _errors(404, "Not found")

    def _network_scoped(self, request: Request, parts: List[str]) -> Response:
        network_id = parts[1]
        if network_id not in self.clients:
            return _errors(404, "Not found")
        if self.network_org[network_id] in self.disabled:
            return _errors(404, API_DISABLED)
        if parts[2:] in (["clients"], ["clients", "usageHistories"]) and network_id in self.deleted_networks:
            return _errors(404, NETWORK_NOT_FOUND)
        if parts[2:] == ["clients"]:
            return self._network_clients(request, network_id)
        if parts[2:] == ["clients", "usageHistories"]:
            return self._usage_histories(request, network_id)
        return _errors(404, "Not found")

    def _redirect(self, request: Request, parts: Sequence[str]) -> Optional[Response]:
        """A redirect to the organization's shard, for `shard_redirect_rate` of the scoped requests on the main host."""
        if self.shard_redirect_rate <= 0 or request.prefix != self.prefix:
            return None
        if len(parts) < 2 or parts[0] not in ("organizations", "networks"):
            return None
        target = request.path + ("?" + request.raw_query if request.raw_query else "")
        if stable_int(self.seed, "redirect", target, modulo=1_000_000) >= self.shard_redirect_rate * 1_000_000:
            return None
        org_id = self._organization_of(parts)
        shard = self.shard_of.get(org_id or "") or f"n{100 + stable_int(self.seed, 'shard', parts[1], modulo=900)}"
        location = f"{request.origin}/meraki/shard/{shard}/api/v1{target}"
        status = REDIRECT_STATUSES[stable_int(self.seed, "redirect-status", target, modulo=len(REDIRECT_STATUSES))]
        body = f'<html><body>You are being <a href="{location}">redirected</a>.</body></html>'.encode()
        return Response(status, body, [("Location", location)], content_type="text/html; charset=utf-8")

    def tenant_of(self, request: Request) -> Optional[str]:
        return self._organization_of(request.path.strip("/").split("/"))

    def _organization_of(self, parts: Sequence[str]) -> Optional[str]:
        if len(parts) > 1 and parts[0] == "organizations":
            return parts[1]
        if len(parts) > 1 and parts[0] == "networks":
            return self.network_org.get(parts[1])
        return None

    def _take_ip_limit(self, request: Request) -> Optional[Response]:
        if not self.rate_limits:
            return None
        wait = self.ip_window.take(request.client_ip)
        if wait is None:
            return None
        with self.lock:
            self.limited_by["ip"] += 1
        return self.rate_limited(request, wait)

    def _take_organization_limit(self, parts: Sequence[str]) -> Optional[Response]:
        if not self.rate_limits:
            return None
        org_id = self._organization_of(parts)
        if org_id is None:
            return None
        with self.lock:
            bucket = self.org_buckets.setdefault(org_id, TokenBucket(rate=ORG_RATE, capacity=ORG_BURST, timer=self.timer))
        wait = bucket.take()
        if wait is None:
            return None
        with self.lock:
            self.limited_by["organization"] += 1
        return self.rate_limited(None, wait)  # type: ignore[arg-type]

    def _window(self, request: Request, default_span: timedelta) -> Tuple[Optional[datetime], Optional[datetime], Optional[Response]]:
        now = utc_now()
        try:
            t0 = parse_iso(request.param("t0")) if request.param("t0") else None
            t1 = parse_iso(request.param("t1")) if request.param("t1") else None
            timespan = float(request.param("timespan")) if request.param("timespan") else None
        except ValueError as problem:
            return None, None, _errors(400, f"Invalid time parameter: {problem}")
        if timespan is not None and (t0 or t1):
            return None, None, _errors(400, "'timespan' cannot be combined with 't0' or 't1'")
        if timespan is not None:
            if timespan > LOOKBACK.total_seconds():
                return None, None, _errors(400, "'timespan' must be less than or equal to 2678400 seconds")
            return now - timedelta(seconds=timespan), now, None
        t1 = t1 or (t0 + LOOKBACK if t0 else now)
        t0 = t0 or t1 - default_span
        if t0 < now - LOOKBACK:
            return None, None, _errors(400, "'t0' must be within the last 31 days")
        if t1 - t0 > LOOKBACK:
            return None, None, _errors(400, "'t1' can be a maximum of 31 days after 't0'")
        return t0, min(t1, now), None

    def _network_clients(self, request: Request, network_id: str) -> Response:
        t0, _, problem = self._window(request, DAY)
        if problem:
            return problem
        items = []
        with self.lock:
            for client in self.clients[network_id]:
                last_seen = self._last_seen(client["id"])
                if last_seen is None or last_seen < t0:  # type: ignore[operator]
                    continue
                days = self._active_days(client["id"])
                amounts = [self._amounts(client["id"], day) for day in days]
                recv, sent = sum(amount[0] for amount in amounts), sum(amount[1] for amount in amounts)
                items.append(
                    {
                        **client,
                        # the reference documents epoch seconds (the connector normalises both shapes)
                        "firstSeen": int(self.day_starts[days[0]].timestamp()),
                        "lastSeen": int(last_seen.timestamp()),  # type: ignore[union-attr]
                        "usage": {"sent": sent, "recv": recv, "total": sent + recv},
                    }
                )
        items.sort(key=lambda item: item["id"])
        return self._page(request, items, 3, 5000, 10)

    def _usage_histories(self, request: Request, network_id: str) -> Response:
        wanted = [key for key in (request.param("clients") or "").split(",") if key]
        if not wanted:
            return _errors(400, "'clients' must be specified")
        t0, t1, problem = self._window(request, DAY)
        if problem:
            return problem
        known = {client["id"]: client for client in self.clients[network_id]}
        by_mac = {client["mac"]: client for client in self.clients[network_id]}
        entries = []
        with self.lock:
            for key in wanted:
                client = known.get(key) or by_mac.get(key.lower())
                if client is None:
                    continue
                history: List[Dict[str, Any]] = []
                for day in self._active_days(client["id"]):
                    if midnight(t0) <= self.day_starts[day] <= t1:  # type: ignore[operator]
                        recv, sent = self._amounts(client["id"], day)
                        history.append({"ts": iso(self.day_starts[day], fraction=True), "recv": recv, "sent": sent})
                if self.corrupt_usage and history:
                    history[-1]["recv"] = "n/a"
                entries.append({"clientId": client["id"], "clientIp": client["ip"], "clientMac": client["mac"], "usageHistory": history})
        return self._page(request, entries, 3, 1000, 1000, id_of=lambda entry: entry["clientId"])

    def _page(
        self,
        request: Request,
        items: List[dict],
        minimum: int,
        maximum: int,
        default: int,
        id_of: Callable[[dict], str] = lambda item: str(item["id"]),
    ) -> Response:
        """One page of `items` (already in order), with RFC 5988 links to first/prev/next/last."""
        try:
            per_page = int(request.param("perPage") or default)
        except ValueError:
            return _errors(400, "'perPage' must be an integer")
        if not minimum <= per_page <= maximum:
            return _errors(400, f"'perPage' must be between {minimum} and {maximum}")
        ids = [id_of(item) for item in items]
        position = {item_id: index for index, item_id in enumerate(ids)}
        after, before = request.param("startingAfter"), request.param("endingBefore")
        if after is not None and after != "0":
            start = position.get(after, -1) + 1 if after in position else len(items)
            end = start + per_page
        elif before is not None and before != "0":
            end = position.get(before, len(items))
            start = max(0, end - per_page)
        elif before == "0":
            start = max(0, len(items) - per_page)
            end = len(items)
        else:
            start, end = 0, per_page
        page = items[start:end]
        links = [f'<{request.url(startingAfter="0", endingBefore=None)}>; rel=first']
        if start > 0:
            links.append(f'<{request.url(endingBefore=ids[start], startingAfter=None)}>; rel=prev')
        if end < len(items):
            links.append(f'<{request.url(startingAfter=ids[end - 1], endingBefore=None)}>; rel=next')
        links.append(f'<{request.url(endingBefore="0", startingAfter=None)}>; rel=last')
        return json_response(page, headers=[("Link", ", ".join(links))])
