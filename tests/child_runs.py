"""Self-test helpers: an e2e run as a real child process, watched from the outside.

A ``ChildRun`` starts ``pytest`` on the e2e suite in its own session, reads its console
line by line, and samples (every ``SAMPLE_SECONDS``) which processes belong to it and
which loopback ports they listen on, and learns its run id from their command lines
(``.build/local/<run-id>/...``). Nothing is found by a process name: a process belongs to
the run when it descends from the child (parent chain), is in its session, or carries
the run's marker or run id in its environment, command line or working directory.
``leftovers`` lists what is left of the run after it ended, the parts of its real node included
(network namespace, containerd's shims, containers, mounts, cgroups: named from the run id as the
node names them).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from e2e_harness.backends.local import containerd, node_cleanup
from e2e_harness.backends.local.containerd import ContainerdLayout
from e2e_harness.backends.local.node_network import NodeNetwork
from e2e_harness.ports import listeners, listening_ports
from e2e_harness.processes import signal_group
from e2e_harness.waiting import Observation, WaitTimeout, poll_until

from . import PROJECT_DIR, interruptible

SAMPLE_SECONDS = 0.25
MARKER_ENV = "E2E_CHILD_RUN_MARKER"
RUN_ID = r"\d{8}-\d{6}-[0-9a-f]{4}"


@dataclass(frozen=True)
class Seen:
    pid: int
    start: int       # start time in clock ticks since boot: (pid, start) names one process for ever
    comm: str
    cmdline: str
    cwd: str


def _stat(pid: int) -> tuple[int, int, int, str] | None:
    """(ppid, session id, start time, state) of ``pid``, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[3]), int(fields[19]), fields[0]


def _read(path: str, binary: bool = False):
    try:
        return Path(path).read_bytes() if binary else Path(path).read_text(errors="replace")
    except OSError:
        return b"" if binary else ""


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _seen(pid: int, start: int) -> Seen:
    return Seen(pid, start, _read(f"/proc/{pid}/comm").strip(),
                _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip(), _cwd(pid))


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


