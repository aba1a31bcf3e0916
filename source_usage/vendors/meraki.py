"""Cisco Meraki Dashboard API v1.

Streams: `meraki_organizations` -> `meraki_networks` -> `meraki_network_clients` (the listings the usage
endpoint needs, since its `clients` parameter is required), `meraki_client_usage_histories`
(incremental on `ts`, one partition per network) and `meraki_organization_licenses` (a snapshot).

Contract (developer.cisco.com/meraki/api-v1): Bearer API key; RFC 5988 `Link` pagination with `perPage`;
10 requests/s per organization, 429 with `Retry-After`; `{"errors": [...]}` bodies; client usage is kept
for 31 days (`t0` at most 31 days back, `t1` at most 31 days after `t0`), in kilobytes.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Generator, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.call_rate import Rate
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from source_usage.config import MerakiConfig
from source_usage.framework.budget import KeyedAPIBudget
from source_usage.framework.cursors import PerPartitionCursor, StreamCursor
from source_usage.framework.error_handling import Override, VendorErrors, error_text
from source_usage.framework.errors import UsageError
from source_usage.framework.http_client import RetryPolicy
from source_usage.framework.paginators import LinkHeaderPaginator
from source_usage.framework.stream import UsageStream
from source_usage.framework.vendor import Vendor
from source_usage.framework.windows import TimeWindow, clamp_to_lookback, iso_z, parse_timestamp, split_windows

USAGE_RETENTION = timedelta(days=31)  # "The maximum lookback period is 31 days from today"
RETENTION_MARGIN = timedelta(hours=1)  # the server's clock keeps running while we build the request
MAX_WINDOW = timedelta(days=31)  # "t1 can be a maximum of 31 days after t0"
CLIENTS_PARAM_MAX_CHARS = 2000  # keeps the usage request URL well under common 8 KB limits
MAX_CLIENTS_PER_REQUEST = 1000  # the usage endpoint's largest page: one page per batch
REQUESTS_PER_SECOND_PER_ORG = 10

ERRORS = VendorErrors("meraki", rejected={401: "the API key was rejected"})

_ORG_PATH = re.compile(r"/organizations/([^/]+)")
_NETWORK_PATH = re.compile(r"/networks/([^/]+)")


class MerakiDirectory:
    """Organizations, networks and client keys of one sync, each listed once and shared by the streams.

    Meraki's rate limit is per organization, so it also answers "which organization is this request for?"
    for the API budget.
    """

    def __init__(self, config: MerakiConfig, start: datetime) -> None:
        self.config = config
        self.start = start
        self._lock = threading.Lock()
        self._key_locks: Dict[str, threading.Lock] = {}
        self._organizations: Optional[List[dict]] = None
        self._networks: Dict[str, List[dict]] = {}
        self._network_org: Dict[str, str] = {}
        self._clients: Dict[str, Tuple[datetime, List[str]]] = {}
        self._clamp_warned: Set[str] = set()
        self.organizations_stream: "MerakiOrganizations"
        self.networks_stream: "MerakiNetworks"
        self.clients_stream: "MerakiNetworkClients"

    def _once(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def organizations(self) -> List[dict]:
        with self._once("organizations"):
            if self._organizations is None:
                listed = list(self.organizations_stream.read_all({}))
                wanted = set(self.config.organization_ids)
                if wanted:
                    missing = wanted - {str(org.get("id")) for org in listed}
                    if missing:
                        raise UsageError(
                            f"meraki: organization {', '.join(sorted(missing))} was not found or the API key cannot see it",
                            FailureType.config_error,
                        )
                    listed = [org for org in listed if str(org.get("id")) in wanted]
                self._organizations = listed
            return self._organizations

    def networks(self, organization: Mapping[str, Any]) -> List[dict]:
        org_id = str(organization["id"])
        with self._once(f"networks/{org_id}"):
            if org_id not in self._networks:
                wanted = set(self.config.network_ids)
                listed = [
                    network
                    for network in self.networks_stream.read_all({"organizationId": org_id})
                    if not wanted or str(network.get("id")) in wanted
                ]
                with self._lock:
                    for network in listed:
                        self._network_org[str(network["id"])] = org_id
                    self._networks[org_id] = listed
            return self._networks[org_id]

    def networks_round_robin(self) -> Iterator[Tuple[Mapping[str, Any], Mapping[str, Any]]]:
        """(organization, network) pairs, alternating organizations so that their budgets are used in parallel."""
        queues = [[(org, network) for network in self.networks(org)] for org in self.organizations()]
        for position in range(max((len(queue) for queue in queues), default=0)):
            for queue in queues:
                if position < len(queue):
                    yield queue[position]

    def remember_clients(self, network_id: str, since: datetime, client_ids: List[str]) -> None:
        with self._lock:
            self._clients[network_id] = (since, client_ids)

    def client_ids(self, organization_id: str, network_id: str, since: datetime) -> List[str]:
        """Keys of the clients seen in the network since `since` (from the listing, if it covered that span)."""
        with self._once(f"clients/{network_id}"):
            cached = self._clients.get(network_id)
            if cached is not None and cached[0] <= since:
                return cached[1]
            partition = {"organizationId": organization_id, "networkId": network_id, "since": since}
            ids = [str(client["id"]) for client in self.clients_stream.read_all(partition)]
            self.remember_clients(network_id, since, ids)
            return ids

    def organization_of(self, request: requests.PreparedRequest) -> Optional[str]:
        path = request.path_url.split("?", 1)[0]
        found = _ORG_PATH.search(path)
        if found:
            return found.group(1)
        found = _NETWORK_PATH.search(path)
        if found:
            return self._network_org.get(found.group(1))
        return None

    def usage_window_start(self, stream: UsageStream, start: Optional[datetime] = None) -> datetime:
        """`start` (default: the sync's start), clamped to the usage the API still keeps.

        Clamping is logged once per stream, as a warning naming the configured start date.
        """
        earliest = datetime.now(timezone.utc) - USAGE_RETENTION + RETENTION_MARGIN
        clamped_start, clamped = clamp_to_lookback(start or self.start, earliest)
        if clamped and stream.name not in self._clamp_warned:
            self._clamp_warned.add(stream.name)
            stream.logger.warning(
                f"{stream.name}: Meraki keeps client usage for 31 days only; starting at {iso_z(clamped_start)} "
                f"instead of the configured start_date {iso_z(self.start)}"
            )
        return clamped_start


def make_vendor(config: MerakiConfig, directory: MerakiDirectory, retry_policy: Optional[RetryPolicy] = None) -> Vendor:
    return Vendor(
        name="meraki",
        base_url=config.base_url,
        errors=ERRORS,
        authenticator=TokenAuthenticator(config.api_key),
        budget=KeyedAPIBudget(
            key_of=directory.organization_of,
            rates=[Rate(limit=REQUESTS_PER_SECOND_PER_ORG, interval=timedelta(seconds=1.02))],
        ),
        max_workers=8,
        retry_policy=retry_policy or RetryPolicy.from_environment(),
    )


class MerakiStream(UsageStream):
    def __init__(self, vendor: Vendor, directory: MerakiDirectory) -> None:
        self.directory = directory
        super().__init__(vendor)


def _organization_not_visible(response: requests.Response) -> ErrorResolution:
    found = _ORG_PATH.search(response.request.path_url if response.request is not None else response.url)
    org = found.group(1) if found else "?"
    return ErrorResolution(
        ResponseAction.FAIL,
        FailureType.config_error,
        f"meraki: organization {org} was not found or the API key cannot see it (HTTP 404)",
    )


class MerakiOrganizations(MerakiStream):
    name = "meraki_organizations"
    primary_key = "id"
    paginator = LinkHeaderPaginator("perPage", 9000)

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return "organizations"

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        return body

    def read_partition(self, partition: Mapping[str, Any]) -> Generator[List[dict], None, None]:
        yield self.directory.organizations()


class MerakiNetworks(MerakiStream):
    name = "meraki_networks"
    primary_key = "id"
    paginator = LinkHeaderPaginator("perPage", 100000)

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return f"organizations/{partition['organizationId']}/networks"

    def error_overrides(self) -> Mapping[int, Override]:
        return {404: _organization_not_visible}

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        for network in body:
            network.setdefault("organizationId", partition["organizationId"])
            yield network

    def partitions(self, sync_mode: SyncMode) -> Iterable[Mapping[str, Any]]:
        for organization in self.directory.organizations():
            yield {"organizationId": str(organization["id"]), "organization": organization}

    def read_partition(self, partition: Mapping[str, Any]) -> Generator[List[dict], None, None]:
        yield self.directory.networks(partition["organization"])


class MerakiNetworkClients(MerakiStream):
    """Clients seen in each network during the sync window (`GET /networks/{id}/clients`)."""

    name = "meraki_network_clients"
    primary_key = ["networkId", "id"]
    paginator = LinkHeaderPaginator("perPage", 5000)

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return f"networks/{partition['networkId']}/clients"

    def query(self, partition: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"t0": iso_z(partition["since"])}

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        for client in body:
            client["networkId"] = partition["networkId"]
            client["organizationId"] = partition["organizationId"]
            yield client

    def partitions(self, sync_mode: SyncMode) -> Iterable[Mapping[str, Any]]:
        since = self.directory.usage_window_start(self)
        for organization, network in self.directory.networks_round_robin():
            yield {"organizationId": str(organization["id"]), "networkId": str(network["id"]), "since": since}

    def read_partition(self, partition: Mapping[str, Any]) -> Generator[List[dict], None, None]:
        ids: List[str] = []
        for batch in super().read_partition(partition):
            ids.extend(str(client["id"]) for client in batch)
            yield batch
        # The usage stream needs these keys: remember them so that it does not list the clients again.
        self.directory.remember_clients(partition["networkId"], partition["since"], ids)


class MerakiClientUsageHistories(MerakiStream):
    """Daily usage of every client, in kilobytes; one partition per network, state per network."""

    name = "meraki_client_usage_histories"
    primary_key = ["networkId", "clientId", "ts"]
    cursor_field = "ts"
    paginator = LinkHeaderPaginator("perPage", MAX_CLIENTS_PER_REQUEST)

    def make_cursor(self) -> StreamCursor:
        return PerPartitionCursor("ts", ["networkId"])

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return f"networks/{partition['networkId']}/clients/usageHistories"

    def query(self, partition: Mapping[str, Any]) -> Mapping[str, Any]:
        window: TimeWindow = partition["window"]
        return {"clients": ",".join(partition["clients"]), "t0": iso_z(window.start), "t1": iso_z(window.end)}

    def partitions(self, sync_mode: SyncMode) -> Iterable[Mapping[str, Any]]:
        for organization, network in self.directory.networks_round_robin():
            yield {"organizationId": str(organization["id"]), "networkId": str(network["id"])}

    def window_start(self, partition: Mapping[str, Any]) -> datetime:
        """The sync start, or the saved state minus the lookback, clamped to the 31 days Meraki keeps."""
        start = self.directory.start
        saved = self.stream_cursor.value_for(partition)  # type: ignore[attr-defined]
        if saved is not None:
            start = max(start, parse_timestamp(saved) - self.directory.config.lookback)
        return self.directory.usage_window_start(self, start)

    def fetch_pages(self, partition: Mapping[str, Any]) -> Iterable[List[dict]]:
        start = self.window_start(partition)
        client_ids = self.directory.client_ids(partition["organizationId"], partition["networkId"], start)
        if not client_ids:
            return
        for window in split_windows(start, datetime.now(timezone.utc), MAX_WINDOW):
            for batch in client_batches(client_ids):
                yield from super().fetch_pages({**partition, "window": window, "clients": batch})

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        org_id, network_id = partition["organizationId"], partition["networkId"]
        for client in body:
            client_id, mac, ip = client.get("clientId"), client.get("clientMac"), client.get("clientIp")
            for point in client.get("usageHistory") or ():
                yield {
                    "organizationId": org_id,
                    "networkId": network_id,
                    "clientId": client_id,
                    "clientMac": mac,
                    "clientIp": ip,
                    "ts": point.get("ts"),
                    "recv": point.get("recv"),
                    "sent": point.get("sent"),
                }


class MerakiOrganizationLicenses(MerakiStream):
    """Per-device licenses of every organization; co-termination organizations are skipped."""

    name = "meraki_organization_licenses"
    primary_key = ["organizationId", "id"]
    paginator = LinkHeaderPaginator("perPage", 1000)

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return f"organizations/{partition['organizationId']}/licenses"

    def error_overrides(self) -> Mapping[int, Override]:
        return {400: ResponseAction.IGNORE, 404: _organization_not_visible}

    def ignored_response(self, response: requests.Response, partition: Mapping[str, Any]) -> None:
        self.logger.warning(
            f"{self.name}: skipping organization {partition['organizationId']} ({partition.get('organizationName') or 'unnamed'}): "
            f"its licenses cannot be listed per device, which usually means co-termination licensing "
            f"(HTTP {response.status_code}: {error_text(response)})"
        )

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        for license_ in body:
            license_["organizationId"] = partition["organizationId"]
            yield license_

    def partitions(self, sync_mode: SyncMode) -> Iterable[Mapping[str, Any]]:
        for organization in self.directory.organizations():
            yield {"organizationId": str(organization["id"]), "organizationName": organization.get("name")}


def client_batches(client_ids: Sequence[str]) -> Iterator[List[str]]:
    """Client keys in batches whose comma-joined length and count stay within the request limits."""
    batch: List[str] = []
    length = 0
    for client_id in client_ids:
        extra = len(client_id) + (1 if batch else 0)
        if batch and (length + extra > CLIENTS_PARAM_MAX_CHARS or len(batch) >= MAX_CLIENTS_PER_REQUEST):
            yield batch
            batch, length = [], 0
            extra = len(client_id)
        batch.append(client_id)
        length += extra
    if batch:
        yield batch


def check(config: MerakiConfig, start: datetime, retry_policy: RetryPolicy) -> None:
    """One cheap authenticated request: the first page of the organizations the key can see."""
    directory = MerakiDirectory(config, start)
    MerakiOrganizations(make_vendor(config, directory, retry_policy), directory).probe()


def streams(config: MerakiConfig, start: datetime) -> List[UsageStream]:
    directory = MerakiDirectory(config, start)
    vendor = make_vendor(config, directory)
    directory.organizations_stream = MerakiOrganizations(vendor, directory)
    directory.networks_stream = MerakiNetworks(vendor, directory)
    directory.clients_stream = MerakiNetworkClients(vendor, directory)
    return [
        directory.organizations_stream,
        directory.networks_stream,
        directory.clients_stream,
        MerakiClientUsageHistories(vendor, directory),
        MerakiOrganizationLicenses(vendor, directory),
    ]
