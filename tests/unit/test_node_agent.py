"""The node agent against the real local control plane: pods run on the host as a kubelet would.

Covers what the local backend's scenarios rely on: Jobs complete or fail through the
real Job controller, Secrets and ConfigMaps reach containers through env and files
mounted at absolute paths (in a private mount namespace, never on the host), unknown
images fail plainly, deadlines and deletions kill processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from e2e_harness.backends.local import node_agent
from e2e_harness.backends.local.node_agent import (MountPlan, NodeAgent, Toolset, UnknownImage, _host_tools,
                                                   resolve_image)
from e2e_harness.jobs import job_conditions, job_finished, job_outcome
from e2e_harness.kube import Kube
from e2e_harness.waiting import Observation, poll_until


@pytest.fixture
def ns(kube, agent):
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name)
    yield name


def job(name: str, command: list[str], *, backoff: int = 0, extra_spec: dict | None = None,
        container: dict | None = None) -> dict:
    c = {"name": "main", "image": "busybox:1.36", "command": command, **(container or {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": backoff, "template": {"spec": {"restartPolicy": "Never", "containers": [c],
                                                                       **(extra_spec or {})}}}}


def wait_job(kube: Kube, agent, ns: str, name: str, expect: str, timeout: float = 90) -> dict:
    obj = kube.wait_for("batch/v1", "Job", name, job_finished, namespace=ns, timeout=timeout,
                        what=f"Job {name} to finish")
    if job_outcome(obj) != expect:
        conds = job_conditions(obj)
        pods = [p["metadata"]["name"] for p in job_pods(kube, ns, name)]
        logs = {p: agent.pod_logs(ns, p) for p in pods}
        statuses = [p["status"] for p in job_pods(kube, ns, name)]
        raise AssertionError(f"Job {name} ended {conds}, expected {expect}; pod logs {logs}; pod status {statuses}")
    return obj


def job_pods(kube: Kube, ns: str, name: str) -> list[dict]:
    return kube.list("v1", "Pod", ns, label_selector=f"job-name={name}")


def test_job_completes_and_logs(kube, agent, ns):
    kube.apply([job("hello", ["sh", "-c", "echo hi"])], namespace=ns)
    wait_job(kube, agent, ns, "hello", "Complete", timeout=60)
    pods = job_pods(kube, ns, "hello")
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "local-node"
    assert agent.pod_logs(ns, pod["metadata"]["name"]).strip() == "hi"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"


def test_failing_job(kube, agent, ns):
    kube.apply([job("fail", ["sh", "-c", "echo failing; exit 3"], backoff=1)], namespace=ns)
    obj = wait_job(kube, agent, ns, "fail", "Failed", timeout=90)
    assert obj["status"].get("failed") == 2
    pods = job_pods(kube, ns, "fail")
    assert len(pods) == 2
    for p in pods:
        assert p["status"]["phase"] == "Failed"
        assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_secret_and_configmap(kube, agent, ns):
    kube.apply([
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
         "stringData": {"password": "s3cret", "gpg": "KEYDATA", "token": "tok"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "x"}},
         "data": {"mode": "fast", "config.yaml": "a: 1\n"}},
    ], namespace=ns)
    script = ("echo PASSWORD=$PASSWORD; echo MODE=$MODE; echo FROM_token=$S_token; echo CM_mode=$C_mode; "
              "echo POD=$POD_NAME NS=$POD_NS IP=$POD_IP; "
              "echo GPG=$(cat /mnt/secrets/gpg-key); stat -c MODE_GPG=%a /mnt/secrets/gpg-key; "
              "ls /mnt/secrets | tr '\\n' ' ' | sed 's/^/SECRETS_LS=/'; echo; "
              "echo CFG=$(cat /usr/backup-maker/config.yaml); test -x /usr/bin/env && echo USR_OK; "
              "touch /mnt/secrets/x 2>/dev/null || echo RO_OK; echo WD=$(pwd)")
    container = {
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
                {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x",
                                                                       "optional": True}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}, {"configMapRef": {"name": "c"}, "prefix": "C_"}],
        "workingDir": "/srv/work-here",
        "volumeMounts": [{"name": "sec", "mountPath": "/mnt/secrets", "readOnly": True},
                         {"name": "cfg", "mountPath": "/usr/backup-maker"}]}
    spec = {"volumes": [{"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400,
                                                   "items": [{"key": "gpg", "path": "gpg-key"}]}},
                        {"name": "cfg", "configMap": {"name": "c"}}]}
    kube.apply([job("reader", ["sh", "-c", script], container=container, extra_spec=spec)], namespace=ns)
    wait_job(kube, agent, ns, "reader", "Complete", timeout=60)
    pod = job_pods(kube, ns, "reader")[0]["metadata"]["name"]
    out = agent.pod_logs(ns, pod)
    lines = out.splitlines()
    for expected in ["PASSWORD=s3cret", "MODE=fast", "FROM_token=tok", "CM_mode=fast",
                     f"POD={pod} NS={ns} IP=127.0.0.1", "GPG=KEYDATA", "MODE_GPG=400", "SECRETS_LS=gpg-key ",
                     "CFG=a: 1", "USR_OK", "RO_OK", "WD=/srv/work-here"]:
        assert expected in lines, f"{expected!r} not in log:\n{out}"
    assert not Path("/mnt/secrets").exists() and not Path("/usr/backup-maker").exists()
    assert not Path("/srv/work-here").exists()


def pod_manifest(name: str, command: list[str], image: str = "busybox", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image,
                                                               "command": command}], **spec}}


def phase_is(*phases):
    def check(obj):
        st = (obj or {}).get("status") or {}
        return st.get("phase") in phases, f"phase={st.get('phase')} reason={st.get('reason')} msg={st.get('message')}"
    return check


def test_unknown_image(kube, agent, ns):
    kube.apply([pod_manifest("unk", ["sh", "-c", "echo should-not-run"], image="example.org/nothing:1")],
               namespace=ns)
    pod = kube.wait_for("v1", "Pod", "unk", phase_is("Failed", "Succeeded"), namespace=ns, timeout=30,
                        what="pod unk to end")
    assert pod["status"]["phase"] == "Failed"
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "UnknownImage"
    assert "example.org/nothing:1" in term["message"] and "busybox" in term["message"]
    assert "should-not-run" not in agent.pod_logs(ns, "unk")


def test_active_deadline(kube, agent, ns):
    kube.apply([pod_manifest("slow", ["sleep", "300"], activeDeadlineSeconds=3)], namespace=ns)
    pod = kube.wait_for("v1", "Pod", "slow", phase_is("Failed", "Succeeded"), namespace=ns, timeout=40,
                        what="pod slow to be killed")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "DeadlineExceeded"


def test_delete_running_pod_kills_process(kube, agent, ns):
    # "$$" is an escaped "$" in Kubernetes command expansion
    kube.apply([pod_manifest("victim", ["sh", "-c", "echo PID=$$$$; exec sleep 300"])], namespace=ns)
    kube.wait_for("v1", "Pod", "victim", phase_is("Running"), namespace=ns, timeout=30, what="victim running")

    def pid() -> Observation:
        for line in agent.pod_logs(ns, "victim").splitlines():
            if line.startswith("PID="):
                return Observation(True, line, int(line[4:]))
        return Observation(False, "no PID line yet")
    victim_pid = poll_until(pid, what="victim pid", timeout=10, interval=0.2).value
    os.kill(victim_pid, 0)  # alive
    kube.delete("v1", "Pod", "victim", namespace=ns)
    kube.wait_deleted("v1", "Pod", "victim", namespace=ns, timeout=30)

    def gone() -> Observation:
        try:
            state = Path(f"/proc/{victim_pid}/stat").read_text().split(")")[1].split()[0]
        except FileNotFoundError:
            return Observation(True, "gone")
        return Observation(state == "Z", f"state {state}")
    poll_until(gone, what="victim process gone", timeout=15, interval=0.2)


def test_mount_plan_never_writes_host(tmp_path):
    plan = MountPlan(tmp_path / "stage", _host_tools())
    src = tmp_path / "vol"
    src.mkdir()
    plan.bind("/mnt/secrets-unit-test/x", str(src), True)
    plan.bind("/mnt/secrets-unit-test/x/sub/deeper", str(src), False)
    assert (src / "sub" / "deeper").is_dir()  # created inside the volume, not on the host
    assert not Path("/mnt/secrets-unit-test").exists()
    text = plan.script("/")
    assert "--move" not in text, "a user namespace refuses mount --move"
    assert "remount,bind,ro" in text and " /mnt\n" in text


def test_resolve_image():
    images = {"busybox": Toolset("a"), "ghcr.io/riotkit-org/*": Toolset("b"), "exact:1": Toolset("c")}
    assert resolve_image("busybox:1.36", images).name == "a"
    assert resolve_image("exact:1", images).name == "c"
    assert resolve_image("ghcr.io/riotkit-org/backup-maker:v1", images).name == "b"
    with pytest.raises(UnknownImage, match="nothing"):
        resolve_image("nothing:1", images)


def test_on_failure_restarts_in_place_with_new_top_level_dir(kube, agent, ns):
    """/data does not exist on the host: the root is shadowed and the command runs chrooted."""
    script = "if [ -f /data/seen ]; then echo second-run; else touch /data/seen; echo first-run; exit 1; fi"
    manifest = job("again", ["sh", "-c", script], backoff=3,
                   container={"volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
                   extra_spec={"volumes": [{"name": "scratch", "emptyDir": {}}]})
    manifest["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    kube.apply([manifest], namespace=ns)
    wait_job(kube, agent, ns, "again", "Complete", timeout=60)
    pods = job_pods(kube, ns, "again")
    assert len(pods) == 1
    assert pods[0]["status"]["containerStatuses"][0]["restartCount"] == 1
    out = agent.pod_logs(ns, pods[0]["metadata"]["name"])
    assert out.splitlines() == ["first-run", "second-run"], out
    assert not Path("/data").exists()


def test_init_containers_projected_and_downward_volumes(kube, agent, ns):
    kube.apply([
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p"}, "stringData": {"k": "from-secret"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "q"}, "data": {"k": "from-cm"}},
    ], namespace=ns)
    pod = pod_manifest("init", ["sh", "-c", "cat /etc/podinfo/name; echo; cat /mnt/proj/s /mnt/proj/c; echo; "
                                            "cat /mnt/proj/lbl; echo; cat /mnt/shared/init-was-here"])
    pod["metadata"]["labels"] = {"tier": "gold"}
    pod["spec"]["initContainers"] = [{"name": "first", "image": "busybox", "command":
                                      ["sh", "-c", "echo from-init > /mnt/shared/init-was-here"],
                                      "volumeMounts": [{"name": "shared", "mountPath": "/mnt/shared"}]}]
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "info", "mountPath": "/etc/podinfo"}, {"name": "proj", "mountPath": "/mnt/proj"},
        {"name": "shared", "mountPath": "/mnt/shared"}]
    pod["spec"]["volumes"] = [
        {"name": "shared", "emptyDir": {}},
        {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "proj", "projected": {"sources": [
            {"secret": {"name": "p", "items": [{"key": "k", "path": "s"}]}},
            {"configMap": {"name": "q", "items": [{"key": "k", "path": "c"}]}},
            {"downwardAPI": {"items": [{"path": "lbl", "fieldRef": {"fieldPath": "metadata.labels['tier']"}}]}}]}}]
    kube.apply([pod], namespace=ns)
    obj = kube.wait_for("v1", "Pod", "init", phase_is("Failed", "Succeeded"), namespace=ns, timeout=30,
                        what="pod init to end")
    out = agent.pod_logs(ns, "init")
    assert obj["status"]["phase"] == "Succeeded", (obj["status"], out)
    assert out.splitlines() == ["init", "from-secretfrom-cm", "gold", "from-init"], out
    assert obj["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert "/etc/podinfo" not in Path("/proc/self/mounts").read_text()


def test_namespace_deletion_finishes(kube, agent, ns):
    kube.apply([pod_manifest("lingering", ["sleep", "300"])], namespace=ns)
    kube.wait_for("v1", "Pod", "lingering", phase_is("Running"), namespace=ns, timeout=30, what="running")
    kube.delete_namespace(ns, timeout=60)


def test_stop_kills_processes_and_is_idempotent(kube, tmp_path):
    other = NodeAgent(kube, "other-node", tmp_path / "agent", {"busybox": Toolset("host-shell")},
                         namespace_selector=lambda n: n.startswith("u-"))
    other.register_node()
    other.start()
    name = f"u-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name)
    try:
        kube.apply([pod_manifest("p", ["sh", "-c", "echo PID=$$$$; exec sleep 300"])], namespace=name)
        obj = kube.wait_for("v1", "Pod", "p", phase_is("Running"), namespace=name, timeout=30, what="running")
        assert obj["spec"]["nodeName"] == "other-node"
        pid = poll_until(lambda: Observation("PID=" in other.pod_logs(name, "p"), "waiting for PID",
                                             other.pod_logs(name, "p")), what="pid", timeout=10, interval=0.2)
        pid = int(pid.value.split("PID=")[1].split()[0])
        other.stop()
        other.stop()
        assert not Path(f"/proc/{pid}").exists()
        assert not [t for t in other._threads if t.is_alive()]
    finally:
        other.stop()
        kube.delete("v1", "Node", "other-node")
        kube.delete_namespace(name, wait=False)


def test_pods_that_cannot_run_fail_with_a_reason(kube, agent, ns, monkeypatch):
    monkeypatch.setattr(node_agent, "CONFIG_RETRY_SECONDS", 2)
    no_cmd = pod_manifest("nocmd", [])
    del no_cmd["spec"]["containers"][0]["command"]
    odd_volume = pod_manifest("oddvol", ["true"], volumes=[{"name": "v", "nfs": {"server": "x", "path": "/"}}])
    missing = pod_manifest("missing", ["true"])
    missing["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    kube.apply([no_cmd, odd_volume, missing], namespace=ns)
    for name, reason, words in [("nocmd", "NoCommand", "no command"), ("oddvol", "UnsupportedVolume", "nfs"),
                                ("missing", "CreateContainerConfigError", "absent")]:
        obj = kube.wait_for("v1", "Pod", name, phase_is("Failed", "Succeeded"), namespace=ns, timeout=30,
                            what=f"pod {name} to end")
        assert obj["status"]["phase"] == "Failed"
        assert obj["status"]["reason"] == reason, obj["status"]
        assert words in obj["status"]["message"], obj["status"]["message"]
    node = kube.get("v1", "Node", "local-node")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"


def test_mounts_work_for_a_non_root_user_in_a_user_namespace():
    """What the agent runs when it is not root: unshare --user --map-root-user --mount."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop to an unprivileged user")
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="e2e-userns-", dir="/tmp"))
    try:
        work.chmod(0o755)
        volume = work / "volume"
        volume.mkdir()
        (volume / "gpg-key").write_text("KEY-FOR-NOBODY\n")
        for p in (volume, volume / "gpg-key"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        plan = MountPlan(work / "stage", _host_tools())
        plan.bind("/mnt/secrets-userns-test", str(volume), True)
        script = work / "run.sh"
        script.write_text(plan.script("/"))
        script.chmod(0o755)
        for p in [work, *work.rglob("*")]:
            os.chown(p, 65534, 65534)
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"user namespaces are not allowed for unprivileged users here: {probe.stderr.strip()}")
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 "unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", "--",
                                 "sh", str(script), "cat", "/mnt/secrets-userns-test/gpg-key"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "KEY-FOR-NOBODY\n"
        assert not Path("/mnt/secrets-userns-test").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# An ed25519 public key made for this test (no secret key exists anywhere).
