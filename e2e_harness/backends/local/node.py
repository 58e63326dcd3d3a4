"""A real Kubernetes node for the local backend: containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS,
local-path-provisioner.

Upstream parts only: the kubelet, kube-proxy and kube-scheduler of KUBERNETES_VERSION (built from
k8s.io/kubernetes like the control plane), Debian's containerd, runc and CNI plugins, Debian's
docker-registry (distribution) for the run's images, and as pods CoreDNS at COREDNS_VERSION and
rancher's local-path-provisioner at LOCAL_PATH_PROVISIONER_VERSION (the default StorageClass: k3s's).
Pods run in containers with only their image's filesystem.

Per run, so that two runs at once (or a run beside the user's own cluster) never collide: a
network namespace of its own (``node_network``) where containerd, the kubelet and kube-proxy run
(all their iptables chains, the CNI bridge and the pods' veths live and die there), containerd's
root, state and runc root under the run's state dir, its sockets and the kubelet's root dir in a short
``/var/lib/e2e-harness/<node>`` (unix socket paths are limited), a cgroup root ``/e2e-<8 hex>`` in
every hierarchy, free ports. The registry and the API server listen on the host end of the
namespace's veth, which pods reach through their default route.

Before it makes anything, the node writes ``node.json`` into the state dir (``node_cleanup``),
so that the next run can remove the parts of a run killed outright.
"""

from __future__ import annotations

import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from ... import abandoned, progress
from ...commands import run
from ...kube import Kube
from ...processes import ProcessGroup, free_port
from ...waiting import Observation, poll_until
from . import containerd, images, node_cleanup, node_network
from .containerd import ContainerdLayout
from .controlplane import CLUSTER_DNS_IP, ControlPlane, write_kubeconfig
from .node_cleanup import HARD_CODED_DIRS, NodeRecord
from .node_network import NodeNetwork
from .pki import issue

log = logging.getLogger("e2e_harness.local.node")

NODE_NAME = "e2e-local-node"
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "node"
COREDNS_MANIFEST = FIXTURES / "coredns.yaml"
STORAGE_MANIFEST = FIXTURES / "local-path-storage.yaml"
READY_TIMEOUT = 120
DEPLOYMENT_TIMEOUT = 120


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_proxy: Path
    kube_scheduler: Path


@dataclass(frozen=True)
class NodeImages:
    """The node's own images, by the names pod specs use (served by the run's registry)."""

    pause: str
    coredns: str
    local_path_provisioner: str


