"""The example vendor plugin (examples/usage-example-vendor), installed as a separate package, runs its tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "usage-example-vendor"


def test_the_example_plugin_installs_beside_the_connector_and_its_own_tests_pass(tmp_path: Path) -> None:
    """Installed into a folder of its own (as `pip install` would into a site-packages), the plugin is found
    through its entry point: `spec` and `discover` show it, and it reads from its tiny local server."""
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(EXAMPLE), str(EXAMPLE / "tests")],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=EXAMPLE,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "4 passed" in tests.stdout
