"""The kubectl family's subject: Kubernetes objects of several kinds in a namespace of their own.

The ``kubectl`` template (generate/templates/backup/kubectl.tmpl) dumps ``kubectl get <kind> -n <namespace>
-o yaml`` for each namespace and kind its params name, and its restore applies those files again
(``kubectl neat | kubectl apply``). The subject is a namespace ``<test namespace>-objects`` holding
ConfigMaps (one with the seeded text that must appear in the decrypted backup, one with binaryData), a
Secret, a Service and a ServiceAccount, labelled and not. A snapshot is every object of those kinds, field
by field, without what the API server sets (:func:`clean`) and without what Kubernetes makes in every
namespace (the ``kube-root-ca.crt`` ConfigMap, the ``default`` ServiceAccount): what a restore must bring
back. The namespace is removed when the case ends (``close``), passed or not.

The template's chart runs the Job as the ServiceAccount its definition names (``kubectl-backup``) and
renders that ServiceAccount with a ClusterRole of the definition's ``clusterRbac``, but the pinned
controller applies none of them (known defect ``kubectl-service-account-never-applied``): without them
the Job's pods are refused. As a user of the release must, the subject supplies them (``service_account``,
the default): the ServiceAccount in the test namespace, and the definition's rules as a Role in the
subject's namespace (all the backup reads; no cluster-scoped object per case), bound to it.
``service_account=False`` leaves them out, to show the defect.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .file_trees import FileTrees

if TYPE_CHECKING:
    from .templates import TemplateDefinition

SEED_TEXT = "release harness kubernetes objects"   # a ConfigMap's value: must show in the decrypted backup


@dataclass(frozen=True)
class Kind:
    resource: str      # what `kubectl get` takes, as the template's `kinds` param names it
    api_version: str
    kind: str


KINDS = (Kind("configmaps", "v1", "ConfigMap"), Kind("secrets", "v1", "Secret"), Kind("services", "v1", "Service"),
         Kind("serviceaccounts", "v1", "ServiceAccount"))
# made by Kubernetes in every namespace: not the subject's (a restore need not bring them back)
AUTO_MADE = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}
LABELS = {"app.kubernetes.io/name": "e2e-subject", "app.kubernetes.io/part-of": "e2e-harness"}

# What the API server sets or assigns: not part of what a backup has to keep.
SERVER_SET_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
                       "deletionTimestamp", "deletionGracePeriodSeconds")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"   # `kubectl apply`'s own bookkeeping
SERVICE_ASSIGNED = ("clusterIP", "clusterIPs", "ipFamilies")         # a re-created Service gets new ones


def seed_objects(namespace: str) -> list[dict]:
    """The subject's objects in ``namespace``."""
    def meta(name: str, labelled: bool, **extra) -> dict:
        return {"name": name, "namespace": namespace, **({"labels": dict(LABELS)} if labelled else {}), **extra}

    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": meta("settings", True, annotations={"e2e-harness.riotkit.org/note": "seeded before the backup"}),
         "data": {"greeting": SEED_TEXT, "config.yaml": "retries: 3\nhosts: [a.example, b.example]\n",
                  "unicode": "Zażółć gęślą jaźń"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("unlabelled", False),
         "data": {"mode": "original"}, "binaryData": {"blob.bin": base64.b64encode(bytes(range(256))).decode()}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("credentials", True), "type": "Opaque",
         "stringData": {"username": "subject-user", "password": "not-a-real-password"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("web", True),
         "spec": {"type": "ClusterIP", "selector": {"app": "web"},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("robot", False),
         "automountServiceAccountToken": False},
    ]


def clean(obj: dict, kind: str) -> dict:
    """``obj`` as a backup must keep it: without status, server-set metadata, controllers' ownerReferences,
    ``kubectl apply``'s annotation, empty labels or annotations, and (Services) the assigned IPs."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    out.pop("apiVersion", None)   # list items may lack them; the key of the snapshot names the kind
    out.pop("kind", None)
    metadata = out.setdefault("metadata", {})
    for key in SERVER_SET_METADATA:
        metadata.pop(key, None)
    owners = [o for o in metadata.pop("ownerReferences", None) or [] if not o.get("controller")]
    if owners:
        metadata["ownerReferences"] = owners
    annotations = {k: v for k, v in (metadata.pop("annotations", None) or {}).items() if k != LAST_APPLIED}
    if annotations:
        metadata["annotations"] = annotations
    if labels := metadata.pop("labels", None):
        metadata["labels"] = labels
    if kind == "Service":
        for key in SERVICE_ASSIGNED:
            out.get("spec", {}).pop(key, None)
    return out


def snapshot_of(items_by_kind: dict[str, list[dict]]) -> dict[str, dict]:
    """``{"<Kind>/<name>": cleaned object}`` of every object not made by Kubernetes itself."""
    return {f"{kind}/{item['metadata']['name']}": clean(item, kind)
            for kind, items in items_by_kind.items() for item in items
            if (kind, item["metadata"]["name"]) not in AUTO_MADE}


def service_account_objects(definition: TemplateDefinition, job_namespace: str, namespace: str) -> list[dict]:
    """What the template's chart renders for its Job's ServiceAccount (generate/chart/serviceaccount.yaml,
    clusterrole.yaml) and the controller does not apply: the ServiceAccount the definition names in the Job's
    namespace, and its ``clusterRbac`` rules as a Role of ``namespace`` (the one the backup reads) bound to it."""
    account = definition.helm_values.get("serviceAccount") or {}
    if not account.get("create") or not account.get("name"):
        return []
    name = account["name"]
    objects = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": job_namespace}}]
    if rules := account.get("clusterRbac"):
        objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": name, "namespace": namespace}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": f"{name}-{job_namespace}"[:63], "namespace": namespace},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": job_namespace}]}]
    return objects


class KubectlSubject:
    """kubectl.tmpl: Kubernetes objects of several kinds in ``<test namespace>-objects``."""

    plaintext = [SEED_TEXT]

    def __init__(self, definition: TemplateDefinition, database, trees: FileTrees, service_account: bool = True):
        self.definition, self.kube = definition, trees.kube
        self.test_namespace = trees.namespace
        self.namespace = f"{trees.namespace}-objects"
        self.service_account = service_account
        self.created = False

    def params(self) -> dict:
        return {"namespaces": [self.namespace], "kinds": [k.resource for k in KINDS]}

    def helm_values(self) -> dict:
        return {}   # the definition's own: a workspace, and the kubectl-backup ServiceAccount with its ClusterRole

    def seed(self) -> None:
        # the test namespace's labels (the run's label among them) mark it as this run's too
        labels = ((self.kube.get("v1", "Namespace", self.test_namespace) or {}).get("metadata") or {}).get("labels")
        self.created = True
        self.kube.create_namespace(self.namespace, dict(labels or {}))
        self.kube.apply(seed_objects(self.namespace))
        if self.service_account:
            self.kube.apply(service_account_objects(self.definition, self.test_namespace, self.namespace))

    def snapshot(self) -> dict:
        return snapshot_of({k.kind: self.kube.list(k.api_version, k.kind, self.namespace) for k in KINDS})

    def change(self) -> None:
        """Delete objects of every kind, and edit one that stays."""
        for kind, name in (("ConfigMap", "settings"), ("Secret", "credentials"), ("Service", "web"),
                           ("ServiceAccount", "robot")):
            self.kube.delete("v1", kind, name, self.namespace)
        self.kube.apply([{"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "unlabelled", "namespace": self.namespace},
                          "data": {"mode": "edited after the backup"}}])

    def close(self) -> None:
        """Remove the namespace (its deletion is not awaited: nothing else uses it)."""
        if self.created:
            self.kube.delete_namespace(self.namespace, wait=False)
