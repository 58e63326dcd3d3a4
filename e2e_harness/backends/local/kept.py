"""A local cluster kept running after its run (``--keep-cluster``), for the next run to reuse.

The developer loop: run once with ``--keep-cluster``, change a checkout symlinked into
``.build/``, run again. The first run leaves its control plane, node and registry running
(their process groups detached from the harness, ``ProcessGroup.detach``) and writes this
record beside its state directory; the owner files come off, so no later run's sweep takes
the cluster for a killed run's. The next run attaches when every group is alive and the API
server answers, deploys through skaffold again (its cache rebuilds only what changed), and,
unless it keeps the cluster too, tears it down at its end. A record whose cluster died is
torn down and replaced by a fresh cluster, saying why.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ... import abandoned
from ...commands import CommandError
from ...kube import Kube
from ...processes import group_alive, stop_detached
from .containerd import ContainerdLayout, stop_tasks
from .node_cleanup import NodeRecord, clean, mounts_under


@dataclass(frozen=True)
class KeptCluster:
    name: str
    run_id: str                      # the run that started it
    state_dir: str
    kubeconfig: str
    registry: str
    groups: list[tuple[str, int]]    # (what, process group id), in the order they are stopped

    @staticmethod
    def path(build_dir: Path, name: str) -> Path:
        return build_dir / "local" / f"kept-{name}.json"

    @classmethod
    def load(cls, build_dir: Path, name: str) -> "KeptCluster | None":
        try:
            data = json.loads(cls.path(build_dir, name).read_text())
            return cls(**{**data, "groups": [tuple(g) for g in data["groups"]]})
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save(self, build_dir: Path) -> None:
        self.path(build_dir, self.name).write_text(json.dumps(asdict(self), indent=1))

    @property
    def node_record(self) -> NodeRecord | None:
        return NodeRecord.load(Path(self.state_dir))

    def problem(self) -> str | None:
        """Why this cluster cannot be reused (a dead group, an API server that does not answer), or None."""
        for what, pgid in self.groups:
            if not group_alive(pgid):
                return f"its {what} (process group {pgid}) is no longer running"
        kube = Kube(Path(self.kubeconfig))
        try:
            kube.server_version()
        except Exception as exc:  # noqa: BLE001 - any failure to answer means: not reusable
            return f"its API server does not answer ({type(exc).__name__}: {exc})"
        finally:
            kube.close()
        return None

    def claim(self, pid: int | None = None) -> None:
        """This run (process ``pid``, default this one) owns the cluster now and will tear it down: a kill of
        that process leaves it to the sweep."""
        record = self.node_record
        abandoned.claim(Path(self.state_dir), pid)
        if record is not None:
            abandoned.claim(ContainerdLayout(Path(record.containerd_base), record.cgroup_name).run_dir, pid)

    def renamed(self, build_dir: Path, name: str) -> "KeptCluster":
        """The same cluster under another record name (the old record removed)."""
        moved = replace(self, name=name)
        moved.save(build_dir)
        self.path(build_dir, self.name).unlink(missing_ok=True)
        return moved

    def stop_groups(self) -> None:
        """Stop every group, the kubelet's first and the control plane last; the node's containers end
        through containerd before containerd itself."""
        record = self.node_record
        for what, pgid in self.groups:
            if what == "containerd" and record is not None:
                try:
                    stop_tasks(ContainerdLayout(Path(record.containerd_base), record.cgroup_name))
                except CommandError:
                    pass   # node_cleanup.clean kills what is left by cgroup
            stop_detached(pgid, what)

    def teardown(self, build_dir: Path) -> list[str]:
        """Remove the whole cluster: its processes, the node's parts, its state directory and this record."""
        self.stop_groups()
        removed = []
        state_dir = Path(self.state_dir)
        if (record := self.node_record) is not None:
            removed = clean(record, state_dir)
        if state_dir.exists() and not mounts_under(state_dir):
            shutil.rmtree(state_dir)
        self.path(build_dir, self.name).unlink(missing_ok=True)
        return removed


def release_ownership(state_dir: Path, record: NodeRecord | None) -> None:
    """No owner files: the sweep never touches a kept cluster's directories."""
    (state_dir / abandoned.OWNER_FILE).unlink(missing_ok=True)
    if record is not None:
        run_dir = ContainerdLayout(Path(record.containerd_base), record.cgroup_name).run_dir
        (run_dir / abandoned.OWNER_FILE).unlink(missing_ok=True)
