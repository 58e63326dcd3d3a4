"""Benchmark of the local backend's real node (not a test: prints figures, asserts nothing).

    .build/venv/bin/python -m tests.benchmarks.local_node [--starts 3] [--runs 5] [--cold-images]

Measures, on this machine, as a run starts its cluster (``LocalBackend.start``: the control plane,
the registry, the node's images published, containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS):
the start until CoreDNS answers (first and following starts in one process), pod created -> Running
and a trivial Job (``sh -c true``) created -> Complete (medians of ``--runs``), the stop; and each
image recipe's build, warm (from the cache) and, with ``--cold-images``, cold (into an empty cache).
The cold build of the Kubernetes binaries is printed by ``make local-binaries`` on an empty cache
(``XDG_CACHE_HOME=$(mktemp -d)``). Needs root, like the local backend.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from e2e_harness.backends import Settings, backend_class
from e2e_harness.jobs import job_conditions, job_finished, job_outcome
from e2e_harness.release import load_release
from tests import PROJECT_DIR


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "600"]}]}}


def job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", "true"]}]}}}}


def running(obj: dict | None) -> tuple[bool, str]:
    phase = ((obj or {}).get("status") or {}).get("phase")
    return phase == "Running", str(phase)


def summary(label: str, values: list[float]) -> str:
    return (f"{label}: median {statistics.median(values):.2f}s, min {min(values):.2f}s, max {max(values):.2f}s "
            f"(n={len(values)})")


def measure_cluster(release, starts: int, runs: int, tmp: Path) -> None:
    start_times = []
    for i in range(starts):
        settings = Settings(release=release, project_dir=PROJECT_DIR, build_dir=tmp / f"build{i}",
                            artifacts_dir=tmp / f"artifacts{i}", run_id=f"bench-{uuid.uuid4().hex[:8]}")
        backend = backend_class("local")(settings)
        backend.preflight()
        t = time.monotonic()
        backend.start()
        start_times.append(time.monotonic() - t)
        print(f"cluster start #{i + 1} (control plane, images published, node, CoreDNS available): "
              f"{start_times[-1]:.2f}s")
        try:
            if i == starts - 1:
                kube = backend.kube
                kube.create_namespace("bench")
                pods, jobs = [], []
                for n in range(runs):
                    t = time.monotonic()
                    kube.apply([pod(f"p{n}")], namespace="bench")
                    kube.wait_for("v1", "Pod", f"p{n}", running, namespace="bench", timeout=120,
                                  what=f"pod p{n} to run")
                    pods.append(time.monotonic() - t)
                for n in range(runs):
                    t = time.monotonic()
                    kube.apply([job(f"trivial-{n}")], namespace="bench")
                    obj = kube.wait_for("batch/v1", "Job", f"trivial-{n}", job_finished, namespace="bench",
                                        timeout=120, what=f"Job trivial-{n} to finish")
                    jobs.append(time.monotonic() - t)
                    if job_outcome(obj) != "Complete":
                        raise SystemExit(f"Job trivial-{n} did not complete: {job_conditions(obj)}")
                print(summary("pod created -> Running", pods))
                print(summary("trivial Job created -> Complete", jobs))
        finally:
            t = time.monotonic()
            backend.stop()
            print(f"cluster stop #{i + 1} (pods running): {time.monotonic() - t:.2f}s")
    print(summary("cluster start", start_times) + f"; first {start_times[0]:.2f}s")


def measure_images(cold: bool, tmp: Path) -> None:
    from e2e_harness.backends.local import binaries, image_recipes
    from e2e_harness.backends.local.images import build

    release = load_release(PROJECT_DIR / "release.env")
    coredns = binaries.coredns_binary(release["COREDNS_VERSION"])
    recipes = [image_recipes.pause(), image_recipes.busybox(), image_recipes.coredns(coredns, release["COREDNS_VERSION"]),
               image_recipes.debian("bookworm")]
    for recipe in recipes:
        if cold:
            t = time.monotonic()
            build(recipe, cache_dir=tmp / "cold-images")
            print(f"image {recipe.refs[0]}: cold build {time.monotonic() - t:.2f}s")
        t = time.monotonic()
        built = build(recipe)
        print(f"image {recipe.refs[0]}: warm {time.monotonic() - t:.2f}s ({built.layout_dir})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-images", action="store_true", help="also build each image into an empty cache")
    args = parser.parse_args()
    release = load_release(PROJECT_DIR / "release.env")
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        measure_images(args.cold_images, Path(tmp))
        measure_cluster(release, args.starts, args.runs, Path(tmp))


if __name__ == "__main__":
    main()
