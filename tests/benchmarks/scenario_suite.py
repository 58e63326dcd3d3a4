"""Timing of the e2e suite on the local backend: where the wall time goes.

    .build/venv/bin/python -m tests.benchmarks.scenario_suite [-- extra pytest args]

Runs ``pytest tests/e2e --backend local`` once (a real run: control plane, builds from
the cache, components, every scenario) with a small timing plugin, then prints the
total wall time, the session set-up (cluster start and deploy, paid by the first test),
and per scenario: set-up, time in backups, in restores, the rest of the call
(verification), and the ratio of the scenario's wall time to the time the components
spent in the Jobs' pods (container run times, 1 s resolution from the API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import PROJECT_DIR

RECORD_ENV = "E2E_TIMINGS_FILE"


# --- the plugin, loaded into the measured pytest with -p tests.benchmarks.scenario_suite ---------
_records: dict[str, dict] = {}


def pytest_runtest_logreport(report) -> None:
    record = _records.setdefault(report.nodeid, {"outcome": "passed"})
    record[report.when] = report.duration
    if report.failed:
        record["outcome"] = "failed"
    elif report.skipped and report.when != "teardown":
        record["outcome"] = "skipped"
    for name, value in report.user_properties:
        record[name] = float(value)


def pytest_sessionfinish(session) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        Path(path).write_text(json.dumps(_records, indent=1))


# --- the benchmark --------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as scratch:
        record_file = Path(scratch) / "timings.json"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "--backend", "local", "-q",
                               "-p", "tests.benchmarks.scenario_suite", *argv], cwd=PROJECT_DIR,
                              env={**os.environ, RECORD_ENV: str(record_file)})
        wall = time.monotonic() - started
        if not record_file.is_file():
            print(f"the suite recorded no timings (pytest exit {proc.returncode})")
            return 1
        records = json.loads(record_file.read_text())
    first_setup = max((r.get("setup", 0.0) for r in records.values()), default=0.0)
    print(f"\nsuite wall time {wall:.1f} s (pytest exit {proc.returncode}); the longest set-up, "
          f"{first_setup:.1f} s, includes starting the cluster and deploying the release")
    print(f"{'scenario':<78} {'result':<7} {'setup':>6} {'backup':>7} {'restore':>7} {'verify':>7} "
          f"{'pods':>5} {'wall/pods':>9}")
    for nodeid, r in records.items():
        setup, call = r.get("setup", 0.0), r.get("call", 0.0)
        backup, restore, pods = r.get("backup_seconds", 0.0), r.get("restore_seconds", 0.0), r.get("pod_seconds", 0.0)
        verify = max(call - backup - restore, 0.0)
        wall_time = call + r.get("teardown", 0.0) + (setup if setup < first_setup else 0.0)
        ratio = f"{wall_time / pods:.1f}" if pods else "-"
        print(f"{nodeid.split('::')[-1][:78]:<78} {r['outcome']:<7} {setup:6.1f} {backup:7.1f} {restore:7.1f} "
              f"{verify:7.1f} {pods:5.0f} {ratio:>9}")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
