"""Which loopback ports are taken and by whom (the errors that name them, for a real etcd:
tests/integration/test_ports.py)."""

from __future__ import annotations

import os

from e2e_harness.ports import bindable, listening_ports
from e2e_harness.processes import free_port


def test_listening_ports_and_bindable(taken_port):
    assert not bindable(taken_port)
    assert listening_ports([os.getpid()]) == {taken_port: os.getpid()}
    assert bindable(free_port())
