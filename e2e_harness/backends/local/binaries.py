"""The local backend's Kubernetes at the release's pinned versions: control plane, node, CoreDNS.

kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl from
k8s.io/kubernetes at KUBERNETES_VERSION; etcd at ETCD_VERSION; CoreDNS at COREDNS_VERSION;
local-path-provisioner at LOCAL_PATH_PROVISIONER_VERSION. Ahead of a run also the binaries of every
kubectl-light-image tag ``kubectl_image`` pins (kubectl and kubectl-neat of that image, about 11 minutes on
2 cores when cold), so a run's deploy only assembles that image.

Looked for, in order: on PATH, in ``KUBEBUILDER_ASSETS`` (the envtest convention),
in the cache outside the repository (``$XDG_CACHE_HOME/e2e-harness``), and
otherwise built once from Go modules (``gomodules.find_or_build``). ``k8s.io/kubernetes``
is not meant to be a dependency, so a small generated module requires it and replaces
each ``k8s.io/<staging>`` module (which its own go.mod points at ./staging) with the
published ``v0.Y.Z`` of the same release.

``python -m e2e_harness.backends.local.binaries`` finds or builds them ahead of a run.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path

from ... import gomodules
from ...gomodules import KUBE_MODULE, Binary, Pinned, cache_root

log = logging.getLogger("e2e_harness.local.binaries")

# The control plane, and the node (kubelet, kube-scheduler, kube-proxy); kubectl for `kubectl exec` and tests.
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
COREDNS_MODULE = "github.com/coredns/coredns"
LOCAL_PATH_MODULE = "github.com/rancher/local-path-provisioner"
GO_MISSING_HINT = "or put the binaries on PATH / in KUBEBUILDER_ASSETS"

BinaryError = gomodules.GoModuleError  # what a failed download or build raises


def _version_args(name: str) -> tuple[str, ...]:
    # kubectl has no --version flag; the others print "Kubernetes v1.34.4", "etcd Version: 3.6.4", "CoreDNS-1.12.1".
    return ("version", "--client") if name == "kubectl" else ("--version",)


def _elsewhere(name: str) -> list[Path]:
    """Where a binary may be before the cache: on PATH, in ``KUBEBUILDER_ASSETS`` (the envtest convention)."""
    found = [Path(on_path)] if (on_path := shutil.which(name)) else []
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    return found + ([Path(assets) / name] if assets else [])


def find(name: str, version: str, subdir: str) -> Path | None:
    """The first existing binary named ``name`` that reports ``version``."""
    return next((path for path in [*_elsewhere(name), cache_root() / subdir / version / "bin" / name]
                 if gomodules.reports(path, version, _version_args(name))), None)


def _find_or_build(target: Pinned, progress, how_long: str = "") -> dict[str, Path]:
    return gomodules.find_or_build(target, elsewhere=_elsewhere, progress=progress, how_long=how_long,
                                   go_hint=GO_MISSING_HINT)


def kubernetes_ldflags(version: str) -> str:
    """The version stamps of a k8s.io/kubernetes build: what ``--version``, ``kubectl version`` and /version report."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = "k8s.io/component-base/version"
    return f"-X {stamp}.gitVersion={version} -X {stamp}.gitMajor={major} -X {stamp}.gitMinor={minor}"


def kubernetes_binaries(version: str, progress=log.info) -> dict[str, Path]:
    return _find_or_build(Pinned(KUBE_MODULE, version, "kubernetes",
                                 tuple(Binary(c, f"{KUBE_MODULE}/cmd/{c}", _version_args(c)) for c in KUBE_COMMANDS),
                                 kubernetes_ldflags(version)), progress, ", about 12 minutes on 2 cores")


def _module_binary(name: str, module: str, version: str, progress, how_long: str = "",
                   version_args: tuple[str, ...] | None = ("--version",)) -> Path:
    """``name`` at ``version`` (found, or built once from ``module``'s main package)."""
    target = Pinned(module, version, name, (Binary(name, module, version_args),))
    return _find_or_build(target, progress, how_long)[name]


def etcd_binary(version: str, progress=log.info) -> Path:
    return _module_binary("etcd", ETCD_MODULE, version, progress)


def coredns_binary(version: str, progress=log.info) -> Path:
    """CoreDNS, for the real node's cluster DNS (runs as a pod from a static image)."""
    return _module_binary("coredns", COREDNS_MODULE, version, progress, ", about 4 minutes on 2 cores")


def local_path_provisioner_binary(version: str, progress=log.info) -> Path:
    """rancher's local-path-provisioner (what k3s ships), for PersistentVolumeClaims on the real node;
    it prints no version: the cache directory names it."""
    return _module_binary("local-path-provisioner", LOCAL_PATH_MODULE, version, progress, version_args=None)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ...release import ReleaseError, load_release
    from .images import NoRecipe
    from .kubectl_image import kubectl_light_images

    parser = argparse.ArgumentParser(prog="python -m e2e_harness.backends.local.binaries",
                                     description="Find or build the local backend's control plane binaries.")
    parser.add_argument("--release-env", type=Path, default=Path("release.env"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="binaries: %(message)s")
    try:
        release = load_release(args.release_env)
        started = time.monotonic()
        for name, path in kubernetes_binaries(release["KUBERNETES_VERSION"], progress=log.info).items():
            print(f"{name} {release['KUBERNETES_VERSION']}: {path}")
        print(f"etcd {release['ETCD_VERSION']}: {etcd_binary(release['ETCD_VERSION'], progress=log.info)}")
        print(f"coredns {release['COREDNS_VERSION']}: "
              f"{coredns_binary(release['COREDNS_VERSION'], progress=log.info)}")
        version = release["LOCAL_PATH_PROVISIONER_VERSION"]
        print(f"local-path-provisioner {version}: {local_path_provisioner_binary(version, progress=log.info)}")
        for tag, built in kubectl_light_images(progress=log.info).items():
            print(f"kubectl-light-image {tag}: {', '.join(str(path) for path in built.values())}")
        log.info("ready in %.0fs", time.monotonic() - started)
    except (ReleaseError, BinaryError, NoRecipe) as exc:
        print(f"binaries: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