class RealNode:
    """One node of one run. ``prepare`` (before the control plane: it needs ``network.host_ip``),
    ``start``, then ``stop`` (idempotent; also after a failed start)."""

    def __init__(self, binaries: NodeBinaries, state_dir: Path, log_dir: Path, run_id: str):
        self.binaries = binaries
        self.state_dir = state_dir
        self.run_id = run_id
        self.network: NodeNetwork | None = None
        self.layout: ContainerdLayout | None = None
        self.kubelet_dir: Path | None = None
        self.tmp_dir = state_dir / "tmp"   # the node's TMPDIR (the kubelet leaves a probe dir in it)
        # Stopped in this order: the kubelet first (it would restart containers), containerd after its
        # tasks are ended through it, the registry last.
        self.agents = ProcessGroup(log_dir / "agents")
        self.runtime = ProcessGroup(log_dir / "runtime")
        self.registry_group = ProcessGroup(log_dir / "registry")
        self.registry = ""
        self.record: NodeRecord | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def prepare(self) -> NodeNetwork:
        """Plan and record the run's names, then make its network namespace."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.network = node_network.plan(self.run_id)
        self.layout = ContainerdLayout(self.state_dir / "containerd", self.network.netns)
        self.kubelet_dir = self.layout.run_dir / "kubelet"   # short: it holds the kubelet's own sockets
        self.record = NodeRecord(network=vars(self.network).copy(), containerd_base=str(self.layout.base),
                                 cgroup_name=self.network.netns,
                                 made_dirs=[str(d) for d in HARD_CODED_DIRS if not d.exists()],
                                 state_dir=str(self.state_dir))
        self.record.save(self.state_dir)
        # Also where every run looks, whatever its checkout: a killed run's node is swept by the next run.
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        self.record.save(self.layout.run_dir)
        abandoned.claim(self.layout.run_dir)
        self.tmp_dir.mkdir(exist_ok=True)
        node_network.create(self.network)
        return self.network

    def start_registry(self) -> str:
        """The run's image registry on the host end of the veth; its ``host:port``."""
        net = self.network
        port = free_port(net.host_ip)
        config = self.state_dir / "registry.yml"
        config.write_text(images.registry_config(self.state_dir / "registry", f"{net.host_ip}:{port}"))
        self.registry_group.start("registry", ["docker-registry", "serve", config], ports=(port,),
                                  address=net.host_ip, env=self._env)
        self.registry = f"{net.host_ip}:{port}"
        images.wait_for_registry(self.registry, timeout=READY_TIMEOUT, alive=self.registry_group.check_running)
        return self.registry

    def start(self, control_plane: ControlPlane, images: NodeImages) -> None:
        """containerd, the kubelet (until the Node is Ready), kube-proxy, the scheduler, then CoreDNS and the
        local-path provisioner (the default StorageClass, as k3s has it) until both are available."""
        with progress.step("starting the node (containerd, kubelet, kube-proxy, kube-scheduler)"):
            self._start_containerd(images.pause)
            self._start_kubelet(control_plane)
            self._start_kube_proxy(control_plane)
            self._start_scheduler(control_plane)
            kube = Kube(control_plane.kubeconfig)
            try:
                self._wait_node_ready(kube)
                with progress.step("starting CoreDNS and the local-path provisioner"):
                    self._apply(kube, COREDNS_MANIFEST, COREDNS_IMAGE=images.coredns, CLUSTER_DNS_IP=CLUSTER_DNS_IP)
                    self._apply(kube, STORAGE_MANIFEST, PROVISIONER_IMAGE=images.local_path_provisioner,
                                STORAGE_DIR=str(self.state_dir / "storage"))
                    self._wait_available(kube, "kube-system", "coredns")
                    self._wait_available(kube, "local-path-storage", "local-path-provisioner")
            finally:
                kube.close()

    def stop(self) -> None:
        """Everything of the node, in order; then ``node_cleanup.clean`` for what the parts leave."""
        try:
            self.agents.stop()
            if self.layout and self.layout.socket.exists() and any(p.running() for p in self.runtime.processes):
                containerd.stop_tasks(self.layout)
        finally:   # whatever failed above (a hung ctr), the rest is stopped and swept
            self.runtime.stop()
            self.registry_group.stop()
            if self.record is not None:
                node_cleanup.clean(self.record, self.state_dir)
                self.record = None

    def check_running(self) -> None:
        for group in (self.agents, self.runtime, self.registry_group):
            group.check_running()

    @property
    def processes(self) -> list:
        return [p for g in (self.agents, self.runtime, self.registry_group) for p in g.processes]

    @property
    def _env(self) -> dict[str, str]:
        return {"TMPDIR": str(self.tmp_dir)}

    # --- containerd ------------------------------------------------------------------------
    def _start_containerd(self, sandbox_image: str) -> None:
        net = self.network
        containerd.write_config(self.layout, sandbox_image=sandbox_image, registry=self.registry)
        (self.layout.cni_conf_dir / "10-e2e.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": net.netns,
            "plugins": [
                {"type": "bridge", "bridge": net.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.layout.cni_data_dir),
                          "ranges": [[{"subnet": net.pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}}]}))
        self.runtime.start("containerd", [*net.inside(), "containerd", "--config", self.layout.config],
                           env=self._env)

        def answers() -> Observation:
            self.runtime.check_running()
            result = containerd.ctr(self.layout, "version")
            return Observation(result.returncode == 0, (result.stdout + result.stderr).strip()[-200:])

        poll_until(answers, what=f"containerd to answer on {self.layout.socket}", timeout=READY_TIMEOUT,
                   interval=0.2, where=str(self.runtime.log_dir / "containerd.log"))

    # --- kubelet -----------------------------------------------------------------------------
    def _start_kubelet(self, control_plane: ControlPlane) -> None:
        net, pki_dir = self.network, control_plane.pki.ca_cert.parent
        client = issue(pki_dir, "kubelet-client", f"system:node:{NODE_NAME}", organization="system:nodes",
                       client=True)
        serving = issue(pki_dir, "kubelet-serving", f"system:node:{NODE_NAME}", server=True,
                        ips=(net.node_ip,), dns=(NODE_NAME,))
        kubeconfig = self.state_dir / "kubelet.kubeconfig"
        write_kubeconfig(kubeconfig, control_plane.apiserver_url, control_plane.pki.ca_cert, *client)
        for hierarchy in self._cgroup_hierarchies():
            (hierarchy / net.netns).mkdir(exist_ok=True)
        resolv = self.state_dir / "resolv.conf"   # pods with dnsPolicy Default: no host resolver, no queries out
        resolv.write_text("# the local backend's node: cluster DNS only\n")
        config = self.state_dir / "kubelet.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": net.node_ip, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(control_plane.pki.ca_cert)}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(serving[0]), "tlsPrivateKeyFile": str(serving[1]),
            "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{net.netns}", "failCgroupV1": False, "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.layout.socket}",
            "clusterDNS": [CLUSTER_DNS_IP], "clusterDomain": "cluster.local", "resolvConf": str(resolv),
            "podLogsDir": str(self.state_dir / "pod-logs"),
            "volumePluginDir": str(self.state_dir / "volume-plugins"),
            "enforceNodeAllocatable": [], "serializeImagePulls": False,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "shutdownGracePeriod": "0s", "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s", "fileCheckFrequency": "10s",
        }))
        self.agents.start("kubelet", [
            *net.inside(), self.binaries.kubelet, "--config", config, "--kubeconfig", kubeconfig,
            "--root-dir", self.kubelet_dir, "--cert-dir", self.state_dir / "kubelet-certs",
            "--hostname-override", NODE_NAME, "--node-ip", net.node_ip, "--v", "1"], env=self._env)

    @staticmethod
    def _cgroup_hierarchies() -> list[Path]:
        root = node_cleanup.CGROUP_ROOT
        if (root / "cgroup.controllers").exists():
            return [root]
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())

    def _wait_node_ready(self, kube: Kube) -> None:
        def ready(node: dict | None) -> tuple[bool, str]:
            self.check_running()
            if node is None:
                return False, "not registered yet"
            conditions = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
            ready_ = conditions.get("Ready", {})
            return ready_.get("status") == "True", f"Ready={ready_.get('status')} ({ready_.get('message', '')})"

        kube.wait_for("v1", "Node", NODE_NAME, ready, timeout=READY_TIMEOUT, what=f"Node {NODE_NAME} to be Ready",
                      where=str(self.agents.log_dir / "kubelet.log"))

    # --- kube-proxy, scheduler -------------------------------------------------------------
    def _start_kube_proxy(self, control_plane: ControlPlane) -> None:
        net, pki_dir = self.network, control_plane.pki.ca_cert.parent
        kubeconfig = self.state_dir / "kube-proxy.kubeconfig"
        write_kubeconfig(kubeconfig, control_plane.apiserver_url, control_plane.pki.ca_cert,
                         *issue(pki_dir, "kube-proxy", "system:kube-proxy", client=True))
        config = self.state_dir / "kube-proxy.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)}, "mode": "iptables",
            "hostnameOverride": NODE_NAME, "bindAddress": net.node_ip, "clusterCIDR": net.pod_cidr,
            "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
            "conntrack": {"maxPerCore": 0},
            # masqueradeAll: a pod reaching a Service backed by a pod on the same bridge gets its reply
            # through the node, whether or not bridged traffic passes iptables here.
            "iptables": {"masqueradeAll": True, "localhostNodePorts": False}}))
        self.agents.start("kube-proxy", [*net.inside(), self.binaries.kube_proxy, "--config", config], env=self._env)

    def _start_scheduler(self, control_plane: ControlPlane) -> None:
        pki_dir = control_plane.pki.ca_cert.parent
        kubeconfig = self.state_dir / "kube-scheduler.kubeconfig"
        write_kubeconfig(kubeconfig, control_plane.apiserver_url, control_plane.pki.ca_cert,
                         *issue(pki_dir, "kube-scheduler", "system:kube-scheduler", client=True))
        port = free_port()
        self.agents.start("kube-scheduler", [
            self.binaries.kube_scheduler, "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig, "--leader-elect=false",
            "--bind-address", "127.0.0.1", "--secure-port", str(port)], ports=(port,), env=self._env)

    # --- CoreDNS, storage ------------------------------------------------------------------------
    @staticmethod
    def _apply(kube: Kube, manifest: Path, **values: str) -> None:
        kube.apply(string.Template(manifest.read_text()).substitute(values))

    def _wait_available(self, kube: Kube, namespace: str, name: str) -> None:
        def available(deployment: dict | None) -> tuple[bool, str]:
            self.check_running()
            status = (deployment or {}).get("status") or {}
            return (status.get("availableReplicas") or 0) >= 1, f"status {status}"

        kube.wait_for("apps/v1", "Deployment", name, available, namespace=namespace, timeout=DEPLOYMENT_TIMEOUT,
                      what=f"Deployment {namespace}/{name} to be available",
                      where=f"kubectl --kubeconfig {kube.kubeconfig} -n {namespace} describe pods; "
                            f"{self.agents.log_dir / 'kubelet.log'}")

NODE_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "docker-registry")


def debian_versions(packages) -> dict[str, str]:
    """Debian's version of each package (the node's runtime parts), for the report."""
    versions = {}
    for package in packages:
        result = run(["dpkg-query", "-W", "-f", "${Version}", package], timeout=30, check=False)
        versions[package] = result.stdout.strip() if result.returncode == 0 else "not installed"
    return versions
