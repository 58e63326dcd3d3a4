"""CI configuration: workflows and dependabot.yml against their schemas, zizmor, release notes.

Everything here runs offline and nothing is optional. The schemas come vendored with
check-jsonschema and zizmor is a binary wheel (both dev dependencies). actionlint, which
``make lint-tools`` builds from its Go module: tests/integration/test_workflows.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e_harness.release import COMPONENT_KEYS, Pin, load_release

from .conftest import PROJECT_DIR

GITHUB_DIR = PROJECT_DIR / ".github"
WORKFLOWS = sorted(p for p in (GITHUB_DIR / "workflows").iterdir() if p.suffix in (".yaml", ".yml"))
DEPENDABOT = GITHUB_DIR / "dependabot.yml"
RELEASE_NOTES = GITHUB_DIR / "scripts" / "release-notes.sh"

REPOS = {
    "SERVER_VERSION": "https://github.com/riotkit-org/backup-repository",
    "CONTROLLER_VERSION": "https://github.com/riotkit-org/backup-maker-controller",
    "BACKUP_MAKER_VERSION": "https://github.com/riotkit-org/br-backup-maker",
    "PGBR_VERSION": "https://github.com/riotkit-org/br-pgbr",
}

BROKEN_WORKFLOWS = {
    "no-on": """\
name: broken
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - run: echo hi
""",
    "job-without-runs-on": """\
name: broken
on: push
jobs:
  build:
    steps:
      - run: echo hi
