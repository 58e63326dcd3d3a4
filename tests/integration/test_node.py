"""The local backend's real node: real containers, cluster DNS, Services, kubectl exec, image pulls.

One node for the session (``node_cluster``: started as a run starts it: control plane, registry,
node, CoreDNS), each test in its own namespace. The node's teardown and what it leaves are tested in test_local_backend.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from e2e_harness.waiting import Observation, poll_until


POD_TIMEOUT = 120


@pytest.fixture
def cluster(node_cluster):
    return node_cluster


@pytest.fixture
def namespace(cluster):
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kube.create_namespace(name)
    yield name
    cluster.kube.delete_namespace(name, wait=False)


def pod(name: str, command: list[str], image: str = "busybox", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": image, "command": command}], **spec}}


def wait_phase(cluster, namespace: str, name: str, phases: tuple[str, ...]) -> dict:
    def reached(obj):
        phase = ((obj or {}).get("status") or {}).get("phase")
        statuses = ((obj or {}).get("status") or {}).get("containerStatuses") or []
        return phase in phases, f"phase {phase}, containers {[s.get('state') for s in statuses]}"

    return cluster.kube.wait_for("v1", "Pod", name, reached, namespace=namespace, timeout=POD_TIMEOUT,
                                 what=f"pod {namespace}/{name} to reach {'/'.join(phases)}")


def kubectl(cluster, *args: str) -> subprocess.CompletedProcess:
    from e2e_harness.backends.local import binaries

    binary = binaries.kubernetes_binaries(cluster.settings.release["KUBERNETES_VERSION"])["kubectl"]
    return subprocess.run([str(binary), "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True,
                          text=True, timeout=60)


def test_a_pod_reaches_a_service_by_its_cluster_dns_name_and_kubectl_exec_works(cluster, namespace):
    kube = cluster.kube
    page = f"served by a pod {uuid.uuid4().hex}"
    kube.apply([pod("web", ["sh", "-c", f"mkdir -p /www && echo '{page}' > /www/index.html && "
                                         "exec httpd -f -p 8080 -h /www"]),
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}],
               namespace=namespace)
    wait_phase(cluster, namespace, "web", ("Running",))
    # busybox's wget segfaults in Debian's busybox-static: a raw HTTP request through nc instead.
    kube.apply([pod("client", ["sh", "-c", f"nslookup web.{namespace}.svc.cluster.local && "
                                            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web.{namespace}.svc.cluster.local 80; "
                                            "sleep 3600"])], namespace=namespace)
    wait_phase(cluster, namespace, "client", ("Running",))

    def answered() -> Observation:
        logs = cluster.pod_logs(namespace, "client")
        return Observation(page in logs, logs[-300:])

    poll_until(answered, what="the client pod to fetch the page through the Service's DNS name", timeout=60)
    service_ip = kube.get("v1", "Service", "web", namespace)["spec"]["clusterIP"]
    assert service_ip in cluster.pod_logs(namespace, "client"), "nslookup did not answer with the Service's IP"

    exec_ = kubectl(cluster, "exec", "-n", namespace, "client", "--", "cat", "/etc/resolv.conf")
    assert exec_.returncode == 0, exec_.stderr
    assert "nameserver 10.0.0.10" in exec_.stdout and f"search {namespace}.svc.cluster.local" in exec_.stdout


def test_a_pod_whose_image_lacks_a_tool_that_the_host_has_fails_for_lack_of_it(cluster, namespace):
    assert subprocess.run(["bash", "-c", "true"]).returncode == 0, "the host itself has bash"
    cluster.kube.apply([pod("no-bash", ["bash", "-c", "echo the host's bash ran"])], namespace=namespace)
    obj = wait_phase(cluster, namespace, "no-bash", ("Failed", "Succeeded"))
    assert obj["status"]["phase"] == "Failed"
    terminated = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert "bash" in terminated.get("message", "") and "not found" in terminated.get("message", ""), terminated
    assert "the host's bash ran" not in cluster.pod_logs(namespace, "no-bash")


def test_a_pod_sees_only_its_image_filesystem(cluster, namespace):
    cluster.kube.apply([pod("look", ["sh", "-c", "ls /usr/lib/postgresql /etc/debian_version 2>&1; "
                                                 "test ! -e /etc/debian_version && test ! -e /usr/lib/postgresql"])],
                       namespace=namespace)
    obj = wait_phase(cluster, namespace, "look", ("Failed", "Succeeded"))
    assert obj["status"]["phase"] == "Succeeded", cluster.pod_logs(namespace, "look")


def test_an_image_that_no_recipe_builds_fails_to_pull_naming_the_image(cluster, namespace):
    image = "docker.io/library/no-such-image-built-here:1.0"
    cluster.kube.apply([pod("missing", ["true"], image=image)], namespace=namespace)

    def pull_failed(obj):
        statuses = ((obj or {}).get("status") or {}).get("containerStatuses") or []
        waiting = (statuses[0].get("state") or {}).get("waiting") or {} if statuses else {}
        return waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"), f"waiting: {waiting}"

    obj = cluster.kube.wait_for("v1", "Pod", "missing", pull_failed, namespace=namespace, timeout=POD_TIMEOUT,
                                what="the pod of an image no recipe builds to fail its pull")
    assert "no-such-image-built-here" in obj["status"]["containerStatuses"][0]["state"]["waiting"]["message"]



def test_a_claim_gets_a_volume_from_the_default_storage_class_and_keeps_data_across_pods(cluster, namespace):
    token = uuid.uuid4().hex

    def with_claim(manifest: dict) -> dict:
        manifest["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        return manifest

    cluster.kube.apply([{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}},
                        with_claim(pod("writer", ["sh", "-c", f"echo {token} > /data/token"]))], namespace=namespace)
    assert wait_phase(cluster, namespace, "writer", ("Failed", "Succeeded"))["status"]["phase"] == "Succeeded"
    cluster.kube.apply([with_claim(pod("reader", ["cat", "/data/token"]))], namespace=namespace)
    assert wait_phase(cluster, namespace, "reader", ("Failed", "Succeeded"))["status"]["phase"] == "Succeeded"
    assert cluster.pod_logs(namespace, "reader") == f"{token}\n"
    claim = cluster.kube.get("v1", "PersistentVolumeClaim", "data", namespace)
    assert claim["spec"]["storageClassName"] == "local-path" and claim["status"]["phase"] == "Bound"
