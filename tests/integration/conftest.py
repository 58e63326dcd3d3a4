"""Real parts for the integration tests: a local control plane, and a real local cluster (the local
backend's node), both started once per session."""

from __future__ import annotations

import pytest

from .. import PROJECT_DIR  # noqa: F401 - tests import it from here
from ..conftest import control_plane_binaries  # noqa: F401 - tests import it from here


# --- a real local control plane (etcd + kube-apiserver + kube-controller-manager) ---------------
@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    from e2e_harness.backends.local.controlplane import ControlPlane

    state = tmp_path_factory.mktemp("control-plane")
    plane = ControlPlane(control_plane_binaries(), state, state / "logs")
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane):
    from e2e_harness.kube import Kube

    client = Kube(control_plane.kubeconfig)
    yield client
    client.close()


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """A real local cluster as a run starts it (control plane, node, registry, CoreDNS), for the session;
    tests use namespaces of their own."""
    import uuid

    from e2e_harness.backends import Settings, backend_class
    from e2e_harness.release import load_release

    control_plane_binaries()  # skips naming the capability when the binaries cannot be had
    root = tmp_path_factory.mktemp("node")
    settings = Settings(release=load_release(PROJECT_DIR / "release.env", environ={}), project_dir=PROJECT_DIR,
                        build_dir=root / "build", artifacts_dir=root / "artifacts",
                        run_id=f"selftest-{uuid.uuid4().hex[:8]}")
    backend = backend_class("local")(settings)
    backend.preflight()
    try:
        backend.start()
        yield backend
    finally:
        backend.stop()
