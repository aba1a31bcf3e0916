"""Everything a vendor's streams share within one sync: base URL, client, credentials, budget, host policy."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from requests.auth import AuthBase

from source_usage.framework.backoff import RetryAfterBackoff
from source_usage.framework.budget import BudgetLayer, LayeredBudget, Unlimited
from source_usage.framework.client import VendorClient
from source_usage.framework.endpoint import Endpoint, Page, read_pages
from source_usage.framework.error_handling import VendorErrorHandler, VendorErrors
from source_usage.framework.errors import UsageError
from source_usage.framework.hosts import HostPolicy
from source_usage.framework.settings import Settings, settings
from source_usage.framework.transport import VendorSession

Partition = Mapping[str, Any]


@dataclass
class VendorConnection:
    """One configured vendor in one sync (or check). Its streams share one session, authenticator, budget
    and client; requests go only to the base URL's origin (or, with `shard_redirects`, the vendor's
    documented shard hosts under the same parent domain over https)."""

    name: str
    base_url: str
    errors: VendorErrors
    authenticator: Optional[AuthBase] = None
    budget_layers: Sequence[BudgetLayer] = ()
    backoff: List[BackoffStrategy] = field(default_factory=lambda: [RetryAfterBackoff()])
    shard_redirects: bool = False
    error_overrides: Mapping[int, Any] = field(default_factory=dict)  # statuses every endpoint treats specially
    max_workers: int = 4
    settings: Settings = field(default_factory=settings)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("airbyte"))

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.policy = HostPolicy.for_base_url(self.base_url, self.shard_redirects)
        budget = LayeredBudget(self.name, self.budget_layers) if self.settings.client_rate_budgets and self.budget_layers else Unlimited()
        self.session = VendorSession(budget, self.policy, pool_size=max(10, 2 * self.max_workers))
        self.rejection: Optional[UsageError] = None
        self.error_handler = VendorErrorHandler(
            self.errors, max_retries=self.settings.max_retries, overrides=self.error_overrides, on_rejected=self._remember_rejection
        )
        self.client = VendorClient(self.name, self.session, self.error_handler, self.backoff, self.authenticator, self.settings, self.logger)
        self._handlers: Dict[int, Tuple[Endpoint, VendorErrorHandler]] = {}

    @property
    def workers(self) -> int:
        return self.settings.max_workers or self.max_workers

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def handler_for(self, endpoint: Endpoint) -> VendorErrorHandler:
        known = self._handlers.get(id(endpoint))
        if known is None or known[0] is not endpoint:
            known = self._handlers[id(endpoint)] = (endpoint, self.error_handler.with_overrides(endpoint.overrides))
        return known[1]

    def pages(self, endpoint: Endpoint, partition: Partition) -> Iterator[Page]:
        """The pages of `endpoint` for `partition`, first to last (see `endpoint.read_pages`)."""
        self.raise_if_rejected()
        return read_pages(self, endpoint, partition)

    def records(self, endpoint: Endpoint, partition: Partition) -> Iterator[dict]:
        """Every record of `endpoint` for `partition`, page after page."""
        for page in self.pages(endpoint, partition):
            yield from page.records

    def send(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        return self.client.send(method, url, **kwargs)

    def _remember_rejection(self, message: str) -> None:
        self.refuse_further(message, FailureType.config_error)

    def refuse_further(self, message: str, failure_type: FailureType) -> None:
        """The vendor will refuse every further request of this sync (the credentials were rejected, a quota
        is exhausted): its other streams fail fast with the same message instead of asking again."""
        if self.rejection is None:
            self.rejection = UsageError(message, failure_type)

    def raise_if_rejected(self) -> None:
        if self.rejection is not None:
            raise UsageError(self.rejection.message or str(self.rejection), self.rejection.failure_type)

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent
