"""Everything a vendor's streams share within one sync: base URL, session, credentials, budget, errors."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams.call_rate import APIBudget, LimiterSession
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from requests.auth import AuthBase

from source_usage.framework.backoff import RetryAfterBackoff
from source_usage.framework.error_handling import VendorErrorHandler, VendorErrors
from source_usage.framework.errors import UsageError
from source_usage.framework.http_client import RetryPolicy, UsageHttpClient

DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds: no request may hang


def timeout_from_environment() -> Tuple[float, float]:
    """(connect, read) timeouts; `SOURCE_USAGE_READ_TIMEOUT_SECONDS` changes the read timeout."""
    read = os.environ.get("SOURCE_USAGE_READ_TIMEOUT_SECONDS")
    return (DEFAULT_TIMEOUT[0], float(read)) if read else DEFAULT_TIMEOUT


def read_environment_once(session: requests.Session, base_url: str) -> None:
    """Applies the proxy (`HTTPS_PROXY`, `NO_PROXY`...) and CA bundle (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`)
    settings of the environment to `session` once, instead of requests reading them again for every request
    (a noticeable share of a request's CPU time). A vendor's requests all go to its base URL's host, so its
    proxy decision is the same for each. `.netrc` is not consulted: credentials come from the config."""
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.trust_env = False


@dataclass
class Vendor:
    """One configured vendor. Its streams share one connection pool, authenticator and API budget."""

    name: str
    base_url: str
    errors: VendorErrors
    authenticator: Optional[AuthBase]
    budget: APIBudget = field(default_factory=lambda: APIBudget(policies=[]))
    backoff: List[BackoffStrategy] = field(default_factory=lambda: [RetryAfterBackoff()])
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy.from_environment)
    timeout: Tuple[float, float] = field(default_factory=timeout_from_environment)
    max_workers: int = 4
    rejection: Optional[UsageError] = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if os.environ.get("SOURCE_USAGE_CLIENT_RATE_BUDGETS", "on").lower() in ("off", "0", "false"):
            # For servers without the vendor's limits (the emulator with rate limits off, in benchmarks).
            self.budget = APIBudget(policies=[])
        self.session = self._new_session()
        self.error_handler = VendorErrorHandler(
            self.errors, max_retries=self.retry_policy.max_retries, on_rejected=self._remember_rejection
        )

    def client(
        self,
        name: str,
        logger: logging.Logger,
        error_handler: Optional[VendorErrorHandler] = None,
        authenticated: bool = True,
    ) -> UsageHttpClient:
        """An HttpClient for one stream (named for it in logs and stream statuses) on the shared session.

        `authenticated=False` gives a client on a session of its own without the authenticator, with the
        same budget: for the login request of a token authenticator.
        """
        if authenticated:
            session, authenticator = self.session, self.authenticator
        else:
            session, authenticator = self._new_session(), None
        client = UsageHttpClient(
            name=name,
            logger=logger,
            error_handler=error_handler or self.error_handler,
            session=session,
            authenticator=authenticator,
            backoff_strategy=self.backoff,
            message_repository=InMemoryMessageRepository(),
            request_timeout=self.timeout,
            vendor=self.name,
            retry_policy=self.retry_policy,
        )
        return client

    def _new_session(self) -> LimiterSession:
        session = LimiterSession(api_budget=self.budget)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(10, 2 * self.max_workers))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = "source-usage (Airbyte source; https://github.com/source-usage/source-usage)"
        read_environment_once(session, self.base_url)
        return session

    def _remember_rejection(self, message: str) -> None:
        if self.rejection is None:
            self.rejection = UsageError(message, FailureType.config_error)

    def raise_if_rejected(self) -> None:
        """After the vendor rejected the credentials once, its other streams fail fast with the same message."""
        if self.rejection is not None:
            raise UsageError(str(self.rejection), FailureType.config_error)
