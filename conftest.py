"""Loads the Airbyte CDK's pytest hooks for its standard connector test suite, and sets PyAirbyte's
environment for the whole session."""

import os

# PyAirbyte reads these once, when `airbyte` is first imported, and any test module may be the first to
# import it (on every xdist worker each one collects them all): so they are set here, before collection.
# No registry lookup (it is a network call; this machine may be offline), no telemetry, no uv-managed venvs.
for _name in ("AIRBYTE_OFFLINE_MODE", "DO_NOT_TRACK", "AIRBYTE_NO_UV"):
    os.environ.setdefault(_name, "1")

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
