"""Long-running host processes of the local backend, all in one process group.

Every process the local backend starts (etcd, kube-apiserver, controllers, later
the server, PostgreSQL, Redis) joins one process group owned by a
``ProcessGroup``, logs to a file in the artifacts directory, and is asked by the
kernel to die with the harness (PR_SET_PDEATHSIG), so nothing survives a crash or
Ctrl-C. ``stop`` terminates the whole group, bounded, and kills what lingers.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger("e2e_harness.processes")

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT = 10
_LIVE_GROUPS: "weakref.WeakSet[ProcessGroup]" = weakref.WeakSet()


class ProcessError(RuntimeError):
    pass


def free_port() -> int:
    """A port the OS just handed out on loopback (released again for the process to bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the process group and atexit still clean up
        pass


@dataclass
class HostProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProcessGroup:
    """Starts processes into one group and stops them together."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.pgid: int | None = None
        self.processes: list[HostProcess] = []
        _LIVE_GROUPS.add(self)

    def start(self, name: str, args: Sequence[str | os.PathLike], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> HostProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        argv = [str(a) for a in args]
        log.info("starting %s: %s", name, argv[0])
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, cwd=cwd,
                                     process_group=self.pgid or 0, preexec_fn=_die_with_parent)
        if self.pgid is None:
            self.pgid = popen.pid
        process = HostProcess(name, popen, log_path)
        self.processes.append(process)
        return process

    def check_running(self) -> None:
        """Raise naming any process that has exited, with its log's tail."""
        for p in self.processes:
            if not p.running():
                raise ProcessError(f"{p.name} exited with {p.popen.returncode}; log {p.log_path}:\n{p.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the group, wait (bounded), then SIGKILL whatever is left. Idempotent."""
        if self.pgid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            try:
                for p in self.processes:
                    p.popen.wait(timeout=STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                log.warning("process group %s still alive after SIGTERM; killing", self.pgid)
        for p in self.processes:
            if p.popen.poll() is None:
                p.popen.wait(timeout=STOP_TIMEOUT)
        self.pgid = None
        self.processes = []


@atexit.register
def _stop_leftovers() -> None:
    for group in list(_LIVE_GROUPS):
        group.stop()
