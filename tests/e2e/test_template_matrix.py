"""Every procedure template the pinned release ships, backed up and restored: the template matrix.

The cases come from the definitions in the pinned backup-maker's source (see the plugin's
``pytest_generate_tests``), one per template, e.g. ``test_backup_and_restore[mariadb-10.11]``.
A template whose image this backend cannot host faithfully is skipped with the image and
what is missing. Each case proves the backup with the Job, the action, the server's new
version and its encrypted bytes, and the restore with the family's snapshot of real data.
"""

import pytest

from e2e_harness.backups import is_armored_pgp_message

from .conftest import (assert_action_reports, assert_job_succeeded, assert_new_version,
                       assert_rendered_for_the_action)

pytestmark = pytest.mark.e2e


def _round_trip(case):
    snapshot = case.subject.snapshot()
    backup = case.run("backup")
    assert_job_succeeded(backup)
    assert_rendered_for_the_action(backup)
    assert_action_reports(backup, healthy=True)
    version = assert_new_version(case, before=[])
    data = case.server.client.download(case.admin_token, case.collection, version["versionNumber"])
    assert is_armored_pgp_message(data), f"version 1 of {case.definition.name} is not an armored PGP message"
    leaked = [text for text in case.subject.plaintext if text.encode() in data]
    assert not leaked, f"the uploaded bytes contain plaintext {leaked}"
    assert case.keys.decrypt(data), "the backup decrypts to nothing"

    case.subject.change()
    assert case.subject.snapshot() != snapshot, "the changes after the backup did not change the subject"
    restore = case.run("restore")
    assert_job_succeeded(restore)
    assert_rendered_for_the_action(restore)
    assert_action_reports(restore, healthy=True)
    restored = case.subject.snapshot()
    assert restored == snapshot, (f"template {case.definition.name}: the restored subject differs from the snapshot "
                                  f"taken before the backup:\nbefore: {snapshot}\nafter:  {restored}\n"
                                  f"{restore.describe()}")


def test_backup_and_restore(template_case, procedure_template):
    _round_trip(template_case(procedure_template))


@pytest.mark.template_family("mysql")
def test_restore_into_the_database_named_in_params(template_case, procedure_template):
    """The template's plain use: only ``db`` names the database (no dumpOptions)."""
    _round_trip(template_case(procedure_template, named_database_only=True))


@pytest.mark.template_family("tar")
def test_backup_and_restore_of_a_single_file(template_case, procedure_template):
    """``path`` names one file (the template has a branch for it)."""
    _round_trip(template_case(procedure_template, single_file=True))
