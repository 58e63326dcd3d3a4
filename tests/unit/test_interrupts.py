"""Ctrl-C inside the harness, without a run: a deferred block finishes before the interrupt (a child Python
that receives the signals), and the interrupted line names the steps in progress. Real runs interrupted in
every phase: tests/selftest/test_interrupts.py."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from .. import interruptible
from .conftest import PROJECT_DIR


# The child blocks on stdin where a signal is to arrive, and goes on when the test writes a line.
DEFERRED = """if True:
    import sys
    from e2e_harness.interrupts import deferred, hold_during_teardown
    try:
        with deferred("stopping the backend", say=lambda m: print(m, flush=True)):
            print("ready", flush=True)
            sys.stdin.readline()          # SIGINT and SIGTERM arrive here
            print("block finished", flush=True)
    except KeyboardInterrupt as exc:
        print(f"then KeyboardInterrupt({exc})", flush=True)
    hold_during_teardown(say=lambda m: print(m, flush=True))
    print("ready again", flush=True)
    sys.stdin.readline()
    with deferred("stopping the backend", say=lambda m: print(m, flush=True)):   # the teardown's own
        print("stopping", flush=True)
        sys.stdin.readline()
    print("teardown finished", flush=True)
    """


def test_deferred_finishes_the_block_then_interrupts_and_a_second_interrupt_only_says_so():
    proc = subprocess.Popen([sys.executable, "-c", DEFERRED], cwd=PROJECT_DIR, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, preexec_fn=interruptible)

    def go_on() -> None:
        proc.stdin.write("\n")
        proc.stdin.flush()

    try:
        assert proc.stdout.readline() == "ready\n"
        # One signal at a time: sent together, the SIGTERM handler may run nested inside the
        # SIGINT handler (Python checks for signals between any two bytecodes) and print first.
        proc.send_signal(signal.SIGINT)
        held = [proc.stdout.readline()]
        proc.send_signal(signal.SIGTERM)
        held.append(proc.stdout.readline())
        assert held == [
            "SIGINT received during stopping the backend: finishing it first (SIGKILL stops the harness at once "
            "(its services die with it))\n",
            "SIGTERM received during stopping the backend: finishing it first (SIGKILL stops the harness at once "
            "(its services die with it))\n"], held
        go_on()
        assert [proc.stdout.readline() for _ in range(3)] == [
            "block finished\n", "then KeyboardInterrupt(signal SIGINT)\n", "ready again\n"]
        proc.send_signal(signal.SIGINT)
        again = "SIGINT received again: still tearing down what the run started"
        assert proc.stdout.readline().startswith(again)
        go_on()
        assert proc.stdout.readline() == "stopping\n"
        proc.send_signal(signal.SIGINT)  # in the teardown's deferred block: said, and nothing raised
        assert proc.stdout.readline().startswith(again)
        go_on()
        assert proc.stdout.readline() == "teardown finished\n"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_interrupted_line_names_the_steps_in_progress_else_the_test(monkeypatch):
    from e2e_harness import progress

    lines: list[str] = []
    monkeypatch.setattr(progress, "_write", lines.append)
    monkeypatch.setattr(progress, "_interrupted_during", None)
    with pytest.raises(KeyboardInterrupt):
        with progress.step("backend local: deploying the release"), progress.step("starting PostgreSQL and Redis"):
            raise KeyboardInterrupt
    with progress.step("backend local: stopping"):   # the teardown that follows does not change the phase
        pass
    assert progress.interrupted("tests/e2e/t.py::test_x (setup)") == (
        "e2e-harness: interrupted during backend local: deploying the release > starting PostgreSQL and Redis "
        "(in tests/e2e/t.py::test_x (setup))")
    assert lines[-1] == progress.interrupted("tests/e2e/t.py::test_x (setup)")
    assert "starting PostgreSQL and Redis: interrupted after" in "\n".join(lines)
    monkeypatch.setattr(progress, "_interrupted_during", None)
    assert progress.interrupted("tests/e2e/t.py::test_x (call)", "signal SIGTERM") == (
        "e2e-harness: interrupted by signal SIGTERM during tests/e2e/t.py::test_x (call)")
