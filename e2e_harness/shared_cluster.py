"""One cluster per run, shared by the run's pytest-xdist workers.

``make test`` runs the scenarios concurrently (pytest-xdist), each in its own namespace. The
cluster is started and the release deployed once per run: the first worker that needs it
prepares it under a lock while the others wait, then each attaches to it (the local backend's
kept-cluster record, k3d's named cluster, the existing context). A worker never stops the
shared cluster; the controller (xdist's main process) removes it once, after the last worker
has ended, on success, failure and Ctrl-C alike (with ``--keep-cluster`` it is kept for the
next run instead). A serial run (``-n 0``, no xdist) has no controller and keeps the session
fixture's own start and stop.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from . import progress
from .locks import exclusive
from .waiting import WaitTimeout

# What the controller hands each worker (xdist's workerinput): one run id, one artifacts directory.
RUN_ID = "e2e_run_id"
ARTIFACTS_DIR = "e2e_artifacts_dir"
CONTROLLER_PID = "e2e_controller_pid"
# What each worker hands back at its end (xdist's workeroutput): its sources, platform, counters...
WORKER_OUTPUT = "e2e_harness"
# The worker preparing the cluster on a cold machine builds the control plane, the images and the
# components (each step bounded by its own timeout); the others wait at most this long for it.
PREPARE_TIMEOUT = 3 * 3600


class SharedClusterError(RuntimeError):
    """The run's cluster could not be prepared (said once by the worker that tried, then by the others)."""


def worker_id(config: pytest.Config) -> str | None:
    """``gw0``, ``gw1``... in a pytest-xdist worker; None in the controller and in a serial run."""
    return getattr(config, "workerinput", {}).get("workerid")


def is_controller(config: pytest.Config) -> bool:
    """True in pytest-xdist's main process when it distributes the tests to workers (decided by xdist's
    pytest_cmdline_main, before any pytest_configure; its ``dsession`` plugin comes later)."""
    return (worker_id(config) is None and getattr(config.option, "dist", "no") != "no"
            and bool(getattr(config.option, "numprocesses", 0)) and not config.option.collectonly)


@dataclass(frozen=True)
class SharedCluster:
    """The run's record of its shared cluster: which backend, who prepared it, and how that went."""

    build_dir: Path
    run_id: str

    @property
    def record_path(self) -> Path:
        return self.build_dir / "shared" / f"{self.run_id}.json"

    @property
    def lock_path(self) -> Path:
        return self.build_dir / "shared" / f"{self.run_id}.lock"

    def read(self) -> dict | None:
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return None

    def write(self, **record) -> None:
        """Replace the record whole (a reader never sees half of it)."""
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.record_path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(record))
        os.replace(partial, self.record_path)

    def remove(self) -> None:
        self.record_path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)

    @contextmanager
    def turn(self, worker: str) -> Iterator[dict | None]:
        """This worker's turn at the cluster: the record as the previous holder left it (None: first).

        A record saying the preparation failed ends every later turn with that failure at once,
        instead of each worker trying again."""
        with ExitStack() as held:
            try:
                held.enter_context(exclusive(self.lock_path, what=f"{worker}: the run's cluster",
                                             timeout=PREPARE_TIMEOUT, say=progress.say,
                                             holder="the worker preparing it (its progress lines above)"))
            except WaitTimeout as exc:
                raise SharedClusterError(f"{exc}; the worker holding it may hang: see its progress lines") from None
            record = self.read()
            if record is not None and record.get("state") == "failed":
                raise SharedClusterError(f"the run's cluster could not be prepared by worker {record['worker']}: "
                                         f"{record['error']}")
            yield record
