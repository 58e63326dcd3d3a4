"""Host processes of the local backend live exactly as long as the harness process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from e2e_harness.processes import ProcessGroup, group_alive
from e2e_harness.waiting import Observation, poll_until

from .conftest import PROJECT_DIR


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pid: int, what: str, timeout: float = 15) -> None:
    poll_until(lambda: Observation(not alive(pid), f"pid {pid} alive: {alive(pid)}"), what=what, timeout=timeout,
               interval=0.1)


@pytest.fixture
def group(tmp_path):
    g = ProcessGroup(tmp_path / "logs")
    yield g
    g.stop()


def test_a_process_started_from_a_worker_thread_outlives_the_thread(group):
    started: list = []
    thread = threading.Thread(target=lambda: started.extend([group.start("sleeper", ["sleep", "300"]),
                                                             threading.get_native_id()]))
    thread.start()
    thread.join()
    process, tid = started
    # join() returns before the OS thread is gone; a parent-death signal would fire only then
    poll_until(lambda: Observation(not Path(f"/proc/self/task/{tid}").exists(), f"thread {tid} still exists"),
               what="the worker thread to be gone from the kernel", timeout=10, interval=0.05)
    with pytest.raises(subprocess.TimeoutExpired):
        process.popen.wait(timeout=1)   # still running a second after its starting thread ended
    group.check_running()
    assert os.getpgid(process.popen.pid) == group.pgid


def test_stop_terminates_the_group_and_kills_strays(group, tmp_path):
    stray_file = tmp_path / "stray.pid"
    # a stray grandchild that ignores SIGTERM: only the group-wide SIGKILL ends it
    main = group.start("main", ["sh", "-c", f"(trap '' TERM; exec sleep 300) & echo $! > {stray_file}; "
                                            "exec sleep 300"])
    poll_until(lambda: Observation(stray_file.exists() and stray_file.read_text().strip() != "", "no pid yet"),
               what="the stray to start", timeout=10, interval=0.05)
    stray = int(stray_file.read_text())
    assert alive(stray) and os.getpgid(stray) == group.pgid
    group.stop()
    assert main.popen.returncode == -signal.SIGTERM
    wait_gone(stray, "the stray grandchild to be killed by stop()", timeout=5)
    assert group.processes == [] and group.pgid is None
    group.stop()  # idempotent


CHILD = """
import json, os, sys, threading
from pathlib import Path
from e2e_harness.processes import ProcessGroup, group_alive

group = ProcessGroup(Path(sys.argv[1]) / "logs")
sleeper = group.start("sleeper", ["sleep", "300"])
Path(sys.argv[1], "started.json").write_text(json.dumps({"pid": sleeper.popen.pid, "pgid": group.pgid}))
threading.Event().wait(300)
"""


def test_services_die_when_the_harness_is_sigkilled(tmp_path):
    """SIGKILL leaves no atexit and no signal handler: the lifeline's EOF alone must end the group."""
    marker = tmp_path / "started.json"
    harness = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        poll_until(lambda: Observation(marker.exists() or harness.poll() is not None,
                                       "no marker" if harness.poll() is None else f"exited {harness.returncode}"),
                   what="the child harness to start its sleep", timeout=30, interval=0.1)
        assert marker.exists(), harness.communicate()[0]
        started = json.loads(marker.read_text())
        assert alive(started["pid"]) and alive(started["pgid"])
        harness.kill()
        harness.wait(timeout=10)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
    wait_gone(started["pid"], "the sleep of a SIGKILLed harness to be killed by its watchdog")
    wait_gone(started["pgid"], "the watchdog of a SIGKILLed harness to end")


def test_a_group_whose_members_exited_but_are_not_reaped_is_not_alive():
    """A kept cluster's processes belong to init once their run ended; exited and not yet reaped, they
    must not hold up stop_detached for its whole SIGTERM timeout (seen: 10-20 s per group)."""
    child = subprocess.Popen(["sleep", "0.2"], process_group=0)   # not reaped until wait() below
    try:
        assert group_alive(child.pid), "a running member counts"

        def zombie() -> Observation:
            state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return Observation(state == "Z", f"state {state}")

        poll_until(zombie, what="the child to exit (and stay unreaped)", timeout=10, interval=0.05)
        os.killpg(child.pid, 0)   # the kernel still knows the group: the old check said alive
        assert not group_alive(child.pid)
    finally:
        child.wait()
