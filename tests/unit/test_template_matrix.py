"""The template matrix: definitions read, hosted only where faithful, known defects matched, reported (against
the pinned backup-maker's source: tests/integration/test_template_matrix.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e_harness.backends.local.image_recipes import release_images, unhostable_reason
from e2e_harness.backends.local.images import normalise
from e2e_harness.known_defects import KnownDefectHit, Occurrences, load, raise_if_hit, template_defects
from e2e_harness.release import load_release
from e2e_harness.report import TestResult as CaseResult  # not a test class
from e2e_harness.report import render_template_matrix
from e2e_harness.templates import TemplateDefinitionError, load_definitions

from .conftest import PROJECT_DIR

RELEASE = load_release(PROJECT_DIR / "release.env")
BINARIES = {"backup-maker": Path("/opt/bm/backup-maker"), "pgbr": Path("/opt/pgbr/pgbr")}


def _definition(directory: Path, name: str, **doc) -> None:
    (directory / "generate" / "templates" / "definition").mkdir(parents=True, exist_ok=True)
    (directory / "generate" / "templates" / "definition" / f"{name}.json").write_text(json.dumps(doc))


def test_an_unknown_script_is_its_own_family_and_a_bad_definition_names_file_and_key(tmp_path):
    _definition(tmp_path, "new", defaultImage="x:1", backupTemplate="redis.tmpl", restoreTemplate="redis.tmpl")
    assert load_definitions(tmp_path)[0].family == "unknown:redis.tmpl"
    _definition(tmp_path, "broken", defaultImage="x:1", restoreTemplate="r.tmpl")
    with pytest.raises(TemplateDefinitionError, match=r"broken\.json: missing or empty key\(s\) backupTemplate"):
        load_definitions(tmp_path)
    with pytest.raises(TemplateDefinitionError, match="no template definitions"):
        load_definitions(tmp_path / "nothing")


def _named_images() -> list[str]:
    """What the local backend's deploy asks release_images for: the pinned templates' images (the names
    backup-maker v1.0.0-rc1's definitions use) and fixtures/deploy's."""
    from e2e_harness.backends.local import manifest_images

    templates = [f"ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg{major}" for major in (12, 13, 14, 15)]
    templates += [f"docker.io/mariadb:10.{minor}" for minor in (6, 7, 8, 9, 10, 11)]
    templates += ["docker.io/mariadb:10.11-rc", "docker.io/mysql:8.0-debian", "docker.io/debian:bookworm-slim",
                  "ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1"]
    return [*manifest_images(PROJECT_DIR), *templates]


def test_local_hosting_builds_only_the_majors_a_recipe_builds_faithfully():
    wanted = release_images(RELEASE, BINARIES, debian_codename="bookworm", named=_named_images())
    hosted = {normalise(ref) for recipe in wanted.recipes for ref in recipe.refs}
    for image in ("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15", "docker.io/mariadb:10.11", "docker.io/mariadb:10.11-rc",
                  "docker.io/debian:bookworm-slim", "ghcr.io/riotkit-org/br-backup-maker:main",
                  # PostgreSQL 12, 13 and 14: the majors POSTGRES_INSTALLS has beside the release's
                  "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg12", "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13",
                  "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg14",
                  # the subjects and the controller's Redis (fixtures/deploy)
                  "postgres:15", "postgres:12", "postgres:13", "postgres:14", "redis:7.0",
                  # MariaDB 10.6 and MySQL 8.0 from Ubuntu jammy, with their subjects
                  "docker.io/mariadb:10.6", "docker.io/mysql:8.0-debian", "mariadb:10.6", "mysql:8.0"):
        assert normalise(image) in hosted, image
    for image in ("docker.io/mariadb:10.7", "docker.io/mariadb:10.10",
                  "ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1"):
        assert normalise(image) not in hosted, image
    assert len(wanted.recipes) == len({r.name for r in wanted.recipes}), "a recipe asked for twice is built once"
    # every major the templates name that POSTGRES_INSTALLS has: its pgbr and its postgres, subject or not
    templates_only = release_images(RELEASE, BINARIES, named=["ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13"])
    assert {"pgbr-1.0.0-rc1-pg13", "postgres-13"} <= {r.name for r in templates_only.recipes}

    def reason(image):
        return unhostable_reason(image, wanted.unbuildable)

    assert "MariaDB 10.7" in reason("docker.io/mariadb:10.7") and "10.11" in reason("docker.io/mariadb:10.7")
    assert "mariadb.org is unreachable" in reason("docker.io/mariadb:10.7")
    assert "old-releases.ubuntu.com" in reason("docker.io/mariadb:10.9")
    # built by the deploy from the templates' tags (kubectl_image), not by release_images
    assert "not published by this run" in reason("ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1")
    assert set(wanted.unbuildable) == {normalise(f"docker.io/mariadb:10.{minor}") for minor in (7, 8, 9, 10)}
    # a pgbr tag of another version than the pin is never built: the pin is what is tested
    other = release_images(RELEASE, BINARIES, named=["ghcr.io/riotkit-org/pgbr:0.9-pg15"])
    assert "the release pins PGBR_VERSION=1.0.0-rc1" in unhostable_reason("ghcr.io/riotkit-org/pgbr:0.9-pg15",
                                                                          other.unbuildable)


def test_every_image_the_deploy_manifests_name_is_built_here():
    """fixtures/deploy names images by Docker Hub's tags; the local node serves each of them."""
    from e2e_harness.backends.local import manifest_images

    named = manifest_images(PROJECT_DIR)
    hosted = {normalise(ref) for recipe in release_images(RELEASE, BINARIES, named=named).recipes
              for ref in recipe.refs}
    assert sorted(named) == ["mariadb:10.11", "mariadb:10.6", "mysql:8.0", "postgres:12", "postgres:13",
                            "postgres:14", "postgres:15", "redis:7.0"], named
    assert [image for image in named if normalise(image) not in hosted] == []


def test_skaffolds_subject_module_deploys_every_manifest_of_fixtures_deploy():
    """skaffold.yaml lists the subject manifests one by one (postgres.yaml, holding the namespace, first): a
    subject Deployment in a file it does not list would never be deployed, and every backend waits for it."""
    import yaml

    docs = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((PROJECT_DIR / "skaffold.yaml").read_text())}
    listed = docs["subject"]["manifests"]["rawYaml"]
    manifests = [f"fixtures/deploy/{path.name}" for path in sorted((PROJECT_DIR / "fixtures" / "deploy").glob("*.yaml"))
                 if any((doc or {}).get("kind") == "Deployment" for doc in yaml.safe_load_all(path.read_text()))]
    assert listed[0] == "fixtures/deploy/postgres.yaml" and sorted(listed) == manifests


