"""The local backend's control plane is real Kubernetes: CRDs, namespaces, garbage collection."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest

from e2e_harness.kube import Kube
from e2e_harness.waiting import Observation, WaitTimeout, poll_until

from .. import interruptible
from .conftest import PROJECT_DIR, control_plane_binaries

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.e2e.example.org"},
    "spec": {"group": "e2e.example.org", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "required": ["size"],
                                        "properties": {"size": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}}}]},
}


def namespace(kube: Kube) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name)
    return name


def test_crd_is_established_and_validates(kube):
    from e2e_harness.crds import install_crds
    from kubernetes.dynamic.exceptions import DynamicApiError

    install_crds(kube, [CRD])
    ns = namespace(kube)
    kube.apply([{"apiVersion": "e2e.example.org/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
                 "spec": {"size": 3}}])
    assert kube.get("e2e.example.org/v1", "Widget", "w", ns)["spec"]["size"] == 3
    with pytest.raises(DynamicApiError) as err:  # validated by the API server's schema
        kube.dynamic.create(kube.resource("e2e.example.org/v1", "Widget"), namespace=ns,
                            body={"apiVersion": "e2e.example.org/v1", "kind": "Widget",
                                  "metadata": {"name": "bad"}, "spec": {"size": "three"}})
    assert err.value.status == 422 and "spec.size" in str(err.value.body)


def test_namespace_deletion_completes(kube):
    ns = namespace(kube)
    kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns},
                 "data": {"k": "v"}}])
    kube.delete_namespace(ns, timeout=60)
    assert kube.get("v1", "Namespace", ns) is None


def test_deleting_an_owner_garbage_collects_its_jobs(kube):
    ns = namespace(kube)
    owner = kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": ns}}])[0]
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "owned", "namespace": ns, "ownerReferences": [
               {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]},
           "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "image": "busybox", "command": ["true"]}]}}}}
    kube.apply([job])
    assert kube.get("batch/v1", "Job", "owned", ns) is not None
    kube.delete("v1", "ConfigMap", "owner", ns)
    kube.wait_deleted("batch/v1", "Job", "owned", namespace=ns, timeout=60,
                      what="the garbage collector to delete Job owned after its owner went")


def test_wait_timeout_names_what_and_the_last_state(kube):
    ns = namespace(kube)
    kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns},
                 "data": {"phase": "waiting"}}])
    with pytest.raises(WaitTimeout) as err:
        kube.wait_for("v1", "ConfigMap", "c", lambda o: (False, f"phase={o['data']['phase']}"), namespace=ns,
                      timeout=2, what="config map c to say done")
    assert "config map c to say done" in str(err.value) and "phase=waiting" in str(err.value)


def test_wait_sees_a_change_through_the_watch(kube):
    ns = namespace(kube)
    kube.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns},
                 "data": {"phase": "waiting"}}])
    import threading
    timer = threading.Timer(0.5, lambda: kube.apply([{"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "c", "namespace": ns},
                                                        "data": {"phase": "done"}}]))
    timer.start()
    obj = kube.wait_for("v1", "ConfigMap", "c", lambda o: (o["data"]["phase"] == "done", o["data"]["phase"]),
                        namespace=ns, timeout=30, what="config map c to say done")
    timer.join()
    assert obj["data"]["phase"] == "done"


INNER_TEST = """
import json, os, threading
from pathlib import Path

def test_hold(control_plane):
    pids = [p.popen.pid for p in control_plane.processes.processes]
    port = int(control_plane.apiserver_url.rsplit(":", 1)[1])
    Path(os.environ["MARKER"]).write_text(json.dumps({"pids": pids, "port": port}))
    threading.Event().wait(300)
"""


@pytest.mark.needs_go
def test_ctrl_c_leaves_no_process_and_no_port_behind(tmp_path):
    """SIGINT to a pytest that runs a control plane: every process and its port are gone afterwards."""
    control_plane_binaries()  # found or built here, not within the inner run's wait for its marker
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    (tmp_path / "conftest.py").write_text("from tests.integration.conftest import control_plane  # noqa\n")
    marker = tmp_path / "marker.json"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path),
                             "--rootdir", str(tmp_path)],
                            cwd=tmp_path, env={**os.environ, "MARKER": str(marker), "PYTHONPATH": str(PROJECT_DIR)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=interruptible)
    try:
        poll_until(lambda: Observation(marker.exists() or proc.poll() is not None,
                                       "marker absent" if proc.poll() is None else f"exited {proc.returncode}"),
                   what="the inner pytest to start its control plane", timeout=240, interval=0.5)
        assert marker.exists(), proc.communicate()[0][-3000:]
        started = json.loads(marker.read_text())
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in started["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with socket.socket() as s:  # the API server's port is free again
        s.bind(("127.0.0.1", started["port"]))
    assert "KeyboardInterrupt" in output or "Interrupted" in output, output[-2000:]
