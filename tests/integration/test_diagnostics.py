"""Failure bundles against the real local control plane, with a planted secret.

The controller cannot run here, so its RequestedBackupAction CRD is replaced by a
minimal stand-in (TEST DOUBLE: same group, kind and status fields the bundle must
show; the real CRD comes from the controller's config/crd/bases).
"""

from __future__ import annotations

import base64
import uuid

from e2e_harness.crds import install_crds
from e2e_harness.diagnostics import collect_bundle
from e2e_harness.jobs import job_finished
from e2e_harness.masking import MASK, SecretMasker

PLANTED_TOKEN = "planted-token-" + uuid.uuid4().hex
PLANTED_PASSWORD = "planted-password-" + uuid.uuid4().hex

ACTION_CRD_TEST_DOUBLE = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "requestedbackupactions.riotkit.org"},
    "spec": {"group": "riotkit.org", "scope": "Namespaced",
             "names": {"plural": "requestedbackupactions", "singular": "requestedbackupaction",
                       "kind": "RequestedBackupAction"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_bundle_of_a_failed_job_has_logs_status_events_and_no_secret(node_cluster, tmp_path):
    kube = node_cluster.kube
    ns = f"t-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(ns)
    install_crds(kube, [ACTION_CRD_TEST_DOUBLE])
    kube.apply([
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-token"},
         "data": {"token": base64.b64encode(PLANTED_TOKEN.encode()).decode()},
         "stringData": {"password": PLANTED_PASSWORD}},
        # Generated scripts carry the token in plain text, as the controller renders them.
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-backup"},
         "data": {"app-backup": f"export BM_AUTH_TOKEN={PLANTED_TOKEN}\nbackup-maker make ..."}},
        {"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction", "metadata": {"name": "app-backup-1"},
         "spec": {"action": "backup", "scheduledBackupRef": {"name": "app"}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "app-backup"},
         "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
             "name": "backup-maker", "image": "busybox",
             "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "backup-token", "key": "token"}}}],
             "command": ["sh", "-c", "echo uploading with token $TOKEN; echo upload refused >&2; exit 7"]}]}}}},
    ], namespace=ns)
    status = kube.resource("riotkit.org/v1alpha1", "RequestedBackupAction").subresources["status"]
    kube.dynamic.patch(status, name="app-backup-1", namespace=ns, content_type="application/merge-patch+json",
                       body={"status": {"processed": True, "healthy": False, "childrenResourcesHealth": [
                           {"kind": "Job", "failed": True, "message": "job failed"}]}})
    kube.wait_for("batch/v1", "Job", "app-backup", job_finished, namespace=ns, timeout=60, what="Job app-backup to fail")

    masker = SecretMasker()
    bundle = collect_bundle(kube, node_cluster.pod_logs, [ns], tmp_path / "bundle", masker,
                            service_logs={})

    pod_logs = list((bundle / ns / "logs").glob("*/backup-maker.log"))
    assert len(pod_logs) == 1
    log_text = pod_logs[0].read_text()
    assert "upload refused" in log_text and f"uploading with token {MASK}" in log_text
    actions = (bundle / ns / "requestedbackupactions.yaml").read_text()
    assert "processed: true" in actions and "job failed" in actions
    assert "app-backup" in (bundle / ns / "events.yaml").read_text()
    secrets = (bundle / ns / "secrets.yaml").read_text()
    assert "backup-token" in secrets and "token" in secrets and "password" in secrets
    assert "BM_AUTH_TOKEN=" + MASK in (bundle / ns / "configmaps.yaml").read_text()
    encoded = base64.b64encode(PLANTED_TOKEN.encode()).decode()
    for path in bundle.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in (PLANTED_TOKEN, PLANTED_PASSWORD, encoded):
                assert secret not in text, f"{secret[:12]}... leaked into {path}"
