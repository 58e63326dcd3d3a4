"""The intermittent defects of the pinned release: matched only by their exact symptom, and retried as often
as their measured rates call for (e2e_harness/known-defects.yaml; their cited cause in the pinned server's
source: tests/integration/test_known_defects.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from e2e_harness.known_defects import FALSE_RED_TARGET, HitRates, KnownDefectsError, intermittent_match, load
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR

RELEASE = load_release(PROJECT_DIR / "release.env")
# What backup-maker logs when the server refuses an upload (from a soak run's failed Job, trimmed)
REFUSED = ('level=error msg="Status: 500 Internal Server Error, Out: {\\n    \\"data\\": {},\\n    \\"error\\": '
           '\\"cannot upload version. cannot upload file, cannot copy stream, error: {}\\"')


@pytest.mark.parametrize(("message", "defect"), [
    ("first chunk of uploaded data does not contain a valid GPG header", "gpg-header-split-across-chunks"),
    ("end of stream does not contain a valid GPG footer, suspecting a data corruption",
     "gpg-footer-split-across-chunks"),
])
def test_an_upload_refused_for_a_split_armor_line_is_a_known_intermittent_defect(message, defect):
    found = intermittent_match(load(), RELEASE, REFUSED.replace("{}", message))
    assert found is not None and found.id == defect and found.attempts > 1


@pytest.mark.parametrize("limit", ["500m", "128m", "64m"])
def test_an_eviction_for_a_workspace_limit_in_millibytes_is_the_known_defect_and_a_real_limit_is_not(limit):
    evicted = f'pod subject-backup-rgll4-5gfmr: Evicted: Usage of EmptyDir volume "workspace" exceeds the limit "{limit}".'
    found = intermittent_match(load(), RELEASE, evicted)
    assert found is not None and found.id == "workspace-size-limit-in-millibytes"
    assert intermittent_match(load(), RELEASE, evicted.replace(f'"{limit}"', f'"{limit[:-1]}Mi"')) is None


def test_other_failures_and_other_pins_are_not_retried():
    defects = load()
    assert intermittent_match(defects, RELEASE, REFUSED.replace("{}", "filesize reached allowed limit")) is None
    other_server = replace(RELEASE, values={**RELEASE.values, "SERVER_VERSION": "v4.2.0"})
    footer = REFUSED.replace("{}", "end of stream does not contain a valid GPG footer")
    assert intermittent_match(defects, other_server, footer) is None


def test_each_intermittent_defect_is_retried_often_enough_for_its_measured_rates():
    """A good release goes red less than once in 1,000 runs; and one attempt fewer than the policy's
    minimum would be over that (the attempts are the measured need, not a guess with room to spare is
    fine too, but never below it)."""
    intermittent = [d for d in load() if d.handling == "retry-intermittent"]
    assert intermittent, "e2e_harness/known-defects.yaml has no intermittent defect to check"
    for defect in intermittent:
        needed = defect.measured.attempts_for()
        assert needed is not None and defect.attempts >= needed, (defect.id, defect.attempts, needed)
        assert defect.measured.false_red_odds(defect.attempts) < FALSE_RED_TARGET, defect.id
        if needed > 1:
            assert defect.measured.false_red_odds(needed - 1) >= FALSE_RED_TARGET, (defect.id, needed)


def test_too_few_attempts_for_the_measured_rates_are_refused_naming_the_attempts_needed(tmp_path):
    rates = HitRates(first=0.4, after_hit=0.4, per_run=20)
    needed = rates.attempts_for()
    entry = ("- id: a-race\n  components: [backup-maker]\n  applies_to: {{}}\n  handling: retry-intermittent\n"
             "  symptom: split\n  cause: a race\n  attempts: {attempts}\n"
             "  measured: {{first: 0.4, after_hit: 0.4, per_run: 20}}\n")
    path = tmp_path / "known-defects.yaml"
    path.write_text(entry.format(attempts=needed))
    assert load(path)[0].attempts == needed
    path.write_text(entry.format(attempts=needed - 1))
    with pytest.raises(KnownDefectsError, match=f"a-race.*set attempts to at least {needed}"):
        load(path)
    path.write_text(entry.format(attempts=needed).replace("  measured: {first: 0.4, after_hit: 0.4, per_run: 20}\n", ""))
    with pytest.raises(KnownDefectsError, match="measured"):
        load(path)


def test_the_odds_follow_the_rates():
    rates = HitRates(first=0.5, after_hit=0.5, per_run=1)
    assert rates.false_red_odds(1) == pytest.approx(0.5)
    assert rates.false_red_odds(3) == pytest.approx(0.125)
    assert HitRates(first=0.5, after_hit=0.5, per_run=2).false_red_odds(1) == pytest.approx(0.75)
    assert rates.attempts_for(0.1) == 4   # 0.5**4 = 0.0625 < 0.1 <= 0.5**3
    assert HitRates(first=0.3, after_hit=1.0, per_run=5).attempts_for() is None
    assert HitRates(first=0.0, after_hit=0.0, per_run=5).attempts_for() == 1
