"""The kubectl family's subject: what its snapshot keeps of an object, and its lifecycle against an in-memory API
(the real cluster: tests/e2e/test_template_matrix.py::test_backup_and_restore[kubectl])."""

from __future__ import annotations

import copy

from e2e_harness import families
from e2e_harness.kube_objects import (KINDS, LAST_APPLIED, SEED_TEXT, KubectlSubject, clean, seed_objects,
                                      service_account_objects, snapshot_of)
from e2e_harness.templates import TemplateDefinition

RULES = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["list", "get"]}]
# generate/templates/definition/kubectl.json's defaults.helmValues
KUBECTL = TemplateDefinition("kubectl", "ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1", "kubectl.tmpl",
                             "kubectl.tmpl", helm_values={
                                 "workspaceVolume": {"enabled": True, "size": "64m"},
                                 "serviceAccount": {"name": "kubectl-backup", "create": True, "clusterRbac": RULES}})


def as_served(obj: dict, uid: str = "u-1", cluster_ip: str = "10.0.0.7", **annotations) -> dict:
    """``obj`` as the API server returns it: server-set metadata, status, managedFields, a Service's IPs."""
    served = copy.deepcopy(obj)
    served["metadata"].update(uid=uid, resourceVersion="4711", creationTimestamp="2026-12-02T12:00:00Z",
                              generation=1, managedFields=[{"manager": "e2e-harness", "operation": "Apply"}],
                              selfLink="/api/v1/x")
    if annotations:
        served["metadata"].setdefault("annotations", {}).update(annotations)
    if served["kind"] == "Service":
        served["spec"].update(clusterIP=cluster_ip, clusterIPs=[cluster_ip], ipFamilies=["IPv4"],
                              ipFamilyPolicy="SingleStack")
        served["status"] = {"loadBalancer": {}}
    return served


