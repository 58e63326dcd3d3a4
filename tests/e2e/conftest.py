"""A PostgreSQL backup case as the scenarios compose it, and the checks that decide a scenario.

``postgres_backup`` builds one case (collection, user, keys, token, ScheduledBackup)
in the test's namespace; the ``assert_*`` functions are DESIGN.md's "What a
scenario proves", each failing with what was expected and what was seen.
"""

from __future__ import annotations

import base64
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

import pytest
import yaml

from e2e_harness.backups import ActionResult, Backups, GpgKeys, TRACKING_LABEL, is_armored_pgp_message, make_gpg_keys
from e2e_harness.file_trees import FileTrees
from e2e_harness.known_defects import load as load_known_defects
from e2e_harness.known_defects import raise_if_hit, template_defects
from e2e_harness.mariadb import SubjectMariaDB
from e2e_harness.postgres import SubjectDatabase
from e2e_harness.server_api import BackupServer
from e2e_harness.templates import TemplateDefinition

from .. import PROJECT_DIR

CLUSTER_TEMPLATE = PROJECT_DIR / "fixtures" / "templates" / "postgres-cluster-template.yaml"
INTERNAL_PG = {"kind": "internal", "name": "pg15"}

MOVIES = ("CREATE TABLE movies (id serial PRIMARY KEY, title text NOT NULL, year int, rating numeric(3,1), "
          "added timestamptz DEFAULT now())",
          "INSERT INTO movies (title, year, rating) VALUES ('Modern Times', 1936, 8.5), ('Metropolis', 1927, 8.3)")
CHANGES = ("UPDATE movies SET title = 'Some-wrong-title' WHERE id = 1",
           "INSERT INTO movies (title, year) VALUES ('Added after the backup', 2024)")


@dataclass
class PostgresBackup:
    """One ScheduledBackup of one subject database into one collection, with the scenario's keys."""

    backups: Backups
    server: BackupServer
    subject: SubjectDatabase
    collection: str
    admin_token: str
    keys: GpgKeys | None
    name: str = "subject"
    results: list[ActionResult] = field(default_factory=list)

    def backup(self) -> ActionResult:
        result = self.backups.run("backup", self.name)
        self.results.append(result)
        return result

    def restore(self) -> ActionResult:
        result = self.backups.run("restore", self.name)
        self.results.append(result)
        return result

    def versions(self) -> list[dict]:
        return self.server.client.versions(self.admin_token, self.collection)


@pytest.fixture
def postgres_backup(backups, backup_server, subject_db, endpoints, release, cluster, namespace):
    """Factory: ``postgres_backup(template=..., token=..., create_keys=..., cron=..., **collection limits)``."""
    made_templates = []

    def make(*, template: str = "internal", token: str | None = None, create_keys: bool = False,
             cron: dict | None = None, **limits) -> PostgresBackup:
        subject_db.execute(*MOVIES)
        collection = backup_server.collection(**limits)
        admin_token = backup_server.role_token(["collectionManager"])
        uploader = token if token is not None else backup_server.role_token(["backupUploader", "backupDownloader"])
        keys = None if create_keys else make_gpg_keys(f"{namespace}@e2e.invalid")
        if keys:
            backups.gpg_secret(keys)
        backups.token_secret(uploader)
        template_ref = INTERNAL_PG
        if template == "cluster":
            template_ref = {"kind": "ClusterBackupProcedureTemplate", "name": namespace}
            doc = yaml.safe_load(CLUSTER_TEMPLATE.read_text())
            doc["metadata"]["name"] = namespace
            doc["spec"]["image"] = f"ghcr.io/riotkit-org/pgbr:{release['PGBR_VERSION']}-pg{release['POSTGRES_VERSION']}"
            cluster.kube.apply([doc])
            made_templates.append(namespace)
        backups.scheduled_backup("subject", template=template_ref, create_keys=create_keys, cron=cron,
                                 email=keys.email if keys else f"{namespace}@e2e.invalid",
                                 variables={"Params": subject_db.template_params(),
                                            "Repository": {"url": endpoints.server_url_in_pods,
                                                           "collectionId": collection, "passphrase": "",
                                                           "recipient": keys.email if keys else ""}})
        return PostgresBackup(backups, backup_server, subject_db, collection, admin_token, keys)

    yield make
    for name in made_templates:
        cluster.kube.delete("riotkit.org/v1alpha1", "ClusterBackupProcedureTemplate", name)


