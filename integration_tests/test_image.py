"""The Docker image Airbyte runs.

First, without Docker: the Dockerfile agrees with metadata.yaml, setup.py and the test configuration
(labels, base image, entrypoint, build context).

Then, marked `image`: the image built by the `connector_image` fixture (integration_tests/conftest.py) runs
spec, check, discover and reads in a container with `--network host`, against the emulator on the host's
loopback, also with a read-only root file system as Airbyte may run it; what it reads must equal what the
emulator holds, keyed on each stream's primary key like the other integration tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pytest
import yaml

from integration_tests.conftest import REPOSITORY, BuiltImage
from integration_tests.harness import (
    Run,
    assert_read_matches_emulator,
    configured_catalog,
    distinct_keys,
    primary_key,
    run_connector,
    start_date,
)
from source_usage.emulator import Emulator

# ----- the Dockerfile, read as text ---------------------------------------------------------------------


def dockerfile_instructions() -> List[tuple]:
    """(INSTRUCTION, arguments) of every instruction, continuation lines joined and comments left out."""
    instructions = []
    pending = ""
    for line in (REPOSITORY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage() -> List[tuple]:
    instructions = dockerfile_instructions()
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def key_values(arguments: str) -> Dict[str, str]:
    """`KEY=value KEY2="value 2"` (LABEL, ENV) as a dict."""
    return dict(item.split("=", 1) for item in shlex.split(arguments))


def dockerfile_labels() -> Dict[str, str]:
    labels: Dict[str, str] = {}
    for keyword, arguments in final_stage():
        if keyword == "LABEL":
            labels.update(key_values(arguments))
    return labels


def dockerfile_env() -> Dict[str, str]:
    env: Dict[str, str] = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            env.update(key_values(arguments))
    return env


def dockerfile_entrypoint() -> List[str]:
    [entrypoint] = [arguments for keyword, arguments in final_stage() if keyword == "ENTRYPOINT"]
    return json.loads(entrypoint)


def metadata() -> Dict[str, Any]:
    return yaml.safe_load((REPOSITORY / "metadata.yaml").read_text())["data"]


def setup_py() -> str:
    return (REPOSITORY / "setup.py").read_text()


def setup_version() -> str:
    match = re.search(r'^VERSION = "([^"]+)"', setup_py(), re.MULTILINE)
    assert match, "setup.py declares no VERSION"
    return match.group(1)


def console_scripts() -> Dict[str, str]:
    return dict(re.findall(r'"([\w-]+)=([\w.]+:\w+)"', setup_py()))


# ----- without Docker -------------------------------------------------------------------------------------


def test_image_labels_agree_with_metadata_and_setup() -> None:
    labels = dockerfile_labels()
    assert labels["io.airbyte.name"] == metadata()["dockerRepository"]
    assert labels["io.airbyte.version"] == metadata()["dockerImageTag"] == setup_version()


def test_default_base_image_is_the_one_metadata_pins_and_every_stage_builds_on_it() -> None:
    instructions = dockerfile_instructions()
    [default] = [arguments for keyword, arguments in instructions if keyword == "ARG" and arguments.startswith("BASE_IMAGE=")]
    assert default.split("=", 1)[1] == metadata()["connectorBuildOptions"]["baseImage"]
    stages = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    assert stages and set(stages) == {"${BASE_IMAGE}"}


def test_entrypoint_is_the_airbyte_console_script_run_as_the_base_images_user() -> None:
    entrypoint = dockerfile_entrypoint()
    assert entrypoint == [dockerfile_env()["AIRBYTE_ENTRYPOINT"]]
    assert console_scripts()[Path(entrypoint[0]).name] == "source_usage.console:airbyte_main"
    assert "USER" not in {keyword for keyword, _ in final_stage()}, "the final stage must run as the base image's user"


def test_build_context_is_only_setup_py_the_readme_the_package_and_its_schemas() -> None:
    patterns = [line.strip() for line in (REPOSITORY / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "the .dockerignore must leave everything out first, then name what the image needs"
    included = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    assert included == {"setup.py", "README.md", "source_usage", "schemas"}
    copied = {
        source
        for keyword, arguments in dockerfile_instructions()
        if keyword == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }
    assert copied <= included, f"the Dockerfile copies what the build context leaves out: {copied - included}"


def test_the_standard_suite_make_and_the_image_tests_name_the_same_image() -> None:
    from integration_tests.conftest import IMAGE

    acceptance = yaml.safe_load((REPOSITORY / "acceptance-test-config.yml").read_text())
    [makefile_image] = re.findall(r"^IMAGE \?= (\S+)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    if "SOURCE_USAGE_IMAGE" not in os.environ:
        assert IMAGE == makefile_image
    assert acceptance["connector_image"] == makefile_image
    assert makefile_image.split(":")[0] == metadata()["dockerRepository"]


# ----- running the image ----------------------------------------------------------------------------------

VENV = "/airbyte/integration_code/venv"
READ_ONLY = ["--read-only", "--tmpfs", "/tmp"]
"""How Airbyte may run an image: nothing writable but a temporary directory."""


def run_in_image(
    image: str,
    command: str,
    config: Optional[Mapping[str, Any]] = None,
    catalog: Optional[Mapping[str, Any]] = None,
    state: Optional[Sequence[Mapping[str, Any]]] = None,
    read_only: bool = False,
    timeout: float = 600,
) -> Run:
    """`docker run` of the connector on the host's network, its input files mounted read-only."""
    with tempfile.TemporaryDirectory() as folder:
        docker_args = ["docker", "run", "--rm", "--network", "host", *(READ_ONLY if read_only else [])]
        connector_args = [command]
        for name, content in (("config", config), ("catalog", catalog), ("state", state)):
            if content is not None:
                path = Path(folder) / f"{name}.json"
                path.write_text(json.dumps(content))
                path.chmod(0o644)  # the image runs as a non-root user
                docker_args += ["--volume", f"{path}:/secrets/{name}.json:ro"]
                connector_args += [f"--{name}", f"/secrets/{name}.json"]
        completed = subprocess.run([*docker_args, image, *connector_args], capture_output=True, text=True, timeout=timeout)
    messages = []
    for line in completed.stdout.splitlines():
        if line.strip().startswith("{"):
            try:
                messages.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return Run(completed.returncode, messages, completed.stdout, completed.stderr)


