"""An exclusive ``flock`` on a file, waited for within a bound that explains itself.

Two runs (or two pytest-xdist workers of one run) that would build, publish or prepare
the same thing take turns: the first does the work, the next finds it done.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .waiting import Observation, poll_until


@contextmanager
def exclusive(lock_path: Path, *, what: str, timeout: float, say: Callable[[str], None],
              holder: str = "another run") -> Iterator[None]:
    """Hold ``lock_path`` exclusively; when ``holder`` has it, say so and wait at most ``timeout`` s
    (WaitTimeout naming ``what`` and the lock file otherwise)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        def attempt() -> Observation:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return Observation(False, f"{holder} holds the lock")
            return Observation(True, "locked")

        if not attempt().done:
            say(f"{what}: waiting for {holder} ({lock_path})")
            poll_until(attempt, what=what, timeout=timeout, interval=1.0, where=str(lock_path))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
