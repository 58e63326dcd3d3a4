"""The plugin as users meet it: pytest's command line in a subprocess, in this project."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

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
