"""The connector's identity agrees across setup.py, metadata.yaml and the Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def setup_version() -> str:
    return re.search(r'^VERSION = "([^"]+)"', (ROOT / "setup.py").read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]


def metadata() -> dict:
    return yaml.safe_load((ROOT / "metadata.yaml").read_text())["data"]


def test_the_version_in_metadata_yaml_is_the_package_version() -> None:
    assert metadata()["dockerImageTag"] == setup_version()


def test_the_dockerfile_labels_the_same_version_and_base_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"LABEL io.airbyte.version={setup_version()}" in dockerfile
    assert f"ARG BASE_IMAGE={metadata()['connectorBuildOptions']['baseImage']}" in dockerfile
    assert 'AIRBYTE_ENTRYPOINT="source-usage"' in dockerfile


def test_metadata_declares_a_python_api_source_allowed_to_reach_the_vendors() -> None:
    data = metadata()
    assert (data["connectorType"], data["connectorSubtype"]) == ("source", "api")
    assert "language:python" in data["tags"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", data["definitionId"])
    hosts = set(data["allowedHosts"]["hosts"])
    assert {"api.meraki.com", "supersim.twilio.com", "cdn.emnify.net", "api.thousandeyes.com"} <= hosts


def test_every_discovered_stream_has_its_schema_file_in_the_package() -> None:
    import pkgutil

    from source_usage.source import SourceUsage

    config = {
        "meraki": {"api_key": "packaging-test-meraki-key"},
        "twilio": {"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "packaging-test-twilio-token"},
        "emnify": {"application_token": "packaging-test-emnify-token"},
        "thousandeyes": {"bearer_token": "packaging-test-thousandeyes-token"},
    }
    streams = {stream.name for stream in SourceUsage().streams(config)}
    assert streams == {path.stem for path in (ROOT / "schemas").glob("*.json")}
    for name in streams:
        assert pkgutil.get_data("source_usage", f"schemas/{name}.json"), name
