"""A port the harness needs that is taken: the error names the service, the port, who holds it, what to do.

The harness picks free loopback ports and hands them to its services. A test occupies a
port and makes the harness pick it (the free-port picker is patched), for a real service it
starts on the host: etcd (the Go control plane; the databases run as pods). Two cases each: the port is taken
before the service starts (caught by the check right before it), and the port is taken
after that check (the race is lost; the service exits and its log says so).
"""

from __future__ import annotations

import os

import pytest

from e2e_harness import processes
from e2e_harness.backends.local import controlplane
from e2e_harness.ports import PortInUse
from e2e_harness.processes import ProcessGroup, free_port

from .conftest import control_plane_binaries

SERVICES = ("etcd",)


def _start(service: str, tmp_path, monkeypatch, port: int):
    """Start ``service`` the way the local backend does, with the free-port picker answering ``port`` first."""
    picks = iter([port])
    picker = lambda address="127.0.0.1": next(picks, None) or free_port(address)  # noqa: E731 - the rest (etcd's peer port) really free
    group = ProcessGroup(tmp_path / "logs")
    try:
        if service == "etcd":
            monkeypatch.setattr(controlplane, "free_port", picker)
            controlplane.ControlPlane(control_plane_binaries(), tmp_path, tmp_path / "logs").start()
    finally:
        group.stop()
    return group


@pytest.mark.parametrize("service", SERVICES)
def test_a_port_taken_before_the_service_starts_is_named_and_nothing_starts(service, taken_port, tmp_path,
                                                                          monkeypatch):
    with pytest.raises(PortInUse) as error:
        _start(service, tmp_path, monkeypatch, taken_port)
    message = str(error.value)
    assert message.startswith(f"{service}: port 127.0.0.1:{taken_port}, which the harness picked for it as free, "
                              f"is already in use (held by pid {os.getpid()} ("), message
    assert f"so {service} was not started. Run again (every run picks new free ports); if it happens again, " \
           f"see what holds the port: ss -ltnp 'sport = :{taken_port}'" in message, message
    assert not (tmp_path / "logs" / f"{service}.log").exists(), f"{service} was started although its port is taken"


@pytest.mark.parametrize("service", SERVICES)
def test_a_port_taken_after_the_check_is_recognised_in_the_service_log(service, taken_port, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(processes, "ensure_free", lambda name, ports, address="127.0.0.1": None)  # the race is lost after the check
    with pytest.raises(PortInUse) as error:
        _start(service, tmp_path, monkeypatch, taken_port)
    message = str(error.value)
    assert message.startswith(f"{service} exited with "), message
    assert f": it could not listen on 127.0.0.1:{taken_port}" in message, message
    assert "already in use" in message.split("its log says: ", 1)[1], message
    assert f"another process took the port (held by pid {os.getpid()} (" in message, message
    assert f"between the harness picking it and {service} binding it. Run again" in message, message
    assert f"Log: {tmp_path / 'logs' / f'{service}.log'}" in message, message
    assert "timed out" not in message
