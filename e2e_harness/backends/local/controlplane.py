"""etcd + kube-apiserver + kube-controller-manager as host processes.

Real admission (ServiceAccount included: the kubelet mounts projected tokens), CRD validation,
``Node,RBAC`` authorization with NodeRestriction, and the controller manager's default
controllers (Jobs, CronJobs, Deployments, EndpointSlices for Services, the garbage collector,
namespaces, PV binding, the ``kube-root-ca.crt`` publisher). etcd listens on loopback; the API
server on loopback and, when given one, on the address the real node reaches it at (``address``:
the host end of the node's veth), which it also advertises as the ``kubernetes`` Service's
endpoint. Every run gets a fresh data dir, PKI, ports and kubeconfig under its state directory;
nothing from an earlier run is reused.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
import yaml

from ...processes import ProcessGroup, free_port
from ...waiting import Observation, poll_until
from .pki import Pki, create_pki, issue

log = logging.getLogger("e2e_harness.local.controlplane")

# Every controller enabled by default, as in a real cluster; the node IPAM and cloud ones stay off.
CONTROLLERS = ("*",)
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"     # the first address of SERVICE_CIDR
CLUSTER_DNS_IP = "10.0.0.10"
READY_TIMEOUT = 120


@dataclass(frozen=True)
class ControlPlaneBinaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path


def write_kubeconfig(path: Path, server: str, ca_cert: Path, client_cert: Path, client_key: Path) -> None:
    """A kubeconfig (0600) with one cluster, one user (a client certificate) and one context."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e-local",
        "clusters": [{"name": "e2e-local", "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": "e2e-user", "user": {"client-certificate": str(client_cert),
                                                "client-key": str(client_key)}}],
        "contexts": [{"name": "e2e-local", "context": {"cluster": "e2e-local", "user": "e2e-user"}}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(config, out)


class ControlPlane:
    def __init__(self, binaries: ControlPlaneBinaries, state_dir: Path, log_dir: Path, address: str = "127.0.0.1"):
        self.binaries = binaries
        self.address = address
        self.state_dir = state_dir
        self.processes = ProcessGroup(log_dir)
        self.kubeconfig = state_dir / "kubeconfig"
        self.apiserver_url = ""
        self.pki: Pki | None = None

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pki = create_pki(self.state_dir / "pki", server_ips=(self.address, KUBERNETES_SERVICE_IP))
        try:
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_kubeconfig()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.processes.stop()

    # --- etcd --------------------------------------------------------------------------
    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        self.processes.start("etcd", [
            self.binaries.etcd, "--name", "e2e", "--data-dir", self.state_dir / "etcd",
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"e2e={peer_url}", "--listen-metrics-urls", "",
            "--unsafe-no-fsync", "--log-level", "warn"], ports=(client, peer))
        self._wait_healthy("etcd", f"{url}/health", lambda r: r.ok and r.json().get("health") == "true")
        return url

    # --- kube-apiserver ------------------------------------------------------------------
    def _start_apiserver(self, etcd_url: str) -> None:
        pki = self.pki
        port = free_port(self.address)
        self.apiserver_url = f"https://{self.address}:{port}"
        kubelet_client = issue(pki.ca_cert.parent, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                               organization="system:masters", client=True)
        self.processes.start("kube-apiserver", [
            self.binaries.kube_apiserver, "--etcd-servers", etcd_url,
            "--bind-address", self.address, "--secure-port", str(port), "--advertise-address", self.address,
            "--tls-cert-file", pki.server_cert, "--tls-private-key-file", pki.server_key,
            "--client-ca-file", pki.ca_cert,
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", pki.sa_public_key,
            "--service-account-signing-key-file", pki.sa_private_key,
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
            "--kubelet-client-certificate", kubelet_client[0], "--kubelet-client-key", kubelet_client[1],
            "--kubelet-certificate-authority", pki.ca_cert,
            "--kubelet-preferred-address-types", "InternalIP",
            # A loopback advertise address cannot back the kubernetes Service's endpoints (no node then).
            *(["--endpoint-reconciler-type", "none"] if self.address.startswith("127.") else []),
            "--cert-dir", self.state_dir / "apiserver-certs"], ports=(port,), address=self.address)
        self._wait_healthy("kube-apiserver", f"{self.apiserver_url}/readyz", lambda r: r.status_code == 200,
                           cert=(str(pki.admin_cert), str(pki.admin_key)), verify=str(pki.ca_cert))

    def _write_kubeconfig(self) -> None:
        write_kubeconfig(self.kubeconfig, self.apiserver_url, self.pki.ca_cert, self.pki.admin_cert,
                         self.pki.admin_key)

    # --- kube-controller-manager ---------------------------------------------------------
    def _start_controller_manager(self) -> None:
        port = free_port()
        self.processes.start("kube-controller-manager", [
            self.binaries.kube_controller_manager, "--kubeconfig", self.kubeconfig,
            "--controllers", ",".join(CONTROLLERS), "--leader-elect=false",
            "--use-service-account-credentials=false", "--root-ca-file", self.pki.ca_cert,
            "--service-account-private-key-file", self.pki.sa_private_key,
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--bind-address", "127.0.0.1", "--secure-port", str(port),
            "--cert-dir", self.state_dir / "kcm-certs"], ports=(port,))
        self._wait_healthy("kube-controller-manager", f"https://127.0.0.1:{port}/healthz",
                           lambda r: r.status_code == 200, verify=False)

    # --- readiness ------------------------------------------------------------------------
    def _wait_healthy(self, name: str, url: str, healthy, **request_args) -> None:
        def check() -> Observation:
            self.processes.check_running()  # a crashed process is an error now, not a timeout later
            try:
                with warnings.catch_warnings():  # kcm serves a self-signed cert on loopback
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                    response = requests.get(url, timeout=5, **request_args)
            except requests.RequestException as exc:
                return Observation(False, f"{type(exc).__name__}")
            return Observation(healthy(response), f"HTTP {response.status_code} {response.text[:200]!r}")

        log_path = self.processes.log_dir / f"{name}.log"
        poll_until(check, what=f"{name} to be healthy at {url}", timeout=READY_TIMEOUT, interval=0.2,
                   where=str(log_path))
