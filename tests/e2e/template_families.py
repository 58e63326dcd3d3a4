"""The subject and the restore check of each template family, written once per family.

A family is a template's backup script (see e2e_harness/templates.py): every template of
the family gets the same subject with real data, the same changes after the backup, and
the same proof of the restore (equal snapshots). A family's files (``withFiles`` of the
gitea/passbolt/wordpress templates, the tar template's path) live in claims that the
definition's volumeMounts name; the case supplies the claims as ``HelmValues.extraVolumes``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from e2e_harness.file_trees import FileTrees
from e2e_harness.mariadb import SubjectMariaDB
from e2e_harness.postgres import SubjectDatabase
from e2e_harness.templates import TemplateDefinition

from .conftest import CHANGES, MOVIES

TAR_MOUNT = {"name": "tar-data", "mountPath": "/mnt/data"}

MARIADB_TABLE = ("CREATE TABLE records (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL, "
                 "note TEXT, price DECIMAL(8,2), released DATE, updated DATETIME(3), "
                 "kind ENUM('film','book','album'), payload BLOB, doc JSON)")
MARIADB_ROWS = ("INSERT INTO records (title, note, price, released, updated, kind, payload, doc) VALUES "
                "('Modern Times', 'Zażółć gęślą jaźń', 12.50, '1936-02-05', '2024-01-02 03:04:05.678', 'film', "
                "UNHEX('00FF10'), '{\"stars\": 5}'), "
                "('Metropolis', NULL, 9.99, '1927-01-10', '2024-05-06 07:08:09.000', 'film', NULL, '[1, 2]'), "
                "('Dune', 'novel', 0.01, '1965-08-01', NULL, 'book', UNHEX(''), NULL)")
MARIADB_CHANGES = ("UPDATE records SET title = 'Some-wrong-title', price = 1.00 WHERE id = 1",
                   "DELETE FROM records WHERE id = 3",
                   "INSERT INTO records (title, kind) VALUES ('Added after the backup', 'album')")


@dataclass
class Files:
    """The definition's ``withFiles`` (or the tar path) as (claim, path inside the claim) trees."""

    trees: FileTrees
    roots: list[tuple[str, str]] = field(default_factory=list)
    single_file: str = ""   # a path inside the tree's claim: only that file is compared

    @classmethod
    def of(cls, trees: FileTrees, definition: TemplateDefinition, paths: list[str], mounts: list[dict]) -> "Files":
        roots = []
        for path in paths:
            mount = max((m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")),
                        key=lambda m: len(m["mountPath"]), default=None)
            if mount is None:
                raise AssertionError(f"template {definition.name}: file path {path} lies in none of its volumeMounts "
                                     f"{[m['mountPath'] for m in mounts]}")
            roots.append((mount["name"], posixpath.relpath(path, mount["mountPath"])))
        return cls(trees, roots)

    def extra_volumes(self, mounts: list[dict]) -> list[dict]:
        return [self.trees.claim(m["name"]) for m in mounts]

    def seed(self) -> None:
        for claim, root in self.roots:
            self.trees.seed(claim, root if not self.single_file else ".")

    def snapshot(self) -> dict:
        out = {}
        for claim, root in self.roots:
            manifest = self.trees.manifest(claim, root if not self.single_file else ".")
            if self.single_file:
                manifest = {p: v for p, v in manifest.items() if p == f"./{self.single_file}"}
            out[f"{claim}:{root}"] = manifest
        return out

    def change(self) -> None:
        for claim, root in self.roots:
            self.trees.mutate(claim, root if not self.single_file else ".")


class DatabaseFamily:
    """A database subject (``seed_sql``, ``change_sql``) plus the definition's withFiles trees."""

    plaintext = ["Modern Times", "Metropolis"]
    seed_sql: tuple[str, ...] = ()
    change_sql: tuple[str, ...] = ()

    def __init__(self, definition: TemplateDefinition, database, trees: FileTrees):
        self.definition, self.database = definition, database
        self.mounts = definition.volume_mounts()
        self.files = Files.of(trees, definition, list(definition.params.get("withFiles") or []), self.mounts)

    def params(self) -> dict:
        return self.database.template_params()

    def helm_values(self) -> dict:
        return {"extraVolumes": self.files.extra_volumes(self.mounts)} if self.mounts else {}

    def seed(self) -> None:
        self.database.execute(*self.seed_sql)
        self.files.seed()

    def snapshot(self) -> dict:
        return {"database": self.database.checksum(), "files": self.files.snapshot()}

    def change(self) -> None:
        self.database.execute(*self.change_sql)
        self.files.change()


class PostgresFamily(DatabaseFamily):
    """postgres.tmpl: the movies database of the scenario suite."""

    seed_sql, change_sql = MOVIES, CHANGES

    def __init__(self, definition: TemplateDefinition, database: SubjectDatabase, trees: FileTrees):
        super().__init__(definition, database, trees)


class MariaDBFamily(DatabaseFamily):
    """mysql-dump.tmpl: a table with rows of several types.

    ``dumpOptions: --databases`` (a documented parameter of the template) puts CREATE DATABASE
    and USE into the dump; without it the release's restore cannot work (a known defect,
    shown by ``named_database_only``)."""

    seed_sql, change_sql = (MARIADB_TABLE, MARIADB_ROWS), MARIADB_CHANGES

    def __init__(self, definition: TemplateDefinition, database: SubjectMariaDB, trees: FileTrees,
                 named_database_only: bool = False):
        super().__init__(definition, database, trees)
        self.named_database_only = named_database_only

    def params(self) -> dict:
        params = self.database.template_params()
        if not self.named_database_only:
            params["dumpOptions"] = "--databases"
        return params


class TarFamily:
    """tar.tmpl: a directory tree in a claim (or one file of it), compared entry by entry."""

    plaintext = ["release harness file tree"]

    def __init__(self, definition: TemplateDefinition, trees: FileTrees, single_file: bool = False):
        self.definition = definition
        self.files = Files(trees, [(TAR_MOUNT["name"], ".")], "readme.txt" if single_file else "")

    def params(self) -> dict:
        path = TAR_MOUNT["mountPath"]
        return {"path": f"{path}/{self.files.single_file}" if self.files.single_file else path}

    def helm_values(self) -> dict:
        return {"extraVolumes": [self.files.trees.claim(TAR_MOUNT["name"])], "extraVolumeMounts": [TAR_MOUNT]}

    def seed(self) -> None:
        self.files.seed()

    def snapshot(self) -> dict:
        return {"files": self.files.snapshot()}

    def change(self) -> None:
        self.files.change()
