"""ThousandEyes API v7: organization usage per billing period and per test.

Streams: `thousandeyes_usage` (one record per billing period: the usage counters, the quota and the
period's `monthStart`/`monthEnd`) and `thousandeyes_test_usage` (one record per test in the period).
Both come from ONE `GET /usage?expand=test` per sync, shared through a value computed once; when a server
ignores `expand` (its answer has no `tests` array at all), the tests are read from the HAL-paged
`GET /usage/units/tests` instead, with a warning: that endpoint exists for usage-based-pricing customers
only and attributes enterprise-agent units per account group running a test.

Both streams are incremental on `monthStart`, but the API only reports the current period and that period
keeps changing until it ends, so every sync reads it again and emits it again under the same primary key
(the destination keeps the latest). `start_date` does not apply: the current period always ends after it.

Contract (developer.cisco.com/docs/thousandeyes, thousandeyes-sdk-usage): `Authorization: Bearer <token>`;
`aid` selects the account group (the user must be assigned to it); the user needs the permission to view
usage ("View organization usage"; the usage SDK's docs call it "View Billing"), else 403. Counters are
integers; `aid` and `testId` are strings in v7 and optional in `TestUsage`; `cloudUnitsProjected` is absent
for brand-new tests. Errors are `application/problem+json` `{type, title, status, detail, instance}`; a 401
is an OAuth `{"error", "error_description"}` body. Rate limit: 240 requests per minute per organization,
in a fixed window reported on every response by `X-Organization-Rate-Limit-Limit`/`-Remaining`/`-Reset`
(epoch seconds); a 429 carries no `Retry-After`, so the wait is until the reset (bounded: a reset further
away than `SOURCE_USAGE_MAX_WAIT_SECONDS` fails the streams at once, saying when to come back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Iterator, List, Mapping, Optional

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from source_usage.framework.backoff import RateLimitResetBackoff, RetryAfterBackoff
from source_usage.framework.budget import ReportedWindowLayer, everything
from source_usage.framework.config_fields import base_url, optional_text, secret
from source_usage.framework.cursors import Partition, WindowedCursor
from source_usage.framework.endpoint import Endpoint, expect_object
from source_usage.framework.error_handling import VendorErrors, problem_details
from source_usage.framework.ledger import ledger_row
from source_usage.framework.errors import UsageError
from source_usage.framework.paginators import HalNextLinkPaginator
from source_usage.framework.plugin import VendorPlugin
from source_usage.framework.settings import Settings
from source_usage.framework.shared import OncePerKey
from source_usage.framework.stream import StreamRun, UsageStream
from source_usage.framework.sync import SyncContext
from source_usage.framework.values import instant, observed_at
from source_usage.framework.vendor import VendorConnection

NAME = "thousandeyes"
REQUESTS_PER_MINUTE = 240  # per organization, in a fixed window
REMAINING_HEADER = "X-Organization-Rate-Limit-Remaining"
RESET_HEADER = "X-Organization-Rate-Limit-Reset"
ACCEPT = "application/hal+json, application/json, application/problem+json"

TOKEN_REJECTED = "the bearer token was rejected"
PERMISSION = '"View organization usage" (called "View Billing" in the usage SDK\'s docs)'

SPEC = {
    "type": "object",
    "title": "ThousandEyes",
    "description": 'Organization usage per billing period and per test. The token\'s user needs the "View organization usage" permission.',
    "required": ["bearer_token"],
    "properties": {
        "bearer_token": {"type": "string", "title": "Bearer token", "description": "A user API (OAuth bearer) token.", "airbyte_secret": True, "order": 0},
        "base_url": {"type": "string", "title": "Base URL", "default": "https://api.thousandeyes.com/v7", "pattern": "^https?://", "order": 1},
        "account_group_id": {"type": "string", "title": "Account group ID", "description": "Sent as `aid`. Default: the token user's default account group.", "order": 2},
    },
}


@dataclass(frozen=True)
class ThousandEyesConfig:
    bearer_token: str
    base_url: str
    account_group_id: Optional[str]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "ThousandEyesConfig":
        return cls(
            bearer_token=secret(NAME, raw, "bearer_token"),
            base_url=base_url(NAME, raw, "https://api.thousandeyes.com/v7", "/v7"),
            account_group_id=optional_text(raw, "account_group_id"),
        )

    def account_group(self) -> Mapping[str, Any]:
        """The `aid` query parameter when an account group is configured."""
        return {"aid": self.account_group_id} if self.account_group_id else {}


def describe_error(body: Any) -> Optional[str]:
    """RFC 9457 problem details, or the OAuth `{"error", "error_description"}` of a 401."""
    if isinstance(body, Mapping) and (body.get("error_description") or isinstance(body.get("error"), str)):
        return ": ".join(str(part) for part in (body.get("error"), body.get("error_description")) if part)
    return problem_details(body)


class BillingPeriod:
    """The `usage` object of the sync's one `GET /usage?expand=test`, shared by both streams: the first
    stream to ask sends the request, the other reuses its answer (or its failure)."""

    def __init__(self, vendor: VendorConnection, config: ThousandEyesConfig) -> None:
        self.vendor = vendor
        self.config = config
        self.usage_endpoint = Endpoint(
            "usage",
            records=lambda body, partition, response: [usage_details(body, response)],
            query=lambda partition: {**config.account_group(), "expand": "test"},
            headers={"Accept": ACCEPT},
            max_pages=1,
            overrides={403: self._forbidden},
        )
        self.tests_endpoint = Endpoint(
            "usage/units/tests",
            records=self._breakdowns,
            # No startDate/endDate: the default is the current billing cycle, the period `/usage` described.
            query=lambda partition: config.account_group(),
            headers={"Accept": ACCEPT},
            paginator=HalNextLinkPaginator(),
            max_pages=1000,
            overrides={403: self._units_forbidden},
        )
        self._details: OncePerKey[str, Mapping[str, Any]] = OncePerKey(lambda _: self._read_details())

    def details(self) -> Mapping[str, Any]:
        return self._details.get("current")

    def _read_details(self) -> Mapping[str, Any]:
        for record in self.vendor.records(self.usage_endpoint, {}):
            return record
        raise UsageError("thousandeyes: GET /usage answered nothing", FailureType.system_error)

    def _forbidden(self, response: requests.Response) -> ErrorResolution:
        """A 403 means a missing permission or an account group the user is not assigned to."""
        aid = self.config.account_group_id
        assignment = f" or is not assigned to account group {aid}" if aid else ""
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error,
            f"thousandeyes: the token's user lacks the permission {PERMISSION}{assignment} (HTTP 403: {self.vendor.errors.text_of(response)})",
        )

    def _units_forbidden(self, response: requests.Response) -> ErrorResolution:
        return ErrorResolution(
            ResponseAction.FAIL,
            FailureType.config_error,
            "thousandeyes: GET /usage/units/tests was refused (HTTP 403): that endpoint serves only organizations on "
            f"usage-based pricing, and this one's GET /usage did not expand its tests ({self.vendor.errors.text_of(response)})",
        )

    def _breakdowns(self, body: Any, partition: Partition, response: requests.Response) -> Iterator[dict]:
        body = expect_object(body, NAME, response, "an object with breakdowns")
        breakdowns = body.get("breakdowns")
        if breakdowns is not None and not isinstance(breakdowns, list):
            raise UsageError("thousandeyes: GET /usage/units/tests answered breakdowns that are not a list", FailureType.system_error)
        observed = observed_at(response)
        for breakdown in breakdowns or ():
            yield record_for_test(breakdown, partition["monthStart"], observed)


def usage_details(body: Any, response: requests.Response) -> Mapping[str, Any]:
    """The `usage` object, and when it was read."""
    details = expect_object(body, NAME, response, "a usage document").get("usage")
    if not isinstance(details, Mapping):
        raise UsageError("thousandeyes: GET /usage answered without a `usage` object", FailureType.system_error)
    return {"usage": details, "observed_at": observed_at(response)}


class ThousandEyesStream(UsageStream[WindowedCursor]):
    cursor_field = "monthStart"

    def __init__(self, vendor: VendorConnection, sync: SyncContext, period: BillingPeriod) -> None:
        super().__init__(vendor, sync)
        self.period = period

    def make_cursor(self) -> WindowedCursor:
        return WindowedCursor("monthStart", order=lambda partition: 0)  # one partition: the current period

    def partitions(self, run: StreamRun[WindowedCursor]) -> Iterable[Partition]:
        """The current period, read by one shard: `/usage` is one request for the whole organization (or
        account group), nothing to split."""
        owner = self.period.config.account_group_id or "organization"
        if self.sync.shard.owns(NAME, owner):
            yield {}
        else:
            run.logger.info(f"{self.name}: the organization's usage is read by another shard ({self.sync.shard})")


class ThousandEyesUsage(ThousandEyesStream):
    """The organization's usage in the current billing period: counters, quota and the period's bounds."""

    name = "thousandeyes_usage"
    primary_key = ["monthStart"]
    feeds_ledger = True

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        """The organization's own counters; per-test units are the test rows' (`cloud_units`): these totals
        are separate metrics so that a sum of units per test is not counted twice."""
        account = self.period.config.account_group_id or "organization"
        for metric, quantity in (("cloud_units_total", record.get("cloudUnitsUsed")), ("enterprise_units_total", record.get("enterpriseUnitsUsed"))):
            yield ledger_row(
                vendor=NAME,
                account_id=account,
                subject_type="organization",
                subject_id=account,
                metric=metric,
                quantity=quantity,
                unit="units",
                granularity="billing_period",
                period_start=record["monthStart"],
                period_end=record.get("monthEnd"),
                is_final=record["is_final"],
                observed_at=record["observed_at"],
                source_stream=self.name,
            )

    def read_partition(self, partition: Partition, run: StreamRun[WindowedCursor]) -> Iterable[dict]:
        document = self.period.details()
        return [{**period_record(document["usage"]), "observed_at": document["observed_at"], "is_final": False}]


class ThousandEyesTestUsage(ThousandEyesStream):
    """Cloud units per test in the current billing period."""

    name = "thousandeyes_test_usage"
    primary_key = ["monthStart", "aid", "testId"]
    feeds_ledger = True

    def ledger_rows(self, record: Mapping[str, Any]) -> Iterator[dict]:
        yield ledger_row(
            vendor=NAME,
            account_id=record["aid"],
            subject_type="test",
            subject_id=record["testId"],
            subject_name=record.get("testName"),
            metric="cloud_units",
            quantity=record.get("cloudUnitsUsed"),
            unit="units",
            granularity="billing_period",
            period_start=record["monthStart"],
            period_end=self._period_end(),
            is_final=record["is_final"],
            observed_at=record["observed_at"],
            source_stream=self.name,
        )

    def _period_end(self) -> Optional[str]:
        quota = self.period.details()["usage"].get("quota")
        return instant(quota.get("monthEnd"), "quota.monthEnd") if isinstance(quota, Mapping) else None

    def read_partition(self, partition: Partition, run: StreamRun[WindowedCursor]) -> Iterable[dict]:
        document = self.period.details()
        details, observed = document["usage"], document["observed_at"]
        quota = details.get("quota") if isinstance(details.get("quota"), Mapping) else {}
        month_start = instant(quota.get("monthStart"), "quota.monthStart")
        tests = details.get("tests")
        if isinstance(tests, list):
            return [record_for_test(test, month_start, observed) for test in tests]
        run.logger.warning(
            f"{self.name}: GET /usage did not expand the tests; reading them from GET /usage/units/tests, which serves "
            f"usage-based-pricing organizations and counts enterprise-agent units per account group running a test"
        )
        return self.vendor.records(self.period.tests_endpoint, {"monthStart": month_start})



def period_record(details: Mapping[str, Any]) -> dict:
    """The scalar counters of `usage`, its quota, and the period's bounds copied from the quota (in UTC).
    The period is open until it ends and the API answers only the current one: never final."""
    quota = dict(details.get("quota")) if isinstance(details.get("quota"), Mapping) else {}
    for field in ("monthStart", "monthEnd"):
        if field in quota:
            quota[field] = instant(quota[field], f"quota.{field}")
    record = {key: value for key, value in details.items() if not isinstance(value, (Mapping, list))}
    record["quota"] = quota
    record["monthStart"] = quota.get("monthStart")
    record["monthEnd"] = quota.get("monthEnd")
    return record


def record_for_test(test: Any, month_start: Optional[str], observed: str) -> dict:
    """One test's units, from a `tests` item of `/usage` or a `breakdowns` item of `/usage/units/tests`."""
    if not isinstance(test, Mapping):
        raise UsageError("thousandeyes: a test usage entry is not an object", FailureType.system_error)
    return {
        "monthStart": month_start,
        "aid": _as_id(test.get("aid")),
        "accountGroupName": test.get("accountGroupName"),
        "testId": _as_id(test.get("testId")),
        "testName": test.get("testName"),
        "testType": test.get("testType"),
        "cloudUnitsUsed": test.get("cloudUnitsUsed"),
        "cloudUnitsProjected": test.get("cloudUnitsProjected"),  # absent until ThousandEyes projects a new test
        "observed_at": observed,
        "is_final": False,
    }


