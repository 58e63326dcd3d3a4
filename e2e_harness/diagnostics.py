"""Failure bundles: everything needed to understand a failed scenario without rerunning it.

For each namespace involved: the riotkit resources with their status, Jobs,
CronJobs, Pods, ConfigMaps (the generated scripts), Secrets by name and keys only,
events, and the full log of every container; cluster-wide the procedure templates;
then the services' own logs (server, controller, control plane). Every byte
written passes the secret masker, which first learns every Secret value it sees.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from .kube import Kube
from .masking import SecretMasker

log = logging.getLogger("e2e_harness.diagnostics")

NAMESPACED_KINDS = (
    ("riotkit.org/v1alpha1", "ScheduledBackup"),
    ("riotkit.org/v1alpha1", "RequestedBackupAction"),
    ("backups.riotkit.org/v1alpha1", "BackupUser"),
    ("backups.riotkit.org/v1alpha1", "BackupCollection"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
)
CLUSTER_KINDS = (("riotkit.org/v1alpha1", "ClusterBackupProcedureTemplate"),)

PodLogs = Callable[[str, str, str], str]  # (namespace, pod, container) -> text


def bundle_dir(artifacts_dir: Path, nodeid: str) -> Path:
    return artifacts_dir / re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")


def collect_bundle(kube: Kube, pod_logs: PodLogs, namespaces: Iterable[str], dest: Path,
                   masker: SecretMasker, service_logs: Mapping[str, Path] | None = None,
                   extra: Mapping[str, str] | None = None) -> Path:
    """Write the bundle into ``dest`` and return it. Never raises for a missing piece:
    what could not be collected is written down instead, so a bundle is always there."""
    dest.mkdir(parents=True, exist_ok=True)
    index: list[str] = []

    def write(relative: str, text: str) -> None:
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(masker.mask(text))
        index.append(relative)

    namespaces = list(namespaces)
    for ns in namespaces:  # learn the secrets first, so that everything after is masked
        write(f"{ns}/secrets.yaml", _dump(_secrets_summary(kube, ns, masker)))
    for ns in namespaces:
        for api_version, kind in NAMESPACED_KINDS:
            write(f"{ns}/{kind.lower()}s.yaml", _dump(_list(kube, api_version, kind, ns)))
        write(f"{ns}/events.yaml", _dump(_safe(lambda: kube.events(ns), "events")))
        pods = _list(kube, "v1", "Pod", ns)
        for pod in pods if isinstance(pods, list) else []:
            name = pod["metadata"]["name"]
            spec = pod.get("spec") or {}
            for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                text = _safe(lambda: pod_logs(ns, name, container["name"]), "log")
                write(f"{ns}/logs/{name}/{container['name']}.log", text if isinstance(text, str) else _dump(text))
                if _restarts(pod, container["name"]):   # what the container said before it died
                    text = _safe(lambda: kube.pod_logs(ns, name, container["name"], previous=True), "previous log")
                    write(f"{ns}/logs/{name}/{container['name']}.previous.log", text)
    for api_version, kind in CLUSTER_KINDS:
        write(f"cluster/{kind.lower()}s.yaml", _dump(_list(kube, api_version, kind, None)))
    for name, path in (service_logs or {}).items():
        try:
            write(f"services/{name}.log", Path(path).read_text(errors="replace"))
        except OSError as exc:
            write(f"services/{name}.log", f"<cannot read {path}: {exc}>\n")
    for name, text in (extra or {}).items():
        write(name, text)
    (dest / "INDEX.txt").write_text("\n".join(sorted(index)) + "\n")
    return dest


def _restarts(pod: dict, container: str) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s.get("restartCount") or 0 for s in statuses if s.get("name") == container), 0)


def _secrets_summary(kube: Kube, namespace: str, masker: SecretMasker) -> list[dict] | dict:
    secrets = _list(kube, "v1", "Secret", namespace)
    if not isinstance(secrets, list):
        return secrets
    summary = []
    for secret in secrets:
        masker.add_secret_object(secret)
        summary.append({"name": secret["metadata"]["name"], "type": secret.get("type"),
                        "keys": sorted(set(secret.get("data") or {}) | set(secret.get("stringData") or {}))})
    return summary


def _list(kube: Kube, api_version: str, kind: str, namespace: str | None) -> list[dict] | dict:
    try:
        items = kube.list(api_version, kind, namespace)
    except ResourceNotFoundError:
        return {"note": f"{kind} ({api_version}) is not installed in this cluster"}
    except (ApiException, DynamicApiError) as exc:
        return {"error": f"cannot list {kind}: {getattr(exc, 'status', '')} {getattr(exc, 'reason', exc)}"}
    for item in items:
        (item.get("metadata") or {}).pop("managedFields", None)
    return items


def _safe(call, what: str):
    try:
        return call()
    except (ApiException, DynamicApiError, OSError) as exc:
        return f"<cannot collect {what}: {exc}>\n"


def _dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)
