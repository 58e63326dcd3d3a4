"""Phase lines on the console while a run goes: what the harness is doing, since when.

The plugin points this at pytest's terminal writer; outside pytest (the CLIs) it
falls back to stderr. Long steps (builds, cluster creation, image pushes) say that
they are alive every ``HEARTBEAT_SECONDS``. Every line passes the secret masker.

The steps in progress are known, so an interrupted run (Ctrl-C, SIGINT, SIGTERM) can say
in which phase it was stopped: ``interrupted`` prints ``e2e-harness: interrupted during
<phase>`` (the plugin calls it from ``pytest_keyboard_interrupt``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

HEARTBEAT_SECONDS = 30.0

_write: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
_mask: Callable[[str], str] = lambda text: text
_label: Callable[[], str] = lambda: ""   # who says it: a pytest-xdist worker and its test
_started = time.monotonic()
# Reentrant: a signal handler runs in the main thread between two bytecodes, possibly while that thread holds
# the lock in say() or step(), and says something itself (interrupts.deferred: "SIGINT received again"). A
# plain Lock deadlocked the run there, heartbeats included (seen: a second Ctrl-C right after
# "backend local: stopping ..." left the harness silent until it was killed).
_lock = threading.RLock()
_active: list[str] = []                 # the steps in progress, outermost first
_interrupted_during: str | None = None  # the steps in progress when an interrupt first went through one


def configure(write: Callable[[str], None], mask: Callable[[str], str],
              label: Callable[[], str] | None = None) -> None:
    """Route phase lines to ``write`` (pytest's terminal) through ``mask``; ``label`` names who says them."""
    global _write, _mask, _started, _label
    _write, _mask, _started, _label = write, mask, time.monotonic(), label or (lambda: "")


def test_label(worker: str) -> Callable[[], str]:
    """``gw1 test_x[pg15]``: a pytest-xdist worker's lines name it and the test it runs (or ``gw1``
    between tests), so that concurrent scenarios' lines can be told apart."""
    def label() -> str:
        current = os.environ.get("PYTEST_CURRENT_TEST", "")   # "<nodeid> (setup|call|teardown)"
        test = current.rsplit(" (", 1)[0].split("::")[-1]
        return f"{worker} {test}".rstrip()
    return label


def say(message: str) -> None:
    with _lock:
        who = _label()
        _console(_mask(f"[e2e-harness{' ' + who if who else ''} +{time.monotonic() - _started:6.1f}s] {message}"))


def detail(text: str) -> None:
    """Command output shown with VERBOSE=true."""
    with _lock:
        for line in _mask(text).rstrip().splitlines():
            _console(f"    | {line}")


def _console(line: str) -> None:
    """Write a line; a console that went away must not stop the run's teardown.

    Ctrl-C in `make test | tee log` ends tee too: the next line would raise BrokenPipeError
    inside a fixture's teardown, before the backend is stopped (seen: a state dir with its
    PKI left behind)."""
    try:
        _write(line)
    except OSError:
        pass


@contextmanager
def step(what: str) -> Iterator[None]:
    """A phase: announced, kept alive with heartbeats, and closed with its duration."""
    say(f"{what} ...")
    with _lock:
        _active.append(what)
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            say(f"{what}: still running ({time.monotonic() - started:.0f}s)")

    beat = threading.Thread(target=heartbeat, daemon=True, name="e2e-progress-heartbeat")
    beat.start()
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            note_interrupt()
        verdict = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        say(f"{what}: {verdict} after {time.monotonic() - started:.1f}s")
        raise
    finally:
        done.set()
        beat.join()
        with _lock:
            if what in _active:
                del _active[len(_active) - 1 - _active[::-1].index(what)]
    say(f"{what}: done in {time.monotonic() - started:.1f}s")


def note_interrupt(phase: str | None = None) -> None:
    """Remember where the run was interrupted: ``phase``, else the steps in progress (first call wins)."""
    global _interrupted_during
    with _lock:
        if _interrupted_during is None and (phase or _active):
            _interrupted_during = phase or " > ".join(_active)


def current_phase() -> str | None:
    """The steps in progress, outermost first (``a > b``), or None."""
    with _lock:
        return " > ".join(_active) or None


def interrupted(test: str | None = None, cause: str = "") -> str:
    """Print and return ``e2e-harness: interrupted during <phase>``.

    The phase is the steps that were in progress when the interrupt arrived, else the
    test and its stage (pytest's ``PYTEST_CURRENT_TEST``: ``<test id> (setup|call|teardown)``)."""
    phase = _interrupted_during or current_phase()
    if phase and test:
        phase = f"{phase} (in {test})"
    by = f" by {cause}" if cause else ""
    line = f"e2e-harness: interrupted{by} during {phase or test or 'collection, before any phase'}"
    with _lock:
        _write(_mask(line))
    return line
