"""The local backend: real control plane and components as host processes (no Docker).

Not built yet: the control plane and node agent are tracked in issue #3, the
components as host processes in issue #4. Until then selecting it says so plainly.
"""

from __future__ import annotations

from .base import Backend, BackendUnavailable


class LocalBackend(Backend):
    name = "local"

    def preflight(self) -> None:
        raise BackendUnavailable("the local backend (host-process control plane, issue #3) is not available "
                                 "yet; use --backend k3d (needs Docker) or --backend existing")

    def start(self) -> None:  # pragma: no cover - preflight() refuses first
        raise BackendUnavailable("local backend not available")

    def deploy(self, sources) -> None:  # pragma: no cover
        raise BackendUnavailable("local backend not available")

    def endpoints(self):  # pragma: no cover
        raise BackendUnavailable("local backend not available")

    def stop(self) -> None:
        self.close_client()

    @property
    def kubeconfig(self):  # pragma: no cover
        raise BackendUnavailable("local backend not available")