TEST_PUBLIC_KEY = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEawWgPhYJKwYBBAHaRw8BAQdAUKfbw5kO1711jwpRHEVkQRauGeTww1xp9H1p
dGlM1SW0GkUyRSBUZXN0IDxlMmVAZXhhbXBsZS5vcmc+iJAEExYIADgWIQRISQOe
bvZBvq0f7Xpb0eRWcxanMQUCawWgPgIbAwULCQgHAgYVCgkICwIEFgIDAQIeAQIX
gAAKCRBb0eRWcxanMfnzAP9lTuTtxjTQ8Nr8rCx2wRmKV1nAn/rBgQQ5xhHU/TPD
OQEAmanLUMsBy7mKSllk9W2epmuThVC4aoptvAj2naiL6AE=
=uKPp
-----END PGP PUBLIC KEY BLOCK-----
"""
TEST_KEY_FINGERPRINT = "4849039E6EF641BEAD1FED7A5BD1E4567316A731"


def _tree_state(path: Path) -> dict[str, tuple[int, int]]:
    if not path.is_dir():
        return {}
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in path.rglob("*") if p.is_file()}


def test_each_pod_has_its_own_home_and_tmpdir(kube, agent, ns):
    """HOME and TMPDIR are the pod's (0700, shared by its containers), never the agent's: gpg keys stay in the pod."""
    has_gpg = shutil.which("gpg") is not None and shutil.which("gpgconf") is not None
    host_gnupg = Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    host_keyring_before = _tree_state(host_gnupg)
    gpg = ("printf %s \"$KEY\" | gpg --batch --quiet --import 2>&1; "
           "gpg --batch --with-colons --list-keys | grep '^fpr' | head -1 | sed 's/^/GPG_/'; ") if has_gpg else ""
    pod = pod_manifest("home", ["sh", "-c", "echo HOME=$HOME; echo TMPDIR=$TMPDIR; echo FROM_INIT=$(cat $HOME/from-init); "
                                            "stat -c MODE=%a $HOME $TMPDIR; " + gpg])
    pod["spec"]["containers"][0]["env"] = [{"name": "KEY", "value": TEST_PUBLIC_KEY}]
    pod["spec"]["initContainers"] = [{"name": "first", "image": "busybox",
                                      "command": ["sh", "-c", "echo written-by-init > $HOME/from-init"]}]
    kube.apply([pod], namespace=ns)
    obj = kube.wait_for("v1", "Pod", "home", phase_is("Failed", "Succeeded"), namespace=ns, timeout=60,
                        what="pod home to end")
    out = agent.pod_logs(ns, "home")
    assert obj["status"]["phase"] == "Succeeded", (obj["status"], out)
    pod_dir = agent.work_dir / ns / "home"
    lines = out.splitlines()
    for expected in [f"HOME={pod_dir / 'home'}", f"TMPDIR={pod_dir / 'tmp'}", "FROM_INIT=written-by-init"]:
        assert expected in lines, f"{expected!r} not in log:\n{out}"
    assert lines.count("MODE=700") == 2, out
    assert f"HOME={os.environ.get('HOME')}" not in lines
    if not has_gpg:
        return
    assert f"GPG_fpr:::::::::{TEST_KEY_FINGERPRINT}:" in lines, out
    assert (pod_dir / "home" / ".gnupg" / "pubring.kbx").exists()
    assert _tree_state(host_gnupg) == host_keyring_before, f"the host keyring {host_gnupg} changed"

    def pod_daemons() -> Observation:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(pod_dir).encode() in cmdline.read_bytes():
                    found.append(cmdline.parent.name)
            except OSError:
                pass
        return Observation(not found, f"processes naming {pod_dir}: {found}")
    poll_until(pod_daemons, what="the pod's gpg-agent to end with the pod", timeout=15, interval=0.2)
