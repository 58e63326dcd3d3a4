"""The procedure templates a release ships, read from the pinned backup-maker's source.

backup-maker keeps one JSON definition per template in
``generate/templates/definition/<name>.json``: its default image, its backup and restore
script templates, and defaults for the script's ``Params`` and the Job's ``HelmValues``.
The template matrix is exactly that directory, so a release that adds, removes or
changes a template changes the matrix. (The controller renders ``kind: internal``
templates from the backup-maker module in its own go.mod; the release pins
BACKUP_MAKER_VERSION to that same revision.)

A template's *family* is its backup script (``postgres.tmpl`` -> ``postgres``): the
templates of a family share one subject (the data backed up) and one check of the restore.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DEFINITIONS_DIR = Path("generate") / "templates" / "definition"


class TemplateDefinitionError(ValueError):
    """A definition file is not what backup-maker's generator reads; names the file and the key."""


@dataclass(frozen=True)
class TemplateDefinition:
    name: str                 # the file's stem: what a ScheduledBackup puts in templateRef.name
    image: str                # defaultImage
    backup_template: str      # backupTemplate, a file in generate/templates/backup/
    restore_template: str     # restoreTemplate, a file in generate/templates/restore/
    params: dict = field(default_factory=dict, compare=False)        # defaults.params
    helm_values: dict = field(default_factory=dict, compare=False)   # defaults.helmValues
    path: Path | None = field(default=None, compare=False)

    @property
    def family(self) -> str:
        """postgres | mysql | tar | kubectl, or ``unknown:<script>`` for a script no family knows
        (e2e_harness/families.py)."""
        from .families import name_of   # families names definitions in its annotations only

        return name_of(self.backup_template)

    def volume_mounts(self) -> list[dict]:
        """The extra volumeMounts the definition adds to the Job (its claims must be supplied)."""
        return list(self.helm_values.get("extraVolumeMounts") or [])


def definitions_dir(backup_maker_source: Path) -> Path:
    return Path(backup_maker_source) / DEFINITIONS_DIR


def load_definitions(backup_maker_source: Path) -> list[TemplateDefinition]:
    """Every definition of this backup-maker source, sorted by name."""
    directory = definitions_dir(backup_maker_source)
    if not directory.is_dir():
        raise TemplateDefinitionError(f"{directory}: no template definitions in the backup-maker source "
                                      f"{backup_maker_source} (expected {DEFINITIONS_DIR}/*.json)")
    return [load_definition(path) for path in sorted(directory.glob("*.json"))]


def load_definition(path: Path) -> TemplateDefinition:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TemplateDefinitionError(f"{path}: not a readable JSON template definition: {exc}") from None
    if not isinstance(doc, dict):
        raise TemplateDefinitionError(f"{path}: expected a JSON object, found {type(doc).__name__}")
    missing = [key for key in ("defaultImage", "backupTemplate", "restoreTemplate") if not doc.get(key)]
    if missing:
        raise TemplateDefinitionError(f"{path}: missing or empty key(s) {', '.join(missing)}")
    defaults = doc.get("defaults") or {}
    return TemplateDefinition(path.stem, doc["defaultImage"], doc["backupTemplate"], doc["restoreTemplate"],
                              dict(defaults.get("params") or {}), dict(defaults.get("helmValues") or {}), path)


def script_line(backup_maker_source: Path, kind: str, script: str, needle: str) -> str:
    """``generate/templates/<kind>/<script>:<line>`` of the first line containing ``needle``.

    e2e_harness/known-defects.yaml cites template lines by number; a self-test resolves them
    against the pinned source, so a citation that drifts from the file fails there."""
    path = Path(backup_maker_source) / "generate" / "templates" / kind / script
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return f"generate/templates/{kind}/{script}:{number}"
    return f"generate/templates/{kind}/{script} (no line contains {needle!r})"
