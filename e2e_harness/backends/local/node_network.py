"""The real node's network: a network namespace of the run's own, joined to the host by one veth pair.

containerd, the kubelet and kube-proxy run inside that namespace (``nsenter --net``, the mount
namespace stays the host's so that the kubelet's volume mounts are what runc sees). So every
iptables chain they write (kubelet's ``KUBE-FIREWALL``, kube-proxy's ``KUBE-SERVICES``, the CNI
plugins' ``CNI-*``), the CNI bridge, the pods' veths and the ``ip_forward`` the bridge plugin
switches on exist in that namespace only: two runs at once, or a run beside the user's own
cluster, never share a chain, and deleting the namespace removes all of it at once.

Addresses: a /30 of 10.250.0.0/16 per run, not overlapping any address on the host. A private
(RFC 1918) range on purpose: go-containerregistry, which ko (inside skaffold) pushes and pulls
with, speaks plain http only to localhost and RFC 1918 addresses (``name.Registry.Scheme``), and
the run's registry listens on ``host_ip``. Its host side (``host_ip``) is where the control plane, the
registry and the release's host processes listen for pods; the namespace side (``node_ip``) is the
Node's InternalIP (the kubelet's API). Pods reach the host through the namespace's default route
(masqueraded to ``node_ip`` by the bridge plugin); nothing is forwarded beyond the host, whose own
``ip_forward`` is never touched.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ...commands import CommandError, run

log = logging.getLogger("e2e_harness.local.node_network")

RANGE = ipaddress.ip_network("10.250.0.0/16")
POD_CIDR = "10.88.0.0/16"        # inside the run's namespace only: the same in every run
NETNS_DIR = Path("/run/netns")
PREFIX = "e2e"


class NodeNetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeNetwork:
    """Names and addresses of one run's node network (saved in its state dir, for the sweep)."""

    netns: str          # e2e-<8 hex>, also the CNI network's and the bridge's base name
    host_if: str        # e2eh<8 hex>: the veth's host end
    node_if: str        # e2en<8 hex>: the veth's namespace end
    host_ip: str
    node_ip: str
    pod_cidr: str = POD_CIDR

    @property
    def bridge(self) -> str:
        return self.netns.replace("-", "b")  # e2eb<8 hex>: 12 characters, under IFNAMSIZ

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    def inside(self) -> list[str]:
        """The prefix that runs a command in the namespace (network only; mounts stay the host's)."""
        return ["nsenter", f"--net={self.netns_path}", "--"]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "NodeNetwork":
        return cls(**json.loads(path.read_text()))


def plan(run_id: str) -> NodeNetwork:
    """Per-run names (from the run id) and a free /30 of RANGE (random, then checked against the host)."""
    tag = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    used = _host_networks()
    subnets = RANGE.num_addresses // 4
    for _ in range(64):
        net = ipaddress.ip_network((int(RANGE.network_address) + 4 * random.randrange(subnets), 30))
        if not any(net.overlaps(other) for other in used):
            host, node = list(net.hosts())
            return NodeNetwork(f"{PREFIX}-{tag}", f"{PREFIX}h{tag}", f"{PREFIX}n{tag}", str(host), str(node))
    raise NodeNetworkError(f"no free /30 in {RANGE} after 64 tries: the host's addresses cover it")


def _host_networks() -> list[ipaddress.IPv4Network]:
    out = run(["ip", "-j", "-4", "addr", "show"], timeout=30, what="listing the host's addresses").stdout
    return [ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
            for link in json.loads(out or "[]") for a in link.get("addr_info", [])]


def create(net: NodeNetwork) -> None:
    """The namespace, its loopback, the veth pair with both addresses, the namespace's default route."""
    if net.netns_path.exists():
        raise NodeNetworkError(f"network namespace {net.netns} exists already ({net.netns_path}): another run "
                               "with this run id, or one killed outright; the next run's sweep removes it")
    steps = [
        ["ip", "netns", "add", net.netns],
        ["ip", "link", "add", net.host_if, "type", "veth", "peer", "name", net.node_if, "netns", net.netns],
        ["ip", "addr", "add", f"{net.host_ip}/30", "dev", net.host_if],
        ["ip", "link", "set", net.host_if, "up"],
        [*net.inside(), "ip", "link", "set", "lo", "up"],
        [*net.inside(), "ip", "addr", "add", f"{net.node_ip}/30", "dev", net.node_if],
        [*net.inside(), "ip", "link", "set", net.node_if, "up"],
        [*net.inside(), "ip", "route", "add", "default", "via", net.host_ip],
    ]
    try:
        for step in steps:
            run(step, timeout=30, what=f"making the node network {net.netns}")
    except CommandError:
        delete(net)
        raise


def delete(net: NodeNetwork) -> list[str]:
    """Remove the namespace (and with it every chain, bridge and veth in it) and the host's veth end.

    Returns what was removed, for the sweep's message. Idempotent.
    """
    removed = []
    if net.netns_path.exists():
        run(["ip", "netns", "delete", net.netns], timeout=30, check=False, what=f"deleting netns {net.netns}")
        removed.append(f"network namespace {net.netns}")
    # The veth pair goes with the namespace; its host end too, unless something holds the namespace open.
    if run(["ip", "link", "show", net.host_if], timeout=30, check=False).returncode == 0:
        run(["ip", "link", "delete", net.host_if], timeout=30, check=False, what=f"deleting {net.host_if}")
        removed.append(f"interface {net.host_if}")
    return removed


def leftover(net: NodeNetwork) -> list[str]:
    """What of ``net`` still exists on the host (for the self-tests): namespace, host interface."""
    found = []
    if net.netns_path.exists():
        found.append(f"network namespace {net.netns}")
    if run(["ip", "link", "show", net.host_if], timeout=30, check=False).returncode == 0:
        found.append(f"interface {net.host_if}")
    return found
