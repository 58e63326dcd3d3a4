"""The k3d backend's image builds against the pinned sources of backup-maker and pgbr (resolved from the git
mirror or the Go module proxy); the rest of the backend, with ``run`` replaced: tests/unit/test_k3d.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_harness.backends.k3d import check_dockerfile, pgbr_plan, release_image_builds
from tests.unit.test_k3d import _source

from .conftest import pinned_source


@pytest.mark.needs_go
def test_the_pinned_dockerfiles_get_what_they_need(tmp_path_factory):
    """backup-maker's Dockerfile takes only the binary from its context; pgbr's needs POSTGRES_VERSION and
    GO_VERSION, both given; the pinned templates name pgbr for PostgreSQL 12 to 15."""
    from e2e_harness.release import load_release
    from .conftest import PROJECT_DIR

    release = load_release(PROJECT_DIR / "release.env")
    build_dir = tmp_path_factory.mktemp("build")
    bm = _source(pinned_source(build_dir, "backup-maker"), "backup-maker", release["BACKUP_MAKER_VERSION"])
    pg = _source(pinned_source(build_dir, "pgbr"), "pgbr", release["PGBR_VERSION"])
    plan = pgbr_plan(release, bm.path)
    assert plan.named == ("12", "13", "14", "15")
    builds = release_image_builds(release, bm, pg, Path("/ctx"), plan)
    assert builds[0].image == "ghcr.io/riotkit-org/br-backup-maker:main"
    check_dockerfile(builds[0], provided=[".build/backup-maker"])
    for build in builds[1:]:
        check_dockerfile(build)
        assert dict(build.build_args)["GO_VERSION"] == "1.19"
