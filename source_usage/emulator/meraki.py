"""Emulated Cisco Meraki Dashboard API v1.

Serves `GET /organizations`, `/organizations/{id}/networks`, `/networks/{id}/clients`,
`/networks/{id}/clients/usageHistories` and `/organizations/{id}/licenses` with the real contract:
Bearer or `X-Cisco-Meraki-API-Key` auth; RFC 5988 `Link` pagination (`perPage`, `startingAfter`,
`endingBefore`, absolute first/prev/next/last links) within each endpoint's `perPage` range; the 31-day
lookback of `t0` and the 31-day span of `t0`..`t1`; `{"errors": [...]}` bodies; 10 requests/s per
organization (a token bucket with a burst of 10) and 100/s per source IP, answered with 429 and an
integer `Retry-After`. The last organization (when there are several) uses co-termination licensing and
answers the licenses endpoint with 400.

Usage is daily, in kilobytes, for `days` days ending the day before yesterday; `advance()` reveals the
following day (up to yesterday), so an incremental sync finds new points.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from source_usage.emulator.app import VendorApp
from source_usage.emulator.data import DAY, iso, midnight, parse_iso, stable_hex, stable_int, utc_now
from source_usage.emulator.http import Request, Response, TokenBucket, json_response, retry_after_seconds

LOOKBACK = timedelta(days=31)
API_KEY = "5a1dbox0meraki0key0000000000000000000001"


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
    ) -> None:
        super().__init__(seed, scale, rate_limits)
        self.api_key = api_key
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
            self.organizations.append(
                {
                    "id": org_id,
                    "name": f"Org {org_index + 1}",
                    "url": f"https://n{100 + org_index}.meraki.com/o/{stable_hex(6, seed, org_id)}/manage/organization/overview",
                    "api": {"enabled": True},
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
        self.org_buckets: Dict[str, TokenBucket] = {}
        self.ip_bucket = TokenBucket(rate=100, capacity=100)

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
        return {
            "id": license_id,
            "licenseType": ["MX64-ENT", "MR-ENT", "MS220-8P", "SM"][index % 4],
            "licenseKey": "Z2" + stable_hex(10, self.seed, "key", license_id).upper(),
            "orderNumber": "4C" + stable_hex(7, self.seed, "order", license_id).upper(),
            "deviceSerial": f"Q234-{stable_hex(4, self.seed, 'dev', license_id).upper()}-5678" if index % 4 != 3 else None,
            "networkId": networks[index % len(networks)]["id"] if networks else None,
            "state": ["active", "expired", "expiring", "recentlyQueued", "unused", "unusedActive"][index % 6],
            "seatCount": 25 if index % 4 == 3 else None,
            "totalDurationInDays": 425,
            "durationInDays": 365,
            "permanentlyQueuedLicenses": [],
            "claimDate": "2025-08-29T12:40:10Z",
            "activationDate": "2025-09-01T15:01:46Z",
            "expirationDate": "2026-10-30T15:01:46Z",
            "headLicenseId": None,
        }

    def _usage_point(self, client_id: str, day: int) -> dict:
        recv = stable_int(self.seed, "recv", client_id, day, modulo=900000) + 100
        sent = stable_int(self.seed, "sent", client_id, day, modulo=300000) + 10
        return {"ts": iso(self.day_starts[day], fraction=True), "recv": recv, "sent": sent}

    def _active_days(self, client_id: str) -> range:
        first, last = self.client_days[client_id]
        return range(first, min(last, self.revealed_days - 1) + 1)

    def _last_seen(self, client_id: str) -> Optional[datetime]:
        days = self._active_days(client_id)
        if not days:
            return None
        return min(self.now, self.day_starts[days[-1]] + DAY - timedelta(seconds=1))

    def _clients_seen_since(self, network_id: str, since: datetime) -> List[dict]:
        seen = []
        for client in self.clients[network_id]:
            days = self._active_days(client["id"])
            last_seen = self._last_seen(client["id"])
            if last_seen is None or last_seen < since:
                continue
            first_seen = self.day_starts[days[0]]
            usage = [self._usage_point(client["id"], day) for day in days]
            sent, recv = sum(point["sent"] for point in usage), sum(point["recv"] for point in usage)
            seen.append(
                {
                    **client,
                    "firstSeen": iso(first_seen),
                    "lastSeen": iso(last_seen),
                    "usage": {"sent": sent, "recv": recv, "total": sent + recv},
                }
            )
        return seen

    def advance(self, steps: int = 1) -> None:
        with self.lock:
            self.revealed_days = min(len(self.day_starts), self.revealed_days + steps)

    # ----- what a test expects -----------------------------------------------------------------------

    def expected(self, stream: str, start_date: Optional[str] = None, **options: Any) -> List[dict]:
        start = parse_iso(start_date) if start_date else self.now - timedelta(days=30)
        start = max(start, utc_now() - LOOKBACK + timedelta(hours=1))
        if stream == "meraki_organizations":
            return [dict(org) for org in self.organizations]
        if stream == "meraki_networks":
            return [dict(network) for org in self.organizations for network in self.networks[org["id"]]]
        if stream == "meraki_network_clients":
            return [
                {**client, "networkId": network["id"], "organizationId": org["id"]}
                for org in self.organizations
                for network in self.networks[org["id"]]
                for client in self._clients_seen_since(network["id"], start)
            ]
        if stream == "meraki_client_usage_histories":
            records = []
            for org in self.organizations:
                for network in self.networks[org["id"]]:
                    for client in self._clients_seen_since(network["id"], start):
                        for day in self._active_days(client["id"]):
                            if self.day_starts[day] >= midnight(start):
                                records.append(self._usage_record(org["id"], network["id"], client, day))
            return records
        if stream == "meraki_organization_licenses":
            return [
                {**license_, "organizationId": org["id"]}
                for org in self.organizations
                if org["id"] not in self.coterm
                for license_ in self.licenses[org["id"]]
            ]
        raise KeyError(stream)

    def _usage_record(self, org_id: str, network_id: str, client: dict, day: int) -> dict:
        return {
            "organizationId": org_id,
            "networkId": network_id,
            "clientId": client["id"],
            "clientMac": client["mac"],
            "clientIp": client["ip"],
            **self._usage_point(client["id"], day),
        }

    def connector_config(self, base_url: str) -> Dict[str, Any]:
        return {"api_key": self.api_key, "base_url": base_url}

    # ----- serving -----------------------------------------------------------------------------------

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
        limited = self._take_rate_limit(parts)
        if limited is not None:
            return limited
        if parts == ["organizations"]:
            return self._page(request, self.organizations, 3, 9000, 9000)
        if len(parts) == 3 and parts[0] == "organizations":
            org_id = parts[1]
            if org_id not in self.networks:
                return _errors(404, "Resource not found")
            if parts[2] == "networks":
                return self._page(request, self.networks[org_id], 3, 100000, 1000)
            if parts[2] == "licenses":
                if org_id in self.coterm:
                    return _errors(400, f"Organization with ID {org_id} does not support per-device licensing")
                return self._page(request, self.licenses[org_id], 3, 1000, 1000)
        if len(parts) >= 3 and parts[0] == "networks" and parts[1] in self.clients:
            if parts[2:] == ["clients"]:
                return self._network_clients(request, parts[1])
            if parts[2:] == ["clients", "usageHistories"]:
                return self._usage_histories(request, parts[1])
        return _errors(404, "Not found")

    def tenant_of(self, request: Request) -> Optional[str]:
        return self._organization_of(request.path.strip("/").split("/"))

    def _organization_of(self, parts: Sequence[str]) -> Optional[str]:
        if len(parts) > 1 and parts[0] == "organizations":
            return parts[1]
        if len(parts) > 1 and parts[0] == "networks":
            return self.network_org.get(parts[1])
        return None

    def _take_rate_limit(self, parts: Sequence[str]) -> Optional[Response]:
        if not self.rate_limits:
            return None
        wait = self.ip_bucket.take()
        if wait is not None:
            return self.rate_limited(None, wait)  # type: ignore[arg-type]
        org_id = self._organization_of(parts)
        if org_id is None:
            return None
        with self.lock:
            bucket = self.org_buckets.setdefault(org_id, TokenBucket(rate=10, capacity=10))
        wait = bucket.take()
        return self.rate_limited(None, wait) if wait is not None else None  # type: ignore[arg-type]

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
        with self.lock:
            clients = self._clients_seen_since(network_id, t0)  # type: ignore[arg-type]
        clients.sort(key=lambda client: client["id"])
        return self._page(request, clients, 3, 5000, 10)

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
                history = [
                    self._usage_point(client["id"], day)
                    for day in self._active_days(client["id"])
                    if midnight(t0) <= self.day_starts[day] <= t1  # type: ignore[operator]
                ]
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
