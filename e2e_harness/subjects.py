"""The subject databases the deploy runs as pods, and which template images each can serve.

A *kind* of subject (PostgreSQL, MariaDB, ...) is one entry of ``KINDS``: how to reach it
(port, throwaway credentials, address class), how a scenario gets a fresh database in it,
and the pattern that reads the version a template's image needs (``pgbr:<tag>-pg13`` needs
PostgreSQL 13). The *instances* are whatever ``fixtures/deploy`` deploys: every Deployment
labelled ``e2e-harness.riotkit.org/subject-kind: <kind>``, its image tag being the version it
runs and its name the Service in namespace ``db``. So a subject of another version is one more
Deployment in a manifest, and a new kind is one entry here plus its manifest.

The rule is the same on every backend: a template needs a subject of its own database and
version (pg_dump refuses a server of a newer major, mysqldump 8.0 a MariaDB server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import yaml

from .mariadb import MariaDBAddress, SubjectMariaDB
from .postgres import PostgresAddress, SubjectDatabase

DEPLOY_DIR = Path("fixtures") / "deploy"
NAMESPACE = "db"
KIND_LABEL = "e2e-harness.riotkit.org/subject-kind"


@dataclass(frozen=True)
class SubjectKind:
    name: str                      # the label's value: postgres, mariadb, mysql
    title: str                     # for messages: PostgreSQL
    port: int
    credentials: tuple[str, ...]   # the manifest's throwaway admin account: address arguments after host, port
    address: Callable              # (host, port, *credentials) -> an address with connect() and for_database()
    database: Callable             # .create(admin_from_tests, admin_in_pods, dbname) -> a fresh database
    image_version: re.Pattern      # a template image -> group 1: the version of this kind it needs


KINDS = {kind.name: kind for kind in (
    SubjectKind("postgres", "PostgreSQL", 5432, ("subject_owner", "harness-db-password", "postgres"),
                PostgresAddress, SubjectDatabase, re.compile(r"(?:^|/)pgbr:.*-pg(\d+)$")),
    SubjectKind("mariadb", "MariaDB", 3306, ("root", "harness-mariadb-password"),
                MariaDBAddress, SubjectMariaDB, re.compile(r"(?:^|/)mariadb:(\d+\.\d+)")),
    SubjectKind("mysql", "MySQL", 3306, ("root", "harness-mysql-password"),
                MariaDBAddress, SubjectMariaDB, re.compile(r"(?:^|/)mysql:(\d+\.\d+)")),
)}


@dataclass(frozen=True)
class Subject:
    """One subject Deployment of ``fixtures/deploy``: its Service is ``<name>.db``."""

    name: str
    kind: SubjectKind
    version: str
    manifest: str   # fixtures/deploy/<file>, for messages

    def in_pods(self):
        return self.kind.address(f"{self.name}.{NAMESPACE}.svc.cluster.local", self.kind.port, *self.kind.credentials)

    def from_tests(self, local_port: int):
        return self.kind.address("127.0.0.1", local_port, *self.kind.credentials)


def deployed(project_dir: Path) -> list[Subject]:
    """Every labelled subject Deployment of ``fixtures/deploy``, in file order."""
    found = []
    for path in sorted((Path(project_dir) / DEPLOY_DIR).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kind_name = ((doc or {}).get("metadata", {}).get("labels") or {}).get(KIND_LABEL)
            if not kind_name or doc.get("kind") != "Deployment":
                continue
            if kind_name not in KINDS:
                raise ValueError(f"{path}: Deployment {doc['metadata']['name']} has {KIND_LABEL}: {kind_name}, "
                                 f"which is none of {', '.join(KINDS)} (e2e_harness/subjects.py, KINDS)")
            image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
            found.append(Subject(doc["metadata"]["name"], KINDS[kind_name], image.rpartition(":")[2],
                                 str(path.relative_to(project_dir))))
    return found


def needed(image: str, kinds: Iterable[str] = KINDS) -> tuple[SubjectKind, str] | None:
    """The kind and version of subject a template of ``image`` dumps, or None (it needs no database)."""
    for name in kinds:
        if m := KINDS[name].image_version.search(image):
            return KINDS[name], m.group(1)
    return None


def serving(image: str, subjects: Iterable[Subject]) -> Subject | None:
    """The deployed subject a template of ``image`` backs up, if one matches its database and version."""
    need = needed(image)
    if need is None:
        return None
    return next((s for s in subjects if s.kind == need[0] and s.version == need[1]), None)


def unserved_reason(image: str, subjects: Iterable[Subject]) -> str | None:
    """Why no deployed subject can serve a template of ``image`` (the same on every backend), or None."""
    subjects = list(subjects)
    need = needed(image)
    if need is None or serving(image, subjects):
        return None
    kind, version = need
    have = ", ".join(f"{s.kind.title} {s.version} ({s.manifest})" for s in subjects) or "none"
    return (f"image {image} dumps {kind.title} {version}; no subject Deployment of {DEPLOY_DIR} runs it "
            f"(labelled {KIND_LABEL}: {kind.name}; deployed: {have}), and a dump tool refuses a server of "
            "another database or major")
