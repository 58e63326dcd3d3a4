"""The template families: one entry per backup script, with its subject, seed, snapshot and change.

A procedure template's *family* is its backup script (``postgres.tmpl``). Every template of a
family gets the same subject with real data (``seed``), the same changes after the backup
(``change``), and the same proof of the restore: equal ``snapshot``s before the backup and
after the restore. ``plaintext`` is seeded text that must appear in the decrypted backup and
never in the uploaded bytes. A family whose script dumps a database names the subject kinds it
dumps (e2e_harness/subjects.py); which deployed subject a template gets follows its image.

A family's files (``withFiles`` of the gitea/passbolt/wordpress templates, the tar template's
path) live in claims that the definition's volumeMounts name; the case supplies the claims as
``HelmValues.extraVolumes``. The kubectl family's subject is Kubernetes objects in a namespace of
its own (e2e_harness/kube_objects.py), removed by its ``close`` when the case ends. Adding a family
(say MongoDB) is one ``Family`` in ``REGISTRY`` (and, for a database, its subject kind and manifest).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .file_trees import SEED_TEXT, FileTrees
from .kube_objects import KubectlSubject

if TYPE_CHECKING:
    from .templates import TemplateDefinition

# --- the seed data, once ---------------------------------------------------------------------
MOVIES = [("Modern Times", 1936, 8.5), ("Metropolis", 1927, 8.3)]
POSTGRES_SEED = ("CREATE TABLE movies (id serial PRIMARY KEY, title text NOT NULL, year int, rating numeric(3,1), "
                 "added timestamptz DEFAULT now())",
                 "INSERT INTO movies (title, year, rating) VALUES "
                 + ", ".join(f"('{title}', {year}, {rating})" for title, year, rating in MOVIES))
POSTGRES_CHANGE = ("UPDATE movies SET title = 'Some-wrong-title' WHERE id = 1",
                   "INSERT INTO movies (title, year) VALUES ('Added after the backup', 2024)")

MARIADB_SEED = ("CREATE TABLE records (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL, "
                "note TEXT, price DECIMAL(8,2), released DATE, updated DATETIME(3), "
                "kind ENUM('film','book','album'), payload BLOB, doc JSON)",
                "INSERT INTO records (title, note, price, released, updated, kind, payload, doc) VALUES "
                "('Modern Times', 'Zażółć gęślą jaźń', 12.50, '1936-02-05', '2024-01-02 03:04:05.678', 'film', "
                "UNHEX('00FF10'), '{\"stars\": 5}'), "
                "('Metropolis', NULL, 9.99, '1927-01-10', '2024-05-06 07:08:09.000', 'film', NULL, '[1, 2]'), "
                "('Dune', 'novel', 0.01, '1965-08-01', NULL, 'book', UNHEX(''), NULL)")
MARIADB_CHANGE = ("UPDATE records SET title = 'Some-wrong-title', price = 1.00 WHERE id = 1",
                  "DELETE FROM records WHERE id = 3",
                  "INSERT INTO records (title, kind) VALUES ('Added after the backup', 'album')")
SEEDED_TITLES = [title for title, _, _ in MOVIES]   # in both databases' seeds

TAR_MOUNT = {"name": "tar-data", "mountPath": "/mnt/data"}


class FamilyError(AssertionError):
    """A template no family of the harness can back up; says what to add."""


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
                raise FamilyError(f"template {definition.name}: file path {path} lies in none of its volumeMounts "
                                  f"{[m['mountPath'] for m in mounts]}")
            roots.append((mount["name"], posixpath.relpath(path, mount["mountPath"])))
        return cls(trees, roots)

    def _root(self, root: str) -> str:
        return "." if self.single_file else root

    def extra_volumes(self, mounts: list[dict]) -> list[dict]:
        return [self.trees.claim(m["name"]) for m in mounts]

    def seed(self) -> None:
        for claim, root in self.roots:
            self.trees.seed(claim, self._root(root))

    def snapshot(self) -> dict:
        out = {}
        for claim, root in self.roots:
            manifest = self.trees.manifest(claim, self._root(root))
            if self.single_file:
                manifest = {p: v for p, v in manifest.items() if p == f"./{self.single_file}"}
            out[f"{claim}:{root}"] = manifest
        return out

    def change(self) -> None:
        for claim, root in self.roots:
            self.trees.mutate(claim, self._root(root))


class DatabaseSubject:
    """A database (``seed_sql``, ``change_sql``) plus the definition's withFiles trees."""

    seed_sql: tuple[str, ...] = ()
    change_sql: tuple[str, ...] = ()

    def __init__(self, definition: TemplateDefinition, database, trees: FileTrees):
        self.definition, self.database = definition, database
        self.mounts = definition.volume_mounts()
        self.files = Files.of(trees, definition, list(definition.params.get("withFiles") or []), self.mounts)
        self.plaintext = list(SEEDED_TITLES) + ([SEED_TEXT] if self.files.roots else [])

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


class PostgresSubject(DatabaseSubject):
    """postgres.tmpl: the movies database."""

    seed_sql, change_sql = POSTGRES_SEED, POSTGRES_CHANGE


class MySQLSubject(DatabaseSubject):
    """mysql-dump.tmpl: a table with rows of several types.

    ``dumpOptions: --databases`` (a documented parameter of the template) puts CREATE DATABASE
    and USE into the dump; without it the release's restore cannot work (a known defect,
    shown by ``named_database_only``)."""

    seed_sql, change_sql = MARIADB_SEED, MARIADB_CHANGE

    def __init__(self, definition: TemplateDefinition, database, trees: FileTrees, named_database_only: bool = False):
        super().__init__(definition, database, trees)
        self.named_database_only = named_database_only

    def params(self) -> dict:
        params = self.database.template_params()
        if not self.named_database_only:
            params["dumpOptions"] = "--databases"
        return params


class TarSubject:
    """tar.tmpl: a directory tree in a claim (or one file of it), compared entry by entry."""

    plaintext = [SEED_TEXT]

    def __init__(self, definition: TemplateDefinition, database, trees: FileTrees, single_file: bool = False):
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


@dataclass(frozen=True)
class Family:
    name: str                           # what a scenario's template_family marker names
    script: str                         # the backup script in generate/templates/backup/
    subject_kinds: tuple[str, ...]      # the subject databases it dumps (e2e_harness/subjects.py), () for none
    make_subject: Callable | None       # (definition, database | None, trees, **options) -> seed/snapshot/change
    missing: str = ""                   # why the harness cannot back it up yet, when make_subject is None


REGISTRY = (
    Family("postgres", "postgres.tmpl", ("postgres",), PostgresSubject),
    Family("mysql", "mysql-dump.tmpl", ("mariadb", "mysql"), MySQLSubject),
    Family("tar", "tar.tmpl", (), TarSubject),
    Family("kubectl", "kubectl.tmpl", (), KubectlSubject),
)
BY_SCRIPT = {family.script: family for family in REGISTRY}


def of(definition: TemplateDefinition) -> Family:
    """The family of ``definition``, or FamilyError saying where to add one."""
    family = BY_SCRIPT.get(definition.backup_template)
    if family is None:
        raise FamilyError(f"template {definition.name} uses backup script {definition.backup_template!r}, which no "
                          "family of the harness knows: add its Family to REGISTRY in e2e_harness/families.py")
    return family


def name_of(backup_script: str) -> str:
    """postgres | mysql | tar | kubectl, or ``unknown:<script>`` for a script no family knows."""
    family = BY_SCRIPT.get(backup_script)
    return family.name if family else f"unknown:{backup_script}"