# --- what a scenario proves ----------------------------------------------------------------
def assert_job_succeeded(result: ActionResult) -> None:
    assert result.job_outcome == "Complete", f"the {result.name} Job did not complete:\n{result.describe()}"


def assert_job_failed(result: ActionResult) -> None:
    assert result.job_outcome == "Failed", f"the {result.name} Job was expected to fail:\n{result.describe()}"


def assert_rendered_for_the_action(result: ActionResult) -> None:
    """The Job carries the tracking label and its ownerReference to the RequestedBackupAction."""
    labels = result.job["metadata"].get("labels") or {}
    tracking = [r["trackingId"] for r in result.status.get("ownedReferences") or [] if r.get("kind") == "Job"]
    assert labels.get(TRACKING_LABEL) in tracking, (
        f"Job label {TRACKING_LABEL}={labels.get(TRACKING_LABEL)!r}, the action's tracking ids {tracking}")
    owners = result.job["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["uid"]) for o in owners] == [("RequestedBackupAction", result.action["metadata"]["uid"])], (
        f"Job ownerReferences {owners}, expected one to RequestedBackupAction {result.name}")


def assert_action_reports(result: ActionResult, healthy: bool) -> None:
    """Processed, non-empty childrenResourcesHealth, nothing running, and ``healthy`` as the Job decided."""
    status = result.status
    children = status.get("childrenResourcesHealth") or []
    assert status.get("processed") is True, f"action not processed: {status}"
    assert children, f"action has no childrenResourcesHealth: {status}"
    assert not any(c.get("running") for c in children), f"action still reports a running child: {children}"
    assert bool(status.get("healthy")) is healthy, (
        f"action healthy={status.get('healthy', False)}, expected {healthy} (Job {result.job_outcome}):\n"
        f"{result.describe()}")


def assert_new_version(case: PostgresBackup, before: list[dict]) -> dict:
    """Exactly one new version, numbered after the previous highest, with a non-empty file."""
    after = case.versions()
    old = {v["versionNumber"] for v in before}
    new = [v for v in after if v["versionNumber"] not in old]
    expected_number = max(old, default=0) + 1
    assert [v["versionNumber"] for v in new] == [expected_number], (
        f"collection {case.collection}: expected exactly one new version {expected_number}; before "
        f"{sorted(old)}, after {[v['versionNumber'] for v in after]}")
    assert new[0]["filesize"] > 0, f"version {expected_number} is empty: {new[0]}"
    return new[0]


def assert_encrypted_dump_of(case: PostgresBackup, version: dict, rows: list[str]) -> None:
    """Downloaded bytes: an armored PGP message without the rows, decrypting to a dump with them."""
    data = case.server.client.download(case.admin_token, case.collection, version["versionNumber"])
    assert is_armored_pgp_message(data), f"version {version['versionNumber']} is not an armored PGP message: {data[:80]!r}"
    leaked = [row for row in rows if row.encode() in data]
    assert not leaked, f"the uploaded bytes contain plaintext rows {leaked}"
    keys = case.keys or controller_keys(case.backups, case.name)
    sql = dump_as_sql(keys.decrypt(data))
    missing = [row for row in rows if row not in sql]
    assert not missing, f"the decrypted dump lacks rows {missing}"


def dump_as_sql(dump: bytes) -> str:
    """pg_restore turns pgbr's custom-format (compressed) dump into SQL text for inspection."""
    with tempfile.NamedTemporaryFile(suffix=".dump") as f:
        f.write(dump)
        f.flush()
        proc = subprocess.run(["pg_restore", "--data-only", "-f", "-", f.name], capture_output=True, timeout=60)
    assert proc.returncode == 0, f"pg_restore could not read the decrypted dump: {proc.stderr.decode()[-300:]}"
    return proc.stdout.decode(errors="replace")


