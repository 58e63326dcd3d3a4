"""Timing of the e2e suite on the local backend: serial against concurrent, and where the time goes.

    .build/venv/bin/python -m tests.benchmarks.scenario_suite [--modes serial,concurrent] [--repeat N]
        [--detail] [-- extra pytest args]

Runs ``pytest tests/e2e --backend local`` once per mode and repetition (real runs: cluster start,
deploy from warm caches, every scenario; ``serial`` is ``-n 0``, ``concurrent`` is ``-n auto``,
as ``make test`` runs it), with a small timing plugin, then prints per mode:

* the suite's wall time (median over the repetitions), and the session preparation inside it
  (cluster start and deploy, paid by the first test of each worker);
* the sum of the scenarios' own times (set-up without the preparation, call, teardown) and its
  ratio to the wall time: about 1 serially, the gain from concurrency otherwise;
* where the scenarios' time goes: set-up, backups, restores, the rest of the calls (seeding and
  verifying), teardown; the time the components spent in the Jobs' pods; the Jobs run and the
  known-defect hits among them (each hit is a Job run again).

``--detail`` adds the per-scenario table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import PROJECT_DIR

RECORD_ENV = "E2E_TIMINGS_FILE"
MODES = {"serial": ["-n", "0"], "concurrent": ["-n", "auto", "--dist", "worksteal"]}   # as make test runs them


# --- the plugin, loaded into the measured pytest with -p tests.benchmarks.scenario_suite ---------
_records: dict[str, dict] = {}


def pytest_runtest_logreport(report) -> None:
    record = _records.setdefault(report.nodeid, {"outcome": "passed"})
    record[report.when] = report.duration
    if report.failed:
        record["outcome"] = "failed"
    elif hasattr(report, "wasxfail"):
        record["outcome"] = "xfailed"
    elif report.skipped and report.when != "teardown":
        record["outcome"] = "skipped"
    for name, value in report.user_properties:
        try:
            record[name] = float(value)
        except (TypeError, ValueError):
            pass


def pytest_sessionfinish(session) -> None:
    path = os.environ.get(RECORD_ENV)
    if path and not hasattr(session.config, "workerinput"):   # xdist's controller holds every worker's reports
        Path(path).write_text(json.dumps(_records, indent=1))


# --- the benchmark --------------------------------------------------------------------------------
def measure(mode: str, extra: list[str]) -> dict:
    """One run of the suite in ``mode``: its wall time, exit status and per-test records."""
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as scratch:
        record_file = Path(scratch) / "timings.json"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "--backend", "local", "-q",
                               "--capture=sys", "-p", "tests.benchmarks.scenario_suite", *MODES[mode], *extra],
                              cwd=PROJECT_DIR, env={**os.environ, RECORD_ENV: str(record_file)})
        wall = time.monotonic() - started
        records = json.loads(record_file.read_text()) if record_file.is_file() else {}
    return {"mode": mode, "wall": wall, "exit": proc.returncode, "records": records}


def summarise(run: dict) -> dict:
    """Totals of one run: preparation, the scenarios' own time by phase, Jobs and known-defect hits."""
    records = run["records"].values()
    setups = sorted((r.get("setup", 0.0) for r in records), reverse=True)
    # The preparation is paid once by the first test of each worker: set-ups far above the usual ones.
    usual = statistics.median(setups) if setups else 0.0
    preparation = [s for s in setups if s > max(10 * usual, 20.0)]
    totals = dict.fromkeys(("setup", "backup", "restore", "verify", "teardown", "pods", "jobs", "hits", "render",
                            "job", "health"), 0.0)
    for r in records:
        setup = r.get("setup", 0.0)
        totals["setup"] += 0.0 if setup in preparation else setup
        backup, restore = r.get("backup_seconds", 0.0), r.get("restore_seconds", 0.0)
        totals["backup"] += backup
        totals["restore"] += restore
        totals["verify"] += max(r.get("call", 0.0) - backup - restore, 0.0)
        totals["teardown"] += r.get("teardown", 0.0)
        totals["pods"] += r.get("pod_seconds", 0.0)
        totals["jobs"] += r.get("backup_jobs", 0.0) + r.get("restore_jobs", 0.0)
        totals["hits"] += r.get("defect_hits", 0.0)
        for phase in ("render", "job", "health"):
            totals[phase] += r.get(f"{phase}_seconds", 0.0)
    scenarios = sum(totals[k] for k in ("setup", "backup", "restore", "verify", "teardown"))
    outcomes = {}
    for r in records:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {"wall": run["wall"], "exit": run["exit"], "preparation": max(preparation, default=0.0),
            "scenarios": scenarios, "ratio": scenarios / run["wall"] if run["wall"] else 0.0,
            "outcomes": outcomes, **totals}


def print_detail(run: dict) -> None:
    print(f"{'scenario':<78} {'result':<7} {'setup':>6} {'backup':>7} {'restore':>7} {'verify':>7} {'pods':>5} "
          f"{'hits':>4}")
    for nodeid, r in run["records"].items():
        backup, restore = r.get("backup_seconds", 0.0), r.get("restore_seconds", 0.0)
        verify = max(r.get("call", 0.0) - backup - restore, 0.0)
        print(f"{nodeid.split('::')[-1][:78]:<78} {r['outcome']:<7} {r.get('setup', 0.0):6.1f} {backup:7.1f} "
              f"{restore:7.1f} {verify:7.1f} {r.get('pod_seconds', 0.0):5.0f} {r.get('defect_hits', 0.0):4.0f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="serial,concurrent", help="comma-separated: serial, concurrent")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode (the median wall time is reported)")
    parser.add_argument("--detail", action="store_true", help="the per-scenario table of each run")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {sorted(MODES)}")
    worst = 0
    medians = {}
    for mode in modes:
        runs = []
        for n in range(args.repeat):
            run = measure(mode, args.pytest_args)
            runs.append(summarise(run))
            worst = max(worst, run["exit"])
            if args.detail:
                print_detail(run)
            s = runs[-1]
            print(f"\n{mode} run {n + 1}: wall {s['wall']:.1f} s (exit {s['exit']}, {s['outcomes']}); preparation "
                  f"{s['preparation']:.1f} s; scenarios' own time {s['scenarios']:.1f} s (ratio {s['ratio']:.2f}): "
                  f"set-up {s['setup']:.1f}, backups {s['backup']:.1f}, restores {s['restore']:.1f}, rest of the "
                  f"calls {s['verify']:.1f}, teardown {s['teardown']:.1f}; pods {s['pods']:.0f} s; "
                  f"{s['jobs']:.0f} Jobs, {s['hits']:.0f} known-defect hits; the Jobs' waits: until rendered "
                  f"{s['render']:.1f} s, until finished {s['job']:.1f} s, until reported {s['health']:.1f} s",
                  flush=True)
        medians[mode] = statistics.median(r["wall"] for r in runs)
        walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
        print(f"{mode}: median wall time {medians[mode]:.1f} s over {len(runs)} run(s): {walls}", flush=True)
    if "serial" in medians and "concurrent" in medians:
        print(f"concurrent / serial: {medians['concurrent']:.1f} s / {medians['serial']:.1f} s = "
              f"{medians['concurrent'] / medians['serial']:.2f}")
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
