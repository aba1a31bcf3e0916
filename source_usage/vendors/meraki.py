"""Cisco Meraki Dashboard API v1.

Streams: `meraki_organizations` -> `meraki_networks` -> `meraki_network_clients` (the listings the usage
endpoint needs, since its `clients` parameter is required), `meraki_client_usage_histories`
(incremental on `ts`, one partition per network) and `meraki_organization_licenses` (a snapshot).

Contract (developer.cisco.com/meraki/api-v1, the meraki SDK): Bearer API key; RFC 5988 `Link` pagination
with `perPage`; 10 requests/s per organization and 100/s per source IP, 429 with `Retry-After`;
`{"errors": [...]}` bodies; client usage is kept for 31 days (`t0` at most 31 days back, `t1` at most 31
days after `t0`), in kilobytes, in daily buckets. Real responses may redirect to a shard host
(`n149.meraki.com`): the key is kept there (and only there: https hosts under the configured host's
parent domain). An organization with API access disabled is listed with `"api": {"enabled": false}` and
answers 404 to every call under it; a network-scoped administrator's key answers 403 for organizations
it cannot read; a network deleted after it was listed answers 404. Each of those is skipped with one
warning naming it, and the rest of the sync goes on.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Generic, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from source_usage.framework.budget import MovingWindowLayer, everything, process_layer
from source_usage.framework.config_fields import base_url, ids, integer, secret
from source_usage.framework.cursors import Partition, PerPartitionCursor, StreamCursor
from source_usage.framework.endpoint import Endpoint, expect_list
from source_usage.framework.error_handling import Override, VendorErrors, json_body
from source_usage.framework.errors import UsageError
from source_usage.framework.hosts import Origin
from source_usage.framework.ledger import BYTES_PER_KILOBYTE, ledger_row, period_end, scaled
from source_usage.framework.paginators import LinkHeaderPaginator
from source_usage.framework.plugin import VendorPlugin
from source_usage.framework.settings import Settings
from source_usage.framework.shared import OncePerKey
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import instant, observed_at
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import TimeWindow, clamp_to_lookback, iso_z, parse_timestamp, split_windows

NAME = "meraki"
USAGE_RETENTION = timedelta(days=31)  # "The maximum lookback period is 31 days from today"
RETENTION_MARGIN = timedelta(hours=1)  # the server's clock keeps running while we build the request
MAX_WINDOW = timedelta(days=31)  # "t1 can be a maximum of 31 days after t0"
BUCKET = timedelta(days=1)  # usage histories come in daily buckets
CLIENTS_PARAM_MAX_CHARS = 2000  # keeps the usage request URL well under common 8 KB limits
MAX_CLIENTS_PER_REQUEST = 1000  # the usage endpoint's largest page: one page per batch
CLIENT_INSTANTS = ("firstSeen", "lastSeen")  # epoch seconds in the reference, ISO text in some answers
LICENSE_INSTANTS = ("claimDate", "activationDate", "expirationDate")
REQUESTS_PER_SECOND_PER_ORG = 10
REQUESTS_PER_SECOND_PER_IP = 100

SPEC = {
    "type": "object",
    "title": "Cisco Meraki",
    "description": "Client usage histories and organization licenses from the Meraki Dashboard API v1.",
    "required": ["api_key"],
    "properties": {
        "api_key": {"type": "string", "title": "API key", "description": "A Dashboard API key (Organization > Settings > Dashboard API access).", "airbyte_secret": True, "order": 0},
        "base_url": {
            "type": "string",
            "title": "Base URL",
            "description": "Use a regional host (api.meraki.ca, api.meraki.cn, api.meraki.in, api.gov-meraki.com) or a proxy.",
            "default": "https://api.meraki.com/api/v1",
            "pattern": "^https?://",
            "order": 1,
        },
        "organization_ids": {"type": "array", "title": "Organization IDs", "description": "Sync only these organizations. Default: every organization the API key can see.", "items": {"type": "string"}, "order": 2},
        "network_ids": {"type": "array", "title": "Network IDs", "description": "Sync only these networks. Default: every network of the synced organizations.", "items": {"type": "string"}, "order": 3},
        "lookback_days": {
            "type": "integer",
            "title": "Lookback (days)",
            "description": "Each incremental sync re-reads this many days before its saved state, to pick up the still-growing last usage bucket.",
            "default": 1,
            "minimum": 0,
            "maximum": 30,
            "order": 4,
        },
    },
}


@dataclass(frozen=True)
class MerakiConfig:
    api_key: str
    base_url: str
    organization_ids: Tuple[str, ...]
    network_ids: Tuple[str, ...]
    lookback: timedelta

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "MerakiConfig":
        return cls(
            api_key=secret(NAME, raw, "api_key"),
            base_url=base_url(NAME, raw, "https://api.meraki.com/api/v1", "/api/v1"),
            organization_ids=ids(raw, "organization_ids"),
            network_ids=ids(raw, "network_ids"),
            lookback=timedelta(days=integer(NAME, raw, "lookback_days", 1)),
        )


def describe_error(body: Any) -> Optional[str]:
    """Meraki's error bodies: `{"errors": ["...", ...]}`."""
    if isinstance(body, Mapping) and isinstance(body.get("errors"), list):
        return "; ".join(str(message) for message in body["errors"] if message) or None
    return None


