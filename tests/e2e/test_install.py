"""The release is installed: every custom resource the scenarios use is served by the cluster."""

import pytest

pytestmark = pytest.mark.e2e

CRDS = [
    "scheduledbackups.riotkit.org",
    "requestedbackupactions.riotkit.org",
    "clusterbackupproceduretemplates.riotkit.org",
    "backupusers.backups.riotkit.org",
    "backupcollections.backups.riotkit.org",
]


@pytest.mark.parametrize("crd", CRDS)
def test_custom_resource_definition_is_established(cluster, crd):
    obj = cluster.kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)
    assert obj is not None, f"CRD {crd} is not installed"
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions.get("Established") == "True", f"CRD {crd} conditions: {conditions}"


def test_controller_crds_carry_the_status_fields_scenarios_assert_on(cluster):
    """The chart's stale CRD copies lack these; the API server would prune them from status."""
    crd = cluster.kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "requestedbackupactions.riotkit.org")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for field in ("processed", "childrenResourcesHealth", "healthy", "ownedReferences"):
        assert field in status, f"status.{field} missing from the installed CRD"


def test_server_is_ready_with_its_database_storage_and_configuration(backup_server, endpoints):
    response = backup_server.client.ready(endpoints.server_health_key)
    assert response.status_code == 200, f"/ready answered {response.status_code}: {response.text[:300]}"


def test_controller_renders_a_scheduled_backup(backups, namespace):
    """The controller is running and reconciles: a ScheduledBackup gets its objects and condition True."""
    from e2e_harness.backups import make_gpg_keys

    backups.gpg_secret(make_gpg_keys(f"install@{namespace}.invalid", backups.masker))
    backups.token_secret("not-used-by-this-test")
    scheduled = backups.scheduled_backup("install-check", template={"kind": "internal", "name": "pg15"}, variables={
        "Params": {"hostname": "127.0.0.1", "port": 5432, "db": "x", "user": "x", "password": "x"},
        "Repository": {"url": "http://127.0.0.1:1", "collectionId": "x", "passphrase": "", "recipient": "x"}})
    conditions = scheduled["status"]["conditions"]
    assert any(c["status"] == "True" for c in conditions), conditions
    for kind, name in (("ConfigMap", "install-check-backup"), ("ConfigMap", "install-check-restore"),
                       ("Secret", "install-check-backup"), ("Secret", "install-check-restore")):
        assert backups.kube.get("v1", kind, name, namespace) is not None, f"{kind} {name} was not rendered"


def test_the_release_is_installed_by_its_own_helm_charts(cluster):
    """The deploy path every backend shares: `helm list -A` shows the server's and the controller's releases."""
    import json

    from e2e_harness.commands import run

    if cluster.settings.skip_server_install or cluster.settings.skip_client_install:
        pytest.skip("SKIP_SERVER_INSTALL/SKIP_CLIENT_INSTALL: the components were installed outside this run")
    helm = cluster.settings.bin_dir / "helm"
    context = ["--kube-context", cluster.kube_context] if cluster.kube_context else []
    listed = run([helm, "list", "--all-namespaces", "--output", "json", "--kubeconfig", cluster.kubeconfig, *context],
                 timeout=60, what="helm list -A").stdout
    releases = {(r["name"], r["namespace"]): r["status"] for r in json.loads(listed)}
    assert releases.get(("server", "backups")) == "deployed", releases
    assert releases.get(("backup-maker-controller", "backup-maker-controller")) == "deployed", releases
