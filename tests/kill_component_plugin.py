"""A pytest plugin for self-tests only: kill one of the local backend's components mid-scenario.

Loaded into a child e2e run with ``-p tests.kill_component_plugin`` and
``E2E_KILL_COMPONENT=<process name>`` (``backup-maker-controller``, ``server-postgres``...):
as soon as the scenario's first Job exists, that process is SIGKILLed, the way a crash
would end it. The parent test then checks how the scenario fails.
"""

import os
import signal
import threading

import pytest

from e2e_harness.waiting import Observation, poll_until


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    name = os.environ.get("E2E_KILL_COMPONENT")
    backend, namespace = item.funcargs.get("cluster"), item.funcargs.get("namespace")
    if name and backend is not None and namespace:
        def kill_when_a_job_exists() -> None:
            poll_until(lambda: Observation(bool(backend.kube.list("batch/v1", "Job", namespace)), "no Job yet"),
                       what=f"a Job in {namespace}", timeout=120, interval=0.2)
            process = next(p for p in backend.services.processes if p.name == name)
            process.popen.send_signal(signal.SIGKILL)

        threading.Thread(target=kill_when_a_job_exists, name="kill-component", daemon=True).start()
    return (yield)