def test_xfail_defects_match_their_scenario_and_script_and_need_the_symptom():
    defects = load()
    mysql = template_defects(defects, RELEASE, "test_restore_into_the_database_named_in_params",
                             "mysql-dump.tmpl", "mysql-dump.tmpl")
    assert [d.id for d in mysql] == ["mysql-dump-restore-ignores-the-database"]
    assert template_defects(defects, RELEASE, "test_backup_and_restore", "mysql-dump.tmpl", "mysql-dump.tmpl") == []
    seen = Occurrences()
    raise_if_hit(mysql, "some other failure", seen)  # not the symptom: nothing raised, the test fails on its own
    with pytest.raises(KnownDefectHit, match="mysql-dump-restore-ignores-the-database"):
        raise_if_hit(mysql, "ERROR 1046 (3D000) at line 22: No database selected", seen)
    assert seen.counts() == {"mysql-dump-restore-ignores-the-database": 1}
    kubectl = template_defects(defects, RELEASE, "test_backup_and_restore", "kubectl.tmpl", "kubectl.tmpl")
    assert [d.id for d in kubectl] == ["kubectl-restore-never-downloads-the-backup"]
    with pytest.raises(KnownDefectHit, match="kubectl-restore-never-downloads-the-backup"):
        raise_if_hit(kubectl, '  File "/mnt/init/subject", line 44, in <module>\n    for ns in os.scandir(ns_path):\n'
                              "FileNotFoundError: [Errno 2] No such file or directory: '/mnt/workspace/k8s/by-ns'", seen)


def test_report_table_has_a_row_per_template_and_a_column_per_backend():
    case = "tests/e2e/test_template_matrix.py::{}[{}]"
    local = [CaseResult(case.format("test_backup_and_restore", "pg15"), "passed", 1),
             CaseResult(case.format("test_backup_and_restore", "pg14"), "skipped", 0, reason="not hostable on the local backend: image x needs PG 14"),
             CaseResult(case.format("test_backup_and_restore", "tar"), "passed", 1),
             CaseResult(case.format("test_backup_and_restore_of_a_single_file", "tar"), "xfailed", 1,
                        reason="known defect tar-single-file-uses-basedir: basedir"),
             CaseResult(case.format("test_backup_and_restore", "mariadb-10.11"), "failed", 1)]
    k3d = [CaseResult(case.format("test_backup_and_restore", "pg14"), "passed", 1)]
    lines = render_template_matrix({"local": local, "k3d": k3d})
    assert lines[0] == "| template | local | k3d |"
    rows = {line.split("|")[1].strip(" `"): line for line in lines[2:]}
    assert "| not hostable on the local backend: image x needs PG 14 | passed (1 scenario) |" in rows["pg14"]
    assert "passed (1 scenario); known defect (tar-single-file-uses-basedir)" in rows["tar"]
    assert "**failed**: `test_backup_and_restore`" in rows["mariadb-10.11"]
    assert "not run" in rows["pg15"]
