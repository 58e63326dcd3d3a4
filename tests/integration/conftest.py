"""Real parts for the integration tests: git repositories made here, a local HTTP server, the components'
sources at their pins, a local control plane, and a real local cluster (the local backend's node); the
control plane and the cluster are started once per session."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from e2e_harness.components import COMPONENTS, SourceResolver, git_mirror_from
from e2e_harness.release import load_release

from .. import PROJECT_DIR  # noqa: F401 - tests import it from here
from ..conftest import control_plane_binaries  # noqa: F401 - tests import it from here


def pinned_source(build_dir: Path, component_name: str) -> Path:
    """A component's source at release.env's pin, resolved as a run resolves it (mirror, else git)."""
    resolver = SourceResolver(build_dir, git_mirror=git_mirror_from(None, os.environ), progress=lambda line: None)
    component = next(c for c in COMPONENTS if c.name == component_name)
    return resolver.resolve(component, load_release(PROJECT_DIR / "release.env").pin(component.pin_key)).path


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin:/usr/local/bin",
           "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


class Origin:
    """A bare-bones upstream repository: commits, tags and branches on demand."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "--quiet", "--initial-branch=main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def commit(self, message: str, filename: str = "file.txt") -> str:
        (self.path / filename).write_text(message + "\n")
        git(self.path, "add", filename)
        git(self.path, "commit", "--quiet", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def tag(self, name: str) -> None:
        git(self.path, "tag", name)

    def branch(self, name: str) -> None:
        git(self.path, "branch", name)

    def checkout(self, name: str) -> None:
        git(self.path, "checkout", "--quiet", name)


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    if shutil.which("git") is None:
        pytest.skip("needs git (capability: git on PATH)")
    return Origin(tmp_path / "origin")


class FileServer:
    """A real HTTP server on a free loopback port serving a directory; counts requests."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server_self = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                server_self.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def file_server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


# --- a real local control plane (etcd + kube-apiserver + kube-controller-manager) ---------------
@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    from e2e_harness.backends.local.controlplane import ControlPlane

    state = tmp_path_factory.mktemp("control-plane")
    plane = ControlPlane(control_plane_binaries(), state, state / "logs")
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane):
    from e2e_harness.kube import Kube

    client = Kube(control_plane.kubeconfig)
    yield client
    client.close()


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """A real local cluster as a run starts it (control plane, node, registry, CoreDNS), for the session;
    tests use namespaces of their own."""
    import uuid

    from e2e_harness.backends import Settings, backend_class
    from e2e_harness.release import load_release

    control_plane_binaries()  # skips naming the capability when the binaries cannot be had
    root = tmp_path_factory.mktemp("node")
    settings = Settings(release=load_release(PROJECT_DIR / "release.env", environ={}), project_dir=PROJECT_DIR,
                        build_dir=root / "build", artifacts_dir=root / "artifacts",
                        run_id=f"selftest-{uuid.uuid4().hex[:8]}")
    backend = backend_class("local")(settings)
    backend.preflight()
    try:
        backend.start()
        yield backend
    finally:
        backend.stop()
