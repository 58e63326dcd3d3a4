"""The host tools each backend needs, the Debian package of each, and the exact line that installs them.

``make system-deps`` runs ``python -m e2e_harness.debian --backend NAME``: it checks the tools of
that one backend (``auto`` resolved as the harness resolves it: k3d when a Docker engine answers,
else local). As root it installs the missing packages with apt-get; anyone else is told the
``sudo apt-get install -y ...`` line for exactly what is missing, and it fails. When nothing is
missing it needs no root, and no apt-get (macOS with the tools installed passes).

``HOST_TOOLS`` is what each backend needs on the host (its entry in e2e_harness/backend_registry.py);
a name starting with ``/`` is a file, anything else a command on PATH. Standard library only: ``make system-deps``
runs this with the host's ``python3`` before the venv exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Iterable, Mapping

from .backend_registry import BY_NAME, UnknownBackend, resolve

# What each backend needs on the host: its entry's tools in e2e_harness/backend_registry.py.
HOST_TOOLS: dict[str, dict[str, str]] = {name: entry.tools() for name, entry in BY_NAME.items()}

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


def resolve_backend(name: str) -> str:
    """``name``, or for ``auto`` the backend the harness picks (e2e_harness/backend_registry.py)."""
    try:
        return resolve(name).name
    except UnknownBackend as exc:
        raise HostToolsError(str(exc)) from None


# What the harness's own self-tests use besides a backend's tools (`make check`): an independent reader of the
# OCI layouts the local backend writes.
SELF_TEST_TOOLS = {"umoci": "the self-tests read the images built here with a second OCI implementation"}


def system_deps(backend: str, say=print, euid: int | None = None, self_tests: bool = False) -> int:
    """Check (as root: install) ``backend``'s host tools; 0 when all are there, 1 otherwise."""
    resolved = resolve_backend(backend)
    which = f"the {resolved} backend" + ("" if resolved == backend else f" ({backend} picks it here)")
    missing = missing_tools({**HOST_TOOLS[resolved], **(SELF_TEST_TOOLS if self_tests else {})})
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
    parser.add_argument("--self-tests", action="store_true", help="also what `make check`'s self-tests use")
    args = parser.parse_args(argv)
    try:
        return system_deps(args.backend, self_tests=args.self_tests)
    except HostToolsError as exc:
        print(f"system-deps: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
