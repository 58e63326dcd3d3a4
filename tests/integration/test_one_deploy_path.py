"""The local and k3d backends deploy the same thing: skaffold.yaml rendered for each differs only in the registry.

Each backend's own ``skaffold()`` gives the invocation (as its deploy uses it); the manifests
``skaffold render`` makes from the components' charts at their pins are compared with the
registry replaced by a placeholder. ko's base image is pushed to that same registry, so it
differs by the registry too and nothing else.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from e2e_harness.backends import Settings, backend_class
from e2e_harness.backends.local.images import normalise
from e2e_harness.backends.skaffold import MODULES
from e2e_harness.commands import run
from e2e_harness.components import COMPONENTS, SourceResolver, git_mirror_from
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR

pytestmark = pytest.mark.needs_go


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """The project's own .build (skaffold.yaml names .build/<component>), with the sources resolved there."""
    build = PROJECT_DIR / ".build"
    release = load_release(PROJECT_DIR / "release.env", environ={})
    resolver = SourceResolver(build, git_mirror=git_mirror_from(None, os.environ), progress=lambda line: None)
    for component in COMPONENTS:
        if component.name in ("backup-repository", "backup-maker-controller"):
            resolver.resolve(component, release.pin(component.pin_key))
    for tool in ("skaffold", "helm"):
        if not (build / "bin" / tool).is_file():
            pytest.fail(f"{build / 'bin' / tool} is missing: run `make tools` (make check does)")
    return Settings(release=release, project_dir=PROJECT_DIR, build_dir=build,
                    artifacts_dir=tmp_path_factory.mktemp("artifacts"), run_id="render-1", cluster_name="render")


def local_skaffold(settings, tmp_path):
    backend = backend_class("local")(settings)
    backend.registry = "10.250.7.1:40001"   # what start() sets from its node
    backend.control_plane = SimpleNamespace(kubeconfig=tmp_path / "local.kubeconfig")
    return backend.skaffold(), "10.250.7.1:40001"


def k3d_skaffold(settings, tmp_path):
    backend = backend_class("k3d")(settings)
    state = settings.build_dir / f"k3d-{settings.cluster_name}.json"
    state.write_text(json.dumps({"registry_port": 40002}))
    try:
        return backend.skaffold(), "localhost:40002"
    finally:
        state.unlink()


def rendered(skaffold, registry: str, module: str) -> str:
    result = run(skaffold.render_command(module, "render-1"), env=skaffold.env(), timeout=300,
                 what=f"skaffold render --module {module}")
    assert registry in result.stdout or module == "subject", f"the {module} images are not in {registry}"
    return result.stdout.replace(registry, "REGISTRY")


@pytest.mark.parametrize("module", MODULES)
def test_local_and_k3d_render_the_same_manifests_but_for_the_registry(module, settings, tmp_path):
    local, local_registry = local_skaffold(settings, tmp_path)
    k3d, k3d_registry = k3d_skaffold(settings, tmp_path)
    assert local.default_repo != k3d.default_repo
    local_manifests = rendered(local, local_registry, module)
    assert "kind: Deployment" in local_manifests
    assert local_manifests == rendered(k3d, k3d_registry, module)


def test_every_backend_gives_a_template_a_subject_of_its_own_database_and_major(settings, tmp_path):
    """The same rule on local and k3d: a template needs a subject of its own database and version."""
    from e2e_harness import subjects

    deployed = subjects.deployed(PROJECT_DIR)
    versions = {s.name: s.version for s in deployed}
    assert versions["postgres"] == settings.release["POSTGRES_VERSION"], (
        "fixtures/deploy/postgres.yaml and POSTGRES_VERSION in release.env name different majors")
    major = versions["postgres"]
    assert subjects.unserved_reason(f"ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg{major}", deployed) is None
    assert subjects.unserved_reason(f"docker.io/library/mariadb:{versions['mariadb']}", deployed) is None
    missing = [image for image in ("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg11", "docker.io/library/mysql:8.0-debian",
                                   "docker.io/library/mariadb:10.5") if subjects.serving(image, deployed) is None]
    assert missing, "every probe image has a subject: pick versions no manifest deploys"
    for image in missing:
        assert "no subject Deployment of fixtures/deploy runs it" in subjects.unserved_reason(image, deployed), image
    local = backend_class("local")(settings)
    k3d = backend_class("k3d")(settings)
    for image in missing:
        assert local.unhostable_reason(image) == k3d.unhostable_reason(image) == \
            subjects.unserved_reason(image, deployed), image
    # where the deploy found no build of that version, the local backend's reason also says where it looked
    local.unbuildable = {normalise("docker.io/library/mariadb:10.5"): "no real build of it is reachable (looked in X)"}
    assert local.unhostable_reason("docker.io/library/mariadb:10.5") == (
        subjects.unserved_reason("docker.io/library/mariadb:10.5", deployed)
        + "; image docker.io/library/mariadb:10.5: no real build of it is reachable (looked in X)")


def test_a_build_dir_elsewhere_deploys_its_own_sources(settings, tmp_path):
    """--build-dir elsewhere (the sensitivity self-tests plant checkouts there): skaffold gets a copy of
    skaffold.yaml whose component paths are that build dir's, and every other path the project's."""
    import yaml
    from dataclasses import replace

    elsewhere = replace(settings, build_dir=tmp_path / "build")
    (tmp_path / "build").mkdir()
    skaffold, _ = local_skaffold(elsewhere, tmp_path)
    config = skaffold.config_file()
    assert config == tmp_path / "build" / "skaffold.yaml"
    docs = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(config.read_text())}
    assert docs["server"]["build"]["artifacts"][0]["context"] == str(tmp_path / "build" / "backup-repository")
    assert docs["controller"]["deploy"]["helm"]["releases"][0]["chartPath"].startswith(
        str(tmp_path / "build" / "backup-maker-controller") + "/")
    assert docs["server"]["deploy"]["helm"]["releases"][0]["valuesFiles"] == [
        str(PROJECT_DIR / "fixtures" / "deploy" / "server.values.yaml")]
    assert docs["subject"]["manifests"]["rawYaml"][0] == str(PROJECT_DIR / "fixtures" / "deploy" / "postgres.yaml")
    assert skaffold.run_command("server", "t")[skaffold.run_command("server", "t").index("--filename") + 1] == str(config)
