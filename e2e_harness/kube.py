"""Kubernetes access through the official client, from one kubeconfig file.

The harness never reads or changes the user's current context: every client is
built from an explicit kubeconfig file (and context), every call names its
namespace. Transient API errors (connection refused, 429, 5xx) are retried by
tenacity a few times; everything else surfaces at once.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import urllib3
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, CoreV1Api, VersionApi
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from . import abandoned
from .waiting import WaitTimeout, deadline_clock

log = logging.getLogger("e2e_harness.kube")

FIELD_MANAGER = "e2e-harness"
WATCH_CHUNK_SECONDS = 30  # one watch request at most this long, re-opened until the deadline


def is_transient(exc: BaseException) -> bool:
    """Errors worth a retry: the API server is (re)starting or overloaded.

    Not 500: the API server answers 500 for some invalid requests too (e.g. a
    server-side apply whose field has the wrong type), and retrying hides them.
    """
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError)):
        return True
    status = getattr(exc, "status", None)
    return isinstance(exc, (ApiException, DynamicApiError)) and status in (429, 502, 503, 504)


transient = retry(retry=retry_if_exception(is_transient), stop=stop_after_attempt(6),
                  wait=wait_exponential(multiplier=0.2, max=3), reraise=True)

Condition = Callable[[dict | None], tuple[bool, str]]


class Kube:
    """A client for one cluster, as described by one kubeconfig file."""

    def __init__(self, kubeconfig: Path, context: str | None = None):
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.api: ApiClient = kube_config.new_client_from_config(config_file=str(self.kubeconfig),
                                                                 context=context)
        self.core = CoreV1Api(self.api)
        self._dynamic: DynamicClient | None = None
        self._discovery_dir: str | None = None

    def close(self) -> None:
        self.api.close()
        self._dynamic = None
        if self._discovery_dir is not None:
            shutil.rmtree(self._discovery_dir, ignore_errors=True)
            self._discovery_dir = None

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            # The client caches API discovery in a file, by default /tmp/osrcp-<md5 of the server URL>.json:
            # left behind by every run, and read back by a later cluster that gets the same loopback port.
            # A private file instead, removed by close().
            if self._discovery_dir is None:
                self._discovery_dir = tempfile.mkdtemp(prefix="e2e-kube-discovery-")
                abandoned.claim(Path(self._discovery_dir))   # removed by a later run if this one is killed
            self._dynamic = transient(DynamicClient)(self.api, cache_file=f"{self._discovery_dir}/discovery.json")
        return self._dynamic

    def resource(self, api_version: str, kind: str):
        """The API resource for a kind; rediscovers once so that fresh CRDs are found."""
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self.dynamic.resources.invalidate_cache()
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    @transient
    def server_version(self) -> str:
        """The API server's gitVersion (e.g. v1.34.4, v1.31.5+k3s1): the report names the platform tested."""
        return VersionApi(self.api).get_code().git_version

    # --- objects -------------------------------------------------------------------
    @transient
    def apply(self, documents: Iterable[dict] | str, namespace: str | None = None) -> list[dict]:
        """Server-side apply of every document (a YAML stream or dicts), in order."""
        if isinstance(documents, str):
            documents = [d for d in yaml.safe_load_all(documents) if d]
        applied = []
        for doc in documents:
            res = self.resource(doc["apiVersion"], doc["kind"])
            ns = (doc.get("metadata", {}).get("namespace") or namespace) if res.namespaced else None
            obj = self.dynamic.server_side_apply(res, body=doc, namespace=ns,
                                                 field_manager=FIELD_MANAGER, force_conflicts=True)
            applied.append(obj.to_dict())
        return applied

    @transient
    def annotate(self, api_version: str, kind: str, name: str, namespace: str | None,
                 annotations: dict[str, str]) -> None:
        """A JSON merge patch of annotations only (an apply would drop the fields it omits)."""
        self.dynamic.patch(self.resource(api_version, kind), name=name, namespace=namespace,
                           body={"metadata": {"annotations": annotations}},
                           content_type="application/merge-patch+json")

    @transient
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        try:
            return self.dynamic.get(self.resource(api_version, kind), name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    @transient
    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        result = self.dynamic.get(self.resource(api_version, kind), namespace=namespace,
                                  label_selector=label_selector)
        return [item.to_dict() for item in result.items]

    @transient
    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete with background propagation; False when it was already gone."""
        try:
            self.dynamic.delete(self.resource(api_version, kind), name=name, namespace=namespace,
                                body={"propagationPolicy": "Background"})
            return True
        except NotFoundError:
            return False

    # --- waiting ---------------------------------------------------------------------
    def wait_for(self, api_version: str, kind: str, name: str, condition: Condition, *,
                 namespace: str | None = None, timeout: float, what: str, where: str = "") -> dict | None:
        """Watch one object until ``condition(obj)`` holds (obj is None when absent).

        ``condition`` returns (done, short state description). On timeout the error
        carries the last description seen.
        """
        res = self.resource(api_version, kind)
        remaining = deadline_clock(timeout)
        where = where or f"kubectl --kubeconfig {self.kubeconfig} get {kind.lower()} {name}" + (
            f" -n {namespace}" if namespace else "")
        state = "not looked at yet"
        while remaining() > 0:
            listing = transient(self.dynamic.get)(res, namespace=namespace,
                                                  field_selector=f"metadata.name={name}")
            obj = listing.items[0].to_dict() if listing.items else None
            done, state = condition(obj)
            if done:
                return obj
            try:
                for event in self.dynamic.watch(res, namespace=namespace, name=name,
                                                resource_version=listing.metadata.resourceVersion,
                                                timeout=max(1, int(min(remaining(), WATCH_CHUNK_SECONDS)))):
                    obj = None if event["type"] == "DELETED" else event["raw_object"]
                    done, state = condition(obj)
                    if done:
                        return obj
                    if remaining() <= 0:
                        break
            except ApiException as exc:
                if exc.status != 410 and not is_transient(exc):  # 410: history expired, re-list
                    raise
            except urllib3.exceptions.HTTPError:
                pass  # the watch connection broke: re-list and watch again
        raise WaitTimeout(what, timeout, state, where)

    def wait_deleted(self, api_version: str, kind: str, name: str, *, namespace: str | None = None,
                     timeout: float, what: str | None = None) -> None:
        def gone(obj: dict | None) -> tuple[bool, str]:
            if obj is None:
                return True, "gone"
            phase = (obj.get("status") or {}).get("phase", "")
            return False, f"still present{' (' + phase + ')' if phase else ''}"
        self.wait_for(api_version, kind, name, gone, namespace=namespace, timeout=timeout,
                      what=what or f"{kind} {name} to be deleted")

    # --- namespaces, logs, events --------------------------------------------------
    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict:
        return self.apply([{"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": name, "labels": labels or {}}}])[0]

    def delete_namespace(self, name: str, *, wait: bool = True, timeout: float = 120) -> None:
        if self.delete("v1", "Namespace", name) and wait:
            self.wait_deleted("v1", "Namespace", name, timeout=timeout,
                              what=f"namespace {name} to be deleted (finalizers, namespace controller)")

    @transient
    def pod_logs(self, namespace: str, pod: str, container: str | None = None, previous: bool = False) -> str:
        """A container's log; ``previous``: of its instance before the last restart."""
        try:
            return self.core.read_namespaced_pod_log(pod, namespace, container=container, previous=previous)
        except ApiException as exc:
            if exc.status in (400, 404):
                return f"<no log for pod {pod} container {container or '-'}: {exc.reason}>"
            raise

    @transient
    def events(self, namespace: str) -> list[dict]:
        """Namespace events, oldest first."""
        items = [self.api.sanitize_for_serialization(e) for e in self.core.list_namespaced_event(namespace).items]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