""",
}


# A workflow zizmor must reject: a pull request's title spliced into a shell script of a
# pull_request_target job (which runs with the base repository's secrets).
INSECURE_WORKFLOW = """\
name: insecure
on: pull_request_target
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
"""


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.fail("check-jsonschema is not installed: it is a dev dependency (pip install -e '.[dev]')")
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def zizmor_binary() -> str:
    for candidate in (Path(sys.executable).parent / "zizmor", shutil.which("zizmor")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("zizmor is not installed: it is a dev dependency (pip install -e '.[dev]')")


def zizmor(*inputs: Path, fmt: str = "json") -> subprocess.CompletedProcess:
    """zizmor at its default severity and persona, offline (no audit that asks GitHub)."""
    return subprocess.run([zizmor_binary(), "--offline", "--no-progress", "--color=never",
                           f"--format={fmt}", *map(str, inputs)], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=120)


def release_notes(release_env: Path) -> list[str]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not found; the release workflow runs the script with bash")
    result = subprocess.run([bash, str(RELEASE_NOTES), str(release_env)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def expected_link(key: str, pin: str) -> str:
    kind = Pin(pin).kind
    ref = Pin(pin).git_ref
    path = "commit" if kind in ("pseudo-version", "commit") else "tree"
    return f"{REPOS[key]}/{path}/{ref}"


def component_line(key: str, pin: str, link: str) -> str:
    return f"- **{REPOS[key].rsplit('/', 1)[1]}** (`{key}`): [`{pin}`]({link})"


# --- schemas -----------------------------------------------------------------------------------


def test_the_workflows_are_there():
    assert {p.name for p in WORKFLOWS} >= {"e2e.yaml", "release.yaml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_workflow_schema(workflow: Path):
    result = check_jsonschema("vendor.github-workflows", workflow)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout(workflow: Path):
    result = check_jsonschema("custom.github-workflows-require-timeout", workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_matches_its_schema():
    result = check_jsonschema("vendor.dependabot", DEPENDABOT)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(DEPENDABOT.read_text())
    assert {(u["package-ecosystem"], u["directory"]) for u in config["updates"]} == {
        ("pip", "/"), ("github-actions", "/")}


@pytest.mark.parametrize("name", sorted(BROKEN_WORKFLOWS))
def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path, name: str):
    broken = tmp_path / f"{name}.yaml"
    broken.write_text(BROKEN_WORKFLOWS[name])
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode != 0, f"accepted a broken workflow:\n{BROKEN_WORKFLOWS[name]}"
    assert "validation error" in (result.stdout + result.stderr).lower()


def test_the_schema_check_rejects_a_broken_dependabot_config(tmp_path: Path):
    broken = tmp_path / "dependabot.yml"
    broken.write_text("version: 2\nupdates:\n  - package-ecosystem: pip\n    directory: /\n")  # no schedule
    assert check_jsonschema("vendor.dependabot", broken).returncode != 0


# --- zizmor (security audits) ------------------------------------------------------------------


def test_zizmor_finds_nothing_in_the_workflows():
    result = zizmor(GITHUB_DIR / "workflows")
    findings = json.loads(result.stdout or "null")
    if result.returncode != 0 or findings:
        plain = zizmor(GITHUB_DIR / "workflows", fmt="plain")
        pytest.fail(f"zizmor exited {result.returncode}; fix the findings (or, for a clear false "
                    f"positive, ignore it inline with the reason):\n{plain.stdout}{plain.stderr}")


def test_zizmor_rejects_an_insecure_workflow(tmp_path: Path):
    insecure = tmp_path / "insecure.yaml"
    insecure.write_text(INSECURE_WORKFLOW)
    result = zizmor(insecure)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "template-injection" in {finding["ident"] for finding in json.loads(result.stdout)}


def test_every_zizmor_ignore_in_the_workflows_gives_a_reason():
    for workflow in WORKFLOWS:
        for number, line in enumerate(workflow.read_text().splitlines(), 1):
            if "zizmor: ignore[" in line:
                reason = line.split("zizmor: ignore[", 1)[1].split("]", 1)[1].strip()
                assert reason, f"{workflow.name}:{number}: an ignored zizmor finding needs a reason"


# --- release notes -----------------------------------------------------------------------------


def test_the_release_workflow_writes_its_notes_with_the_script():
    release = yaml.safe_load((GITHUB_DIR / "workflows" / "release.yaml").read_text())
    runs = "\n".join(step.get("run", "") for job in release["jobs"].values() for step in job["steps"])
    assert f"{RELEASE_NOTES.relative_to(PROJECT_DIR)} release.env > notes.md" in runs
    assert 'gh release create "$GITHUB_REF_NAME"' in runs and "--notes-file notes.md" in runs


def test_release_notes_link_every_component_of_the_project_release_env():
    release = load_release(PROJECT_DIR / "release.env", environ={})
    lines = release_notes(PROJECT_DIR / "release.env")
    assert set(COMPONENT_KEYS) == set(REPOS)
    for key in COMPONENT_KEYS:
        pin = release[key]
        assert component_line(key, pin, expected_link(key, pin)) in lines, (key, lines)
    for key, value in release.values.items():
        if key not in REPOS:
            assert f"- `{key}`: `{value}`" in lines, (key, lines)
    assert len([line for line in lines if line.startswith("- ")]) == len(release.values)


def test_release_notes_link_each_kind_of_pin(tmp_path: Path):
    env = tmp_path / "release.env"
    env.write_text(
        "# a comment\n"
        "\n"
        "SERVER_VERSION=v4.1.0-rc1\n"
        "  # an indented comment\n"
        "CONTROLLER_VERSION=branch:main\r\n"
        "BACKUP_MAKER_VERSION=v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8\n"
        "PGBR_VERSION=0123456789abcdef0123456789abcdef01234567\n"
        "KUBERNETES_VERSION=v1.34.4\n"
        "POSTGRES_VERSION=15")  # no final newline
    lines = release_notes(env)
    expected = [
        component_line("SERVER_VERSION", "v4.1.0-rc1",
                       "https://github.com/riotkit-org/backup-repository/tree/v4.1.0-rc1"),
        component_line("CONTROLLER_VERSION", "branch:main",
                       "https://github.com/riotkit-org/backup-maker-controller/tree/main"),
        component_line("BACKUP_MAKER_VERSION", "v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8",
                       "https://github.com/riotkit-org/br-backup-maker/commit/8c7f6c4ad5e8"),
        component_line("PGBR_VERSION", "0123456789abcdef0123456789abcdef01234567",
                       "https://github.com/riotkit-org/br-pgbr/commit/"
                       "0123456789abcdef0123456789abcdef01234567"),
        "- `KUBERNETES_VERSION`: `v1.34.4`",
        "- `POSTGRES_VERSION`: `15`",
    ]
    assert [line for line in lines if line.startswith("- ")] == expected
    assert not any("comment" in line for line in lines)
    # the same links as the harness's own reading of each pin
    for key, pin in [("SERVER_VERSION", "v4.1.0-rc1"), ("CONTROLLER_VERSION", "branch:main"),
                     ("BACKUP_MAKER_VERSION", "v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8"),
                     ("PGBR_VERSION", "0123456789abcdef0123456789abcdef01234567")]:
        assert component_line(key, pin, expected_link(key, pin)) in expected


def test_release_notes_fail_on_a_missing_file(tmp_path: Path):
    result = subprocess.run(["bash", str(RELEASE_NOTES), str(tmp_path / "nope.env")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "cannot read" in result.stderr
