"""What every tier of the harness's self-tests shares (tests/unit, tests/integration, tests/selftest), and
the tier markers.

Loaded for tests/e2e too (it is their parent directory): nothing here may change a scenario run."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from . import PROJECT_DIR

# pytester runs pytest in this process: the plugin's hooks as in a child pytest, without one (here, not in a
# tier's conftest: pytest takes pytest_plugins only from the conftests it loads first).
pytest_plugins = ["pytester"]

GO_MISSING = "the Go toolchain (go) is not on PATH"
TESTS_DIR = Path(__file__).parent
# tests/<tier>/: unit (pure, seconds: make check-fast), integration (a control plane, the node, git, Go,
# databases), selftest (whole e2e runs as child processes). Registered in pyproject.toml.
TIERS = ("unit", "integration", "selftest")


@pytest.hookimpl(tryfirst=True)   # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each self-test carries the marker of its tier, the directory it is in (``-m "not selftest"``)."""
    for item in items:
        try:
            tier = item.path.relative_to(TESTS_DIR).parts[0]
        except ValueError:   # not under tests/ (pytester's runs)
            continue
        if tier in TIERS:
            item.add_marker(tier)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``needs_go`` skip, naming the missing capability, where there is no Go toolchain."""
    if item.get_closest_marker("needs_go") is not None and shutil.which("go") is None:
        pytest.skip(f"needs_go: {GO_MISSING}")


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, and afterwards the harness's module state that a run in this process changes put back: the
    run's plugin points the phase lines at its own terminal, which is closed once the run ends."""
    from e2e_harness import progress

    for name in ("_write", "_mask", "_label", "_started"):
        monkeypatch.setattr(progress, name, getattr(progress, name))
    return pytester


def control_plane_binaries():
    """Find or build the pinned binaries; skip naming the capability when Go is missing."""
    from e2e_harness.backends.local import binaries
    from e2e_harness.backends.local.controlplane import ControlPlaneBinaries
    from e2e_harness.release import load_release

    release = load_release(PROJECT_DIR / "release.env", environ={})
    if shutil.which("go") is None and not binaries.find("etcd", release["ETCD_VERSION"], "etcd"):
        pytest.skip(f"the control plane binaries are not cached and must be built: {GO_MISSING}")
    kube = binaries.kubernetes_binaries(release["KUBERNETES_VERSION"])
    return ControlPlaneBinaries(etcd=binaries.etcd_binary(release["ETCD_VERSION"]),
                                kube_apiserver=kube["kube-apiserver"],
                                kube_controller_manager=kube["kube-controller-manager"])


@pytest.fixture
def taken_port():
    """A loopback port held by a listening socket of this test process (test_ports.py of unit and integration)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


class FakeBuild:
    """Stands in for gomodules.build (the one fake build) in test_tools.py of unit and integration:
    records its arguments, writes a script."""

    def __init__(self, prints: str = "v1.2.3"):
        self.calls: list[dict] = []
        self.prints = prints
        self.delay = 0.0

    def __call__(self, module, version, packages, dest, **kwargs):
        self.calls.append(dict(module=module, version=version, packages=packages, dest=dest, **kwargs))
        time.sleep(self.delay)
        dest.mkdir(parents=True, exist_ok=True)
        name = kwargs["outputs"][packages[0]]
        (dest / name).write_text(f"#!/bin/sh\necho 'faketool version {self.prints} (built)'\n")
        (dest / name).chmod(0o755)


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """The module route with a fake go build; the cache under tmp_path."""
    from e2e_harness import tools

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    build = FakeBuild()
    monkeypatch.setattr(tools.gomodules, "build", build)
    monkeypatch.setattr(tools.gomodules, "module_replaces",
                        lambda module, version: {"example.com/dep": f"example.com/dep v0.9.0 ({module}@{version})"})
    return build
