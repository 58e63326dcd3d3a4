"""A failed scenario of a real run (the harness's plugin, a child pytest, the local backend's cluster) gets a
failure bundle named in its report and in the run's report, and its planted secret reaches neither the
console nor any file."""

from __future__ import annotations

import uuid

PLANTED_TOKEN = "planted-token-" + uuid.uuid4().hex


INNER_CONFTEST = '''
import pytest
from e2e_harness.backends import Settings, backend_class


@pytest.fixture(scope="session")
def cluster(release, harness_state):
    """The local backend's cluster without the release deployed (issue #4): enough for a failing Job."""
    backend = backend_class("local")(Settings(release=release, project_dir=harness_state.project_dir,
                                              build_dir=harness_state.build_dir,
                                              artifacts_dir=harness_state.artifacts_dir, run_id="inner"))
    backend.start()
    yield backend
    backend.stop()
'''


INNER_TEST = '''
import base64, os

from e2e_harness.jobs import job_finished

def test_backup_job_succeeds(cluster, namespace):
    token = os.environ["PLANTED"]
    cluster.kube.apply([
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
         "data": {"token": base64.b64encode(token.encode()).decode()}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "backup"},
         "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
             "name": "backup-maker", "image": "busybox",
             "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "token"}}}],
             "command": ["sh", "-c", "echo token is $T; echo deliberately broken >&2; exit 1"]}]}}}}],
        namespace=namespace)
    job = cluster.kube.wait_for("batch/v1", "Job", "backup", job_finished, namespace=namespace, timeout=60,
                                what="Job backup to finish")
    assert job["status"].get("succeeded") == 1, f"backup Job failed; token was {token}"
'''


def test_failed_scenario_gets_a_bundle_named_in_its_report_and_the_run_report(tmp_path):
    import os
    import subprocess
    import sys

    from .conftest import PROJECT_DIR, control_plane_binaries

    control_plane_binaries()
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(INNER_CONFTEST)
    (suite / "test_scenario.py").write_text(INNER_TEST)
    artifacts = tmp_path / "artifacts"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(suite), "--rootdir", str(suite),
         "--release-env", str(PROJECT_DIR / "release.env"), "--artifacts-dir", str(artifacts),
         "--build-dir", str(tmp_path / "build"), "--junitxml", str(tmp_path / "junit.xml")],
        cwd=suite, capture_output=True, text=True, timeout=300, env={**os.environ, "PLANTED": PLANTED_TOKEN})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "failure bundle" in output and str(artifacts) in output
    assert PLANTED_TOKEN not in output, "the token leaked to the console"
    bundle = next(artifacts.glob("*test_backup_job_succeeds*"))
    pod_log = next(bundle.glob("*/logs/*/backup-maker.log")).read_text()
    assert "deliberately broken" in pod_log and PLANTED_TOKEN not in pod_log
    assert (bundle / "services" / "kube-apiserver.log").exists()
    for path in bundle.rglob("*"):
        if path.is_file():
            assert PLANTED_TOKEN not in path.read_text(errors="replace"), f"token leaked into {path}"
    report = (artifacts / "report.md").read_text()
    assert "FAILED" in report and "test_backup_job_succeeds" in report and bundle.name in report
    assert PLANTED_TOKEN not in report
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="release.SERVER_VERSION" value="v4.1.0-rc1"' in junit
