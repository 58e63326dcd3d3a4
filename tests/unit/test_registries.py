"""Where a change lands: a family, a subject, a backend and a knob are each one entry (issue 22).

Each test adds the new thing the way a maintainer would (one entry, or one manifest) and shows
the harness picks it up with nothing else changed.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import yaml

from e2e_harness import backend_registry, docker, families, knobs, subjects
from e2e_harness.templates import TemplateDefinition
from tests.e2e.verdicts import readable_text

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _definition(name: str, image: str, script: str, **params) -> TemplateDefinition:
    return TemplateDefinition(name, image, script, script, params)


# --- families ------------------------------------------------------------------------------
def test_every_backup_script_of_the_registry_names_a_family_and_an_unknown_one_says_where_to_add_it():
    assert {f.script for f in families.REGISTRY} >= {"postgres.tmpl", "mysql-dump.tmpl", "tar.tmpl", "kubectl.tmpl"}
    assert _definition("pg13", "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13", "postgres.tmpl").family == "postgres"
    mongo = _definition("mongo-6", "docker.io/mongo:6", "mongodump.tmpl")
    assert mongo.family == "unknown:mongodump.tmpl"
    with pytest.raises(families.FamilyError, match="add its Family to REGISTRY in e2e_harness/families.py"):
        families.of(mongo)


def test_a_new_family_is_one_registry_entry(monkeypatch):
    class MongoSubject:   # what a MongoDB family would bring: its seed, snapshot and change
        plaintext = ["Modern Times"]

        def __init__(self, definition, database, trees):
            self.database = database

    entry = families.Family("mongodb", "mongodump.tmpl", ("mongodb",), MongoSubject)
    monkeypatch.setattr(families, "BY_SCRIPT", {**families.BY_SCRIPT, entry.script: entry})
    mongo = _definition("mongo-6", "docker.io/mongo:6", "mongodump.tmpl")
    assert mongo.family == "mongodb" and families.of(mongo) is entry


def test_the_seed_data_is_written_once_and_named_in_what_a_backup_must_hold():
    assert all(title in families.POSTGRES_SEED[1] for title in families.SEEDED_TITLES)
    assert all(title in families.MARIADB_SEED[1] for title in families.SEEDED_TITLES)
    tar = families.TarSubject(_definition("tar", "debian:bookworm-slim", "tar.tmpl"), None, trees=None)
    assert tar.plaintext == ["release harness file tree"]


# --- subjects -------------------------------------------------------------------------------
def test_the_deploy_s_subjects_are_read_from_its_labelled_manifests():
    deployed = {s.name: (s.kind.name, s.version) for s in subjects.deployed(PROJECT_DIR)}
    assert deployed["postgres"] == ("postgres", "15") and deployed["mariadb"] == ("mariadb", "10.11")
    assert "redis" not in deployed   # not a subject: no label


def test_a_template_gets_the_subject_of_its_own_database_and_version_or_a_reason_naming_both(tmp_path):
    deploy = tmp_path / subjects.DEPLOY_DIR
    deploy.mkdir(parents=True)
    deploy.joinpath("postgres.yaml").write_text(yaml.safe_dump_all([_deployment("postgres", "postgres", "postgres:15")]))
    found = subjects.deployed(tmp_path)
    assert subjects.serving("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15", found).name == "postgres"
    reason = subjects.unserved_reason("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13", found)
    assert "PostgreSQL 13" in reason and "PostgreSQL 15 (fixtures/deploy/postgres.yaml)" in reason
    assert "MySQL 8.0" in subjects.unserved_reason("docker.io/mysql:8.0-debian", found)
    assert subjects.unserved_reason("docker.io/debian:bookworm-slim", found) is None   # needs no database

    # another version is one more Deployment in a manifest, nothing else
    deploy.joinpath("postgres-13.yaml").write_text(
        yaml.safe_dump_all([_deployment("postgres-13", "postgres", "postgres:13")]))
    subject = subjects.serving("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg13", subjects.deployed(tmp_path))
    assert (subject.name, subject.version) == ("postgres-13", "13")
    assert subject.in_pods().host == "postgres-13.db.svc.cluster.local"


def test_a_manifest_naming_an_unknown_subject_kind_is_refused_with_the_file(tmp_path):
    deploy = tmp_path / subjects.DEPLOY_DIR
    deploy.mkdir(parents=True)
    deploy.joinpath("mongo.yaml").write_text(yaml.safe_dump_all([_deployment("mongo", "mongodb", "mongo:6")]))
    with pytest.raises(ValueError, match=r"mongo\.yaml: Deployment mongo has .*mongodb.*e2e_harness/subjects.py"):
        subjects.deployed(tmp_path)


def _deployment(name: str, kind: str, image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "db", "labels": {subjects.KIND_LABEL: kind}},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}


# --- backends -------------------------------------------------------------------------------
def test_auto_asks_the_registry_in_order_and_the_docker_question_lives_in_its_own_module(monkeypatch):
    monkeypatch.setattr(docker, "engine_answers", lambda: True)
    assert backend_registry.resolve("auto").name == "k3d"
    monkeypatch.setattr(docker, "engine_answers", lambda: False)
    assert backend_registry.resolve("auto").name == "local"
    with pytest.raises(backend_registry.UnknownBackend, match="choose one of auto, k3d, local, existing"):
        backend_registry.resolve("kind")


def test_a_new_backend_is_its_module_plus_one_registry_line(monkeypatch):
    entry = backend_registry.Registered("kind", "e2e_harness.backends.existing:ExistingBackend",
                                        host_tools={"kind": "creates the cluster"})
    monkeypatch.setattr(backend_registry, "BY_NAME", {**backend_registry.BY_NAME, "kind": entry})
    from e2e_harness.backends import backend_class
    from e2e_harness.backends.existing import ExistingBackend
    assert backend_class("kind") is ExistingBackend
    assert set(entry.tools()) == set(backend_registry.EVERY_BACKEND_TOOLS) | {"kind"}


def test_the_makefile_names_no_backend():
    makefile = (PROJECT_DIR / "Makefile").read_text()
    code = "\n".join(line for line in makefile.splitlines() if not line.lstrip().startswith("#"))
    assert "k3d" not in code and "existing" not in code, "the Makefile hard-codes a backend name"


# --- knobs ----------------------------------------------------------------------------------
def test_a_knob_is_an_option_first_and_its_environment_variable_second():
    env = {"SKIP_GIT_PULL": "true", "COMPONENT_SOURCE": "git", "VERBOSE": "no"}
    from_env = knobs.Knobs.resolve({}, env)
    assert (from_env.skip_git_pull, from_env.component_source, from_env.verbose) == (True, "git", False)
    given = knobs.Knobs.resolve({"component_source": "goproxy", "verbose": True}, env)
    assert (given.skip_git_pull, given.component_source, given.verbose) == (True, "goproxy", True)
    with pytest.raises(knobs.KnobError, match=r"SKIP_SERVER_INSTALL='maybe': expected true or false"):
        knobs.Knobs.resolve({}, {"SKIP_SERVER_INSTALL": "maybe"})
    with pytest.raises(knobs.KnobError, match=r"COMPONENT_SOURCE='svn': expected auto, git or goproxy"):
        knobs.Knobs.resolve({}, {"COMPONENT_SOURCE": "svn"})


def test_every_knob_is_listed_by_pytest_help(pytester):
    result = pytester.runpytest("--help")
    for knob in knobs.KNOBS:
        result.stdout.fnmatch_lines([f"*{knob.option}*"])
        assert knob.env in result.stdout.str(), knob.env


# --- the verdict's reading of a backup ------------------------------------------------------
def test_a_backup_is_read_through_its_gzip_and_tar_layers():
    dump = gzip.compress(b"INSERT INTO movies VALUES ('Modern Times')")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("mnt/pv/readme.txt", b"release harness file tree\n"), ("backup-db.sql.gz", dump)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    text = readable_text(buffer.getvalue())
    assert "release harness file tree" in text and "'Modern Times'" in text and "--- backup-db.sql.gz" in text
    assert readable_text(b"plain SQL") == "plain SQL"
