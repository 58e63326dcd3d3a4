"""The local backend: a real Kubernetes cluster from upstream parts, on this machine, without Docker.

``start`` brings up the control plane (``controlplane``: etcd, kube-apiserver,
kube-controller-manager) and a real node (``node``: containerd, kubelet, kube-proxy,
kube-scheduler, CoreDNS) in a network namespace of the run's own, with an image registry
whose images are built here (``images``, ``image_recipes``). ``deploy`` publishes the images
the release's pods name that no registry here serves (the subject databases and Redis, the
backup-maker and pgbr images built from their pinned sources, every image of the pinned templates
a recipe builds: ``image_recipes.release_images``, and ``kubectl_image``'s kubectl-light-image at the
tags the pinned templates name), then deploys exactly as every
backend does (``SkaffoldBackend``: skaffold, ko and the components' Helm charts). Pods run in
real containers with only their image's filesystem; an image no recipe builds fails to pull, and
``unhostable_reason`` gives the reason its recipe lookup recorded, for the template matrix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml
from dotenv import dotenv_values

from ... import abandoned, progress
from ...builds import build
from ...subjects import DEPLOY_DIR
from ...templates import load_definitions
from ..base import BackendError, BackendUnavailable, BackendUsageError
from ..skaffold import Skaffold, SkaffoldBackend
from . import image_recipes, kubectl_image, node_cleanup
from .controlplane import ControlPlane, ControlPlaneBinaries
from ...processes import group_alive
from .images import normalise, publish, qualified
from .kept import KeptCluster, release_ownership
from .node import NODE_PACKAGES, NodeBinaries, NodeImages, RealNode, debian_versions

# The pinned tools skaffold deploys with (`make tools`: downloaded, or built from their Go modules).
DEPLOY_TOOLS = ("skaffold", "helm", "kubectl")


def manifest_images(project_dir: Path) -> list[str]:
    """The images the Deployments of fixtures/deploy run (the subject databases, Redis)."""
    found = []
    for path in sorted((Path(project_dir) / DEPLOY_DIR).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                found += [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]
    return found


def host_debian_codename(os_release: Path = Path("/etc/os-release")) -> str | None:
    try:
        values = dotenv_values(os_release)
    except OSError:
        return None
    return values.get("VERSION_CODENAME") if values.get("ID") == "debian" else None


class LocalBackend(SkaffoldBackend):
    name = "local"

    def __init__(self, settings):
        super().__init__(settings)
        self.state_dir = settings.build_dir / "local" / settings.run_id
        self.control_plane: ControlPlane | None = None
        self.node: RealNode | None = None
        # Raw logs stay private (pods' logs hold rendered scripts with tokens and keys); stop() copies
        # them, masked, into the artifacts directory. Failure bundles mask what they copy too.
        self.raw_logs = self.state_dir / "logs"
        self.debian_codename = host_debian_codename()
        self.images: dict[str, str] = {}     # normalised image reference -> digest, as the registry serves them
        self.image_sources: dict[str, str] = {}   # normalised reference -> " (<component> at <revision>)"
        self.unbuildable: dict[str, str] = {}     # normalised reference -> why no recipe builds it here
        self.registry = ""                   # host:port of the node's registry
        self.kept: KeptCluster | None = None   # the kept cluster this run attached to

    def preflight(self) -> None:
        """Root, every host tool this backend needs and the pinned deploy tools, named when missing,
        before anything is resolved or built."""
        from ...debian import HOST_TOOLS, install_hint, missing_tools

        missing = missing_tools(HOST_TOOLS[self.name])
        problems = []
        if os.geteuid() != 0:
            problems.append("the local backend runs a real Kubernetes node (containerd, runc, a network namespace, "
                            "cgroups, iptables), which needs root: run as root, or use --backend k3d (Docker) or "
                            "--backend existing")
        if missing:
            problems.append("the local backend needs: " + "; ".join(f"{t} ({w})" for t, w in missing.items())
                            + ". " + install_hint(missing))
        absent = [tool for tool in DEPLOY_TOOLS if not (self.settings.bin_dir / tool).is_file()]
        if absent:
            problems.append(f"the deploy needs the pinned {', '.join(absent)} in {self.settings.bin_dir}: run "
                            "`make tools` (it downloads them, or builds them from their Go modules)")
        if problems:
            raise BackendUnavailable(". ".join(problems))

    def check_usage(self) -> None:
        """SKIP_SERVER_INSTALL/SKIP_CLIENT_INSTALL mean 'already deployed': only in a kept cluster."""
        kept = KeptCluster.path(self.settings.build_dir, self.settings.cluster_name)
        for knob, value in (("SKIP_SERVER_INSTALL (--skip-server-install)", self.settings.skip_server_install),
                            ("SKIP_CLIENT_INSTALL (--skip-client-install)", self.settings.skip_client_install)):
            if value and not kept.is_file():
                raise BackendUsageError(f"{knob} means 'already deployed', but there is no kept local cluster "
                                        f"({kept} is absent): run once with --keep-cluster (and without it), "
                                        "then again with it")

    def start(self) -> None:
        from . import binaries  # not at import: `python -m ...local.binaries` must not see itself imported

        release = self.settings.release
        # Before making anything: release and remove what killed runs left (their secrets are in it).
        abandoned.sweep(abandoned.candidates(self.settings.build_dir) + node_cleanup.run_dirs(), say=progress.say,
                        before_remove=node_cleanup.sweep_dir)
        if self._reuse_kept_cluster():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        abandoned.claim(self.state_dir)   # released only when the cluster is kept at a clean stop
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
        self.registry = registry

    def _reuse_kept_cluster(self) -> bool:
        """Attach to the cluster a previous run kept (``--keep-cluster``), if it is alive; a dead one is
        removed, saying why, and the run starts a fresh cluster."""
        names = [self.shared_name, self.settings.cluster_name] if self.settings.shared else [self.settings.cluster_name]
        kept = next(filter(None, (KeptCluster.load(self.settings.build_dir, name) for name in names)), None)
        if kept is None:
            return False
        problem = kept.problem()
        if problem is not None:
            with progress.step(f"removing the kept cluster {kept.name}: {problem}"):
                kept.teardown(self.settings.build_dir)
            return False
        if kept.name != self.shared_name:
            progress.say(f"reusing the cluster {kept.name} kept by run {kept.run_id} ({kept.state_dir}); it is "
                         f"{'kept again' if self.settings.keep_cluster else 'removed'} at the end of this run")
        if not self.settings.keep_cluster:
            kept.claim()
        self.kept = kept
        self.state_dir, self.registry = Path(kept.state_dir), kept.registry
        self.raw_logs = self.state_dir / "logs"
        return True

    def _publish(self, recipes, registry: str) -> None:
        with progress.step(f"publishing {len(recipes)} image(s) to the node's registry {registry}"):
            self.images.update({normalise(ref): digest for ref, digest in publish(recipes, registry).items()})

    def deploy(self, sources) -> None:
        """The images the release's pods name, published to the node's registry, then the one deploy
        path (``SkaffoldBackend.deploy``)."""
        release = self.settings.release
        by_name = {s.component.name: s for s in sources}
        with progress.step("building backup-maker and pgbr at their pins (for their images)"):
            binaries = {name: build(by_name[name], progress=progress.say) for name in ("backup-maker", "pgbr")}
        manifests = manifest_images(self.settings.project_dir)
        templates = [d.image for d in load_definitions(by_name["backup-maker"].path)]
        wanted = image_recipes.release_images(release, binaries, self.debian_codename, [*manifests, *templates])
        hosted = {normalise(ref) for recipe in wanted.recipes for ref in recipe.refs}
        if missing := [image for image in manifests if normalise(image) not in hosted]:
            raise BackendError(f"{DEPLOY_DIR} runs image(s) the local backend cannot build: " + "; ".join(
                image_recipes.unhostable_reason(image, wanted.unbuildable) for image in missing))
        self.unbuildable = wanted.unbuildable
        kubectl = self._kubectl_images(templates)
        for ref in {normalise(ref) for recipe in kubectl for ref in recipe.refs}:
            self.unbuildable.pop(ref, None)   # release_images has no recipe for it; kubectl_image built it
        recipes = [*wanted.recipes, *kubectl]
        built_from = {"backup-maker": by_name["backup-maker"], "pgbr-": by_name["pgbr"]}
        for recipe in recipes:
            source = next((s for prefix, s in built_from.items() if recipe.name.startswith(prefix)), None)
            made = f"{source.component.name} at {source.revision}; " if source else ""
            self.image_sources.update({normalise(ref): f" ({made}{recipe.description})" for ref in recipe.refs})
        self._publish(recipes, self.registry)
        super().deploy(sources)

    def _kubectl_images(self, template_images: list[str]) -> list:
        """kubectl-light-image at each tag the pinned templates name (``kubectl_image``); a tag it cannot
        build is left out, its reason kept for the template matrix's skip."""
        wanted = kubectl_image.recipes(template_images, progress=progress.say)
        self.unbuildable.update(wanted.unbuildable)
        for recipe in wanted.recipes:
            self.image_sources.update({normalise(ref): f" ({recipe.description})" for ref in recipe.refs})
        return wanted.recipes

    def skaffold(self) -> Skaffold:
        return Skaffold(self.settings.bin_dir / "skaffold", self.settings.project_dir, self.kubeconfig, None,
                        self.registry, tools_dir=self.settings.bin_dir, build_dir=self.settings.build_dir)

    def deploy_record(self) -> Path:
        return self.state_dir / "deployed.json"   # the cluster's own directory: a fresh cluster has none

    def platform(self) -> dict[str, str]:
        release = self.settings.release
        tools = {f"{tool} (deploy tool)": (self.settings.bin_dir / f".{tool}.verified").read_text().strip()
                 for tool in DEPLOY_TOOLS if (self.settings.bin_dir / f".{tool}.verified").is_file()}
        parts = {"kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy)":
                 release["KUBERNETES_VERSION"], "etcd": release["ETCD_VERSION"], "coredns": release["COREDNS_VERSION"],
                 "local-path-provisioner": release["LOCAL_PATH_PROVISIONER_VERSION"]}
        parts.update({f"{package} (Debian)": version for package, version in debian_versions(NODE_PACKAGES).items()})
        parts.update(tools)
        parts.update({f"image {ref}": f"{digest}{self.image_sources.get(ref, '')}" for ref, digest in self.images.items()})
        parts.update(super().platform())   # the server's and the controller's images, built by skaffold
        return parts

    def unhostable_reason(self, image: str) -> str | None:
        if subject := super().unhostable_reason(image):   # the rule of every backend
            if normalise(image) in self.unbuildable:   # and why: where a build of it was looked for
                return f"{subject}; {image_recipes.unhostable_reason(image, self.unbuildable)}"
            return subject
        if normalise(image) in self.images:
            return None
        return image_recipes.unhostable_reason(image, self.unbuildable)

    def check_services(self) -> None:
        """Raise naming a part of the node or control plane that has died, with its log, or a component
        whose container restarted (``SkaffoldBackend.check_services``)."""
        if self.kept is not None:
            if problem := next((f"{what} (process group {pgid})" for what, pgid in self.kept.groups
                                if not group_alive(pgid)), None):
                raise BackendError(f"the kept cluster's {problem} died; its logs are in {self.raw_logs}")
        if self.control_plane is not None:
            self.control_plane.processes.check_running()
        if self.node is not None:
            self.node.check_running()
        super().check_services()

    @property
    def kubeconfig(self) -> Path:
        if self.kept is not None:
            return Path(self.kept.kubeconfig)
        if self.control_plane is None:
            raise BackendUnavailable("the local backend's control plane is not started")
        return self.control_plane.kubeconfig

    def diagnostic_namespaces(self) -> list[str]:
        return [*super().diagnostic_namespaces(), "kube-system"]

    def service_logs(self) -> dict[str, Path]:
        processes = [*(self.control_plane.processes.processes if self.control_plane else []),
                     *(self.node.processes if self.node else [])]
        return {p.name: p.log_path for p in processes}

    @property
    def shared_name(self) -> str:
        """The kept-cluster record of a cluster the run's workers share (removed by the run's controller)."""
        return f"{self.settings.cluster_name}-run-{self.settings.run_id}"

    def share(self) -> None:
        """Keep this worker's cluster (or the one it attached to) under the run's own record, for the run's
        other workers to attach to, owned by the controller (xdist's main process, this worker's parent)
        so that a later run sweeps it should the controller be killed."""
        if self.kept is None:
            if not (self._keep(self.shared_name) and self._reuse_kept_cluster()):   # kept, then attached to
                raise BackendError("the cluster could not be kept for the run's other workers (see the line above)")
        elif self.kept.name != self.shared_name:   # a cluster kept by an earlier run: this run owns it now
            self.kept = self.kept.renamed(self.settings.build_dir, self.shared_name)
        self.kept.claim(os.getppid())

    def release_shared(self) -> None:
        """After the run's last worker: remove the cluster the workers shared, or keep it (``--keep-cluster``)
        under the cluster's name for the next run."""
        super().stop()
        kept = KeptCluster.load(self.settings.build_dir, self.shared_name)
        if kept is None:
            return
        self.raw_logs = Path(kept.state_dir) / "logs"
        self._publish_masked_logs()
        if self.settings.keep_cluster:
            release_ownership(Path(kept.state_dir), kept.node_record)
            kept = kept.renamed(self.settings.build_dir, self.settings.cluster_name)
            progress.say(f"kept the cluster {kept.name} running for the next run "
                         f"({kept.path(self.settings.build_dir, kept.name)})")
            return
        removed = kept.teardown(self.settings.build_dir)
        progress.say("removed the run's cluster" + (f" ({', '.join(removed)})" if removed else ""))

    def stop(self) -> None:
        super().stop()   # port-forwards and the API client
        if self.settings.shared and (self.kept is not None or self._keep(self.shared_name)):
            return   # the run's controller removes it after the last worker (release_shared)
        if self.settings.keep_cluster and (self.kept is not None or self._keep()):
            self._publish_masked_logs()
            return
        if self.kept is not None:
            removed = self.kept.teardown(self.settings.build_dir)
            progress.say(f"removed the kept cluster {self.kept.name}" + (f" ({', '.join(removed)})" if removed else ""))
            self.kept = None
            self._publish_masked_logs()
            return
        # The node first: its containers end before the control plane, and its mounts go before
        # anything below the state dir is removed.
        try:
            if self.node is not None:
                self.node.stop()
                self.node = None
        finally:   # a node that could not be cleaned up completely must not keep the control plane running
            if self.control_plane is not None:
                self.control_plane.stop()
                self.control_plane = None
        self._publish_masked_logs()
        # etcd's data, the PKI, raw logs and the pods' secret volumes hold every secret of the run: keep
        # none of it.
        if self.state_dir.exists():
            if mounts := node_cleanup.mounts_under(self.state_dir):   # never delete through a mount
                raise BackendError(f"cannot remove {self.state_dir}: still mounted below it: "
                                   f"{', '.join(map(str, mounts[:5]))}")
            shutil.rmtree(self.state_dir)

    def _keep(self, name: str | None = None) -> bool:
        """Leave this run's cluster running for the next run (``--keep-cluster``): its process groups
        detached from the harness, its directories without owner, a KeptCluster record. False (the
        cluster is stopped as usual) when it never came up."""
        node, control_plane = self.node, self.control_plane
        if node is None or control_plane is None or not node.registry or node.record is None:
            return False
        try:
            node.check_running()
            control_plane.processes.check_running()
        except Exception as exc:  # noqa: BLE001 - a broken cluster is not worth keeping
            progress.say(f"not keeping the cluster: {exc}")
            return False
        groups = [("node agents", node.agents.detach()), ("containerd", node.runtime.detach()),
                  ("registry", node.registry_group.detach()), ("control plane", control_plane.processes.detach())]
        release_ownership(self.state_dir, node.record)
        kept = KeptCluster(name or self.settings.cluster_name, self.settings.run_id, str(self.state_dir),
                           str(control_plane.kubeconfig), node.registry, [g for g in groups if g[1] is not None])
        kept.save(self.settings.build_dir)
        if name is None:
            progress.say(f"kept the cluster {kept.name} running for the next run "
                         f"({kept.path(self.settings.build_dir, kept.name)}); a run without --keep-cluster reuses it "
                         "and then removes it")
        self.node = self.control_plane = None
        return True

    def _publish_masked_logs(self) -> None:
        """Every service's and control-plane process's log, masked, under <artifacts>/<group>/<name>.log."""
        for raw in sorted(self.raw_logs.rglob("*.log")) if self.raw_logs.exists() else []:
            dest = self.settings.artifacts_dir / raw.relative_to(self.raw_logs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(self.settings.masker.mask(raw.read_text(errors="replace")))
