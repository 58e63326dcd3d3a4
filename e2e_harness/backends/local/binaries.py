"""The local backend's Kubernetes at the release's pinned versions: control plane, node, CoreDNS.

kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl from
k8s.io/kubernetes at KUBERNETES_VERSION; etcd at ETCD_VERSION; CoreDNS at COREDNS_VERSION;
local-path-provisioner at LOCAL_PATH_PROVISIONER_VERSION.

Looked for, in order: on PATH, in ``KUBEBUILDER_ASSETS`` (the envtest convention),
in the cache outside the repository (``$XDG_CACHE_HOME/e2e-harness``), and
otherwise built once from Go modules. ``k8s.io/kubernetes`` is not meant to be a
dependency, so a small generated module requires it and replaces each
``k8s.io/<staging>`` module (which its own go.mod points at ./staging) with the
published ``v0.Y.Z`` of the same release.

``python -m e2e_harness.backends.local.binaries`` finds or builds them ahead of a run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

from ... import gomodules
from ...commands import CommandError, run
from ...gomodules import KUBE_MODULE, cache_root  # noqa: F401 - cache_root: others import it from here

log = logging.getLogger("e2e_harness.local.binaries")

# The control plane, and the node (kubelet, kube-scheduler, kube-proxy); kubectl for `kubectl exec` and tests.
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
COREDNS_MODULE = "github.com/coredns/coredns"
LOCAL_PATH_MODULE = "github.com/rancher/local-path-provisioner"
GO_MISSING_HINT = "or put the binaries on PATH / in KUBEBUILDER_ASSETS"

BinaryError = gomodules.GoModuleError  # what a failed download or build raises


def _version_of(binary: Path) -> str:
    # kubectl has no --version flag; the others print "Kubernetes v1.34.4", "etcd Version: 3.6.4", "CoreDNS-1.12.1".
    args = ["version", "--client"] if binary.name == "kubectl" else ["--version"]
    try:
        out = run([binary, *args], timeout=30, check=False)
    except CommandError:
        return ""
    m = re.search(r"v?\d+\.\d+\.\d+", out.stdout + out.stderr)
    return ("v" + m.group(0).lstrip("v")) if m else ""


def _candidates(name: str, version: str, subdir: str) -> list[Path]:
    found = []
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found.append(Path(assets) / name)
    found.append(cache_root() / subdir / version / "bin" / name)
    return found


def find(name: str, version: str, subdir: str) -> Path | None:
    """The first existing binary named ``name`` that reports ``version``."""
    for path in _candidates(name, version, subdir):
        if path.is_file() and os.access(path, os.X_OK) and _version_of(path) == version:
            return path
    return None


def kubernetes_binaries(version: str, progress=log.info) -> dict[str, Path]:
    found = {name: find(name, version, "kubernetes") for name in KUBE_COMMANDS}
    if all(found.values()):
        return found  # type: ignore[return-value]
    dest = cache_root() / "kubernetes" / version / "bin"
    progress(f"building {', '.join(KUBE_COMMANDS)} {version} from Go modules "
             f"(once; cached in {dest}, about 12 minutes on 2 cores)")
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = "k8s.io/component-base/version"  # what `--version` and /version report
    ldflags = f"-X {stamp}.gitVersion={version} -X {stamp}.gitMajor={major} -X {stamp}.gitMinor={minor}"
    _build(KUBE_MODULE, version, [f"{KUBE_MODULE}/cmd/{c}" for c in KUBE_COMMANDS], dest,
           replaces=_staging_replaces(version), ldflags=ldflags)
    return {name: dest / name for name in KUBE_COMMANDS}


def _module_binary(name: str, module: str, version: str, progress, how_long: str = "") -> Path:
    """``name`` at ``version`` (found, or built once from ``module``'s main package)."""
    found = find(name, version, name)
    if found:
        return found
    dest = cache_root() / name / version / "bin"
    progress(f"building {name} {version} from Go modules (once; cached in {dest}{how_long})")
    _build(module, version, [module], dest, outputs={module: name})
    return dest / name


def etcd_binary(version: str, progress=log.info) -> Path:
    return _module_binary("etcd", ETCD_MODULE, version, progress)


def coredns_binary(version: str, progress=log.info) -> Path:
    """CoreDNS, for the real node's cluster DNS (runs as a pod from a static image)."""
    return _module_binary("coredns", COREDNS_MODULE, version, progress, ", about 4 minutes on 2 cores")


def local_path_provisioner_binary(version: str, progress=log.info) -> Path:
    """rancher's local-path-provisioner (what k3s ships), for PersistentVolumeClaims on the real node."""
    dest = cache_root() / "local-path-provisioner" / version / "bin"
    binary = dest / "local-path-provisioner"
    if binary.is_file():   # it prints no version: the cache directory names it
        return binary
    progress(f"building local-path-provisioner {version} from Go modules (once; cached in {dest})")
    _build(LOCAL_PATH_MODULE, version, [LOCAL_PATH_MODULE], dest, outputs={LOCAL_PATH_MODULE: "local-path-provisioner"})
    return binary


def _staging_replaces(version: str) -> dict[str, str]:
    """k8s.io/kubernetes's staging modules at their published ``v0.Y.Z``: ``{module: "module v0.Y.Z"}``."""
    return gomodules.kubernetes_staging_replaces(version)


def _go_download(module_at_version: str) -> dict:
    return gomodules.go_download(module_at_version)


def _build(module: str, version: str, packages: list[str], dest: Path, *,
           replaces: dict[str, str] | None = None, outputs: dict[str, str] | None = None,
           ldflags: str = "") -> None:
    """Build ``packages`` of ``module@version`` through a generated module into ``dest`` (see gomodules.build)."""
    gomodules.build(module, version, packages, dest, replaces=replaces, outputs=outputs, ldflags=ldflags,
                    go_missing_hint=GO_MISSING_HINT)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ...release import ReleaseError, load_release

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
        log.info("ready in %.0fs", time.monotonic() - started)
    except (ReleaseError, BinaryError) as exc:
        print(f"binaries: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
