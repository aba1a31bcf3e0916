"""Integration tests run the real console script as a process of its own against the emulator on 127.0.0.1
(started by integration_tests/launcher.py: forked from a server with the connector imported, or exec'd).

The image tests (marked `image`: integration_tests/test_image.py and the standard suite's
`test_docker_image_*`) run the connector in its Docker image instead, built once per session by the
`connector_image` fixture below. Where no Docker engine answers, or the image cannot be built for want of
a network (no base image to pull, no package index), they are skipped with that reason; with
SOURCE_USAGE_REQUIRE_DOCKER=1 (as in CI) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, NoReturn, Optional

import pytest

from integration_tests import launcher
from source_usage.emulator import Emulator

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator of all four vendors with rate limits on and no faults."""
    with Emulator(seed=11, scale=1, rate_limits=True) as running:
        yield running


@pytest.fixture
def meraki_emulator() -> Iterator[Emulator]:
    with Emulator(seed=11, scale=1, rate_limits=True, vendors=["meraki"]) as running:
        yield running


# ----- the Docker image ---------------------------------------------------------------------------------

IMAGE = os.environ.get("SOURCE_USAGE_IMAGE", "airbyte/source-usage:dev")
"""The tag the image tests build and run (`make image` builds the same)."""
LOCAL_BASE_IMAGE = "source-usage/local-base:bookworm"
"""What scripts/local-base-image.sh builds from Debian's packages, for machines that cannot pull Airbyte's."""
BUILD_TIMEOUT_SECONDS = 1200
NETWORK_ERRORS = re.compile(
    r"Temporary failure in name resolution|Name or service not known|no such host|Could not resolve host|"
    r"Network is unreachable|NewConnectionError|Connection refused|Read timed out|ConnectTimeoutError",
    re.IGNORECASE,
)
"""What pip (or Docker) says when the package index (or registry) cannot be reached at all: only then is a
failed build skipped as 'no network'; any other failure fails the image tests."""


def require_docker() -> bool:
    return os.environ.get("SOURCE_USAGE_REQUIRE_DOCKER") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip an image test for `reason`, or fail it where the image tests are required (CI)."""
    if require_docker():
        pytest.fail(f"{reason} (and SOURCE_USAGE_REQUIRE_DOCKER=1 requires the image tests)", pytrace=False)
    pytest.skip(reason)


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def docker_engine_problem() -> Optional[str]:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "no Docker engine: the `docker` command is not installed"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no Docker engine: `docker info` did not answer ({error})"
    if info.returncode != 0 or not info.stdout.strip():
        return f"no Docker engine: `docker info` failed: {last_line(info.stderr)}"
    return None


def image_present(image: str) -> bool:
    return docker("image", "inspect", "--format", "{{.Id}}", image).returncode == 0


def dockerfile_default_base() -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", (REPOSITORY / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile declares no default for ARG BASE_IMAGE"
    return match.group(1)


def base_image() -> str:
    """The base to build FROM: $SOURCE_USAGE_BASE_IMAGE if set; else Airbyte's pinned base if it is here
    already; else the local base of scripts/local-base-image.sh if it is here; else Airbyte's, pulled."""
    chosen = os.environ.get("SOURCE_USAGE_BASE_IMAGE")
    pinned = dockerfile_default_base()
    if not chosen:
        for candidate in (pinned, LOCAL_BASE_IMAGE):
            if image_present(candidate):
                return candidate
        chosen = pinned
    if image_present(chosen):
        return chosen
    pull = docker("pull", "--quiet", chosen, timeout=900)
    if pull.returncode != 0:
        unavailable(
            f"no network to get a base image: pulling {chosen} failed ({last_line(pull.stderr)}); "
            f"build one offline with `scripts/local-base-image.sh` (it tags {LOCAL_BASE_IMAGE}, which the "
            "image tests then use), or set SOURCE_USAGE_BASE_IMAGE"
        )
    return chosen


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str
    build_seconds: float


_session_timings: Dict[str, float] = {}


@pytest.fixture(scope="session")
def connector_image() -> BuiltImage:
    """The connector image, built once per session by scripts/build-image.sh (as `make image` builds it)."""
    problem = docker_engine_problem()
    if problem:
        unavailable(problem)
    base = base_image()
    started = time.monotonic()
    try:
        build = subprocess.run(
            ["bash", str(REPOSITORY / "scripts" / "build-image.sh")],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            env={**os.environ, "IMAGE": IMAGE, "BASE_IMAGE": base},
            cwd=REPOSITORY,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"building {IMAGE} took more than {BUILD_TIMEOUT_SECONDS} s", pytrace=False)
    seconds = time.monotonic() - started
    _session_timings["build"] = seconds
    if build.returncode != 0:
        output = build.stdout + build.stderr
        network = [line.strip() for line in output.splitlines() if NETWORK_ERRORS.search(line)]
        if network:
            unavailable(f"no network: building {IMAGE} FROM {base} could not download its dependencies: {network[-1]}")
        pytest.fail(f"building {IMAGE} FROM {base} failed:\n{output[-4000:]}", pytrace=False)
    return BuiltImage(IMAGE, base, seconds)


