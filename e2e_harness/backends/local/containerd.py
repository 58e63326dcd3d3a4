"""containerd for the real node: one instance per run, with its own root, state, socket and runc root.

Debian's containerd 1.6 with its CRI plugin. The settings that matter here (measured on these
machines): ``restrict_oom_score_adj`` (root here lacks CAP_SYS_RESOURCE, so runc cannot start a
sandbox that asks for a negative oom score), cgroupfs (no systemd), the pod network namespaces
under the run's state dir, the CNI config dir of the run, and registry hosts (``config_path``)
that send ``docker.io``, ``ghcr.io`` and ``registry.k8s.io`` to the run's registry, so that pod
specs keep the image names the release renders.

Whatever its config says, containerd 1.6 puts shim sockets in ``/run/containerd/s`` and fifos in
``/run/containerd/fifo``; shims outlive containerd. ``stop_tasks`` ends every task through
containerd (the shims then exit and remove their sockets), ``kill_shims`` ends the shims of a
containerd that is gone (a killed run), and ``remove_stale_sockets`` removes sockets nobody
listens on any more.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from ...commands import run

log = logging.getLogger("e2e_harness.local.containerd")

NAMESPACE = "k8s.io"               # the CRI plugin's containerd namespace
SHIM_DIR = Path("/run/containerd")  # fixed in containerd 1.6, whatever the config says
MIRRORED = ("docker.io", "ghcr.io", "registry.k8s.io")
DISABLED_PLUGINS = ("io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing")


# Each node's short directory: its sockets and the kubelet's root dir (which holds sockets of its own), since a
# unix socket path must stay under 104 bytes and a state dir in a deep checkout is longer than that.
RUN_ROOT = Path("/var/lib/e2e-harness")


@dataclass(frozen=True)
class ContainerdLayout:
    """Where one run's containerd keeps everything: under the run's state dir, but its sockets in the node's
    short run dir ``/var/lib/e2e-harness/<node name>`` (a state dir in a deep checkout is too long for them)."""

    base: Path
    name: str

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def hosts_dir(self) -> Path:
        return self.base / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.base / "cni" / "networks"


def write_config(layout: ContainerdLayout, *, sandbox_image: str, registry: str) -> None:
    """containerd's config.toml and a hosts.toml per mirrored registry (and for ``registry`` itself,
    plain http), all pointing at the run's registry ``host:port``."""
    for directory in (layout.root, layout.state, layout.runc_root, layout.cni_conf_dir, layout.cni_data_dir,
                      layout.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    disabled = ", ".join(f'"{p}"' for p in DISABLED_PLUGINS)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    layout.config.write_text(f"""version = 2
root = "{layout.root}"
state = "{layout.state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{layout.socket}"

[ttrpc]
  address = "{layout.run_dir / 'containerd.sock.ttrpc'}"

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  max_container_log_line_size = 65536

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{layout.runc_root}"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{layout.cni_conf_dir}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{layout.hosts_dir}"
""")
    # The run's registry is each mirrored host's *server*, not a mirror in front of it: containerd then
    # never falls back to the real host, so an image no recipe built fails to pull (ErrImagePull, naming
    # it) instead of reaching out of the machine.
    for host in (*MIRRORED, registry):
        directory = layout.hosts_dir / host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(
            f'server = "http://{registry}"\n\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n')


def ctr(layout: ContainerdLayout, *args: str, check: bool = False, timeout: float = 60):
    return run(["ctr", "--address", layout.socket, "--namespace", NAMESPACE, *args], timeout=timeout,
               check=check, what=f"ctr {' '.join(args)}")


def stop_tasks(layout: ContainerdLayout) -> None:
    """SIGKILL every task of the run's containerd and delete tasks and containers (its shims then exit)."""
    if not layout.socket.exists():
        return
    tasks = ctr(layout, "tasks", "list", "--quiet").stdout.split()
    for task in tasks:
        ctr(layout, "tasks", "kill", "--all", "--signal", "SIGKILL", task)
    for task in tasks:
        ctr(layout, "tasks", "delete", "--force", task)
    for container in ctr(layout, "containers", "list", "--quiet").stdout.split():
        ctr(layout, "containers", "delete", container)


def shim_pids(layout: ContainerdLayout) -> list[int]:
    """The shims started by the containerd of ``layout`` (their command line names its socket)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(layout.socket).encode() in argv:
            found.append(int(entry))
    return found


def kill_shims(layout: ContainerdLayout) -> list[int]:
    """SIGKILL the shims of ``layout``'s containerd; the pids killed."""
    killed = []
    for pid in shim_pids(layout):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def listening(path: Path) -> bool:
    """Whether some process accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError as exc:
            return exc.errno != errno.ECONNREFUSED and exc.errno != errno.ENOENT
    return True


def remove_stale_sockets() -> list[Path]:
    """Shim sockets in /run/containerd/s that no process listens on any more (left by killed shims).

    A socket some containerd still uses answers a connect; only refused ones are removed.
    Then the fixed directories containerd made, when empty.
    """
    removed = []
    sockets = SHIM_DIR / "s"
    for path in sorted(sockets.iterdir()) if sockets.is_dir() else []:
        if not listening(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    for directory in (sockets, SHIM_DIR / "fifo", SHIM_DIR / "runc", SHIM_DIR):
        try:
            directory.rmdir()
        except OSError:
            pass  # not empty (another containerd's), or not there
    return removed
