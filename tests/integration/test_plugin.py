"""The plugin as users meet it, where collecting the scenarios resolves backup-maker's pinned source (the
template matrix is read from it): from the git mirror, git hosting or the Go module proxy."""

from __future__ import annotations

import pytest

from e2e_harness.backends.k3d import docker_engine_available
from tests.unit.test_plugin import pytest_run


def test_scenarios_are_collected():
    result = pytest_run("--collect-only", "-q", "tests/e2e")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/e2e/test_install.py::test_custom_resource_definition_is_established" in result.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "concurrent"])
def test_unavailable_backend_skips_with_the_capability_and_is_not_green(workers, tmp_path):
    """k3d without a Docker engine: unavailable here for as long as no engine answers. Concurrent, the
    controller reaches the same verdict from its workers' reports."""
    if docker_engine_available():
        pytest.skip("a Docker engine answers here, so the k3d backend is available: nothing to show unavailable")
    result = pytest_run("tests/e2e", *workers, "--backend", "k3d", "-rs", "--build-dir", str(tmp_path / "build"))
    output = result.stdout + result.stderr
    assert "backend unavailable: k3d backend needs a running Docker engine" in output, output
    assert result.returncode == 5, output
    assert "no scenario ran" in output
    build = tmp_path / "build"
    # Only backup-maker's source is resolved, at collection: the template matrix is read from it.
    assert not [p for p in build.iterdir() if p.name not in ("artifacts", "backup-maker", ".backup-maker.lock")], (
        "nothing else resolved, nothing built")
    report = next(build.glob("artifacts/*/report.md")).read_text()
    assert "NOT TESTED" in report and "SERVER_VERSION" in report and "skipped" in report
