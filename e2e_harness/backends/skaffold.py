"""Deploying the release with skaffold and the components' own Helm charts, on every backend.

The top-level skaffold.yaml holds one config module per piece (``subject``,
``server``, ``controller``) whose sources are ``.build/<component>``. ``Skaffold``
builds the command line and its environment, so its use by each backend is
unit-testable; ``SkaffoldBackend`` publishes ko's base image to the cluster's
registry, runs the modules in order and reaches the services by port-forward.
What a backend adds is how its cluster is made and which registry it pushes to.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from abc import abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import yaml

from .. import progress
from ..commands import run
from ..components import ResolvedSource
from ..crds import controller_crds, install_crds
from .. import subjects
from .base import Backend, BackendError, Endpoints, ForwardedSubjects
from .portforward import PortForward

MODULES = ("subject", "server", "controller")
CHECK_INTERVAL = 2.0   # seconds between two looks at the components' pods
SUBJECT_READY_TIMEOUT = 300   # as skaffold's statusCheckDeadlineSeconds


@dataclass(frozen=True)
class Skaffold:
    binary: Path
    project_dir: Path
    kubeconfig: Path
    kube_context: str | None
    default_repo: str | None
    base_image: str | None = None      # ko's base (KO_DEFAULTBASEIMAGE), pushed by the harness
    tools_dir: Path | None = None      # helm and kubectl at their pins (skaffold runs them from PATH)
    build_dir: Path | None = None      # where the run's component sources are (--build-dir)

    def config_file(self) -> Path:
        """The project's skaffold.yaml, or, when the run's build dir is not ``<project>/.build``, a copy in
        the build dir with its paths made absolute: ``.build/<component>`` to the run's sources (its
        symlinked checkouts included), every other path to the project's file."""
        source = self.project_dir / "skaffold.yaml"
        if self.build_dir is None or self.build_dir.resolve() == (self.project_dir / ".build").resolve():
            return source
        docs = list(yaml.safe_load_all(source.read_text()))
        for doc in docs:
            for artifact in (doc.get("build") or {}).get("artifacts") or []:
                artifact["context"] = self._located(artifact["context"])
            manifests = doc.get("manifests") or {}
            manifests["rawYaml"] = [self._located(m) for m in manifests.get("rawYaml") or []]
            for release in ((doc.get("deploy") or {}).get("helm") or {}).get("releases") or []:
                release["chartPath"] = self._located(release["chartPath"])
                release["valuesFiles"] = [self._located(v) for v in release.get("valuesFiles") or []]
        target = self.build_dir / "skaffold.yaml"
        partial = target.with_name(f".skaffold.yaml.{os.getpid()}")
        partial.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        partial.replace(target)   # atomic: runs sharing the build dir write the same content
        return target

    def _located(self, path: str) -> str:
        if path.startswith(".build/"):
            return str(self.build_dir / path.removeprefix(".build/"))
        return str(self.project_dir / path)

    def env(self) -> dict[str, str]:
        """skaffold's environment: ko's base image and the pinned helm/kubectl first on PATH."""
        env = {"SKAFFOLD_UPDATE_CHECK": "false"}
        if self.base_image:
            env["KO_DEFAULTBASEIMAGE"] = self.base_image
        if self.tools_dir:
            env["PATH"] = f"{self.tools_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return env

    def run_command(self, module: str, tag: str) -> list[str]:
        """``skaffold run`` for one module: build (unless prebuilt), push, deploy, wait."""
        if module not in MODULES:
            raise ValueError(f"unknown skaffold module {module!r}; known: {', '.join(MODULES)}")
        cmd = [str(self.binary), "run",
               "--filename", str(self.config_file()),
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

    def build_command(self, module: str, tag: str, output: Path) -> list[str]:
        """``skaffold build`` for one module (its cache rebuilds only what changed), writing the images
        built (``tag@digest``) to ``output`` for ``deploy_command``."""
        cmd = [str(self.binary), "build", "--filename", str(self.config_file()), "--module", module, "--tag", tag,
               "--cache-artifacts=true", "--file-output", str(output), "--interactive=false", "--update-check=false"]
        if self.default_repo:
            cmd += ["--default-repo", self.default_repo]
        return cmd

    def deploy_command(self, module: str, artifacts: Path) -> list[str]:
        """``skaffold deploy`` of one module's chart with the images ``build_command`` wrote, and wait."""
        cmd = [str(self.binary), "deploy", "--filename", str(self.config_file()), "--module", module,
               "--kubeconfig", str(self.kubeconfig), "--build-artifacts", str(artifacts), "--status-check=true",
               "--interactive=false", "--update-check=false"]
        if self.kube_context:
            cmd += ["--kube-context", self.kube_context]
        if self.default_repo:
            cmd += ["--default-repo", self.default_repo]
        return cmd

    def fingerprint(self, module: str, artifacts: Path) -> str:
        """What a deploy of ``module`` consists of: the images built (by digest), the module's config, and
        every file of its chart and values. Equal fingerprints deploy the same objects."""
        digest = hashlib.sha256(artifacts.read_bytes())
        doc = next(d for d in yaml.safe_load_all(self.config_file().read_text()) if d["metadata"]["name"] == module)
        digest.update(json.dumps(doc, sort_keys=True).encode())
        for release in ((doc.get("deploy") or {}).get("helm") or {}).get("releases") or []:
            paths = [release["chartPath"], *(release.get("valuesFiles") or [])]
            for path in (Path(p) if Path(p).is_absolute() else self.project_dir / p for p in paths):
                files = sorted(f for f in path.resolve().rglob("*") if f.is_file()) if path.is_dir() else [path]
                for file in files:
                    digest.update(str(file.relative_to(path.resolve()) if path.is_dir() else file).encode())
                    digest.update(file.read_bytes())
        return digest.hexdigest()

    def render_command(self, module: str, tag: str) -> list[str]:
        """``skaffold render`` for one module without building or reaching a cluster: the manifests the
        deploy would apply, with images named ``<default repo>/<image>:<tag>``."""
        if module not in MODULES:
            raise ValueError(f"unknown skaffold module {module!r}; known: {', '.join(MODULES)}")
        cmd = [str(self.binary), "render", "--filename", str(self.config_file()),
               "--module", module, "--tag", tag, "--digest-source=tag", "--offline=true",
               "--update-check=false", "--interactive=false"]
        if self.default_repo:
            cmd += ["--default-repo", self.default_repo]
        return cmd

    def delete_command(self, module: str) -> list[str]:
        cmd = [str(self.binary), "delete", "--filename", str(self.config_file()),
               "--module", module, "--kubeconfig", str(self.kubeconfig)]
        if self.kube_context:
            cmd += ["--kube-context", self.kube_context]
        return cmd


# --- shared by the backends that deploy into a real cluster with skaffold -----------------
SERVER_NAMESPACE = "backups"
SERVER_SERVICE = "server-backup-repository-server"  # release "server" of the server's chart
SERVER_PORT = 8080
CONTROLLER_NAMESPACE = "backup-maker-controller"  # skaffold.yaml, module controller
SERVER_HEALTH_KEY = "harness-health-code"  # fixtures/deploy/server.values.yaml


def install_release_crds(kube, sources: Sequence[ResolvedSource]) -> None:
    """The CRDs the charts do not install: the controller's from config/crd/bases, not its chart's stale
    copies (skaffold.yaml, module controller). The server's chart installs its own (templates/crd.yaml,
    unconditionally): applying them here too would make `helm install` refuse objects it does not own."""
    by_name = {s.component.name: s for s in sources}
    install_crds(kube, controller_crds(by_name["backup-maker-controller"]))


class SkaffoldBackend(Backend):
    """Deploys CRDs, subject, server and controller with skaffold; reaches the server by port-forward."""

    def __init__(self, settings):
        super().__init__(settings)
        self._forwards: list[PortForward] = []
        self._server_forward: PortForward | None = None
        self._subject_forwards: dict[str, PortForward] = {}
        self.built_images: dict[str, str] = {}   # image reference -> what it is (digest, source revision)
        self._deployed: dict[str, tuple[str, int]] = {}
        self._checked_at = 0.0

    @abstractmethod
    def skaffold(self) -> Skaffold:
        """The skaffold invocation for this cluster (registry, kubeconfig, context)."""

    def publish_base_image(self) -> str | None:
        """Push ko's base image to the registry skaffold pushes to; its reference (None: ko's default)."""
        from .local.image_recipes import ko_base
        from .local.images import publish

        registry = self.skaffold().default_repo
        if not registry:
            return None
        recipe = ko_base()
        with progress.step(f"publishing ko's base image to {registry}"):
            digests = publish([recipe], registry)
        ref = recipe.refs[0]
        self.built_images[f"ko base {ref}"] = digests[ref]
        return f"{registry}/{ref}"

    def deploy(self, sources: Sequence[ResolvedSource]) -> None:
        """The subject databases, the server and the controller, each by its skaffold module (images
        built with ko from ``sources``, installed by the components' own charts, which also install
        their CRDs). ``SKIP_SERVER_INSTALL``/``SKIP_CLIENT_INSTALL`` leave that component as deployed."""
        revisions = {s.component.name: s.revision for s in sources}
        if not self.settings.skip_client_install:
            install_release_crds(self.kube, sources)
        steps = [("subject", "subject databases and Redis", False),
                 ("server", "backup-repository server", self.settings.skip_server_install),
                 ("controller", "backup-maker-controller", self.settings.skip_client_install)]
        if all(skip for _, _, skip in steps):
            self.record_healthy_components()
            return
        base = self.publish_base_image()
        skaffold = replace(self.skaffold(), base_image=base)
        record = self.deploy_record()
        deployed = json.loads(record.read_text()) if record is not None and record.is_file() else {}
        work = self.settings.build_dir / "skaffold" / self.settings.run_id
        work.mkdir(parents=True, exist_ok=True)
        for module, what, skip in steps:
            if skip:
                progress.say(f"skaffold: {what} left as deployed (SKIP_*_INSTALL)")
                continue
            if module == "subject":   # no images of its own; its manifests are applied as they are
                with progress.step(f"skaffold: deploying the {what}"):
                    run(skaffold.run_command(module, self.settings.cluster_name), env=skaffold.env(),
                        what=f"skaffold: {what}", timeout=1800)
                    self._wait_subjects_ready()
                continue
            artifacts = work / f"{module}.json"
            with progress.step(f"skaffold: building the {what}"):
                # One tag per cluster, not per run: images are referenced by digest.
                run(skaffold.build_command(module, self.settings.cluster_name, artifacts), env=skaffold.env(),
                    what=f"skaffold: building the {what}", timeout=1800)
            fingerprint = skaffold.fingerprint(module, artifacts)
            if deployed.get(module) == fingerprint:
                # skaffold labels pod templates with a new run id on every deploy (its helm post-renderer), so
                # deploying an unchanged component again would roll it out for nothing.
                progress.say(f"skaffold: the {what} is unchanged since its deploy to this cluster: left as it is")
                continue
            with progress.step(f"skaffold: deploying the {what}"):
                run(skaffold.deploy_command(module, artifacts), env=skaffold.env(), what=f"skaffold: {what}",
                    timeout=1800)
            if record is not None:
                deployed[module] = fingerprint
                record.write_text(json.dumps(deployed))
        # What ran, for the report: the charts got skaffold's image references (tag@digest).
        for component, namespace in (("backup-repository", SERVER_NAMESPACE),
                                     ("backup-maker-controller", CONTROLLER_NAMESPACE)):
            for deployment in self.kube.list("apps/v1", "Deployment", namespace):
                for container in deployment["spec"]["template"]["spec"]["containers"]:
                    at = f" at {revisions[component]}" if component in revisions else ""
                    self.built_images[container["image"]] = f"{component}{at}, built by skaffold (ko)"
        self.record_healthy_components()

    def _wait_subjects_ready(self) -> None:
        """Every subject Deployment's pods ready. skaffold's status check cannot see them: it finds pods by
        its run-id label, which the subject's pod templates do not get (skaffold.yaml, resourceSelector), and
        the server must not start before its PostgreSQL answers."""
        def ready(obj: dict | None) -> tuple[bool, str]:
            if obj is None:
                return False, "absent"
            status, wanted = obj.get("status") or {}, (obj.get("spec") or {}).get("replicas", 1)
            done = (status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
                    and status.get("updatedReplicas", 0) == wanted and status.get("readyReplicas", 0) == wanted)
            return done, f"{status.get('readyReplicas', 0)}/{wanted} ready, {status.get('updatedReplicas', 0)} updated"

        for subject in subjects.deployed(self.settings.project_dir):
            self.kube.wait_for("apps/v1", "Deployment", subject.name, ready, namespace=subjects.NAMESPACE,
                               timeout=SUBJECT_READY_TIMEOUT, what=f"the subject Deployment {subjects.NAMESPACE}/{subject.name} "
                               "to have its pods ready (readinessProbe in fixtures/deploy)")

    def deploy_record(self) -> Path | None:
        """Where this cluster's deploys are recorded (module -> fingerprint), so that a reused cluster is not
        redeployed with what it runs already; None: always deploy. Lives and dies with the cluster."""
        return None

    def unhostable_reason(self, image: str) -> str | None:
        """The rule every backend shares: a template needs a subject of its own database and major."""
        return subjects.unserved_reason(image, subjects.deployed(self.settings.project_dir))

    def platform(self) -> dict[str, str]:
        """Which image ran for each component, by name and digest, with its source revision."""
        return {f"image {name}": how for name, how in self.built_images.items()}

    def endpoints(self) -> Endpoints:
        if self._server_forward is None:
            self._server_forward = self._forward(SERVER_NAMESPACE, SERVER_SERVICE, SERVER_PORT)
        return Endpoints(
            server_url_from_tests=f"http://127.0.0.1:{self._server_forward.local_port}",
            server_url_in_pods=f"http://{SERVER_SERVICE}.{SERVER_NAMESPACE}.svc.cluster.local:{SERVER_PORT}",
            server_namespace=SERVER_NAMESPACE, server_health_key=SERVER_HEALTH_KEY,
            subjects=ForwardedSubjects(subjects.deployed(self.settings.project_dir), self._subject_port))

    def _forward(self, namespace: str, service: str, port: int) -> PortForward:
        forward = PortForward(self.settings.bin_dir / "kubectl", self.kubeconfig, namespace, service, port,
                              self.kube_context)
        forward.start()
        self._forwards.append(forward)
        return forward

    def _subject_port(self, subject: subjects.Subject) -> int:
        """The test process's port to ``subject``: its port-forward, started on first use (a run that backs
        up only PostgreSQL starts none to the other subjects)."""
        if subject.name not in self._subject_forwards:
            self._subject_forwards[subject.name] = self._forward(subjects.NAMESPACE, subject.name, subject.kind.port)
        return self._subject_forwards[subject.name].local_port

    def diagnostic_namespaces(self) -> list[str]:
        return [SERVER_NAMESPACE, CONTROLLER_NAMESPACE, subjects.NAMESPACE]

    def component_containers(self) -> dict[str, tuple[str, int]]:
        """``namespace/pod/container`` -> (the Deployment it belongs to, its restart count), for every
        container of the deployed release (server, controller, subject databases, Redis)."""
        found = {}
        for namespace in (SERVER_NAMESPACE, CONTROLLER_NAMESPACE, subjects.NAMESPACE):
            for pod in self.kube.list("v1", "Pod", namespace):
                if pod["metadata"].get("deletionTimestamp"):
                    continue   # an old replica still terminating after a rollout: not part of the release
                name = pod["metadata"]["name"]
                deployment = name.rsplit("-", 2)[0]   # <deployment>-<replicaset hash>-<pod hash>
                for status in (pod.get("status") or {}).get("containerStatuses") or []:
                    found[f"{namespace}/{name}/{status['name']}"] = (deployment, status.get("restartCount") or 0)
        return found

    def record_healthy_components(self) -> None:
        """What 'healthy' means for ``check_services``: the containers as they are right after the deploy."""
        self._deployed = self.component_containers()

    def check_services(self) -> None:
        """Raise naming a component whose container died (restarted) or whose pod went away since the
        deploy: a crash would otherwise show only as a scenario waiting until its timeout."""
        if not self._deployed or time.monotonic() - self._checked_at < CHECK_INTERVAL:
            return   # every wait calls this on each poll: three pod listings at most every CHECK_INTERVAL
        self._checked_at = time.monotonic()
        now = self.component_containers()
        for key, (deployment, restarts) in self._deployed.items():
            namespace, pod, container = key.split("/")
            if key not in now:
                raise BackendError(f"{deployment}: its pod {namespace}/{pod} is gone since the deploy; see the "
                                   f"failure bundle's {namespace}/events.yaml")
            if now[key][1] > restarts:
                log = self.kube.pod_logs(namespace, pod, container, previous=True)
                tail = "\n".join(log.splitlines()[-15:])
                raise BackendError(f"{deployment} died: container {container} of pod {namespace}/{pod} restarted "
                                   f"({restarts} -> {now[key][1]} restarts; {self._last_state(namespace, pod, container)})"
                                   f"; the end of its previous log:\n{tail}")

    def _last_state(self, namespace: str, pod: str, container: str) -> str:
        obj = self.kube.get("v1", "Pod", pod, namespace) or {}
        for status in (obj.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == container:
                ended = (status.get("lastState") or {}).get("terminated") or {}
                return f"exit code {ended.get('exitCode')}, {ended.get('reason')}"
        return "last state unknown"

    def stop(self) -> None:
        for forward in self._forwards:
            forward.stop()
        self._forwards, self._server_forward, self._subject_forwards = [], None, {}
        self.close_client()
