"""A command the harness runs never outlives it: on a timeout or an interrupt its whole process group stops."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_harness.commands import CommandError, run
from e2e_harness.waiting import Observation, poll_until

from .. import interruptible
from .conftest import PROJECT_DIR

# A command whose own child (like go build's compiler) would run on if only the command were killed.
WITH_A_CHILD = 'sleep 300 & echo $! > "$1"; echo started; wait'


def _gone(pid: int) -> Observation:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return Observation(True, "gone")
    return Observation(state == "Z", f"state {state}")


def test_a_timed_out_command_is_stopped_with_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    with pytest.raises(CommandError, match="did not finish within 1s; last output:\nstarted"):
        run(["sh", "-c", WITH_A_CHILD, "sh", str(pidfile)], timeout=1, what="a stuck command")
    child = int(pidfile.read_text())
    poll_until(lambda: _gone(child), what=f"the command's child {child} to be gone", timeout=10, interval=0.1)


INTERRUPTED = """if True:
    import sys
    from e2e_harness.commands import run
    try:
        run(["sh", "-c", sys.argv[1], "sh", sys.argv[2]], timeout=300)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """


def test_an_interrupted_harness_stops_the_command_and_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    harness = subprocess.Popen([sys.executable, "-c", INTERRUPTED, WITH_A_CHILD, str(pidfile)], cwd=PROJECT_DIR,
                               stdout=subprocess.PIPE, text=True, preexec_fn=interruptible)
    poll_until(lambda: Observation(pidfile.is_file() and pidfile.read_text().strip() != "", "no pid yet"),
               what="the command to start its child", timeout=30, interval=0.1)
    harness.send_signal(signal.SIGINT)   # the harness only, as Ctrl-C reaches it (commands run in their own group)
    assert harness.communicate(timeout=30)[0] == "interrupted\n"
    child = int(pidfile.read_text())
    poll_until(lambda: _gone(child), what=f"the command's child {child} to be gone", timeout=10, interval=0.1)
