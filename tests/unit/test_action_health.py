"""The action's health report is read only once it says what the finished Job says: the
controller's observer reports a Job that has not counted its pod yet as succeeded, and that
early report must not be taken as its verdict on a Job that then failed."""

from __future__ import annotations

import pytest

from e2e_harness.backups import health_reported


def _action(*children: dict) -> dict:
    return {"metadata": {"name": "subject-backup-1"},
            "status": {"processed": True, "healthy": all(c.get("succeeded") for c in children),
                       "childrenResourcesHealth": list(children)}}


EARLY = {"kind": "Job", "trackingId": "t", "succeeded": True, "running": False, "failed": False,
         "message": "All labelled jobs by riotkit.org/job-tracking-id=t succeed in ns namespace"}
RUNNING = {**EARLY, "succeeded": False, "running": True}
FAILED = {**EARLY, "succeeded": False, "failed": True, "message": "Job ns/subject-backup-x failed"}


def test_an_early_succeeded_report_is_not_the_verdict_on_a_failed_job():
    done, state = health_reported("Failed")(_action(EARLY))
    assert not done, "a report written before the Job counted its pod was taken for a failed Job's verdict"
    assert "Job Failed" in state and "'healthy': True" in state, state


@pytest.mark.parametrize(("outcome", "report", "expected"), [
    ("Failed", FAILED, True),
    ("Complete", EARLY, True),      # indistinguishable from a fresh one, and it agrees
    ("Complete", FAILED, False),
    ("Complete", RUNNING, False),
    ("Failed", RUNNING, False),
])
def test_the_report_is_taken_once_it_agrees_with_the_job(outcome, report, expected):
    assert health_reported(outcome)(_action(report))[0] is expected


def test_an_action_without_a_report_is_not_reported():
    assert health_reported("Complete")(_action())[0] is False
    assert health_reported("Failed")(None)[0] is False
