"""PostgreSQL backup and restore through the whole release: controller → Job → backup-maker → server.

Each test proves its claim with the Job's verdict, the server's version list, the
uploaded bytes and the restored data, never with the controller's ``healthy`` alone.
"""

import base64

import pytest

from e2e_harness.waiting import Observation, poll_until

from .conftest import (CHANGES, assert_action_reports, assert_encrypted_dump_of, assert_job_failed,
                       assert_job_succeeded, assert_new_version, assert_rendered_for_the_action)

pytestmark = pytest.mark.e2e

ROWS = ["Modern Times", "Metropolis"]


def _backup_restore_round_trip(case):
    snapshot = case.subject.checksum()
    backup = case.backup()
    assert_job_succeeded(backup)
    assert_rendered_for_the_action(backup)
    assert_action_reports(backup, healthy=True)
    version = assert_new_version(case, before=[])
    assert_encrypted_dump_of(case, version, ROWS)

    case.subject.execute(*CHANGES)
    assert case.subject.checksum() != snapshot, "the changes after the backup did not change the data"
    restore = case.restore()
    assert_job_succeeded(restore)
    assert_rendered_for_the_action(restore)
    assert_action_reports(restore, healthy=True)
    assert case.subject.checksum() == snapshot, (
        f"restored data differs from the snapshot taken before the backup:\n{restore.describe()}")


def test_internal_pg15_template_backs_up_encrypted_and_restores_the_snapshot(postgres_backup):
    _backup_restore_round_trip(postgres_backup(template="internal"))


def test_cluster_procedure_template_backs_up_encrypted_and_restores_the_snapshot(postgres_backup):
    _backup_restore_round_trip(postgres_backup(template="cluster"))


def test_restore_into_a_dropped_and_recreated_database_brings_the_data_back(postgres_backup):
    case = postgres_backup()
    snapshot = case.subject.checksum()
    assert_job_succeeded(case.backup())
    case.subject.recreate_empty()
    assert case.subject.checksum() == {}, "the recreated database is not empty"
    restore = case.restore()
    assert_job_succeeded(restore)
    assert case.subject.checksum() == snapshot, f"restore into an empty database:\n{restore.describe()}"


def test_several_backups_are_numbered_one_to_n_and_restore_brings_back_the_latest(postgres_backup):
    case = postgres_backup()
    for n in range(1, 4):
        case.subject.execute(f"INSERT INTO movies (title, year) VALUES ('Sequel {n}', {2000 + n})")
        before = case.versions()
        assert_job_succeeded(case.backup())
        assert_new_version(case, before)
    latest = case.subject.checksum()
    assert [v["versionNumber"] for v in case.versions()] == [1, 2, 3]
    case.subject.execute(*CHANGES)
    restore = case.restore()
    assert_job_succeeded(restore)
    assert case.subject.checksum() == latest, f"restore did not bring back the latest backup:\n{restore.describe()}"


def test_fifo_rotation_keeps_only_the_newest_two_of_three_backups(postgres_backup):
    case = postgres_backup(max_backups_count=2, max_one_version_size="1M", max_collection_size="4M")
    for _ in range(3):
        assert_job_succeeded(case.backup())
    numbers = [v["versionNumber"] for v in case.versions()]
    assert numbers == [2, 3], f"fifo with maxBackupsCount 2 after three backups: versions {numbers}"


def test_a_wrong_token_fails_the_backup_job_and_stores_no_version(postgres_backup):
    case = postgres_backup(token="not-a-valid-token")
    backup = case.backup()
    assert_job_failed(backup)
    assert_action_reports(backup, healthy=False)
    assert case.versions() == [], "a version appeared although the upload token was wrong"


def test_a_backup_over_the_collection_size_limit_is_refused(postgres_backup):
    case = postgres_backup(max_backups_count=2, max_one_version_size="8K", max_collection_size="16K")
    # ~200 KB of incompressible text: far over 8K even after pg_dump's compression.
    case.subject.execute("CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) AS v "
                         "FROM generate_series(1, 3000)")
    backup = case.backup()
    assert_job_failed(backup)
    assert "filesize reached allowed limit" in backup.logs, f"the refusal is not the size limit:\n{backup.describe()}"
    assert case.versions() == [], "a version over the size limit was stored"


def test_keys_made_by_the_controller_work_once_its_secrets_have_settled(postgres_backup, backups):
    case = postgres_backup(create_keys=True)
    _wait_for_settled_controller_keys(backups, case.name)
    _backup_restore_round_trip(case)


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
def test_scheduled_backup_creates_a_cronjob_only_when_enabled(postgres_backup, backups, enabled):
    schedule = "0 0 31 2 *"  # February 31st: never fires during a run
    case = postgres_backup(cron={"enabled": enabled, "scheduleEvery": schedule})
    cronjobs = backups.kube.list("batch/v1", "CronJob", backups.namespace)
    if enabled:
        assert [c["spec"]["schedule"] for c in cronjobs] == [schedule], f"CronJobs: {cronjobs}"
        owners = cronjobs[0]["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"]) for o in owners] == [("ScheduledBackup", case.name)], owners
    else:
        assert cronjobs == [], f"cronJob.enabled=false, yet CronJobs exist: {[c['metadata']['name'] for c in cronjobs]}"
