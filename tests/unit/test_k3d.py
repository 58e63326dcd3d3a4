"""The k3d backend builds backup-maker's and pgbr's images from their pins (their own Dockerfiles) and
serves them under the ghcr.io names the controller and the templates use. No Docker engine here: the
command lines, the registries.yaml, the build plan and the start/deploy logic are checked with ``run``
replaced."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from e2e_harness.backends import BackendError, BackendUnavailable
from e2e_harness.backends import k3d
from e2e_harness.backends.base import Settings
from e2e_harness.backends.k3d import (ImageBuild, K3dBackend, K3dCommands, K3dImageCommands, PgbrPlan,
                                      backup_maker_image, check_dockerfile, dockerfile_inputs, pgbr_go_version,
                                      pgbr_plan, release_image_builds, unhostable_reason)
from e2e_harness.commands import CommandError, Result
from e2e_harness.components import COMPONENTS, ResolvedSource

from .conftest import PROJECT_DIR

K3D = K3dCommands(Path("/p/.build/bin/k3d"), "e2e", "v1.31.5-k3s1")
RELEASE = {"PGBR_VERSION": "1.0.0-rc1", "POSTGRES_VERSION": "15", "K3S_VERSION": "v1.31.5-k3s1",
           "BACKUP_MAKER_VERSION": "v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8"}
DIGEST = "sha256:" + "ab" * 32

# The two Dockerfiles at the pins (br-backup-maker 8c7f6c4a, br-pgbr 1.0.0-rc1), as the fakes' content.
BACKUP_MAKER_DOCKERFILE = """
# main image
FROM debian:11.2-slim
RUN apt-get update -y && apt-get install -y git bash curl wget gpg && apt-get clean
ADD .build/backup-maker /usr/bin/backup-maker
RUN chmod +x /usr/bin/backup-maker
USER 1001
"""
PGBR_DOCKERFILE = """
ARG POSTGRES_VERSION
ARG GO_VERSION
FROM golang:${GO_VERSION} as builder
ADD . /workspace
RUN apt-get update && apt-get install make -y
RUN cd /workspace && \\
    make build