def _as_id(value: Any) -> Optional[str]:
    """v7 ids are strings; an older or looser server may send numbers."""
    return None if value is None else str(value)


class ThousandEyes(VendorPlugin[ThousandEyesConfig]):
    name = NAME
    title = "ThousandEyes"
    position = 40
    spec = SPEC
    emulator = "source_usage.emulator.thousandeyes:ThousandEyesApp"

    def parse_config(self, raw: Mapping[str, Any]) -> ThousandEyesConfig:
        return ThousandEyesConfig.parse(raw)

    def connect(self, config: ThousandEyesConfig, settings: Settings) -> VendorConnection:
        # The organization's budget, as its headers report it; a reset too far away fails at once.
        budget = ReportedWindowLayer(
            "organization (240 requests/minute)", everything, REQUESTS_PER_MINUTE, timedelta(minutes=1), REMAINING_HEADER, RESET_HEADER, settings.max_wait_seconds
        )
        return VendorConnection(
            NAME,
            config.base_url,
            VendorErrors(NAME, rejected={401: TOKEN_REJECTED}, describe=describe_error),
            authenticator=TokenAuthenticator(config.bearer_token),
            budget_layers=[budget],
            # Retry-After if a server ever sends one (the SDK prefers it), else wait until the window resets.
            backoff=[RetryAfterBackoff(), RateLimitResetBackoff(RESET_HEADER)],
            max_workers=1,  # one request sequence per stream
            settings=settings,
        )

    def streams(self, connection: VendorConnection, config: ThousandEyesConfig, sync: SyncContext) -> List[UsageStream]:
        period = BillingPeriod(connection, config)
        return [ThousandEyesUsage(connection, sync, period), ThousandEyesTestUsage(connection, sync, period)]

    def check(self, connection: VendorConnection, config: ThousandEyesConfig, sync: SyncContext) -> None:
        """One cheap authenticated request: the usage of the current period."""
        BillingPeriod(connection, config).details()


plugin = ThousandEyes()
