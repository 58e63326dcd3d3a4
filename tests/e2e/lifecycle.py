"""The backup lifecycle, written once: seed → snapshot → backup → verify → change → restore → verify.

A ``BackupCase`` is one ScheduledBackup of one family subject (e2e_harness/families.py) into one
collection, with the scenario's keys. ``round_trip`` runs the whole lifecycle; scenarios that
test one part (rotation, refusals, a restore into a recreated database) call the phases they
need. Each phase is a progress line (``<template>: backup ...``) and names itself in a failure
(``[phase verify the backup] ...``). The checks are tests/e2e/verdicts.py's.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from e2e_harness import families, progress, subjects
from e2e_harness.backups import ActionResult, Backups, GpgKeys, PodsRefused, make_gpg_keys
from e2e_harness.known_defects import raise_if_hit, template_defects
from e2e_harness.server_api import BackupServer
from e2e_harness.templates import TemplateDefinition

from . import verdicts

CLUSTER_TEMPLATE = Path(__file__).resolve().parents[2] / "fixtures" / "templates" / "postgres-cluster-template.yaml"


@dataclass
class BackupCase:
    """One ScheduledBackup of one family subject into one collection, with the scenario's keys."""

    definition: TemplateDefinition
    subject: object                 # the family's subject: seed(), snapshot(), change(), plaintext
    backups: Backups
    server: BackupServer
    collection: str
    admin_token: str
    keys: GpgKeys | None            # None: the controller makes them (createIfNotExists)
    defects: list = field(default_factory=list)   # known defects of this template and scenario
    name: str = "subject"
    results: list[ActionResult] = field(default_factory=list)

    def run(self, action: str) -> ActionResult:
        """Run ``action``; a failed Job whose log shows a known defect of this case raises KnownDefectHit (so do
        refused pods whose reason does)."""
        with self._refusals():
            result = self.backups.run(action, self.name)
        self.results.append(result)
        if result.job_outcome == "Failed":
            raise_if_hit(self.defects, result.logs, self.backups.occurrences)
        return result

    def backup(self) -> ActionResult:
        return self.run("backup")

    def restore(self) -> ActionResult:
        return self.run("restore")

    def run_scheduled(self) -> ActionResult:
        """A Job of the ScheduledBackup's CronJob, as its schedule makes it (known defects as in ``run``)."""
        with self._refusals():
            result = self.backups.run_scheduled(self.name)
        self.results.append(result)
        if result.job_outcome == "Failed":
            raise_if_hit(self.defects, result.logs, self.backups.occurrences)
        return result

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        """A Job whose pods the API refuses: KnownDefectHit when the reason is a known defect's symptom."""
        try:
            yield
        except PodsRefused as exc:
            raise_if_hit(self.defects, str(exc), self.backups.occurrences)
            raise

    def versions(self) -> list[dict]:
        return self.server.client.versions(self.admin_token, self.collection)

    def decryption_keys(self) -> GpgKeys:
        return self.keys or verdicts.controller_keys(self.backups.kube, self.backups.namespace)


@contextmanager
def phase(case: BackupCase, name: str) -> Iterator[None]:
    """A named phase of ``case``: a progress step, and its name in front of a failure's message."""
    with progress.step(f"{case.definition.name}: {name}"):
        try:
            yield
        except AssertionError as exc:   # KnownDefectHit too: its type must stay (an xfail expects it)
            exc.args = (f"[phase {name}] {exc.args[0] if exc.args else ''}", *exc.args[1:])
            raise


def seed(case: BackupCase) -> None:
    with phase(case, "seed"):
        case.subject.seed()


def snapshot(case: BackupCase) -> dict:
    with phase(case, "snapshot"):
        return case.subject.snapshot()


def backup(case: BackupCase, *, scheduled: bool = False) -> dict:
    """A backup and its verdict: the Job, the action, exactly one new version, its encrypted bytes.
    ``scheduled``: the backup is a Job of the ScheduledBackup's CronJob (no action reports it)."""
    with phase(case, "backup" if not scheduled else "backup by the CronJob"):
        before = case.versions()
        result = case.run_scheduled() if scheduled else case.backup()
    with phase(case, "verify the backup"):
        if scheduled:
            verdicts.assert_job_succeeded(result)
        else:
            verdicts.assert_action_succeeded(result)
        version = verdicts.assert_new_version(before, case.versions(), case.collection)
        data = case.server.client.download(case.admin_token, case.collection, version["versionNumber"])
        verdicts.assert_encrypted_backup_of(data, case.decryption_keys(), case.subject.plaintext,
                                            f"version {version['versionNumber']} of {case.definition.name}")
    return version


def change(case: BackupCase, before: dict) -> None:
    with phase(case, "change"):
        case.subject.change()
        assert case.subject.snapshot() != before, "the changes after the backup did not change the subject"


