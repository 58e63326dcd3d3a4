"""CI configuration through actionlint: the version pinned in ``e2e_harness.lint_tools``, which ``make
lint-tools`` (a step of ``make check``) builds once from its Go module into ``~/.cache/e2e-harness``; without
it these tests fail, saying to run ``make lint-tools``. Nothing is optional. The schemas, zizmor and the
release notes: tests/unit/test_workflows.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e_harness.lint_tools import LintToolError, require_actionlint
from tests.unit.test_workflows import BROKEN_WORKFLOWS, GITHUB_DIR, WORKFLOWS

from .conftest import PROJECT_DIR


# Copies of the real workflows with one mistake the JSON schema cannot see: (workflow, the
# text replaced, its replacement, what actionlint must name).
BROKEN_COPIES = {
    "needs-an-unknown-job": ("e2e.yaml", "needs: self-tests\n", "needs: self-test\n", '"self-test"'),
    "unknown-context-property": ("release.yaml", "${{ github.ref }}", "${{ github.reff }}", '"reff"'),
    "undefined-function": ("e2e.yaml", "if: always()\n", "if: alwys()\n", '"alwys"'),
    "unknown-runner-label": ("release.yaml", "runs-on: ubuntu-24.04\n", "runs-on: ubuntu-24.4\n",
                             '"ubuntu-24.4"'),
}


def actionlint_binary() -> str:
    try:
        return str(require_actionlint())
    except LintToolError as exc:
        pytest.fail(str(exc))


def actionlint(*files: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint_binary(), "-no-color", *map(str, files)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_actionlint_accepts_the_workflows():
    result = actionlint(*WORKFLOWS, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(BROKEN_WORKFLOWS))
def test_actionlint_rejects_a_broken_workflow(tmp_path: Path, name: str):
    broken = tmp_path / f"{name}.yaml"
    broken.write_text(BROKEN_WORKFLOWS[name])
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode != 0, f"accepted a broken workflow:\n{BROKEN_WORKFLOWS[name]}"


@pytest.mark.parametrize("name", sorted(BROKEN_COPIES))
def test_actionlint_rejects_a_copy_of_a_workflow_with_one_mistake(tmp_path: Path, name: str):
    workflow, old, new, named = BROKEN_COPIES[name]
    text = (GITHUB_DIR / "workflows" / workflow).read_text()
    assert old in text, f"{workflow} no longer contains {old!r}: update BROKEN_COPIES"
    copy = tmp_path / workflow
    copy.write_text(text)
    intact = actionlint(copy, cwd=tmp_path)
    assert intact.returncode == 0, intact.stdout + intact.stderr  # so only the mistake can fail it
    copy.write_text(text.replace(old, new, 1))
    result = actionlint(copy, cwd=tmp_path)
    assert result.returncode != 0, f"accepted {workflow} with {old!r} -> {new!r}"
    assert named in result.stdout, result.stdout + result.stderr
