"""Loopback ports of the local backend's services, and a clear error when one is taken.

The harness asks the OS for a free port (``processes.free_port``) and hands it to a
service, which binds it a moment later. In between, another process may take it (another
run, a test server, anything on the machine). Two checks make that a clear error that
names the service, the port, who holds it (when this user may see that) and what to do,
instead of a readiness timeout or a bare exit code:

* ``ensure_free`` right before a service starts: the port must still be bindable;
* ``in_use_message`` when a service has exited: its log says "address already in use"
  (Go's ``bind: address already in use``, PostgreSQL's and Redis's ``Address already in
  use``), so it lost the race after the check.

``listening_ports`` (which loopback ports a set of processes listens on) serves the
interrupt self-test and the owner lookup.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from pathlib import Path
from typing import Iterable

ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
LISTEN = "0A"  # TCP state in /proc/net/tcp


class PortInUse(RuntimeError):
    """A port the harness chose for a service is held by another process."""


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` can be bound now (SO_REUSEADDR, as servers do: TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _advice(port: int) -> str:
    return (f"Run again (every run picks new free ports); if it happens again, see what holds the port: "
            f"ss -ltnp 'sport = :{port}'")


def ensure_free(service: str, ports: Iterable[int], address: str = "127.0.0.1") -> None:
    """Raise PortInUse naming ``service`` when one of its ``ports`` cannot be bound on ``address``."""
    for port in ports:
        if not bindable(port, address):
            raise PortInUse(f"{service}: port {address}:{port}, which the harness picked for it as free, is "
                            f"already in use{_holder(port)}, so {service} was not started. {_advice(port)}")


def in_use_message(service: str, returncode: int | None, ports: Iterable[int], log_text: str,
                   log_path: Path, address: str = "127.0.0.1") -> str | None:
    """The message for a service that exited because its port was taken, or None for any other exit."""
    ports = list(ports)
    if not ports or not ADDRESS_IN_USE.search(log_text):
        return None
    where = ", ".join(f"{address}:{p}" for p in ports)
    line = next(l for l in log_text.splitlines() if ADDRESS_IN_USE.search(l)).strip()
    holders = "".join(_holder(p) for p in ports)
    return (f"{service} exited with {returncode}: it could not listen on {where} (its log says: {line!r}); "
            f"another process took the port{holders} between the harness picking it and {service} binding it. "
            f"{_advice(ports[0])}. Log: {log_path}")


def _holder(port: int) -> str:
    owners = [f"pid {pid} ({_comm(pid)})" for pid in listeners(port)]
    return f" (held by {', '.join(owners)})" if owners else ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _listening_inodes() -> dict[int, int]:
    """{socket inode: port} of every TCP socket listening on this network namespace (IPv4 and IPv6)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN:
                found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listening_ports(pids: Iterable[int]) -> dict[int, int]:
    """{port: pid} of the TCP ports that the processes ``pids`` listen on (those this user may inspect)."""
    listening = _listening_inodes()
    return {listening[inode]: pid for pid in pids for inode in _socket_inodes(pid) if inode in listening}


def listeners(port: int) -> list[int]:
    """The pids listening on TCP ``port`` (those this user may inspect)."""
    inodes = {inode for inode, p in _listening_inodes().items() if p == port}
    if not inodes:
        return []
    pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    return sorted(pid for pid in pids if _socket_inodes(pid) & inodes)