def docker_json(*args: str) -> Any:
    completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(completed.stdout)


def only(messages: List[dict], kind: str) -> dict:
    found = [message for message in messages if message.get("type") == kind]
    assert len(found) == 1, f"{len(found)} {kind} messages"
    return found[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def repository_package_files() -> Dict[str, str]:
    """Every file of the package as the wheel holds it (schemas through the symlink), with its digest."""
    package = REPOSITORY / "source_usage"
    files = {}
    for path in package.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(package).as_posix()] = sha256(path.read_bytes())
    for path in (REPOSITORY / "schemas").glob("*.json"):  # rglob does not follow the schemas symlink
        files[f"schemas/{path.name}"] = sha256(path.read_bytes())
    return files


INVENTORY = f"""
import hashlib, json, os, pathlib, sysconfig
package = pathlib.Path(sysconfig.get_paths()["purelib"]) / "source_usage"
files = {{p.relative_to(package).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts}}
tests = [str(p) for p in pathlib.Path("{VENV}").rglob("tests") if p.is_dir()]
stray = [p for p in ("/build", "/airbyte/integration_code/setup.py", "/airbyte/integration_code/README.md",
                     "/airbyte/integration_code/source_usage", "/airbyte/integration_code/unit_tests",
                     "/airbyte/integration_code/integration_tests") if os.path.exists(p)]
print(json.dumps({{"package": str(package), "files": files, "tests": tests, "stray": stray}}))
"""