def controller_keys(backups: Backups, name: str) -> GpgKeys:
    """The keys the controller made itself (createIfNotExists) from its GPG Secret."""
    secret = backups.kube.get("v1", "Secret", "backup-keys", backups.namespace)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return GpgKeys(data.get("e-mail.txt", ""), data["public"], data["private"], data.get("passphrase", ""))


# --- the template matrix -------------------------------------------------------------------
@pytest.fixture
def file_trees(cluster, backups, namespace):
    """Trees in claims of the test's namespace, written and read by pods (every backend)."""
    return FileTrees(cluster.kube, namespace, cluster.pod_logs, check_alive=cluster.check_services)


@pytest.fixture
def subject_mariadb(endpoints, namespace):
    """A fresh MariaDB database to back up, named after the test; dropped afterwards."""
    if endpoints.subject_mariadb_from_tests is None:
        pytest.skip("this backend deployed no subject MariaDB (fixtures/deploy/mariadb.yaml)")
    database = SubjectMariaDB.create(endpoints.subject_mariadb_from_tests, endpoints.subject_mariadb_in_pods,
                                     "subject_" + re.sub(r"[^a-z0-9]", "_", namespace))
    yield database
    database.drop()


@dataclass
class TemplateCase:
    """One internal procedure template backing up one family subject into one collection."""

    definition: TemplateDefinition
    subject: object
    backups: Backups
    server: BackupServer
    collection: str
    admin_token: str
    keys: GpgKeys
    defects: list
    name: str = "subject"

    def run(self, action: str) -> ActionResult:
        """Run ``action``; a failed Job whose log shows a known defect of this case raises KnownDefectHit."""
        result = self.backups.run(action, self.name)
        if result.job_outcome == "Failed":
            raise_if_hit(self.defects, result.logs)
        return result

    def versions(self) -> list[dict]:
        return self.server.client.versions(self.admin_token, self.collection)


@pytest.fixture
def template_case(request, cluster, backups, backup_server, endpoints, namespace, release, file_trees):
    """Factory: ``template_case(definition, **family options)`` for the definition's family, or a skip
    naming the image this backend cannot host."""
    from .template_families import MariaDBFamily, PostgresFamily, TarFamily  # they use this module's data

    def make(definition: TemplateDefinition, **options) -> TemplateCase:
        reason = cluster.unhostable_reason(definition.image)
        if reason:
            pytest.skip(f"not hostable on the {cluster.name} backend: {reason}")
        if definition.family == "postgres":
            subject = PostgresFamily(definition, request.getfixturevalue("subject_db"), file_trees)
        elif definition.family == "mysql":
            subject = MariaDBFamily(definition, request.getfixturevalue("subject_mariadb"), file_trees, **options)
        elif definition.family == "tar":
            subject = TarFamily(definition, file_trees, **options)
        elif definition.family == "kubectl":
            pytest.skip(f"template {definition.name}: the harness has no subject and restore check for the kubectl "
                        "family yet (it backs up Kubernetes objects with `kubectl exec`)")
        else:
            raise AssertionError(f"template {definition.name} uses backup script {definition.backup_template!r}, "
                                 "which no family of the harness knows: add its subject and check to "
                                 "tests/e2e/template_families.py")
        subject.seed()
        collection = backup_server.collection()
        admin_token = backup_server.role_token(["collectionManager"])
        keys = make_gpg_keys(f"{namespace}@e2e.invalid")
        backups.gpg_secret(keys)
        backups.token_secret(backup_server.role_token(["backupUploader", "backupDownloader"]))
        variables = {"Params": subject.params(),
                     "Repository": {"url": endpoints.server_url_in_pods, "collectionId": collection,
                                    "passphrase": "", "recipient": keys.email}}
        helm_values = subject.helm_values()
        if helm_values:
            variables["HelmValues"] = helm_values
        backups.scheduled_backup("subject", template={"kind": "internal", "name": definition.name},
                                 email=keys.email, variables=variables)
        defects = template_defects(load_known_defects(), release, request.function.__name__,
                                   definition.backup_template, definition.restore_template)
        return TemplateCase(definition, subject, backups, backup_server, collection, admin_token, keys, defects)

    return make
