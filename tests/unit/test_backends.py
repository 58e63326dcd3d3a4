"""The k3d and existing backends cannot run here (no Docker engine): their commands are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2e_harness.backends import BackendError, BackendUnavailable, backend_class
from e2e_harness.backends.existing import user_kubeconfig
from e2e_harness.backends.k3d import K3dBackend, K3dCommands
from e2e_harness.backends.local import LocalBackend
from e2e_harness.backends.portforward import PortForward
from e2e_harness.backends.skaffold import Skaffold

K3D = K3dCommands(Path("/p/.build/bin/k3d"), "e2e", "v1.31.5-k3s1")


def test_auto_picks_k3d_only_when_a_docker_engine_answers(monkeypatch):
    from e2e_harness import docker
    monkeypatch.setattr(docker, "engine_answers", lambda: True)
    assert backend_class("auto") is K3dBackend
    monkeypatch.setattr(docker, "engine_answers", lambda: False)
    assert backend_class("auto") is LocalBackend
    with pytest.raises(BackendError, match="unknown backend 'kind'"):
        backend_class("kind")


def test_k3d_cluster_uses_a_registry_reachable_without_hosts_edits():
    cmd = K3D.create_cluster(Path("/p/.build/reg.yaml"))
    assert cmd[:4] == ["/p/.build/bin/k3d", "cluster", "create", "e2e"]
    assert cmd[cmd.index("--image") + 1] == "rancher/k3s:v1.31.5-k3s1"
    assert cmd[cmd.index("--registry-use") + 1] == "k3d-e2e-registry:5000"
    assert cmd[cmd.index("--registry-config") + 1] == "/p/.build/reg.yaml"
    # Never touch the user's kubeconfig or current context.
    assert "--kubeconfig-update-default=false" in cmd and "--kubeconfig-switch-context=false" in cmd
    assert K3D.create_registry(41234) == ["/p/.build/bin/k3d", "registry", "create", "e2e-registry",
                                          "--port", "127.0.0.1:41234"]
    # Images pushed to localhost:<port> (always resolvable) are pulled via the in-network name
    # (ghcr.io too: tests/unit/test_k3d.py).
    mirrors = yaml.safe_load(K3D.registry_config(41234))["mirrors"]
    assert mirrors["localhost:41234"] == {"endpoint": ["http://k3d-e2e-registry:5000"]}


def test_k3d_teardown_commands():
    assert K3D.delete_cluster() == ["/p/.build/bin/k3d", "cluster", "delete", "e2e"]
    assert K3D.delete_registry() == ["/p/.build/bin/k3d", "registry", "delete", "k3d-e2e-registry"]
    assert K3D.kubeconfig() == ["/p/.build/bin/k3d", "kubeconfig", "get", "e2e"]
    assert K3D.context == "k3d-e2e"


def test_no_command_needs_sudo_or_hosts_edits():
    commands = [K3D.create_cluster(Path("r")), K3D.create_registry(1), K3D.delete_cluster(),
                K3D.delete_registry(), K3D.list_clusters()]
    flat = " ".join(" ".join(c) for c in commands) + K3D.registry_config(1)
    assert "sudo" not in flat and "/etc/hosts" not in flat


def test_skaffold_run_targets_one_module_with_explicit_kubeconfig_and_registry():
    sk = Skaffold(Path("/b/skaffold"), Path("/p"), Path("/p/.build/kc"), "k3d-e2e", "localhost:41234")
    cmd = sk.run_command("server", "run-1")
    assert cmd[:2] == ["/b/skaffold", "run"]
    for flag, value in [("--filename", "/p/skaffold.yaml"), ("--module", "server"), ("--kubeconfig", "/p/.build/kc"),
                        ("--kube-context", "k3d-e2e"), ("--default-repo", "localhost:41234"), ("--tag", "run-1")]:
        assert cmd[cmd.index(flag) + 1] == value
    with pytest.raises(ValueError, match="unknown skaffold module"):
        sk.run_command("everything", "t")


def test_skaffold_yaml_defines_the_modules_the_backends_deploy():
    import yaml
    from .conftest import PROJECT_DIR
    from e2e_harness.backends.skaffold import MODULES
    docs = list(yaml.safe_load_all((PROJECT_DIR / "skaffold.yaml").read_text()))
    assert {d["metadata"]["name"] for d in docs} == set(MODULES)
    for doc in docs:
        for artifact in (doc.get("build") or {}).get("artifacts", []):
            assert artifact["context"].startswith(".build/"), "images are built from the resolved sources"


def test_port_forward_lets_the_os_pick_the_local_port():
    pf = PortForward(Path("/b/kubectl"), Path("/kc"), "backups", "svc", 8080, "ctx")
    assert pf.command() == ["/b/kubectl", "--context", "ctx", "--kubeconfig", "/kc", "--namespace", "backups",
                            "port-forward", "--address", "127.0.0.1", "service/svc", ":8080"]


def test_existing_backend_refuses_a_multi_file_kubeconfig(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("x")
    b.write_text("y")
    with pytest.raises(BackendUnavailable, match="exactly one"):
        user_kubeconfig({"KUBECONFIG": f"{a}:{b}"})
    assert user_kubeconfig({"KUBECONFIG": str(a)}) == a
    with pytest.raises(BackendUnavailable, match="not found"):
        user_kubeconfig({"KUBECONFIG": str(tmp_path / "missing")})


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: {current}
clusters:
- name: prod
  cluster: {{server: "https://127.0.0.1:6443"}}
contexts:
- name: prod-admin
  context: {{cluster: prod, user: admin}}
- name: staging
  context: {{cluster: gone, user: admin}}
users:
- name: admin
  user: {{token: t}}
"""


