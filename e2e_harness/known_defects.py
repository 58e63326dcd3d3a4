"""Known defects of the pinned release (e2e_harness/known-defects.yaml) and what the harness does about them.

A known defect is never hidden: an intermittent one lets a step run again only when its
log shows the defect's exact symptom, and every occurrence is counted and printed in the
report. A defect of a procedure template (``handling: xfail``) marks the scenario
``scenario`` of every template whose backup or restore script is ``template_script``
``xfail(strict=True)``: it counts as expected only when the scenario raises
:class:`KnownDefectHit` (its log shows the symptom), any other failure stays a failure,
and a pass (the defect is fixed) turns the run red until this file is updated.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from .release import Release

DEFECTS_FILE = Path(__file__).resolve().parent / "known-defects.yaml"   # package data; --known-defects overrides
HANDLINGS = ("retry-intermittent", "xfail")
# A good release may go red through an intermittent defect that hits every attempt of some step: at
# most this often per run, from the rates measured for it (``measured``; the soak prints them).
FALSE_RED_TARGET = 1e-3


class KnownDefectsError(RuntimeError):
    pass


class KnownDefectHit(AssertionError):
    """A scenario failed exactly as a known defect of the release says it does (its xfail)."""


@dataclass(frozen=True)
class HitRates:
    """How an intermittent defect hits, measured over soak runs (tests/benchmarks/soak.py)."""

    first: float       # the share of first attempts of a step that hit it
    after_hit: float   # the share of attempts right after a hit that hit it again (hits cluster: above first)
    per_run: float     # the steps per run that can hit it

    def false_red_odds(self, attempts: int) -> float:
        """The odds that one run of a good release goes red: some step hits on every one of its attempts."""
        one = self.first * self.after_hit ** (attempts - 1)
        return 1 - (1 - one) ** self.per_run

    def attempts_for(self, target: float = FALSE_RED_TARGET) -> int | None:
        """The fewest attempts whose ``false_red_odds`` stay under ``target`` (None: no number will)."""
        if self.first == 0 or self.per_run == 0:
            return 1
        if self.after_hit == 0:
            return 2
        if self.after_hit >= 1:
            return None
        per_step = 1 - (1 - target) ** (1 / self.per_run)
        return max(1, math.ceil(1 + math.log(per_step / self.first) / math.log(self.after_hit) + 1e-9))


@dataclass(frozen=True)
class KnownDefect:
    id: str
    components: tuple[str, ...]
    applies_to: dict
    handling: str
    symptom: str                # what the failed step's log shows; "a" or "b" when the YAML lists several
    cause: str
    attempts: int = 1
    scenario: str = ""          # xfail: the test function it breaks
    template_script: str = ""   # xfail: backup/<script> or restore/<script> of the templates it breaks
    measured: HitRates | None = None   # retry-intermittent: its hit rates, which set ``attempts``
    symptoms: tuple[str, ...] = ()      # each exact text that shows it (default: ``symptom``)

    def shown_in(self, log: str) -> bool:
        """Whether ``log`` shows one of this defect's exact symptoms."""
        return any(symptom in log for symptom in self.symptoms or (self.symptom,))

    def applies(self, release: Release | None) -> bool:
        return release is None or all(release.values.get(k) == v for k, v in self.applies_to.items())

    def breaks(self, scenario: str, backup_script: str, restore_script: str) -> bool:
        """True for an xfail defect of this scenario on a template using its script."""
        return self.handling == "xfail" and self.scenario == scenario and self.template_script in (
            f"backup/{backup_script}", f"restore/{restore_script}")


def load(path: Path = DEFECTS_FILE) -> list[KnownDefect]:
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as exc:
        raise KnownDefectsError(f"{path}: cannot be read as YAML: {exc}") from None
    defects = []
    for n, entry in enumerate(entries, 1):
        missing = {"id", "components", "applies_to", "handling", "symptom", "cause"} - set(entry or {})
        if entry and entry.get("handling") == "xfail":
            missing |= {"scenario", "template_script"} - set(entry)
        if entry and entry.get("handling") == "retry-intermittent":
            missing |= {"attempts", "measured"} - set(entry)
        if missing or entry.get("handling") not in HANDLINGS:
            raise KnownDefectsError(f"{path}: entry {n} ({(entry or {}).get('id', 'no id')}): needs keys "
                                    f"{sorted(missing) or 'ok'} and handling one of {HANDLINGS} (xfail also "
                                    "needs scenario and template_script, retry-intermittent attempts and measured)")
        measured = None
        if "measured" in entry:
            try:
                measured = HitRates(**{k: float(v) for k, v in entry["measured"].items()})
            except (TypeError, ValueError, AttributeError) as exc:
                raise KnownDefectsError(f"{path}: entry {n} ({entry['id']}): measured needs first, after_hit and "
                                        f"per_run, as numbers: {exc}") from None
        symptoms = tuple(entry["symptom"]) if isinstance(entry["symptom"], list) else (entry["symptom"],)
        defect = KnownDefect(entry["id"], tuple(entry["components"]), dict(entry["applies_to"]), entry["handling"],
                             " or ".join(repr(s) for s in symptoms) if len(symptoms) > 1 else symptoms[0],
                             " ".join(entry["cause"].split()), int(entry.get("attempts", 1)),
                             entry.get("scenario", ""), entry.get("template_script", ""), measured, symptoms)
        if measured is not None and measured.false_red_odds(defect.attempts) >= FALSE_RED_TARGET:
            needed = measured.attempts_for()
            raise KnownDefectsError(
                f"{path}: entry {n} ({defect.id}): with attempts {defect.attempts} and the measured rates {measured} "
                f"a good release goes red in {measured.false_red_odds(defect.attempts):.1e} of runs, over the target "
                f"{FALSE_RED_TARGET:g}: " + (f"set attempts to at least {needed}" if needed else
                                             "no number of attempts will do (it hits every retry)"))
        defects.append(defect)
    return defects


class Occurrences:
    """How often each known defect showed up in this run (thread-safe; one per session, in the plugin's
    state; read by the report)."""

    def __init__(self):
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, defect: KnownDefect) -> None:
        self.add_count(defect.id, 1)

    def add_count(self, defect_id: str, count: int) -> None:
        """``count`` more of ``defect_id`` (a pytest-xdist worker's counts, merged by the controller)."""
        with self._lock:
            self._counts[defect_id] = self._counts.get(defect_id, 0) + count

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)



def intermittent_match(defects: list[KnownDefect], release: Release | None, log: str) -> KnownDefect | None:
    """The intermittent defect of this release whose symptom the log shows, if any."""
    for defect in defects:
        if defect.handling == "retry-intermittent" and defect.applies(release) and defect.shown_in(log):
            return defect
    return None


def template_defects(defects: list[KnownDefect], release: Release | None, scenario: str, backup_script: str,
                     restore_script: str) -> list[KnownDefect]:
    """The xfail defects of this release that break ``scenario`` for a template with these scripts."""
    return [d for d in defects if d.applies(release) and d.breaks(scenario, backup_script, restore_script)]


def raise_if_hit(defects: list[KnownDefect], log: str, occurrences: Occurrences) -> None:
    """Raise KnownDefectHit when ``log`` shows the symptom of one of ``defects`` (counted in ``occurrences``)."""
    for defect in defects:
        if defect.shown_in(log):
            occurrences.add(defect)
            raise KnownDefectHit(f"known defect {defect.id}: the log shows {defect.symptom!r}; {defect.cause}")
