"""A MariaDB/MySQL database as the template scenarios see it: its address, and a checksum of its data.

Like ``postgres``: every backend gives the address twice (from the test process, from
pods), connections live in ``with`` blocks, and a restore is proven by comparing the
checksums of the ordered table contents before the backup and after the restore.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, replace

import pymysql


@dataclass(frozen=True)
class MariaDBAddress:
    host: str
    port: int
    user: str
    password: str
    dbname: str = ""

    @contextmanager
    def connect(self, dbname: str | None = None):
        conn = pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=(self.dbname if dbname is None else dbname) or None,
                               connect_timeout=10, autocommit=True, charset="utf8mb4")
        try:
            yield conn
        finally:
            conn.close()

    def for_database(self, dbname: str) -> "MariaDBAddress":
        return replace(self, dbname=dbname)

    def __repr__(self) -> str:  # never print the password
        return f"MariaDBAddress({self.user}@{self.host}:{self.port}/{self.dbname})"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_checksum(address: MariaDBAddress) -> dict[str, str]:
    """Per base table of the database: row count and sha256 of its rows ordered by every column."""
    result = {}
    with address.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_type = 'BASE TABLE' ORDER BY 1", (address.dbname,))
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM {_quoted(table)}")
            width = len(cur.description)
            rows = sorted(repr(row) for row in cur.fetchall())
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
            result[table] = f"{len(rows)} rows of {width} columns, sha256 {digest[:16]}"
    return result


@dataclass(frozen=True)
class SubjectMariaDB:
    """The database a mysql-family template backs up, reached from the tests and from pods."""

    from_tests: MariaDBAddress
    in_pods: MariaDBAddress

    @classmethod
    def create(cls, admin_from_tests: MariaDBAddress, admin_in_pods: MariaDBAddress, dbname: str) -> "SubjectMariaDB":
        with admin_from_tests.connect(dbname="") as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {_quoted(dbname)} CHARACTER SET utf8mb4")
        return cls(admin_from_tests.for_database(dbname), admin_in_pods.for_database(dbname))

    def execute(self, *statements: str) -> None:
        with self.from_tests.connect() as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def checksum(self) -> dict[str, str]:
        return table_checksum(self.from_tests)

    def drop(self) -> None:
        with self.from_tests.connect(dbname="") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {_quoted(self.from_tests.dbname)}")

    def template_params(self) -> dict:
        """``Params`` of mysql-dump.tmpl: how the Job's pod reaches this database."""
        a = self.in_pods
        return {"hostname": a.host, "port": a.port, "db": a.dbname, "user": a.user, "password": a.password}
