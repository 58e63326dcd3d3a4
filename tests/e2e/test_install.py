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
