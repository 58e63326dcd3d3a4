"""The server (backup-repository) and the controller (backup-maker-controller) as host processes.

Both talk to the local API server through its kubeconfig, exactly as they would with
in-cluster config. Their flags follow ../shared/reference (server.md §4, controller.md §5):
the server with the Kubernetes configuration provider, file storage under the run's
state directory, raised rate limits and generated secrets; the controller with
Redis on loopback, leader election off, and a private working directory and HOME
(it extracts templates to ``$HOME/.bm`` and ``./templates``).
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path

import requests
import urllib3

from ...masking import MASKER
from ...postgres import PostgresAddress
from ...processes import ProcessGroup, free_port
from ...waiting import Observation, poll_until

READY_TIMEOUT = 90
RATE_LIMIT = 10000  # the server's limits are 16-bit and per client IP; its defaults trip a test suite


def _wait_http(processes: ProcessGroup, name: str, url: str, headers: dict | None = None) -> None:
    """Until ``url`` answers 200, failing at once (with the log's tail) if the process exits."""
    def check() -> Observation:
        processes.check_running()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                response = requests.get(url, headers=headers or {}, timeout=5)
        except requests.RequestException as exc:
            return Observation(False, type(exc).__name__)
        return Observation(response.status_code == 200, f"HTTP {response.status_code} {response.text[:200]!r}")

    poll_until(check, what=f"{name} to answer 200 at {url}", timeout=READY_TIMEOUT, interval=0.2,
               where=str(processes.log_dir / f"{name}.log"))


class ServerProcess:
    """backup-repository with ``--provider=kubernetes``; ready when ``/ready`` answers 200."""

    name = "backup-repository"

    def __init__(self, binary: Path, processes: ProcessGroup, state_dir: Path, kubeconfig: Path):
        self.binary, self.processes, self.state_dir, self.kubeconfig = binary, processes, state_dir, kubeconfig
        self.health_key = secrets.token_urlsafe(16)
        self.jwt_secret = secrets.token_urlsafe(32)
        MASKER.add(self.health_key)
        MASKER.add(self.jwt_secret)
        self.url = ""

    def start(self, namespace: str, database: PostgresAddress, address: str = "127.0.0.1") -> None:
        """Listen on ``address``: where both the tests and the pods reach it (the host end of the node's veth)."""
        port = free_port(address)
        self.url = f"http://{address}:{port}"
        storage = self.state_dir / "server-storage"
        self.processes.start(self.name, [
            self.binary, "--provider=kubernetes", f"--namespace={namespace}",
            f"--db-hostname={database.host}", f"--db-port={database.port}", f"--db-user={database.user}",
            f"--db-name={database.dbname}", f"--listen={address}:{port}",
            f"--storage-url=file://{storage}?create_dir=1",
            f"--rate-auth-limit={RATE_LIMIT}", f"--rate-default-limit={RATE_LIMIT}",
            f"--rate-collection-health-limit={RATE_LIMIT}", f"--rate-server-health-limit={RATE_LIMIT}",
            "--log-level=info"],
            # Secrets through the environment, so they are not on the command line (ps, logs).
            env={"KUBECONFIG": str(self.kubeconfig), "BR_DB_PASSWORD": database.password,
                 "BR_JWT_SECRET_KEY": self.jwt_secret, "BR_HEALTH_CHECK_KEY": self.health_key},
            cwd=self.state_dir, ports=(port,), address=address)
        _wait_http(self.processes, self.name, f"{self.url}/ready", {"Authorization": self.health_key})


class ControllerProcess:
    """backup-maker-controller; ready when its health probe's ``/readyz`` answers 200."""

    name = "backup-maker-controller"

    def __init__(self, binary: Path, processes: ProcessGroup, state_dir: Path, kubeconfig: Path):
        self.binary, self.processes, self.kubeconfig = binary, processes, kubeconfig
        self.home = state_dir / "controller"

    def start(self, redis_port: int) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        metrics, health = free_port(), free_port()
        self.processes.start(self.name, [
            self.binary, f"--metrics-bind-address=127.0.0.1:{metrics}",
            f"--health-probe-bind-address=127.0.0.1:{health}", "--leader-elect=false",
            "--redis-host=127.0.0.1", f"--redis-port={redis_port}"],
            # KUBECONFIG must name one file (controller.md §5); HOME and cwd are private and writable.
            env={"KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home)}, cwd=self.home, ports=(metrics, health))
        _wait_http(self.processes, self.name, f"http://127.0.0.1:{health}/readyz")
