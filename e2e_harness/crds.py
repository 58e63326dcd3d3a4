"""CustomResourceDefinitions of the components, taken from the right place in their sources.

The controller's CRDs come from ``config/crd/bases`` (the Helm chart's copies are
stale and lack status fields the scenarios assert on). The server's chart installs
its own CRDs (``templates/crd.yaml``); the harness leaves them to it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .components import ResolvedSource
from .kube import Kube

CONTROLLER_CRD_DIR = Path("config/crd/bases")


class CrdError(RuntimeError):
    pass


def controller_crds(source: ResolvedSource) -> list[dict]:
    directory = source.path / CONTROLLER_CRD_DIR
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CrdError(f"{source.component.name} at {source.revision}: no CRDs in {directory}")
    return [doc for f in files for doc in _crd_documents(f)]


def install_crds(kube: Kube, crds: list[dict], timeout: float = 60) -> None:
    """Apply CRDs and wait until the API server serves each of them."""
    kube.apply(crds)
    for crd in crds:
        name = crd["metadata"]["name"]
        kube.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", name, _established,
                      timeout=timeout, what=f"CRD {name} to be Established")


def _established(obj: dict | None) -> tuple[bool, str]:
    if obj is None:
        return False, "absent"
    conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
    established = conditions.get("Established", {})
    return established.get("status") == "True", f"Established={established.get('status', 'unknown')}"


def _crd_documents(path: Path) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as exc:
        raise CrdError(f"{path}: not valid YAML: {exc}") from None
    wrong = [d.get("kind") for d in docs if d.get("kind") != "CustomResourceDefinition"]
    if wrong:
        raise CrdError(f"{path}: expected only CustomResourceDefinition documents, found {wrong}")
    return docs
