"""PostgreSQL backup and restore through the whole release: controller → Job → backup-maker → server.

Every scenario uses the release's own PostgreSQL template (``pg<POSTGRES_VERSION>``) through the
one backup lifecycle (tests/e2e/lifecycle.py). Each proves its claim with the Job's verdict, the
server's version list, the uploaded bytes and the restored data, never with the controller's
``healthy`` alone.
"""

import base64

import pytest

from e2e_harness.waiting import Observation, poll_until

from . import lifecycle, verdicts

pytestmark = pytest.mark.e2e


def test_internal_pg15_template_backs_up_encrypted_and_restores_the_snapshot(backup_case, release_postgres_template):
    lifecycle.round_trip(backup_case(release_postgres_template))


def test_cluster_procedure_template_backs_up_encrypted_and_restores_the_snapshot(backup_case,
                                                                                 release_postgres_template):
    lifecycle.round_trip(backup_case(release_postgres_template, cluster_template=True))


def test_restore_into_a_dropped_and_recreated_database_brings_the_data_back(backup_case, release_postgres_template):
    case = backup_case(release_postgres_template)
    lifecycle.seed(case)
    before = lifecycle.snapshot(case)
    lifecycle.backup(case)
    with lifecycle.phase(case, "recreate the database empty"):
        case.subject.database.recreate_empty()
        assert case.subject.database.checksum() == {}, "the recreated database is not empty"
    lifecycle.restore(case, before)


def test_several_backups_are_numbered_one_to_n_and_restore_brings_back_the_latest(backup_case,
                                                                                  release_postgres_template):
    case = backup_case(release_postgres_template)
    lifecycle.seed(case)
    for n in range(1, 4):
        case.subject.database.execute(f"INSERT INTO movies (title, year) VALUES ('Sequel {n}', {2000 + n})")
        lifecycle.backup(case)
    latest = lifecycle.snapshot(case)
    assert [v["versionNumber"] for v in case.versions()] == [1, 2, 3]
    lifecycle.change(case, latest)
    lifecycle.restore(case, latest)


def test_fifo_rotation_keeps_only_the_newest_two_of_three_backups(backup_case, release_postgres_template):
    case = backup_case(release_postgres_template, limits=dict(max_backups_count=2, max_one_version_size="1M",
                                                              max_collection_size="4M"))
    lifecycle.seed(case)
    for _ in range(3):
        verdicts.assert_job_succeeded(case.backup())
    numbers = [v["versionNumber"] for v in case.versions()]
    assert numbers == [2, 3], f"fifo with maxBackupsCount 2 after three backups: versions {numbers}"


def test_a_wrong_token_fails_the_backup_job_and_stores_no_version(backup_case, release_postgres_template):
    case = backup_case(release_postgres_template, token="not-a-valid-token")
    lifecycle.seed(case)
    backup = case.backup()
    verdicts.assert_job_failed(backup)
    verdicts.assert_action_reports(backup, healthy=False)
    assert case.versions() == [], "a version appeared although the upload token was wrong"


def test_a_backup_over_the_collection_size_limit_is_refused(backup_case, release_postgres_template):
    case = backup_case(release_postgres_template, limits=dict(max_backups_count=2, max_one_version_size="8K",
                                                              max_collection_size="16K"))
    lifecycle.seed(case)
    # ~200 KB of incompressible text: far over 8K even after pg_dump's compression.
    case.subject.database.execute("CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) AS v "
                                  "FROM generate_series(1, 3000)")
    backup = case.backup()
    verdicts.assert_job_failed(backup)
    assert "filesize reached allowed limit" in backup.logs, f"the refusal is not the size limit:\n{backup.describe()}"
    assert case.versions() == [], "a version over the size limit was stored"


def test_keys_made_by_the_controller_work_once_its_secrets_have_settled(backup_case, release_postgres_template,
                                                                        backups):
    case = backup_case(release_postgres_template, create_keys=True)
    _wait_for_settled_controller_keys(backups, case.name)
    lifecycle.round_trip(case)


def _wait_for_settled_controller_keys(backups, name):
    """The GPG Secret has both keys and the rendered backup/restore Secrets carry exactly those keys."""
    def settled():
        def value(secret_name, key):
            secret = backups.kube.get("v1", "Secret", secret_name, backups.namespace) or {}
            return base64.b64decode((secret.get("data") or {}).get(key, "") or "").decode()
        public, private = value("backup-keys", "public"), value("backup-keys", "private")
        in_backup, in_restore = value(f"{name}-backup", "gpg-key"), value(f"{name}-restore", "gpg-key")
        done = bool(public and private) and in_backup == public and in_restore == private
        return Observation(done, f"public key {'set' if public else 'missing'}, private key {'set' if private else 'missing'}, "
                      f"backup Secret {'matches' if in_backup == public else 'differs'}, "
                      f"restore Secret {'matches' if in_restore == private else 'differs'}")

    poll_until(settled, what="the controller's GPG Secret and its rendered backup/restore Secrets to agree",
               timeout=60, interval=0.2, where=f"kubectl get secret -n {backups.namespace}")


@pytest.mark.parametrize("enabled", [True, False], ids=["cron-enabled", "cron-disabled"])
def test_scheduled_backup_creates_a_cronjob_only_when_enabled(backup_case, release_postgres_template, backups,
                                                              enabled):
    schedule = "0 0 31 2 *"  # February 31st: never fires during a run
    case = backup_case(release_postgres_template, cron={"enabled": enabled, "scheduleEvery": schedule})
    cronjobs = backups.kube.list("batch/v1", "CronJob", backups.namespace)
    if enabled:
        assert [c["spec"]["schedule"] for c in cronjobs] == [schedule], f"CronJobs: {cronjobs}"
        owners = cronjobs[0]["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"]) for o in owners] == [("ScheduledBackup", case.name)], owners
    else:
        assert cronjobs == [], f"cronJob.enabled=false, yet CronJobs exist: {[c['metadata']['name'] for c in cronjobs]}"


def test_the_cronjob_of_a_scheduled_backup_makes_a_job_that_backs_up_and_the_version_restores(
        backup_case, release_postgres_template):
    """The path ScheduledBackup is named for: its CronJob's own Job template backs up (a Job made from it
    as its schedule, or `kubectl create job --from=cronjob/...`, makes it), and that version restores."""
    case = backup_case(release_postgres_template, cron={"enabled": True, "scheduleEvery": "0 0 31 2 *"})
    lifecycle.seed(case)
    before = lifecycle.snapshot(case)
    lifecycle.backup(case, scheduled=True)
    lifecycle.change(case, before)
    lifecycle.restore(case, before)
