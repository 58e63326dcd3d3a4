"""The scenarios' fixtures: a backup case of any template (tests/e2e/lifecycle.py) and file trees.

What a case is and how it is judged live in lifecycle.py and verdicts.py; this module only
wires them to the plugin's fixtures (cluster, namespace, backups, backup_server, ...).
"""

from __future__ import annotations

import pytest

from e2e_harness.file_trees import FileTrees
from e2e_harness.templates import TemplateDefinition

from .lifecycle import CaseMaker


@pytest.fixture
def file_trees(cluster, backups, namespace):
    """Trees in claims of the test's namespace, written and read by pods (every backend)."""
    return FileTrees(cluster.kube, namespace, cluster.pod_logs, check_alive=cluster.check_services)


@pytest.fixture
def backup_case(request, cluster, backups, backup_server, endpoints, namespace, release, file_trees, known_defects):
    """Factory: ``backup_case(definition, **options)`` (CaseMaker.make); its databases and cluster-scoped
    templates are removed afterwards."""
    maker = CaseMaker(request=request, cluster=cluster, backups=backups, backup_server=backup_server,
                      endpoints=endpoints, namespace=namespace, release=release, file_trees=file_trees,
                      known_defects=known_defects)
    yield maker.make
    maker.close()


@pytest.fixture
def release_postgres_template(template_definitions, release) -> TemplateDefinition:
    """The internal template for the release's PostgreSQL major (``pg<POSTGRES_VERSION>``): the scenarios'."""
    name = f"pg{release['POSTGRES_VERSION']}"
    found = [d for d in template_definitions if d.name == name]
    assert found, (f"the pinned backup-maker ships no template {name} for POSTGRES_VERSION="
                   f"{release['POSTGRES_VERSION']}; it ships {[d.name for d in template_definitions]}")
    return found[0]
