"""A Meraki config and a requests-mock double of the Dashboard API, built from the JSON templates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Sequence

import requests_mock

from source_usage.config import MerakiConfig
from source_usage.framework.stream import UsageStream
from source_usage.vendors import meraki
from unit_tests.helpers import by_name, template

BASE = "https://api.meraki.com/api/v1"
API_KEY = "0123456789abcdef0123456789abcdef01234567"


def meraki_config(**changes: object) -> MerakiConfig:
    values = dict(api_key=API_KEY, base_url=BASE, organization_ids=(), network_ids=(), lookback=timedelta(days=1))
    values.update(changes)
    return MerakiConfig(**values)  # type: ignore[arg-type]


def meraki_streams(config: Optional[MerakiConfig] = None, start: Optional[datetime] = None) -> Dict[str, UsageStream]:
    start = start or datetime.now(timezone.utc) - timedelta(days=10)
    return by_name(meraki.streams(config or meraki_config(), start))


def mock_dashboard(mock: requests_mock.Mocker, organizations: Optional[List[dict]] = None, coterm: Sequence[str] = ("771100",)) -> None:
    """Organizations, one network each, two clients and their usage; co-term organizations answer licenses with 400."""
    organizations = organizations if organizations is not None else template("meraki", "organizations")
    mock.get(f"{BASE}/organizations", json=organizations)
    for index, organization in enumerate(organizations):
        network = {**template("meraki", "networks")[0], "id": f"N_{index}", "organizationId": organization["id"]}
        mock.get(f"{BASE}/organizations/{organization['id']}/networks", json=[network])
        mock.get(f"{BASE}/networks/N_{index}/clients", json=template("meraki", "clients"))
        mock.get(f"{BASE}/networks/N_{index}/clients/usageHistories", json=template("meraki", "usage_histories"))
        if organization["id"] in coterm:
            mock.get(
                f"{BASE}/organizations/{organization['id']}/licenses",
                status_code=400,
                json={"errors": ["Organization with ID 771100 does not support per-device licensing"]},
            )
        else:
            mock.get(f"{BASE}/organizations/{organization['id']}/licenses", json=template("meraki", "licenses"))
