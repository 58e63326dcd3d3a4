"""A Debian tool that is missing and cannot be installed (the user is not root): the exact line to run.

The local backend's preflight and ``make system-deps`` run here as a real non-root user
(``nobody``, through ``setpriv`` when the tests run as root) with a PATH that has every
tool but ``gpg`` and ``redis-server``; both must stop and print the ``sudo apt-get
install`` line for exactly those packages (the preflight also says that the real node needs root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from e2e_harness.debian import install_hint

from .conftest import PROJECT_DIR

MISSING = ("gpg", "redis-server")
PRESENT = ("go", "git", "bash", "unshare", "setpriv", "id", "sed",
           # the real node's parts
           "containerd", "ctr", "runc", "iptables", "conntrack", "ip", "nsenter", "docker-registry", "mmdebstrap",
           "skopeo", "gcc", "busybox")


def test_install_hint_names_the_packages_of_the_missing_tools():
    assert install_hint(["gpg", "unshare", "setpriv", "postgresql-15"], euid=1000) == (
        "You are not root, so `make system-deps` cannot install them; run: "
        "sudo apt-get install gnupg util-linux postgresql-15")
    assert install_hint(["go"], euid=0) == "`make system-deps` installs them (or: apt-get install golang-go)"


@pytest.fixture
def as_non_root():
    """(argv prefix that runs a command as a non-root user, PATH with every tool but MISSING)."""
    for tool in PRESENT:
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} on PATH to build a PATH that lacks only {', '.join(MISSING)}")
    # Not under pytest's tmp_path: that is private to root, and the non-root user must read this PATH.
    bin_dir = Path(tempfile.mkdtemp(prefix="e2e-host-tools-"))
    try:
        bin_dir.chmod(0o755)
        for tool in PRESENT:
            (bin_dir / tool).symlink_to(shutil.which(tool))
        if os.geteuid() == 0:
            prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
                pytest.skip("cannot switch to the user nobody with setpriv")
        else:
            prefix = []
        yield prefix, str(bin_dir)
    finally:
        shutil.rmtree(bin_dir)


def test_the_local_backend_preflight_gives_a_non_root_user_the_sudo_apt_get_line(as_non_root):
    prefix, path = as_non_root
    script = """if True:
        import os, sys
        from pathlib import Path
        from e2e_harness.backends import BackendUnavailable, Settings
        from e2e_harness.backends.local import LocalBackend
        from e2e_harness.release import load_release
        project = Path(sys.argv[1])
        assert os.geteuid() != 0, "must run as a non-root user"
        settings = Settings(release=load_release(project / "release.env", environ={}), project_dir=project,
                            build_dir=Path("/nonexistent/build"), artifacts_dir=Path("/nonexistent/artifacts"),
                            run_id="preflight")
        try:
            LocalBackend(settings).preflight()
        except BackendUnavailable as exc:
            print(exc)
            sys.exit(3)
        """
    proc = subprocess.run([*prefix, sys.executable, "-B", "-c", script, str(PROJECT_DIR)], cwd="/",
                          env={"PATH": path, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, f"preflight did not refuse (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    message = proc.stdout.strip()
    assert message.startswith("the local backend runs a real Kubernetes node"), message
    assert "which needs root: run as root, or use --backend k3d (Docker) or --backend existing" in message
    assert "the local backend needs: gpg (the harness makes the backups' keys); redis-server (" in message
    assert message.endswith("You are not root, so `make system-deps` cannot install them; run: "
                            "sudo apt-get install gnupg redis-server"), message


def test_make_system_deps_gives_a_non_root_user_the_sudo_apt_get_line(as_non_root):
    prefix, path = as_non_root
    make = shutil.which("make")
    if make is None:
        pytest.skip("needs make")
    proc = subprocess.run([*prefix, make, "--no-print-directory", "-C", str(PROJECT_DIR), "system-deps"],
                          env={"PATH": path, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, f"make system-deps succeeded without gpg and redis-server:\n{proc.stdout}"
    assert "missing tools: gnupg redis-server; install them, e.g.: sudo apt-get install gnupg redis-server" \
        in proc.stderr, proc.stderr
