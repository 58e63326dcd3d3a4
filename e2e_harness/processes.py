"""Long-running host processes of the local backend, all in one process group.

Every process the local backend starts (etcd, kube-apiserver, controllers, later
the server, PostgreSQL, Redis) joins one process group owned by a
``ProcessGroup`` and logs to a file in the artifacts directory. Nothing survives
the harness, however it ends:

* the group's leader is a tiny watchdog process started first. It holds the read
  end of a pipe, the *lifeline*, whose write end only the harness holds (not
  inherited by any child). When the harness process ends in any way (exit, crash,
  SIGKILL), the kernel closes the write end, the watchdog's read returns EOF and it
  SIGKILLs its whole process group. This is tied to the harness *process*, not to
  the thread that started a service (unlike PR_SET_PDEATHSIG), so services may be
  started from worker threads that end long before the harness does;
* ``stop`` (also run at exit) SIGTERMs the group, waits (bounded) for the services,
  then SIGKILLs whatever is left of the group (strays included) and closes the lifeline.

The group is not the terminal's foreground group: Ctrl-C reaches the harness only,
which then stops the group itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .ports import PortInUse, ensure_free, in_use_message

log = logging.getLogger("e2e_harness.processes")

STOP_TIMEOUT = 10
WATCHDOG_START_TIMEOUT = 30
_LIVE_GROUPS: "weakref.WeakSet[ProcessGroup]" = weakref.WeakSet()

# The watchdog: ignores SIGINT/SIGTERM/SIGHUP (a group-wide SIGTERM is for the services),
# says "armed" on stdout, waits for EOF on its lifeline (argv[1] is the fd), then SIGKILLs
# its own process group.
_WATCHDOG = """
import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
fd = int(sys.argv[1])
os.write(1, b"armed")
os.close(1)
while os.read(fd, 4096):
    pass
os.killpg(0, signal.SIGKILL)
"""


class ProcessError(RuntimeError):
    pass


def free_port(address: str = "127.0.0.1") -> int:
    """A port the OS just handed out on ``address`` (released again for the process to bind)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@dataclass
class HostProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path
    ports: tuple[int, ...] = ()   # ports the harness picked for it
    address: str = "127.0.0.1"    # where it binds them

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProcessGroup:
    """Starts processes into one group that dies with the harness process, and stops them together."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.pgid: int | None = None
        self.processes: list[HostProcess] = []
        self._watchdog: subprocess.Popen | None = None
        self._lifeline: int | None = None     # write end of the watchdog's pipe; only this process has it
        self._lock = threading.RLock()
        _LIVE_GROUPS.add(self)

    def _ensure_watchdog(self) -> int:
        """The group's leader, started on first use; returns the group id."""
        if self._watchdog is not None:
            if self._watchdog.poll() is not None:
                raise ProcessError(f"the process group's watchdog (pid {self._watchdog.pid}) exited with "
                                   f"{self._watchdog.returncode}; the group is no longer tied to the harness")
            return self._watchdog.pid
        read_end, write_end = os.pipe()          # both close-on-exec: no child inherits them by accident
        try:
            watchdog = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(read_end)],
                                        pass_fds=(read_end,), process_group=0, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        # Wait until its signal dispositions are set: a group SIGTERM must never end the watchdog.
        with watchdog.stdout:
            ready, _, _ = select.select([watchdog.stdout], [], [], WATCHDOG_START_TIMEOUT)
            armed = watchdog.stdout.read(5) if ready else b""
        if armed != b"armed":
            watchdog.kill()
            watchdog.wait()
            os.close(write_end)
            raise ProcessError(f"the process group's watchdog ({sys.executable} -c ...) did not start within "
                               f"{WATCHDOG_START_TIMEOUT}s (got {armed!r}, exit code {watchdog.returncode})")
        self._watchdog, self._lifeline, self.pgid = watchdog, write_end, watchdog.pid
        log.debug("process group %s: watchdog started", watchdog.pid)
        return watchdog.pid

    def start(self, name: str, args: Sequence[str | os.PathLike], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, ports: Sequence[int] = (), address: str = "127.0.0.1") -> HostProcess:
        """Start ``args`` as ``name``; ``ports`` (picked by free_port) must still be free on ``address``,
        else PortInUse."""
        ensure_free(name, ports, address)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        argv = [str(a) for a in args]
        log.info("starting %s: %s", name, argv[0])
        with self._lock:
            pgid = self._ensure_watchdog()
            with open(log_path, "ab") as log_file:
                popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **(env or {})}, cwd=cwd, process_group=pgid)
            process = HostProcess(name, popen, log_path, tuple(ports), address)
            self.processes.append(process)
        return process

    def check_running(self) -> None:
        """Raise naming any process that has exited, with its log's tail."""
        for p in list(self.processes):
            if not p.running():
                if in_use := in_use_message(p.name, p.popen.returncode, p.ports, p.log_tail(), p.log_path,
                                            p.address):
                    raise PortInUse(in_use)
                raise ProcessError(f"{p.name} exited with {p.popen.returncode}; log {p.log_path}:\n{p.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the group, wait (bounded), then SIGKILL whatever is left. Idempotent."""
        with self._lock:
            if self._watchdog is None:
                return
            watchdog, pgid = self._watchdog, self._watchdog.pid
            # Until the watchdog (the leader) is reaped, pgid cannot name anybody else's group.
            signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for p in self.processes:
                try:
                    p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("process group %s: %s still alive %ss after SIGTERM; killing the group",
                                pgid, p.name, STOP_TIMEOUT)
                    break
            # Whatever is left, strays included; the watchdog, told by its lifeline, would do the same.
            signal_group(pgid, signal.SIGKILL)
            self._close_lifeline()
            watchdog.wait(timeout=STOP_TIMEOUT)
            for p in self.processes:
                if p.popen.poll() is None:
                    p.popen.wait(timeout=STOP_TIMEOUT)
            self._watchdog = None
            self.pgid = None
            self.processes = []

    def detach(self) -> int | None:
        """Leave the group's processes running beyond the harness (a kept cluster); its group id, for
        ``stop_detached``. The watchdog is SIGKILLed first (it ignores the other signals), so that closing
        the lifeline kills nobody; the processes are reparented to init and keep their group."""
        with self._lock:
            if self._watchdog is None:
                return None
            pgid, watchdog = self._watchdog.pid, self._watchdog
            watchdog.kill()
            watchdog.wait(timeout=STOP_TIMEOUT)
            self._close_lifeline()
            self._watchdog, self.pgid, self.processes = None, None, []
            _LIVE_GROUPS.discard(self)
            return pgid

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid`` (0: send nothing, only ask); whether the group exists.

    The one place that signals a group. A group that is gone (ESRCH) is no error. One whose members
    all belong to another user (EPERM) exists: a probe says so, a real signal raises PermissionError."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        if sig:
            raise
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs. Exited members not yet reaped (zombies) do not
    count: a detached group's processes belong to init once the run that started them ended, and how soon
    init reaps them is its business (seen: 10 to 20 s), not a sign that they still run."""
    if not signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()   # after "(comm)": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def stop_detached(pgid: int, what: str) -> None:
    """Stop a detached group (``ProcessGroup.detach``) as ``ProcessGroup.stop`` stops its own: SIGTERM,
    a bounded wait, then SIGKILL, and a bounded wait for the kernel to reap them (they are init's children)."""
    from .waiting import Observation, WaitTimeout, poll_until

    def gone() -> Observation:
        return Observation(not group_alive(pgid), f"process group {pgid} still has members")

    signal_group(pgid, signal.SIGTERM)
    try:
        poll_until(gone, what=f"{what} (process group {pgid}) to exit after SIGTERM", timeout=STOP_TIMEOUT,
                   interval=0.1)
    except WaitTimeout:
        log.warning("%s (process group %s) still alive %ss after SIGTERM; killing the group", what, pgid, STOP_TIMEOUT)
    signal_group(pgid, signal.SIGKILL)
    poll_until(gone, what=f"{what} (process group {pgid}) to exit after SIGKILL", timeout=STOP_TIMEOUT, interval=0.1)


@atexit.register
def _stop_leftovers() -> None:
    for group in list(_LIVE_GROUPS):
        group.stop()
