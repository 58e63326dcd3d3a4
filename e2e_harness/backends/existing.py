"""The existing backend: any cluster a kubeconfig context points at.

The harness reads the kubeconfig but never changes it (no context switch). With
``SKIP_SERVER_INSTALL``/``SKIP_CLIENT_INSTALL`` the components are assumed to be
installed already; otherwise they are deployed with skaffold, pushing images to
``SKAFFOLD_DEFAULT_REPO``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import BackendUnavailable
from .skaffold import Skaffold, SkaffoldBackend


def user_kubeconfig(environ=os.environ) -> Path:
    value = environ.get("KUBECONFIG", "")
    paths = [p for p in value.split(os.pathsep) if p]
    if len(paths) > 1:
        raise BackendUnavailable(f"KUBECONFIG names {len(paths)} files; the existing backend (and the "
                                 "controller) need exactly one: KUBECONFIG=/path/to/one/file")
    path = Path(paths[0]) if paths else Path.home() / ".kube" / "config"
    if not path.is_file():
        raise BackendUnavailable(f"existing backend: kubeconfig {path} not found (set KUBECONFIG)")
    return path


class ExistingBackend(SkaffoldBackend):
    name = "existing"

    def __init__(self, settings, environ=os.environ):
        super().__init__(settings)
        self._kubeconfig = user_kubeconfig(environ)
        self._default_repo = environ.get("SKAFFOLD_DEFAULT_REPO")

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def kube_context(self) -> str | None:
        return self.settings.kube_context

    def start(self) -> None:
        self.kube.core.list_namespace(limit=1)  # fails early and clearly when the cluster is unreachable

    def skaffold(self) -> Skaffold:
        if not self._default_repo:
            raise BackendUnavailable("existing backend: set SKAFFOLD_DEFAULT_REPO to a registry the cluster "
                                     "can pull from, or SKIP_SERVER_INSTALL=true SKIP_CLIENT_INSTALL=true")
        return Skaffold(self.settings.bin_dir / "skaffold", self.settings.project_dir, self.kubeconfig,
                        self.kube_context, self._default_repo)
