"""The TypeScript client's own tests (node's test runner) against a live server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_typescript_client_passes_its_tests_against_a_live_server() -> None:
    assert shutil.which("npm"), "npm is missing: run scripts/services.sh (it installs nodejs)"
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-typescript.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = run.stdout + run.stderr
    print(output[-6000:])
    assert run.returncode == 0, output[-6000:]
    assert "# fail 0" in run.stdout and "# pass 0" not in run.stdout
