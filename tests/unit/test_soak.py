"""The soak's reading of a JUnit file: a known defect's xfail is not counted as a skip (tests/benchmarks/soak.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.benchmarks.soak import outcomes

from .conftest import PROJECT_DIR

PROBE = '''
import pytest

def test_passes():
    assert True

def test_fails():
    assert False

@pytest.mark.xfail(strict=True)
def test_known_defect():
    assert False

@pytest.mark.skip(reason="capability missing")
def test_skipped():
    pass
'''


def test_outcomes_tells_passed_failed_xfailed_and_skipped_apart(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit),
                    str(tmp_path / "test_probe.py")], cwd=PROJECT_DIR, capture_output=True, text=True)

    assert {name.rsplit("::", 1)[1]: outcome for name, outcome in outcomes(junit).items()} == {
        "test_passes": "passed", "test_fails": "failed", "test_known_defect": "xfailed", "test_skipped": "skipped"}
