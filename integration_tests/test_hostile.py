"""The connector's guarantees, proven by attacking the real `source-usage` console script with hostile servers.

Every test starts a `HostileServer` (integration_tests/hostile.py) that plays one vendor's API just well
enough to reach the attack, runs the real console script as a subprocess, and asserts what happened: the
exit code, the one-line error naming the vendor and what went wrong, what the servers received, and
generous upper bounds on the whole run's time and memory. "Another host" is a second recording server on
127.0.0.2.

Sections follow the guarantees: 1 credentials stay with their vendor, 2 every wait is bounded, 3 every
request is bounded, 4 state cannot stop a stream, 5 values are never coerced into lies, 6 secrets are
masked in every form, 7 no traceback, ever. Signals are in test_signals.py.
"""

from __future__ import annotations

import base64
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import lru_cache
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import quote, quote_plus

import pytest

from integration_tests.harness import configured_catalog
from integration_tests.hostile import (
    EMNIFY_APPLICATION_TOKEN,
    EMNIFY_PREFIX,
    MERAKI_KEY,
    MERAKI_LICENSE,
    MERAKI_ORG,
    MERAKI_PREFIX,
    SIM_SIDS,
    THOUSANDEYES_PREFIX,
    THOUSANDEYES_TOKEN,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_PREFIX,
    Exchange,
    HostileServer,
    Outcome,
    Routes,
    connector,
    day_floor,
    days_ago,
    elsewhere_recorder,
    gzip_bomb,
    iso,
    meraki_usage_histories,
    meraki_usage_point,
    parse_iso,
    play_emnify,
    play_meraki,
    play_thousandeyes,
    play_twilio,
    stream_state,
    thousandeyes_test,
    thousandeyes_usage,
    twilio_page,
    twilio_records_for,
    utc_now,
)

QUICK = {"SOURCE_USAGE_MAX_RETRIES": "1", "SOURCE_USAGE_BACKOFF_BASE_SECONDS": "0.05", "SOURCE_USAGE_BACKOFF_CAP_SECONDS": "0.2"}
DEFAULTS: Dict[str, str] = {}  # the real defaults: 120 s longest wait, 64 MiB bodies, 300 s deadline
MIB = 1024 * 1024
DEFAULT_BODY_LIMIT = 64 * MIB

PLAYS = {"meraki": play_meraki, "twilio": play_twilio, "emnify": play_emnify, "thousandeyes": play_thousandeyes}
# A stream of each vendor whose read starts with the request the attacks below answer.
FIRST_STREAM = {
    "meraki": "meraki_organizations",
    "twilio": "twilio_supersim_usage_records",
    "emnify": "emnify_endpoints",
    "thousandeyes": "thousandeyes_usage",
}
FIRST_PATH = {
    "meraki": MERAKI_PREFIX + "/organizations",
    "twilio": TWILIO_PREFIX + "/UsageRecords",
    "emnify": EMNIFY_PREFIX + "/endpoint",
    "thousandeyes": THOUSANDEYES_PREFIX + "/usage",
}
TWILIO_STREAM = "twilio_supersim_usage_records"
MERAKI_USAGE = "meraki_client_usage_histories"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


@pytest.fixture
def elsewhere() -> Iterator[HostileServer]:
    with elsewhere_recorder() as running:
        yield running


# ----- helpers -----------------------------------------------------------------------------------------


def config_for(server: HostileServer, *vendors: str, start_days_ago: float = 5, **play_options: Any) -> dict:
    config: Dict[str, Any] = {"start_date": days_ago(start_days_ago)}
    for vendor in vendors:
        config[vendor] = PLAYS[vendor](server, **play_options)
    return config


def read(config: dict, streams: Sequence[str], env: Optional[Dict[str, str]] = None, **options: Any) -> Outcome:
    catalog = configured_catalog(config, list(streams))
    return connector("read", config, catalog, env=QUICK if env is None else env, **options)


# Bounds the issue states (a far-future reset ends the read within three minutes, an endless or huge body
# within two): far above the few seconds these reads take, so they catch a hang, never a slow machine.
STATED_WAIT_BOUND = 180
STATED_BODY_BOUND = 120
RETRYING = re.compile(r"; retrying in ([0-9.]+)s$")


def waits_logged(outcome: Outcome) -> List[float]:
    """The retry waits the connector announced ("...; retrying in 6.00s"), in seconds."""
    return [float(found.group(1)) for line in outcome.run.logs() for found in [RETRYING.search(line)] if found]


def path_re(path: str) -> str:
    return re.escape(path) + "$"


def no_traceback(outcome: Outcome) -> None:
    assert "Traceback" not in outcome.output, outcome.output[-4000:]


def one_error(outcome: Outcome, *fragments: str, stream: Optional[str] = None) -> str:
    """The one-line error (a TRACE message) containing every fragment; and no traceback anywhere."""
    messages = outcome.stream_errors(stream) if stream else outcome.error_messages()
    matching = [message for message in messages if all(fragment in message for fragment in fragments)]
    assert matching, f"no error containing {fragments} among {messages}; stderr: {outcome.run.stderr[-2000:]}"
    for message in matching:
        assert "\n" not in message.strip(), message
    no_traceback(outcome)
    return matching[0]


def failed_read(outcome: Outcome) -> None:
    assert outcome.returncode == 1, (outcome.returncode, outcome.output[-3000:])


def succeeded(outcome: Outcome) -> None:
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert not outcome.errors, outcome.error_messages()
    no_traceback(outcome)


def warnings_naming(outcome: Outcome, *fragments: str) -> List[str]:
    return [line for line in outcome.warnings() if all(fragment in line for fragment in fragments)]


# ===== 1. Credentials stay with their vendor ===========================================================


