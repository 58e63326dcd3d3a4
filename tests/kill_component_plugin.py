"""A pytest plugin for self-tests only: kill one of the deployed components mid-scenario (local backend).

Loaded into a child e2e run with ``-p tests.kill_component_plugin`` and
``E2E_KILL_COMPONENT=<deployment>`` (``backup-maker-controller``, ``postgres``...): as soon as
the scenario's first Job exists, the main process of that Deployment's container on the run's
node is SIGKILLed, the way a crash (or the OOM killer) would end it. The parent test then checks
how the scenario fails.
"""

import os
import signal
import threading
from pathlib import Path

import pytest

from e2e_harness.waiting import Observation, poll_until


def _container_pids(cgroup_name: str, pod_uid: str) -> list[int]:
    """Host pids of the pod's processes (the node's cgroups name the pod by its uid)."""
    needles = (f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}")   # cgroupfs keeps the dashes, systemd not
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cgroup = (entry / "cgroup").read_text()
            except OSError:
                continue
            if f"/{cgroup_name}/" in cgroup and any(needle in cgroup for needle in needles):
                pids.append(int(entry.name))
    return pids


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    name = os.environ.get("E2E_KILL_COMPONENT")
    backend, namespace = item.funcargs.get("cluster"), item.funcargs.get("namespace")
    if name and backend is not None and namespace:
        def kill_when_a_job_exists() -> None:
            poll_until(lambda: Observation(bool(backend.kube.list("batch/v1", "Job", namespace)), "no Job yet"),
                       what=f"a Job in {namespace}", timeout=120, interval=0.2)
            pods = [p for ns in backend.diagnostic_namespaces() for p in backend.kube.list("v1", "Pod", ns)
                    if p["metadata"]["name"].rsplit("-", 2)[0] == name]
            pids = _container_pids(backend.node.network.netns, pods[0]["metadata"]["uid"])
            # the container's main process: the one whose parent is not in the pod (its shim is not)
            main = [pid for pid in pids if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    not in pids and Path(f"/proc/{pid}/comm").read_text().strip() != "pause"]
            if not main:
                print(f"kill_component_plugin: no process of {name} found (pids {pids})", flush=True)
            for pid in main:
                os.kill(pid, signal.SIGKILL)

        threading.Thread(target=kill_when_a_job_exists, name="kill-component", daemon=True).start()
    return (yield)