# ----- marking and counting the image tests ---------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: runs the connector's Docker image (needs a Docker engine; `make test-image` runs only these)"
    )
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # --dist loadfile hands the modules out in our order (LONGEST_FIRST)


# ----- spreading the tests over xdist workers ---------------------------------------------------------------
# `make test` runs -n 2 --dist loadfile: every module runs whole on one worker. A worker takes the next
# module when it is nearly done with its own; the modules are handed out longest first (LONGEST_FIRST, from
# the measured wall times of the suite), so that the many short ones at the end fill both workers to the
# end instead of one long module starting last. (xdist's own order, most tests first, is switched off in
# pytest_configure.) Under --dist loadgroup the modules in ONE_WORKER stay on one worker each and every other
# test is spread on its own.

LONGEST_FIRST = (
    "integration_tests/test_image.py",  # builds the image (minutes) when a Docker engine runs; else skipped at once
    "integration_tests/test_pyairbyte.py",
    "integration_tests/test_hostile.py",
    "integration_tests/test_launcher.py",
    "integration_tests/test_demo.py",
    "integration_tests/test_emnify.py",
    "integration_tests/test_commands.py",
    "integration_tests/test_meltano.py",
    "unit_tests/test_emulator_emnify.py",
    "integration_tests/test_example_plugin.py",
    "integration_tests/test_signals.py",
    "integration_tests/test_fleet.py",
    "integration_tests/test_reliability.py",
    "unit_tests/test_emulator_meraki.py",
    "integration_tests/test_singer.py",
    "integration_tests/test_thousandeyes.py",
    "integration_tests/test_twilio.py",
    "integration_tests/test_report_browser.py",
    "integration_tests/test_typing.py",
    "integration_tests/test_meraki.py",
    "integration_tests/test_ledger.py",
)
"""Then the other integration modules, then the other unit test modules, each in collection order."""

ONE_WORKER = (
    # module: why its tests stay on one worker under --dist loadgroup.
    ("integration_tests/test_pyairbyte.py", "module fixtures: the warehouses, synced once (a minute and more)"),
    ("integration_tests/test_meltano.py", "Meltano installed and checked once per session"),
    ("integration_tests/test_standard_suite.py", "writes fixed files under integration_tests/.generated/ (locked)"),
    ("integration_tests/test_typing.py", "module fixtures: one full read, its catalog and schemas"),
    ("integration_tests/test_meraki.py", "module fixtures: emulators synced once"),
    ("integration_tests/test_image.py", "the image, built once per session"),
    ("unit_tests/test_singer.py", "module fixture"),
)
"""Under --dist loadgroup every other test is scheduled on its own, on whichever worker is free."""


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """The standard suite's image tests (`test_docker_image_*`) count as image tests too. The modules in
    ONE_WORKER get an xdist group each (--dist loadgroup keeps a group on one worker). The tests are ordered
    module by module: LONGEST_FIRST, then the other integration tests, then the unit tests."""
    groups = {module for module, _ in ONE_WORKER}
    rank = {module: position for position, module in enumerate(LONGEST_FIRST)}
    for item in items:
        if item.name.startswith("test_docker_image"):
            item.add_marker(pytest.mark.image)
        if _module_of(item) in groups:
            item.add_marker(pytest.mark.xdist_group(_module_of(item)))

    def order(indexed: tuple) -> tuple:
        position, item = indexed
        module = _module_of(item)
        tier = rank.get(module, len(LONGEST_FIRST) + (0 if module.startswith("integration_tests/") else 1))
        return (tier, position)

    items[:] = [item for _, item in sorted(enumerate(items), key=order)]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop this process's fork server (the launcher's), so that it and its children are reaped here."""
    launcher.shutdown()


_image_outcomes: Dict[str, str] = {}
_image_seconds: List[float] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "image" not in report.keywords:
        return
    _image_seconds.append(report.duration)
    if report.when == "setup":
        _image_outcomes[report.nodeid] = "passed" if report.passed else "skipped" if report.skipped else "error"
    elif report.when == "call":
        _image_outcomes[report.nodeid] = report.outcome
    elif report.failed:
        _image_outcomes[report.nodeid] = "error"


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _image_outcomes:
        return
    counts: Dict[str, int] = {}
    for outcome in _image_outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    tally = ", ".join(f"{counts[name]} {name}" for name in ("passed", "skipped", "failed", "error") if name in counts)
    build = f", building the image {_session_timings['build']:.1f} s of it" if "build" in _session_timings else ""
    terminalreporter.write_line(f"image tests took {sum(_image_seconds):.1f} s ({tally}{build})")
