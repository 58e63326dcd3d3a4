"""The plugin as users meet it: pytest's command line in a subprocess, in this project."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from e2e_harness.docker import engine_answers as docker_engine_available

from .conftest import PROJECT_DIR


def pytest_run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_help_lists_the_plugin_options():
    out = pytest_run("--help").stdout
    for option in ("--release-env", "--backend", "--keep-cluster", "--artifacts-dir", "--keep-namespaces",
                   "--kube-context"):
        assert option in out
    assert "{auto,k3d,local,existing}" in out


def test_scenarios_are_collected():
    result = pytest_run("--collect-only", "-q", "tests/e2e")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/e2e/test_install.py::test_custom_resource_definition_is_established" in result.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "concurrent"])
def test_malformed_release_env_stops_the_run_before_any_work(workers, tmp_path):
    """Also in a concurrent run (make test's way): the controller checks before any worker starts."""
    bad = tmp_path / "release.env"
    bad.write_text((PROJECT_DIR / "release.env").read_text().replace("CONTROLLER_VERSION=v0.1.3",
                                                                       "CONTROLLER_VERSION=v0.1.3 beta"))
    started = time.monotonic()
    result = pytest_run("tests/e2e", *workers, "--release-env", str(bad), "--build-dir", str(tmp_path / "build"),
                        env={"COMPONENT_SOURCE": "git"})
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert f"{bad}:" in output and "CONTROLLER_VERSION" in output and "malformed" in output
    assert not (tmp_path / "build").exists(), "nothing cloned, built or reported before validation"
    print(f"malformed release.env rejected in {elapsed:.2f}s")


def test_a_bad_knob_is_an_error_not_false():
    result = pytest_run("tests/e2e", env={"SKIP_GIT_PULL": "maybe"})
    assert result.returncode == 4
    assert "SKIP_GIT_PULL='maybe'" in result.stdout + result.stderr


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
