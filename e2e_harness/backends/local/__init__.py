"""The local backend: a real Kubernetes cluster from upstream parts, on this machine, without Docker.

``start`` brings up the control plane (``controlplane``: etcd, kube-apiserver,
kube-controller-manager) and a real node (``node``: containerd, kubelet, kube-proxy,
kube-scheduler, CoreDNS) in a network namespace of the run's own, with an image registry
whose images are built here (``images``, ``image_recipes``). ``deploy`` builds the pinned
components (``builds``), installs their CRDs, starts PostgreSQL (the server's metadata and the
backup subject), Redis and, when Debian's mariadb-server is installed, a MariaDB subject as host
processes listening where pods reach them (``databases``, ``mariadb_server``), then the server
and the controller (``component_processes``), and publishes the images the pinned controller
and its templates name, built from the pinned sources and Debian's packages. Pods run in real
containers with only their image's filesystem; an image no recipe builds fails to pull, and
``unhostable_reason`` says why for the template matrix.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from dotenv import dotenv_values

from ... import abandoned, progress
from ...builds import build_all
from ...crds import controller_crds, install_crds, server_crds
from ...masking import MASKER
from ...processes import ProcessGroup
from ..base import Backend, BackendError, BackendUnavailable, Endpoints
from . import image_recipes, node_cleanup
from .component_processes import ControllerProcess, ServerProcess
from .controlplane import ControlPlane, ControlPlaneBinaries
from .databases import DatabaseError, PostgresServer, RedisServer, postgres_bin_dir
from .images import normalise, publish, qualified
from .mariadb_server import MariaDBServer, debian_mariadb_version
from .node import NODE_PACKAGES, NodeBinaries, NodeImages, RealNode, debian_versions

SERVER_NAMESPACE = "backup-repository"


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
        self.node: RealNode | None = None
        # Raw logs stay private (the controller logs rendered scripts with tokens and keys); stop() copies
        # them, masked, into the artifacts directory. Failure bundles mask what they copy too.
        self.raw_logs = self.state_dir / "logs"
        self.services = ProcessGroup(self.raw_logs / "services")
        self.databases: list[PostgresServer | MariaDBServer] = []
        self.mariadb_version = debian_mariadb_version()
        self.debian_codename = host_debian_codename()
        self.images: dict[str, str] = {}     # normalised image reference -> digest, as the registry serves them
        self.image_sources: dict[str, str] = {}   # normalised reference -> " (<component> at <revision>)"
        self._endpoints: Endpoints | None = None

    def preflight(self) -> None:
        """Root, and every host tool this backend needs, named when missing, before anything is resolved or built."""
        from ...debian import install_hint

        needed = {"go": "the Go toolchain builds the components and Kubernetes (Debian's golang-go, or go.dev)",
                  "git": "component sources are git checkouts", "gpg": "the harness makes the backups' keys",
                  "redis-server": "the controller's locks (Debian's redis-server)",
                  "setpriv": "PostgreSQL runs as the postgres user (util-linux)",
                  "containerd": "the node's container runtime", "ctr": "ends the node's containers at teardown",
                  "runc": "the node's OCI runtime", "/usr/lib/cni/bridge": "the node's pod network (CNI plugins)",
                  "iptables": "kube-proxy's Services", "conntrack": "kube-proxy's Services",
                  "ip": "the node's network namespace (iproute2)", "nsenter": "runs the node in its namespace",
                  "docker-registry": "serves the images built here", "mmdebstrap": "builds Debian-based images",
                  "skopeo": "pushes the images built here", "gcc": "builds the pause image",
                  "busybox": "the busybox image (busybox-static)"}
        missing = {tool: why for tool, why in needed.items()
                   if not (os.access(tool, os.X_OK) if tool.startswith("/") else shutil.which(tool))}
        major = self.settings.release["POSTGRES_VERSION"]
        try:
            postgres_bin_dir(major)
        except DatabaseError as exc:  # "PostgreSQL 15: <path> not found; ..."
            missing[f"postgresql-{major}"] = (f"{str(exc).split(';')[0]}; or set POSTGRES_VERSION in release.env "
                                              "to the major you have")
        problems = []
        if os.geteuid() != 0:
            problems.append("the local backend runs a real Kubernetes node (containerd, runc, a network namespace, "
                            "cgroups, iptables), which needs root: run as root, or use --backend k3d (Docker) or "
                            "--backend existing")
        if missing:
            problems.append("the local backend needs: " + "; ".join(f"{t} ({w})" for t, w in missing.items())
                            + ". " + install_hint(missing))
        if problems:
            raise BackendUnavailable(". ".join(problems))
        for knob, value in (("SKIP_SERVER_INSTALL", self.settings.skip_server_install),
                            ("SKIP_CLIENT_INSTALL", self.settings.skip_client_install)):
            if value:
                raise BackendUnavailable(f"{knob}=true means 'already deployed', but the local backend starts a "
                                         "fresh cluster every run; unset it, or use --backend existing")

    def start(self) -> None:
        from . import binaries  # not at import: `python -m ...local.binaries` must not see itself imported

        release = self.settings.release
        # Before making anything: release and remove what killed runs left (their secrets are in it).
        abandoned.sweep(abandoned.candidates(self.settings.build_dir) + node_cleanup.run_dirs(), say=progress.say,
                        before_remove=node_cleanup.sweep_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.settings.keep_cluster:
            abandoned.claim(self.state_dir)
        kube = binaries.kubernetes_binaries(release["KUBERNETES_VERSION"], progress=progress.say)
        coredns = binaries.coredns_binary(release["COREDNS_VERSION"], progress=progress.say)
        provisioner = binaries.local_path_provisioner_binary(release["LOCAL_PATH_PROVISIONER_VERSION"],
                                                            progress=progress.say)
        self.node = RealNode(NodeBinaries(kubelet=kube["kubelet"], kube_proxy=kube["kube-proxy"],
                                          kube_scheduler=kube["kube-scheduler"]),
                             self.state_dir, self.raw_logs / "node", self.settings.run_id)
        network = self.node.prepare()
        self.control_plane = ControlPlane(
            ControlPlaneBinaries(etcd=binaries.etcd_binary(release["ETCD_VERSION"], progress=progress.say),
                                 kube_apiserver=kube["kube-apiserver"],
                                 kube_controller_manager=kube["kube-controller-manager"]),
            state_dir=self.state_dir, log_dir=self.raw_logs / "control-plane", address=network.host_ip)
        self.control_plane.start()
        registry = self.node.start_registry()
        images = NodeImages(pause=image_recipes.pause(), coredns=image_recipes.coredns(coredns, release["COREDNS_VERSION"]),
                            local_path_provisioner=image_recipes.local_path_provisioner(
                                provisioner, release["LOCAL_PATH_PROVISIONER_VERSION"]))
        self._publish([*vars(images).values(), image_recipes.busybox()], registry)
        self.node.start(self.control_plane, NodeImages(**{name: qualified(recipe.refs[0])
                                                          for name, recipe in vars(images).items()}))

    def _publish(self, recipes, registry: str) -> None:
        with progress.step(f"publishing {len(recipes)} image(s) to the node's registry {registry}"):
            self.images.update({normalise(ref): digest for ref, digest in publish(recipes, registry).items()})

    def deploy(self, sources) -> None:
        release = self.settings.release
        network = self.node.network
        by_name = {s.component.name: s for s in sources}
        with progress.step("building the components at their pins"):
            binaries = build_all(sources, progress=progress.say)
        install_crds(self.kube, controller_crds(by_name["backup-maker-controller"]))
        install_crds(self.kube, server_crds(by_name["backup-repository"]))
        self.kube.create_namespace(SERVER_NAMESPACE)
        pod_network = f"{network.host_ip}/30"
        with progress.step("starting PostgreSQL and Redis"):
            server_db, subject_db = (PostgresServer(name, release["POSTGRES_VERSION"], self.services, self.state_dir,
                                                    pod_network=pod_network)
                                     for name in ("server-postgres", "subject-postgres"))
            self.databases = [server_db, subject_db]
            server_db.start()
            metadata = server_db.create_owned_database("backup_repository", "backup_repository")
            subject = subject_db.start()
            redis_port = RedisServer(self.services, self.state_dir).start()
        subject_mariadb = None
        if self.mariadb_version:  # for the mysql-family templates; without it they are not hostable here
            with progress.step(f"starting MariaDB {self.mariadb_version}"):
                mariadb = MariaDBServer(self.services, pod_address=network.host_ip)
                self.databases.append(mariadb)
                subject_mariadb = mariadb.start()
        server = ServerProcess(binaries["backup-repository"], self.services, self.state_dir, self.kube.kubeconfig)
        with progress.step("starting the backup-repository server"):
            server.start(SERVER_NAMESPACE, metadata, address=network.host_ip)
        with progress.step("starting the backup-maker-controller"):
            ControllerProcess(binaries["backup-maker-controller"], self.services, self.state_dir,
                              self.kube.kubeconfig).start(redis_port)
        recipes = image_recipes.release_images(release, binaries, self.mariadb_version, self.debian_codename)
        built_from = {"backup-maker": by_name["backup-maker"], "pgbr-": by_name["pgbr"]}
        for recipe in recipes:
            for prefix, source in built_from.items():
                if recipe.name.startswith(prefix):
                    self.image_sources.update({normalise(ref): f" ({source.component.name} at {source.revision})"
                                               for ref in recipe.refs})
        self._publish(recipes, self.node.registry)
        self._endpoints = Endpoints(
            server_url_from_tests=server.url, server_url_in_pods=server.url,
            server_namespace=SERVER_NAMESPACE, server_health_key=server.health_key,
            subject_db_from_tests=subject, subject_db_in_pods=replace(subject, host=network.host_ip),
            subject_mariadb_from_tests=subject_mariadb,
            subject_mariadb_in_pods=replace(subject_mariadb, host=network.host_ip) if subject_mariadb else None)

    def platform(self) -> dict[str, str]:
        release = self.settings.release
        parts = {"kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy)":
                 release["KUBERNETES_VERSION"], "etcd": release["ETCD_VERSION"], "coredns": release["COREDNS_VERSION"],
                 "local-path-provisioner": release["LOCAL_PATH_PROVISIONER_VERSION"]}
        parts.update({f"{package} (Debian)": version for package, version in debian_versions(NODE_PACKAGES).items()})
        parts.update({f"image {ref}": f"{digest}{self.image_sources.get(ref, '')}" for ref, digest in self.images.items()})
        return parts

    def unhostable_reason(self, image: str) -> str | None:
        if normalise(image) in self.images:
            return None
        return image_recipes.unhostable_reason(image, self.settings.release, self.mariadb_version)

    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise BackendUnavailable("the local backend has not deployed the release yet")
        return self._endpoints

    def check_services(self) -> None:
        """Raise naming a service (server, controller, a database, a node part) that has died, with its log."""
        self.services.check_running()
        if self.node is not None:
            self.node.check_running()

    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise BackendUnavailable("the local backend's control plane is not started")
        return self.control_plane.kubeconfig

    def diagnostic_namespaces(self) -> list[str]:
        return [SERVER_NAMESPACE, "kube-system"]

    def service_logs(self) -> dict[str, Path]:
        groups = [self.services] + ([self.control_plane.processes] if self.control_plane else [])
        processes = [p for group in groups for p in group.processes] + (self.node.processes if self.node else [])
        return {p.name: p.log_path for p in processes}

    def stop(self) -> None:
        self.close_client()
        # The node first: its containers end before the services they talk to, and its mounts go before
        # anything below the state dir is removed.
        try:
            if self.node is not None:
                self.node.stop()
                self.node = None
        finally:   # a node that could not be cleaned up completely must not keep the rest running
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
            if mounts := node_cleanup.mounts_under(self.state_dir):   # never delete through a mount
                raise BackendError(f"cannot remove {self.state_dir}: still mounted below it: "
                                         f"{', '.join(map(str, mounts[:5]))}")
            shutil.rmtree(self.state_dir)

    def _publish_masked_logs(self) -> None:
        """Every service's and control-plane process's log, masked, under <artifacts>/<group>/<name>.log."""
        for raw in sorted(self.raw_logs.rglob("*.log")) if self.raw_logs.exists() else []:
            dest = self.settings.artifacts_dir / raw.relative_to(self.raw_logs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(MASKER.mask(raw.read_text(errors="replace")))
