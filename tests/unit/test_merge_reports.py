"""Merging sharded runs: one JUnit file and one report with the templates × backends table."""

from __future__ import annotations

import subprocess
import sys

from .conftest import PROJECT_DIR

CASE = '<testcase classname="tests.e2e.test_template_matrix" name="{}" time="1.5">{}</testcase>'


def _junit(path, backend, *cases):
    path.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1">'
                    f'<properties><property name="backend" value="{backend}"/></properties>'
                    + "".join(CASE.format(name, body) for name, body in cases) + "</testsuite></testsuites>")
    return path


def _merge(tmp_path, *files):
    return subprocess.run([sys.executable, "-m", "e2e_harness.merge_reports", "--junit", str(tmp_path / "m.xml"),
                           "--report", str(tmp_path / "out" / "report.md"), *map(str, files)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_shards_of_one_backend_form_one_column_and_a_failure_fails_the_merge(tmp_path):
    one = _junit(tmp_path / "1.xml", "k3d (Kubernetes v1.31.5+k3s1)",
                 ("test_backup_and_restore[pg15]", ""),
                 ("test_backup_and_restore_of_a_single_file[tar]",
                  '<skipped type="pytest.xfail" message="known defect tar-single-file-uses-basedir: x"/>'))
    two = _junit(tmp_path / "2.xml", "k3d (Kubernetes v1.31.5+k3s1)",
                 ("test_backup_and_restore[tar]", '<failure message="restored data differs">trace</failure>'))
    proc = _merge(tmp_path, one, two)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "FAILED" in report and "1 failed, 1 passed, 1 xfailed" in report
    assert "| template | k3d (Kubernetes v1.31.5+k3s1) |" in report
    assert "| `tar` | **failed**: `test_backup_and_restore`" in report
    assert "| `pg15` | passed (1 scenario) |" in report
    merged = (tmp_path / "m.xml").read_text()
    assert merged.count("<testcase") == 3


def test_no_files_or_a_broken_file_is_an_error_naming_it(tmp_path):
    assert "no JUnit files to merge" in _merge(tmp_path).stderr
    bad = tmp_path / "bad.xml"
    bad.write_text("<not junit")
    proc = _merge(tmp_path, bad)
    assert proc.returncode == 2 and f"{bad}: not a JUnit XML file" in proc.stderr