def _meraki_next_link(server: HostileServer, elsewhere: HostileServer) -> Tuple[dict, str]:
    config = config_for(server, "meraki")
    link = f"<{elsewhere.url}{MERAKI_PREFIX}/organizations?perPage=9000&startingAfter=101>; rel=next"
    server.route("GET", path_re(MERAKI_PREFIX + "/organizations"), lambda ex: ex.json([MERAKI_ORG], headers={"Link": link}))
    return config, "meraki_organizations"


def _twilio_next_link(server: HostileServer, elsewhere: HostileServer) -> Tuple[dict, str]:
    config = config_for(server, "twilio", start_days_ago=2)
    next_url = f"{elsewhere.url}{TWILIO_PREFIX}/UsageRecords?PageSize=1000&Page=1&PageToken=PAhostile"
    server.route("GET", path_re(TWILIO_PREFIX + "/UsageRecords"), lambda ex: ex.json(twilio_page(twilio_records_for(ex), next_url)))
    return config, TWILIO_STREAM


def _thousandeyes_next_link(server: HostileServer, elsewhere: HostileServer) -> Tuple[dict, str]:
    # /usage without `tests` makes the connector read the tests from the HAL-paged /usage/units/tests.
    config = config_for(server, "thousandeyes", with_tests=False)
    next_href = f"{elsewhere.url}{THOUSANDEYES_PREFIX}/usage/units/tests?cursor=hostile"
    server.route(
        "GET",
        path_re(THOUSANDEYES_PREFIX + "/usage/units/tests"),
        lambda ex: ex.json({"breakdowns": [thousandeyes_test("2001")], "_links": {"self": {"href": ex.server.url + ex.path}, "next": {"href": next_href}}}),
    )
    return config, "thousandeyes_test_usage"


NEXT_LINK_ATTACKS: Dict[str, Callable[[HostileServer, HostileServer], Tuple[dict, str]]] = {
    "meraki": _meraki_next_link,
    "twilio": _twilio_next_link,
    "thousandeyes": _thousandeyes_next_link,
}


@pytest.mark.parametrize("vendor", sorted(NEXT_LINK_ATTACKS))
def test_a_next_page_link_to_another_host_is_never_requested(vendor: str, server: HostileServer, elsewhere: HostileServer) -> None:
    config, stream = NEXT_LINK_ATTACKS[vendor](server, elsewhere)

    outcome = read(config, [stream])

    assert elsewhere.received == [], "the other host must receive nothing: no credentials, no request at all"
    failed_read(outcome)
    message = one_error(outcome, f"{vendor}:", "next-page link", f"http://127.0.0.2:{elsewhere.port}", "not followed", stream=stream)
    assert "127.0.0.2" in message and "Authorization" not in message
    assert server.requests(), "the vendor's own host was asked first"


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("vendor", sorted(PLAYS))
def test_a_redirect_to_another_host_is_never_followed(vendor: str, status: int, server: HostileServer, elsewhere: HostileServer) -> None:
    config = config_for(server, vendor)
    path = FIRST_PATH[vendor]
    server.route("GET", path_re(path), lambda ex: ex.redirect(f"{elsewhere.url}{path}?stolen=1", status))

    outcome = read(config, [FIRST_STREAM[vendor]])

    assert elsewhere.received == [], "the other host must receive nothing: no credentials, no request at all"
    failed_read(outcome)
    one_error(outcome, f"{vendor}:", f"HTTP {status} redirect", f"http://127.0.0.2:{elsewhere.port}", "not followed", stream=FIRST_STREAM[vendor])
    assert len(server.requests(path_re(path))) == 1, "a refused redirect is not retried"


@pytest.mark.parametrize("status", [307, 308])
def test_the_emnify_login_redirected_to_another_host_posts_nothing_there(status: int, server: HostileServer, elsewhere: HostileServer) -> None:
    config = config_for(server, "emnify")
    server.route("POST", path_re(EMNIFY_PREFIX + "/authenticate"), lambda ex: ex.redirect(f"{elsewhere.url}{EMNIFY_PREFIX}/authenticate", status))

    outcome = read(config, ["emnify_endpoints"])

    assert elsewhere.received == [], "the application token must never leave for another host"
    logins = server.requests(path_re(EMNIFY_PREFIX + "/authenticate"), "POST")
    assert len(logins) == 1 and json.loads(logins[0].body) == {"application_token": EMNIFY_APPLICATION_TOKEN}
    assert not server.requests(path_re(EMNIFY_PREFIX + "/endpoint")), "no data request without a token"
    failed_read(outcome)
    one_error(outcome, "emnify:", "authenticate", f"HTTP {status} redirect", f"http://127.0.0.2:{elsewhere.port}", "not followed", stream="emnify_endpoints")
    assert EMNIFY_APPLICATION_TOKEN not in outcome.output


def test_a_same_origin_redirect_is_followed_with_the_credentials_kept(server: HostileServer) -> None:
    config = config_for(server, "meraki", "twilio", "emnify", "thousandeyes")
    moved = "/moved"
    for vendor, path in FIRST_PATH.items():
        server.route("GET", path_re(path), lambda ex, path=path: ex.redirect(f"{ex.server.url}{moved}{path}?{ex.received.target.partition('?')[2]}", 302))
    # The redirected paths answer what the plays answer at the original paths.
    plays = Routes(server.url)
    for play in PLAYS.values():
        play(plays)
    server.mount(moved, plays)

    outcome = read(config, list(FIRST_STREAM.values()))

    succeeded(outcome)
    for vendor, stream in FIRST_STREAM.items():
        assert outcome.run.records(stream), f"{vendor}: the redirected request's records were read"
    basic = "Basic " + base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}".encode()).decode()
    expected_auth = {
        "meraki": f"Bearer {MERAKI_KEY}",
        "twilio": basic,
        "emnify": None,  # a Bearer JWT the login issued
        "thousandeyes": f"Bearer {THOUSANDEYES_TOKEN}",
    }
    for vendor, path in FIRST_PATH.items():
        arrived = server.requests(path_re(moved + path))
        assert arrived, f"{vendor}: the redirect was followed"
        authorization = arrived[0].header("Authorization")
        if expected_auth[vendor] is None:
            assert authorization and authorization.startswith("Bearer "), f"{vendor}: the token was kept"
        else:
            assert authorization == expected_auth[vendor], f"{vendor}: the credentials arrive at the redirected path"


