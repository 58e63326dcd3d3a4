"""A private MariaDB server for the mysql-family templates on the local backend.

Debian's ``mariadb-server`` provides ``mariadb-install-db`` and ``mariadbd``; the
instance gets fresh data in a temp dir, a free loopback port and one account with a
generated password, and stops with the run. As root it runs as Debian's ``mysql``
system user (``setpriv``, no sudo), like PostgreSQL runs as ``postgres``.

``debian_mariadb_version`` is what decides whether the ``mariadb:<major>`` images of
the templates are hostable here: only the major that Debian installed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

import pymysql

from ... import abandoned
from ...commands import CommandError, run
from ...mariadb import MariaDBAddress
from ...masking import MASKER
from ...processes import ProcessGroup, free_port
from ...waiting import Observation, poll_until
from .databases import as_system_user

READY_TIMEOUT = 60
SYSTEM_USER = "mysql"  # created by Debian's mariadb-server
ACCOUNT = "harness"


class MariaDBError(RuntimeError):
    """MariaDB could not be found or started; says what to do."""


def debian_mariadb_version() -> str | None:
    """``10.11`` for Debian's mariadbd 10.11.x, or None when mariadb-server is not installed."""
    binary = shutil.which("mariadbd", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if binary is None or shutil.which("mariadb-install-db") is None:
        return None
    try:
        out = run([binary, "--version"], timeout=30, what="mariadbd --version").stdout
    except CommandError:
        return None
    match = re.search(r"Ver (\d+\.\d+)\.\d+-MariaDB", out)
    return match.group(1) if match else None


class MariaDBServer:
    """One private instance; ``admin`` is the address of its all-privileges account."""

    def __init__(self, processes: ProcessGroup, name: str = "subject-mariadb", pod_address: str | None = None):
        self.processes = processes
        self.pod_address = pod_address   # pods reach the instance there too (the host end of the node's veth)
        self.name = name
        self.port = 0
        self.admin: MariaDBAddress | None = None
        self._data_root: Path | None = None

    def start(self) -> MariaDBAddress:
        mariadbd = shutil.which("mariadbd", path=os.environ.get("PATH", "") + ":/usr/sbin")
        install_db = shutil.which("mariadb-install-db")
        if mariadbd is None or install_db is None:
            raise MariaDBError("mariadbd/mariadb-install-db not found; install Debian's mariadb-server "
                               "(`make system-deps` does, as root)")
        self._data_root = Path(tempfile.mkdtemp(prefix=f"e2e-{self.name}-"))
        abandoned.claim(self._data_root)   # a later run removes it if this one is killed
        prefix = as_system_user(SYSTEM_USER, "mariadb-server", self._data_root)
        data = self._data_root / "data"
        run([*prefix, install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
             "--skip-test-db"], timeout=120, what=f"{self.name}: mariadb-install-db")
        self.port = free_port()
        self.processes.start(self.name, [*prefix, mariadbd, "--no-defaults", f"--datadir={data}",
                                         f"--port={self.port}",
                                         f"--bind-address={','.join(['127.0.0.1'] + ([self.pod_address] if self.pod_address else []))}",
                                         f"--socket={self._data_root / 'mysqld.sock'}",
                                         f"--pid-file={self._data_root / 'mysqld.pid'}", "--skip-log-bin",
                                         "--skip-name-resolve", "--innodb-buffer-pool-size=32M",
                                         "--innodb-flush-log-at-trx-commit=0"], ports=(self.port,))
        # install-db leaves root@127.0.0.1 without a password; it only serves to make the account, then
        # loses its access to TCP so nothing but the generated password reaches the instance.
        root = MariaDBAddress("127.0.0.1", self.port, "root", "")
        self._wait_ready(root)
        password = secrets.token_urlsafe(18)
        MASKER.add(password)
        with root.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{ACCOUNT}'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{ACCOUNT}'@'%' WITH GRANT OPTION")
            cur.execute("DROP USER 'root'@'127.0.0.1', 'root'@'::1'")
        self.admin = MariaDBAddress("127.0.0.1", self.port, ACCOUNT, password)
        return self.admin

    def _wait_ready(self, address: MariaDBAddress) -> None:
        def check() -> Observation:
            self.processes.check_running()
            try:
                with address.connect() as conn, conn.cursor() as cur:
                    cur.execute("SELECT 1")
            except pymysql.MySQLError as exc:
                return Observation(False, f"{type(exc).__name__}: {exc}")
            return Observation(True, "accepting connections")

        poll_until(check, what=f"{self.name} (MariaDB) on 127.0.0.1:{self.port} to accept connections",
                   timeout=READY_TIMEOUT, interval=0.2, where=str(self.processes.log_dir / f"{self.name}.log"))

    def cleanup(self) -> None:
        """Remove the data directory (after the process group has stopped)."""
        if self._data_root is not None and self._data_root.exists():
            shutil.rmtree(self._data_root)
            self._data_root = None