def test_clean_drops_what_the_server_sets_and_keeps_what_the_user_wrote():
    service = next(o for o in seed_objects("ns") if o["kind"] == "Service")
    served = as_served(service, **{LAST_APPLIED: '{"kind": "Service"}'})
    served["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "x", "controller": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "y"}]
    cleaned = clean(served, "Service")
    assert cleaned["metadata"] == {"name": "web", "namespace": "ns", "labels": service["metadata"]["labels"],
                                   "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                                        "uid": "y"}]}
    assert "status" not in cleaned and "kind" not in cleaned and "apiVersion" not in cleaned
    assert cleaned["spec"] == {**service["spec"], "ipFamilyPolicy": "SingleStack"}   # a default, not an assignment
    assert served["spec"]["clusterIP"] == "10.0.0.7", "clean copies; the object itself is left as it is"


def test_a_restored_object_equals_the_original_though_the_server_made_it_anew():
    objects = seed_objects("ns")
    before = snapshot_of({o["kind"]: [as_served(o)] for o in objects})
    # re-created by `kubectl apply`: new uid and IP, kubectl's annotation; an unlabelled object stays without labels
    after = snapshot_of({o["kind"]: [as_served(o, uid="u-2", cluster_ip="10.0.0.99", **{LAST_APPLIED: "{}"})]
                         for o in objects})
    assert after == before
    assert "labels" not in before["ConfigMap/unlabelled"]["metadata"]
    edited = copy.deepcopy(objects)
    edited[1]["data"]["mode"] = "edited"
    assert snapshot_of({o["kind"]: [as_served(o)] for o in edited}) != before


def test_objects_kubernetes_makes_in_every_namespace_are_not_the_subjects():
    items = {"ConfigMap": [{"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "x"}},
                           {"metadata": {"name": "mine"}, "data": {}}],
             "ServiceAccount": [{"metadata": {"name": "default"}}, {"metadata": {"name": "robot"}}],
             "Secret": [{"metadata": {"name": "default"}, "type": "Opaque"}]}   # only the ServiceAccount is made
    assert sorted(snapshot_of(items)) == ["ConfigMap/mine", "Secret/default", "ServiceAccount/robot"]


def test_the_seed_has_every_kind_labelled_and_not_and_the_text_the_backup_must_hold():
    objects = seed_objects("case-objects")
    assert {o["kind"] for o in objects} == {k.kind for k in KINDS}
    assert all(o["metadata"]["namespace"] == "case-objects" for o in objects)
    labelled = [bool(o["metadata"].get("labels")) for o in objects]
    assert any(labelled) and not all(labelled)
    assert SEED_TEXT in [value for o in objects for value in (o.get("data") or {}).values()]


def test_the_supplied_service_account_is_the_definitions_with_its_rules_on_the_subjects_namespace_only():
    account, role, binding = service_account_objects(KUBECTL, "case", "case-objects")
    assert (account["kind"], account["metadata"]) == ("ServiceAccount", {"name": "kubectl-backup", "namespace": "case"})
    assert (role["kind"], role["metadata"]["namespace"], role["rules"]) == ("Role", "case-objects", RULES)
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "case-objects"
    assert binding["roleRef"]["name"] == "kubectl-backup"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubectl-backup", "namespace": "case"}]
    no_account = TemplateDefinition("x", "i", "kubectl.tmpl", "kubectl.tmpl", helm_values={"serviceAccount": {}})
    assert service_account_objects(no_account, "case", "case-objects") == []


class FakeKube:
    """An in-memory API: apply (server-side, as the harness does), get, list, delete, namespaces."""

    def __init__(self, labels: dict):
        self.objects: dict[tuple, dict] = {("Namespace", None, "case"): {"metadata": {"name": "case", "labels": labels}}}
        self.deleted_namespaces: list[str] = []

    def apply(self, docs):
        for doc in docs:
            key = (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
            served = as_served(doc)
            if doc["kind"] == "Secret":
                served["data"] = served.pop("stringData")
            self.objects[key] = served

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get((kind, namespace, name))

    def list(self, api_version, kind, namespace=None):
        return [o for (k, ns, _), o in self.objects.items() if k == kind and ns == namespace]

    def delete(self, api_version, kind, name, namespace=None):
        return self.objects.pop((kind, namespace, name), None) is not None

    def create_namespace(self, name, labels=None):
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}])
        # what Kubernetes makes in it
        self.objects[("ConfigMap", name, "kube-root-ca.crt")] = {"metadata": {"name": "kube-root-ca.crt"}}
        self.objects[("ServiceAccount", name, "default")] = {"metadata": {"name": "default"}}

    def delete_namespace(self, name, wait=True):
        self.deleted_namespaces.append(name)
        self.delete("v1", "Namespace", name)


class Trees:
    def __init__(self, kube):
        self.kube, self.namespace = kube, "case"


def test_the_subject_names_its_namespace_and_kinds_and_removes_the_namespace_at_the_end():
    kube = FakeKube({"e2e-harness.riotkit.org/run": "r1"})
    subject = families.of(KUBECTL).make_subject(KUBECTL, None, Trees(kube))
    assert isinstance(subject, KubectlSubject) and subject.plaintext == [SEED_TEXT]
    assert subject.params() == {"namespaces": ["case-objects"],
                                "kinds": ["configmaps", "secrets", "services", "serviceaccounts"]}
    subject.close()
    assert kube.deleted_namespaces == [], "nothing was created: nothing to remove"
    subject.seed()
    assert kube.get("v1", "Namespace", "case-objects")["metadata"]["labels"] == {"e2e-harness.riotkit.org/run": "r1"}
    before = subject.snapshot()
    assert sorted(before) == ["ConfigMap/settings", "ConfigMap/unlabelled", "Secret/credentials",
                              "Service/web", "ServiceAccount/robot"]
    subject.change()
    after = subject.snapshot()
    assert sorted(after) == ["ConfigMap/unlabelled"] and after["ConfigMap/unlabelled"]["data"] != \
        before["ConfigMap/unlabelled"]["data"]
    assert kube.get("v1", "ServiceAccount", "kubectl-backup", "case") is not None
    assert kube.get("v1", "Role", "kubectl-backup", "case-objects") is not None
    subject.close()
    assert kube.deleted_namespaces == ["case-objects"]


def test_without_the_service_account_the_subject_leaves_the_jobs_account_to_the_release():
    kube = FakeKube({})
    families.of(KUBECTL).make_subject(KUBECTL, None, Trees(kube), service_account=False).seed()
    assert kube.get("v1", "ServiceAccount", "kubectl-backup", "case") is None
    assert kube.list("v1", "Role", "case-objects") == []
