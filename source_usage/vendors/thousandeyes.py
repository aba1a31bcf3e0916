"""ThousandEyes API v7: organization usage per billing period and per test.

Streams: `thousandeyes_usage` (one record per billing period: the usage counters, the quota and the
period's `monthStart`/`monthEnd`) and `thousandeyes_test_usage` (one record per test in the period).
Both come from ONE `GET /usage?expand=test` per sync, shared through `BillingPeriod`; when a server
ignores `expand` (its answer has no `tests` array at all), the tests are read from the HAL-paged
`GET /usage/units/tests` instead.

Both streams are incremental on `monthStart`, but the API only reports the current period and that
period keeps changing until it ends, so every sync reads it again and emits it again under the same
primary key (the destination keeps the latest). `start_date` does not apply: the current period always
ends after it.

Contract (developer.cisco.com/docs/thousandeyes, thousandeyes-sdk-usage): `Authorization: Bearer <token>`;
`aid` selects the account group (the user must be assigned to it); the user needs the "View organization
usage" permission ("View Billing" in older docs), else 403. Counters are integers; `aid` and `testId` are
strings in v7; `cloudUnitsProjected` is absent for brand-new tests. Errors are `application/problem+json`
`{type, title, status, detail, instance}`; a 401 is an OAuth `{"error", "error_description"}` body.
Rate limit: 240 requests per minute per organization, in a fixed window reported on every response by
`X-Organization-Rate-Limit-Limit`/`-Remaining`/`-Reset` (epoch seconds); a 429 carries no `Retry-After`,
so the wait is until the reset.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any, Iterable, List, Mapping, Optional

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.call_rate import FixedWindowCallRatePolicy, HttpAPIBudget
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from source_usage.config import ThousandEyesConfig
from source_usage.framework.backoff import RateLimitResetBackoff, RetryAfterBackoff
from source_usage.framework.cursors import StreamCursor, WindowedCursor
from source_usage.framework.error_handling import Override, VendorErrors, error_text
from source_usage.framework.errors import UsageError
from source_usage.framework.http_client import RetryPolicy
from source_usage.framework.paginators import HalNextLinkPaginator
from source_usage.framework.stream import UsageStream
from source_usage.framework.vendor import Vendor

REQUESTS_PER_MINUTE = 240  # per organization, in a fixed window
REMAINING_HEADER = "X-Organization-Rate-Limit-Remaining"
RESET_HEADER = "X-Organization-Rate-Limit-Reset"
ACCEPT = "application/hal+json, application/json, application/problem+json"

TOKEN_REJECTED = "the bearer token was rejected"
PERMISSION_MISSING = 'the token\'s user lacks the permission to view usage (ThousandEyes needs "View organization usage")'

ERRORS = VendorErrors("thousandeyes", rejected={401: TOKEN_REJECTED})

# The only partition of both streams: the current billing period (a WindowedCursor needs its index).
CURRENT_PERIOD = {"window_index": 0}


class OrganizationRateLimitBudget(HttpAPIBudget):
    """The CDK's header-driven budget for the organization's 240 requests per minute.

    Every response says how many requests are left in the window and when it resets, so the connector
    slows down before the server refuses. A header that is not a number is ignored rather than fatal
    (the CDK's own parsing would raise from inside the HTTP session).
    """

    def __init__(self) -> None:
        super().__init__(
            ratelimit_reset_header=RESET_HEADER,
            ratelimit_remaining_header=REMAINING_HEADER,
            policies=[
                FixedWindowCallRatePolicy(
                    # naive local time, as the CDK's policy compares against datetime.now()
                    next_reset_ts=datetime.now() + timedelta(minutes=1),
                    period=timedelta(minutes=1),
                    call_limit=REQUESTS_PER_MINUTE,
                    matchers=[],  # the vendor's session only carries ThousandEyes requests
                )
            ],
        )

    def get_reset_ts_from_response(self, response: requests.Response) -> Optional[datetime]:
        reset = _number(response.headers.get(RESET_HEADER))
        return datetime.fromtimestamp(reset) if reset is not None else None

    def get_calls_left_from_response(self, response: requests.Response) -> Optional[int]:
        remaining = _number(response.headers.get(REMAINING_HEADER))
        if remaining is not None:
            return max(0, int(remaining))
        return 0 if response.status_code in self._status_codes_for_ratelimit_hit else None


def _number(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def make_vendor(config: ThousandEyesConfig, retry_policy: Optional[RetryPolicy] = None) -> Vendor:
    return Vendor(
        name="thousandeyes",
        base_url=config.base_url,
        errors=ERRORS,
        authenticator=TokenAuthenticator(config.bearer_token),
        budget=OrganizationRateLimitBudget(),
        # Retry-After if a server ever sends one (the SDK prefers it), else wait until the window resets.
        backoff=[RetryAfterBackoff(), RateLimitResetBackoff(RESET_HEADER)],
        max_workers=1,  # one request sequence per stream
        retry_policy=retry_policy or RetryPolicy.from_environment(),
    )


class BillingPeriod:
    """The `usage` object of the sync's one `GET /usage?expand=test`, shared by both streams.

    The first stream to ask sends the request; the other reuses its answer, or its failure, so a sync
    never asks twice.
    """

    def __init__(self, config: ThousandEyesConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._details: Optional[Mapping[str, Any]] = None
        self._failure: Optional[UsageError] = None
        self.usage_stream: "ThousandEyesUsage"

    def details(self) -> Mapping[str, Any]:
        with self._lock:
            if self._failure is not None:
                raise UsageError(str(self._failure), self._failure.failure_type)
            if self._details is None:
                try:
                    self._details = self.usage_stream.request_usage_details()
                except UsageError as failure:
                    self._failure = failure
                    raise
            return self._details

    def account_group(self) -> Mapping[str, Any]:
        """The `aid` query parameter when an account group is configured."""
        return {"aid": self.config.account_group_id} if self.config.account_group_id else {}


class ThousandEyesStream(UsageStream):
    def __init__(self, vendor: Vendor, period: BillingPeriod) -> None:
        self.period = period
        super().__init__(vendor)

    def request_headers(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Mapping[str, Any]:
        return {"Accept": ACCEPT}

    def make_cursor(self) -> StreamCursor:
        return WindowedCursor("monthStart")

    def partitions(self, sync_mode: SyncMode) -> Iterable[Mapping[str, Any]]:
        yield CURRENT_PERIOD

    def error_overrides(self) -> Mapping[int, Override]:
        return {403: self._forbidden}

    def _forbidden(self, response: requests.Response) -> ErrorResolution:
        """A 403 means a missing permission or an account group the user is not assigned to; the body says which."""
        aid = self.period.config.account_group_id
        assignment = f" or is not assigned to account group {aid}" if aid else ""
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error,
            f"thousandeyes: {PERMISSION_MISSING}{assignment} (HTTP 403: {error_text(response)})",
        )


class ThousandEyesUsage(ThousandEyesStream):
    """The organization's usage in the current billing period: counters, quota and the period's bounds."""

    name = "thousandeyes_usage"
    primary_key = ["monthStart"]
    cursor_field = "monthStart"

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return "usage"

    def query(self, partition: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**self.period.account_group(), "expand": "test"}

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        yield body  # the whole `Usage` document: `BillingPeriod` shares it between the two streams

    def request_usage_details(self) -> Mapping[str, Any]:
        """Send the sync's `GET /usage?expand=test` and return its `usage` object."""
        documents = [document for page in UsageStream.fetch_pages(self, {}) for document in page]
        details = documents[0].get("usage") if documents and isinstance(documents[0], Mapping) else None
        if not isinstance(details, Mapping):
            raise UsageError("thousandeyes: GET /usage answered without a `usage` object", FailureType.system_error)
        return details

    def fetch_pages(self, partition: Mapping[str, Any]) -> Iterable[List[dict]]:
        yield [period_record(self.period.details())]


class ThousandEyesTestUsage(ThousandEyesStream):
    """Cloud units per test in the current billing period."""

    name = "thousandeyes_test_usage"
    primary_key = ["monthStart", "aid", "testId"]
    cursor_field = "monthStart"
    paginator = HalNextLinkPaginator()

    def endpoint(self, partition: Mapping[str, Any]) -> str:
        return "usage/units/tests"

    def query(self, partition: Mapping[str, Any]) -> Mapping[str, Any]:
        # No startDate/endDate: the default is the current billing cycle, the period `/usage` described.
        return self.period.account_group()

    def extract_records(self, body: Any, partition: Mapping[str, Any], response: requests.Response) -> Iterable[dict]:
        for breakdown in body.get("breakdowns") or ():
            yield record_for_test(breakdown, partition["monthStart"])

    def fetch_pages(self, partition: Mapping[str, Any]) -> Iterable[List[dict]]:
        details = self.period.details()
        month_start = (details.get("quota") or {}).get("monthStart")
        tests = details.get("tests")
        if isinstance(tests, list):
            yield [record_for_test(test, month_start) for test in tests]
            return
        self.logger.info(f"{self.name}: GET /usage did not expand the tests; reading them from GET /usage/units/tests")
        yield from super().fetch_pages({**partition, "monthStart": month_start})


def period_record(details: Mapping[str, Any]) -> dict:
    """The scalar counters of `usage`, its quota, and the period's bounds copied from the quota."""
    quota = details.get("quota") or {}
    record = {key: value for key, value in details.items() if not isinstance(value, (Mapping, list))}
    record["quota"] = dict(quota)
    record["monthStart"] = quota.get("monthStart")
    record["monthEnd"] = quota.get("monthEnd")
    return record


def record_for_test(test: Mapping[str, Any], month_start: Optional[str]) -> dict:
    """One test's units, from a `tests` item of `/usage` or a `breakdowns` item of `/usage/units/tests`."""
    return {
        "monthStart": month_start,
        "aid": _as_id(test.get("aid")),
        "accountGroupName": test.get("accountGroupName"),
        "testId": _as_id(test.get("testId")),
        "testName": test.get("testName"),
        "testType": test.get("testType"),
        "cloudUnitsUsed": test.get("cloudUnitsUsed"),
        "cloudUnitsProjected": test.get("cloudUnitsProjected"),  # absent until ThousandEyes projects a new test
    }


def _as_id(value: Any) -> Optional[str]:
    """v7 ids are strings; an older or looser server may send numbers."""
    return None if value is None else str(value)


def check(config: ThousandEyesConfig, start: datetime, retry_policy: RetryPolicy) -> None:
    """One cheap authenticated request: the usage of the current period."""
    period = BillingPeriod(config)
    ThousandEyesUsage(make_vendor(config, retry_policy), period).probe()


def streams(config: ThousandEyesConfig, start: datetime) -> List[UsageStream]:
    period = BillingPeriod(config)
    vendor = make_vendor(config)
    period.usage_stream = ThousandEyesUsage(vendor, period)
    return [period.usage_stream, ThousandEyesTestUsage(vendor, period)]
