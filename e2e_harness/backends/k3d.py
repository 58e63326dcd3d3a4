"""The k3d backend: a k3d cluster with a local registry, components deployed by skaffold.

Needs a Docker engine (laptops, GitHub Actions). No sudo and no /etc/hosts edits:
images are pushed to ``localhost:<port>`` (which always resolves) and k3s's
containerd mirrors that name to the registry container on the cluster network.
The commands are built by ``K3dCommands`` so they are unit-tested on machines
without Docker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import progress
from ..commands import CommandError, run
from ..processes import free_port
from .base import BackendError, BackendUnavailable
from .skaffold import Skaffold, SkaffoldBackend


@dataclass(frozen=True)
class K3dCommands:
    """The exact k3d command lines for one named cluster."""

    k3d: Path
    cluster: str
    k3s_version: str

    @property
    def registry_name(self) -> str:
        return f"{self.cluster}-registry"

    @property
    def registry_container(self) -> str:
        return f"k3d-{self.registry_name}"

    @property
    def context(self) -> str:
        return f"k3d-{self.cluster}"

    def list_clusters(self) -> list[str]:
        return [str(self.k3d), "cluster", "list", "--output", "json"]

    def create_registry(self, port: int) -> list[str]:
        return [str(self.k3d), "registry", "create", self.registry_name, "--port", f"127.0.0.1:{port}"]

    def registry_config(self, port: int) -> str:
        """registries.yaml for k3s: the host's name for the registry -> its in-network name."""
        return (f'mirrors:\n  "localhost:{port}":\n    endpoint:\n'
                f'      - "http://{self.registry_container}:5000"\n')

    def create_cluster(self, registry_config: Path) -> list[str]:
        return [str(self.k3d), "cluster", "create", self.cluster,
                "--image", f"rancher/k3s:{self.k3s_version}",
                "--registry-use", f"{self.registry_container}:5000",
                "--registry-config", str(registry_config),
                "--k3s-arg", "--disable=traefik@server:0",
                "--wait", "--timeout", "300s",
                "--kubeconfig-update-default=false",
                "--kubeconfig-switch-context=false"]

    def kubeconfig(self) -> list[str]:
        return [str(self.k3d), "kubeconfig", "get", self.cluster]

    def delete_cluster(self) -> list[str]:
        return [str(self.k3d), "cluster", "delete", self.cluster]

    def delete_registry(self) -> list[str]:
        return [str(self.k3d), "registry", "delete", self.registry_container]


def docker_engine_available(timeout: float = 10) -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    try:
        return run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=timeout, check=False).returncode == 0
    except CommandError:
        return False


class K3dBackend(SkaffoldBackend):
    name = "k3d"

    def __init__(self, settings):
        super().__init__(settings)
        self.commands = K3dCommands(settings.bin_dir / "k3d", settings.cluster_name,
                                    settings.release["K3S_VERSION"])
        self._state_file = settings.build_dir / f"k3d-{settings.cluster_name}.json"
        self._kubeconfig = settings.build_dir / f"k3d-{settings.cluster_name}.kubeconfig"

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def kube_context(self) -> str:
        return self.commands.context

    def _tool(self, name: str) -> Path:
        path = self.settings.bin_dir / name
        if not path.exists():
            raise BackendUnavailable(f"k3d backend needs {path}; run `make tools` first")
        return path

    def preflight(self) -> None:
        if not docker_engine_available():
            raise BackendUnavailable("k3d backend needs a running Docker engine (`docker info` failed)")
        for tool in ("k3d", "kubectl", "helm", "skaffold"):
            self._tool(tool)

    def start(self) -> None:
        existing = json.loads(run(self.commands.list_clusters(), what="k3d cluster list").stdout or "[]")
        if self.settings.cluster_name in {c.get("name") for c in existing}:
            if not self._state_file.exists():
                raise BackendError(f"k3d cluster {self.settings.cluster_name} exists but {self._state_file} "
                                   f"is missing; delete it with `{' '.join(self.commands.delete_cluster())}`")
        else:
            port = free_port()
            registry_config = self.settings.build_dir / f"k3d-{self.settings.cluster_name}-registries.yaml"
            registry_config.write_text(self.commands.registry_config(port))
            with progress.step(f"k3d: creating registry and cluster {self.settings.cluster_name}"):
                run(self.commands.create_registry(port), what="k3d registry create", timeout=300)
                run(self.commands.create_cluster(registry_config), what="k3d cluster create", timeout=600)
            self._state_file.write_text(json.dumps({"registry_port": port}))
        kubeconfig = run(self.commands.kubeconfig(), what="k3d kubeconfig get", secret_output=True).stdout
        self._kubeconfig.write_text(kubeconfig)
        os.chmod(self._kubeconfig, 0o600)

    def skaffold(self) -> Skaffold:
        port = json.loads(self._state_file.read_text())["registry_port"]
        return Skaffold(self._tool("skaffold"), self.settings.project_dir, self.kubeconfig,
                        self.kube_context, f"localhost:{port}")

    def stop(self) -> None:
        super().stop()
        if self.settings.keep_cluster:
            return
        run(self.commands.delete_cluster(), what="k3d cluster delete", timeout=300, check=False)
        run(self.commands.delete_registry(), what="k3d registry delete", timeout=120, check=False)
        for path in (self._state_file, self._kubeconfig):
            path.unlink(missing_ok=True)
