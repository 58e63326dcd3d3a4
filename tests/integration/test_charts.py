"""The components' own Helm charts at their pins, installed into a real cluster the way the deploy installs them.

The values and chart paths are read from skaffold.yaml (not copied), and the CRDs the harness
applies itself are applied first, as ``SkaffoldBackend.deploy`` does. Two defects of the first
deploy path fail here: CRDs the harness pre-installed that the server chart renders too (helm
refuses objects it does not own), and the controller chart's own Redis (``redis.deploy=true``
renders ``value: yes``, a YAML bool the API rejects).
"""

from __future__ import annotations

import os

import pytest
import yaml

from e2e_harness.backends.skaffold import install_release_crds
from e2e_harness.commands import run
from e2e_harness.components import COMPONENTS, SourceResolver, git_mirror_from
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR

pytestmark = [pytest.mark.needs_go, pytest.mark.timeout(900)]

HELM = PROJECT_DIR / ".build" / "bin" / "helm"


def skaffold_helm_releases() -> dict[str, dict]:
    """module name -> its helm release, as skaffold.yaml declares it."""
    docs = list(yaml.safe_load_all((PROJECT_DIR / "skaffold.yaml").read_text()))
    return {doc["metadata"]["name"]: doc["deploy"]["helm"]["releases"][0]
            for doc in docs if "helm" in (doc.get("deploy") or {})}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    release = load_release(PROJECT_DIR / "release.env", environ={})
    resolver = SourceResolver(tmp_path_factory.mktemp("build"), git_mirror=git_mirror_from(None, os.environ),
                              progress=lambda line: None)
    return [resolver.resolve(c, release.pin(c.pin_key)) for c in COMPONENTS
            if c.name in ("backup-repository", "backup-maker-controller")]


def helm_install_command(release: dict, sources, kubeconfig) -> list[str]:
    """``helm install`` with exactly the chart, namespace and values skaffold.yaml gives the release."""
    chart = release["chartPath"]
    for source in sources:   # .build/<component>/<chart dir> -> the resolved checkout
        prefix = f".build/{source.component.name}/"
        if chart.startswith(prefix):
            chart = str(source.path / chart.removeprefix(prefix))
    cmd = [str(HELM), "install", release["name"], chart, "--namespace", release["namespace"], "--create-namespace",
           "--kubeconfig", str(kubeconfig)]
    for values in release.get("valuesFiles") or []:
        cmd += ["--values", str(PROJECT_DIR / values)]
    for key, value in (release.get("setValues") or {}).items():
        cmd += ["--set", f"{key}={value}"]
    # what skaffold templates in: any image reference will do, nothing is pulled before the install returns
    for key in release.get("setValueTemplates") or {}:
        cmd += ["--set", f"{key}={'selftest' if key.endswith('tag') else 'registry.invalid/selftest'}"]
    return cmd


@pytest.mark.parametrize("module", ["server", "controller"])
def test_the_pinned_chart_installs_with_the_deploys_values_after_the_harness_crds(module, node_cluster, sources):
    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run `make tools` (make check does)")
    release = skaffold_helm_releases()[module]
    install_release_crds(node_cluster.kube, sources)   # what the deploy applies before its modules
    result = run(helm_install_command(release, sources, node_cluster.kubeconfig), check=False, timeout=300,
                 what=f"helm install {release['name']}")
    try:
        assert result.returncode == 0, f"helm install of the {module} chart failed:\n{result.stdout}{result.stderr}"
        listed = run([HELM, "list", "--namespace", release["namespace"], "--kubeconfig", node_cluster.kubeconfig,
                      "--output", "json"], timeout=60).stdout
        assert [(r["name"], r["status"]) for r in yaml.safe_load(listed)] == [(release["name"], "deployed")]
    finally:
        run([HELM, "uninstall", release["name"], "--namespace", release["namespace"], "--kubeconfig",
             node_cluster.kubeconfig, "--wait", "--timeout", "120s"], check=False, timeout=180)