class ChildRun:
    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, build_dir: Path | None = None,
                 name: str = "child"):
        self.name = name
        self.marker = secrets.token_hex(8)
        self.args = [sys.executable, "-m", "pytest", *args]
        self.env = {**os.environ, **(env or {}), MARKER_ENV: self.marker, "PYTHONUNBUFFERED": "1"}
        self.build_dir = build_dir or PROJECT_DIR / ".build"
        self.lines: list[tuple[float, str]] = []
        self.seen: dict[tuple[int, int], Seen] = {}
        self.ports: dict[int, Seen] = {}   # port -> the process seen listening on it
        self.run_id: str | None = None
        self.started = 0.0
        self.popen: subprocess.Popen | None = None
        self._changed = threading.Condition()
        self._stop_sampling = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- running -------------------------------------------------------------------------
    def start(self) -> "ChildRun":
        self.started = time.monotonic()
        self.popen = subprocess.Popen(self.args, cwd=PROJECT_DIR, env=self.env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      errors="replace", start_new_session=True,
                                      preexec_fn=interruptible)
        self._threads = [threading.Thread(target=self._read_output, daemon=True, name=f"{self.name}-output"),
                         threading.Thread(target=self._sample_loop, daemon=True, name=f"{self.name}-sampler")]
        for thread in self._threads:
            thread.start()
        return self

    def _read_output(self) -> None:
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _sample_loop(self) -> None:
        while not self._stop_sampling.wait(SAMPLE_SECONDS):
            self.sample()
            with self._changed:
                self._changed.notify_all()
            if self.popen.poll() is not None:
                return

    def sample(self) -> None:
        """Record the run's processes (descendants of the child and members of its session) and their ports."""
        root = self.popen.pid
        stats = {pid: s for pid in _pids() if (s := _stat(pid)) is not None}
        members = {root} if root in stats else set()
        changed = True
        while changed:
            changed = False
            for pid, (ppid, sid, _, _) in stats.items():
                if pid not in members and (ppid in members or sid == root):
                    members.add(pid)
                    changed = True
        for pid in members:
            key = (pid, stats[pid][2])
            # Read again while argv is empty: right after exec the kernel has set the new comm but not yet the
            # new argv, and the run id (seen only in argv or cwd) would be missed for good.
            if key not in self.seen or not self.seen[key].cmdline:
                self.seen[key] = seen = _seen(*key)
                if self.run_id is None and (m := re.search(rf"{re.escape(str(self.build_dir))}/local/({RUN_ID})\b",
                                                           f"{seen.cmdline} {seen.cwd}")):
                    self.run_id = m.group(1)
        by_pid = {pid: self.seen[(pid, stats[pid][2])] for pid in members}
        for port, pid in listening_ports(members).items():
            self.ports.setdefault(port, by_pid[pid])

    def interrupt(self) -> None:
        """SIGINT to the child only (not its process group): what Ctrl-C does to the harness."""
        os.kill(self.popen.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int:
        try:
            code = self.popen.wait(timeout=timeout)
        finally:
            self._stop_sampling.set()
            for thread in self._threads:
                thread.join(timeout=10)
        return code

    def kill(self) -> None:
        """Last resort for the test's own cleanup: SIGKILL the child's session."""
        if self.popen is not None and self.popen.poll() is None:
            signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._stop_sampling.set()

    # --- observing -----------------------------------------------------------------------
    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    @property
    def state_dir(self) -> Path | None:
        return self.build_dir / "local" / self.run_id if self.run_id else None

    def wait_for(self, predicate, what: str, timeout: float):
        """Until ``predicate(self)`` is truthy (re-checked on every line and sample); its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate(self)
                if value:
                    return value
                if self.popen.poll() is not None and not self._threads[0].is_alive():
                    raise AssertionError(f"{self.name} exited ({self.popen.returncode}) before {what}:\n"
                                         f"{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no {what} within {timeout:.0f}s:\n{self.tail()}")
                self._changed.wait(min(left, 1.0))

    def line_matching(self, pattern: str):
        """A predicate: the first console line matching ``pattern``."""
        regex = re.compile(pattern)
        return lambda run: next((line for _, line in run.lines if regex.search(line)), None)

    def processes(self, predicate) -> list[Seen]:
        """The run's live processes (recorded and still running) for which ``predicate(seen)`` holds."""
        return [s for (pid, start), s in list(self.seen.items())
                if predicate(s) and (st := _stat(pid)) is not None and st[2] == start and st[3] != "Z"]

    @staticmethod
    def environ(seen: Seen) -> str:
        """The environment of a live process (NUL-separated entries), or ''."""
        return _read(f"/proc/{seen.pid}/environ", binary=True).decode(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-lines:])

    # --- after the run -------------------------------------------------------------------
    def belongs(self, pid: int) -> Seen | None:
        """``pid`` as a process of this run (recorded, in its session, or carrying its marker or run id)."""
        st = _stat(pid)
        if st is None or st[3] == "Z" or pid == os.getpid():
            return None
        _, sid, start, _ = st
        if (pid, start) in self.seen:
            return self.seen[(pid, start)]
        seen = _seen(pid, start)
        environ = _read(f"/proc/{pid}/environ", binary=True)
        needles = [self.marker] + ([self.run_id] if self.run_id else [])
        if sid == self.popen.pid or any(n.encode() in environ or n in seen.cmdline or n in seen.cwd for n in needles):
            return seen
        return None

    def leftovers_after(self, grace: float) -> list[str]:
        """``leftovers`` once they are gone or ``grace`` seconds have passed (after the child exits, its
        watchdog still has to kill the rest of its group)."""
        def gone() -> Observation:
            left = self.leftovers()
            return Observation(not left, f"{len(left)} left: {left[:3]}")

        try:
            poll_until(gone, what=f"what is left of {self.name} to go", timeout=grace, interval=0.5)
        except WaitTimeout:
            pass  # the caller reports what is left, with its own context
        return self.leftovers()

    def leftovers(self) -> list[str]:
        """What of the run is still there: processes, listening ports, the state directory."""
        node = self.node_pids()   # said once, under "node:", below
        found = [f"process {s.pid} ({s.comm}): {s.cmdline[:200]}" for pid in _pids()
                 if pid not in node and (s := self.belongs(pid))]
        for port, owner in sorted(self.ports.items()):
            for pid in listeners(port):
                if self.belongs(pid):
                    found.append(f"port 127.0.0.1:{port} (opened by {owner.comm}) still listened on by pid {pid}")
        found += self.node_leftovers()
        if self.state_dir is not None and self.state_dir.exists():
            found.append(f"state directory {self.state_dir}: {sorted(p.name for p in self.state_dir.iterdir())}")
        return found

    @property
    def node_tag(self) -> str | None:
        """The run's node name (``node_network.plan``): its network namespace and cgroup root."""
        return f"e2e-{hashlib.sha256(self.run_id.encode()).hexdigest()[:8]}" if self.run_id else None

    def pod_processes(self) -> list[int]:
        """Processes in the run's node's containers (in its pods' cgroups)."""
        if not self.node_tag:
            return []
        needle = f"/{self.node_tag}/"
        return [pid for pid in _pids() if needle in _read(f"/proc/{pid}/cgroup")]

    def _node_record(self) -> node_cleanup.NodeRecord | None:
        """The run's node as the node names it (the record itself may be gone with the state dir)."""
        if not self.node_tag or self.state_dir is None:
            return None
        tag = self.node_tag.split("-", 1)[1]
        return node_cleanup.NodeRecord(
            network=vars(NodeNetwork(self.node_tag, f"e2eh{tag}", f"e2en{tag}", "", "")),
            containerd_base=str(self.state_dir / "containerd"), cgroup_name=self.node_tag)

    def node_pids(self) -> set[int]:
        """The node's containerd shims and container processes (left by a SIGKILL until the next run)."""
        record = self._node_record()
        if record is None:
            return set()
        layout = ContainerdLayout(Path(record.containerd_base), record.cgroup_name)
        return set(containerd.shim_pids(layout)) | set(self.pod_processes())

    def node_leftovers(self) -> list[str]:
        record = self._node_record()
        if record is None:
            return []
        found = [f"node: {what}" for what in node_cleanup.leftovers(record, self.state_dir)]
        if pids := self.pod_processes():
            found.append(f"node: container processes {pids[:10]}")
        return found

    def temp_dirs_named(self) -> set[Path]:
        """/tmp/e2e-* directories that the run's processes named (PostgreSQL's data as root, and such)."""
        return {Path(m) for s in self.seen.values() for m in re.findall(r"/tmp/e2e-[^/\s]+", f"{s.cmdline} {s.cwd}")}
