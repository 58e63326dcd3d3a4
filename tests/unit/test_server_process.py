"""The real server at its pin, started the way the local backend starts it, on the self-tests' control plane.

What the e2e suite cannot do to its shared server: stop the server's PostgreSQL and see
``/ready`` turn red (../shared/reference/server.md §8). Also proves the local backend's
pieces on their own: PostgreSQL as a host process, the server's flags, the admin helpers.
"""

from __future__ import annotations

import os
import signal

import pytest

from e2e_harness.backends.local.component_processes import ServerProcess
from e2e_harness.backends.local.databases import PostgresServer
from e2e_harness.builds import build
from e2e_harness.components import COMPONENTS, SourceResolver, git_mirror_from
from e2e_harness.crds import install_crds, server_crds
from e2e_harness.processes import ProcessGroup
from e2e_harness.release import load_release
from e2e_harness.server_api import ServerAdmin, ServerClient
from e2e_harness.waiting import Observation, poll_until

from .conftest import PROJECT_DIR

pytestmark = [pytest.mark.needs_go, pytest.mark.timeout(900)]

NAMESPACE = "t-server-process"


@pytest.fixture(scope="module")
def server_binary(tmp_path_factory):
    mirror = git_mirror_from(None, os.environ) or PROJECT_DIR.parent / "shared" / "mirrors"
    if not (mirror / "backup-repository.bundle").is_file():
        pytest.skip(f"needs the server's source: no git mirror at {mirror} (set E2E_GIT_MIRROR)")
    release = load_release(PROJECT_DIR / "release.env", environ={})
    component = next(c for c in COMPONENTS if c.name == "backup-repository")
    source = SourceResolver(tmp_path_factory.mktemp("build"), git_mirror=mirror).resolve(
        component, release.pin(component.pin_key))
    return source, build(source)


def test_server_ready_fails_once_its_postgresql_is_stopped(control_plane, kube, server_binary, tmp_path):
    source, binary = server_binary
    install_crds(kube, server_crds(source))
    kube.create_namespace(NAMESPACE)
    group = ProcessGroup(tmp_path / "logs")
    postgres = PostgresServer("server-postgres", load_release(PROJECT_DIR / "release.env", environ={})["POSTGRES_VERSION"],
                              group, tmp_path)
    try:
        postgres.start()
        database = postgres.create_owned_database("backup_repository", "backup_repository")
        server = ServerProcess(binary, group, tmp_path, control_plane.kubeconfig)
        server.start(NAMESPACE, database)
        client = ServerClient(server.url)
        assert client.ready(server.health_key).status_code == 200
        assert client.ready("not-the-health-key").status_code != 200, "/ready accepted a wrong health key"

        # A user made by the admin helpers logs in against this real server.
        ServerAdmin(kube, NAMESPACE).create_user("ready-check", "a-password-1", ["systemAdmin"])
        assert client.login("ready-check", "a-password-1")

        pg = next(p for p in group.processes if p.name == "server-postgres")
        pg.popen.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        pg.popen.wait(timeout=30)

        def red() -> Observation:
            response = client.ready(server.health_key)
            return Observation(response.status_code >= 500, f"HTTP {response.status_code} {response.text[:200]!r}")

        seen = poll_until(red, what="/ready to fail after the server's PostgreSQL stopped", timeout=60,
                          interval=0.5, where=str(group.log_dir / "backup-repository.log"))
        assert "HTTP 5" in seen.state
    finally:
        group.stop()
        postgres.cleanup()
        kube.delete_namespace(NAMESPACE)
