"""emnify authentication: an application token exchanged for a JWT, shared by every stream of a sync."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Optional

import jwt
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorResolution, ResponseAction
from requests.auth import AuthBase

from source_usage.framework.client import ResponseAware
from source_usage.framework.error_handling import json_body
from source_usage.framework.errors import UsageError, endpoint_of
from source_usage.framework.secrets import register_secret
from source_usage.framework.vendor import VendorConnection
from source_usage.framework.windows import iso_z

TOKEN_LIFETIME = timedelta(minutes=240)  # when the JWT's `exp` cannot be read
RENEWAL_MARGIN = timedelta(minutes=5)  # authenticate again this long before the token expires
REAUTHENTICATION_WAIT = 0.01  # seconds before retrying a request with a new token: nothing to wait for
LOGGER = logging.getLogger("airbyte.emnify")


class EmnifyAuthenticator(AuthBase, ResponseAware):
    """`Authorization: Bearer <JWT>`, the JWT obtained by exchanging the application token.

    One instance serves every emnify stream of a sync, from any thread. It authenticates once, renews the
    token shortly before the `exp` its JWT claims (read without verifying the signature), and once more
    when a request is answered 401: the token is dropped and the request retried, and the retry
    authenticates first. A token that replaced a refused one and is refused before any request succeeded
    with it means the API refuses the tokens it issues: the request fails with a clear message instead of
    authenticating in a loop.
    """

    def __init__(self, application_token: str, clock: Callable[[], float] = time.time) -> None:
        self._application_token = application_token
        self._clock = clock
        self._lock = threading.RLock()
        self._token: Optional[str] = None
        self._renew_at = 0.0
        self._proven = False  # a request succeeded with the current token
        self._replaces_refused = False  # the current token was issued because the API refused the previous one
        self._refused = False  # the last token was refused: the next one replaces a refused token
        self._connection: Optional[VendorConnection] = None
        self.logins = 0
        self.organisation_id: Optional[str] = None  # from the JWT's `esc.org` claim, when it has one

    def log_in_through(self, connection: VendorConnection) -> None:
        """The connection whose client (retries, budget) sends `POST /authenticate`, without this authenticator."""
        self._connection = connection

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """A token that is not about to expire, authenticating first when needed."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._authenticate()
            assert self._token is not None
            return self._token

    def update_from_response(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        """A success proves the token it was sent with."""
        if response.ok and not self._proven:
            with self._lock:
                if _bearer_token(request) == self._token:
                    self._proven = True

    def on_unauthorized(self, response: requests.Response) -> ErrorResolution:
        """A 401 from a data request: retry with a new token, unless the API refuses the tokens it issues."""
        sent = _bearer_token(response.request)
        with self._lock:
            if sent is not None and sent == self._token:
                if self._replaces_refused and not self._proven:
                    method = response.request.method if response.request is not None else "GET"
                    return ErrorResolution(
                        ResponseAction.FAIL,
                        FailureType.config_error,
                        f"emnify: {method} {endpoint_of(response.url)} was refused with HTTP 401 right after authenticating "
                        f"again; check that the application token is still active and may read endpoints",
                    )
                self._token = None  # the retry authenticates first
                self._refused = True
        return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, "HTTP 401: authenticating again")

    def _authenticate(self) -> None:
        if self._connection is None:
            raise UsageError("emnify: the authenticator has no connection to log in through", FailureType.system_error)
        response = self._connection.send(
            "POST", "authenticate", json={"application_token": self._application_token}, authenticated=False, allow_redirects=False
        )
        try:
            body = json_body(response)
        except ValueError:
            body = None
        token = body.get("auth_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token or len(token) > 16384:
            raise UsageError("emnify: POST /authenticate succeeded but its answer has no usable auth_token", FailureType.system_error)
        register_secret(token)
        self.organisation_id = organisation_of(token) or self.organisation_id
        now = self._clock()
        expires_at = token_expiry(token, now)
        self._token = token
        self._renew_at = expires_at - min(RENEWAL_MARGIN.total_seconds(), (expires_at - now) / 4)
        self._proven, self._replaces_refused, self._refused = False, self._refused, False
        self.logins += 1
        renew_at = datetime.fromtimestamp(self._renew_at, timezone.utc).replace(microsecond=0)
        LOGGER.info(f"emnify: authenticated; the auth token will be renewed after {iso_z(renew_at)}")


def _bearer_token(request: Optional[requests.PreparedRequest]) -> Optional[str]:
    header = request.headers.get("Authorization") if request is not None and request.headers is not None else None
    return header[len("Bearer ") :] if header and header.startswith("Bearer ") else None


def token_expiry(token: str, now: float) -> float:
    """The epoch second the JWT's `exp` claims, or 240 minutes from `now` when it is unreadable, already
    past by our clock, or further away than a JWT of emnify's lives (then the API's 401 says when the token
    really expired)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    expires_at = claims.get("exp") if isinstance(claims, Mapping) else None
    if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool) and now < expires_at <= now + TOKEN_LIFETIME.total_seconds():
        return float(expires_at)
    return now + TOKEN_LIFETIME.total_seconds()


def organisation_of(token: str) -> Optional[str]:
    """The organisation id emnify puts in its JWTs (`esc.org`; read without verifying the signature)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    value = claims.get("esc.org") if isinstance(claims, Mapping) else None
    return str(value) if isinstance(value, (int, str)) and str(value).strip() else None


class RetryAtOnceWithNewToken(BackoffStrategy):
    """A 401 is retried as soon as the token was renewed: waiting would not help, and could let it expire."""

    def backoff_time(self, response_or_exception: Any, attempt_count: int) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 401:
            return REAUTHENTICATION_WAIT
        return None
