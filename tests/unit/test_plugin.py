"""The plugin as users meet it: pytest's command line in this project, run in this process by pytester."""

from __future__ import annotations

import time

import pytest

from .conftest import PROJECT_DIR


def pytest_run(pytester: pytest.Pytester, *args: str, env: dict | None = None) -> pytest.RunResult:
    """``pytest -p no:cacheprovider ARGS`` in the project's directory (its rootdir and ini, as a user runs it),
    with ``env`` set for the run only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_DIR)
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        return pytester.runpytest("-p", "no:cacheprovider", *args)


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def test_help_lists_the_plugin_options(pytester):
    out = pytest_run(pytester, "--help").stdout.str()
    for option in ("--release-env", "--backend", "--keep-cluster", "--artifacts-dir", "--keep-namespaces",
                   "--kube-context"):
        assert option in out
    assert "{auto,k3d,local,existing}" in out


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "concurrent"])
def test_malformed_release_env_stops_the_run_before_any_work(workers, tmp_path, pytester):
    """Also in a concurrent run (make test's way): the controller checks before any worker starts."""
    bad = tmp_path / "release.env"
    bad.write_text((PROJECT_DIR / "release.env").read_text().replace("CONTROLLER_VERSION=v0.1.3",
                                                                       "CONTROLLER_VERSION=v0.1.3 beta"))
    started = time.monotonic()
    result = pytest_run(pytester, "tests/e2e", *workers, "--release-env", str(bad), "--build-dir",
                        str(tmp_path / "build"), env={"COMPONENT_SOURCE": "git"})
    elapsed = time.monotonic() - started
    assert result.ret == 4, output(result)
    assert f"{bad}:" in output(result) and "CONTROLLER_VERSION" in output(result) and "malformed" in output(result)
    assert not (tmp_path / "build").exists(), "nothing cloned, built or reported before validation"
    print(f"malformed release.env rejected in {elapsed:.2f}s")


def test_a_bad_knob_is_an_error_not_false(pytester):
    result = pytest_run(pytester, "tests/e2e", env={"SKIP_GIT_PULL": "maybe"})
    assert result.ret == 4
    assert "SKIP_GIT_PULL='maybe'" in output(result)
