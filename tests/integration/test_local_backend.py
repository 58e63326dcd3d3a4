"""The local backend as the plugin uses it: start the real node, run a Job, stop leaving nothing behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from e2e_harness.backends import Settings, backend_class
from e2e_harness.backends.local import node_cleanup
from e2e_harness.jobs import job_finished
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR, control_plane_binaries


def host_chains() -> set[str]:
    """Every iptables chain of the host's own network namespace (IPv4 and IPv6, all tables)."""
    chains = set()
    for tool in ("iptables-save", "ip6tables-save"):
        out = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        table = ""
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.add(f"{tool}:{table}:{line[1:].split()[0]}")
    return chains


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_local_backend_runs_a_job_and_stops_without_leftovers(tmp_path):
    control_plane_binaries()  # skips naming the capability when the binaries cannot be had
    settings = Settings(release=load_release(PROJECT_DIR / "release.env", environ={}), project_dir=PROJECT_DIR,
                        build_dir=tmp_path / "build", artifacts_dir=tmp_path / "artifacts", run_id="t1")
    chains_before, links_before, forward_before = host_chains(), host_links(), open("/proc/sys/net/ipv4/ip_forward").read()
    backend = backend_class("local")(settings)
    backend.preflight()
    try:
        backend.start()
        pids = [p.popen.pid for p in backend.control_plane.processes.processes + backend.node.processes]
        record = node_cleanup.NodeRecord.load(backend.state_dir)
        kube = backend.kube
        kube.create_namespace("demo")
        kube.apply([{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello", "namespace": "demo"},
                     "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                         {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hello from $HOSTNAME"]}]}}}}])
        job = kube.wait_for("batch/v1", "Job", "hello", job_finished, namespace="demo", timeout=120,
                            what="Job hello to finish on the local backend")
        assert job["status"].get("succeeded") == 1, job["status"]
        pod = kube.list("v1", "Pod", "demo", label_selector="job-name=hello")[0]["metadata"]["name"]
        assert backend.pod_logs("demo", pod) == f"hello from {pod}\n"
        # A pod left running: stop must end it too.
        kube.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "demo"},
                     "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}])
        kube.wait_for("v1", "Pod", "sleeper", lambda o: (((o or {}).get("status") or {}).get("phase") == "Running",
                                                         str((o or {}).get("status", {}).get("phase"))),
                      namespace="demo", timeout=120, what="pod sleeper to run")
        assert node_cleanup.cgroup_dirs(record.cgroup_name), "the node's pods run in the run's own cgroups"
    finally:
        backend.stop()
    # Logs are published (masked) into the artifacts at stop; the private state dir is gone.
    assert (settings.artifacts_dir / "control-plane" / "kube-apiserver.log").stat().st_size > 0
    assert (settings.artifacts_dir / "node" / "agents" / "kubelet.log").stat().st_size > 0
    assert not backend.state_dir.exists(), f"the run's state dir {backend.state_dir} was left behind"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert node_cleanup.leftovers(record, backend.state_dir) == []
    assert host_chains() == chains_before, "iptables chains of the run were left on the host"
    assert host_links() == links_before, "network interfaces of the run were left on the host"
    assert open("/proc/sys/net/ipv4/ip_forward").read() == forward_before
    assert not [d for d in record.made_dirs if os.path.exists(d)], "the kubelet's hard-coded dirs were left"
