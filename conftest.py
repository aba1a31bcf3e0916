"""Loads the Airbyte CDK's pytest hooks for its standard connector test suite, and keeps PyAirbyte offline.

PyAirbyte reads its switches once, when it is first imported, and any test module of a worker may be the
first to import it: no registry lookup, no telemetry, no uv-managed environments, for every test.
"""

import os

for _name in ("AIRBYTE_OFFLINE_MODE", "DO_NOT_TRACK", "AIRBYTE_NO_UV"):
    os.environ.setdefault(_name, "1")

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
