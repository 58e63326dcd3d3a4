"""Soak: the e2e suite N times in a row; per run its duration and result, then the flaky scenarios.

    .build/venv/bin/python -m tests.benchmarks.soak --runs 10 [--workers auto] [--slow] [-- extra pytest args]

A scenario is flaky when it failed in one run and passed in another. Each run is a full
``pytest tests/e2e`` (its own cluster, components from the build cache), concurrent as
``make test`` runs it (``--workers 0``: serial), with its own JUnit file; known intermittent
defects of the release (e2e_harness/known-defects.yaml) are counted from each run's report.md,
and their hit rates from the scenarios' JUnit properties (``<action>_hits_in_a_row_<k>``: how
many backups ended after k hits in a row): the rate of a first attempt, the rate of an attempt
after a hit, and what they make of the odds that a good release goes red (``false_red_odds``). With ``--slow`` each run is followed by the self-tests marked
``slow``, which ``make check`` leaves out (``pytest tests/unit tests/integration tests/selftest -m slow``:
two e2e runs at once in one checkout); their results count like the scenarios'.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ElementTree
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from e2e_harness.known_defects import FALSE_RED_TARGET, HitRates
from e2e_harness.merge_reports import results_of

from .. import PROJECT_DIR

DEFECT_ROW = re.compile(r"^\| `([^`]+)` .*?\| (retry-intermittent) \| (\d+) \|", re.MULTILINE)
HITS_IN_A_ROW = re.compile(r"^(\w+)_hits_in_a_row_(\d+)$")


def outcomes(junit: Path) -> dict[str, str]:
    """``{test id: passed|failed|xfailed|skipped}`` from one JUnit file, read as the report merger reads it."""
    return {r.nodeid: "failed" if r.outcome == "error" else r.outcome
            for results in results_of(junit).values() for r in results}


def hits_in_a_row(junit: Path) -> dict[str, dict[int, int]]:
    """``{action: {k: how many actions ended after k known-defect hits in a row}}`` over one run's scenarios."""
    found: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for prop in ElementTree.parse(junit).getroot().iter("property"):
        if m := HITS_IN_A_ROW.match(prop.get("name", "")):
            found[m.group(1)][int(m.group(2))] += int(float(prop.get("value", "0")))
    return found


def hit_rates(runs: dict[int, int], per_run_of: int) -> HitRates:
    """The rates of ``{k: actions that ended after k hits in a row}`` over ``per_run_of`` runs: a first
    attempt's, and an attempt's right after a hit (those after the last hit of an action ended it)."""
    actions = sum(runs.values())
    first = sum(count for k, count in runs.items() if k >= 1)
    after_hit = sum(count * (k - 1) for k, count in runs.items() if k >= 1)   # hits that followed a hit
    retried = sum(count * k for k, count in runs.items() if k >= 1)          # attempts that followed a hit
    return HitRates(first / actions if actions else 0.0, after_hit / retried if retried else 0.0,
                    actions / per_run_of)


def _slow_self_tests(n: int, scratch: Path, seen: dict[str, set[str]]) -> bool:
    """Run the self-tests marked slow once; record their outcomes; True when they were not green."""
    junit = scratch / f"junit-slow-{n}.xml"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "tests/integration", "tests/selftest",
                           "-m", "slow", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit)],
                          cwd=PROJECT_DIR, capture_output=True, text=True)
    results = outcomes(junit) if junit.is_file() else {}
    for test, outcome in results.items():
        seen[test].add(outcome)
    counts = {o: sum(1 for v in results.values() if v == o) for o in ("passed", "failed", "skipped")}
    print(f"     slow self-tests: {time.monotonic() - started:6.1f} s, exit {proc.returncode}, "
          + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
    if proc.returncode != 0:
        kept = PROJECT_DIR / ".build" / "soak" / f"run-{n}-slow"
        kept.mkdir(parents=True, exist_ok=True)
        (kept / "console.txt").write_text(proc.stdout + proc.stderr)
        print(f"         console kept in {kept}", flush=True)
    return proc.returncode != 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--slow", action="store_true", help="after each run, also the self-tests marked slow")
    parser.add_argument("--workers", default="auto", help="pytest-xdist workers per run (make test: auto; 0: serial)")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    seen: dict[str, set[str]] = defaultdict(set)
    defects: dict[str, int] = defaultdict(int)
    chains: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    failed_runs = 0
    with tempfile.TemporaryDirectory(prefix="e2e-soak-") as scratch:
        for n in range(1, args.runs + 1):
            junit, artifacts = Path(scratch) / f"junit-{n}.xml", Path(scratch) / f"artifacts-{n}"
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "--backend", "local", "-q",
                                   "-n", args.workers, *([] if args.workers == "0" else ["--dist", "worksteal"]),
                                   "--capture=sys",
                                   "--junitxml", str(junit), "--artifacts-dir", str(artifacts), *args.pytest_args],
                                  cwd=PROJECT_DIR, capture_output=True, text=True)
            took = time.monotonic() - started
            results = outcomes(junit) if junit.is_file() else {}
            for test, outcome in results.items():
                seen[test].add(outcome)
            for action, runs in (hits_in_a_row(junit) if junit.is_file() else {}).items():
                for k, count in runs.items():
                    chains[action][k] += count
            report = artifacts / "report.md"
            for defect, _, count in DEFECT_ROW.findall(report.read_text() if report.is_file() else ""):
                defects[defect] += int(count)
            counts = {o: sum(1 for v in results.values() if v == o) for o in ("passed", "failed", "xfailed", "skipped")}
            failed_runs += proc.returncode != 0
            print(f"run {n:>3}: {took:6.1f} s, exit {proc.returncode}, "
                  + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
            if proc.returncode != 0:  # keep what explains it: the failures and the run's bundles
                kept = PROJECT_DIR / ".build" / "soak" / f"run-{n}"
                shutil.copytree(artifacts, kept, dirs_exist_ok=True) if artifacts.is_dir() else kept.mkdir(parents=True)
                (kept / "console.txt").write_text(proc.stdout + proc.stderr)
                for line in proc.stdout.splitlines():
                    if line.startswith(("FAILED ", "ERROR ")):
                        print(f"         {line}", flush=True)
                print(f"         console and artifacts kept in {kept}", flush=True)
            if args.slow:
                failed_runs += _slow_self_tests(n, Path(scratch), seen)
    flaky = sorted(test for test, outcomes_seen in seen.items() if {"passed", "failed"} <= outcomes_seen)
    always_failed = sorted(test for test, outcomes_seen in seen.items() if outcomes_seen == {"failed"})
    print(f"\n{args.runs} runs, {failed_runs} not green; {len(flaky)} flaky scenario(s)"
          + "".join(f"\n  flaky: {t}" for t in flaky) + "".join(f"\n  always failed: {t}" for t in always_failed))
    for defect, count in sorted(defects.items()):
        print(f"known intermittent defect {defect}: hit {count} time(s) over all runs")
    for action, runs in sorted(chains.items()):
        rates = hit_rates(runs, args.runs)
        print(f"{action}s: {sum(runs.values())} ({rates.per_run:.1f} per run), ended after k known-defect hits in a "
              f"row: {dict(sorted(runs.items()))}; a first attempt hit {rates.first:.3f}, an attempt right after a "
              f"hit {rates.after_hit:.3f}; attempts for a false red run under {FALSE_RED_TARGET:g}: "
              f"{rates.attempts_for()}"
              + "".join(f"; with {n}: {rates.false_red_odds(n):.1e}" for n in (5, 12, 20)))
    return 1 if flaky or always_failed or failed_runs else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
