"""Benchmark of the local backend's cluster (not a test: prints figures, asserts nothing).

    .build/venv/bin/python -m tests.benchmarks.local_control_plane [--starts 3] [--jobs 5]

Measures: finding the pinned binaries (warm cache), control plane start (first and
following starts in one process; each start makes a fresh PKI, data dir and ports),
and the time from creating a trivial Job (`sh -c true`) to its Complete condition
with the node agent running it. The cold build time of the binaries is printed by
`make local-binaries` on an empty cache (`XDG_CACHE_HOME=$(mktemp -d)`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from e2e_harness.backends.local import NODE_NAME, binaries
from e2e_harness.backends.local.controlplane import ControlPlane, ControlPlaneBinaries
from e2e_harness.backends.local.node_agent import NodeAgent, Toolset
from e2e_harness.jobs import job_conditions, job_finished, job_outcome
from e2e_harness.kube import Kube
from e2e_harness.release import load_release
from tests import PROJECT_DIR


def job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", "true"]}]}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    release = load_release(PROJECT_DIR / "release.env")

    t = time.monotonic()
    kube_bins = binaries.kubernetes_binaries(release["KUBERNETES_VERSION"])
    bins = ControlPlaneBinaries(binaries.etcd_binary(release["ETCD_VERSION"]), kube_bins["kube-apiserver"],
                                kube_bins["kube-controller-manager"])
    print(f"find binaries (warm cache): {time.monotonic() - t:.2f}s")

    starts = []
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        for i in range(args.starts):
            plane = ControlPlane(bins, Path(tmp) / f"plane{i}", Path(tmp) / f"logs{i}")
            t = time.monotonic()
            plane.start()
            starts.append(time.monotonic() - t)
            if i < args.starts - 1:
                t = time.monotonic()
                plane.stop()
                print(f"control plane start #{i + 1}: {starts[-1]:.2f}s, stop: {time.monotonic() - t:.2f}s")
        print(f"control plane start #{args.starts}: {starts[-1]:.2f}s")
        kube = Kube(plane.kubeconfig)
        agent = NodeAgent(kube, NODE_NAME, Path(tmp) / "pods", {"busybox": Toolset("host-shell")},
                          namespace_selector=lambda ns: True)
        agent.register_node()
        agent.start()
        try:
            kube.create_namespace("bench")
            durations = []
            for i in range(args.jobs):
                t = time.monotonic()
                kube.apply([job(f"trivial-{i}")], namespace="bench")
                obj = kube.wait_for("batch/v1", "Job", f"trivial-{i}", job_finished, namespace="bench",
                                    timeout=120, what=f"Job trivial-{i} to finish")
                durations.append(time.monotonic() - t)
                if job_outcome(obj) != "Complete":
                    raise SystemExit(f"Job trivial-{i} did not complete: {job_conditions(obj)}; pod logs under "
                                     f"{agent.log_dir()}")
            print(f"trivial Job created -> Complete over {args.jobs} Jobs: median {statistics.median(durations):.2f}s, "
                  f"min {min(durations):.2f}s, max {max(durations):.2f}s")
        finally:
            agent.stop()
            kube.close()
            t = time.monotonic()
            plane.stop()
            print(f"control plane stop: {time.monotonic() - t:.2f}s")
    print(f"control plane start: first {starts[0]:.2f}s, median of all {statistics.median(starts):.2f}s")


if __name__ == "__main__":
    main()
