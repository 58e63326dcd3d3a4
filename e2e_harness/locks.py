"""An exclusive ``flock`` on a file, waited for within a bound that explains itself.

Two runs (or two pytest-xdist workers of one run) that would build, publish or prepare
the same thing take turns: the first does the work, the next finds it done.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .waiting import Observation, WaitTimeout, poll_until


@contextmanager
def exclusive(lock_path: Path, *, what: str, timeout: float, say: Callable[[str], None],
              holder: str = "another run", fail: Callable[[str], Exception] | None = None) -> Iterator[None]:
    """Hold ``lock_path`` exclusively; when ``holder`` has it, say so and wait at most ``timeout`` s.

    Past that: WaitTimeout naming ``what``, the holder (with its pid and command line when the kernel
    tells) and the lock file; or, with ``fail``, ``fail`` of that message."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        def attempt() -> Observation:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return Observation(False, f"{holder}{_holding_process(lock_path)} holds the lock")
            return Observation(True, "locked")

        if not attempt().done:
            say(f"{what}: waiting for {holder} ({lock_path})")
            try:
                poll_until(attempt, what=what, timeout=timeout, interval=1.0, where=str(lock_path))
            except WaitTimeout as exc:
                if fail is None:
                    raise
                raise fail(str(exc)) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holding_process(lock_path: Path) -> str:
    """`` (pid N: its command line)`` of the process /proc/locks names for a flock on ``lock_path``, else ''."""
    try:
        st = os.stat(lock_path)
        file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks") as locks:
            pid = next(f[4] for f in map(str.split, locks) if f[1] == "FLOCK" and f[5] == file_id)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, StopIteration, IndexError):
        return ""
    return f" (pid {pid}: {command[:200]})"