def error_text(response: requests.Response) -> str:
    try:
        return describe_error(json_body(response)) or ""
    except ValueError:
        return ""


def says_api_disabled(response: requests.Response) -> bool:
    """The 404 of an organization whose API access is disabled (wordings seen: "API access is disabled for
    this organization", "To make requests you must first enable API access")."""
    text = error_text(response).lower()
    return "api access" in text and ("disabled" in text or "enable" in text)


C = TypeVar("C", bound=StreamCursor)
_ORG_PATH = re.compile(r"/organizations/([^/?]+)")
_NETWORK_PATH = re.compile(r"/networks/([^/?]+)")


# ----- what the streams of one sync share ---------------------------------------------------------------


class MerakiDirectory:
    """Organizations, networks and client keys of one sync, each listed once and shared by the streams,
    and the organizations and networks skipped (each warned about once)."""

    def __init__(self, vendor: "MerakiConnection", config: MerakiConfig, sync: SyncContext) -> None:
        self.vendor = vendor
        self.config = config
        self.sync = sync
        self.organizations_endpoint = Endpoint("organizations", records=_listing("organizations"), paginator=LinkHeaderPaginator("perPage", 9000), max_pages=100)
        self.networks_endpoint = Endpoint(
            "organizations/{organizationId}/networks",
            records=self._networks_of,
            paginator=LinkHeaderPaginator("perPage", 100000),
            max_pages=100,
            overrides={403: ResponseAction.IGNORE, 404: self.organization_not_found},
            on_ignored=self.skip_organization_after,
        )
        self.clients_endpoint = Endpoint(
            "networks/{networkId}/clients",
            records=self._clients_of,
            query=lambda partition: {"t0": iso_z(partition["since"])},
            paginator=LinkHeaderPaginator("perPage", 5000),
            max_pages=1000,
            overrides={404: ResponseAction.IGNORE, 403: ResponseAction.IGNORE},
            on_ignored=self.skip_network,
        )
        self._organizations: OncePerKey[str, List[dict]] = OncePerKey(lambda _: self._list_organizations())
        self._networks: OncePerKey[str, List[dict]] = OncePerKey(self._list_networks)
        self._clients: Dict[str, Tuple[datetime, List[str]]] = {}
        self._client_listing: OncePerKey[Tuple[str, str, datetime], List[str]] = OncePerKey(self._list_client_ids)
        self._lock = threading.Lock()

    # organizations

    def organizations(self) -> List[dict]:
        """The organizations to sync: those configured (all the key sees by default) whose API is enabled."""
        return self._organizations.get("all")

    def _list_organizations(self) -> List[dict]:
        listed = list(self.vendor.records(self.organizations_endpoint, {}))
        wanted = set(self.config.organization_ids)
        if wanted:
            missing = wanted - {str(org.get("id")) for org in listed}
            if missing:
                raise UsageError(
                    f"meraki: organization {', '.join(sorted(missing))} was not found or the API key cannot see it",
                    FailureType.config_error,
                )
            listed = [org for org in listed if str(org.get("id")) in wanted]
        enabled = []
        for org in listed:
            api = org.get("api")
            if isinstance(api, Mapping) and api.get("enabled") is False:
                self.skip_organization(str(org.get("id")), org.get("name"), "its API access is disabled (Organization > Settings > Dashboard API access)")
            else:
                enabled.append(org)
        return enabled

    def organization_ids(self) -> List[str]:
        return [str(org["id"]) for org in self.organizations()]

    # networks

    def networks(self, organization_id: str) -> List[dict]:
        return self._networks.get(organization_id)

    def _list_networks(self, organization_id: str) -> List[dict]:
        wanted = set(self.config.network_ids)
        listed = [
            network
            for network in self.vendor.records(self.networks_endpoint, {"organizationId": organization_id})
            if not wanted or str(network.get("id")) in wanted
        ]
        self.vendor.organizations_of_networks.learn(listed, organization_id)
        return listed

    def _networks_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        for network in expect_list(body, NAME, response, "networks"):
            if isinstance(network, Mapping):
                network = dict(network)
                network.setdefault("organizationId", partition["organizationId"])
            yield network

    def networks_round_robin(self) -> Iterator[Tuple[str, Mapping[str, Any]]]:
        """(organization id, network) pairs of this shard, alternating organizations so that their budgets
        are spent side by side."""
        queues = [
            [(org_id, network) for network in self.networks(org_id) if self.sync.shard.owns(NAME, str(network.get("id")))]
            for org_id in self.organization_ids()
        ]
        for position in range(max((len(queue) for queue in queues), default=0)):
            for queue in queues:
                if position < len(queue):
                    yield queue[position]

    # clients

    def remember_clients(self, network_id: str, since: datetime, client_ids: List[str]) -> None:
        with self._lock:
            self._clients[network_id] = (since, client_ids)

    def client_ids(self, organization_id: str, network_id: str, since: datetime) -> List[str]:
        """Keys of the clients seen in the network since `since` (from the clients stream's listing, if it
        covered that span)."""
        with self._lock:
            cached = self._clients.get(network_id)
        if cached is not None and cached[0] <= since:
            return cached[1]
        return self._client_listing.get((organization_id, network_id, since))

    def _list_client_ids(self, key: Tuple[str, str, datetime]) -> List[str]:
        organization_id, network_id, since = key
        partition = {"organizationId": organization_id, "networkId": network_id, "since": since}
        return [str(client["id"]) for client in self.vendor.records(self.clients_endpoint, partition) if isinstance(client, Mapping) and "id" in client]

    def _clients_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        for client in expect_list(body, NAME, response, "clients"):
            if isinstance(client, Mapping):
                client = dict(client)
                client["networkId"] = partition["networkId"]
                client["organizationId"] = partition["organizationId"]
                for field in CLIENT_INSTANTS:
                    if field in client:
                        client[field] = instant(client[field], field)
            yield client

    # skipping what cannot be read

    def organization_not_found(self, response: requests.Response) -> Optional[ErrorResolution]:
        if says_api_disabled(response):
            return ErrorResolution(ResponseAction.IGNORE, None, None)
        org = _ORG_PATH.search(response.request.path_url if response.request is not None else response.url)
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error,
            f"meraki: organization {org.group(1) if org else '?'} was not found or the API key cannot see it (HTTP 404)",
        )

    def skip_organization_after(self, response: requests.Response, partition: Partition) -> None:
        self.skip_organization(partition["organizationId"], None, _reason(response))

    def skip_network(self, response: requests.Response, partition: Partition) -> None:
        if response.status_code == 404 and says_api_disabled(response):
            self.skip_organization(partition["organizationId"], None, _reason(response))
            return
        self.warn_once(
            f"network/{partition['networkId']}",
            f"meraki: skipping network {partition['networkId']} of organization {partition['organizationId']}: "
            + ("it was deleted after it was listed" if response.status_code == 404 else "the API key may not read it")
            + f" (HTTP {response.status_code}: {error_text(response) or response.reason})",
        )

    def skip_organization(self, organization_id: str, name: Optional[str], reason: str) -> None:
        named = f"{organization_id} ({name})" if name else organization_id
        self.warn_once(f"org/{organization_id}", f"meraki: skipping organization {named}: {reason}")

    def warn_once(self, key: str, message: str) -> None:
        self.sync.warn_once(("meraki", key), message)

    def usage_window_start(self, stream: str, start: Optional[datetime] = None) -> datetime:
        """`start` (default: the sync's start), clamped to the usage the API still keeps (warned once)."""
        earliest = datetime.now(timezone.utc) - USAGE_RETENTION + RETENTION_MARGIN
        clamped_start, clamped = clamp_to_lookback(start or self.sync.start_date, earliest)
        if clamped and start is None:
            self.warn_once(
                f"clamp/{stream}",
                f"{stream}: Meraki keeps client usage for 31 days only; starting at {iso_z(clamped_start)} "
                f"instead of the configured start_date {iso_z(self.sync.start_date)}",
            )
        return clamped_start


