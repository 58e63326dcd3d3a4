"""The local backend: a real control plane and the release's components as host processes (no Docker).

``start`` brings up etcd, kube-apiserver and kube-controller-manager (``controlplane``)
and the node agent. ``deploy`` builds the pinned components (``builds``), installs their
CRDs, starts PostgreSQL (one instance for the server's metadata, one for the backup
subject) and Redis (``databases``), and, when Debian's mariadb-server is installed, a
MariaDB subject for the mysql-family templates (``mariadb_server``), then the server and
the controller (``component_processes``), and finally adds to the agent's image table the
images of the Jobs the pinned controller and its templates render, mapped to host toolsets
of the same versions (``image_table``; ``unhostable_reason`` says why any other cannot run here).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dotenv import dotenv_values

from ... import abandoned, progress
from ...builds import build_all
from ...crds import controller_crds, install_crds, server_crds
from ...masking import MASKER
from ...processes import ProcessGroup
from ..base import Backend, BackendUnavailable, Endpoints
from .component_processes import ControllerProcess, ServerProcess
from .controlplane import ControlPlane, ControlPlaneBinaries
from .databases import DatabaseError, PostgresServer, RedisServer, postgres_bin_dir
from .mariadb_server import MariaDBServer, debian_mariadb_version
from .node_agent import NodeAgent, Toolset, UnknownImage, resolve_image

NODE_NAME = "e2e-local-node"
SERVER_NAMESPACE = "backup-repository"
BACKUP_MAKER_IMAGE = "ghcr.io/riotkit-org/br-backup-maker*"  # any tag: the release names only `:main`


def image_table(release, binaries: dict[str, Path], mariadb_version: str | None = None,
                debian_codename: str | None = None) -> dict[str, Toolset]:
    """The images of the Jobs the pinned controller renders, mapped to host toolsets of the same versions.

    backup-maker is named by the controller's templates only through a floating tag, so
    the harness decides which build answers to it: the one at BACKUP_MAKER_VERSION.
    pgbr's image carries the PostgreSQL major's client tools: Debian's of the same major.
    The templates' ``mariadb:<major>`` images get Debian's MariaDB tools only for the major
    Debian installed, and ``debian:<codename>-slim`` the host's own tools only when the host
    is that Debian release. An image is never mapped to a toolset of another major version.
    Images run with the working directory of their Dockerfiles (``/``: postgres, mariadb and
    debian set no WORKDIR), which the withFiles restores rely on (``tar x`` into the cwd).
    """
    major = release["POSTGRES_VERSION"]
    pgbr_image = f"ghcr.io/riotkit-org/pgbr:{release['PGBR_VERSION']}-pg{major}"
    table = {
        BACKUP_MAKER_IMAGE: Toolset(f"backup-maker {release['BACKUP_MAKER_VERSION']}",
                                    (str(binaries["backup-maker"].parent),)),
        pgbr_image: Toolset(f"pgbr {release['PGBR_VERSION']} + PostgreSQL {major} client tools",
                            (str(binaries["pgbr"].parent), str(postgres_bin_dir(major))), working_dir="/"),
    }
    if mariadb_version:
        table[f"docker.io/mariadb:{mariadb_version}*"] = Toolset(f"Debian's MariaDB {mariadb_version} tools",
                                                                 working_dir="/")
    if debian_codename:
        for image in (f"docker.io/debian:{debian_codename}-slim", f"docker.io/debian:{debian_codename}"):
            table[image] = Toolset(f"this host's Debian {debian_codename} tools", working_dir="/")
    return table


def unhostable_reason(image: str, images: dict[str, Toolset], release, mariadb_version: str | None,
                      debian_codename: str | None) -> str | None:
    """None when ``image`` has a faithful toolset here, else what is missing (for the skip reason)."""
    try:
        resolve_image(image, images)
        return None
    except UnknownImage:
        pass
    where = "; it runs on the k3d backend"
    if m := re.search(r"/pgbr:.*-pg(\d+)$", image):
        return (f"image {image} needs PostgreSQL {m.group(1)} client tools; the local backend has Debian's "
                f"PostgreSQL {release['POSTGRES_VERSION']} only (POSTGRES_VERSION){where}")
    if m := re.search(r"/mariadb:(\d+\.\d+)", image):
        have = f"Debian's mariadb-server here is {mariadb_version}" if mariadb_version else (
            "Debian's mariadb-server is not installed (`make system-deps`)")
        return f"image {image} needs MariaDB {m.group(1)} tools; {have}{where}"
    if m := re.search(r"/mysql:(\d+\.\d+)", image):
        return f"image {image} needs MySQL {m.group(1)} tools; Debian ships MariaDB, not MySQL{where}"
    if "kubectl" in image:
        return (f"image {image}: the kubectl template runs `kubectl exec` in running pods, which the local "
                f"backend's node agent does not provide{where}")
    if m := re.search(r"/debian:([a-z]+)", image):
        return (f"image {image} needs Debian {m.group(1)}'s tools; this host is Debian "
                f"{debian_codename or 'not Debian'}{where}")
    return f"image {image} has no host toolset on the local backend{where}"


def host_debian_codename(os_release: Path = Path("/etc/os-release")) -> str | None:
    try:
        values = dotenv_values(os_release)
    except OSError:
        return None
    return values.get("VERSION_CODENAME") if values.get("ID") == "debian" else None


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings):
        super().__init__(settings)
        self.state_dir = settings.build_dir / "local" / settings.run_id
        self.control_plane: ControlPlane | None = None
        # Raw logs stay private (the controller logs rendered scripts with tokens and keys); stop() copies
        # them, masked, into the artifacts directory. Failure bundles mask what they copy too.
        self.raw_logs = self.state_dir / "logs"
        self.services = ProcessGroup(self.raw_logs / "services")
        self.databases: list[PostgresServer | MariaDBServer] = []
        self.mariadb_version = debian_mariadb_version()
        self.debian_codename = host_debian_codename()
        self.agent: NodeAgent | None = None
        self._endpoints: Endpoints | None = None

    def preflight(self) -> None:
        """Every host tool this backend needs, named when missing, before anything is resolved or built."""
        needed = {"go": "the Go toolchain builds the components (Debian's golang-go, or go.dev)",
                  "git": "component sources are git checkouts", "gpg": "backup pods encrypt with gpg",
                  "bash": "backup pods run bash scripts", "unshare": "the node agent isolates mounts (util-linux)",
                  "redis-server": "the controller's locks (Debian's redis-server)"}
        if os.geteuid() == 0:
            needed["setpriv"] = "PostgreSQL runs as the postgres user when the harness runs as root (util-linux)"
        from ...debian import install_hint

        missing = {tool: why for tool, why in needed.items() if shutil.which(tool) is None}
        major = self.settings.release["POSTGRES_VERSION"]
        try:
            postgres_bin_dir(major)
        except DatabaseError as exc:  # "PostgreSQL 15: <path> not found; ..."
            missing[f"postgresql-{major}"] = (f"{str(exc).split(';')[0]}; or set POSTGRES_VERSION in release.env "
                                              "to the major you have")
        if missing:
            raise BackendUnavailable("the local backend needs: " + "; ".join(f"{t} ({w})" for t, w in missing.items())
                                     + ". " + install_hint(missing))
        for knob, value in (("SKIP_SERVER_INSTALL", self.settings.skip_server_install),
                            ("SKIP_CLIENT_INSTALL", self.settings.skip_client_install)):
            if value:
                raise BackendUnavailable(f"{knob}=true means 'already deployed', but the local backend starts a "
                                         "fresh cluster every run; unset it, or use --backend existing")

    def start(self) -> None:
        from . import binaries  # not at import: `python -m ...local.binaries` must not see itself imported

        release = self.settings.release
        # Before making anything: remove what killed runs left (their secrets are in it).
        abandoned.sweep(abandoned.candidates(self.settings.build_dir), say=progress.say)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.settings.keep_cluster:
            abandoned.claim(self.state_dir)
        kube = binaries.kubernetes_binaries(release["KUBERNETES_VERSION"], progress=progress.say)
        self.control_plane = ControlPlane(
            ControlPlaneBinaries(etcd=binaries.etcd_binary(release["ETCD_VERSION"], progress=progress.say),
                                 kube_apiserver=kube["kube-apiserver"],
                                 kube_controller_manager=kube["kube-controller-manager"]),
            state_dir=self.state_dir, log_dir=self.raw_logs / "control-plane")
        self.control_plane.start()
        # The cluster is private to this run: the agent runs pods of every namespace.
        self.agent = NodeAgent(self.kube, NODE_NAME, self.state_dir / "pods",
                               {"busybox": Toolset("host-shell")},
                               namespace_selector=lambda namespace: True)
        self.agent.register_node()
        self.agent.start()

    def deploy(self, sources) -> None:
        release = self.settings.release
        by_name = {s.component.name: s for s in sources}
        with progress.step("building the components at their pins"):
            binaries = build_all(sources, progress=progress.say)
        install_crds(self.kube, controller_crds(by_name["backup-maker-controller"]))
        install_crds(self.kube, server_crds(by_name["backup-repository"]))
        self.kube.create_namespace(SERVER_NAMESPACE)
        with progress.step("starting PostgreSQL and Redis"):
            server_db, subject_db = (PostgresServer(name, release["POSTGRES_VERSION"], self.services, self.state_dir)
                                     for name in ("server-postgres", "subject-postgres"))
            self.databases = [server_db, subject_db]
            server_db.start()
            metadata = server_db.create_owned_database("backup_repository", "backup_repository")
            subject = subject_db.start()
            redis_port = RedisServer(self.services, self.state_dir).start()
        subject_mariadb = None
        if self.mariadb_version:  # for the mysql-family templates; without it they are not hostable here
            with progress.step(f"starting MariaDB {self.mariadb_version}"):
                mariadb = MariaDBServer(self.services)
                self.databases.append(mariadb)
                subject_mariadb = mariadb.start()
        server = ServerProcess(binaries["backup-repository"], self.services, self.state_dir, self.kube.kubeconfig)
        with progress.step("starting the backup-repository server"):
            server.start(SERVER_NAMESPACE, metadata)
        with progress.step("starting the backup-maker-controller"):
            ControllerProcess(binaries["backup-maker-controller"], self.services, self.state_dir,
                              self.kube.kubeconfig).start(redis_port)
        self._endpoints = Endpoints(server_url_from_tests=server.url, server_url_in_pods=server.url,
                                    server_namespace=SERVER_NAMESPACE, server_health_key=server.health_key,
                                    subject_db_from_tests=subject, subject_db_in_pods=subject,
                                    subject_mariadb_from_tests=subject_mariadb, subject_mariadb_in_pods=subject_mariadb)
        # read by the agent for every new pod
        self.agent.images.update(image_table(release, binaries, self.mariadb_version, self.debian_codename))

    def unhostable_reason(self, image: str) -> str | None:
        return unhostable_reason(image, self.agent.images if self.agent else {}, self.settings.release,
                                 self.mariadb_version, self.debian_codename)

    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise BackendUnavailable("the local backend has not deployed the release yet")
        return self._endpoints

    def check_services(self) -> None:
        """Raise naming a service (server, controller, a database) that has died, with its log."""
        self.services.check_running()

    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise BackendUnavailable("the local backend's control plane is not started")
        return self.control_plane.kubeconfig

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        return self.agent.pod_logs(namespace, pod, container) if self.agent else ""

    def diagnostic_namespaces(self) -> list[str]:
        return [SERVER_NAMESPACE]

    def service_logs(self) -> dict[str, Path]:
        groups = [self.services] + ([self.control_plane.processes] if self.control_plane else [])
        return {p.name: p.log_path for group in groups for p in group.processes}

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        self.close_client()
        self.services.stop()
        for database in self.databases:
            database.cleanup()
        self.databases = []
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        self._publish_masked_logs()
        # etcd's data, the PKI, raw logs and the pods' secret volumes hold every secret of the run: keep
        # none of it unless the user asked to keep the cluster.
        if not self.settings.keep_cluster and self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    def _publish_masked_logs(self) -> None:
        """Every service's and control-plane process's log, masked, under <artifacts>/<group>/<name>.log."""
        for raw in sorted(self.raw_logs.rglob("*.log")) if self.raw_logs.exists() else []:
            dest = self.settings.artifacts_dir / raw.relative_to(self.raw_logs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(MASKER.mask(raw.read_text(errors="replace")))
