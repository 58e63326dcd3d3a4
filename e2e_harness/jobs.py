"""The verdict of a Kubernetes Job, read from its conditions (one definition for every wait).

A Job is finished when its ``Complete`` or ``Failed`` condition is ``True``; a wait on
a Job should end on either, so that it never outlasts the verdict.
"""

from __future__ import annotations

from typing import Literal, Mapping

Outcome = Literal["Complete", "Failed"]


def job_conditions(obj: Mapping | None) -> dict[str, str]:
    """``{condition type: status}`` of a Job dict (empty when there is no Job or no status yet)."""
    return {c["type"]: c["status"] for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def job_outcome(obj: Mapping | None) -> Outcome | None:
    """``"Complete"`` or ``"Failed"`` when that condition is True, else None (still running, or no Job)."""
    conditions = job_conditions(obj)
    for outcome in ("Complete", "Failed"):
        if conditions.get(outcome) == "True":
            return outcome
    return None


def job_finished(obj: Mapping | None) -> tuple[bool, str]:
    """A ``Kube.wait_for`` check: done when the Job is Complete or Failed; the detail names its conditions."""
    return job_outcome(obj) is not None, f"conditions={job_conditions(obj)}"
