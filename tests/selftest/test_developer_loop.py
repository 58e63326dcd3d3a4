"""The developer loop on the local backend: a cluster kept by one run serves the next.

The README's loop: run once with ``--keep-cluster``, then again and again with
``SKIP_SERVER_INSTALL``/``SKIP_CLIENT_INSTALL`` (the components left as deployed), ``SKIP_GIT_PULL``
and ``VERBOSE``. Two real child e2e runs of one scenario: the first keeps its cluster running after
it exits; the second attaches to it (no new control plane or node), deploys nothing it was told to
skip, passes, and, not keeping it, removes all of it.
"""

from __future__ import annotations

import secrets
import time

import pytest

from e2e_harness.backends.local.kept import KeptCluster
from tests.child_runs import ChildRun

from .conftest import PROJECT_DIR
from .test_interrupts import GRACE, MIRROR_ENV, QUICK

pytestmark = pytest.mark.needs_go

RUN_TIMEOUT = 1500   # a run from its start to its exit (the first one may build and deploy cold)


def _run(args: list[str], env: dict[str, str], name: str) -> tuple[ChildRun, int, float]:
    run = ChildRun(args, env={**MIRROR_ENV, **env}, name=name).start()
    try:
        code = run.wait(RUN_TIMEOUT)
    finally:
        run.kill()
    return run, code, time.monotonic() - run.started


def test_a_kept_cluster_serves_the_next_run_with_the_components_left_as_deployed(tmp_path):
    name = f"loop-{secrets.token_hex(3)}"
    common = [QUICK, "--backend", "local", "-q", "-p", "no:cacheprovider", "--capture=sys", "--cluster-name", name]
    record = KeptCluster.path(PROJECT_DIR / ".build", name)
    try:
        first, code, first_took = _run([*common, "--keep-cluster", "--artifacts-dir", str(tmp_path / "first")], {},
                                       "first run (keeps its cluster)")
        assert code == 0, first.tail()
        assert "kept the cluster" in first.output, first.tail()
        kept = KeptCluster.load(PROJECT_DIR / ".build", name)
        assert kept is not None, f"no record {record} of the kept cluster"
        assert kept.problem() is None, f"the kept cluster is not usable after the first run exited: {kept.problem()}"

        second, code, second_took = _run(
            [*common, "--artifacts-dir", str(tmp_path / "second")],
            {"SKIP_SERVER_INSTALL": "true", "SKIP_CLIENT_INSTALL": "true", "SKIP_GIT_PULL": "true", "VERBOSE": "true"},
            "second run (reuses it)")
        assert code == 0, second.tail()
        assert f"reusing the cluster {name} kept by run {kept.run_id}" in second.output, second.tail()
        # attached: no control plane, node or registry of its own
        for fresh in ("starting the node", "publishing 4 image(s) to the node's registry"):
            assert fresh not in second.output, f"the second run made a cluster part of its own ({fresh}):\n{second.tail()}"
        assert "backup-repository server left as deployed" in second.output, second.tail()
        assert "backup-maker-controller left as deployed" in second.output, second.tail()
        print(f"first run (cluster kept): {first_took:.1f}s; second run against it: {second_took:.1f}s")

        assert not record.exists(), f"{record} is still there after a run that did not keep the cluster"
        left = first.leftovers_after(GRACE) + second.leftovers_after(GRACE)
        assert not left, "left behind after the second run removed the kept cluster:\n" + "\n".join(left)
    finally:
        if (kept := KeptCluster.load(PROJECT_DIR / ".build", name)) is not None:
            kept.teardown(PROJECT_DIR / ".build")   # whatever failed above: no cluster outlives the test