def restore(case: BackupCase, expected: dict) -> None:
    """A restore and its verdict: the Job, the action, and the subject equal to ``expected``."""
    with phase(case, "restore"):
        result = case.restore()
    with phase(case, "verify the restore"):
        verdicts.assert_action_succeeded(result)
        verdicts.assert_same_snapshot(expected, case.subject.snapshot(), f"template {case.definition.name}", result)


def round_trip(case: BackupCase) -> None:
    seed(case)
    before = snapshot(case)
    backup(case)
    change(case, before)
    restore(case, before)


class CaseMaker:
    """Builds a BackupCase in the test's namespace: the subject its template's image needs, a collection,
    users, keys and the ScheduledBackup. The ``backup_case`` fixture (tests/e2e/conftest.py) is its ``make``."""

    def __init__(self, *, request, cluster, backups, backup_server, endpoints, namespace, release, file_trees,
                 known_defects):
        self.request, self.cluster, self.backups, self.server = request, cluster, backups, backup_server
        self.endpoints, self.namespace, self.release, self.trees = endpoints, namespace, release, file_trees
        self.known_defects = known_defects
        self.databases: list = []
        self.cluster_templates: list[str] = []
        self.subjects: list = []   # closed at the end when they have ``close()`` (the kubectl family's namespace)

    def make(self, definition: TemplateDefinition, *, cluster_template: bool = False, token: str | None = None,
             create_keys: bool = False, cron: dict | None = None, limits: dict | None = None,
             **options) -> BackupCase:
        """``definition``'s family subject backed up into a new collection (``limits``: its size and count
        limits); ``cluster_template`` uses a ClusterBackupProcedureTemplate of fixtures/templates instead of
        the internal template; ``token`` replaces the uploader's; ``options`` go to the family's subject.
        A template this backend cannot host is skipped with the image and what is missing."""
        family = families.of(definition)
        reason = self.cluster.unhostable_reason(definition.image)
        if reason:
            pytest.skip(f"not hostable on the {self.cluster.name} backend: {reason}")
        if family.make_subject is None:
            pytest.skip(f"template {definition.name}: {family.missing}")
        subject = family.make_subject(definition, self._database(definition, family), self.trees, **options)
        self.subjects.append(subject)
        collection = self.server.collection(**(limits or {}))
        admin_token = self.server.role_token(["collectionManager"])
        uploader = token if token is not None else self.server.role_token(["backupUploader", "backupDownloader"])
        email = f"{self.namespace}@e2e.invalid"
        keys = None if create_keys else make_gpg_keys(email, self.backups.masker)
        if keys:
            self.backups.gpg_secret(keys)
        self.backups.token_secret(uploader)
        variables = {"Params": subject.params(),
                     "Repository": {"url": self.endpoints.server_url_in_pods, "collectionId": collection,
                                    "passphrase": "", "recipient": email if keys else ""}}
        if helm_values := subject.helm_values():
            variables["HelmValues"] = helm_values
        template = {"kind": "internal", "name": definition.name}
        if cluster_template:
            template = {"kind": "ClusterBackupProcedureTemplate", "name": self._cluster_template(definition)}
        self.backups.scheduled_backup("subject", template=template, create_keys=create_keys, cron=cron,
                                      email=email, variables=variables)
        defects = template_defects(self.known_defects, self.release, self.request.function.__name__,
                                   definition.backup_template, definition.restore_template)
        return BackupCase(definition, subject, self.backups, self.server, collection, admin_token, keys, defects)

    def _database(self, definition: TemplateDefinition, family: families.Family):
        """A fresh database named after the test in the subject the image needs (None: no database)."""
        if not family.subject_kinds:
            return None
        subject = subjects.serving(definition.image, self.endpoints.subjects.deployed())
        assert subject is not None, subjects.unserved_reason(definition.image, self.endpoints.subjects.deployed())
        database = self.endpoints.subjects[subject.name].create_database(
            "subject_" + re.sub(r"[^a-z0-9]", "_", self.namespace))
        self.databases.append(database)
        return database

    def _cluster_template(self, definition: TemplateDefinition) -> str:
        """fixtures/templates' ClusterBackupProcedureTemplate, named after the namespace, on pgbr at the
        release's pin for the PostgreSQL major of ``definition`` (cluster-scoped: removed by ``close``)."""
        doc = yaml.safe_load(CLUSTER_TEMPLATE.read_text())
        doc["metadata"]["name"] = self.namespace
        _, major = subjects.needed(definition.image)
        doc["spec"]["image"] = f"ghcr.io/riotkit-org/pgbr:{self.release['PGBR_VERSION']}-pg{major}"
        self.cluster.kube.apply([doc])
        self.cluster_templates.append(self.namespace)
        return self.namespace

    def close(self) -> None:
        for name in self.cluster_templates:
            self.cluster.kube.delete("riotkit.org/v1alpha1", "ClusterBackupProcedureTemplate", name)
        for database in self.databases:
            database.drop()
        for subject in self.subjects:
            if hasattr(subject, "close"):
                subject.close()
