"""Which Debian package provides a host tool the harness needs, and the exact line that installs it.

``make system-deps`` installs missing tools only as root; everyone else is told the
``sudo apt-get install ...`` line for exactly what is missing (the same packages the
Makefile's ``system-deps`` installs).
"""

from __future__ import annotations

import os
from typing import Iterable

PACKAGES = {
    "go": "golang-go",
    "git": "git",
    "gpg": "gnupg",
    "bash": "bash",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "redis-server": "redis-server",
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "docker-registry": "docker-registry",
    "mmdebstrap": "mmdebstrap",
    "skopeo": "skopeo",
    "gcc": "gcc",
    "busybox": "busybox-static",
}


def package_of(tool: str) -> str:
    """The Debian package of ``tool`` (a package name passes through: ``postgresql-15``)."""
    return PACKAGES.get(tool, tool)


def install_hint(tools: Iterable[str], euid: int | None = None) -> str:
    """What to run to install ``tools``: ``make system-deps`` as root, else the ``sudo apt-get`` line."""
    packages = list(dict.fromkeys(package_of(t) for t in tools))
    line = "apt-get install " + " ".join(packages)
    if (os.geteuid() if euid is None else euid) == 0:
        return f"`make system-deps` installs them (or: {line})"
    return f"You are not root, so `make system-deps` cannot install them; run: sudo {line}"
