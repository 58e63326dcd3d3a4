"""The local backend as the plugin uses it: start, run a pod through the agent, stop cleanly."""

from __future__ import annotations

import os

import pytest

from e2e_harness.backends import Settings, backend_class
from e2e_harness.jobs import job_finished
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR, control_plane_binaries


def test_local_backend_runs_a_job_and_stops_without_leftovers(tmp_path):
    control_plane_binaries()  # skips naming the capability when the binaries cannot be had
    settings = Settings(release=load_release(PROJECT_DIR / "release.env", environ={}), project_dir=PROJECT_DIR,
                        build_dir=tmp_path / "build", artifacts_dir=tmp_path / "artifacts", run_id="t1")
    backend = backend_class("local")(settings)
    backend.start()
    try:
        pids = [p.popen.pid for p in backend.control_plane.processes.processes]
        kube = backend.kube
        kube.create_namespace("demo")
        kube.apply([{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello", "namespace": "demo"},
                     "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                         {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hello from $HOSTNAME"]}]}}}}])
        job = kube.wait_for("batch/v1", "Job", "hello", job_finished, namespace="demo", timeout=60,
                            what="Job hello to finish on the local backend")
        assert job["status"].get("succeeded") == 1, job["status"]
        pod = kube.list("v1", "Pod", "demo", label_selector="job-name=hello")[0]["metadata"]["name"]
        assert backend.pod_logs("demo", pod) == f"hello from {pod}\n"
    finally:
        backend.stop()
    # Logs are published (masked) into the artifacts at stop; the private state dir is gone.
    assert (settings.artifacts_dir / "control-plane" / "kube-apiserver.log").stat().st_size > 0
    assert not backend.state_dir.exists(), f"the run's state dir {backend.state_dir} was left behind"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
