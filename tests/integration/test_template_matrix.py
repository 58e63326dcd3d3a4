"""The template matrix against the pinned backup-maker's source (resolved as a run resolves it): the templates
it ships, the lines the known defects cite, and the scenarios collected from it, by pytest run in this process
(pytester). What needs no source: tests/unit/test_template_matrix.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from e2e_harness.components import COMPONENTS, SourceResolver, git_mirror_from
from e2e_harness.templates import load_definitions, script_line
from tests.unit.test_plugin import output, pytest_run
from tests.unit.test_template_matrix import RELEASE

from .conftest import PROJECT_DIR


@pytest.fixture(scope="module")
def backup_maker_source(tmp_path_factory) -> Path:
    """The pinned backup-maker's source, resolved as a run resolves it (mirror, else the Go module proxy)."""
    build = tmp_path_factory.mktemp("build")
    resolver = SourceResolver(build, git_mirror=git_mirror_from(None, os.environ), progress=lambda line: None)
    component = next(c for c in COMPONENTS if c.name == "backup-maker")
    return resolver.resolve(component, RELEASE.pin(component.pin_key)).path


def test_the_pinned_release_ships_the_templates_the_matrix_covers(backup_maker_source):
    definitions = {d.name: d for d in load_definitions(backup_maker_source)}
    assert {"pg15", "gitea-pg15", "passbolt-pg15", "mariadb-10.11", "wordpress-mariadb-10.11", "tar",
            "kubectl", "mysql-dump-8.0"} <= set(definitions)
    assert definitions["mariadb-10.11"].family == "mysql" and definitions["tar"].family == "tar"
    assert definitions["gitea-pg15"].params["withFiles"] == ["/mnt/pv/var/lib/gitea", "/mnt/pv/etc/gitea"]
    assert [m["name"] for m in definitions["wordpress-mariadb-10.11"].volume_mounts()] == ["wordpress-pv"]


def test_known_defects_cite_lines_that_hold_the_cause(backup_maker_source):
    assert script_line(backup_maker_source, "restore", "mysql-dump.tmpl", "DB_NAME+x").endswith(":11")
    assert script_line(backup_maker_source, "backup", "tar.tmpl", "basedir").endswith(":9")
    # kubectl-restore-never-downloads-the-backup: the restore scans its own workspace and never runs backup-maker
    assert script_line(backup_maker_source, "restore", "kubectl.tmpl", "ns_path = workspace_path").endswith(":33")
    assert script_line(backup_maker_source, "restore", "kubectl.tmpl", "os.scandir(ns_path)").endswith(":44")
    assert script_line(backup_maker_source, "restore", "kubectl.tmpl", "kubectl apply").endswith(":75")
    assert script_line(backup_maker_source, "backup", "kubectl.tmpl", '"backup-maker", "make"').endswith(":131")
    restore = (backup_maker_source / "generate" / "templates" / "restore" / "kubectl.tmpl").read_text()
    assert [line for line in restore.splitlines() if "backup-maker" in line and not line.startswith("#")] == []


@pytest.mark.parametrize(("path", "lines", "text"), [
    # kubectl-service-account-never-applied and kubectl-restore-never-downloads-the-backup
    ("generate/templates/definition/kubectl.json", (23, 25), '"create": true'),
    ("generate/templates/definition/kubectl.json", (26, 31), '"verbs": ["list", "get"]'),
    ("generate/chart/_helpers.tpl", (5, 5), "serviceAccountName: {{ .Values.serviceAccount.name"),
    ("generate/chart/_helpers.tpl", (73, 79), 'sizeLimit: {{ .Values.workspaceVolume.size | default "256m" }}'),
])
def test_the_cited_definition_and_chart_lines_hold_the_cause(backup_maker_source, path, lines, text):
    first, last = lines
    cited = (backup_maker_source / path).read_text().splitlines()[first - 1:last]
    assert any(text in line for line in cited), f"{path}:{first}-{last} is now {cited}; update the defect's cause"


def test_the_kubectl_template_names_a_kubectl_light_image_tag_the_local_recipe_pins(backup_maker_source):
    from e2e_harness.backends.local.images import normalise, split_ref
    from e2e_harness.backends.local.kubectl_image import REPOSITORY, pin

    image = {d.name: d for d in load_definitions(backup_maker_source)}["kubectl"].image
    repository, tag = split_ref(normalise(image))
    assert repository == REPOSITORY and pin(tag).kubectl == "v" + tag[1:].split("-")[0], image


def test_removing_a_definition_from_a_symlinked_checkout_removes_its_case(backup_maker_source, tmp_path, pytester):
    checkout = tmp_path / "my-backup-maker"
    shutil.copytree(backup_maker_source, checkout, symlinks=True)
    (checkout / "generate" / "templates" / "definition" / "pg14.json").unlink()
    build = tmp_path / "build"
    build.mkdir()
    (build / "backup-maker").symlink_to(checkout)

    def collected(build_dir: Path) -> set[str]:
        result = pytest_run(pytester, "--collect-only", "-q", "tests/e2e/test_template_matrix.py",
                            "--build-dir", str(build_dir))
        assert result.ret == 0, output(result)
        return {line.split("::", 1)[1] for line in result.stdout.lines if "::" in line}

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
        backup_maker_source, tmp_path, behaviour, outcome, pytester, monkeypatch):
    """The tar single-file case: xfail when its log shows the symptom, red on any other failure, and red
    (strict XPASS) when it passes, i.e. when a release fixes the defect but e2e_harness/known-defects.yaml still lists it."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "backup-maker").symlink_to(backup_maker_source)
    probe = pytester.makepyfile(test_probe=XFAIL_PROBE)
    monkeypatch.setenv("PROBE_BEHAVIOUR", behaviour)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", str(probe), "--rootdir", str(PROJECT_DIR),
                                "--release-env", str(PROJECT_DIR / "release.env"), "--build-dir", str(build))
    stdout = result.stdout.str()
    assert outcome in stdout, output(result)
    assert (result.ret == 0) is (outcome == "1 xfailed"), stdout
    if behaviour == "fixed":
        assert "XPASS(strict)" in stdout, stdout