def _existing(tmp_path, text: str, context: str | None):
    from e2e_harness.backends import Settings
    from e2e_harness.backends.existing import ExistingBackend
    from e2e_harness.release import load_release
    from .conftest import PROJECT_DIR

    path = tmp_path / "kubeconfig"
    path.write_text(text)
    settings = Settings(release=load_release(PROJECT_DIR / "release.env", environ={}), project_dir=PROJECT_DIR,
                        build_dir=tmp_path / ".build", artifacts_dir=tmp_path / "artifacts", run_id="t",
                        kube_context=context)
    return ExistingBackend(settings, environ={"KUBECONFIG": str(path)}), path


def test_existing_backend_accepts_a_kubeconfig_with_the_context(tmp_path):
    backend, _ = _existing(tmp_path, KUBECONFIG.format(current="prod-admin"), "prod-admin")
    backend.preflight()
    from e2e_harness.backends.existing import check_kubeconfig
    assert check_kubeconfig(backend.kubeconfig, None) == "prod-admin"  # its current-context


def test_existing_backend_names_the_line_of_a_kubeconfig_that_does_not_parse(tmp_path):
    backend, path = _existing(tmp_path, KUBECONFIG.format(current="prod: admin"), "prod-admin")
    with pytest.raises(BackendUnavailable) as error:
        backend.preflight()
    message = str(error.value)
    assert message.startswith(f"existing backend: kubeconfig {path} does not parse as YAML at line 3, "
                              "column 22: mapping values are not allowed here")
    assert "set KUBECONFIG to a valid kubeconfig" in message
    backend, path = _existing(tmp_path, "just a string\n", None)
    with pytest.raises(BackendUnavailable, match=f"kubeconfig {path} is not a kubeconfig: expected a YAML mapping"):
        backend.preflight()


def test_existing_backend_lists_the_contexts_when_the_one_asked_for_is_missing(tmp_path):
    backend, path = _existing(tmp_path, KUBECONFIG.format(current="prod-admin"), "prod")
    with pytest.raises(BackendUnavailable) as error:
        backend.preflight()
    assert str(error.value) == (f"existing backend: kubeconfig {path}: context 'prod' (--kube-context) is not in "
                                "it; it has: prod-admin, staging. Pass --kube-context with one of those")
    backend, path = _existing(tmp_path, KUBECONFIG.format(current="old"), None)
    with pytest.raises(BackendUnavailable, match="context 'old' \\(its current-context\\) is not in it; it has: "
                                                 "prod-admin, staging"):
        backend.preflight()
    backend, path = _existing(tmp_path, KUBECONFIG.format(current="staging"), None)
    with pytest.raises(BackendUnavailable, match="context 'staging' names cluster 'gone', which is not among its "
                                                 "clusters \\(prod\\)"):
        backend.preflight()


def test_a_bad_kubeconfig_stops_the_run_before_sources_are_resolved(tmp_path, pytester, monkeypatch):
    """Through pytest (in this process, pytester): the run says what is wrong with the kubeconfig and resolves
    and builds nothing."""
    from .conftest import PROJECT_DIR

    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(current="prod-admin"))
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_DIR)
        result = pytester.runpytest("tests/e2e/test_install.py", "--backend", "existing", "--kube-context", "nope",
                                    "-p", "no:cacheprovider", "--artifacts-dir", str(tmp_path / "artifacts"),
                                    "--build-dir", str(tmp_path / "build"), "-q", "-rs")
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == 5, output[-3000:]
    assert "context 'nope' (--kube-context) is not in it; it has: prod-admin, staging" in output, output[-3000:]
    assert "resolving component sources" not in output
    assert not (tmp_path / "build").exists() or not any((tmp_path / "build").iterdir())
