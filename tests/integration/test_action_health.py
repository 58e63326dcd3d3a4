"""The pinned controller's source still reports a Job without pods as succeeded: the reason the action's
health report is read only once it agrees with the finished Job (tests/unit/test_action_health.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import pinned_source


@pytest.fixture(scope="module")
def controller_source(tmp_path_factory) -> Path:
    return pinned_source(tmp_path_factory.mktemp("build"), "backup-maker-controller")


@pytest.mark.parametrize(("line", "text"), [
    (42, "if job.Status.Failed > 0 {"),
    (58, "if job.Status.Active > 0 {"),
    (72, "Succeeded: !running,"),
])
def test_the_pinned_controller_still_reports_a_job_without_pods_as_succeeded(controller_source, line, text):
    path = "pkg/integration/kubernetesjob.go"
    lines = (controller_source / path).read_text().splitlines()
    assert text in lines[line - 1], (f"{path}:{line} is now {lines[line - 1].strip()!r}; "
                                     "update e2e_harness/backups.py's note on early health reports")