def _reason(response: requests.Response) -> str:
    text = error_text(response) or response.reason or ""
    if response.status_code == 403:
        return f"the API key lacks read access to it (an organization-level administrator's key is needed; HTTP 403: {text})"
    if says_api_disabled(response):
        return f"its API access is disabled (HTTP 404: {text})"
    return f"HTTP {response.status_code}: {text}"


def _listing(what: str) -> Callable[[Any, Partition, requests.Response], list]:
    def records(body: Any, partition: Partition, response: requests.Response) -> list:
        return expect_list(body, NAME, response, what)

    return records


# ----- streams ----------------------------------------------------------------------------------------


class MerakiStream(UsageStream[C], Generic[C]):
    def __init__(self, vendor: VendorConnection, sync: SyncContext, directory: MerakiDirectory) -> None:
        super().__init__(vendor, sync)
        self.directory = directory


class MerakiOrganizations(MerakiStream):
    name = "meraki_organizations"
    primary_key = "id"

    def read_partition(self, partition: Partition, run: StreamRun) -> Iterable[dict]:
        return [dict(org) for org in self.directory.organizations()]


class MerakiNetworks(MerakiStream):
    name = "meraki_networks"
    primary_key = "id"

    def partitions(self, run: StreamRun) -> Iterable[Partition]:
        for org_id in self.directory.organization_ids():
            yield {"organizationId": org_id}

    def read_partition(self, partition: Partition, run: StreamRun) -> Iterable[dict]:
        return [dict(network) for network in self.directory.networks(partition["organizationId"])]


