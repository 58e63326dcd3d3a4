"""The workflows' jobs as written: the suite runs on k3d as the runner's user, and a command that needs root
(the self-tests, the local backend's e2e job) goes through ``sudo`` with the runner's PATH and
LD_LIBRARY_PATH. Running those jobs as a runner's user would: tests/selftest/test_workflow_jobs.py."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import PROJECT_DIR

WORKFLOWS = sorted(p for p in (PROJECT_DIR / ".github" / "workflows").iterdir() if p.suffix in (".yaml", ".yml"))


def workflow_jobs():
    for workflow in WORKFLOWS:
        spec = yaml.safe_load(workflow.read_text())
        for job_id, job in spec["jobs"].items():
            yield workflow, spec, job_id, job


def run_commands(job: dict) -> list[str]:
    return [step["run"] for step in job.get("steps", []) if "run" in step]


def runs_make(target: str, command: str) -> bool:
    """``command`` runs ``make ... <target> ...`` (on one line of the script, in one simple command)."""
    return re.search(rf"\bmake\b[^\n;&|]*\s{target}(\s|$)", command, re.MULTILINE) is not None


def runs_the_suite(command: str) -> bool:
    return runs_make("test", command)


def runs_the_self_tests(command: str) -> bool:
    return runs_make("check", command)


def uses_the_local_backend(command: str) -> bool:
    return re.search(r"(BACKEND=|--backend[= ])local\b", command) is not None


def through_sudo(command: str) -> bool:
    return re.search(r"(^|[\s;&|(])sudo\s", command) is not None


SUITE_JOBS = [pytest.param(wf, spec, job_id, job, id=f"{wf.name}:{job_id}")
              for wf, spec, job_id, job in workflow_jobs()
              if any(runs_the_suite(c) and not through_sudo(c) for c in run_commands(job))]


ROOT_COMMANDS = [pytest.param(wf.name, job_id, c, id=f"{wf.name}:{job_id}:{n}")
                 for wf, spec, job_id, job in workflow_jobs() for n, c in enumerate(run_commands(job), 1)
                 if runs_the_self_tests(c) or (runs_the_suite(c) and uses_the_local_backend(c))]


def test_the_workflows_run_the_suite_on_k3d_as_the_runners_user():
    assert SUITE_JOBS, "no job runs `make test` without sudo: which job tests the release on k3d?"
    for param in SUITE_JOBS:
        workflow, _, job_id, job = param.values
        commands = [c for c in run_commands(job) if runs_the_suite(c)]
        assert all("BACKEND=k3d" in c for c in commands), (
            f"{workflow.name}:{job_id} runs the suite without sudo but not on k3d: {commands}")


@pytest.mark.parametrize("workflow_name, job_id, command", ROOT_COMMANDS)
def test_a_command_that_needs_root_runs_through_sudo_with_the_runners_path(workflow_name, job_id, command):
    where = f"{workflow_name}:{job_id}: {command.strip()!r}"
    assert through_sudo(command), (f"{where} needs root (the self-tests and the local backend run a real "
                                   "Kubernetes node) but the runner's user is not root: run it with sudo")
    assert re.search(r"[\"']?PATH=\$\{?PATH\}?", command), (
        f"{where}: sudo resets PATH (secure_path), which hides setup-go's Go and setup-python's Python: "
        'pass it on (sudo -E env "PATH=$PATH" ...)')
    assert "LD_LIBRARY_PATH=$" in command or "LD_LIBRARY_PATH=${" in command, (
        f"{where}: sudo drops LD_LIBRARY_PATH, through which setup-python's Python finds its libpython: "
        'pass it on ("LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}")')
