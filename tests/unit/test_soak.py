"""The soak's reading of a JUnit file: a known defect's xfail is not counted as a skip, and the backups' hits
in a row give the hit rates (tests/benchmarks/soak.py)."""

from __future__ import annotations

from tests.benchmarks.soak import hit_rates, hits_in_a_row, outcomes

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


def test_outcomes_tells_passed_failed_xfailed_and_skipped_apart(tmp_path, pytester):
    probe = pytester.makepyfile(test_probe=PROBE)
    junit = tmp_path / "junit.xml"
    pytester.runpytest("-q", "-p", "no:cacheprovider", "--junitxml", str(junit), str(probe))

    assert {name.rsplit("::", 1)[1]: outcome for name, outcome in outcomes(junit).items()} == {
        "test_passes": "passed", "test_fails": "failed", "test_known_defect": "xfailed", "test_skipped": "skipped"}


JUNIT_WITH_HITS = """<testsuites><testsuite name="pytest">
<testcase classname="a" name="one"><properties><property name="backup_hits_in_a_row_0" value="2.00"/>
<property name="backup_hits_in_a_row_2" value="1.00"/><property name="backup_seconds" value="9.0"/></properties>
</testcase>
<testcase classname="a" name="two"><properties><property name="backup_hits_in_a_row_0" value="1.00"/>
<property name="backup_hits_in_a_row_1" value="1.00"/><property name="restore_hits_in_a_row_0" value="2.00"/>
</properties></testcase></testsuite></testsuites>"""


def test_hits_in_a_row_are_summed_per_action_and_give_the_rates(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT_WITH_HITS)
    found = hits_in_a_row(junit)
    assert {action: dict(runs) for action, runs in found.items()} == {"backup": {0: 3, 1: 1, 2: 1},
                                                                      "restore": {0: 2}}
    rates = hit_rates(found["backup"], per_run_of=1)
    # 5 backups, 2 hit at their first attempt; 3 attempts followed a hit, of which 1 hit again
    assert (rates.first, rates.after_hit, rates.per_run) == (2 / 5, 1 / 3, 5)
