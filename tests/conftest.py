"""What every tier of the harness's self-tests shares (tests/unit, tests/integration, tests/selftest).

Loaded for tests/e2e too (it is their parent directory): nothing here may change a scenario run."""

from __future__ import annotations

import shutil

import pytest

from . import PROJECT_DIR

GO_MISSING = "the Go toolchain (go) is not on PATH"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``needs_go`` skip, naming the missing capability, where there is no Go toolchain."""
    if item.get_closest_marker("needs_go") is not None and shutil.which("go") is None:
        pytest.skip(f"needs_go: {GO_MISSING}")


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
