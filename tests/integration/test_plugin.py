"""The plugin as users meet it, where collecting the scenarios resolves backup-maker's pinned source (the
template matrix is read from it): from the git mirror, git hosting or the Go module proxy. Run in this
process by pytester, as in tests/unit/test_plugin.py."""

from __future__ import annotations

import pytest

from e2e_harness.docker import engine_answers as docker_engine_available
from tests.unit.test_plugin import output, pytest_run


def test_scenarios_are_collected(pytester):
    result = pytest_run(pytester, "--collect-only", "-q", "tests/e2e")
    assert result.ret == 0, output(result)
    assert "tests/e2e/test_install.py::test_custom_resource_definition_is_established" in result.stdout.str()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "concurrent"])
def test_unavailable_backend_skips_with_the_capability_and_is_not_green(workers, tmp_path, pytester):
    """k3d without a Docker engine: unavailable here for as long as no engine answers. Concurrent, the
    controller reaches the same verdict from its workers' reports."""
    if docker_engine_available():
        pytest.skip("a Docker engine answers here, so the k3d backend is available: nothing to show unavailable")
    result = pytest_run(pytester, "tests/e2e", *workers, "--backend", "k3d", "-rs", "--build-dir",
                        str(tmp_path / "build"))
    said = output(result)
    assert "backend unavailable: k3d backend needs a running Docker engine" in said, said
    assert result.ret == 5, said
    assert "no scenario ran" in said
    build = tmp_path / "build"
    # Only backup-maker's source is resolved, at collection: the template matrix is read from it.
    assert not [p for p in build.iterdir() if p.name not in ("artifacts", "backup-maker", ".backup-maker.lock")], (
        "nothing else resolved, nothing built")
    report = next(build.glob("artifacts/*/report.md")).read_text()
    assert "NOT TESTED" in report and "SERVER_VERSION" in report and "skipped" in report
