"""The host tools each backend needs, the Debian package of each, and the exact line that installs them.

``make system-deps`` runs ``python -m e2e_harness.debian --backend NAME``: it checks the tools of
that one backend (``auto`` resolved as the harness resolves it: k3d when a Docker engine answers,
else local). As root it installs the missing packages with apt-get; anyone else is told the
``sudo apt-get install -y ...`` line for exactly what is missing, and it fails. When nothing is
missing it needs no root, and no apt-get (macOS with the tools installed passes).

``HOST_TOOLS`` is the one table of what each backend needs on the host; a name starting with
``/`` is a file, anything else a command on PATH. Standard library only: ``make system-deps``
runs this with the host's ``python3`` before the venv exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Iterable, Mapping

# Every backend: component sources are git checkouts, the harness makes the backups' keys, and Go
# builds the components (go build on local, ko inside skaffold on k3d and existing).
_EVERY_BACKEND = {
    "git": "component sources are git checkouts",
    "gpg": "the harness makes the backups' keys",
    "go": "builds the components (Debian's golang-go, or go.dev)",
    "skopeo": "pushes ko's base image (and, on local, every image built here) to the cluster's registry",
}

HOST_TOOLS: dict[str, dict[str, str]] = {
    # A real Kubernetes node on this machine, and what builds the images its pods run.
    "local": {
        **_EVERY_BACKEND,
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
    },
    "k3d": {**_EVERY_BACKEND, "docker": "k3d runs the cluster and its registry in Docker"},
    "existing": dict(_EVERY_BACKEND),
}

PACKAGES = {
    "go": "golang-go",
    "gpg": "gnupg",
    "docker": "docker.io",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "nsenter": "util-linux",
    "ctr": "containerd",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "busybox": "busybox-static",
    "/usr/share/keyrings/debian-archive-keyring.gpg": "debian-archive-keyring",
    "/usr/include/stdio.h": "libc6-dev",
    "/etc/ssl/certs/ca-certificates.crt": "ca-certificates",
    "/usr/share/zoneinfo/UTC": "tzdata",
}


class HostToolsError(RuntimeError):
    """An unknown backend, or tools still missing after apt-get."""


def package_of(tool: str) -> str:
    """The Debian package of ``tool`` (a name that is its own package passes through: ``git``, ``postgresql-15``)."""
    return PACKAGES.get(tool, tool)


def packages_of(tools: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(package_of(t) for t in tools))


def install_line(tools: Iterable[str]) -> str:
    """``apt-get install -y <packages>`` for ``tools``, each package once, in order."""
    return "apt-get install -y " + " ".join(packages_of(tools))


def install_hint(tools: Iterable[str], euid: int | None = None) -> str:
    """What to run to install ``tools``: ``make system-deps`` as root, else the ``sudo apt-get`` line."""
    line = install_line(tools)
    if (os.geteuid() if euid is None else euid) == 0:
        return f"`make system-deps` installs them (or: {line})"
    return f"You are not root, so `make system-deps` cannot install them; run: sudo {line}"


def present(tool: str) -> bool:
    return os.path.exists(tool) if tool.startswith("/") else shutil.which(tool) is not None


def missing_tools(needed: Mapping[str, str]) -> dict[str, str]:
    """The tools of ``needed`` (tool -> why) that are not on PATH (or, for a path, not there)."""
    return {tool: why for tool, why in needed.items() if not present(tool)}


def docker_engine_answers(timeout: float = 10) -> bool:
    """True when a Docker engine answers ``docker info`` (the client alone is not enough), as the k3d
    backend's own check in ``e2e_harness.backends.k3d``; repeated here so that this module needs nothing
    beyond Python's standard library (``make system-deps`` runs it before the venv exists)."""
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve_backend(name: str, docker_available=docker_engine_answers) -> str:
    """``name``, or for ``auto`` the backend the harness picks (``e2e_harness.backends.backend_class``):
    k3d when a Docker engine answers, else local."""
    if name == "auto":
        return "k3d" if docker_available() else "local"
    if name not in HOST_TOOLS:
        raise HostToolsError(f"unknown backend {name!r}; choose one of auto, {', '.join(HOST_TOOLS)}")
    return name


def system_deps(backend: str, say=print, euid: int | None = None) -> int:
    """Check (as root: install) ``backend``'s host tools; 0 when all are there, 1 otherwise."""
    resolved = resolve_backend(backend)
    which = f"the {resolved} backend" + ("" if resolved == backend else f" ({backend} picks it here)")
    missing = missing_tools(HOST_TOOLS[resolved])
    if not missing:
        say(f"system-deps: {which}: its host tools are all there")
        return 0
    needs = f"{which} needs: " + "; ".join(f"{tool} ({why})" for tool, why in missing.items())
    if (os.geteuid() if euid is None else euid) != 0:
        # The line alone on the last line, to copy as it is.
        say(f"system-deps: {needs}.\nYou are not root, so `make system-deps` cannot install them; run:\n"
            f"sudo {install_line(missing)}", file=sys.stderr)
        return 1
    if shutil.which("apt-get") is None:
        say(f"system-deps: {needs}; there is no apt-get here: install their packages "
            f"({' '.join(packages_of(missing))}) with this system's package manager", file=sys.stderr)
        return 1
    say(f"system-deps: {needs}; installing: {install_line(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages_of(missing)]):
        if subprocess.run(cmd, env=env).returncode != 0:
            say(f"system-deps: `{' '.join(cmd)}` failed", file=sys.stderr)
            return 1
    still = missing_tools(missing)
    if still:
        say(f"system-deps: still missing after apt-get: {', '.join(still)} (packages "
            f"{' '.join(packages_of(still))}); install them by hand", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e_harness.debian",
                                     description="Check (as root: install) the host tools one backend needs.")
    parser.add_argument("--backend", default="auto", help="a backend name, or auto (default)")
    args = parser.parse_args(argv)
    try:
        return system_deps(args.backend)
    except HostToolsError as exc:
        print(f"system-deps: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
