"""Every procedure template the pinned release ships, backed up and restored: the template matrix.

The cases come from the definitions in the pinned backup-maker's source (see the plugin's
``pytest_generate_tests``), one per template, e.g. ``test_backup_and_restore[mariadb-10.11]``.
A template whose image this backend cannot host faithfully is skipped with the image and
what is missing. Each case runs the whole lifecycle (tests/e2e/lifecycle.py).
"""

import pytest

from . import lifecycle

pytestmark = pytest.mark.e2e


def test_backup_and_restore(backup_case, procedure_template):
    lifecycle.round_trip(backup_case(procedure_template))


@pytest.mark.template_family("mysql")
def test_restore_into_the_database_named_in_params(backup_case, procedure_template):
    """The template's plain use: only ``db`` names the database (no dumpOptions)."""
    lifecycle.round_trip(backup_case(procedure_template, named_database_only=True))


@pytest.mark.template_family("tar")
def test_backup_and_restore_of_a_single_file(backup_case, procedure_template):
    """``path`` names one file (the template has a branch for it)."""
    lifecycle.round_trip(backup_case(procedure_template, single_file=True))


@pytest.mark.template_family("kubectl")
def test_backup_with_only_what_the_controller_applies(backup_case, procedure_template):
    """The template's plain use: its Job's ServiceAccount is left to the release (the main case supplies it)."""
    lifecycle.round_trip(backup_case(procedure_template, service_account=False))
