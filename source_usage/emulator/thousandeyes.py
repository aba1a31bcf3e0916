"""Emulated ThousandEyes API v7 usage endpoints.

Serves `GET /usage?aid=&expand=` and `GET /usage/units/tests?aid=&startDate=&endDate=&cursor=` with the
real contract: Bearer auth (a 401 is an OAuth `{"error": "invalid_token", ...}` body); `aid` must be an
account group the user is assigned to, else 403; a user without the "View organization usage" permission
gets 403; other errors are `application/problem+json` `{type, title, status, detail, instance}` (a 400
adds `errors: [{code, field, message}]`). `/usage` answers `application/hal+json` with the whole
`UsageDetails` of the current billing period, arrays only for the `expand` options asked for (none by
default). `/usage/units/tests` pages its `breakdowns` with an opaque cursor in `_links.next.href`, absent
on the last page.

Rate limit (when `rate_limits` is on): 240 requests per minute per organization in a fixed window that
starts at the first request; every authenticated response carries `X-Organization-Rate-Limit-Limit`,
`-Remaining` and `-Reset` (epoch seconds, rounded up) and a refusal is a 429 problem ("Exhausted rate limit
for the organization") without `Retry-After`. A storm exhausts the window with its reset
`storm_reset_seconds` ahead, so a client that waits for the reset is seen doing so.

Data: one organization whose billing period started on a seeded day of the month; `account_groups`
account groups with `tests_per_account_group` tests each. Usage grows by one step per `advance()`: units
used increase, every test gets a projection one step after it appeared, and a new test appears in each
account group at step 1. Knobs: `expand_supported=False` makes `/usage` ignore `expand` (no arrays at
all); `can_view_usage=False` answers 403; `account_group_id` goes into the connector config (True: the
first account group's id); `token` is the bearer token it accepts.

More knobs (off by default):

* `usage_based_pricing` (True): False answers `/usage/units/tests` (available only to customers on the
  usage-based pricing model, as the usage SDK documents) with 403 problem+json, title "Forbidden",
  detail "Usage unit breakdowns are only available to organizations on the usage-based pricing model"
  (wording not documented; `/usage` itself still answers).
* `tests_without_ids` (0): that many tests (chosen from the seed) are reported without `testId`, without
  `aid`, or without both (the SDK's `UsageTest` model has them optional), in the `tests` of
  `/usage?expand=test` and in their `/usage/units/tests` breakdowns alike.

`expected()` is built from the generated tests, agents and account groups (never from what is served):
one `thousandeyes_usage` record of the current billing period, and one `thousandeyes_test_usage` record
per visible test with `monthStart`; what the API omits (a brand-new test's projection, an omitted
`aid`/`testId`) is null.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Deque, Dict, List, Optional, Tuple, Union

from source_usage.emulator.app import VendorApp
from source_usage.emulator.data import iso, parse_iso, stable_hex, stable_int, utc_now
from source_usage.emulator.http import FixedWindow, Request, Response, json_response

BEARER_TOKEN = "5a1dbox0-te00-4000-8000-thousandeyes1"
REQUESTS_PER_MINUTE = 240
PERIOD_STEPS = 30  # steps (days) in a billing period, for projections
EXPAND_OPTIONS = {
    "test": "tests",
    "enterprise-agent-unit": "enterpriseAgentUnits",
    "endpoint-agent": "endpointAgents",
    "endpoint-agent-essential": "endpointAgentsEssentials",
    "endpoint-agent-embedded": "endpointAgentsEmbedded",
    "enterprise-agent": "enterpriseAgents",
}
TEST_TYPES = ("Web - Page Load", "Web - HTTP Server", "Network - Agent to Server", "DNS - Server", "Web - Transaction", "Voice - RTP Stream")
UNITS_NEED_USAGE_BASED_PRICING = "Usage unit breakdowns are only available to organizations on the usage-based pricing model"
GROUP_NAMES = ("Documentation", "Support", "Operations", "Retail", "Engineering", "Marketing", "Finance", "Sales")


@dataclass(frozen=True)
class EmulatedTest:
    aid: str
    account_group_name: str
    test_id: str
    test_name: str
    test_type: str
    cloud_units_per_step: int
    enterprise_units_per_step: int
    born: int  # the step at which the test appeared (<= 0: before the emulator started)
    omitted: Tuple[str, ...] = ()  # identifiers the API leaves out of this test's items

    def visible(self, step: int) -> bool:
        return step >= self.born

    def cloud_used(self, step: int) -> int:
        return self.cloud_units_per_step * (step - self.born + 1)

    def cloud_projected(self, step: int) -> Optional[int]:
        """None while the test is brand-new: ThousandEyes projects a test an hour after it appears."""
        if step <= self.born:
            return None
        return self.cloud_used(step) + self.cloud_units_per_step * max(0, PERIOD_STEPS - step)

    def enterprise_used(self, step: int) -> int:
        return self.enterprise_units_per_step * (step - self.born + 1)


@dataclass(frozen=True)
class EmulatedAgent:
    """An enterprise agent and the units it uses: `units_factor` thousand units per step, plus ten steps' worth."""

    aid: str
    account_group_name: str
    agent_id: Optional[str]  # None: the API omits it ("may be omitted when not available")
    agent_name: str
    units_factor: int

    def used(self, step: int) -> int:
        return self.units_factor * 1000 * (step + 10)

    def projected(self, step: int) -> int:
        return self.used(step) * PERIOD_STEPS // (step + 10)


