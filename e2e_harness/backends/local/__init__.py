"""The local backend: a real control plane and the components as host processes (no Docker).

Built in steps: the control plane (``controlplane``, ``binaries``, ``pki``) and the
node agent stand in for a cluster; deploying the release's components as host
processes is issue #4. Until that lands, ``preflight`` refuses plainly so that a
run skips naming the missing capability instead of half-running.
"""

from __future__ import annotations

from pathlib import Path

from ... import progress
from ..base import Backend, BackendUnavailable
from .controlplane import ControlPlane, ControlPlaneBinaries
from .node_agent import NodeAgent, Toolset

NODE_NAME = "e2e-local-node"
# Images the node agent can run, mapped to host toolsets. The release's own images
# (backup-maker, pgbr) join this table with issue #4.
IMAGES = {"busybox": Toolset("host-shell")}


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings):
        super().__init__(settings)
        self.control_plane: ControlPlane | None = None
        self.agent: NodeAgent | None = None

    def preflight(self) -> None:
        raise BackendUnavailable("the local backend cannot deploy the release's components yet (server, "
                                 "controller and pgbr as host processes: issue #4); use --backend k3d "
                                 "(needs Docker) or --backend existing")

    def start(self) -> None:
        from . import binaries  # not at import: `python -m ...local.binaries` must not see itself imported

        release = self.settings.release
        kube = binaries.kubernetes_binaries(release["KUBERNETES_VERSION"], progress=progress.say)
        self.control_plane = ControlPlane(
            ControlPlaneBinaries(etcd=binaries.etcd_binary(release["ETCD_VERSION"], progress=progress.say),
                                 kube_apiserver=kube["kube-apiserver"],
                                 kube_controller_manager=kube["kube-controller-manager"]),
            state_dir=self.settings.build_dir / "local" / self.settings.run_id,
            log_dir=self.settings.artifacts_dir / "control-plane")
        self.control_plane.start()
        # The cluster is private to this run: the agent runs pods of every namespace.
        self.agent = NodeAgent(self.kube, NODE_NAME, self.settings.build_dir / "local" / self.settings.run_id / "pods",
                               IMAGES, namespace_selector=lambda namespace: True)
        self.agent.register_node()
        self.agent.start()

    def deploy(self, sources) -> None:
        raise BackendUnavailable("deploying components on the local backend is issue #4")

    def endpoints(self):
        raise BackendUnavailable("the local backend has no server endpoint before issue #4")

    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise BackendUnavailable("the local backend's control plane is not started")
        return self.control_plane.kubeconfig

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        return self.agent.pod_logs(namespace, pod, container) if self.agent else ""

    def service_logs(self) -> dict[str, Path]:
        if self.control_plane is None:
            return {}
        return {p.name: p.log_path for p in self.control_plane.processes.processes}

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        self.close_client()
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