class MerakiNetworkClients(MerakiStream):
    """Clients seen in each network during the sync window (`GET /networks/{id}/clients`)."""

    name = "meraki_network_clients"
    primary_key = ["networkId", "id"]

    def partitions(self, run: StreamRun) -> Iterable[Partition]:
        since = self.directory.usage_window_start(self.name)
        for org_id, network in self.directory.networks_round_robin():
            yield {"organizationId": org_id, "networkId": str(network["id"]), "since": since}

    def read_partition(self, partition: Partition, run: StreamRun) -> Iterator[dict]:
        ids: List[str] = []
        for client in self.vendor.records(self.directory.clients_endpoint, partition):
            if isinstance(client, Mapping) and "id" in client:
                ids.append(str(client["id"]))
            yield client
        # The usage stream needs these keys: remember them so that it does not list the clients again.
        self.directory.remember_clients(partition["networkId"], partition["since"], ids)


class MerakiClientUsageHistories(MerakiStream[PerPartitionCursor]):
    """Daily usage of every client, in kilobytes; one partition per network, state per network."""

    name = "meraki_client_usage_histories"
    primary_key = ["networkId", "clientId", "ts"]
    cursor_field = "ts"

    def __init__(self, vendor: VendorConnection, sync: SyncContext, directory: MerakiDirectory) -> None:
        super().__init__(vendor, sync, directory)
        self.endpoint = Endpoint(
            "networks/{networkId}/clients/usageHistories",
            records=self.records_of,
            query=lambda partition: {
                "clients": ",".join(partition["clients"]),
                "t0": iso_z(partition["window"].start),
                "t1": iso_z(partition["window"].end),
            },
            paginator=LinkHeaderPaginator("perPage", MAX_CLIENTS_PER_REQUEST),
            max_pages=100,
            overrides={404: ResponseAction.IGNORE, 403: ResponseAction.IGNORE},
            on_ignored=directory.skip_network,
        )

    feeds_ledger = True

    def make_cursor(self) -> PerPartitionCursor:
        return PerPartitionCursor("ts", ["networkId"])

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        """Bytes sent, received and in total per client and day (Meraki's kilobytes times 1,024)."""
        sent, received = scaled(record["sent"], BYTES_PER_KILOBYTE), scaled(record["recv"], BYTES_PER_KILOBYTE)
        total = None if sent is None or received is None else sent + received
        for metric, quantity in (("data_sent_bytes", sent), ("data_received_bytes", received), ("data_total_bytes", total)):
            yield ledger_row(
                vendor=NAME,
                account_id=record["organizationId"],
                subject_type="client",
                subject_id=f"{record['networkId']}/{record['clientId']}",
                metric=metric,
                quantity=quantity,
                unit="bytes",
                granularity="day",
                period_start=record["ts"],
                period_end=period_end(record["ts"], BUCKET),
                is_final=record["is_final"],
                observed_at=record["observed_at"],
                source_stream=self.name,
            )

    def partitions(self, run: StreamRun[PerPartitionCursor]) -> Iterable[Partition]:
        for org_id, network in self.directory.networks_round_robin():
            yield {"organizationId": org_id, "networkId": str(network["id"])}

    def window_start(self, partition: Partition, run: StreamRun[PerPartitionCursor]) -> datetime:
        """The sync start, or the saved state minus the lookback, clamped to the 31 days Meraki keeps."""
        saved = run.cursor.value_for(partition)
        if saved is None:
            return self.directory.usage_window_start(self.name)
        start = max(self.sync.start_date, parse_timestamp(saved) - self.directory.config.lookback)
        return self.directory.usage_window_start(self.name, start)

    def read_partition(self, partition: Partition, run: StreamRun[PerPartitionCursor]) -> Iterator[dict]:
        start = self.window_start(partition, run)
        client_ids = self.directory.client_ids(partition["organizationId"], partition["networkId"], start)
        for window in split_windows(start, datetime.now(timezone.utc), MAX_WINDOW) if client_ids else ():
            for batch in client_batches(client_ids):
                yield from self.vendor.records(self.endpoint, {**partition, "window": window, "clients": batch})

    def records_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        org_id, network_id = partition["organizationId"], partition["networkId"]
        observed = observed_at(response)
        final_before = parse_timestamp(observed) - self.directory.config.lookback
        for client in expect_list(body, NAME, response, "client usage histories"):
            if not isinstance(client, Mapping):
                raise UsageError("meraki: a client usage history is not an object", FailureType.system_error)
            client_id, mac, ip = client.get("clientId"), client.get("clientMac"), client.get("clientIp")
            points = client.get("usageHistory")
            if points is not None and not isinstance(points, list):
                raise UsageError(f"meraki: the usageHistory of client {client_id} is not a list", FailureType.system_error)
            for point in points or ():
                if not isinstance(point, Mapping):
                    raise UsageError(f"meraki: a usageHistory point of client {client_id} is not an object", FailureType.system_error)
                ts = instant(point.get("ts"), "ts")
                yield {
                    "organizationId": org_id,
                    "networkId": network_id,
                    "clientId": client_id,
                    "clientMac": mac,
                    "clientIp": ip,
                    "ts": ts,
                    # newer references name the received kilobytes `received`, the examples `recv`
                    "recv": point["recv"] if "recv" in point else point.get("received"),
                    "sent": point.get("sent"),
                    "observed_at": observed,
                    "is_final": _bucket_final(ts, final_before),
                }


