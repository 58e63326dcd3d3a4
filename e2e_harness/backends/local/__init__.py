"""The local backend: a real control plane and the components as host processes (no Docker).

Built in steps: the control plane (``controlplane``, ``binaries``, ``pki``) and the
node agent stand in for a cluster; deploying the release's components as host
processes is issue #4. Until that lands, ``preflight`` refuses plainly so that a
run skips naming the missing capability instead of half-running.
"""

from __future__ import annotations

from pathlib import Path

from ..base import Backend, BackendUnavailable
from .controlplane import ControlPlane, ControlPlaneBinaries


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings):
        super().__init__(settings)
        self.control_plane: ControlPlane | None = None

    def preflight(self) -> None:
        raise BackendUnavailable("the local backend cannot deploy the release's components yet (server, "
                                 "controller and pgbr as host processes: issue #4); use --backend k3d "
                                 "(needs Docker) or --backend existing")

    def start(self) -> None:
        from . import binaries  # not at import: `python -m ...local.binaries` must not see itself imported

        release = self.settings.release
        kube = binaries.kubernetes_binaries(release["KUBERNETES_VERSION"])
        self.control_plane = ControlPlane(
            ControlPlaneBinaries(etcd=binaries.etcd_binary(release["ETCD_VERSION"]),
                                 kube_apiserver=kube["kube-apiserver"],
                                 kube_controller_manager=kube["kube-controller-manager"]),
            state_dir=self.settings.build_dir / "local" / self.settings.run_id,
            log_dir=self.settings.artifacts_dir / "control-plane")
        self.control_plane.start()

    def deploy(self, sources) -> None:
        raise BackendUnavailable("deploying components on the local backend is issue #4")

    def endpoints(self):
        raise BackendUnavailable("the local backend has no server endpoint before issue #4")

    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise BackendUnavailable("the local backend's control plane is not started")
        return self.control_plane.kubeconfig

    def stop(self) -> None:
        self.close_client()
        if self.control_plane is not None:
            self.control_plane.stop()
