"""A Meraki config, a frozen clock and a requests-mock double of the Dashboard API, built from the JSON templates."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock

from unit_tests.helpers import template

BASE = "https://api.meraki.com/api/v1"
SHARD_BASE = "https://n149.meraki.com/api/v1"
API_KEY = "0123456789abcdef0123456789abcdef01234567"
BEARER = f"Bearer {API_KEY}"
START = "2026-11-15T00:00:00Z"
# The connector's clock in every Meraki test: 2026-11-23T12:00:00Z (a Monday).
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
HEAD_OFFICE, BRANCHES = "549236", "771100"  # the two organizations of organizations.json

# Modules whose clock (`datetime.now`) decides windows, clamps, `observed_at` and saved-state checks.
CLOCK_MODULES = (
    "source_usage.vendors.meraki",
    "source_usage.vendors.twilio",
    "source_usage.framework.values",
    "source_usage.framework.cursors",
    "source_usage.framework.stream",
)


def freeze_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Every `datetime.now()` of the connector's time-dependent modules answers `moment`."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)

    for module in CLOCK_MODULES:
        monkeypatch.setattr(f"{module}.datetime", FrozenDatetime)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The Meraki tests' clock, frozen at NOW."""
    freeze_clock(monkeypatch, NOW)
    return NOW


def meraki_config(start_date: str = START, shard: Optional[Mapping[str, int]] = None, **section: Any) -> Dict[str, Any]:
    """A connector config with a Meraki section (the API key and base URL unless changed)."""
    config: Dict[str, Any] = {"start_date": start_date, "meraki": {"api_key": API_KEY, "base_url": BASE, **section}}
    if shard is not None:
        config["shard"] = dict(shard)
    return config


def network_of(index: int, organization_id: str, **changes: Any) -> dict:
    """The networks.json network, as network N_<index> of `organization_id`."""
    return {**template("meraki", "networks")[0], "id": f"N_{index}", "organizationId": organization_id, **changes}


def mock_dashboard(
    mock: requests_mock.Mocker,
    organizations: Optional[List[dict]] = None,
    coterm: Sequence[str] = (BRANCHES,),
    networks_per_organization: int = 1,
) -> List[str]:
    """Organizations, their networks (N_0, N_1... in order), two clients per network and their usage;
    co-term organizations answer licenses with 400. Returns the network ids."""
    organizations = organizations if organizations is not None else template("meraki", "organizations")
    mock.get(f"{BASE}/organizations", json=organizations)
    network_ids = []
    index = 0
    for organization in organizations:
        networks = []
        for _ in range(networks_per_organization):
            networks.append(network_of(index, organization["id"]))
            mock.get(f"{BASE}/networks/N_{index}/clients", json=template("meraki", "clients"))
            mock.get(f"{BASE}/networks/N_{index}/clients/usageHistories", json=template("meraki", "usage_histories"))
            network_ids.append(f"N_{index}")
            index += 1
        mock.get(f"{BASE}/organizations/{organization['id']}/networks", json=networks)
        if organization["id"] in coterm:
            mock.get(
                f"{BASE}/organizations/{organization['id']}/licenses",
                status_code=400,
                json={"errors": [f"Organization with ID {organization['id']} does not support per-device licensing"]},
            )
        else:
            mock.get(f"{BASE}/organizations/{organization['id']}/licenses", json=template("meraki", "licenses"))
    return network_ids


def one_organization(mock: requests_mock.Mocker, **options: Any) -> List[str]:
    """The dashboard of `mock_dashboard` with only the first organization."""
    return mock_dashboard(mock, organizations=template("meraki", "organizations")[:1], **options)


def query_of(request: Any) -> Dict[str, List[str]]:
    """The query of a recorded request, names and values as sent (requests-mock's `qs` lowercases them)."""
    return parse_qs(urlsplit(request.url).query)


def path_of(request: Any) -> str:
    return urlsplit(request.url).path


def requests_to(mock: requests_mock.Mocker, suffix: str) -> List[Any]:
    """Recorded requests whose path ends with `suffix` (case as sent)."""
    return [request for request in mock.request_history if path_of(request).endswith(suffix)]


def usage_requests(mock: requests_mock.Mocker) -> List[Any]:
    return requests_to(mock, "/clients/usageHistories")


def hosts_requested(mock: requests_mock.Mocker) -> List[str]:
    return [urlsplit(request.url).netloc for request in mock.request_history]


def only(items: Iterable[Any]) -> Any:
    [item] = list(items)
    return item