def _bucket_final(ts: Any, final_before: datetime) -> bool:
    """A daily bucket is final once it ended more than the lookback before it was read."""
    try:
        return parse_timestamp(ts) + BUCKET < final_before
    except (TypeError, ValueError, AttributeError):
        return False


class MerakiOrganizationLicenses(MerakiStream):
    """Per-device licenses of every organization; co-termination organizations are skipped."""

    name = "meraki_organization_licenses"
    primary_key = ["organizationId", "id"]

    def __init__(self, vendor: VendorConnection, sync: SyncContext, directory: MerakiDirectory) -> None:
        super().__init__(vendor, sync, directory)
        self.endpoint = Endpoint(
            "organizations/{organizationId}/licenses",
            records=self.records_of,
            paginator=LinkHeaderPaginator("perPage", 1000),
            max_pages=1000,
            overrides={400: _coterm_only, 403: ResponseAction.IGNORE, 404: directory.organization_not_found},
            on_ignored=self.skipped,
        )

    def partitions(self, run: StreamRun) -> Iterable[Partition]:
        for org in self.directory.organizations():
            org_id = str(org["id"])
            if self.sync.shard.owns(NAME, "organization", org_id):
                yield {"organizationId": org_id, "organizationName": org.get("name")}

    def skipped(self, response: requests.Response, partition: Partition) -> None:
        if response.status_code == 400:
            self.sync.logger.warning(
                f"{self.name}: skipping organization {partition['organizationId']} ({partition.get('organizationName') or 'unnamed'}): "
                f"its licenses cannot be listed per device, which means co-termination licensing (HTTP 400: {error_text(response)})"
            )
        else:
            self.directory.skip_organization(partition["organizationId"], partition.get("organizationName"), _reason(response))

    def records_of(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        for license_ in expect_list(body, NAME, response, "licenses"):
            if isinstance(license_, Mapping):
                license_ = dict(license_)
                license_["organizationId"] = partition["organizationId"]
                for field in LICENSE_INSTANTS:
                    if field in license_:
                        license_[field] = instant(license_[field], field)
            yield license_


def _coterm_only(response: requests.Response) -> Optional[ErrorResolution]:
    """Only the co-termination answer ("... does not support per-device licensing") skips an organization;
    any other 400 fails the stream with Meraki's message."""
    text = error_text(response).lower()
    if "per-device licensing" in text or "co-term" in text or "coterm" in text:
        return ErrorResolution(ResponseAction.IGNORE, None, None)
    return None


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


# ----- the plugin -------------------------------------------------------------------------------------


class NetworkOrganizations:
    """Which organization a request counts against (Meraki's rate limit is per organization): from the
    path, or for network-scoped paths from the networks listed so far."""

    def __init__(self) -> None:
        self._of_network: Dict[str, str] = {}
        self._lock = threading.Lock()

    def learn(self, networks: Iterable[Mapping[str, Any]], organization_id: str) -> None:
        with self._lock:
            for network in networks:
                self._of_network[str(network.get("id"))] = organization_id

    def __call__(self, request: requests.PreparedRequest) -> Optional[str]:
        path = request.path_url.split("?", 1)[0]
        found = _ORG_PATH.search(path)
        if found:
            return found.group(1)
        found = _NETWORK_PATH.search(path)
        if found:
            with self._lock:
                return self._of_network.get(found.group(1))
        return None


@dataclass
class MerakiConnection(VendorConnection):
    organizations_of_networks: NetworkOrganizations = field(default_factory=NetworkOrganizations)


class Meraki(VendorPlugin[MerakiConfig]):
    name = NAME
    title = "Cisco Meraki"
    position = 10
    spec = SPEC
    emulator = "source_usage.emulator.meraki:MerakiApp"

    def parse_config(self, raw: Mapping[str, Any]) -> MerakiConfig:
        return MerakiConfig.parse(raw)

    def connect(self, config: MerakiConfig, settings: Settings) -> MerakiConnection:
        resolver = NetworkOrganizations()
        origin = Origin.of(config.base_url)
        host = f"{origin.host}:{origin.port}" if origin else config.base_url
        # Shared by every connection of the process to this host: the limit is per source IP.
        per_ip = process_layer(
            (NAME, host, "per IP"),
            # A 6% margin: a request granted now reaches the server a little later (scheduling, the network),
            # and the server counts it then; a 2% margin still drew occasional 429s on a busy machine.
            lambda: MovingWindowLayer("per-IP (100 requests/s)", everything, REQUESTS_PER_SECOND_PER_IP, timedelta(seconds=1.06)),
        )
        per_org = MovingWindowLayer("per-organization (10 requests/s)", resolver, REQUESTS_PER_SECOND_PER_ORG, timedelta(seconds=1.02))
        return MerakiConnection(
            NAME,
            config.base_url,
            VendorErrors(NAME, rejected={401: "the API key was rejected"}, describe=describe_error),
            authenticator=TokenAuthenticator(config.api_key),
            budget_layers=[per_org, per_ip],
            shard_redirects=True,
            max_workers=8,
            settings=settings,
            organizations_of_networks=resolver,
        )

    def streams(self, connection: VendorConnection, config: MerakiConfig, sync: SyncContext) -> List[UsageStream]:
        directory = MerakiDirectory(_meraki(connection), config, sync)
        return [
            MerakiOrganizations(connection, sync, directory),
            MerakiNetworks(connection, sync, directory),
            MerakiNetworkClients(connection, sync, directory),
            MerakiClientUsageHistories(connection, sync, directory),
            MerakiOrganizationLicenses(connection, sync, directory),
        ]

    def check(self, connection: VendorConnection, config: MerakiConfig, sync: SyncContext) -> None:
        """The organizations the key can see, then one organization-scoped call: org-scoped calls are the
        ones Meraki redirects to a shard host, and the ones a disabled organization refuses."""
        directory = MerakiDirectory(_meraki(connection), config, sync)
        page = next(iter(connection.pages(directory.organizations_endpoint, {})), None)
        organizations = [org for org in (page.records if page else []) if isinstance(org, Mapping)]
        wanted = set(config.organization_ids)
        usable = [
            str(org["id"])
            for org in organizations
            if "id" in org and (not wanted or str(org["id"]) in wanted) and (org.get("api") or {}).get("enabled") is not False
        ]
        if usable:
            next(iter(connection.pages(directory.networks_endpoint, {"organizationId": usable[0]})), None)


def _meraki(connection: VendorConnection) -> MerakiConnection:
    if not isinstance(connection, MerakiConnection):
        raise TypeError("the Meraki streams need the connection Meraki.connect made")
    return connection


plugin = Meraki()
