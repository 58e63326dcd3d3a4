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


def test_local_hosting_builds_only_the_majors_a_recipe_builds_faithfully():
    recipes = release_images(RELEASE, BINARIES, debian_codename="bookworm")
    hosted = {normalise(ref) for recipe in recipes for ref in recipe.refs}
    for image in ("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15", "docker.io/mariadb:10.11", "docker.io/mariadb:10.11-rc",
                  "docker.io/debian:bookworm-slim", "ghcr.io/riotkit-org/br-backup-maker:main",
                  # the subjects and the controller's Redis (fixtures/deploy)
                  "postgres:15", "redis:7.0"):
        assert normalise(image) in hosted, image
    for image in ("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg14", "docker.io/mariadb:10.6", "docker.io/mysql:8.0-debian",
                  "ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1"):
        assert normalise(image) not in hosted, image

    def reason(image):
        return unhostable_reason(image, RELEASE)

    assert "PostgreSQL 14" in reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg14")
    assert "MariaDB 10.6" in reason("docker.io/mariadb:10.6") and "10.11" in reason("docker.io/mariadb:10.6")
    assert "Debian ships MariaDB, not MySQL" in reason("docker.io/mysql:8.0-debian")
    # built by the deploy from the templates' tags (kubectl_image), not by release_images
    assert "not published by this run" in reason("ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1")
    assert "k3d" in reason("docker.io/mariadb:10.6")


def test_every_image_the_deploy_manifests_name_is_built_here():
    """fixtures/deploy names images by Docker Hub's tags; the local node serves each of them."""
    import yaml

    hosted = {normalise(ref) for recipe in release_images(RELEASE, BINARIES) for ref in recipe.refs}
    named = [container["image"] for path in sorted((PROJECT_DIR / "fixtures" / "deploy").glob("*.yaml"))
             for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == "Deployment"
             for container in doc["spec"]["template"]["spec"]["containers"]]
    assert len(named) == 3, named
    assert [image for image in named if normalise(image) not in hosted] == []


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
