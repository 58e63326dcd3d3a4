"""Removing what a real node leaves on the host: mounts, cgroups, containerd's leftovers, the network.

Used by the node's own stop and, for a run killed outright, by the next run's sweep (from the
``node.json`` the node writes into its state dir before it makes anything). Mounts go first: a
state dir is only ever removed once nothing is mounted below it, so that a recursive delete can
never reach through a bind mount into a host directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...commands import run
from ...waiting import Observation, WaitTimeout, poll_until
from . import containerd, node_network
from .containerd import ContainerdLayout
from .node_network import NodeNetwork

log = logging.getLogger("e2e_harness.local.node_cleanup")

CGROUP_ROOT = Path("/sys/fs/cgroup")
RECORD = "node.json"
PROCESS_EXIT_TIMEOUT = 20
# Created by the kubelet whatever its root dir is; removed when the run made them and they are empty.
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")  # every kubelet's, whatever its root
HARD_CODED_DIRS = (Path("/var/lib/kubelet/device-plugins"), Path("/var/lib/kubelet"), Path("/var/log/containers"),
                   Path("/var/log/pods"))


class NodeCleanupError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeRecord:
    """What the sweep needs to find a run's node parts, written before any of them exists."""

    network: dict
    containerd_base: str
    cgroup_name: str                       # e2e-<8 hex>: kubelet's cgroupRoot, in every hierarchy
    made_dirs: list[str] = field(default_factory=list)  # hard-coded dirs that did not exist before the run
    state_dir: str = ""

    def save(self, directory: Path) -> None:
        (directory / RECORD).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, directory: Path) -> "NodeRecord | None":
        try:
            return cls(**json.loads((directory / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def run_dirs() -> list[Path]:
    """``/var/lib/e2e-harness/<node>``: each live or killed run's node dir (sockets, the kubelet's root), with
    its owner and node record, so that a run in any checkout finds the node parts of a killed run (whose
    state dir may be elsewhere)."""
    root = containerd.RUN_ROOT
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []


def _unescape(field_: str) -> str:
    return field_.encode().decode("unicode_escape")  # mountinfo escapes space, tab, newline, backslash as \\ooo


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` (deepest first), from this process's mount table."""
    root = str(path.resolve()) if path.exists() else str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == root or point.startswith(root.rstrip("/") + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: (len(p.parts), str(p)), reverse=True)


def unmount_under(path: Path) -> list[Path]:
    """Unmount everything at or below ``path``, deepest first (lazily when busy); the mount points."""
    done = []
    for _ in range(5):  # a bind mount may show again once the one above it is gone
        points = mounts_under(path)
        if not points:
            break
        for point in points:
            if run(["umount", point], timeout=30, check=False).returncode != 0:
                run(["umount", "-l", point], timeout=30, check=False, what=f"unmounting {point}")
            done.append(point)
    return done


def cgroup_dirs(name: str) -> list[Path]:
    """``<hierarchy>/<name>`` in every cgroup hierarchy mounted under /sys/fs/cgroup (v1 and the unified one)."""
    if not CGROUP_ROOT.is_dir():
        return []
    hierarchies = [CGROUP_ROOT] if (CGROUP_ROOT / "cgroup.controllers").exists() else sorted(
        p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())
    return [h / name for h in hierarchies if (h / name).is_dir()]


def _procs(directory: Path) -> set[int]:
    pids = set()
    for procs in directory.rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            pass
    return pids


def kill_cgroup_processes(name: str) -> set[int]:
    """SIGKILL every process in the run's cgroups (containers whose shims are gone), await their exit."""
    pids = set().union(*(_procs(d) for d in cgroup_dirs(name))) if cgroup_dirs(name) else set()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def empty() -> Observation:
        left = set().union(*(_procs(d) for d in cgroup_dirs(name))) if cgroup_dirs(name) else set()
        return Observation(not left, f"pids still in cgroup {name}: {sorted(left)[:10]}")

    poll_until(empty, what=f"the processes of cgroup {name} to exit after SIGKILL", timeout=PROCESS_EXIT_TIMEOUT,
               interval=0.1, where=f"{CGROUP_ROOT}/*/{name}")
    return pids


def remove_cgroups(name: str) -> list[Path]:
    """rmdir the run's cgroup trees in every hierarchy, children first; the top dirs removed."""
    removed = []
    for top in cgroup_dirs(name):
        for directory in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts),
                                reverse=True) + [top]:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", directory, exc)
        if not top.exists():
            removed.append(top)
    return removed


def remove_run_dir(run_dir: Path) -> None:
    """The node's run dir (sockets, the kubelet's root with the pods' secret volumes), once nothing is mounted
    below it, and the root of all run dirs when no other run uses it."""
    if mounts := mounts_under(run_dir):
        raise NodeCleanupError(f"cannot remove {run_dir}: still mounted below it: {', '.join(map(str, mounts[:5]))}")
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        run_dir.parent.rmdir()
    except OSError:
        pass  # another run's dir is in it


def remove_stale_socket(path: Path) -> bool:
    """Remove the unix socket ``path`` when nothing listens on it any more (another run's kubelet may)."""
    if not path.is_socket():
        return False
    if containerd.listening(path):
        return False
    path.unlink(missing_ok=True)
    return True


def container_log_links(state_dir: Path) -> list[Path]:
    """Symlinks the kubelet made in /var/log/containers that point into ``state_dir``."""
    links_dir = Path("/var/log/containers")
    found = []
    for link in links_dir.iterdir() if links_dir.is_dir() else []:
        try:
            if link.is_symlink() and os.readlink(link).startswith(str(state_dir)):
                found.append(link)
        except OSError:
            pass
    return found


def clean(record: NodeRecord, state_dir: Path) -> list[str]:
    """Remove every part of a stopped (or killed) run's node; what was removed, for the sweep's message.

    Order: containerd's shims, the containers' processes, mounts, the network namespace,
    cgroups, stale shim sockets, the kubelet's links and hard-coded dirs.
    """
    removed = []
    layout = ContainerdLayout(Path(record.containerd_base), record.cgroup_name)
    if killed := containerd.kill_shims(layout):
        removed.append(f"{len(killed)} containerd shim(s)")
    if pids := kill_cgroup_processes(record.cgroup_name):
        removed.append(f"{len(pids)} container process(es)")
    if points := unmount_under(layout.run_dir) + unmount_under(state_dir):
        removed.append(f"{len(points)} mount(s)")
    removed += node_network.delete(NodeNetwork(**record.network))
    if groups := remove_cgroups(record.cgroup_name):
        removed.append(f"cgroup {record.cgroup_name} in {len(groups)} hierarchies")
    if sockets := containerd.remove_stale_sockets():
        removed.append(f"{len(sockets)} stale shim socket(s)")
    remove_run_dir(layout.run_dir)
    remove_stale_socket(DEVICE_PLUGIN_SOCKET)
    for link in container_log_links(state_dir):
        link.unlink(missing_ok=True)
    for made in record.made_dirs:
        try:
            Path(made).rmdir()
        except OSError:
            pass  # not empty: something else uses it now
    return removed


def leftovers(record: NodeRecord, state_dir: Path) -> list[str]:
    """What of the run's node still exists (for the self-tests): processes, mounts, network, cgroups."""
    found = []
    layout = ContainerdLayout(Path(record.containerd_base), record.cgroup_name)
    if pids := containerd.shim_pids(layout):
        found.append(f"containerd shims {pids}")
    if layout.run_dir.exists():
        found.append(f"node dir {layout.run_dir}")
    if points := mounts_under(layout.run_dir) + mounts_under(state_dir):
        found.append(f"mounts {[str(p) for p in points[:5]]}")
    found += node_network.leftover(NodeNetwork(**record.network))
    if groups := cgroup_dirs(record.cgroup_name):
        found.append(f"cgroups {[str(g) for g in groups[:3]]}")
    if links := container_log_links(state_dir):
        found.append(f"container log links {[str(l) for l in links[:3]]}")
    return found


def sweep_dir(directory: Path) -> list[str]:
    """For abandoned.sweep: clean the node of a killed run (found by its state dir or its run dir) before
    the directory is removed; the state dir's mounts go first, wherever the record says it is."""
    record = NodeRecord.load(directory)
    if record is None:
        return []
    try:
        return clean(record, Path(record.state_dir or directory))
    except WaitTimeout as exc:
        return [f"not everything: {exc}"]
