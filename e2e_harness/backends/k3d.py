"""The k3d backend: a k3d cluster with a local registry, components deployed by skaffold.

Needs a Docker engine (laptops, GitHub Actions). No sudo and no /etc/hosts edits:
images are pushed to ``localhost:<port>`` (which always resolves) and k3s's
containerd mirrors that name to the registry container on the cluster network.

The release's Jobs run two images the controller and the templates name by floating or
upstream tags: backup-maker (the init container, ``ghcr.io/riotkit-org/br-backup-maker:main``,
hard-coded in the pinned br-backup-maker's ``version/version.go``) and pgbr
(``ghcr.io/riotkit-org/pgbr:<version>-pg<major>``, the pg templates' default image). ``deploy``
builds both from the pinned sources with each component's own Dockerfile, pushes them to the
cluster's registry under the same repository paths, and k3s's containerd mirrors ``ghcr.io`` to
that registry: those names resolve to the pinned builds, every other ghcr.io image falls back to
ghcr.io (containerd tries the default endpoint last). The commands are built by ``K3dCommands``
and ``K3dImageCommands`` so they are unit-tested on machines without Docker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from .. import docker, progress
from ..commands import CommandError, run, tail
from ..components import ResolvedSource
from ..processes import free_port
from ..templates import load_definitions
from .base import BackendError, BackendUnavailable
from .skaffold import Skaffold, SkaffoldBackend

K3D_TOOLS = ("k3d", "kubectl", "helm", "skaffold")   # pinned, in bin_dir (`make tools`)
# Registries whose names the cluster resolves through its own registry first: only what the images built
# here are named on (backup-maker's and pgbr's ghcr.io names). Docker Hub's images (postgres, mariadb,
# redis, busybox, ...) are pulled from Docker Hub as the release names them.
MIRRORED_HOSTS = ("ghcr.io",)
REGISTRY_PORT_IN_NETWORK = 5000
BUILD_TIMEOUT = 1800   # one docker build (a cold pgbr build pulls golang and postgres images)
PUSH_TIMEOUT = 600
GO_BUILD_TIMEOUT = 1200


@dataclass(frozen=True)
class K3dCommands:
    """The exact k3d command lines for one named cluster."""

    k3d: Path
    cluster: str
    k3s_version: str

    @property
    def registry_name(self) -> str:
        return f"{self.cluster}-registry"

    @property
    def registry_container(self) -> str:
        return f"k3d-{self.registry_name}"

    @property
    def context(self) -> str:
        return f"k3d-{self.cluster}"

    @property
    def server_node(self) -> str:
        """The container of the cluster's one node (k3d's name for server 0)."""
        return f"k3d-{self.cluster}-server-0"

    def list_clusters(self) -> list[str]:
        return [str(self.k3d), "cluster", "list", "--output", "json"]

    def list_registries(self) -> list[str]:
        return [str(self.k3d), "registry", "list", "--output", "json"]

    def create_registry(self, port: int) -> list[str]:
        return [str(self.k3d), "registry", "create", self.registry_name, "--port", f"127.0.0.1:{port}"]

    def registry_config(self, port: int) -> str:
        """registries.yaml for k3s: the host's name for the registry, and the registries whose images the
        deploy builds (``MIRRORED_HOSTS``), -> the registry's in-network name.

        containerd keeps the repository path on a mirror (``ghcr.io/riotkit-org/pgbr:x`` is asked of the
        mirror as ``/v2/riotkit-org/pgbr/manifests/x``), so no rewrite is needed; a name the registry does
        not hold answers 404 and containerd goes on to the upstream registry (its default endpoint,
        always tried last)."""
        endpoint = f"http://{self.registry_container}:{REGISTRY_PORT_IN_NETWORK}"
        mirrors = {host: {"endpoint": [endpoint]} for host in (f"localhost:{port}", *MIRRORED_HOSTS)}
        return yaml.safe_dump({"mirrors": mirrors}, sort_keys=False, default_flow_style=False)

    def create_cluster(self, registry_config: Path) -> list[str]:
        return [str(self.k3d), "cluster", "create", self.cluster,
                "--image", f"rancher/k3s:{self.k3s_version}",
                "--registry-use", f"{self.registry_container}:{REGISTRY_PORT_IN_NETWORK}",
                "--registry-config", str(registry_config),
                "--k3s-arg", "--disable=traefik@server:0",
                "--wait", "--timeout", "300s",
                "--kubeconfig-update-default=false",
                "--kubeconfig-switch-context=false"]

    def kubeconfig(self) -> list[str]:
        return [str(self.k3d), "kubeconfig", "get", self.cluster]

    def delete_cluster(self) -> list[str]:
        return [str(self.k3d), "cluster", "delete", self.cluster]

    def delete_registry(self) -> list[str]:
        return [str(self.k3d), "registry", "delete", self.registry_container]

    def forget_image(self, image: str) -> list[str]:
        """Remove ``image`` from the node's containerd: a reused cluster's node may hold an earlier run's
        pull of a floating tag (backup-maker's ``:main`` is pulled IfNotPresent)."""
        return ["docker", "exec", self.server_node, "crictl", "rmi", image]


# --- the images the release's Jobs run, built from the pinned sources ------------------------------
PINNED_IMAGE = re.compile(r"^ghcr\.io/riotkit-org/(?P<name>pgbr|br-backup-maker)(?P<rest>[:@].*)?$")
PGBR_TAG = re.compile(r"^:(?P<version>.+)-pg(?P<major>\d+)$")
SELF_CONTAINER_IMAGE = re.compile(r'SelfContainerImage\s*=\s*"(?P<image>[^"]+)"')


@dataclass(frozen=True)
class ImageBuild:
    """One ``docker build`` of a component's own Dockerfile at its pin."""

    image: str                               # the name pods use, e.g. ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15
    component: str
    revision: str
    dockerfile: Path
    context: Path
    build_args: tuple[tuple[str, str], ...] = ()
    required: bool = True                    # False: a failed build makes the image unhostable, not the deploy fail


@dataclass(frozen=True)
class K3dImageCommands:
    """The exact go, docker build and docker push command lines for the images ``deploy`` builds."""

    registry: str     # localhost:<port>: the cluster's registry as the host (and the Docker engine) reach it
    platform: str     # the Docker engine's os/arch (linux/amd64, linux/arm64): what the node runs

    @property
    def goos(self) -> str:
        return self.platform.split("/")[0]

    @property
    def goarch(self) -> str:
        return self.platform.split("/")[1]

    def local(self, image: str) -> str:
        """``ghcr.io/riotkit-org/pgbr:x`` -> ``localhost:<port>/riotkit-org/pgbr:x``."""
        return f"{self.registry}/{image.split('/', 1)[1]}"

    def backup_maker_binary(self, output: Path) -> list[str]:
        """backup-maker's binary as the pin's Makefile ``build`` target makes it (``CGO_ENABLED=0
        GO111MODULE=on go build -o .build/backup-maker``), for the node's platform (run in its source)."""
        return ["go", "build", "-o", str(output), "."]

    def backup_maker_env(self) -> dict[str, str]:
        return {"CGO_ENABLED": "0", "GO111MODULE": "on", "GOOS": self.goos, "GOARCH": self.goarch}

    def build(self, image: ImageBuild) -> list[str]:
        cmd = ["docker", "build", "--platform", self.platform, "--file", str(image.dockerfile)]
        for key, value in image.build_args:
            cmd += ["--build-arg", f"{key}={value}"]
        cmd += ["--label", f"org.opencontainers.image.revision={image.revision}",
                "--label", f"org.opencontainers.image.title={image.component}",
                "--tag", self.local(image.image), str(image.context)]
        return cmd

    @staticmethod
    def build_env() -> dict[str, str]:
        return {"DOCKER_BUILDKIT": "1"}

    def push(self, image: str) -> list[str]:
        return ["docker", "push", self.local(image)]

    def repo_digests(self, image: str) -> list[str]:
        return ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", self.local(image)]

    def pushed_digest(self, image: str, push_output: str, repo_digests: str | None = None) -> str | None:
        """The manifest digest the registry serves: from ``docker push``'s ``<tag>: digest: sha256:...``
        line, else from the image's RepoDigests for this registry's repository."""
        if m := re.search(r"digest: (sha256:[0-9a-f]{64})", push_output):
            return m.group(1)
        repository = self.local(image).rsplit(":", 1)[0]
        try:
            entries = json.loads(repo_digests or "null") or []
        except ValueError:
            entries = []
        for entry in entries:
            if entry.startswith(f"{repository}@"):
                return entry.split("@", 1)[1]
        return None


def engine_platform() -> str:
    """The Docker engine's platform as ``os/arch`` (Go's names): what k3d's node runs, on any host."""
    try:
        out = run(["docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], timeout=30,
                  what="asking the Docker engine for its platform").stdout.strip()
    except CommandError as exc:
        raise BackendError(str(exc)) from None
    if not re.fullmatch(r"[a-z0-9]+/[a-z0-9]+", out):
        raise BackendError(f"the Docker engine named its platform {out!r}; expected os/arch (linux/amd64)")
    return out


def dockerfile_inputs(text: str) -> tuple[dict[str, str | None], list[str]]:
    """A Dockerfile's build args (name -> default, None when it has none) and the paths its ADD/COPY
    instructions take from the build context (not ``--from`` another stage)."""
    args: dict[str, str | None] = {}
    sources: list[str] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and len(words) > 1:
            name, sep, default = words[1].partition("=")
            args.setdefault(name, default if sep else None)
        elif instruction in ("ADD", "COPY"):
            operands = words[1:]
            if any(w.startswith("--from") for w in operands):
                continue
            operands = [w for w in operands if not w.startswith("--")]
            sources += operands[:-1]
    return args, sources


def check_dockerfile(image: ImageBuild, provided: Sequence[str] | None = None) -> None:
    """Fail naming the component, its revision and what is missing when its Dockerfile needs a build arg
    the harness does not pass, or (``provided``: the context's files) a context file it does not make."""
    path = image.dockerfile
    if not path.is_file():
        raise BackendError(f"{image.component} at {image.revision}: no Dockerfile at {path}; its image "
                           f"{image.image} is built from the component's own Dockerfile")
    args, sources = dockerfile_inputs(path.read_text())
    given = dict(image.build_args)
    missing = [name for name, default in args.items() if default is None and name not in given]
    if missing:
        raise BackendError(f"{image.component} at {image.revision}: its Dockerfile needs the build arg(s) "
                           f"{', '.join(missing)}, which the k3d backend does not pass (it passes "
                           f"{', '.join(given) or 'none'}); teach e2e_harness/backends/k3d.py their values")
    if provided is not None:
        absent = [s for s in sources if s not in provided and s.rstrip("/") not in provided]
        if absent:
            raise BackendError(f"{image.component} at {image.revision}: its Dockerfile copies {', '.join(absent)} "
                               f"from the build context; the k3d backend provides {', '.join(provided)} only")


def backup_maker_image(source: Path) -> str:
    """The image the pinned backup-maker names itself (``version.SelfContainerImage``), which the
    controller renders as its Jobs' init container."""
    path = Path(source) / "version" / "version.go"
    try:
        m = SELF_CONTAINER_IMAGE.search(path.read_text())
    except OSError as exc:
        raise BackendError(f"backup-maker: cannot read {path}: {exc}") from None
    if m is None:
        raise BackendError(f"backup-maker: {path} sets no SelfContainerImage; which image the controller renders "
                           "for its Jobs' init container is unknown")
    image = m.group("image")
    if not PINNED_IMAGE.match(image) or image.split("/", 1)[0] not in MIRRORED_HOSTS:
        raise BackendError(f"backup-maker names its image {image}; the k3d backend serves "
                           f"ghcr.io/riotkit-org/br-backup-maker only (MIRRORED_HOSTS in e2e_harness/backends/k3d.py)")
    return image


def pgbr_go_version(source: Path) -> str:
    """GO_VERSION for pgbr's Dockerfile (its builder stage is ``golang:${GO_VERSION}``): what pgbr's own
    release passes (``ci.mk``), else its go.mod's ``go`` line."""
    for name, pattern in (("ci.mk", r"^\s*GO_VERSION\s*[:?]?=\s*(\S+)\s*$"), ("go.mod", r"^go\s+(\d+\.\d+)")):
        path = Path(source) / name
        if path.is_file() and (m := re.search(pattern, path.read_text(), re.MULTILINE)):
            return m.group(1)
    raise BackendError(f"pgbr: neither {source}/ci.mk (GO_VERSION=) nor {source}/go.mod (go <version>) says "
                       "which Go its Dockerfile's builder stage needs")


@dataclass(frozen=True)
class PgbrPlan:
    """Which pgbr images the run builds: ``<PGBR_VERSION>-pg<major>`` for the release's PostgreSQL and
    every major the pinned backup-maker's templates name."""

    version: str
    postgres_version: str
    named: tuple[str, ...]      # majors the templates' pgbr images name

    @property
    def majors(self) -> tuple[str, ...]:
        return tuple(sorted({*self.named, self.postgres_version}, key=lambda m: (len(m), m)))

    def why(self) -> str:
        named = ", ".join(self.named) or "none"
        return (f"POSTGRES_VERSION={self.postgres_version} and the majors the pinned backup-maker's templates "
                f"name ({named})")

    def image(self, major: str) -> str:
        return f"ghcr.io/riotkit-org/pgbr:{self.version}-pg{major}"


def pgbr_plan(release, backup_maker_source: Path) -> PgbrPlan:
    named = set()
    for definition in load_definitions(backup_maker_source):
        m = PINNED_IMAGE.match(definition.image)
        if m and m["name"] == "pgbr" and (tag := PGBR_TAG.match(m["rest"] or "")):
            named.add(tag["major"])
    return PgbrPlan(release["PGBR_VERSION"], str(release["POSTGRES_VERSION"]),
                    tuple(sorted(named, key=lambda m: (len(m), m))))


def release_image_builds(release, backup_maker: ResolvedSource, pgbr: ResolvedSource,
                         backup_maker_context: Path, plan: PgbrPlan) -> list[ImageBuild]:
    """backup-maker's image from its Dockerfile (``FROM debian:11.2-slim``, ``ADD .build/backup-maker``:
    a context holding only the binary built for the node), and pgbr's per major from its two-stage
    Dockerfile (``golang:${GO_VERSION}`` builds it, ``FROM postgres:${POSTGRES_VERSION}`` runs it).
    Only the release's own PostgreSQL major must build; another major that fails is not hostable."""
    builds = [ImageBuild(backup_maker_image(backup_maker.path), "backup-maker", backup_maker.revision,
                         Path(backup_maker.path) / "Dockerfile", backup_maker_context)]
    go_version = pgbr_go_version(pgbr.path)
    for major in plan.majors:
        builds.append(ImageBuild(plan.image(major), "pgbr", pgbr.revision, Path(pgbr.path) / "Dockerfile",
                                 Path(pgbr.path), (("POSTGRES_VERSION", major), ("GO_VERSION", go_version)),
                                 required=major == plan.postgres_version))
    return builds


def unhostable_reason(image: str, release, built: Mapping[str, str], failed: Mapping[str, str],
                      plan: PgbrPlan | None) -> str | None:
    """Why ``image`` would not run the pinned component on the k3d cluster, or None.

    backup-maker's and pgbr's ghcr.io images are served by the cluster's registry only as built by this
    run; any other tag of them would be pulled from ghcr.io, i.e. not the pin. Every other image is pulled
    from its registry (Docker Hub, ghcr.io) as the release names it."""
    m = PINNED_IMAGE.match(image)
    if m is None or image in built:
        return None
    if image in failed:
        return f"image {image}: {failed[image]}"
    upstream = "; the cluster would pull upstream's image from ghcr.io, not the pinned build"
    if m["name"] == "br-backup-maker":
        ours = [ref for ref in built if "/br-backup-maker" in ref]
        return (f"image {image}: this run built backup-maker at its pin as {', '.join(ours) or 'nothing yet'} "
                f"only{upstream}")
    tag = PGBR_TAG.match(m["rest"] or "")
    if tag is None:
        return f"image {image}: not a pgbr tag this run builds (<PGBR_VERSION>-pg<major>){upstream}"
    if tag["version"] != release["PGBR_VERSION"]:
        return (f"image {image} names pgbr {tag['version']}, but the release pins PGBR_VERSION="
                f"{release['PGBR_VERSION']}{upstream}")
    if plan is None:
        return f"image {image}: this run has built no pgbr image (the deploy builds them)"
    if tag["major"] not in plan.majors:
        return (f"image {image}: pgbr is built from its pin for PostgreSQL {', '.join(plan.majors)} only "
                f"({plan.why()}), not {tag['major']}{upstream}")
    return f"image {image}: this run has not built it (the deploy builds it){upstream}"


class K3dBackend(SkaffoldBackend):
    name = "k3d"

    def __init__(self, settings):
        super().__init__(settings)
        self.commands = K3dCommands(settings.bin_dir / "k3d", settings.cluster_name,
                                    settings.release["K3S_VERSION"])
        self._state_file = settings.build_dir / f"k3d-{settings.cluster_name}.json"
        self._kubeconfig = settings.build_dir / f"k3d-{settings.cluster_name}.kubeconfig"
        self._reused = False
        self.release_images: dict[str, str] = {}   # image as pods name it -> digest the cluster's registry serves
        self.unbuilt: dict[str, str] = {}          # image -> why its (optional) build failed
        self.pgbr_plan: PgbrPlan | None = None

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def kube_context(self) -> str:
        return self.commands.context

    def _tool(self, name: str) -> Path:
        path = self.settings.bin_dir / name
        if not path.exists():
            raise BackendUnavailable(f"k3d backend needs {path}; run `make tools` first")
        return path

    def preflight(self) -> None:
        """The Docker engine first (nothing else matters without it), then every other need at once."""
        if not docker.engine_answers():
            raise BackendUnavailable("k3d backend needs a running Docker engine (`docker info` failed)")
        problems = []
        if shutil.which("skopeo") is None:
            problems.append("skopeo (pushes ko's base image to the cluster's registry): `brew install skopeo` "
                            "or `sudo apt-get install skopeo`")
        if shutil.which("go") is None:
            problems.append("go (ko builds the server and the controller; backup-maker's image needs its binary): "
                            "https://go.dev/dl")
        absent = [tool for tool in K3D_TOOLS if not (self.settings.bin_dir / tool).exists()]
        if absent:
            problems.append(f"the pinned {', '.join(absent)} in {self.settings.bin_dir}: run `make tools` first")
        if problems:
            raise BackendUnavailable("k3d backend needs " + "; ".join(problems))

    def start(self) -> None:
        existing = json.loads(run(self.commands.list_clusters(), what="k3d cluster list").stdout or "null") or []
        if self.settings.cluster_name in {c.get("name") for c in existing}:
            if not self._state_file.exists():
                raise BackendError(f"k3d cluster {self.settings.cluster_name} exists but {self._state_file} "
                                   f"is missing; delete it with `{' '.join(self.commands.delete_cluster())}`")
            self._reused = True
        else:
            self._remove_stale_registry()
            port = free_port()
            registry_config = self.settings.build_dir / f"k3d-{self.settings.cluster_name}-registries.yaml"
            registry_config.write_text(self.commands.registry_config(port))
            with progress.step(f"k3d: creating registry and cluster {self.settings.cluster_name}"):
                run(self.commands.create_registry(port), what="k3d registry create", timeout=300)
                run(self.commands.create_cluster(registry_config), what="k3d cluster create", timeout=600)
            self._state_file.write_text(json.dumps({"registry_port": port}))
            self.deploy_record().unlink(missing_ok=True)   # a new cluster runs nothing yet
        kubeconfig = run(self.commands.kubeconfig(), what="k3d kubeconfig get", secret_output=True).stdout
        self._kubeconfig.write_text(kubeconfig)
        os.chmod(self._kubeconfig, 0o600)

    def _remove_stale_registry(self) -> None:
        """A registry of our name without our cluster is what a crashed start left (`k3d registry create`
        would fail on it): delete it, or say how."""
        listed = json.loads(run(self.commands.list_registries(), what="k3d registry list").stdout or "null") or []
        container = self.commands.registry_container
        if container not in {r.get("name") for r in listed}:
            return
        delete = " ".join(self.commands.delete_registry())
        progress.say(f"k3d: deleting registry {container}, left by an earlier run: cluster "
                     f"{self.settings.cluster_name} does not exist")
        try:
            run(self.commands.delete_registry(), what="k3d registry delete (left by an earlier run)", timeout=120)
        except CommandError as exc:
            raise BackendError(f"k3d registry {container} exists without cluster {self.settings.cluster_name} "
                               f"(left by an earlier run) and could not be deleted: {exc}\ndelete it with "
                               f"`{delete}` (or `docker rm -f {container}`) and run again") from None

    def skaffold(self) -> Skaffold:
        port = json.loads(self._state_file.read_text())["registry_port"]
        return Skaffold(self._tool("skaffold"), self.settings.project_dir, self.kubeconfig,
                        self.kube_context, f"localhost:{port}", tools_dir=self.settings.bin_dir,
                        build_dir=self.settings.build_dir)

    def deploy(self, sources: Sequence[ResolvedSource]) -> None:
        """backup-maker's and pgbr's images built at their pins and pushed to the cluster's registry (which
        serves their ghcr.io names), then the one deploy path (``SkaffoldBackend.deploy``)."""
        by_name = {s.component.name: s for s in sources}
        self.build_release_images(by_name["backup-maker"], by_name["pgbr"])
        super().deploy(sources)

    def build_release_images(self, backup_maker: ResolvedSource, pgbr: ResolvedSource) -> None:
        release = self.settings.release
        images = K3dImageCommands(self.skaffold().default_repo, engine_platform())
        self.pgbr_plan = pgbr_plan(release, backup_maker.path)
        with tempfile.TemporaryDirectory(prefix="e2e-k3d-images-") as scratch:
            context = Path(scratch, "backup-maker")
            binary = context / ".build" / "backup-maker"
            binary.parent.mkdir(parents=True)
            gotmp = Path(scratch, "gotmp")
            gotmp.mkdir()
            builds = release_image_builds(release, backup_maker, pgbr, context, self.pgbr_plan)
            check_dockerfile(builds[0], provided=[".build/backup-maker"])
            for build in builds[1:]:
                check_dockerfile(build)
            with progress.step(f"go build backup-maker at {backup_maker.revision} for {images.platform}"):
                run(images.backup_maker_binary(binary), cwd=backup_maker.path,
                    env={**images.backup_maker_env(), "GOTMPDIR": str(gotmp)}, timeout=GO_BUILD_TIMEOUT,
                    what=f"backup-maker at {backup_maker.revision}: go build")
            for build in builds:
                self._build_and_push(images, build)
        if self._reused:   # the node may hold an earlier run's pull of these names
            for image in self.release_images:
                run(self.commands.forget_image(image), what=f"forgetting the node's copy of {image}",
                    timeout=60, check=False)

    def _build_and_push(self, images: K3dImageCommands, build: ImageBuild) -> None:
        args = ", ".join(f"{k}={v}" for k, v in build.build_args)
        with_args = f" with {args}" if args else ""
        try:
            with progress.step(f"docker build {build.image} ({build.component} at {build.revision}{with_args})"):
                run(images.build(build), env=images.build_env(), timeout=BUILD_TIMEOUT,
                    what=f"{build.component} at {build.revision}: docker build of {build.image}")
                pushed = run(images.push(build.image), timeout=PUSH_TIMEOUT, what=f"docker push {build.image}")
        except CommandError as exc:
            if build.required:
                raise BackendError(str(exc)) from None
            self.unbuilt[build.image] = (f"{build.component}'s Dockerfile at {build.revision} did not build it"
                                         f"{with_args}: {tail(exc.output, 5)}")
            progress.say(f"{build.image}: its build failed; the templates that name it are skipped as not hostable")
            return
        digest = images.pushed_digest(build.image, pushed.stdout + pushed.stderr)
        if digest is None:
            inspected = run(images.repo_digests(build.image), timeout=60, check=False,
                            what=f"docker image inspect {build.image}")
            if inspected.returncode == 0:
                digest = images.pushed_digest(build.image, "", inspected.stdout.strip() or None)
        digest = digest or "digest unknown"
        self.release_images[build.image] = digest
        self.built_images[build.image] = (
            f"{digest} ({build.component} at {build.revision}, docker build of its own Dockerfile for "
            f"{images.platform}{with_args}; pushed as {images.local(build.image)}, which the cluster's "
            f"{build.image.split('/', 1)[0]} mirror serves)")

    def unhostable_reason(self, image: str) -> str | None:
        return super().unhostable_reason(image) or unhostable_reason(image, self.settings.release, self.release_images,
                                                                     self.unbuilt, self.pgbr_plan)

    def deploy_record(self) -> Path:
        return self.settings.build_dir / f"k3d-{self.settings.cluster_name}-deployed.json"

    def stop(self) -> None:
        super().stop()
        if self.settings.keep_cluster:
            return
        run(self.commands.delete_cluster(), what="k3d cluster delete", timeout=300, check=False)
        run(self.commands.delete_registry(), what="k3d registry delete", timeout=120, check=False)
        for path in (self._state_file, self._kubeconfig, self.deploy_record()):
            path.unlink(missing_ok=True)