# ===== 2. Every wait is bounded =========================================================================

FAR_AWAY = timedelta(days=115)


def _come_back_date() -> str:
    return (utc_now() + FAR_AWAY).strftime("%Y-%m-%d")


def test_a_thousandeyes_429_with_a_reset_115_days_away_fails_at_once_saying_when_to_come_back(server: HostileServer) -> None:
    config = config_for(server, "thousandeyes")
    reset = int((utc_now() + FAR_AWAY).timestamp())
    headers = {"X-Organization-Rate-Limit-Limit": "240", "X-Organization-Rate-Limit-Remaining": "0", "X-Organization-Rate-Limit-Reset": str(reset)}
    server.route("GET", path_re(THOUSANDEYES_PREFIX + "/usage"), lambda ex: ex.json({"title": "Too Many Requests", "detail": "Exhausted rate limit for the organization"}, 429, headers))

    outcome = read(config, ["thousandeyes_usage", "thousandeyes_test_usage"], env=DEFAULTS)

    failed_read(outcome)
    come_back = _come_back_date()
    one_error(outcome, "thousandeyes:", "429", "115.0 days", "SOURCE_USAGE_MAX_WAIT_SECONDS", f"try again after {come_back}", stream="thousandeyes_usage")
    assert len(server.requests(path_re(THOUSANDEYES_PREFIX + "/usage"))) == 1, "a wait that long is not attempted: no second request"
    assert not waits_logged(outcome), "nothing was waited for"
    assert outcome.seconds < STATED_WAIT_BOUND, "the issue's bound: within three minutes (it takes seconds)"


def test_a_thousandeyes_budget_spent_until_a_reset_115_days_away_fails_the_next_request_at_once(server: HostileServer) -> None:
    config = config_for(server, "thousandeyes", with_tests=False)
    reset = int((utc_now() + FAR_AWAY).timestamp())
    headers = {"X-Organization-Rate-Limit-Limit": "240", "X-Organization-Rate-Limit-Remaining": "0", "X-Organization-Rate-Limit-Reset": str(reset)}
    server.route("GET", path_re(THOUSANDEYES_PREFIX + "/usage"), lambda ex: ex.json(thousandeyes_usage(with_tests=False), headers=headers))

    outcome = read(config, ["thousandeyes_usage", "thousandeyes_test_usage"], env=DEFAULTS)

    failed_read(outcome)
    assert len(outcome.run.records("thousandeyes_usage")) == 1, "the request that spent the budget succeeded"
    one_error(outcome, "thousandeyes:", "budget is spent", "115.0 days", f"try again after {_come_back_date()}", stream="thousandeyes_test_usage")
    assert server.requests(path_re(THOUSANDEYES_PREFIX + "/usage/units/tests")) == [], "the next request waits for nothing and is not sent"
    assert not waits_logged(outcome), "nothing was waited for"
    assert outcome.seconds < STATED_WAIT_BOUND, "the issue's bound: within three minutes (it takes seconds)"


@pytest.mark.parametrize("vendor", ["meraki", "twilio"])
def test_a_429_asking_for_a_retry_after_999999_seconds_fails_at_once_saying_when_to_come_back(vendor: str, server: HostileServer) -> None:
    config = config_for(server, vendor)
    path = FIRST_PATH[vendor]
    server.route("GET", path_re(path), lambda ex: ex.json({"errors": ["API rate limit exceeded for organization"]}, 429, {"Retry-After": "999999"}))

    outcome = read(config, [FIRST_STREAM[vendor]], env=DEFAULTS)

    failed_read(outcome)
    come_back = (utc_now() + timedelta(seconds=999999)).strftime("%Y-%m-%d")
    one_error(outcome, f"{vendor}:", "429", "11.6 days", "SOURCE_USAGE_MAX_WAIT_SECONDS", f"try again after {come_back}", stream=FIRST_STREAM[vendor])
    assert len(server.requests(path_re(path))) == 1, "a wait that long is not attempted: no second request"
    assert not waits_logged(outcome), "nothing was waited for"
    assert outcome.seconds < STATED_WAIT_BOUND, "the issue's bound: within three minutes (it takes seconds)"


def test_a_wait_of_a_few_seconds_is_waited_and_logged_at_info_with_its_reason(server: HostileServer) -> None:
    config = config_for(server, "meraki")
    path = MERAKI_PREFIX + "/organizations"
    answered: List[int] = []

    def rate_limited_once(ex: Exchange) -> None:
        answered.append(1)
        if len(answered) == 1:
            ex.json({"errors": ["API rate limit exceeded for organization"]}, 429, {"Retry-After": "6"})
        else:
            ex.json([MERAKI_ORG])

    server.route("GET", path_re(path), rate_limited_once)

    outcome = read(config, ["meraki_organizations"], env=DEFAULTS)

    succeeded(outcome)
    assert outcome.run.records("meraki_organizations") == [MERAKI_ORG]
    first, second = server.requests(path_re(path))
    # A lower bound only: a slow machine waits longer, never shorter; the connector that did not sleep fails.
    assert second.at - first.at >= 5.9, "asked again once, after waiting what Retry-After said"
    said = [line for line in outcome.run.logs("INFO") if "meraki" in line and "429" in line and "retrying in 6.00s" in line]
    assert said, outcome.run.logs("INFO")
    assert waits_logged(outcome) == [6.0], "waited what Retry-After said, once"


