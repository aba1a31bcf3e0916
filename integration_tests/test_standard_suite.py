"""The Airbyte CDK's standard source tests (spec, check, discover, basic read), offline against the emulator.

Its image tests (`test_docker_image_*`, marked `image`) run against the image that the `connector_image`
fixture builds from our Dockerfile (integration_tests/conftest.py), never one the CDK would build itself:
that needs a Dockerfile template from GitHub and a base image from Docker Hub. The CDK starts its
containers without a network option; here they get `--network host`, the only network they may use, so
that they reach the emulator on the host's loopback. The spec backward-compatibility test compares with
the spec published in Airbyte's connector registry: without a network it is skipped, saying so.
"""

from __future__ import annotations

import fcntl
import json
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, List, Literal, Union
from urllib.parse import urlparse

import pytest
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests import docker_base

from integration_tests.conftest import BuiltImage
from source_usage import SourceUsage
from source_usage.emulator import Emulator

GENERATED = Path(__file__).parent / ".generated"


@pytest.fixture(scope="module", autouse=True)
def emulated_vendors() -> Iterator[Emulator]:
    """Starts the emulator and writes the configs acceptance-test-config.yml points at. Those paths are fixed
    and hold this emulator's port, so the module holds a lock on them while it runs: `make test` keeps the
    module on one worker (--dist loadfile), and a second run in the same checkout, or another distribution
    mode, waits for the lock instead of pointing these tests at another run's emulator."""
    GENERATED.mkdir(exist_ok=True)
    with open(GENERATED / ".lock", "w") as lock, Emulator(seed=5, scale=1, rate_limits=True) as emulator:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = emulator.config()
        (GENERATED / "config.json").write_text(json.dumps(config, indent=2))
        invalid = json.loads(json.dumps(config))
        invalid["meraki"]["api_key"] = "0000000000000000000000000000000000000000"
        (GENERATED / "invalid_config.json").write_text(json.dumps(invalid, indent=2))
        yield emulator


def on_host_network(run: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps the CDK's docker command runner: `docker run` gets `--network host`."""

    def wrapped(cmd: List[str], *args: Any, **kwargs: Any) -> Any:
        if cmd[:2] == ["docker", "run"] and "--network" not in cmd:
            cmd = ["docker", "run", "--network", "host", *cmd[2:]]
        return run(cmd, *args, **kwargs)

    return wrapped


def registry_unreachable() -> Union[str, None]:
    """Why Airbyte's connector registry cannot be reached from here, or None."""
    try:
        from airbyte_cdk.test.standard_tests._spec_compatibility import REGISTRY_ENTRY_URL_TEMPLATE

        host = urlparse(REGISTRY_ENTRY_URL_TEMPLATE).hostname or "connectors.airbyte.com"
    except ImportError:
        host = "connectors.airbyte.com"
    try:
        address = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)[0][4]
        socket.create_connection(address[:2], timeout=5).close()
    except OSError as error:
        return f"{host} ({error})"
    return None


class TestSourceUsage(SourceTestSuiteBase):
    connector = SourceUsage

    @pytest.fixture
    def connector_image_override(self, connector_image: BuiltImage) -> str:
        """The image tests run the image our Dockerfile builds (skipped without a Docker engine)."""
        return connector_image.tag

    @pytest.fixture
    def read_from_streams(self, request: pytest.FixtureRequest) -> Union[Literal["all", "none", "default"], List[str]]:
        """The image's read covers every stream unless --read-from-streams says otherwise (the CDK's
        default is to skip it)."""
        option = request.config.getoption("--read-from-streams")
        if option is None or option.lower() == "all":
            return "all"
        if option.lower() in ("false", "none"):
            return "none"
        if option.lower() in ("true", "suggested", "default"):
            return "default"
        return option.split(",")

    @pytest.fixture(autouse=True)
    def containers_on_host_network(self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
        if not request.node.name.startswith("test_docker_image"):
            return
        if request.node.name.startswith("test_docker_image_spec_backward_compatibility"):
            unreachable = registry_unreachable()
            if unreachable:
                pytest.skip(
                    f"no network: Airbyte's connector registry cannot be reached, {unreachable}, so there is no "
                    "published spec to compare the image's with"
                )
        for name in ("run_docker_airbyte_command", "run_docker_command"):
            if not hasattr(docker_base, name):
                pytest.skip(f"this airbyte-cdk has no docker_base.{name} to give its containers --network host")
            monkeypatch.setattr(docker_base, name, on_host_network(getattr(docker_base, name)))
