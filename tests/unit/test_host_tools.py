"""Host tools per backend, as tables: which packages each backend needs and the apt-get line for what is
missing (``make system-deps`` itself runs as a non-root user in tests/integration/test_host_tools.py)."""

from __future__ import annotations

import pytest

from e2e_harness.backends import BACKEND_NAMES, backend_class
from e2e_harness.debian import HOST_TOOLS, install_hint, resolve_backend


EVERY_BACKEND = {"git", "gpg", "go", "skopeo"}


def test_install_hint_names_the_packages_of_the_missing_tools():
    assert install_hint(["gpg", "unshare", "nsenter", "postgresql-15"], euid=1000) == (
        "You are not root, so `make system-deps` cannot install them; run: "
        "sudo apt-get install -y gnupg util-linux postgresql-15")
    assert install_hint(["go"], euid=0) == "`make system-deps` installs them (or: apt-get install -y golang-go)"
    assert install_hint(["docker", "/usr/lib/cni/bridge"], euid=1000).endswith(
        "sudo apt-get install -y docker.io containernetworking-plugins")


def test_every_backend_lists_its_host_tools():
    assert set(HOST_TOOLS) | {"auto"} == set(BACKEND_NAMES)


def test_only_the_local_backend_needs_the_node_packages():
    assert set(HOST_TOOLS["existing"]) == EVERY_BACKEND
    assert set(HOST_TOOLS["k3d"]) == EVERY_BACKEND | {"docker"}
    assert set(HOST_TOOLS["local"]) >= EVERY_BACKEND | {"containerd", "runc", "/usr/lib/cni/bridge", "iptables",
                                                        "conntrack", "ip", "nsenter", "docker-registry", "mmdebstrap",
                                                        "skopeo", "gcc", "busybox"}
    # The databases, the server and the controller run as pods on every backend: nothing of them on the host.
    for tools in HOST_TOOLS.values():
        assert not {"redis-server", "setpriv", "postgres", "mariadbd"} & set(tools)


@pytest.mark.parametrize("answers", [True, False])
def test_auto_resolves_as_the_harness_does(answers: bool, monkeypatch):
    from e2e_harness import docker
    monkeypatch.setattr(docker, "engine_answers", lambda: answers)
    assert resolve_backend("auto") == backend_class("auto").name == ("k3d" if answers else "local")