@pytest.mark.image
class TestImage:
    def test_is_airbyte_correct_labels_entrypoint_and_the_base_images_non_root_user(self, connector_image: BuiltImage) -> None:
        [image] = docker_json("image", "inspect", connector_image.tag)
        [base] = docker_json("image", "inspect", connector_image.base)
        labels = image["Config"]["Labels"]
        assert labels["io.airbyte.name"] == metadata()["dockerRepository"]
        assert labels["io.airbyte.version"] == metadata()["dockerImageTag"] == setup_version()
        env = dict(variable.split("=", 1) for variable in image["Config"]["Env"])
        assert image["Config"]["Entrypoint"] == [env["AIRBYTE_ENTRYPOINT"]]
        assert image["Config"]["User"] == base["Config"]["User"]
        user = subprocess.run(
            ["docker", "run", "--rm", "--network", "host", "--entrypoint", "id", connector_image.tag, "-u"],
            capture_output=True, text=True, timeout=60, check=True,
        )
        assert int(user.stdout) != 0, "the connector must not run as root"

    def test_adds_one_layer_over_the_base_that_holds_only_the_package_its_schemas_and_spec(self, connector_image: BuiltImage) -> None:
        history = [line.split("\t") for line in subprocess.run(
            ["docker", "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", connector_image.tag],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.splitlines()]
        base_layers = len(subprocess.run(
            ["docker", "history", "--quiet", connector_image.base], capture_output=True, text=True, timeout=60, check=True
        ).stdout.splitlines())
        ours = history[: len(history) - base_layers]
        with_content = [created_by for size, created_by in ours if size not in ("0B", "0")]
        assert len(with_content) == 1 and f"in {VENV}" in with_content[0], with_content

        inventory = subprocess.run(
            ["docker", "run", "--rm", "--network", "host", "--entrypoint", f"{VENV}/bin/python", connector_image.tag, "-c", INVENTORY],
            capture_output=True, text=True, timeout=120, check=True,
        )
        found = json.loads(inventory.stdout)
        assert found["files"] == repository_package_files(), "the installed package differs from the repository's"
        assert found["tests"] == [], "test suites in the image"
        assert found["stray"] == [], "build files in the image"

    @pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only-root"])
    def test_spec_is_the_connectors(self, connector_image: BuiltImage, read_only: bool) -> None:
        run = run_in_image(connector_image.tag, "spec", read_only=read_only)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert only(run.messages, "SPEC")["spec"] == only(run_connector("spec").messages, "SPEC")["spec"]

    def test_check_succeeds_with_good_credentials(self, connector_image: BuiltImage, emulator: Emulator) -> None:
        run = run_in_image(connector_image.tag, "check", emulator.config())
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.connection_status == {"status": "SUCCEEDED"}

    def test_check_names_each_rejected_credential(self, connector_image: BuiltImage, emulator: Emulator) -> None:
        config = emulator.config()
        config["meraki"]["api_key"] = "f" * 40
        config["emnify"]["application_token"] = "not-a-token"
        run = run_in_image(connector_image.tag, "check", config)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.connection_status["status"] == "FAILED"
        assert [line.split(":")[0] for line in run.connection_status["message"].splitlines()] == ["meraki", "emnify"]
        assert "f" * 40 not in run.stdout + run.stderr and "not-a-token" not in run.stdout + run.stderr

    def test_discover_is_the_connectors_catalog(self, connector_image: BuiltImage, emulator: Emulator) -> None:
        run = run_in_image(connector_image.tag, "discover", emulator.config())
        assert run.returncode == 0, run.stderr[-3000:]
        catalog = only(run.messages, "CATALOG")["catalog"]
        assert catalog == only(run_connector("discover", emulator.config()).messages, "CATALOG")["catalog"]
        assert sorted(stream["name"] for stream in catalog["streams"]) == [
            "emnify_endpoint_usage_daily", "emnify_endpoint_usage_last_hour", "emnify_endpoint_usage_monthly", "emnify_endpoints",
            "meraki_client_usage_histories", "meraki_network_clients", "meraki_networks", "meraki_organization_licenses",
            "meraki_organizations", "thousandeyes_test_usage", "thousandeyes_usage", "twilio_supersim_usage_records", "usage_ledger",
        ]

    @pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only-root"])
    def test_full_read_of_every_stream_equals_what_the_emulator_holds(
        self, connector_image: BuiltImage, emulator: Emulator, read_only: bool
    ) -> None:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config)
        run = run_in_image(connector_image.tag, "read", config, catalog, read_only=read_only)
        assert_read_matches_emulator(run, emulator, catalog, holds_records=True, start_date=config["start_date"])

    def test_incremental_read_continues_from_the_state_file_of_the_first(self, connector_image: BuiltImage, emulator: Emulator) -> None:
        config = emulator.config(start_date=start_date())
        catalog = configured_catalog(config)
        first = run_in_image(connector_image.tag, "read", config, catalog)
        assert first.returncode == 0 and not first.errors, first.stderr[-3000:]
        assert first.final_state(), "the first read emitted no state"

        emulator.advance(1)
        second = run_in_image(connector_image.tag, "read", config, catalog, state=first.final_state(), read_only=True)

        assert second.returncode == 0 and not second.errors, second.stderr[-3000:]
        for entry in catalog["streams"]:
            if entry["sync_mode"] != "incremental":
                continue
            stream = entry["stream"]["name"]
            pk = primary_key(catalog, stream)
            expected = distinct_keys(emulator.expected(stream, start_date=config["start_date"]), pk)
            delivered = distinct_keys(first.records(stream), pk) | distinct_keys(second.records(stream), pk)
            assert expected <= delivered, f"{stream}: {len(expected - delivered)} records never delivered"
        # The state was read from the mounted file: the usage streams re-read only their lookback.
        for stream in ("meraki_client_usage_histories", "twilio_supersim_usage_records"):
            assert 0 < len(second.records(stream)) < len(first.records(stream)) / 2, (
                f"{stream}: {len(second.records(stream))} records in the second read, {len(first.records(stream))} in the first"
            )
