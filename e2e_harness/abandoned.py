"""What a run leaves when it is killed outright (SIGKILL, the OOM killer, a crash): the next run removes it.

A run's teardown removes its state directory (``.build/local/<run-id>``: etcd's data, the PKI,
the pods' secret volumes) and its databases' data directories. SIGKILL allows no teardown,
and those directories hold every secret of the run, so each one carries an owner file naming
the process that made it (pid and start time, so a reused pid does not count as the owner).
A later run on this machine removes every such directory whose owner is gone, and says so.
Directories without an owner file (a kept cluster, another tool's) are never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

OWNER_FILE = ".e2e-owner"


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def claim(directory: Path, pid: int | None = None) -> None:
    """Mark ``directory`` as this process's (or process ``pid``'s), so that a later run removes it if the owner
    cannot."""
    pid = pid or os.getpid()
    (directory / OWNER_FILE).write_text(f"{pid} {_start_time(pid)}\n")


def owner_gone(directory: Path) -> str | None:
    """Why ``directory``'s owner is gone ("pid 123 is no longer running"), or None (alive, or no owner file)."""
    try:
        pid_text, start = (directory / OWNER_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    now = _start_time(pid)
    if now is None:
        return f"pid {pid} is no longer running"
    if now != start:
        return f"pid {pid} is now another process"
    return None


def candidates(build_dir: Path, temp_dir: Path | None = None) -> list[Path]:
    """Where runs put such directories: ``<build>/local/*`` and ``<temp>/e2e-*`` (databases as root)."""
    temp = Path(temp_dir or tempfile.gettempdir())
    found = sorted((build_dir / "local").glob("*")) + sorted(temp.glob("e2e-*"))
    return [path for path in found if path.is_dir() and not path.is_symlink()]


def sweep(directories: Iterable[Path], say: Callable[[str], None],
          before_remove: Callable[[Path], list[str]] | None = None) -> list[Path]:
    """Remove each directory whose owner is gone; say which and why; the removed ones.

    ``before_remove(directory)`` releases what the directory's run holds outside it (a real node's
    mounts, network namespace, cgroups, processes) and says what; it runs first, so that no mount is
    left below a directory that is then deleted recursively.
    """
    removed = []
    for directory in directories:
        why = owner_gone(directory)
        if why is None:
            continue
        if before_remove is not None and (released := before_remove(directory)):
            say(f"released {', '.join(released)} of a run that was killed ({why})")
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            say(f"could not remove all of {directory}, left by a run that was killed ({why}); remove it by hand")
        else:
            say(f"removed {directory}, left by a run that was killed ({why})")
            removed.append(directory)
    return removed
