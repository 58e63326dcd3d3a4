"""A broken release must turn the suite red: scenarios run against deliberately broken components.

Each case plants a small patch the way a developer tests local work: a checkout of the
component from the git mirror, patched, symlinked into a private build dir's
``.build/<component>``; then a real e2e run (subprocess pytest, local backend) of the
one scenario that must catch it. The run must fail, name what was wrong (the assertion,
expected and seen) and leave a failure bundle.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_harness.components import COMPONENTS, git_mirror_from, repository_name
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR

pytestmark = [pytest.mark.needs_go, pytest.mark.timeout(1500)]

MIRROR = git_mirror_from(None, os.environ) or (PROJECT_DIR.parent / "shared" / "mirrors")

# case -> (component, file, [(text to find, text to put in its place), ...]); each breaks one promise quietly.
PATCHES = {
    # Reads the whole dump (so the pipe's writer sees no error) and exits 0 without restoring.
    "restore-does-nothing": ("pgbr", "cmd/db/restore.go", [
        ('import (\n\t"bytes"', 'import (\n\t"io"\n\t"os"\n\t"bytes"'),
        ("func (bc *RestoreCommand) Run() error {\n",
         "func (bc *RestoreCommand) Run() error {\n\tif true { // planted: swallow the dump, restore nothing\n"
         "\t\t_, err := io.Copy(io.Discard, os.Stdin)\n\t\treturn err\n\t}\n")]),
    "listing-drops-newest": ("backup-repository", "pkg/http/collection.go", [
        ('\t\tOKResponse(c, gin.H{\n\t\t\t"versions": versions,',
         "\t\tif len(versions) > 0 { // planted: hide the newest version\n"
         "\t\t\tnewest := 0\n\t\t\tfor i := range versions {\n"
         "\t\t\t\tif versions[i].VersionNumber > versions[newest].VersionNumber {\n"
         "\t\t\t\t\tnewest = i\n\t\t\t\t}\n\t\t\t}\n"
         "\t\t\tversions = append(versions[:newest], versions[newest+1:]...)\n\t\t}\n"
         '\t\tOKResponse(c, gin.H{\n\t\t\t"versions": versions,')]),
}
PATCHES["cronjob-job-template-broken"] = (
    # The CronJob the controller renders for a ScheduledBackup gets a Job template whose Jobs are killed after a
    # second (activeDeadlineSeconds: 1); the Jobs of RequestedBackupActions are untouched.
    "backup-maker-controller", "pkg/bmg/templating.go", [
        ("\treturn parseRenderedManifests(logger, string(content), acceptedResourceTypes)\n}",
         "\tparsed, parseErr := parseRenderedManifests(logger, string(content), acceptedResourceTypes)\n"
         "\tfor i := range parsed { // planted: break the CronJob's Job template\n"
         "\t\tif parsed[i].GetKind() == \"CronJob\" {\n"
         "\t\t\t_ = unstructured.SetNestedField(parsed[i].Object, int64(1), \"spec\", \"jobTemplate\", \"spec\", "
         "\"activeDeadlineSeconds\")\n\t\t}\n\t}\n\treturn parsed, parseErr\n}")])
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
ROUND_TRIP = "tests/e2e/test_postgres_backup.py::test_internal_pg15_template_backs_up_encrypted_and_restores_the_snapshot"
SCENARIO = {
    "restore-does-nothing": ROUND_TRIP,
    "listing-drops-newest": ROUND_TRIP,
    "cronjob-job-template-broken": "tests/e2e/test_postgres_backup.py::"
                                   "test_the_cronjob_of_a_scheduled_backup_makes_a_job_that_backs_up_and_the_version_restores",
}
EXPECTED = {
    "restore-does-nothing": "restored data differs from the snapshot taken before the backup",
    "listing-drops-newest": "expected exactly one new version 1",
    "cronjob-job-template-broken": "[phase verify the backup] the backup Job of ",
}


def _planted_checkout(case: str, tmp_path: Path) -> tuple[str, Path]:
    name, relative, edits = PATCHES[case]
    component = next(c for c in COMPONENTS if c.name == name)
    bundle = MIRROR / f"{repository_name(component.git_url)}.bundle"
    if not bundle.is_file():
        pytest.skip(f"needs the git mirror of {name} ({bundle}); set E2E_GIT_MIRROR")
    pin = load_release(PROJECT_DIR / "release.env", environ={})[component.pin_key]
    checkout = tmp_path / f"{name}-patched"
    subprocess.run(["git", "clone", "--quiet", str(bundle), str(checkout)], check=True, timeout=300)
    subprocess.run(["git", "-C", str(checkout), "-c", "advice.detachedHead=false", "checkout", "--quiet", pin],
                   check=True, timeout=60)
    path = checkout / relative
    text = path.read_text()
    for find, replace in edits:
        assert text.count(find) == 1, f"the planted patch no longer applies to {name} {pin}: {relative} changed"
        text = text.replace(find, replace)
    path.write_text(text)
    return name, checkout


@pytest.mark.parametrize("case", sorted(PATCHES))
def test_a_broken_component_turns_its_scenario_red(case, tmp_path):
    name, checkout = _planted_checkout(case, tmp_path)
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    (build_dir / name).symlink_to(checkout)
    artifacts, junit, secrets_file = tmp_path / "artifacts", tmp_path / "junit.xml", tmp_path / "secrets.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", SCENARIO[case], "--backend", "local", "-p", "no:cacheprovider",
                           "-p", "tests.secret_dump_plugin", "--junitxml", str(junit),
                           "--build-dir", str(build_dir), "--artifacts-dir", str(artifacts), "-q"],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=1400,
                          env={**os.environ, "E2E_GIT_MIRROR": str(MIRROR), "E2E_SECRET_DUMP": str(secrets_file)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"the run with {case} planted did not fail (exit {proc.returncode}):\n{output[-3000:]}"
    assert EXPECTED[case] in output, f"the failure does not name the planted defect {case}:\n{output[-3000:]}"
    assert "uncommitted changes" in output, "the report does not say the checkout carried local changes"
    bundles = [p for p in artifacts.iterdir() if p.is_dir() and (p / "INDEX.txt").is_file()]
    assert bundles, f"no failure bundle under {artifacts}: {sorted(p.name for p in artifacts.iterdir())}"
    _assert_no_secret_anywhere(json.loads(secrets_file.read_text()), output,
                               [artifacts, build_dir / "local", junit])


def _assert_no_secret_anywhere(secrets: list[str], console: str, places: list[Path]) -> None:
    """No secret the run generated (passwords, tokens, JWT secret, health key, GPG private key), nor its
    base64 form, in the console output or any file the run left (e-mail addresses are not secrets)."""
    secrets = [s for s in secrets if len(s) >= 8 and not EMAIL.fullmatch(s)]
    assert len(secrets) >= 5, f"the run registered too few secrets to make this check meaningful: {len(secrets)}"
    needles = {s: [s.encode(), base64.b64encode(s.encode())] for s in secrets}
    files = [p for place in places if place.exists()
             for p in ([place] if place.is_file() else place.rglob("*")) if p.is_file()]
    hits = [f"{path} holds a secret ({secret[:4]}…)" for path in files
            for secret, forms in needles.items() if any(form in path.read_bytes() for form in forms)]
    hits += [f"console output holds a secret ({secret[:4]}…)" for secret, forms in needles.items()
             if any(form.decode() in console for form in forms)]
    assert not hits, "secrets leaked:\n" + "\n".join(sorted(set(hits))[:30])
