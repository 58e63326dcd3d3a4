"""A PostgreSQL database as the scenarios see it: its address, and a checksum of its data.

The address is given twice by every backend: as the test process reaches it and as
a pod reaches it (loopback on the local backend, in-cluster DNS on k3d). Connections
are always opened in a ``with`` block, so none is leaked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class PostgresAddress:
    """Host, port, credentials and database name; ``for_database`` derives a sibling address."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    def connect(self, dbname: str | None = None, **kwargs) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=dbname or self.dbname, connect_timeout=10, **kwargs)

    def for_database(self, dbname: str) -> "PostgresAddress":
        return replace(self, dbname=dbname)

    def __repr__(self) -> str:  # never print the password
        return f"PostgresAddress({self.user}@{self.host}:{self.port}/{self.dbname})"


def create_database(admin: PostgresAddress, dbname: str, owner: str | None = None) -> PostgresAddress:
    with admin.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname),
                                                                   sql.Identifier(owner or admin.user)))
    return admin.for_database(dbname)


def drop_database(admin: PostgresAddress, dbname: str) -> None:
    """Drop it even while sessions are connected (a restore may have left one): its sessions are ended first,
    as ``DROP DATABASE ... WITH (FORCE)`` does on PostgreSQL 13+ (12 has no FORCE); none can start between,
    as only the harness connects to a scenario's database."""
    with admin.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                     "pg_backend_pid()", (dbname,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))


# The database pgbr's restore connects through (br-pgbr cmd/db/restore.go, createTechnicalDatabase).
PGBR_CONNECTION_DATABASE = "br_empty_conn_db"


def ensure_pgbr_connection_database(admin: PostgresAddress) -> None:
    """Create pgbr's connection database on a subject server once, before any restore.

    pgbr 1.0.0-rc1 checks whether it exists and then creates it, not atomically: two restores starting at
    once on a server that has none both create it and one fails ("Cannot create database that would be used
    technically as connection database: ... duplicate key value violates unique constraint
    pg_database_datname_index"), seen with the pg12, gitea-pg12 and passbolt-pg12 cases running together.
    Scenarios run concurrently by the harness's choice, so the harness makes the server as a second
    restore finds it; pgbr itself is not changed."""
    with admin.connect(autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PGBR_CONNECTION_DATABASE)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass   # made by another scenario, or by a restore


def table_checksum(address: PostgresAddress) -> dict[str, str]:
    """Per user table: sha256 of its rows in a total order (every column, as text).

    Two databases have equal data exactly when these dictionaries are equal, whatever
    the physical row order, so a restore is proven by comparing them.
    """
    result = {}
    with address.connect() as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN "
                              "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            name = sql.Identifier(schema, table)
            rows = conn.execute(sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(name)).fetchall()
            digest = hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()
            result[f"{schema}.{table}"] = f"{len(rows)} rows, sha256 {digest[:16]}"
    return result


@dataclass(frozen=True)
class SubjectDatabase:
    """The database a scenario backs up: one name, reached from the tests and from pods.

    Its name has no ``-``: pgbr's restore recreates it through a helper database
    (br-pgbr cmd/db/restore.go:146, ``br_empty_conn_db``) and fails on such names.
    """

    from_tests: PostgresAddress
    in_pods: PostgresAddress

    @classmethod
    def create(cls, admin_from_tests: PostgresAddress, admin_in_pods: PostgresAddress, dbname: str) -> "SubjectDatabase":
        ensure_pgbr_connection_database(admin_from_tests)
        create_database(admin_from_tests, dbname)
        return cls(admin_from_tests.for_database(dbname), admin_in_pods.for_database(dbname))

    def execute(self, *statements: str) -> None:
        with self.from_tests.connect() as conn:
            for statement in statements:
                conn.execute(statement)

    def checksum(self) -> dict[str, str]:
        return table_checksum(self.from_tests)

    def recreate_empty(self) -> None:
        """Drop and create it again, empty (a restore into a fresh database)."""
        admin = self.from_tests.for_database("postgres")
        drop_database(admin, self.from_tests.dbname)
        create_database(admin, self.from_tests.dbname)

    def drop(self) -> None:
        drop_database(self.from_tests.for_database("postgres"), self.from_tests.dbname)

    def template_params(self) -> dict:
        """``Params`` of the pg templates: how the Job's pod reaches this database."""
        a = self.in_pods
        return {"hostname": a.host, "port": a.port, "db": a.dbname, "user": a.user, "password": a.password}
