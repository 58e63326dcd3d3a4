"""Phase lines on the console while a run goes: what the harness is doing, since when.

The plugin points this at pytest's terminal writer; outside pytest (the CLIs) it
falls back to stderr. Long steps (builds, cluster creation, image pushes) say that
they are alive every ``HEARTBEAT_SECONDS``. Every line passes the secret masker.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

HEARTBEAT_SECONDS = 30.0

_write: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
_mask: Callable[[str], str] = lambda text: text
_started = time.monotonic()
_lock = threading.Lock()


def configure(write: Callable[[str], None], mask: Callable[[str], str]) -> None:
    """Route phase lines to ``write`` (pytest's terminal) through ``mask``."""
    global _write, _mask, _started
    _write, _mask, _started = write, mask, time.monotonic()


def say(message: str) -> None:
    with _lock:
        _write(_mask(f"[e2e-harness +{time.monotonic() - _started:6.1f}s] {message}"))


def detail(text: str) -> None:
    """Command output shown with VERBOSE=true."""
    with _lock:
        for line in _mask(text).rstrip().splitlines():
            _write(f"    | {line}")


@contextmanager
def step(what: str) -> Iterator[None]:
    """A phase: announced, kept alive with heartbeats, and closed with its duration."""
    say(f"{what} ...")
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            say(f"{what}: still running ({time.monotonic() - started:.0f}s)")

    beat = threading.Thread(target=heartbeat, daemon=True, name="e2e-progress-heartbeat")
    beat.start()
    try:
        yield
    except BaseException:
        say(f"{what}: failed after {time.monotonic() - started:.1f}s")
        raise
    finally:
        done.set()
        beat.join()
    say(f"{what}: done in {time.monotonic() - started:.1f}s")
