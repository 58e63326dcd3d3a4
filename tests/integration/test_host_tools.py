"""Host tools per backend: ``make system-deps`` and the local backend's preflight, as a real non-root user.

``make system-deps`` checks the tools of one backend (``BACKEND``; ``auto`` as the harness resolves
it): the local backend's real node needs its Debian packages, k3d and existing only git, gpg and
Go (and k3d Docker), and none of them root. Here it runs as ``nobody`` (through ``setpriv`` when
the tests run as root) with a PATH made for each case, e.g. every tool of the local backend but
``gpg`` and ``skopeo``; it must stop and print the ``sudo apt-get install -y`` line for exactly
the packages that backend is missing, and pass, not root, when none is. As root it installs
exactly those with apt-get (a stand-in apt-get here, which records its arguments). The local
backend's preflight must say the same line, and that the real node needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from e2e_harness.debian import HOST_TOOLS
from tests.runner_user import as_runner_user, runner_python
from tests.unit.test_host_tools import EVERY_BACKEND

from .conftest import PROJECT_DIR

MISSING = ("gpg", "skopeo")       # packages gnupg and skopeo
DOCKER_ANSWERS = "#!/bin/sh\necho 27.0.0\n"
DOCKER_WITHOUT_ENGINE = "#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n"
RECORDING_APT_GET = '#!/bin/sh\necho "$*" >> "${0%/*}/apt-get.calls"\n'


@pytest.fixture
def host():
    """(argv prefix of a non-root user, a function making a PATH dir of the named tools, plus python3)."""
    prefix = as_runner_user()
    python = runner_python(prefix)
    # Not under pytest's tmp_path: that is private to root, and the non-root user must read these.
    made: list[Path] = []

    def path_of(*tools: str, docker: str | None = None, apt_get: bool = False) -> str:
        bin_dir = Path(tempfile.mkdtemp(prefix="e2e-host-tools-"))
        made.append(bin_dir)
        bin_dir.chmod(0o755)
        for tool in tools:
            found = shutil.which(tool)
            if found is None:
                pytest.skip(f"needs {tool} on PATH to build a PATH that lacks only what the case leaves out")
            (bin_dir / tool).symlink_to(found)
        (bin_dir / "python3").symlink_to(python)
        for name, script in (("docker", docker), ("apt-get", RECORDING_APT_GET if apt_get else None)):
            if script is not None:
                (bin_dir / name).write_text(script)
                (bin_dir / name).chmod(0o755)
        return str(bin_dir)

    try:
        yield prefix, path_of
    finally:
        for bin_dir in made:
            shutil.rmtree(bin_dir)


def commands_of(backend: str) -> list[str]:
    return [tool for tool in HOST_TOOLS[backend] if not tool.startswith("/")]


def system_deps(prefix: list[str], path: str, backend: str) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    if make is None:
        pytest.skip("needs make")
    return subprocess.run([*prefix, make, "--no-print-directory", "-C", str(PROJECT_DIR), "system-deps",
                           f"BACKEND={backend}"], env={"PATH": path, "HOME": "/nonexistent", "LANG": "C.UTF-8"},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend, path_tools, docker, line", [
    ("local", "local", None, "sudo apt-get install -y gnupg skopeo"),
    ("auto", "local", DOCKER_WITHOUT_ENGINE, "sudo apt-get install -y gnupg skopeo"),   # auto: local here
    ("k3d", "existing", None, "sudo apt-get install -y gnupg skopeo docker.io"),
    ("existing", "existing", None, "sudo apt-get install -y gnupg skopeo"),
], ids=["local", "auto-without-docker", "k3d", "existing"])
def test_make_system_deps_gives_a_non_root_user_the_sudo_apt_get_line_for_its_backend(
        host, backend, path_tools, docker, line):
    prefix, path_of = host
    path = path_of(*[t for t in commands_of(path_tools) if t not in MISSING], docker=docker)
    proc = system_deps(prefix, path, backend)
    assert proc.returncode != 0, f"make system-deps BACKEND={backend} passed without {MISSING}:\n{proc.stdout}"
    assert line in proc.stderr.splitlines(), proc.stderr
    assert "You are not root, so `make system-deps` cannot install them; run:" in proc.stderr, proc.stderr


@pytest.mark.parametrize("backend, docker", [("k3d", DOCKER_WITHOUT_ENGINE), ("existing", None),
                                             ("auto", DOCKER_ANSWERS)])
def test_make_system_deps_passes_a_non_root_user_without_the_local_packages_on_k3d_and_existing(
        host, backend, docker):
    """The local backend's packages are absent (only git, gpg and Go are there): no other backend cares."""
    prefix, path_of = host
    path = path_of(*sorted(EVERY_BACKEND), docker=docker)
    proc = system_deps(prefix, path, backend)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resolved = "k3d" if backend == "auto" else backend
    assert f"system-deps: the {resolved} backend" in proc.stdout and "all there" in proc.stdout, proc.stdout


def test_make_system_deps_names_the_backends_for_an_unknown_one(host):
    prefix, path_of = host
    proc = system_deps(prefix, path_of(*sorted(EVERY_BACKEND)), "lcoal")
    assert proc.returncode != 0
    assert "unknown backend 'lcoal'; choose one of auto, " in proc.stderr, proc.stderr


def test_make_system_deps_as_root_installs_exactly_what_the_backend_is_missing(host):
    if os.geteuid() != 0:
        pytest.skip("installs only as root")
    _, path_of = host
    path = path_of(*[t for t in commands_of("local") if t not in MISSING], apt_get=True)
    proc = system_deps([], path, "local")
    calls = (Path(path) / "apt-get.calls").read_text().splitlines()
    assert calls == ["update -qq", "install -y -qq gnupg skopeo"], proc.stdout + proc.stderr
    # the stand-in installed nothing: said, and failed
    assert proc.returncode != 0 and "still missing after apt-get: gpg, skopeo" in proc.stderr, proc.stderr


def test_the_local_backend_preflight_gives_a_non_root_user_the_sudo_apt_get_line(host):
    prefix, path_of = host
    path = path_of(*[t for t in commands_of("local") if t not in MISSING])
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
    assert "the local backend needs: gpg (the harness makes the backups' keys); skopeo (" in message, message
    assert ("You are not root, so `make system-deps` cannot install them; run: "
            "sudo apt-get install -y gnupg skopeo") in message, message
