"""Real parts for the harness's self-tests: git repositories made here, a local HTTP server."""

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
from ..conftest import control_plane_binaries  # noqa: F401 - until the files mixing tiers are split
from ..integration.conftest import control_plane, kube, node_cluster  # noqa: F401 - likewise


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
