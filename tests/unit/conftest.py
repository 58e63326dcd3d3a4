"""The fast tier: pure tests of the harness's logic (no server, cluster, git repository, Go build or child
run of the e2e suite). Their real-parts fixtures live in tests/integration/conftest.py."""

from .. import PROJECT_DIR  # noqa: F401 - tests import it from here
