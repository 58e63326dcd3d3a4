"""Two e2e runs at once in one checkout (two terminals, or an editor's test runner starting a second run).

Both runs start together as real child processes (``tests/child_runs.py``), each running
two scenarios concurrently on the local backend as ``make test`` does (pytest-xdist, two
workers), and both must pass: each with its own run id, one cluster prepared once and
shared by its two workers, its own state directory, ports and artifacts, the two clusters
up at the same time, and nothing of either left afterwards. They share what is meant to be shared: the
component sources in ``.build/<component>`` and the build cache, both behind file locks.

Two control planes and two scenarios on 2 cores take a few minutes, so this test is
marked ``slow``: ``make check`` leaves it out; run it with
``.build/venv/bin/python -m pytest tests/selftest -m slow`` or as part of the soak
(``python -m tests.benchmarks.soak --slow``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.child_runs import ChildRun

from .conftest import PROJECT_DIR

pytestmark = [pytest.mark.slow, pytest.mark.needs_go, pytest.mark.timeout(1800)]

SCENARIO = "tests/e2e/test_postgres_backup.py::test_internal_pg15_template_backs_up_encrypted_and_restores_the_snapshot"
MIRROR = Path(os.environ.get("E2E_GIT_MIRROR") or PROJECT_DIR.parent / "shared" / "mirrors")
# Components from the git mirror where there is one (this machine), else cloned from the git hosting (CI).
MIRROR_ENV = {"E2E_GIT_MIRROR": str(MIRROR)} if MIRROR.is_dir() else {}
RUN_TIMEOUT = 1500
QUICK = "tests/e2e/test_install.py::test_controller_crds_carry_the_status_fields_scenarios_assert_on"
DEPLOYED = r"backend local: deploying the release: done in"
STARTING = r"starting the node \(containerd, kubelet, kube-proxy, kube-scheduler\) \.\.\.$"   # attaching skips it
STOPPING = r"backend local: removing the run's cluster \.\.\.$"


def _when(run: ChildRun, pattern: str) -> float:
    """Seconds since the child started until its first console line matching ``pattern``."""
    regex = re.compile(pattern)
    return next(t for t, line in run.lines if regex.search(line))


def test_two_runs_at_once_in_one_checkout_both_pass_with_their_own_state_and_ports(tmp_path):
    runs = [ChildRun([SCENARIO, QUICK, "-n", "2", "--backend", "local", "-q", "-p", "no:cacheprovider", "--capture=sys",
                      "--artifacts-dir", str(tmp_path / f"artifacts-{n}")],
                     env=MIRROR_ENV, name=f"run {n}") for n in (1, 2)]
    try:
        for run in runs:
            run.start()
        codes = [run.wait(RUN_TIMEOUT) for run in runs]
    finally:
        for run in runs:
            run.kill()
    first, second = runs
    for run, code in zip(runs, codes):
        assert code == 0, f"{run.name} failed (exit {code}) while another run was going:\n{run.tail(60)}"
    assert first.run_id and second.run_id and first.run_id != second.run_id, (first.run_id, second.run_id)
    assert first.state_dir != second.state_dir
    for run in runs:
        starts = [line for _, line in run.lines if re.search(STARTING, line)]
        assert len(starts) == 1, f"{run.name}: its two workers should share one cluster; started {len(starts)}:\n" + (
            "\n".join(starts))
    shared = set(first.ports) & set(second.ports)
    assert not shared, f"both runs listened on {sorted(shared)}"
    assert len(first.ports) >= 8 and len(second.ports) >= 8, (sorted(first.ports), sorted(second.ports))
    for run in runs:
        assert (tmp_path / f"artifacts-{run.name[-1]}" / "report.md").is_file(), f"{run.name} wrote no report"
    # Really at once: each cluster was deployed before the other one began to stop.
    offset = second.started - first.started
    assert _when(first, DEPLOYED) < _when(second, STOPPING) + offset, "run 1 was not deployed while run 2 ran"
    assert _when(second, DEPLOYED) + offset < _when(first, STOPPING), "run 2 was not deployed while run 1 ran"
    left = first.leftovers_after(20) + second.leftovers_after(20)
    assert not left, "left behind:\n" + "\n".join(left)
    for run in runs:
        ended = run.lines[-1][0]
        print(f"{run.name}: run id {run.run_id}, {len(run.ports)} ports, deployed at "
              f"{_when(run, DEPLOYED):.1f}s, ended at {ended:.1f}s")
