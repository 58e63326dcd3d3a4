"""A component that dies mid-run makes the scenario fail at once, naming it and its log; no hang."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import PROJECT_DIR

pytestmark = [pytest.mark.needs_go, pytest.mark.timeout(900)]

SCENARIO = "tests/e2e/test_postgres_backup.py::test_internal_pg15_template_backs_up_encrypted_and_restores_the_snapshot"


@pytest.mark.parametrize("component", ["backup-maker-controller", "postgres"])
def test_a_component_killed_during_a_backup_fails_the_scenario_naming_it(component, tmp_path):
    if not os.environ.get("E2E_GIT_MIRROR") and not (PROJECT_DIR.parent / "shared" / "mirrors").is_dir():
        pytest.skip("needs the components' sources: set E2E_GIT_MIRROR to a git mirror directory")
    artifacts = tmp_path / "artifacts"
    proc = subprocess.run([sys.executable, "-m", "pytest", SCENARIO, "--backend", "local", "-q", "-p",
                           "no:cacheprovider", "-p", "tests.kill_component_plugin", "--artifacts-dir", str(artifacts),
                           "--build-dir", str(PROJECT_DIR / ".build")],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=800,
                          env={"E2E_GIT_MIRROR": str(PROJECT_DIR.parent / "shared" / "mirrors"), **os.environ,
                               "E2E_KILL_COMPONENT": component})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"killing {component} did not fail the run (exit {proc.returncode}):\n{output[-3000:]}"
    assert f"{component} died: container" in output and "exit code 137" in output, (
        f"the failure does not name the dead {component} and its SIGKILL:\n{output[-3000:]}")
    assert "timed out" not in output, f"the failure is a timeout, not the dead component:\n{output[-3000:]}"
    bundle_logs = list(artifacts.glob(f"*/*/logs/{component}-*/*.previous.log"))
    assert bundle_logs, f"the failure bundle under {artifacts} lacks the log of {component}'s killed container"
