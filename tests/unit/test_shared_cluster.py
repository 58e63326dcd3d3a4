"""The run's one cluster, shared by its pytest-xdist workers: prepared once, a failure said once.

Real processes take turns at the lock (``multiprocessing``), as xdist's workers do."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from e2e_harness import progress
from e2e_harness.shared_cluster import SharedCluster, SharedClusterError


def _take_turn(build_dir: str, run_id: str, worker: str, log: str) -> None:
    """A worker: the first to find no record prepares (writes 'ready'); every worker logs what it found."""
    shared = SharedCluster(Path(build_dir), run_id)
    with shared.turn(worker) as record:
        if record is None:
            shared.write(state="preparing", worker=worker, backend="local")
            shared.write(state="ready", worker=worker, backend="local")
        with open(log, "a") as out:
            out.write(json.dumps({"worker": worker, "found": record}) + "\n")


def test_of_several_workers_exactly_one_prepares_and_the_others_find_it_ready(tmp_path):
    log = tmp_path / "turns.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_take_turn, args=(str(tmp_path), "run-1", f"gw{n}", str(log)))
               for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0, f"{worker.name} exited {worker.exitcode}"
    turns = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(turns) == 4, turns
    first = [t for t in turns if t["found"] is None]
    assert len(first) == 1, f"more than one worker prepared the cluster: {turns}"
    assert all(t["found"] == {"state": "ready", "worker": first[0]["worker"], "backend": "local"}
               for t in turns if t is not first[0]), turns


def test_a_failed_preparation_ends_every_later_turn_with_that_failure(tmp_path):
    shared = SharedCluster(tmp_path, "run-2")
    with shared.turn("gw0") as record:
        assert record is None
        shared.write(state="failed", worker="gw0", backend="local", error="BackendError: etcd did not start")
    with pytest.raises(SharedClusterError, match="could not be prepared by worker gw0: BackendError: etcd did not"):
        with shared.turn("gw1"):
            pytest.fail("a later worker must not try again")


def test_runs_have_records_of_their_own_and_removing_one_leaves_the_other(tmp_path):
    one, two = SharedCluster(tmp_path, "run-a"), SharedCluster(tmp_path, "run-b")
    with one.turn("gw0"):
        one.write(state="ready", worker="gw0", backend="local")
    with two.turn("gw0") as record:
        assert record is None, "a second run at once must prepare its own cluster"
    one.remove()
    assert one.read() is None and not one.lock_path.exists()
    assert two.lock_path.exists()


def test_a_workers_progress_lines_name_the_worker_and_its_test(monkeypatch):
    lines = []
    for saved in ("_write", "_mask", "_label", "_started"):   # restored after the test
        monkeypatch.setattr(progress, saved, getattr(progress, saved))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/e2e/test_x.py::test_backup[pg15] (call)")
    progress.configure(lines.append, lambda text: text, label=progress.test_label("gw3"))
    progress.say("backup of ScheduledBackup a/b ...")
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    progress.say("between tests")
    assert lines[0].startswith("[e2e-harness gw3 test_backup[pg15] +"), lines
    assert lines[0].endswith("] backup of ScheduledBackup a/b ..."), lines
    assert lines[1].startswith("[e2e-harness gw3 +"), lines
