"""The report's headline: a green run says how many of the release's templates it never ran."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from e2e_harness.release import load_release
from e2e_harness.report import TestResult as Case   # not a test class
from e2e_harness.report import add_junit_properties, render_markdown, templates_untested

PROJECT_DIR = Path(__file__).resolve().parents[2]
MATRIX = "tests/e2e/test_template_matrix.py::"


def _cases() -> list[Case]:
    return [Case(f"{MATRIX}test_backup_and_restore[pg15]", "passed", 1.0),
            Case(f"{MATRIX}test_backup_and_restore[pg13]", "skipped", 0.0, reason="not hostable: no subject"),
            Case(f"{MATRIX}test_backup_and_restore[tar]", "passed", 1.0),
            Case(f"{MATRIX}test_backup_and_restore_of_a_single_file[tar]", "skipped", 0.0, reason="x"),
            # parametrized scenarios that are not templates
            Case("tests/e2e/test_postgres_backup.py::test_scheduled_backup_creates_a_cronjob_only_when_enabled"
                 "[cron-enabled]", "passed", 1.0),
            Case("tests/e2e/test_install.py::test_custom_resource_definition_is_established[backupusers.x]",
                 "skipped", 0.0, reason="y")]


def test_a_template_none_of_whose_cases_ran_is_untested_and_other_parametrized_tests_are_no_templates():
    templates, untested = templates_untested(_cases())
    assert templates == ["pg13", "pg15", "tar"] and untested == ["pg13"]


def test_the_headline_of_a_green_run_counts_the_untested_templates(tmp_path):
    release = load_release(PROJECT_DIR / "release.env", environ={})
    text = render_markdown(release, [], "local", _cases(), tmp_path)
    assert text.splitlines()[0] == ("# Release compatibility report: PASSED; 1 of 3 procedure templates not tested "
                                    "on this backend")
    all_ran = [c for c in _cases() if "[pg13]" not in c.nodeid]
    assert render_markdown(release, [], "local", all_ran, tmp_path).splitlines()[0] == \
        "# Release compatibility report: PASSED"


def test_release_properties_go_where_record_testsuite_property_puts_them(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1">'
                     '<testcase classname="t" name="a"/></testsuite></testsuites>')
    add_junit_properties(junit, [("release.PGBR_VERSION", "1.0.0-rc1"), ("backend", "local")])
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite[0].tag == "properties"
    assert [(p.get("name"), p.get("value")) for p in suite[0]] == [("release.PGBR_VERSION", "1.0.0-rc1"),
                                                                   ("backend", "local")]