@dataclass(frozen=True)
class ServedRequest:
    """What the emulator answered and when, for tests that check how a client waited."""

    at: float  # epoch seconds
    path: str
    status: int
    reset: Optional[int]  # the X-Organization-Rate-Limit-Reset it announced


class ThousandEyesApp(VendorApp):
    name = "thousandeyes"
    prefix = "/thousandeyes/v7"
    streams = ("thousandeyes_usage", "thousandeyes_test_usage")

    def __init__(
        self,
        seed: int,
        scale: int,
        rate_limits: bool,
        account_groups: int = 2,
        tests_per_account_group: Optional[int] = None,
        page_size: int = 3,
        expand_supported: bool = True,
        can_view_usage: bool = True,
        account_group_id: Union[bool, str, None] = None,
        storm_reset_seconds: float = 3.0,
        token: str = BEARER_TOKEN,
        usage_based_pricing: bool = True,
        tests_without_ids: int = 0,
    ) -> None:
        super().__init__(seed, scale, rate_limits)
        self.usage_based_pricing = usage_based_pricing
        self.bearer_token = token
        self.page_size = page_size
        self.expand_supported = expand_supported
        self.can_view_usage = can_view_usage
        self.storm_reset_seconds = storm_reset_seconds
        self.step = 0
        self.month_start, self.month_end = billing_period(utc_now(), 1 + stable_int(seed, "billing-day", modulo=28))
        self.groups = [
            {"aid": str(1000 + stable_int(seed, "aid", index, modulo=9000)), "accountGroupName": GROUP_NAMES[index % len(GROUP_NAMES)]}
            for index in range(account_groups)
        ]
        per_group = tests_per_account_group or 4 * self.scale
        self.tests = [self._test(group, index) for group in self.groups for index in range(per_group + 1)]
        self._omit_ids(tests_without_ids)
        self.agents = [self._agent(group, index) for group in self.groups for index in range(2)]
        self.group_counts = {
            field: [(group, 1 + stable_int(seed, what, group["aid"], modulo=modulo)) for group in self.groups]
            for field, what, modulo in (
                ("endpointAgentsUsed", "endpoint-agents", 30),
                ("endpointAgentsEssentialsUsed", "essentials", 5),
                ("endpointAgentsEmbeddedUsed", "embedded", 5),
                ("enterpriseAgentsUsed", "enterprise-agents", 4),
            )
        }
        self.account_group_id = self.groups[0]["aid"] if account_group_id is True else account_group_id or None
        self.window = FixedWindow(REQUESTS_PER_MINUTE, 60.0, self.timer)
        self._storm_reset_at = 0.0
        self.served: Deque[ServedRequest] = deque(maxlen=1000)

    # ----- data --------------------------------------------------------------------------------------

    def _test(self, group: Dict[str, str], index: int) -> EmulatedTest:
        aid = group["aid"]
        test_id = str(100000 + stable_int(self.seed, "test", aid, index, modulo=900000))
        test_type = TEST_TYPES[stable_int(self.seed, "type", test_id, modulo=len(TEST_TYPES))]
        if index == 0:
            born = 1  # appears after the first advance()
        elif index % 4 == 1:
            born = 0  # brand-new: no projection yet
        else:
            born = -(2 + stable_int(self.seed, "born", test_id, modulo=12))
        return EmulatedTest(
            aid=aid,
            account_group_name=group["accountGroupName"],
            test_id=test_id,
            test_name=f"https://app{index}.example.com/{stable_hex(4, self.seed, test_id)}",
            test_type=test_type,
            cloud_units_per_step=1000 + stable_int(self.seed, "cloud", test_id, modulo=50000),
            enterprise_units_per_step=stable_int(self.seed, "enterprise", test_id, modulo=3) * 700,
            born=born,
        )

    def _omit_ids(self, count: int) -> None:
        if count > len(self.tests):
            raise ValueError(f"only {len(self.tests)} tests can lose their ids, not {count}")
        chosen = sorted(self.tests, key=lambda test: stable_int(self.seed, "no-ids", test.test_id))[:count]
        patterns = (("testId",), ("aid",), ("aid", "testId"))
        omitted = {test.test_id: patterns[rank % len(patterns)] for rank, test in enumerate(chosen)}
        self.tests = [replace(test, omitted=omitted.get(test.test_id, ())) for test in self.tests]

    def _agent(self, group: Dict[str, str], index: int) -> EmulatedAgent:
        return EmulatedAgent(
            aid=group["aid"],
            account_group_name=group["accountGroupName"],
            agent_id=None if index == 1 else str(200000 + stable_int(self.seed, "agent", group["aid"], index, modulo=800000)),
            agent_name=f"ea-{group['accountGroupName'].lower()}-{index + 1}",
            units_factor=1 + stable_int(self.seed, "ea-units", group["aid"], index, modulo=40),
        )

    def _visible_tests(self) -> List[EmulatedTest]:
        return [test for test in self.tests if test.visible(self.step)]

    def _agent_unit_items(self) -> List[dict]:
        items = []
        for agent in self.agents:
            item = {
                "aid": agent.aid,
                "accountGroupName": agent.account_group_name,
                "agentId": agent.agent_id,
                "agentName": agent.agent_name,
                "enterpriseUnitsUsed": agent.used(self.step),
                "enterpriseUnitsProjected": agent.projected(self.step),
            }
            if agent.agent_id is None:
                del item["agentId"]  # "agentId may be omitted when not available"
            items.append(item)
        return items

    def _quota(self) -> dict:
        return {
            "monthStart": iso(self.month_start),
            "monthEnd": iso(self.month_end),
            "cloudUnitsIncluded": 20_000_000 * self.scale,
            "endpointAgentsIncluded": 200,
            "endpointAgentsEssentialsIncluded": 10,
            "endpointAgentsEmbeddedIncluded": 10,
            "enterpriseAgentsIncluded": 25,
        }

    def _usage_details(self, expand: List[str]) -> dict:
        """`UsageDetails` of the current period with the arrays of the `expand` options asked for."""
        tests = self._visible_tests()
        agent_units = self._agent_unit_items()
        projected = [test.cloud_projected(self.step) for test in tests]
        details: Dict[str, Any] = {
            "quota": self._quota(),
            "cloudUnitsUsed": sum(test.cloud_used(self.step) for test in tests),
            "cloudUnitsProjected": sum(value if value is not None else test.cloud_used(self.step) for test, value in zip(tests, projected)),
            "cloudUnitsNextBillingPeriod": sum(test.cloud_units_per_step * PERIOD_STEPS for test in tests),
            "enterpriseUnitsUsed": sum(agent["enterpriseUnitsUsed"] for agent in agent_units),
            "enterpriseUnitsProjected": sum(agent["enterpriseUnitsProjected"] for agent in agent_units),
            "enterpriseUnitsNextBillingPeriod": 0,
            "connectedDevicesUnitsUsed": 1500 * (self.step + 10),
            "connectedDevicesUnitsProjected": 1500 * PERIOD_STEPS,
            "connectedDevicesUnitsNextBillingPeriod": 1500 * PERIOD_STEPS,
        }
        for field, counts in self.group_counts.items():
            details[field] = sum(count for _, count in counts)
        arrays = {
            "tests": lambda: [self._test_item(test) for test in tests],
            "enterpriseAgentUnits": lambda: agent_units,
            "endpointAgents": lambda: _group_counts(self.group_counts["endpointAgentsUsed"], "endpointAgentsUsed"),
            "endpointAgentsEssentials": lambda: _group_counts(self.group_counts["endpointAgentsEssentialsUsed"], "endpointAgentsEssentialsUsed"),
            "endpointAgentsEmbedded": lambda: _group_counts(self.group_counts["endpointAgentsEmbeddedUsed"], "endpointAgentsEmbeddedUsed"),
            "enterpriseAgents": lambda: _group_counts(self.group_counts["enterpriseAgentsUsed"], "enterpriseAgentsUsed"),
        }
        for option in expand:
            details[EXPAND_OPTIONS[option]] = arrays[EXPAND_OPTIONS[option]]()
        return details

    def _test_item(self, test: EmulatedTest) -> dict:
        item = {
            "aid": test.aid,
            "accountGroupName": test.account_group_name,
            "testId": test.test_id,
            "testName": test.test_name,
            "testType": test.test_type,
            "cloudUnitsUsed": test.cloud_used(self.step),
        }
        projected = test.cloud_projected(self.step)
        if projected is not None:
            item["cloudUnitsProjected"] = projected
        for name in test.omitted:
            del item[name]
        return item

    def _breakdown(self, test: EmulatedTest) -> dict:
        """`UnitsByTests`: the same cloud units as `/usage`, plus enterprise units and the instant flag."""
        item = self._test_item(test)
        item["enterpriseUnitsUsed"] = test.enterprise_used(self.step)
        item["enterpriseUnitsProjected"] = test.enterprise_units_per_step * PERIOD_STEPS
        item["isInstantTest"] = False
        return item

    def advance(self, steps: int = 1) -> None:
        with self.lock:
            self.step += steps

    # ----- what a test expects -----------------------------------------------------------------------

    def expected(self, stream: str, **options: Any) -> List[dict]:
        """The current period only (the API reports no other), whatever the start date; from the data model."""
        with self.lock:
            step = self.step
            tests = [test for test in self.tests if test.visible(step)]
            month_start, month_end = iso(self.month_start), iso(self.month_end)
            if stream == "thousandeyes_usage":
                record: Dict[str, Any] = {
                    "cloudUnitsUsed": sum(test.cloud_used(step) for test in tests),
                    # a test without a projection yet counts with what it used so far
                    "cloudUnitsProjected": sum(_first_not_none(test.cloud_projected(step), test.cloud_used(step)) for test in tests),
                    "cloudUnitsNextBillingPeriod": sum(test.cloud_units_per_step * PERIOD_STEPS for test in tests),
                    "enterpriseUnitsUsed": sum(agent.used(step) for agent in self.agents),
                    "enterpriseUnitsProjected": sum(agent.projected(step) for agent in self.agents),
                    "enterpriseUnitsNextBillingPeriod": 0,
                    "connectedDevicesUnitsUsed": 1500 * (step + 10),
                    "connectedDevicesUnitsProjected": 1500 * PERIOD_STEPS,
                    "connectedDevicesUnitsNextBillingPeriod": 1500 * PERIOD_STEPS,
                    "quota": {
                        "monthStart": month_start,
                        "monthEnd": month_end,
                        "cloudUnitsIncluded": 20_000_000 * self.scale,
                        "endpointAgentsIncluded": 200,
                        "endpointAgentsEssentialsIncluded": 10,
                        "endpointAgentsEmbeddedIncluded": 10,
                        "enterpriseAgentsIncluded": 25,
                    },
                    "monthStart": month_start,
                    "monthEnd": month_end,
                    "is_final": False,  # the open billing period keeps changing until it ends
                }
                for field, counts in self.group_counts.items():
                    record[field] = sum(count for _, count in counts)
                return [record]
            if stream == "thousandeyes_test_usage":
                return [
                    {
                        "monthStart": month_start,
                        "aid": None if "aid" in test.omitted else test.aid,
                        "accountGroupName": test.account_group_name,
                        "testId": None if "testId" in test.omitted else test.test_id,
                        "testName": test.test_name,
                        "testType": test.test_type,
                        "cloudUnitsUsed": test.cloud_used(step),
                        "cloudUnitsProjected": test.cloud_projected(step),
                        "is_final": False,
                    }
                    for test in tests
                    # a test reported without its account group or id has no key: it cannot be delivered
                    if not {"aid", "testId"} & set(test.omitted)
                ]
        raise KeyError(stream)

    def connector_config(self, base_url: str) -> Dict[str, Any]:
        config: Dict[str, Any] = {"bearer_token": self.bearer_token, "base_url": base_url}
        if self.account_group_id:
            config["account_group_id"] = self.account_group_id
        return config

    # ----- for the benchmark -----------------------------------------------------------------------------

    route_labels = {
        "/usage": "thousandeyes_usage + thousandeyes_test_usage",
        "/usage/units/tests": "thousandeyes_test_usage (paged fallback)",
    }

    def minimum_requests(self) -> Dict[str, int]:
        """One usage request holds the period's counters and its tests."""
        return {"thousandeyes_usage + thousandeyes_test_usage": 1}

    # ----- serving -----------------------------------------------------------------------------------

    def rate_limited(self, request: Request) -> Response:
        """A 429 storm: other clients used up the window, which now resets `storm_reset_seconds` from now.

        The reset moves only once per exhausted window, so a client that retries before it sees the same
        reset again rather than a later one.
        """
        with self.lock:
            now = self.timer.time()
            if now >= self._storm_reset_at:
                self.window.exhaust(self.storm_reset_seconds)
                self._storm_reset_at = now + self.storm_reset_seconds
        _, remaining, reset = self.window.take()
        return self._served(request, self._too_many_requests(request, remaining, reset))

    def handle(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if token != self.bearer_token:
            # No organization is known yet, so no organization rate-limit headers either.
            return self._served(request, _unauthorized())
        if not self.rate_limits:
            return self._served(request, self._route(request))
        granted, remaining, reset = self.window.take()
        if not granted:
            return self._served(request, self._too_many_requests(request, remaining, reset))
        response = self._route(request)
        response.headers.extend(_rate_limit_headers(remaining, reset))
        return self._served(request, response)

    def _served(self, request: Request, response: Response) -> Response:
        reset = next((int(value) for name, value in response.headers if name == "X-Organization-Rate-Limit-Reset"), None)
        with self.lock:
            self.served.append(ServedRequest(self.timer.time(), request.path, response.status, reset))
        return response

    def _too_many_requests(self, request: Request, remaining: int, reset: float) -> Response:
        return _problem(request, 429, "Too Many Requests", "Exhausted rate limit for the organization", headers=_rate_limit_headers(remaining, reset))

    def _route(self, request: Request) -> Response:
        if request.method != "GET":
            return _problem(request, 405, "Method Not Allowed", f"{request.method} is not supported on this resource")
        path = request.path.rstrip("/")
        if path not in ("/usage", "/usage/units/tests"):
            return _problem(request, 404, "Not Found", "The requested resource does not exist")
        denied = self._authorize(request)
        if denied is not None:
            return denied
        if path == "/usage":
            return self._usage(request)
        if not self.usage_based_pricing:
            return _problem(request, 403, "Forbidden", UNITS_NEED_USAGE_BASED_PRICING)
        return self._units_by_tests(request)

    def _authorize(self, request: Request) -> Optional[Response]:
        if not self.can_view_usage:
            return _problem(request, 403, "Forbidden", "Insufficient permissions to query endpoint")
        aid = request.param("aid")
        if aid is not None and aid not in {group["aid"] for group in self.groups}:
            return _problem(request, 403, "Forbidden", f"User is not assigned to the account group with ID {aid}")
        return None

    def _usage(self, request: Request) -> Response:
        requested = [option.strip() for value in request.query.get("expand", []) for option in value.split(",") if option.strip()]
        unknown = [option for option in requested if option not in EXPAND_OPTIONS]
        if unknown:
            allowed = ", ".join(EXPAND_OPTIONS)
            return _validation_error(request, "expand", f"Invalid value '{unknown[0]}'; allowed values are {allowed}")
        expand = requested if self.expand_supported else []
        with self.lock:
            details = self._usage_details(expand)
        body = {"usage": details, "_links": {"self": {"href": request.url()}}}
        return json_response(body, content_type="application/hal+json")

    def _units_by_tests(self, request: Request) -> Response:
        problem = self._check_dates(request)
        if problem is not None:
            return problem
        offset = _offset_of(request.param("cursor"), self.seed)
        if offset is None:
            return _validation_error(request, "cursor", "Invalid cursor")
        with self.lock:
            items = [self._breakdown(test) for test in self._visible_tests()]
        page = items[offset : offset + self.page_size]
        links: Dict[str, Any] = {"self": {"href": request.url()}}
        if offset + self.page_size < len(items):
            links["next"] = {"href": request.url(cursor=_cursor(offset + self.page_size, self.seed))}
        if offset > 0:
            previous = max(0, offset - self.page_size)
            links["previous"] = {"href": request.url(cursor=_cursor(previous, self.seed) if previous else None)}
        return json_response({"breakdowns": page, "_links": links}, content_type="application/hal+json")

    def _check_dates(self, request: Request) -> Optional[Response]:
        """`startDate`/`endDate` are ISO 8601 UTC with seconds; any window inside the current period
        answers that period's totals (the emulator keeps no finer history)."""
        values: Dict[str, datetime] = {}
        for name in ("startDate", "endDate"):
            raw = request.param(name)
            if raw is None:
                continue
            try:
                values[name] = parse_iso(raw)
            except ValueError:
                return _validation_error(request, name, f"'{raw}' is not an ISO 8601 date-time such as 2022-07-17T22:00:54Z")
        if "endDate" in values and "startDate" not in values:
            return _validation_error(request, "startDate", "startDate is required with endDate")
        if "startDate" in values and values["startDate"] > values.get("endDate", utc_now()):
            return _validation_error(request, "startDate", "startDate must be before endDate")
        return None


def billing_period(now: datetime, billing_day: int) -> Tuple[datetime, datetime]:
    """The period containing `now` of a contract billed on `billing_day` (1-28) at 08:00 UTC."""
    start = now.replace(day=billing_day, hour=8, minute=0, second=0, microsecond=0)
    if start > now:
        start = _add_month(start, -1)
    return start, _add_month(start, 1)


def _add_month(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def _first_not_none(value: Optional[int], fallback: int) -> int:
    return fallback if value is None else value


def _group_counts(counts: List[Tuple[Dict[str, str], int]], field: str) -> List[dict]:
    return [{"aid": group["aid"], "accountGroupName": group["accountGroupName"], field: count} for group, count in counts]


def _cursor(offset: int, seed: int) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{stable_hex(8, seed, 'cursor', offset)}".encode()).decode().rstrip("=")


def _offset_of(cursor: Optional[str], seed: int) -> Optional[int]:
    """The offset an opaque cursor stands for; None if it is not one this server made."""
    if not cursor:
        return 0
    try:
        offset_text, signature = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        offset = int(offset_text)
    except (ValueError, UnicodeDecodeError):
        return None
    return offset if offset >= 0 and signature == stable_hex(8, seed, "cursor", offset) else None


def _rate_limit_headers(remaining: int, reset: float) -> List[Tuple[str, str]]:
    return [
        ("X-Organization-Rate-Limit-Limit", str(REQUESTS_PER_MINUTE)),
        ("X-Organization-Rate-Limit-Remaining", str(max(0, remaining))),
        ("X-Organization-Rate-Limit-Reset", str(math.ceil(reset))),
    ]


def _unauthorized() -> Response:
    return json_response(
        {"error": "invalid_token", "error_description": "Invalid access token"},
        401,
        headers=[("WWW-Authenticate", 'Bearer error="invalid_token", error_description="Invalid access token"')],
    )


def _problem(request: Request, status: int, title: str, detail: str, headers: Optional[List[Tuple[str, str]]] = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": f"/v7{request.path}", **extra}
    return json_response(body, status, headers, content_type="application/problem+json")


def _validation_error(request: Request, field: str, message: str) -> Response:
    errors = [{"code": "INVALID_PARAMETER", "field": field, "message": message}]
    return _problem(request, 400, "Bad Request", "The request has invalid parameters", errors=errors)
