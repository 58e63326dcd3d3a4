"""A Job whose pods the API refuses to create never finishes: the wait says why within a minute instead of timing
out after JOB_TIMEOUT, and a case whose known defect is that refusal counts it as expected (the kubectl template's
ServiceAccount: tests/e2e/test_template_matrix.py::test_backup_with_only_what_the_controller_applies[kubectl])."""

from __future__ import annotations

import pytest

from e2e_harness import backups
from e2e_harness.backups import Backups, PodsRefused, refusal
from e2e_harness.known_defects import KnownDefect, KnownDefectHit, Occurrences, load, template_defects
from e2e_harness.masking import SecretMasker
from tests.e2e.lifecycle import BackupCase

from .test_template_matrix import RELEASE

MESSAGE = ('Error creating: pods "subject-backup-x-" is forbidden: error looking up service account '
           'ns/kubectl-backup: serviceaccount "kubectl-backup" not found')


def _job(**status) -> dict:
    return {"metadata": {"name": "subject-backup-x", "namespace": "ns"}, "status": status}


def _event(reason: str = "FailedCreate", name: str = "subject-backup-x", message: str = MESSAGE) -> dict:
    return {"reason": reason, "message": message, "involvedObject": {"kind": "Job", "name": name}}


def test_a_job_without_pods_whose_creation_is_refused_says_why():
    assert refusal(_job(active=0, ready=0), [_event(message="first"), _event()]) == MESSAGE, "the latest"
    assert refusal(_job(), [_event("SuccessfulCreate"), _event(name="other-job")]) == ""
    for pods in ({"active": 1}, {"succeeded": 1}, {"failed": 1}):
        assert refusal(_job(**pods), [_event()]) == "", f"a refusal of a Job with pods ({pods}) was transient"


class FakeKube:
    def __init__(self, events):
        self.events_seen = events
        self.asked = 0

    def events(self, namespace):
        self.asked += 1
        return self.events_seen


def test_the_job_wait_raises_only_after_the_grace_period(monkeypatch):
    clock = iter([0.0, 5.0, 25.0])   # the wait starts, then two checks
    monkeypatch.setattr(backups.time, "monotonic", lambda: next(clock))
    kube = FakeKube([_event()])
    check = Backups(kube, "ns", lambda *a: "", SecretMasker())._until_finished("subject-backup-x")
    assert check(_job()) == (False, "conditions={}") and kube.asked == 0, "within REFUSED_AFTER nothing is asked"
    with pytest.raises(PodsRefused, match='serviceaccount "kubectl-backup" not found'):
        check(_job())


class RefusingBackups:
    occurrences = Occurrences()

    def run(self, action, name):
        raise PodsRefused(f"Job ns/subject-backup-x has no pod after 20s or more: the API refuses to create them "
                          f"(FailedCreate): {MESSAGE}")


def test_a_refusal_that_is_a_known_defect_of_the_case_is_its_expected_failure_and_any_other_stays_red():
    defect = KnownDefect("account-missing", ("controller",), {}, "xfail", 'serviceaccount "kubectl-backup" not found',
                         "cause", scenario="test_x", template_script="backup/kubectl.tmpl")
    case = BackupCase(None, None, RefusingBackups(), None, "c", "t", None, [defect])
    with pytest.raises(KnownDefectHit, match="account-missing"):
        case.backup()
    assert RefusingBackups.occurrences.counts() == {"account-missing": 1}
    with pytest.raises(PodsRefused):   # no known defect of the case says so: a failure
        BackupCase(None, None, RefusingBackups(), None, "c", "t", None, []).backup()


def test_the_kubectl_templates_plain_use_expects_the_refusal_of_its_service_account():
    defects = template_defects(load(), RELEASE, "test_backup_with_only_what_the_controller_applies",
                               "kubectl.tmpl", "kubectl.tmpl")
    assert [d.id for d in defects] == ["kubectl-service-account-never-applied"]
    seen = Occurrences()
    backups = RefusingBackups()
    backups.occurrences = seen
    with pytest.raises(KnownDefectHit, match="kubectl-service-account-never-applied"):
        BackupCase(None, None, backups, None, "c", "t", None, defects).backup()
    assert seen.counts() == {"kubectl-service-account-never-applied": 1}
    main = template_defects(load(), RELEASE, "test_backup_and_restore", "kubectl.tmpl", "kubectl.tmpl")
    assert "kubectl-service-account-never-applied" not in [d.id for d in main], \
        "the main case supplies the account: a refusal there is a failure"
