"""Deploying the release with skaffold (k3d and existing backends).

The top-level skaffold.yaml holds one config module per piece (``subject``,
``server``, ``controller``) whose sources are ``.build/<component>``; this module
only builds the command line, so its use by each backend is unit-testable.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import progress
from ..commands import run
from ..components import ResolvedSource
from ..crds import controller_crds, install_crds, server_crds
from ..mariadb import MariaDBAddress
from ..postgres import PostgresAddress
from .base import Backend, Endpoints
from .portforward import PortForward

MODULES = ("subject", "server", "controller")


@dataclass(frozen=True)
class Skaffold:
    binary: Path
    project_dir: Path
    kubeconfig: Path
    kube_context: str | None
    default_repo: str | None

    def run_command(self, module: str, tag: str) -> list[str]:
        """``skaffold run`` for one module: build (unless prebuilt), push, deploy, wait."""
        if module not in MODULES:
            raise ValueError(f"unknown skaffold module {module!r}; known: {', '.join(MODULES)}")
        cmd = [str(self.binary), "run",
               "--filename", str(self.project_dir / "skaffold.yaml"),
               "--module", module,
               "--kubeconfig", str(self.kubeconfig),
               "--tag", tag,
               "--status-check=true",
               "--cache-artifacts=true",
               "--interactive=false",
               "--update-check=false"]
        if self.kube_context:
            cmd += ["--kube-context", self.kube_context]
        if self.default_repo:
            cmd += ["--default-repo", self.default_repo]
        return cmd

    def delete_command(self, module: str) -> list[str]:
        cmd = [str(self.binary), "delete", "--filename", str(self.project_dir / "skaffold.yaml"),
               "--module", module, "--kubeconfig", str(self.kubeconfig)]
        if self.kube_context:
            cmd += ["--kube-context", self.kube_context]
        return cmd


# --- shared by the backends that deploy into a real cluster with skaffold -----------------
SERVER_NAMESPACE = "backups"
SERVER_SERVICE = "server-backup-repository-server"  # release "server" of the server's chart
SERVER_PORT = 8080
CONTROLLER_NAMESPACE = "backup-maker-controller"  # skaffold.yaml, module controller
SUBJECT_NAMESPACE = "db"  # fixtures/k3d/postgres.yaml: the subject PostgreSQL and its throwaway credentials
SUBJECT_SERVICE = "postgres"
SUBJECT_PORT = 5432
SUBJECT_CREDENTIALS = ("harness", "harness-db-password", "postgres")  # user, password, database
SUBJECT_MARIADB_SERVICE = "mariadb"  # fixtures/k3d/mariadb.yaml
SUBJECT_MARIADB_PORT = 3306
SUBJECT_MARIADB_CREDENTIALS = ("root", "harness-mariadb-password")
SERVER_HEALTH_KEY = "harness-health-code"  # fixtures/k3d/server.values.yaml


class SkaffoldBackend(Backend):
    """Deploys CRDs, subject, server and controller with skaffold; reaches the server by port-forward."""

    _forwards: tuple[PortForward, ...] = ()

    @abstractmethod
    def skaffold(self) -> Skaffold:
        """The skaffold invocation for this cluster (registry, kubeconfig, context)."""

    def deploy(self, sources: Sequence[ResolvedSource]) -> None:
        by_name = {s.component.name: s for s in sources}
        install_crds(self.kube, controller_crds(by_name["backup-maker-controller"]))
        install_crds(self.kube, server_crds(by_name["backup-repository"]))
        steps = [("subject", "subject database", False),
                 ("server", "backup-repository server", self.settings.skip_server_install),
                 ("controller", "backup-maker-controller", self.settings.skip_client_install)]
        if all(skip for _, _, skip in steps[1:]):
            return
        skaffold = self.skaffold()
        for module, what, skip in steps:
            if not skip:
                with progress.step(f"skaffold: building and deploying the {what}"):
                    run(skaffold.run_command(module, self.settings.run_id), what=f"skaffold: {what}", timeout=1800)

    def endpoints(self) -> Endpoints:
        if not self._forwards:
            kubectl = self.settings.bin_dir / "kubectl"
            self._forwards = (PortForward(kubectl, self.kubeconfig, SERVER_NAMESPACE, SERVER_SERVICE, SERVER_PORT,
                                          self.kube_context),
                              PortForward(kubectl, self.kubeconfig, SUBJECT_NAMESPACE, SUBJECT_SERVICE,
                                          SUBJECT_PORT, self.kube_context),
                              PortForward(kubectl, self.kubeconfig, SUBJECT_NAMESPACE, SUBJECT_MARIADB_SERVICE,
                                          SUBJECT_MARIADB_PORT, self.kube_context))
            for forward in self._forwards:
                forward.start()
        server, subject, mariadb = self._forwards
        in_pods = PostgresAddress(f"{SUBJECT_SERVICE}.{SUBJECT_NAMESPACE}.svc.cluster.local", SUBJECT_PORT,
                                  *SUBJECT_CREDENTIALS)
        return Endpoints(
            server_url_from_tests=f"http://127.0.0.1:{server.local_port}",
            server_url_in_pods=f"http://{SERVER_SERVICE}.{SERVER_NAMESPACE}.svc.cluster.local:{SERVER_PORT}",
            server_namespace=SERVER_NAMESPACE, server_health_key=SERVER_HEALTH_KEY,
            subject_db_from_tests=PostgresAddress("127.0.0.1", subject.local_port, *SUBJECT_CREDENTIALS),
            subject_db_in_pods=in_pods,
            subject_mariadb_from_tests=MariaDBAddress("127.0.0.1", mariadb.local_port, *SUBJECT_MARIADB_CREDENTIALS),
            subject_mariadb_in_pods=MariaDBAddress(f"{SUBJECT_MARIADB_SERVICE}.{SUBJECT_NAMESPACE}.svc.cluster.local",
                                                   SUBJECT_MARIADB_PORT, *SUBJECT_MARIADB_CREDENTIALS))

    def diagnostic_namespaces(self) -> list[str]:
        return [SERVER_NAMESPACE, CONTROLLER_NAMESPACE, SUBJECT_NAMESPACE]

    def stop(self) -> None:
        for forward in self._forwards:
            forward.stop()
        self._forwards = ()
        self.close_client()
