"""The backends, one entry each: where the class lives, when ``auto`` picks it, and its host tools.

``auto`` picks the first entry whose ``auto`` question answers yes (k3d when a Docker engine
answers, else local). A new backend is its module plus one ``Registered`` line here; the plugin's
``--backend`` choices, ``make system-deps`` and the Makefile read this table. Standard library only:
``make system-deps`` reads it with the host's python3 before the venv exists.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from . import docker

# Every backend: component sources are git checkouts, the harness makes the backups' keys, and Go
# builds the components (go build on local, ko inside skaffold on k3d and existing).
EVERY_BACKEND_TOOLS = {
    "git": "component sources are git checkouts",
    "gpg": "the harness makes the backups' keys",
    "go": "builds the components (Debian's golang-go, or go.dev)",
    "skopeo": "pushes ko's base image (and, on local, every image built here) to the cluster's registry",
}
# A real Kubernetes node on this machine, and what builds the images its pods run.
LOCAL_NODE_TOOLS = {
    "containerd": "the node's container runtime", "ctr": "ends the node's containers at teardown",
    "runc": "the node's OCI runtime", "/usr/lib/cni/bridge": "the node's pod network (CNI plugins)",
    "iptables": "kube-proxy's Services", "conntrack": "kube-proxy's Services",
    "ip": "the node's network namespace (iproute2)", "nsenter": "runs the node in its namespace",
    "docker-registry": "serves the images built here", "mmdebstrap": "builds Debian-based images",
    "/usr/share/keyrings/debian-archive-keyring.gpg": "mmdebstrap verifies Debian's archive with it",
    "gcc": "builds the pause image",
    "/usr/include/stdio.h": "the pause image links a static libc (libc6-dev)",
    "busybox": "the busybox image (busybox-static)",
    "/etc/ssl/certs/ca-certificates.crt": "the static base image's CA certificates",
    "/usr/share/zoneinfo/UTC": "the static base image's time zones",
}


def _never() -> bool:
    return False


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Registered:
    name: str
    cls: str                                  # "module:Class"
    auto: Callable[[], bool] = _never         # whether ``auto`` picks it (entries are asked in order)
    host_tools: dict[str, str] = field(default_factory=dict)   # tool (a command, or /a/file) -> why

    def tools(self) -> dict[str, str]:
        return {**EVERY_BACKEND_TOOLS, **self.host_tools}


REGISTRY = (
    Registered("k3d", "e2e_harness.backends.k3d:K3dBackend", lambda: docker.engine_answers(),
               {"docker": "k3d runs the cluster and its registry in Docker"}),
    Registered("local", "e2e_harness.backends.local:LocalBackend", _always, LOCAL_NODE_TOOLS),
    Registered("existing", "e2e_harness.backends.existing:ExistingBackend"),
)
BY_NAME = {entry.name: entry for entry in REGISTRY}
NAMES = ("auto", *BY_NAME)


class UnknownBackend(ValueError):
    pass


def resolve(name: str) -> Registered:
    """The entry ``name`` names; for ``auto`` the first whose question answers yes."""
    if name == "auto":
        return next(entry for entry in REGISTRY if entry.auto())
    if name not in BY_NAME:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    return BY_NAME[name]


def load(entry: Registered) -> type:
    module, _, cls = entry.cls.partition(":")
    return getattr(importlib.import_module(module), cls)


if __name__ == "__main__":   # `python -m e2e_harness.backend_registry auto`: the name auto resolves to (Makefile)
    import sys

    print(resolve(sys.argv[1] if len(sys.argv) > 1 else "auto").name)