# ===== 3. Every request is bounded ======================================================================


@lru_cache(maxsize=1)
def _bomb() -> bytes:
    return gzip_bomb(512)


def _endless_chunked(ex: Exchange) -> None:
    ex.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    ex.write(b"1\r\n[\r\n")
    data = b"0," * (MIB // 2)
    frame = b"%x\r\n" % len(data) + data + b"\r\n"
    sent = 0
    while sent < 8 * 1024 * MIB and not ex.server.stopping.is_set():
        ex.write(frame)
        sent += len(data)


def _gzip_bomb(ex: Exchange) -> None:
    bomb = _bomb()
    ex.send(200, bomb, {"Content-Encoding": "gzip", "Content-Length": str(len(bomb))})


def _two_gigabytes_announced(ex: Exchange) -> None:
    ex.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n")
    ex.write(b"[" + b"0," * 4096)
    ex.hold(60)


BODY_ATTACKS = {
    "endless chunked body": ("twilio", _endless_chunked, "answered with a body that grew, over the limit of 67,108,864 bytes"),
    "gzip bomb": ("meraki", _gzip_bomb, "answered with a body that grew, over the limit of 67,108,864 bytes"),
    "Content-Length 2 GiB": ("emnify", _two_gigabytes_announced, "answered with a body that announces 2,147,483,648 bytes, over the limit of 67,108,864 bytes"),
}


@pytest.mark.parametrize("attack", sorted(BODY_ATTACKS))
def test_a_body_over_the_limit_stops_at_the_limit_without_retry_or_memory_growth(attack: str, server: HostileServer) -> None:
    vendor, handler, problem = BODY_ATTACKS[attack]
    if handler is _gzip_bomb:
        _bomb()  # compressed before the connector starts, not while it waits
    config = config_for(server, vendor)
    path = FIRST_PATH[vendor]
    server.route("GET", path_re(path), handler)

    outcome = read(config, [FIRST_STREAM[vendor]], env=DEFAULTS)

    failed_read(outcome)
    one_error(outcome, f"{vendor}: GET {server.url}{path} {problem}", "SOURCE_USAGE_MAX_BODY_BYTES", stream=FIRST_STREAM[vendor])
    assert len(server.requests(path_re(path))) == 1, "a body over the limit is not asked for again"
    assert not waits_logged(outcome), "nothing was retried"
    assert outcome.peak_rss_mb < 500, f"peak RSS {outcome.peak_rss_mb:.0f} MB"
    assert outcome.seconds < STATED_BODY_BOUND, "the issue's bound: within two minutes (it takes seconds)"


DRIP_SECONDS = 0.25  # a byte this often: every socket read succeeds long before its timeout (60 s)


def _drip_body(ex: Exchange) -> None:
    ex.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n")
    for byte in "[" + " " * 1999:  # 500 s of body
        if not ex.sleep(DRIP_SECONDS):
            return
        ex.write(byte)


def _drip_headers(ex: Exchange) -> None:
    ex.write("HTTP/1.1 200 OK\r\n")
    for byte in "X-Dripping: " + "a" * 2000:  # 500 s of one header
        if not ex.sleep(DRIP_SECONDS):
            return
        ex.write(byte)


@pytest.mark.parametrize("drip", [pytest.param(_drip_body, id="body"), pytest.param(_drip_headers, id="headers")])
def test_a_server_dripping_bytes_is_cut_off_at_the_request_deadline(drip: Callable[[Exchange], None], server: HostileServer) -> None:
    config = config_for(server, "meraki")
    path = MERAKI_PREFIX + "/organizations"
    server.route("GET", path_re(path), drip)

    # A 2 s deadline: the drip would take minutes, and no single read of it ever times out.
    outcome = read(config, ["meraki_organizations"], env={**QUICK, "SOURCE_USAGE_REQUEST_DEADLINE_SECONDS": "2"})

    failed_read(outcome)
    one_error(outcome, f"meraki: GET {server.url}{path} did not complete within 2 s (SOURCE_USAGE_REQUEST_DEADLINE_SECONDS)", stream="meraki_organizations")
    assert len(server.requests(path_re(path))) == 1, "an attempt cut off at its deadline is not retried"
    assert not waits_logged(outcome), "nothing was retried"


def test_an_emnify_listing_announcing_a_billion_pages_fails_at_once(server: HostileServer) -> None:
    config = config_for(server, "emnify")
    path = EMNIFY_PREFIX + "/endpoint"
    server.route("GET", path_re(path), lambda ex: ex.json([{"id": 1, "name": "device-1"}], headers={"X-Total-Pages": "1000000000", "X-Current-Page": ex.query.get("page", "1")}))

    outcome = read(config, ["emnify_endpoints"])

    failed_read(outcome)
    one_error(outcome, "emnify:", "/endpoint", "announces 1,000,000,000 pages", "giving up", stream="emnify_endpoints")
    assert len(server.requests(path_re(path))) == 1


def test_an_endless_chain_of_fresh_meraki_next_links_ends_at_the_page_cap(server: HostileServer) -> None:
    config = config_for(server, "meraki")
    path = MERAKI_PREFIX + "/organizations"

    def forever(ex: Exchange) -> None:
        after = int(ex.query.get("startingAfter", "0")) + 1
        link = f"<{ex.server.url}{path}?perPage=9000&startingAfter={after}>; rel=next"
        ex.json([{**MERAKI_ORG, "id": str(1000 + after)}], headers={"Link": link})

    server.route("GET", path_re(path), forever)

    outcome = read(config, ["meraki_organizations"])

    failed_read(outcome)
    one_error(outcome, "meraki:", "/organizations", "kept sending next pages past 100 pages", "giving up", stream="meraki_organizations")
    assert len(server.requests(path_re(path))) == 100


# ===== 4. State can't stop a stream ====================================================================


def _twilio_days(outcome: Outcome) -> List[str]:
    return sorted({record["start_time"] for record in outcome.run.records(TWILIO_STREAM)})


def test_a_twilio_state_in_2099_still_reads_the_recent_records(server: HostileServer) -> None:
    config = config_for(server, "twilio", start_days_ago=10)

    outcome = read(config, [TWILIO_STREAM], state=stream_state(TWILIO_STREAM, {"start_time": "2099-01-01T00:00:00Z"}))

    succeeded(outcome)
    today = day_floor(utc_now())
    recent = [iso(today - timedelta(days=days)) for days in (2, 1, 0)]  # the 48-hour lookback before "now"
    assert set(recent) <= set(_twilio_days(outcome)), _twilio_days(outcome)
    assert all(parse_iso(day) >= today - timedelta(days=2) for day in _twilio_days(outcome)), "read from now minus the lookback"
    assert len(warnings_naming(outcome, TWILIO_STREAM, "later than now")) == 1, outcome.warnings()
    final = outcome.run.state_messages[-1]["stream"]["stream_state"]
    assert parse_iso(final["start_time"]) <= utc_now(), "the state is clamped back from 2099 to now"


def test_a_meraki_network_state_in_2099_still_reads_the_recent_usage(server: HostileServer) -> None:
    config = config_for(server, "meraki", start_days_ago=10)
    state = {"states": [{"partition": {"networkId": "N_1"}, "cursor": {"ts": "2099-01-01T00:00:00Z"}}]}

    outcome = read(config, [MERAKI_USAGE], state=stream_state(MERAKI_USAGE, state))

    succeeded(outcome)
    today = iso(day_floor(utc_now()))
    assert today in {record["ts"] for record in outcome.run.records(MERAKI_USAGE)}
    assert len(warnings_naming(outcome, MERAKI_USAGE, "later than now")) == 1, outcome.warnings()
    (window,) = {request.query["t0"] for request in server.requests(r"/usageHistories$")}
    assert parse_iso(window) >= utc_now() - timedelta(days=2), "read from now minus the lookback, not from 2099"


def _nested(depth: int) -> str:
    return '{"start_time": ' * depth + '"2026-01-01T00:00:00Z"' + "}" * depth


UNUSABLE_STATES = {
    "year 0001": ("stream", {"start_time": "0001-01-01T00:00:00Z"}, "not timestamps between 1970 and now"),
    "a number": ("stream", {"start_time": 1767225600}, "not timestamps between 1970 and now"),
    "a list": ("stream", {"start_time": ["2026-01-01T00:00:00Z"]}, "not timestamps between 1970 and now"),
    "the whole state a list": ("file", '[["twilio_supersim_usage_records", "2026-01-01T00:00:00Z"]]', "Ignoring the state file"),
    "nested 10,000 levels": (
        "file",
        '[{"type": "STREAM", "stream": {"stream_descriptor": {"name": "twilio_supersim_usage_records"}, "stream_state": ' + _nested(10000) + "}}]",
        "Ignoring the state file",
    ),
}


@pytest.mark.parametrize("case", list(UNUSABLE_STATES))
def test_an_unusable_state_is_ignored_with_a_warning_and_the_stream_reads_from_the_start_date(case: str, server: HostileServer) -> None:
    config = config_for(server, "twilio", start_days_ago=4)
    kind, value, warning = UNUSABLE_STATES[case]
    options = {"state": stream_state(TWILIO_STREAM, value)} if kind == "stream" else {"state_text": value}

    outcome = read(config, [TWILIO_STREAM], **options)

    succeeded(outcome)
    assert warnings_naming(outcome, warning), outcome.warnings()
    start = day_floor(parse_iso(config["start_date"]))
    expected_days = [iso(start + timedelta(days=day)) for day in range((day_floor(utc_now()) - start).days + 1)]
    assert _twilio_days(outcome) == expected_days, "every day from the start date"
    assert len(outcome.run.records(TWILIO_STREAM)) == len(expected_days) * len(SIM_SIDS)


# ===== 5. Values are never coerced into lies ============================================================


def skipped_without_key(outcome: Outcome, stream: str, field: str) -> None:
    """The README's rule: a record whose key or cursor field is null is skipped, with one warning naming the
    stream and the field, and the sync goes on."""
    assert outcome.returncode == 0, outcome.output[-3000:]
    warnings = [line for line in outcome.run.logs("WARN") if f"{stream}: skipped" in line]
    assert len(warnings) == 1 and f"whose {field} (a primary-key or cursor field)" in warnings[0], warnings


def test_a_twilio_record_without_sim_sid_is_never_emitted_and_is_skipped_with_a_warning_naming_the_field(server: HostileServer) -> None:
    config = config_for(server, "twilio", start_days_ago=2)
    server.route(
        "GET", path_re(TWILIO_PREFIX + "/UsageRecords"), lambda ex: ex.json(twilio_page(twilio_records_for(ex, sims=[SIM_SIDS[0], None])))  # type: ignore[list-item]
    )

    outcome = read(config, [TWILIO_STREAM])

    skipped_without_key(outcome, TWILIO_STREAM, "sim_sid")
    assert outcome.run.records(TWILIO_STREAM), "the records with their key arrive"
    assert all(record.get("sim_sid") == SIM_SIDS[0] for record in outcome.run.records(TWILIO_STREAM))
    assert '"None"' not in outcome.run.stdout


def test_a_meraki_usage_point_without_ts_is_never_emitted_and_is_skipped_with_a_warning_naming_the_field(server: HostileServer) -> None:
    config = config_for(server, "meraki")
    server.route(
        "GET",
        path_re(MERAKI_PREFIX + "/networks/N_1/clients/usageHistories"),
        lambda ex: ex.json(meraki_usage_histories(ex, point=lambda day: meraki_usage_point(iso(day)) if day.day % 2 else meraki_usage_point(None))),  # type: ignore[arg-type]
    )

    outcome = read(config, [MERAKI_USAGE])

    skipped_without_key(outcome, MERAKI_USAGE, "ts")
    assert outcome.run.records(MERAKI_USAGE), "the points with their timestamp arrive"
    assert all(record.get("ts") not in (None, "None") for record in outcome.run.records(MERAKI_USAGE))
    assert '"None"' not in outcome.run.stdout


def test_a_twilio_record_with_nulls_in_non_key_fields_is_emitted_with_those_nulls(server: HostileServer) -> None:
    config = config_for(server, "twilio", start_days_ago=2)
    server.route(
        "GET", path_re(TWILIO_PREFIX + "/UsageRecords"), lambda ex: ex.json(twilio_page(twilio_records_for(ex, data_upload=None, billed_unit=None, data_total_billed="0")))
    )

    outcome = read(config, [TWILIO_STREAM])

    succeeded(outcome)
    records = outcome.run.records(TWILIO_STREAM)
    assert records
    for record in records:
        # The protocol leaves out top-level nulls: a missing field is a null, never "None", never 0.
        assert record.get("data_upload") is None and record.get("billed_unit") is None
        assert record["data_download"] == 150000 and record["data_total_billed"] == 0
    assert '"None"' not in outcome.run.stdout


def test_a_twilio_record_with_a_null_billed_unit_is_emitted_with_the_null(server: HostileServer) -> None:
    config = config_for(server, "twilio", start_days_ago=2)
    server.route(
        "GET", path_re(TWILIO_PREFIX + "/UsageRecords"), lambda ex: ex.json(twilio_page(twilio_records_for(ex, billed_unit=None, data_total_billed=None)))
    )

    outcome = read(config, [TWILIO_STREAM])

    succeeded(outcome)
    records = outcome.run.records(TWILIO_STREAM)
    assert records
    for record in records:
        assert record.get("billed_unit") is None and record.get("data_total_billed") is None
        assert record["data_upload"] == 150000
    assert '"None"' not in outcome.run.stdout


def test_a_float_in_meraki_integer_recv_fails_the_stream_naming_field_and_value_without_truncation(server: HostileServer) -> None:
    config = config_for(server, "meraki")
    server.route(
        "GET",
        path_re(MERAKI_PREFIX + "/networks/N_1/clients/usageHistories"),
        lambda ex: ex.json(meraki_usage_histories(ex, point=lambda day: meraki_usage_point(iso(day), recv=383.7))),
    )

    outcome = read(config, [MERAKI_USAGE])

    failed_read(outcome)
    assert not any(record.get("recv") in (383, 384) for record in outcome.run.records(MERAKI_USAGE)), "never truncated or rounded"
    one_error(outcome, f"{MERAKI_USAGE}: record field 'recv' has value 383.7, which is not of type integer", stream=MERAKI_USAGE)


# ===== 6. Secrets masked in every form ==================================================================

PADDED_SECRETS = {
    "meraki": ("api_key", 'mk"quo\\te-7e2d9a4c1f8b3e6d0a5c \n'),
    "twilio": ("auth_token", '  tw"quo\\te-3b8e1d6a9c4f7b2e '),
    "emnify": ("application_token", 'em"quo\\te-9f2c7a4e1b8d5c3a\n'),
    "thousandeyes": ("bearer_token", '\tte"quo\\te-6d1a8f3c9e2b7d4a  '),
}
USERINFO_PASSWORD = "pa55word1"


def _echo_credentials(ex: Exchange) -> None:
    """Answers with an error whose text repeats the credentials it received, in several forms."""
    authorization = ex.header("Authorization") or ""
    secret = authorization.partition(" ")[2]
    if authorization.startswith("Basic "):
        secret = base64.b64decode(secret).decode().partition(":")[2]
    if ex.received.body:
        secret = json.loads(ex.received.body).get("application_token", secret)
    echoed = f"you sent {authorization} = {secret} = {quote(secret, safe='')} = {quote_plus(secret)} = {json.dumps(secret)} with {ex.received.body.decode()}"
    if ex.path.startswith(MERAKI_PREFIX):
        ex.json({"errors": [echoed]}, 400)
    elif ex.path.startswith(TWILIO_PREFIX):
        ex.json({"code": 20001, "message": echoed, "status": 400}, 400)
    elif ex.path.startswith(EMNIFY_PREFIX):
        ex.json({"error_code": 1400, "error_token": "ValidationError", "message": echoed}, 422)
    else:
        ex.json({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": echoed}, 400)


def _forms(secret: str) -> List[str]:
    forms = set()
    for value in (secret, secret.strip()):
        forms |= {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)}
    return sorted(forms)


def test_secrets_padded_quoted_and_in_a_url_never_appear_in_any_output_with_debug(server: HostileServer) -> None:
    config: Dict[str, Any] = {"start_date": days_ago(2)}
    for vendor, (field, secret) in PADDED_SECRETS.items():
        config[vendor] = {**PLAYS[vendor](server), field: secret}
    config["meraki"]["base_url"] = f"http://meraki-user:{USERINFO_PASSWORD}@127.0.0.1:{server.port}{MERAKI_PREFIX}"
    server.route("*", r"", _echo_credentials)
    catalog = configured_catalog(config, list(FIRST_STREAM.values()))

    with ThreadPoolExecutor(2) as pool:
        check = pool.submit(connector, "check", config, env=QUICK, extra_args=["--debug"])
        reading = pool.submit(connector, "read", config, catalog, env=QUICK, extra_args=["--debug"])
        outcomes = [check.result(), reading.result()]

    twilio_secret = PADDED_SECRETS["twilio"][1].strip()
    forbidden = [form for _, secret in PADDED_SECRETS.values() for form in _forms(secret)]
    forbidden += [base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{twilio_secret}".encode()).decode(), USERINFO_PASSWORD, quote(USERINFO_PASSWORD)]
    for vendor in PLAYS:
        assert any(request.path.startswith(FIRST_PATH[vendor].rsplit("/", 1)[0]) for request in server.received), f"{vendor} was asked"
    # The connector strips the whitespace a copy-paste added: the server received the stripped credentials
    # (and echoed them back in its errors).
    stripped = {vendor: secret.strip() for vendor, (_, secret) in PADDED_SECRETS.items()}
    sent = {(request.path.split("/")[1], request.header("Authorization"), request.body) for request in server.received}
    assert ("meraki", f"Bearer {stripped['meraki']}", b"") in sent
    assert ("thousandeyes", f"Bearer {stripped['thousandeyes']}", b"") in sent
    assert ("twilio", "Basic " + base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{stripped['twilio']}".encode()).decode(), b"") in sent
    logins = [json.loads(body) for vendor, _, body in sent if vendor == "emnify" and body]
    assert logins and all(login == {"application_token": stripped["emnify"]} for login in logins)
    for outcome in outcomes:
        assert "Debug logs enabled" in outcome.run.stdout, "debug logging was on"
        assert "you sent" in outcome.output, "the echoed error text is in the output (masked)"
        for form in forbidden:
            assert form not in outcome.output, f"{form!r} leaked"
        no_traceback(outcome)
    status = outcomes[0].run.connection_status
    assert status and status["status"] == "FAILED"
    for vendor in PLAYS:
        assert f"{vendor}:" in status["message"]


@pytest.mark.parametrize(
    "vendor, field, secret, problem",
    [
        ("meraki", "api_key", "abcd1234\nefgh5678ijkl", "contains a control character"),
        ("twilio", "auth_token", "x7q9abc", "is too short"),
        ("thousandeyes", "bearer_token", "short1", "is too short to be a real credential"),
    ],
)
def test_a_secret_with_an_inner_newline_or_too_short_is_a_config_error_before_any_request(
    vendor: str, field: str, secret: str, problem: str, server: HostileServer
) -> None:
    config = config_for(server, vendor)
    config[vendor][field] = secret

    outcome = connector("check", config, env=QUICK)

    assert server.received == [], "no request is sent with an unusable secret"
    status = outcome.run.connection_status
    assert status and status["status"] == "FAILED", outcome.output[-2000:]
    assert f"{vendor}.{field} {problem}" in status["message"]
    assert "\n" not in status["message"]
    assert secret not in outcome.output and secret.strip() not in outcome.output
    no_traceback(outcome)


# ===== 7. No traceback, ever ============================================================================


def _garbage_rate_limit_headers(server: HostileServer) -> dict:
    config = config_for(server, "thousandeyes", "meraki")
    garbage = {"X-Organization-Rate-Limit-Limit": "lots", "X-Organization-Rate-Limit-Remaining": "none left", "X-Organization-Rate-Limit-Reset": "soon", "RateLimit-Remaining": "abc"}
    server.route("GET", path_re(THOUSANDEYES_PREFIX + "/usage"), lambda ex: ex.json(thousandeyes_usage(), headers=garbage))
    answered: List[int] = []

    def organizations(ex: Exchange) -> None:
        answered.append(1)
        if len(answered) == 1:  # a 429 whose Retry-After cannot be read: the connector backs off on its own
            ex.json({"errors": ["API rate limit exceeded for organization"]}, 429, {"Retry-After": "soon", "RateLimit-Remaining": "NaN"})
        else:
            ex.json([MERAKI_ORG], headers={"RateLimit-Remaining": "NaN", "RateLimit-Reset": "x"})

    server.route("GET", path_re(MERAKI_PREFIX + "/organizations"), organizations)
    return config


def _negative_rate_limit_headers(server: HostileServer) -> dict:
    config = config_for(server, "thousandeyes", "meraki")
    negative = {"X-Organization-Rate-Limit-Limit": "-240", "X-Organization-Rate-Limit-Remaining": "-1", "X-Organization-Rate-Limit-Reset": "-1700000000", "RateLimit-Remaining": "-5"}
    server.route("GET", path_re(THOUSANDEYES_PREFIX + "/usage"), lambda ex: ex.json(thousandeyes_usage(), headers=negative))
    server.route("GET", path_re(MERAKI_PREFIX + "/organizations"), lambda ex: ex.json([MERAKI_ORG], headers={"RateLimit-Remaining": "-1", "Retry-After": "-3"}))
    return config


def _answers(vendor: str, path: str, body: Any, status: int = 200, headers: Optional[dict] = None) -> Callable[[HostileServer], dict]:
    def setup(server: HostileServer) -> dict:
        config = config_for(server, vendor)
        if path.endswith("/authenticate"):
            server.route("POST", path_re(path), lambda ex: ex.json(body, status, headers or {}))
        else:
            server.route("GET", path_re(path), lambda ex: ex.json(body, status, headers or {}))
        return config

    return setup


def _base_url(vendor: str, url: str) -> Callable[[HostileServer], dict]:
    def setup(server: HostileServer) -> dict:
        config = config_for(server, vendor)
        config[vendor]["base_url"] = url
        return config

    return setup


@lru_cache(maxsize=None)
def _last_hour_garbage() -> dict:
    return {"last_month": "none", "current_month": [1, 2], "last_hour": {"data": {"rx": [["99:99", 1]], "tx": "nothing"}, "sms": 7}}


# case: (setup, streams, catalog change, exit code, what the error or warning says)
Case = Tuple[Callable[[HostileServer], dict], List[str], Optional[Callable[[dict], None]], int, Tuple[str, ...]]


def _rename_stream(catalog: dict) -> None:
    catalog["streams"][0]["stream"]["name"] = "meraki_unicorns"


def _incremental(catalog: dict) -> None:
    catalog["streams"][0]["sync_mode"] = "incremental"


def _custom_cursor(catalog: dict) -> None:
    catalog["streams"][0]["cursor_field"] = ["data_total"]


NO_TRACEBACK_CASES: Dict[str, Case] = {
    "non-numeric rate-limit headers": (_garbage_rate_limit_headers, ["thousandeyes_usage", "thousandeyes_test_usage", "meraki_organizations"], None, 0, ()),
    "negative rate-limit headers": (_negative_rate_limit_headers, ["thousandeyes_usage", "thousandeyes_test_usage", "meraki_organizations"], None, 0, ()),
    "meraki networks an object": (
        _answers("meraki", MERAKI_PREFIX + "/organizations/101/networks", {"networks": []}),
        ["meraki_networks"], None, 1, ("meraki: GET", "/organizations/101/networks answered an object, not a list of networks"),
    ),
    "meraki licenses an object": (
        _answers("meraki", MERAKI_PREFIX + "/organizations/101/licenses", {"licenses": [MERAKI_LICENSE]}),
        ["meraki_organization_licenses"], None, 1, ("meraki: GET", "/organizations/101/licenses answered an object, not a list of licenses"),
    ),
    "twilio body a list": (
        _answers("twilio", TWILIO_PREFIX + "/UsageRecords", [{"usage_records": []}]),
        [TWILIO_STREAM], None, 1, ("twilio: GET", "/UsageRecords answered a list, not an object with usage records"),
    ),
    "emnify endpoints a string": (
        _answers("emnify", EMNIFY_PREFIX + "/endpoint", "endpoints", headers={"X-Total-Pages": "1"}),
        ["emnify_endpoints"], None, 1, ("emnify: GET", "/endpoint answered a string, not a list of endpoints"),
    ),
    "emnify stats a list": (
        _answers("emnify", EMNIFY_PREFIX + "/endpoint/1/stats", [["last_month", 1]]),
        ["emnify_endpoint_usage_monthly"], None, 1, ("emnify: GET", "/endpoint/1/stats answered a list, not a statistics object"),
    ),
    "emnify stats of the wrong shape": (
        _answers("emnify", EMNIFY_PREFIX + "/endpoint/1/stats", _last_hour_garbage()),
        ["emnify_endpoint_usage_last_hour"], None, 1, ("emnify: last_hour has a minute label '99:99', not HH:MM",),
    ),
    "emnify login without auth_token": (
        _answers("emnify", EMNIFY_PREFIX + "/authenticate", {"token": "not-the-field-we-need"}),
        ["emnify_endpoints"], None, 1, ("emnify: POST /authenticate succeeded but its answer has no usable auth_token",),
    ),
    "thousandeyes without usage": (
        _answers("thousandeyes", THOUSANDEYES_PREFIX + "/usage", {"_links": {"self": {"href": "x"}}}),
        ["thousandeyes_usage"], None, 1, ("thousandeyes: GET /usage answered without a `usage` object",),
    ),
    "base_url http://": (_base_url("meraki", "http://"), ["meraki_organizations"], None, 1, ("Invalid config: meraki.base_url has no host name",)),
    "base_url port 99999": (_base_url("twilio", "http://127.0.0.1:99999/twilio/v1"), [TWILIO_STREAM], None, 1, ("Invalid config: twilio.base_url", "ort")),
    "base_url empty host": (_base_url("thousandeyes", "http://:8080/v7"), ["thousandeyes_usage"], None, 1, ("Invalid config: thousandeyes.base_url has no host name",)),
    "catalog with an unknown stream": (
        lambda server: config_for(server, "meraki"), ["meraki_organizations"], _rename_stream, 1,
        ("The configured catalog names streams this config does not provide: meraki_unicorns",),
    ),
    "incremental asked of a full-refresh stream": (
        lambda server: config_for(server, "meraki"), ["meraki_organizations"], _incremental, 0, ("meraki_organizations: supports full refresh only",),
    ),
    "a custom cursor": (
        lambda server: config_for(server, "twilio", start_days_ago=2), [TWILIO_STREAM], _custom_cursor, 0,
        (f"{TWILIO_STREAM}: ignoring the configured cursor ['data_total']",),
    ),
}


@pytest.mark.parametrize("case", list(NO_TRACEBACK_CASES))
def test_no_traceback_ever(case: str, server: HostileServer) -> None:
    setup, streams, change_catalog, exit_code, said = NO_TRACEBACK_CASES[case]
    catalog = configured_catalog(config_for(server, *_vendors_of(streams)), streams)  # discover sends no request
    if change_catalog is not None:
        change_catalog(catalog)
    config = setup(server)

    outcome = connector("read", config, catalog, env=QUICK)

    no_traceback(outcome)
    assert outcome.returncode == exit_code, outcome.output[-3000:]
    if exit_code == 0:
        assert not outcome.errors, outcome.error_messages()
        for stream in streams:
            assert outcome.run.records(stream), f"{stream} synced"
        if said:
            assert warnings_naming(outcome, *said), outcome.warnings()
    else:
        one_error(outcome, *said)


def _vendors_of(streams: Sequence[str]) -> List[str]:
    return sorted({stream.split("_", 1)[0] for stream in streams})