FROM postgres:${POSTGRES_VERSION}
RUN apt-get update && apt-get install -y gpg
COPY --from=builder /workspace/.build/pgbr /usr/bin/pgbr
ENTRYPOINT ["/usr/bin/pgbr"]
"""


def _source(root: Path, name: str, revision: str) -> ResolvedSource:
    component = next(c for c in COMPONENTS if c.name == name)
    return ResolvedSource(component, None, root, "clone", revision)


@pytest.fixture
def sources(tmp_path) -> tuple[ResolvedSource, ResolvedSource]:
    """backup-maker and pgbr trees with what the k3d backend reads of them."""
    bm, pg = tmp_path / "backup-maker", tmp_path / "pgbr"
    (bm / "version").mkdir(parents=True)
    (bm / "version" / "version.go").write_text(
        'package version\n\nvar (\n\tSelfContainerImage = "ghcr.io/riotkit-org/br-backup-maker:main"\n)\n')
    (bm / "Dockerfile").write_text(BACKUP_MAKER_DOCKERFILE)
    definitions = bm / "generate" / "templates" / "definition"
    definitions.mkdir(parents=True)
    for name, image, script in [("pg13", "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13", "postgres.tmpl"),
                                ("pg15", "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15", "postgres.tmpl"),
                                ("mariadb-10.6", "mariadb:10.6", "mysql-dump.tmpl")]:
        (definitions / f"{name}.json").write_text(
            f'{{"defaultImage": "{image}", "backupTemplate": "{script}", "restoreTemplate": "{script}"}}')
    pg.mkdir()
    (pg / "Dockerfile").write_text(PGBR_DOCKERFILE)
    (pg / "ci.mk").write_text("GO_VERSION=1.19\nPOSTGRES_VERSION=15\n")
    (pg / "go.mod").write_text("module github.com/riotkit-org/br-pg-simple-backup\n\ngo 1.19\n")
    return _source(bm, "backup-maker", "8c7f6c4a"), _source(pg, "pgbr", "e9e7e0b1")


# --- registries.yaml ---------------------------------------------------------------------------


def test_the_cluster_resolves_ghcr_io_through_its_registry_and_docker_hub_upstream():
    text = K3D.registry_config(41234)
    mirrors = yaml.safe_load(text)["mirrors"]
    in_network = ["http://k3d-e2e-registry:5000"]
    # localhost:<port> (skaffold's and the harness's pushes) and ghcr.io (backup-maker's and pgbr's names):
    # the repository path stays, so ghcr.io/riotkit-org/pgbr:x is the registry's riotkit-org/pgbr:x.
    assert mirrors == {"localhost:41234": {"endpoint": in_network}, "ghcr.io": {"endpoint": in_network}}
    assert "docker.io" not in mirrors   # postgres, mariadb, redis, busybox: from Docker Hub as named
    assert "rewrite" not in text and "&" not in text and "*" not in text   # no rewrites, no YAML aliases


# --- the image commands --------------------------------------------------------------------------


def test_docker_build_and_push_command_lines(tmp_path):
    images = K3dImageCommands("localhost:41234", "linux/arm64")
    pgbr = ImageBuild("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg14", "pgbr", "e9e7e0b1", Path("/s/pgbr/Dockerfile"),
                      Path("/s/pgbr"), (("POSTGRES_VERSION", "14"), ("GO_VERSION", "1.19")))
    assert images.build(pgbr) == [
        "docker", "build", "--platform", "linux/arm64", "--file", "/s/pgbr/Dockerfile",
        "--build-arg", "POSTGRES_VERSION=14", "--build-arg", "GO_VERSION=1.19",
        "--label", "org.opencontainers.image.revision=e9e7e0b1", "--label", "org.opencontainers.image.title=pgbr",
        "--tag", "localhost:41234/riotkit-org/pgbr:1.0.0-rc1-pg14", "/s/pgbr"]
    assert images.build_env() == {"DOCKER_BUILDKIT": "1"}
    assert images.push(pgbr.image) == ["docker", "push", "localhost:41234/riotkit-org/pgbr:1.0.0-rc1-pg14"]
    maker = ImageBuild("ghcr.io/riotkit-org/br-backup-maker:main", "backup-maker", "8c7f6c4a",
                       Path("/s/bm/Dockerfile"), tmp_path / "ctx")
    assert images.build(maker)[-3:] == ["--tag", "localhost:41234/riotkit-org/br-backup-maker:main",
                                        str(tmp_path / "ctx")]
    assert images.local(maker.image) == "localhost:41234/riotkit-org/br-backup-maker:main"
    # backup-maker's binary for the engine's platform (a Mac's engine is linux/arm64, not darwin)
    assert images.backup_maker_binary(Path("/c/.build/backup-maker")) == [
        "go", "build", "-o", "/c/.build/backup-maker", "."]
    assert images.backup_maker_env() == {"CGO_ENABLED": "0", "GO111MODULE": "on", "GOOS": "linux", "GOARCH": "arm64"}
    assert K3dImageCommands("localhost:1", "linux/amd64").backup_maker_env()["GOARCH"] == "amd64"


def test_the_digest_is_the_one_docker_push_reports_else_the_registrys_repo_digest():
    images = K3dImageCommands("localhost:41234", "linux/amd64")
    image = "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15"
    output = (f"The push refers to repository [localhost:41234/riotkit-org/pgbr]\n"
              f"1.0.0-rc1-pg15: digest: {DIGEST} size: 2201\n")
    assert images.pushed_digest(image, output) == DIGEST
    other = "sha256:" + "cd" * 32
    repo_digests = f'["ghcr.io/riotkit-org/pgbr@{other}","localhost:41234/riotkit-org/pgbr@{DIGEST}"]'
    assert images.pushed_digest(image, "pushed", repo_digests) == DIGEST
    assert images.pushed_digest(image, "pushed", "[]") is None
    assert images.pushed_digest(image, "pushed", "Error: No such image") is None


def test_engine_platform_is_asked_of_the_docker_engine(monkeypatch):
    seen = []

    def fake_run(args, **kwargs):
        seen.append(list(args))
        return Result(tuple(args), 0, "linux/arm64\n", "")

    monkeypatch.setattr(k3d, "run", fake_run)
    assert k3d.engine_platform() == "linux/arm64"
    assert seen == [["docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]]


# --- what the Dockerfiles need ---------------------------------------------------------------------


def test_the_dockerfiles_inputs_are_read():
    assert dockerfile_inputs(PGBR_DOCKERFILE) == ({"POSTGRES_VERSION": None, "GO_VERSION": None}, ["."])
    assert dockerfile_inputs(BACKUP_MAKER_DOCKERFILE) == ({}, [".build/backup-maker"])
    assert dockerfile_inputs("ARG A=1\nCOPY --chown=1:1 a b /dst/\n") == ({"A": "1"}, ["a", "b"])


def test_a_dockerfile_needing_what_the_harness_does_not_give_stops_the_deploy(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(PGBR_DOCKERFILE.replace("ARG GO_VERSION", "ARG GO_VERSION\nARG ALPINE_VERSION"))
    build = ImageBuild("ghcr.io/riotkit-org/pgbr:1-pg15", "pgbr", "abc", dockerfile, tmp_path,
                       (("POSTGRES_VERSION", "15"), ("GO_VERSION", "1.19")))
    with pytest.raises(BackendError, match="pgbr at abc: its Dockerfile needs the build arg\\(s\\) ALPINE_VERSION"):
        check_dockerfile(build)
    dockerfile.write_text(BACKUP_MAKER_DOCKERFILE + "COPY resources/ /etc/bm/\n")
    maker = ImageBuild("ghcr.io/riotkit-org/br-backup-maker:main", "backup-maker", "def", dockerfile, tmp_path)
    with pytest.raises(BackendError, match="copies resources/ from the build context; the k3d backend provides "
                                           "\\.build/backup-maker only"):
        check_dockerfile(maker, provided=[".build/backup-maker"])
    with pytest.raises(BackendError, match="no Dockerfile at"):
        check_dockerfile(ImageBuild("ghcr.io/riotkit-org/pgbr:1-pg15", "pgbr", "abc", tmp_path / "nope", tmp_path))


def test_pgbrs_go_version_is_its_own_releases_else_its_go_mod(sources, tmp_path):
    _, pg = sources
    assert pgbr_go_version(pg.path) == "1.19"
    (pg.path / "ci.mk").unlink()
    (pg.path / "go.mod").write_text("module x\n\ngo 1.21\n")
    assert pgbr_go_version(pg.path) == "1.21"
    with pytest.raises(BackendError, match="which Go its Dockerfile's builder stage needs"):
        pgbr_go_version(tmp_path)


def test_backup_makers_image_is_the_one_its_pin_names(sources):
    bm, _ = sources
    assert backup_maker_image(bm.path) == "ghcr.io/riotkit-org/br-backup-maker:main"
    (bm.path / "version" / "version.go").write_text(
        'var SelfContainerImage = "quay.io/riotkit-org/br-backup-maker:main"')
    with pytest.raises(BackendError, match="quay.io/riotkit-org/br-backup-maker:main; the k3d backend serves"):
        backup_maker_image(bm.path)


def test_pgbr_is_built_for_the_releases_major_and_every_major_the_templates_name(sources):
    bm, pg = sources
    plan = pgbr_plan(RELEASE, bm.path)
    assert plan.named == ("13", "15") and plan.majors == ("13", "15")
    assert pgbr_plan({**RELEASE, "POSTGRES_VERSION": "16"}, bm.path).majors == ("13", "15", "16")
    builds = release_image_builds(RELEASE, bm, pg, Path("/ctx"), plan)
    assert [(b.image, b.required) for b in builds] == [
        ("ghcr.io/riotkit-org/br-backup-maker:main", True),
        ("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13", False),    # a template's: a failed build makes it unhostable
        ("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15", True)]     # POSTGRES_VERSION: the main scenarios need it
    assert builds[0].context == Path("/ctx") and builds[0].dockerfile == bm.path / "Dockerfile"
    assert builds[2].build_args == (("POSTGRES_VERSION", "15"), ("GO_VERSION", "1.19"))
    assert builds[2].context == pg.path and builds[2].revision == "e9e7e0b1"


# --- which template images the cluster hosts ----------------------------------------------------------


def test_unhostable_reason_names_the_majors_built_and_why():
    plan = PgbrPlan("1.0.0-rc1", "15", ("13", "15"))
    built = {plan.image("13"): DIGEST, plan.image("15"): DIGEST, "ghcr.io/riotkit-org/br-backup-maker:main": DIGEST}

    def reason(image, failed=None):
        return unhostable_reason(image, RELEASE, built, failed or {}, plan)

    assert reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15") is None
    assert reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13") is None
    why = reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg12")
    assert "PostgreSQL 13, 15 only" in why and "POSTGRES_VERSION=15" in why and "templates name (13, 15)" in why
    assert "not 12" in why and "upstream" in why
    assert "names pgbr 0.9, but the release pins PGBR_VERSION=1.0.0-rc1" in reason("ghcr.io/riotkit-org/pgbr:0.9-pg15")
    assert reason(plan.image("13"), {plan.image("13"): "the build failed"}) is None   # built wins
    assert reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg12", {"ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg12": "boom"}) == \
        "image ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg12: boom"
    assert "br-backup-maker:main only" in reason("ghcr.io/riotkit-org/br-backup-maker:v1")
    # everything else is pulled as the release names it
    for image in ("docker.io/mariadb:10.6", "mysql:8.0-debian", "debian:bookworm-slim",
                  "ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1", "docker.io/riotkit-org/pgbr:1.0.0-rc1-pg12"):
        assert reason(image) is None, image
    # before the deploy built anything
    assert "has built no pgbr image" in unhostable_reason(plan.image("15"), RELEASE, {}, {}, None)


# --- the backend, with run replaced --------------------------------------------------------------


class FakeRun:
    """Records every command; answers from ``answers`` (first matching prefix), else exit 0 and no output."""

    def __init__(self, answers=None):
        self.calls: list[tuple[list[str], dict]] = []
        self.answers = answers or []

    def __call__(self, args, **kwargs):
        args = [str(a) for a in args]
        self.calls.append((args, kwargs))
        for prefix, answer in self.answers:
            if args[:len(prefix)] == prefix:
                if isinstance(answer, Exception):
                    raise answer
                returncode, stdout = answer
                if returncode and kwargs.get("check", True):
                    raise CommandError(f"{args} failed", returncode=returncode, output=stdout)
                return Result(tuple(args), returncode, stdout, "")
        return Result(tuple(args), 0, "", "")

    def commands(self) -> list[list[str]]:
        return [args for args, _ in self.calls]


def _backend(tmp_path) -> K3dBackend:
    build_dir = tmp_path / ".build"   # the project's own: the pinned tools are in <project>/.build/bin
    (build_dir / "bin").mkdir(parents=True)
    for tool in ("k3d", "kubectl", "helm", "skaffold"):
        (build_dir / "bin" / tool).write_text("")
    shutil.copytree(PROJECT_DIR / "fixtures" / "deploy", tmp_path / "fixtures" / "deploy")   # the deploy's subjects
    return K3dBackend(Settings(release=RELEASE, project_dir=tmp_path, build_dir=build_dir,
                               artifacts_dir=tmp_path / "artifacts", run_id="run-1", cluster_name="e2e"))


def test_a_registry_left_by_a_crashed_start_is_deleted_before_the_registry_is_created(tmp_path, monkeypatch):
    backend = _backend(tmp_path)
    k3d_bin = str(backend.settings.bin_dir / "k3d")
    fake = FakeRun([([k3d_bin, "cluster", "list"], (0, "[]")),
                    ([k3d_bin, "registry", "list"], (0, '[{"name": "k3d-e2e-registry", "role": "registry"}]')),
                    ([k3d_bin, "kubeconfig", "get"], (0, "apiVersion: v1\n"))])
    monkeypatch.setattr(k3d, "run", fake)
    backend.start()
    sub = [c[1:3] for c in fake.commands()]
    assert sub == [["cluster", "list"], ["registry", "list"], ["registry", "delete"], ["registry", "create"],
                   ["cluster", "create"], ["kubeconfig", "get"]]
    assert fake.commands()[2] == [k3d_bin, "registry", "delete", "k3d-e2e-registry"]
    registries = yaml.safe_load((backend.settings.build_dir / "k3d-e2e-registries.yaml").read_text())
    assert set(registries["mirrors"]) == {f"localhost:{backend.skaffold().default_repo.split(':')[1]}", "ghcr.io"}


def test_no_registry_of_ours_means_no_delete(tmp_path, monkeypatch):
    backend = _backend(tmp_path)
    k3d_bin = str(backend.settings.bin_dir / "k3d")
    fake = FakeRun([([k3d_bin, "cluster", "list"], (0, "[]")),
                    ([k3d_bin, "registry", "list"], (0, '[{"name": "k3d-other-registry"}]'))])
    monkeypatch.setattr(k3d, "run", fake)
    backend.start()
    assert ["registry", "delete"] not in [c[1:3] for c in fake.commands()]


def test_workers_of_a_concurrent_run_share_the_cluster_and_only_the_controller_deletes_it(tmp_path, monkeypatch):
    """Each worker keeps the shared cluster at its stop; the controller's release_shared deletes it once
    (and keeps it with --keep-cluster)."""
    from dataclasses import replace

    first = _backend(tmp_path)
    k3d_bin = str(first.settings.bin_dir / "k3d")
    fake = FakeRun([([k3d_bin, "cluster", "list"], (0, "[]")), ([k3d_bin, "registry", "list"], (0, "[]")),
                    ([k3d_bin, "kubeconfig", "get"], (0, "apiVersion: v1\n"))])
    monkeypatch.setattr(k3d, "run", fake)
    worker = replace(first.settings, keep_cluster=True, shared=True)
    first = K3dBackend(worker)
    first.start()
    first.share()
    fake.answers.insert(0, ([k3d_bin, "cluster", "list"], (0, '[{"name": "e2e"}]')))
    second = K3dBackend(worker)
    second.start()
    assert second._reused, "the second worker attaches to the cluster the first made"
    for backend in (first, second):
        backend.stop()
    assert [c[1:3] for c in fake.commands()].count(["cluster", "create"]) == 1
    assert ["cluster", "delete"] not in [c[1:3] for c in fake.commands()], "a worker deleted the shared cluster"
    K3dBackend(replace(worker, keep_cluster=True)).release_shared()
    assert ["cluster", "delete"] not in [c[1:3] for c in fake.commands()], "--keep-cluster: kept"
    K3dBackend(replace(worker, keep_cluster=False)).release_shared()
    assert [c[1:3] for c in fake.commands()].count(["cluster", "delete"]) == 1


def test_a_stale_registry_that_cannot_be_deleted_is_named_with_the_command(tmp_path, monkeypatch):
    backend = _backend(tmp_path)
    k3d_bin = str(backend.settings.bin_dir / "k3d")
    fake = FakeRun([([k3d_bin, "cluster", "list"], (0, "null")),
                    ([k3d_bin, "registry", "list"], (0, '[{"name": "k3d-e2e-registry"}]')),
                    ([k3d_bin, "registry", "delete"], (1, "permission denied"))])
    monkeypatch.setattr(k3d, "run", fake)
    with pytest.raises(BackendError, match=f"(?s)k3d registry k3d-e2e-registry exists without cluster e2e .*"
                                           f"delete it with `{k3d_bin} registry delete k3d-e2e-registry`"):
        backend.start()
    assert ["registry", "create"] not in [c[1:3] for c in fake.commands()]


def test_deploy_builds_the_pinned_images_and_reports_what_ran(tmp_path, monkeypatch, sources):
    bm, pg = sources
    backend = _backend(tmp_path)
    (backend.settings.build_dir / "k3d-e2e.json").write_text('{"registry_port": 41234}')
    fake = FakeRun([(["docker", "version"], (0, "linux/arm64\n")),
                    (["docker", "push"], (0, f"main: digest: {DIGEST} size: 1\n")),
                    # the pg13 build fails: a template's major, so it becomes unhostable
                    (["docker", "build", "--platform", "linux/arm64", "--file", str(pg.path / "Dockerfile"),
                      "--build-arg", "POSTGRES_VERSION=13"], (1, "E: unable to locate package gpg"))])
    monkeypatch.setattr(k3d, "run", fake)
    delegated = []
    monkeypatch.setattr(k3d.SkaffoldBackend, "deploy", lambda self, sources: delegated.append(sources))
    backend.deploy([bm, pg])

    commands = fake.commands()
    go_build, go_kwargs = next((a, k) for a, k in fake.calls if a[:2] == ["go", "build"])
    assert go_kwargs["cwd"] == bm.path
    assert {k: go_kwargs["env"][k] for k in ("CGO_ENABLED", "GOOS", "GOARCH")} == \
        {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "arm64"}
    context = Path(go_build[3]).parent.parent
    assert go_build[3].endswith("/.build/backup-maker")
    builds = [c for c in commands if c[:2] == ["docker", "build"]]
    assert [c[c.index("--tag") + 1] for c in builds] == [
        "localhost:41234/riotkit-org/br-backup-maker:main", "localhost:41234/riotkit-org/pgbr:1.0.0-rc1-pg13",
        "localhost:41234/riotkit-org/pgbr:1.0.0-rc1-pg15"]
    assert builds[0][-1] == str(context) and builds[0][builds[0].index("--file") + 1] == str(bm.path / "Dockerfile")
    assert all(c[c.index("--platform") + 1] == "linux/arm64" for c in builds)
    assert all(k["env"] == {"DOCKER_BUILDKIT": "1"} for a, k in fake.calls if a[:2] == ["docker", "build"])
    assert [c for c in commands if c[:2] == ["docker", "push"]] == [
        ["docker", "push", "localhost:41234/riotkit-org/br-backup-maker:main"],
        ["docker", "push", "localhost:41234/riotkit-org/pgbr:1.0.0-rc1-pg15"]]
    assert not context.exists(), "the build context (a temp dir) is left behind"
    assert delegated == [[bm, pg]]
    assert not any(c[:2] == ["docker", "exec"] for c in commands)   # a new cluster has nothing to forget

    platform = backend.platform()
    maker = platform["image ghcr.io/riotkit-org/br-backup-maker:main"]
    assert maker.startswith(DIGEST) and "backup-maker at 8c7f6c4a" in maker and "linux/arm64" in maker
    pg15 = platform["image ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15"]
    assert "pgbr at e9e7e0b1" in pg15 and "with POSTGRES_VERSION=15, GO_VERSION=1.19" in pg15
    assert "image ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13" not in platform
    assert backend.unhostable_reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15") is None
    failed = backend.unhostable_reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13")
    assert "pgbr's Dockerfile at e9e7e0b1 did not build it with POSTGRES_VERSION=13, GO_VERSION=1.19" in failed
    assert "E: unable to locate package gpg" in failed
    # Docker Hub's images need no build here: what a mariadb:10.7 template lacks is a subject of its version
    assert "no subject Deployment of fixtures/deploy runs it" in backend.unhostable_reason("docker.io/mariadb:10.7")


def test_the_releases_own_pgbr_must_build(tmp_path, monkeypatch, sources):
    bm, pg = sources
    backend = _backend(tmp_path)
    (backend.settings.build_dir / "k3d-e2e.json").write_text('{"registry_port": 41234}')
    fake = FakeRun([(["docker", "version"], (0, "linux/amd64\n")),
                    (["docker", "build", "--platform", "linux/amd64", "--file", str(pg.path / "Dockerfile"),
                      "--build-arg", "POSTGRES_VERSION=15"], (1, "no space left on device"))])
    monkeypatch.setattr(k3d, "run", fake)
    monkeypatch.setattr(k3d.SkaffoldBackend, "deploy", lambda self, sources: pytest.fail("deployed anyway"))
    with pytest.raises(BackendError, match="failed"):
        backend.deploy([bm, pg])


def test_a_reused_cluster_forgets_its_nodes_earlier_pulls_of_the_built_names(tmp_path, monkeypatch, sources):
    bm, pg = sources
    backend = _backend(tmp_path)
    (backend.settings.build_dir / "k3d-e2e.json").write_text('{"registry_port": 41234}')
    k3d_bin = str(backend.settings.bin_dir / "k3d")
    fake = FakeRun([([k3d_bin, "cluster", "list"], (0, '[{"name": "e2e"}]')),
                    (["docker", "version"], (0, "linux/amd64\n")),
                    (["docker", "push"], (0, f"x: digest: {DIGEST} size: 1\n"))])
    monkeypatch.setattr(k3d, "run", fake)
    monkeypatch.setattr(k3d.SkaffoldBackend, "deploy", lambda self, sources: None)
    backend.start()
    assert ["registry", "list"] not in [c[1:3] for c in fake.commands()]
    backend.deploy([bm, pg])
    forgotten = [c for c in fake.commands() if c[:2] == ["docker", "exec"]]
    assert ["docker", "exec", "k3d-e2e-server-0", "crictl", "rmi",
            "ghcr.io/riotkit-org/br-backup-maker:main"] in forgotten
    assert all(kwargs.get("check") is False for args, kwargs in fake.calls if args[:2] == ["docker", "exec"])


# --- preflight -----------------------------------------------------------------------------------------


def test_preflight_asks_for_the_docker_engine_first_and_alone(tmp_path, monkeypatch):
    backend = _backend(tmp_path)
    monkeypatch.setattr(k3d.docker, "engine_answers", lambda: False)
    monkeypatch.setattr(k3d.shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailable) as exc:
        backend.preflight()
    # tests/selftest/test_workflow_jobs.py: a runner job must stop here, with this message, naming no package
    assert str(exc.value) == "k3d backend needs a running Docker engine (`docker info` failed)"


def test_preflight_names_skopeo_go_and_the_pinned_tools(tmp_path, monkeypatch):
    backend = _backend(tmp_path)
    monkeypatch.setattr(k3d.docker, "engine_answers", lambda: True)
    monkeypatch.setattr(k3d.shutil, "which", lambda name: None)
    (backend.settings.bin_dir / "helm").unlink()
    with pytest.raises(BackendUnavailable) as exc:
        backend.preflight()
    message = str(exc.value)
    assert "skopeo" in message and "brew install skopeo" in message and "apt-get install skopeo" in message
    assert "go (" in message
    assert f"the pinned helm in {backend.settings.bin_dir}: run `make tools`" in message
    monkeypatch.setattr(k3d.shutil, "which", lambda name: f"/usr/bin/{name}")
    (backend.settings.bin_dir / "helm").write_text("")
    backend.preflight()
