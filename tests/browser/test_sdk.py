"""The TypeScript SDK's own tests (web/sdk/test: the shared vectors and its pure logic), run
with node's test runner so that CI runs them with everything else."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from region.web import WEB_ROOT

pytestmark = pytest.mark.browser


def test_the_typescript_sdk_passes_its_tests() -> None:
    npm = shutil.which("npm")
    if npm is None or not (WEB_ROOT / "node_modules").is_dir():
        pytest.fail("node, npm and web/node_modules are needed: run scripts/setup.sh")
    run = subprocess.run([npm, "test", "--silent"], cwd=WEB_ROOT, capture_output=True,
                         text=True, timeout=240, check=False)
    summary = [line for line in run.stdout.splitlines() if line.startswith(("# pass",
                                                                          "# fail"))]
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert summary and summary[-1] == "# fail 0", summary
