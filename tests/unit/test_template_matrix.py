"""The template matrix: read from the pinned backup-maker's source, hosted only where faithful, reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_harness.backends.local.image_recipes import release_images, unhostable_reason
from e2e_harness.backends.local.images import normalise
from e2e_harness.components import COMPONENTS, SourceResolver, git_mirror_from
from e2e_harness.known_defects import KnownDefectHit, Occurrences, load, raise_if_hit, template_defects
from e2e_harness.release import load_release
from e2e_harness.report import TestResult as CaseResult  # not a test class
from e2e_harness.report import render_template_matrix
from e2e_harness.templates import TemplateDefinitionError, load_definitions, script_line

from .conftest import PROJECT_DIR

RELEASE = load_release(PROJECT_DIR / "release.env")
BINARIES = {"backup-maker": Path("/opt/bm/backup-maker"), "pgbr": Path("/opt/pgbr/pgbr")}


@pytest.fixture(scope="module")
def backup_maker_source(tmp_path_factory) -> Path:
    """The pinned backup-maker's source, resolved as a run resolves it (mirror, else the Go module proxy)."""
    build = tmp_path_factory.mktemp("build")
    resolver = SourceResolver(build, git_mirror=git_mirror_from(None, os.environ), progress=lambda line: None)
    component = next(c for c in COMPONENTS if c.name == "backup-maker")
    return resolver.resolve(component, RELEASE.pin(component.pin_key)).path


def _definition(directory: Path, name: str, **doc) -> None:
    (directory / "generate" / "templates" / "definition").mkdir(parents=True, exist_ok=True)
    (directory / "generate" / "templates" / "definition" / f"{name}.json").write_text(json.dumps(doc))


def test_the_pinned_release_ships_the_templates_the_matrix_covers(backup_maker_source):
    definitions = {d.name: d for d in load_definitions(backup_maker_source)}
    assert {"pg15", "gitea-pg15", "passbolt-pg15", "mariadb-10.11", "wordpress-mariadb-10.11", "tar",
            "kubectl", "mysql-dump-8.0"} <= set(definitions)
    assert definitions["mariadb-10.11"].family == "mysql" and definitions["tar"].family == "tar"
    assert definitions["gitea-pg15"].params["withFiles"] == ["/mnt/pv/var/lib/gitea", "/mnt/pv/etc/gitea"]
    assert [m["name"] for m in definitions["wordpress-mariadb-10.11"].volume_mounts()] == ["wordpress-pv"]


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
    assert "no recipe builds it" in reason("ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1")
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


def test_known_defects_cite_lines_that_hold_the_cause(backup_maker_source):
    assert script_line(backup_maker_source, "restore", "mysql-dump.tmpl", "DB_NAME+x").endswith(":11")
    assert script_line(backup_maker_source, "backup", "tar.tmpl", "basedir").endswith(":9")


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


def test_removing_a_definition_from_a_symlinked_checkout_removes_its_case(backup_maker_source, tmp_path):
    checkout = tmp_path / "my-backup-maker"
    shutil.copytree(backup_maker_source, checkout, symlinks=True)
    (checkout / "generate" / "templates" / "definition" / "pg14.json").unlink()
    build = tmp_path / "build"
    build.mkdir()
    (build / "backup-maker").symlink_to(checkout)

    def collected(build_dir: Path) -> set[str]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                               "tests/e2e/test_template_matrix.py", "--build-dir", str(build_dir)],
                              cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line}

    cases = collected(build)
    assert "test_backup_and_restore[pg15]" in cases and "test_backup_and_restore[pg14]" not in cases
    assert len([c for c in cases if c.startswith("test_backup_and_restore[")]) == 26
    pinned = tmp_path / "pinned-build"
    pinned.mkdir()
    (pinned / "backup-maker").symlink_to(backup_maker_source)
    assert "test_backup_and_restore[pg14]" in collected(pinned), "the pinned source has pg14"


XFAIL_PROBE = '''
import os
import pytest
from e2e_harness.known_defects import KnownDefectHit, Occurrences, load, raise_if_hit

BEHAVIOUR = os.environ["PROBE_BEHAVIOUR"]


@pytest.mark.template_family("tar")
def test_backup_and_restore_of_a_single_file(procedure_template):
    if BEHAVIOUR == "symptom":
        raise_if_hit(load(), "line 9: basedir: command not found", Occurrences())
    if BEHAVIOUR == "other-failure":
        raise AssertionError("the restored tree differs")
'''


@pytest.mark.parametrize("behaviour, outcome", [("symptom", "1 xfailed"), ("other-failure", "1 failed"),
                                                ("fixed", "1 failed")])
def test_a_template_defect_is_expected_only_on_its_symptom_and_a_fix_turns_the_run_red(
        backup_maker_source, tmp_path, behaviour, outcome):
    """The tar single-file case: xfail when its log shows the symptom, red on any other failure, and red
    (strict XPASS) when it passes, i.e. when a release fixes the defect but e2e_harness/known-defects.yaml still lists it."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "backup-maker").symlink_to(backup_maker_source)
    probe = tmp_path / "test_probe.py"
    probe.write_text(XFAIL_PROBE)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(probe),
                           "--rootdir", str(PROJECT_DIR), "--release-env", str(PROJECT_DIR / "release.env"),
                           "--build-dir", str(build)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PROBE_BEHAVIOUR": behaviour})
    assert outcome in proc.stdout, proc.stdout + proc.stderr
    assert (proc.returncode == 0) is (outcome == "1 xfailed"), proc.stdout
    if behaviour == "fixed":
        assert "XPASS(strict)" in proc.stdout, proc.stdout
