"""PostgreSQL and Redis as host processes of the local backend, on free loopback ports.

Debian's packages provide the binaries (``postgresql-<major>``, ``redis-server``);
the local backend starts private instances with fresh data under the run's state
directory and stops them with the run, so nothing is shared with a system service
or with another run. PostgreSQL refuses to run as root: as root the instance runs
as the ``postgres`` system user (``setpriv``, no sudo) with its data in a
directory only that user owns.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from ... import abandoned
from ...commands import run
from ...masking import MASKER
from ...postgres import PostgresAddress, create_database
from ...processes import ProcessGroup, free_port
from ...waiting import Observation, poll_until

READY_TIMEOUT = 60
SYSTEM_USER = "postgres"  # created by Debian's postgresql-common


class DatabaseError(RuntimeError):
    """A database could not be found, started or prepared; the message says which and what to do."""


def postgres_bin_dir(major: str) -> Path:
    """Debian's layout: /usr/lib/postgresql/<major>/bin (server and client tools of that major)."""
    path = Path("/usr/lib/postgresql") / str(major) / "bin"
    for tool in ("initdb", "postgres", "pg_dump", "pg_restore", "psql"):
        if not (path / tool).is_file():
            raise DatabaseError(f"PostgreSQL {major}: {path / tool} not found; install Debian's "
                                f"postgresql-{major} (`make system-deps` does, as root), or set POSTGRES_VERSION "
                                "in release.env to the major you have")
    return path


def as_system_user(user: str, package: str, *owned: Path) -> list[str]:
    """The command prefix that runs a database server as Debian's system user for it, owning ``owned``.

    Only as root (PostgreSQL and MariaDB refuse to run as root; setpriv, no sudo); as any
    other user the server runs as that user and the prefix is empty."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise DatabaseError(f"running as root, the database must run as the {user!r} system user, which does not "
                            f"exist; install Debian's {package}") from None
    for path in owned:
        os.chown(path, account.pw_uid, account.pw_gid)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]


class PostgresServer:
    """One private PostgreSQL instance; ``superuser`` is the address of its ``postgres`` database."""

    def __init__(self, name: str, major: str, processes: ProcessGroup, state_dir: Path,
                 pod_network: str | None = None):
        self.name = name
        self.pod_network = pod_network   # "host_ip/30": pods reach the instance there too (the node's veth)
        self.bin_dir = postgres_bin_dir(major)
        self.processes = processes
        self.state_dir = state_dir
        self.port = 0
        self.superuser: PostgresAddress | None = None
        self._data_root: Path | None = None

    def start(self) -> PostgresAddress:
        if os.geteuid() == 0:
            # Under a temp dir: the project dir may sit in a home that the postgres user cannot enter.
            self._data_root = Path(tempfile.mkdtemp(prefix=f"e2e-{self.name}-"))
            abandoned.claim(self._data_root)   # outside the state dir: a later run removes it if this one is killed
        else:
            self._data_root = self.state_dir / self.name
            self._data_root.mkdir(parents=True)
        password = secrets.token_urlsafe(18)
        MASKER.add(password)
        data, pwfile = self._data_root / "data", self._data_root / "pw"
        pwfile.write_text(password)
        prefix = as_system_user(SYSTEM_USER, "postgresql", self._data_root, pwfile)
        run([*prefix, self.bin_dir / "initdb", "-D", data, "-U", "postgres", "--pwfile", pwfile,
             "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8",
             "--locale=C"], timeout=120, what=f"{self.name}: initdb")
        pwfile.unlink()
        listen = ["127.0.0.1"]
        if self.pod_network:
            listen.append(self.pod_network.split("/")[0])
            with open(data / "pg_hba.conf", "a") as hba:   # pods arrive masqueraded to the node's address
                hba.write(f"host all all {ipaddress.ip_network(self.pod_network, strict=False)} scram-sha-256\n")
        self.port = free_port()
        self.processes.start(self.name, [*prefix, self.bin_dir / "postgres", "-D", data, "-p", str(self.port),
                                         "-k", data, "-c", f"listen_addresses={','.join(listen)}", "-c", "fsync=off",
                                         "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                         "-c", "max_connections=200"], ports=(self.port,))
        self.superuser = PostgresAddress("127.0.0.1", self.port, "postgres", password, "postgres")
        self._wait_ready()
        return self.superuser

    def _wait_ready(self) -> None:
        def check() -> Observation:
            self.processes.check_running()
            try:
                with self.superuser.connect() as conn:
                    conn.execute("select 1")
            except psycopg.OperationalError as exc:
                return Observation(False, str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer")
            return Observation(True, "accepting connections")

        poll_until(check, what=f"{self.name} (PostgreSQL) on 127.0.0.1:{self.port} to accept connections",
                   timeout=READY_TIMEOUT, interval=0.2, where=str(self.processes.log_dir / f"{self.name}.log"))

    def create_owned_database(self, dbname: str, user: str) -> PostgresAddress:
        """A login role with a fresh password, and a database it owns (the server's metadata)."""
        password = secrets.token_urlsafe(18)
        MASKER.add(password)
        with self.superuser.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user),
                                                                            sql.Literal(password)))
        create_database(self.superuser, dbname, owner=user)
        return PostgresAddress(self.superuser.host, self.port, user, password, dbname)

    def cleanup(self) -> None:
        """Remove the data directory (after the process group has stopped)."""
        if self._data_root is not None and self._data_root.exists():
            shutil.rmtree(self._data_root, ignore_errors=False)
            self._data_root = None


class RedisServer:
    """A private Redis for the controller's locks: no persistence, loopback only."""

    def __init__(self, processes: ProcessGroup, state_dir: Path):
        self.processes = processes
        self.state_dir = state_dir
        self.port = 0

    def start(self) -> int:
        binary = shutil.which("redis-server")
        if binary is None:
            raise DatabaseError("redis-server not found on PATH; install Debian's redis-server "
                                "(`make system-deps` does, as root)")
        directory = self.state_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.processes.start("redis", [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", directory,
                                       "--daemonize", "no"], ports=(self.port,))
        poll_until(self._ping, what=f"redis on 127.0.0.1:{self.port} to answer PING", timeout=READY_TIMEOUT,
                   interval=0.1, where=str(self.processes.log_dir / "redis.log"))
        return self.port

    def _ping(self) -> Observation:
        self.processes.check_running()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall(b"PING\r\n")
                answer = conn.recv(64)
        except OSError as exc:
            return Observation(False, f"{type(exc).__name__}: {exc}")
        return Observation(answer.startswith(b"+PONG"), f"answered {answer!r}")
