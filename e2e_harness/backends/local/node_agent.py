"""A stand-in for the kubelet: runs the pods of the ``local`` backend as host processes.

The local backend has a real kube-apiserver, etcd and kube-controller-manager but no
kubelet and no scheduler. The node agent registers one Node, binds the pending pods of
the namespaces it is given to that Node (binding subresource), runs their containers
as host processes and reports their status, so that the real Job controller sees pods
succeed or fail exactly as with a kubelet.

What a container is here
------------------------
* The ``image`` is looked up in a table of :class:`Toolset` (exact key, then the key
  without the tag, then keys ending in ``*`` as prefixes). An image without a toolset
  fails the pod (reason ``UnknownImage``); nothing is run.
* There is no image entrypoint: a container without ``command`` fails. ``$(VAR)``
  references in command/args/env values are expanded like Kubernetes does.
* ``env``/``envFrom`` (Secrets, ConfigMaps, downward API fields) are resolved from the
  API; the process gets *only* that environment plus ``PATH`` (toolset dirs first, then
  the agent's PATH), ``HOME``, ``TMPDIR``, ``HOSTNAME`` and the toolset's own variables. ``HOME``
  and ``TMPDIR`` are the pod's own ``<work_dir>/<ns>/<pod>/home`` and ``.../tmp`` (mode 0700,
  shared by its containers, kept across restarts), never the agent's: ``gpg --import`` in a Job
  must not write into the host user's keyring (the gpg-agent that gpg starts there is ended
  with the pod). Missing
  non-optional Secrets/ConfigMaps are retried for ``CONFIG_RETRY_SECONDS`` (kubelet
  retries forever, a harness should say what is missing), then the pod fails.
* ``workingDir`` absent: the toolset's ``working_dir`` (the image's WORKDIR, e.g. ``/``,
  inside the container's private mount namespace), else a per-container scratch
  directory under the pod's work dir.
* Processes: one process group per container (``start_new_session``), stdin from
  /dev/null, stdout+stderr to ``<work_dir>/<ns>/<pod>/<container>.log`` (appended on
  restarts). When the main process exits, the rest of its group is killed (a kubelet
  would tear down the container's cgroup). Init containers run in order, then the
  containers concurrently, one supervising thread each.

Volumes and the private mount namespace
---------------------------------------
Volumes (configMap, secret, projected, downwardAPI, emptyDir, hostPath and — as a
directory per namespace and claim, kept for the agent's life — persistentVolumeClaim)
are materialised under ``<work_dir>/<ns>/<pod>/volumes/<name>``; files are written with
``mode``/``defaultMode`` (default 0644). They are *not* refreshed when the source
object changes. Each container runs as
``unshare --mount --propagation private /bin/sh <generated script> <command...>``; the
script bind-mounts every volumeMount (``subPath``, ``readOnly``) onto its absolute
``mountPath`` inside that private mount namespace, then ``exec``\\ s the command. The
host's mount table is never changed.

Mount points that do not exist on the host must be created without writing to the
host's filesystem. The rule (the "shadow" approach):

* the target exists (file or directory): bind-mount onto it;
* the target lies under an earlier volume mount: its directory is created inside that
  volume's materialised directory (the pod's own work dir);
* otherwise the missing part is created under its nearest existing ancestor ``A``,
  after ``A`` has been *shadowed* in the namespace: a fresh tmpfs in the stage
  directory gets, for every entry of ``A``, a bind mount (``--rbind`` for
  directories) of the original entry (symlinks are copied as symlinks), and is then
  bound recursively on top of ``A``. Nothing of ``A`` is hidden (e.g. shadowing
  ``/usr`` for ``/usr/backup-maker`` keeps ``/usr/bin`` working) and the new
  directories live in the tmpfs only (no ``mount --move``: a user namespace refuses
  it). Ancestors already shadowed or created are reused. When ``A`` is ``/`` itself
  (e.g. ``/backup``), the whole root is shadowed in a staging tmpfs the same way and
  the command runs ``chroot``\\ ed into it.

The agent runs as root here; as another user the namespace is entered with
``unshare --user --map-root-user`` too (tested for shadowed mount points).

Status reporting
----------------
Phase Pending -> Running -> Succeeded/Failed, conditions PodScheduled, Initialized,
ContainersReady, Ready, ``containerStatuses``/``initContainerStatuses`` with
running/terminated states, ``startTime``, ``hostIP``/``podIP`` 127.0.0.1.
``restartPolicy`` Never: a non-zero exit fails the pod; OnFailure: the container is
restarted in place (restartCount, short exponential back-off); Always: restarted on any
exit. ``activeDeadlineSeconds`` kills the pod: Failed, reason ``DeadlineExceeded``.
A pod with ``deletionTimestamp`` (or a DELETED event) has its processes killed
(SIGTERM to the group, SIGKILL after at most ``KILL_GRACE_SECONDS``); it is reported
Failed unless it had already ended, then removed with ``grace_period_seconds=0``.
Probes, resources, securityContext, ports and services are ignored. Secret values are
never logged.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import urllib3
from kubernetes import watch as kube_watch
from kubernetes.client.exceptions import ApiException

from ...kube import Kube

log = logging.getLogger("e2e_harness.node_agent")

HEARTBEAT_SECONDS = 10
WATCH_SECONDS = 10            # one watch request at most this long
API_TIMEOUT = (5, 30)         # (connect, read) seconds for every non-watch API call
KILL_GRACE_SECONDS = 10       # SIGTERM -> SIGKILL at most this long (less if the pod asks)
CONFIG_RETRY_SECONDS = 30     # how long missing Secrets/ConfigMaps for env/volumes are awaited
RESTART_BACKOFF_MAX = 20
LOCAL_IP = "127.0.0.1"
SMP = "application/strategic-merge-patch+json"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


@dataclass(frozen=True)
class Toolset:
    """What an image maps to on the host."""

    name: str
    path_dirs: tuple[str, ...] = ()   # prepended to PATH inside the container
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""              # the image's WORKDIR; empty: a scratch dir of the container


class UnknownImage(Exception):
    """No toolset is known for a container image."""


class PodFailure(Exception):
    """The pod cannot run; ``reason`` goes to the container/pod status."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_image(image: str, images: Mapping[str, Toolset]) -> Toolset:
    """Exact key, then the key without tag (or digest), then ``prefix*`` keys (longest first)."""
    if image in images:
        return images[image]
    untagged = image.split("@", 1)[0]
    last = untagged.rsplit("/", 1)[-1]
    if ":" in last:
        untagged = untagged[: len(untagged) - len(last)] + last.split(":", 1)[0]
    if untagged in images:
        return images[untagged]
    for key in sorted((k for k in images if k.endswith("*")), key=len, reverse=True):
        if image.startswith(key[:-1]):
            return images[key]
    raise UnknownImage(f"image {image!r} has no host toolset; known images: {', '.join(sorted(images)) or 'none'}")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as they are, ``$$`` is ``$``."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, text)


def _b64(data: str) -> bytes:
    return base64.b64decode(data)


# --------------------------------------------------------------------------------------
# mount planning (pure: computes the shell lines; tested without running them)
# --------------------------------------------------------------------------------------
class MountPlan:
    """Shell lines that build the container's mount view; see the module docstring."""

    def __init__(self, stage_dir: Path, tools: Mapping[str, str]):
        self.stage = str(stage_dir)
        self.t = tools
        self.lines: list[str] = []
        self.volumes: list[tuple[str, str]] = []   # (target, source), in mount order
        self.shadowed: set[str] = set()
        self.created: set[str] = set()
        self.root = ""                              # staging root when "/" is shadowed
        self._n = 0

    def _q(self, path: str) -> str:
        return shlex.quote(self.root + path) if path != "/" or not self.root else shlex.quote(self.root)

    def _volume_of(self, path: str, strict: bool) -> str | None:
        best = None
        for target, source in self.volumes:
            if path == target and strict:
                continue
            if path == target or path.startswith(target.rstrip("/") + "/"):
                if best is None or len(target) >= len(best[0]):
                    best = (target, source)
        if best is None:
            return None
        rel = os.path.relpath(path, best[0])
        return best[1] if rel == "." else os.path.join(best[1], rel)

    def _exists(self, path: str) -> bool:
        if path in self.created or path in self.shadowed or path == "/":
            return True
        inside = self._volume_of(path, strict=True)
        if inside is not None:
            return os.path.lexists(inside)
        return os.path.lexists(path)

    def _emit(self, *argv: str) -> None:
        self.lines.append(" ".join(argv))

    def _populate(self, stage: str, original: str) -> None:
        """Fill the tmpfs at ``stage`` with bind mounts of every entry of ``original``."""
        try:
            entries = sorted(os.listdir(original))
        except OSError as exc:
            raise PodFailure("MountFailed", f"cannot list {original} to shadow it: {exc}") from exc
        t = self.t
        for name in entries:
            host = os.path.join(original, name)
            dst = shlex.quote(os.path.join(stage, name))
            src = self._q(host)
            if os.path.islink(host):
                self._emit(t["ln"], "-s", "--", shlex.quote(os.readlink(host)), dst)
            elif os.path.isdir(host):
                self._emit(t["mkdir"], "--", dst, "&&", t["mount"], "--rbind", src, dst)
            else:
                self._emit(t["touch"], "--", dst, "&&", t["mount"], "--bind", src, dst)

    def _shadow(self, ancestor: str) -> None:
        t = self.t
        if ancestor == "/":
            root = os.path.join(self.stage, "root")
            self._emit(t["mkdir"], "-p", "--", shlex.quote(root))
            self._emit(t["mount"], "-t", "tmpfs", "-o", "mode=0755", "tmpfs", shlex.quote(root))
            self._emit(t["mount"], "--make-unbindable", shlex.quote(root))
            self._populate(root, "/")
            self.root = root
        else:
            # Stage a tmpfs holding binds of every original entry, then bind it over the
            # ancestor. (Not `mount --move`: a user namespace, as for a non-root agent,
            # refuses it; and not covering first: the tools themselves may live below.)
            self._n += 1
            stage = os.path.join(self.stage, f"shadow-{self._n}")
            mode = oct(os.stat(ancestor).st_mode & 0o7777)[2:]
            self._emit(t["mkdir"], "-p", "--", shlex.quote(stage))
            self._emit(t["mount"], "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", shlex.quote(stage))
            self._populate(stage, ancestor)
            self._emit(t["mount"], "--rbind", shlex.quote(stage), self._q(ancestor))
            self._emit(t["mount"], "--make-rprivate", self._q(ancestor))
        self.shadowed.add(ancestor)

    def ensure(self, path: str, is_dir: bool = True) -> str:
        """Make ``path`` exist in the namespace (see the docstring); returns its canonical form."""
        path = os.path.realpath(path) if os.path.isabs(path) else path
        if not os.path.isabs(path) or path == "/":
            raise PodFailure("MountFailed", f"mount path {path!r} must be absolute and not /")
        inside = self._volume_of(path, strict=True)
        if inside is not None:
            if not os.path.lexists(inside):   # the pod's own directory: create it directly
                if is_dir:
                    os.makedirs(inside, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(inside), exist_ok=True)
                    Path(inside).touch()
            return path
        if self._exists(path):
            return path
        ancestor = os.path.dirname(path)
        while not self._exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if ancestor not in self.created and ancestor not in self.shadowed:
            if not os.path.isdir(ancestor):
                raise PodFailure("MountFailed", f"cannot create {path}: {ancestor} is not a directory")
            self._shadow(ancestor)
        t = self.t
        parent = os.path.dirname(path)
        self._emit(t["mkdir"], "-p", "--", self._q(parent))
        self._emit(t["mkdir"] if is_dir else t["touch"], "--", self._q(path))
        p = path
        while p != ancestor and p != "/":
            self.created.add(p)
            p = os.path.dirname(p)
        return path

    def bind(self, target: str, source: str, read_only: bool) -> None:
        target = self.ensure(target, is_dir=os.path.isdir(source))
        t = self.t
        self._emit(t["mount"], "--bind", shlex.quote(source), self._q(target))
        if read_only:
            self._emit(t["mount"], "-o", "remount,bind,ro", self._q(target))
        self.volumes.append((target, source))

    def script(self, working_dir: str) -> str:
        head = ["set -e"] + self.lines
        if self.root:
            head.append(f"exec {self.t['chroot']} {shlex.quote(self.root)} /bin/sh -c "
                        "'cd -- \"$0\" || exit 127; exec \"$@\"' " f"{shlex.quote(working_dir)} \"$@\"")
        else:
            head += [f"cd -- {shlex.quote(working_dir)} || exit 127", 'exec "$@"']
        return "\n".join(head) + "\n"


def _host_tools() -> dict[str, str]:
    tools = {}
    for name in ("mount", "mkdir", "touch", "ln", "chroot", "unshare", "sh"):
        found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")
        tools[name] = found or name
    return tools


# --------------------------------------------------------------------------------------
# one container and one pod
# --------------------------------------------------------------------------------------
class _Container:
    def __init__(self, spec: dict, init: bool):
        self.spec, self.init, self.name = spec, init, spec["name"]
        self.image = spec.get("image", "")
        self.state: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self.container_id = ""

    def status(self) -> dict:
        running = "running" in self.state
        done_ok = self.init and self.state.get("terminated", {}).get("exitCode") == 0
        st = {"name": self.name, "image": self.image, "imageID": "", "restartCount": self.restarts,
              "ready": running if not self.init else done_ok, "started": running,
              "state": self.state, "lastState": self.last_state}
        if self.container_id:
            st["containerID"] = self.container_id
        return st


class _PodRun:
    """Runs one pod; everything it does happens in its own thread(s)."""

    def __init__(self, agent: "NodeAgent", pod: dict, bind: bool):
        self.agent, self.pod, self.bind = agent, pod, bind
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        spec = pod.get("spec") or {}
        self.spec = spec
        self.inits = [_Container(c, True) for c in spec.get("initContainers") or []]
        self.mains = [_Container(c, False) for c in spec.get("containers") or []]
        self.dir = agent.work_dir / self.ns / self.name
        self.home, self.tmp = self.dir / "home", self.dir / "tmp"
        self.lock = threading.RLock()
        self.report_lock = threading.Lock()      # one status patch at a time, newest state last
        self.killed = threading.Event()           # stop running anything more
        self.finished = threading.Event()         # the run thread is over
        self.kill_reason: tuple[str, str] | None = None
        self.phase = "Pending"
        self.reason = self.message = ""
        self.start_time = ""
        self.initialized = False
        self.deleting = False
        self.deadline: float | None = None
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.ns}/{self.name}", daemon=True)

    # --- status ----------------------------------------------------------------------
    def _conditions(self) -> list[dict]:
        now = _now()
        ready = self.phase == "Running" and all("running" in c.state for c in self.mains)
        cond = lambda t, ok, reason="": {"type": t, "status": "True" if ok else "False",  # noqa: E731
                                         "lastTransitionTime": now, **({"reason": reason} if reason and not ok else {})}
        done_reason = "PodCompleted" if self.phase in ("Succeeded", "Failed") else "ContainersNotReady"
        return [cond("PodScheduled", True), cond("Initialized", self.initialized, "ContainersNotInitialized"),
                cond("ContainersReady", ready, done_reason), cond("Ready", ready, done_reason)]

    def report(self) -> None:
        with self.report_lock:
            self._report()

    def _report(self) -> None:
        with self.lock:
            status: dict[str, Any] = {
                "phase": self.phase, "hostIP": LOCAL_IP, "hostIPs": [{"ip": LOCAL_IP}],
                "podIP": LOCAL_IP, "podIPs": [{"ip": LOCAL_IP}], "conditions": self._conditions(),
                "containerStatuses": [c.status() for c in self.mains],
                "reason": self.reason or None, "message": self.message or None}
            if self.inits:
                status["initContainerStatuses"] = [c.status() for c in self.inits]
            if self.start_time:
                status["startTime"] = self.start_time
        try:
            self.agent.kube.core.patch_namespaced_pod_status(
                self.name, self.ns, {"status": status}, _content_type=SMP, _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                self.killed.set()
                return
            log.warning("pod %s/%s: status update refused: %s %s", self.ns, self.name, exc.status,
                        (exc.body or "")[:500])
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("pod %s/%s: status update failed: %s", self.ns, self.name, exc)

    # --- lifecycle -------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._run()
        except PodFailure as exc:
            self._fail(exc.reason, str(exc))
        except Exception as exc:  # never let one pod kill the agent
            log.error("pod %s/%s: agent error:\n%s", self.ns, self.name, traceback.format_exc())
            self._fail("NodeAgentError", f"node agent error: {type(exc).__name__}: {exc}")
        finally:
            self.kill_processes()
            self._stop_home_daemons()
            self.finished.set()

    def _stop_home_daemons(self) -> None:
        """End the gpg-agent (and dirmngr) that gpg started for the pod's HOME.

        gpg starts them as daemons in their own session, outside the container's process
        group, so killing the group misses them; with a HOME per pod they end with the pod.
        """
        gnupg = self.home / ".gnupg"
        gpgconf = shutil.which("gpgconf")
        if gpgconf is None or not any(gnupg.glob("S.*")):
            return
        try:
            result = subprocess.run([gpgconf, "--homedir", str(gnupg), "--kill", "all"], stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=KILL_GRACE_SECONDS)
            if result.returncode != 0:
                log.warning("pod %s/%s: gpgconf --kill all failed: %s", self.ns, self.name, result.stderr.strip())
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("pod %s/%s: cannot stop the gpg daemons of %s: %s", self.ns, self.name, gnupg, exc)

    def _fail(self, reason: str, message: str) -> None:
        with self.lock:
            if self.phase in ("Succeeded", "Failed"):
                return
            now = _now()
            for c in self.inits + self.mains:
                if "terminated" not in c.state:
                    c.state = {"terminated": {"exitCode": 137 if "running" in c.state else 1,
                                              "reason": reason, "message": message,
                                              "startedAt": c.state.get("running", {}).get("startedAt", now),
                                              "finishedAt": now}}
            self.phase, self.reason, self.message = "Failed", reason, message
        log.info("pod %s/%s failed: %s: %s", self.ns, self.name, reason, message)
        self.report()

    def _run(self) -> None:
        if self.bind and not self.agent._bind(self.pod):
            return
        self.start_time = _now()
        ads = self.spec.get("activeDeadlineSeconds")
        if ads is not None:
            self.deadline = _monotonic() + int(ads)
        self._prepare_dir()
        self.report()
        # every image first: an unknown image fails the pod before anything runs
        toolsets = {}
        for c in self.inits + self.mains:
            try:
                toolsets[c.name] = resolve_image(c.image, self.agent.images)
            except UnknownImage as exc:
                c.state = {"terminated": {"exitCode": 1, "reason": "UnknownImage", "message": str(exc),
                                          "startedAt": _now(), "finishedAt": _now()}}
                raise PodFailure("UnknownImage", f"container {c.name}: {exc}") from None
        resolver = _Resolver(self)
        volumes = self._materialise_volumes(resolver)
        for c in self.inits:
            if not self._supervise(c, toolsets[c.name], volumes, resolver):
                return self._end_failed()
        with self.lock:
            self.initialized = True
        if self.killed.is_set():
            return self._end_failed()
        results: dict[str, bool] = {}
        threads = [threading.Thread(target=lambda c=c: results.__setitem__(
            c.name, self._supervise_safely(c, toolsets[c.name], volumes, resolver)), daemon=True,
            name=f"ctr-{self.ns}/{self.name}/{c.name}") for c in self.mains]
        with self.lock:
            self.phase = "Running"
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if all(results.get(c.name) for c in self.mains) and not self.killed.is_set():
            with self.lock:
                self.phase = "Succeeded"
            self.report()
        else:
            self._end_failed()

    def _supervise_safely(self, c, toolset, volumes, resolver) -> bool:
        try:
            return self._supervise(c, toolset, volumes, resolver)
        except PodFailure as exc:
            c.state = {"terminated": {"exitCode": 1, "reason": exc.reason, "message": str(exc),
                                      "startedAt": _now(), "finishedAt": _now()}}
            self.abort(exc.reason, f"container {c.name}: {exc}")
            return False
        except Exception as exc:
            log.error("pod %s/%s container %s:\n%s", self.ns, self.name, c.name, traceback.format_exc())
            self.abort("NodeAgentError", f"container {c.name}: node agent error: {type(exc).__name__}: {exc}")
            return False

    def _end_failed(self) -> None:
        reason, message = self.kill_reason or ("Error", "a container failed")
        if self.kill_reason is None:
            failed = [c for c in self.inits + self.mains
                      if c.state.get("terminated", {}).get("exitCode", 0) != 0]
            if failed:
                message = f"container {failed[0].name} exited with {failed[0].state['terminated']['exitCode']}"
        self._fail(reason, message)

    def abort(self, reason: str, message: str) -> None:
        """Stop the pod: first reason wins; processes are killed at once."""
        with self.lock:
            if self.kill_reason is None:
                self.kill_reason = (reason, message)
        self.killed.set()
        self.kill_processes()

    def kill_processes(self) -> None:
        procs = [c.proc for c in self.inits + self.mains if c.proc is not None]
        grace = min(KILL_GRACE_SECONDS, int(self.spec.get("terminationGracePeriodSeconds", KILL_GRACE_SECONDS)))
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=max(grace, 0.5))
            except subprocess.TimeoutExpired:
                pass
        for p in procs:
            _signal_group(p, signal.SIGKILL)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.error("pod %s/%s: process %s survives SIGKILL", self.ns, self.name, p.pid)

    def _prepare_dir(self) -> None:
        marker = self.dir / ".uid"
        if self.dir.exists() and (not marker.exists() or marker.read_text() != self.uid):
            shutil.rmtree(self.dir, ignore_errors=True)   # an earlier pod of the same name
        (self.dir / "volumes").mkdir(parents=True, exist_ok=True)
        for private in (self.home, self.tmp):    # the pod's own HOME and TMPDIR, for its containers only
            private.mkdir(mode=0o700, exist_ok=True)
            private.chmod(0o700)
        marker.write_text(self.uid)

    # --- one container ---------------------------------------------------------------
    def _supervise(self, c: _Container, toolset: Toolset, volumes: dict[str, Path], resolver: "_Resolver") -> bool:
        """Run a container to its end, restarting it as restartPolicy says; True when it succeeded."""
        policy = self.spec.get("restartPolicy", "Always")
        if c.init and policy == "Always":
            policy = "OnFailure"
        argv, env, script = self._prepare_container(c, toolset, volumes, resolver)
        log_path = self.dir / f"{c.name}.log"
        while True:
            if self.killed.is_set():
                return False
            started = _now()
            with open(log_path, "ab") as out, open(os.devnull, "rb") as devnull:
                cmd = [*self.agent._unshare, self.agent.tools["sh"], str(script), *argv]
                try:
                    proc = subprocess.Popen(cmd, stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True, cwd=str(self.dir))
                except OSError as exc:
                    raise PodFailure("StartError", f"cannot start {argv[0]!r}: {exc}") from exc
            with self.lock:
                c.proc, c.container_id = proc, f"host://{proc.pid}"
                c.state = {"running": {"startedAt": started}}
                if not c.init:
                    self.phase = "Running"
            if self.killed.is_set():       # killed while starting: the killer may have missed it
                self.kill_processes()
            self.report()
            code = self._wait(proc)
            _signal_group(proc, signal.SIGKILL)   # leftovers of the container's process group
            finished = _now()
            with self.lock:
                c.proc = None                      # reaped: never signal its (reusable) pid again
                reason = "Completed" if code == 0 else "Error"
                c.state = {"terminated": {"exitCode": code if code >= 0 else 128 - code, "reason": reason,
                                          "startedAt": started, "finishedAt": finished,
                                          **({"signal": -code} if code < 0 else {})}}
            ok = code == 0
            restart = not self.killed.is_set() and (policy == "Always" or (policy == "OnFailure" and not ok))
            if not restart:
                self.report()
                return ok and not self.killed.is_set()
            with self.lock:
                c.last_state, c.restarts = c.state, c.restarts + 1
                c.state = {"waiting": {"reason": "CrashLoopBackOff" if not ok else "Restarting"}}
            self.report()
            backoff = min(RESTART_BACKOFF_MAX, 2 ** min(c.restarts - 1, 5))
            if self.killed.wait(self._bounded(backoff)):
                return False
            if self._deadline_passed():
                return False

    def _bounded(self, seconds: float) -> float:
        if self.deadline is None:
            return seconds
        return max(0.0, min(seconds, self.deadline - _monotonic()))

    def _deadline_passed(self) -> bool:
        if self.deadline is not None and _monotonic() >= self.deadline:
            self.abort("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
            return True
        return False

    def _wait(self, proc: subprocess.Popen) -> int:
        while True:
            try:
                return proc.wait(timeout=self._bounded(5.0) or 0.01)
            except subprocess.TimeoutExpired:
                self._deadline_passed()  # kills the processes: the next wait returns

    def _prepare_container(self, c: _Container, toolset: Toolset, volumes: dict[str, Path],
                           resolver: "_Resolver") -> tuple[list[str], dict[str, str], Path]:
        spec = c.spec
        if not spec.get("command"):
            raise PodFailure("NoCommand", f"container {c.name} (image {c.image}) has no command: the host has no "
                                          "image entrypoint, set `command` in the manifest")
        base = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env: dict[str, str] = {"PATH": ":".join([*toolset.path_dirs, base]),
                               "HOME": str(self.home), "TMPDIR": str(self.tmp), "HOSTNAME": self.name}
        env.update(toolset.env)
        env.update(resolver.container_env(spec))
        argv = [expand_vars(a, env) for a in (spec.get("command") or []) + (spec.get("args") or [])]
        scratch = self.dir / "scratch" / c.name
        scratch.mkdir(parents=True, exist_ok=True)
        plan = MountPlan(self.dir / "stage" / c.name, self.agent.tools)
        mounts = sorted(spec.get("volumeMounts") or [], key=lambda m: len(Path(m["mountPath"]).parts))
        for m in mounts:
            if m["name"] not in volumes:
                raise PodFailure("MountFailed", f"container {c.name}: volumeMount {m['name']!r} has no volume")
            source = volumes[m["name"]]
            if m.get("subPath"):
                source = source / m["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            plan.bind(m["mountPath"], str(source), bool(m.get("readOnly")))
        wd = spec.get("workingDir") or toolset.working_dir or str(scratch)
        if wd != str(scratch) and os.path.normpath(wd) != "/":
            wd = plan.ensure(wd, is_dir=True)
        script = self.dir / f"{c.name}.sh"
        script.write_text(plan.script(wd))
        return argv, env, script

    # --- volumes ---------------------------------------------------------------------
    def _materialise_volumes(self, resolver: "_Resolver") -> dict[str, Path]:
        out: dict[str, Path] = {}
        for vol in self.spec.get("volumes") or []:
            name = vol["name"]
            target = self.dir / "volumes" / name
            if "hostPath" in vol:
                path = Path(vol["hostPath"]["path"])
                if vol["hostPath"].get("type") in ("DirectoryOrCreate",) and not path.exists():
                    path.mkdir(parents=True)
                out[name] = path
                continue
            if "persistentVolumeClaim" in vol:
                path = self.agent.work_dir / "_claims" / self.ns / vol["persistentVolumeClaim"]["claimName"]
                path.mkdir(parents=True, exist_ok=True)
                out[name] = path
                continue
            target.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in vol:
                pass
            elif "configMap" in vol or "secret" in vol:
                src = vol.get("configMap") or vol.get("secret")
                kind = "configMap" if "configMap" in vol else "secret"
                obj_name = src.get("name") if kind == "configMap" else src.get("secretName")
                data = resolver.data(kind, obj_name, bool(src.get("optional")))
                _write_items(target, data, src.get("items"), src.get("defaultMode", 0o644),
                             f"{kind} {obj_name}", bool(src.get("optional")))
            elif "projected" in vol:
                default_mode = vol["projected"].get("defaultMode", 0o644)
                for source in vol["projected"].get("sources") or []:
                    if "configMap" in source or "secret" in source:
                        kind = "configMap" if "configMap" in source else "secret"
                        s = source[kind]
                        data = resolver.data(kind, s.get("name"), bool(s.get("optional")))
                        _write_items(target, data, s.get("items"), default_mode, f"{kind} {s.get('name')}",
                                     bool(s.get("optional")))
                    elif "downwardAPI" in source:
                        _write_items(target, resolver.downward_items(source["downwardAPI"].get("items") or []),
                                     None, default_mode, "downwardAPI", False)
                    elif "serviceAccountToken" in source:
                        sat = source["serviceAccountToken"]
                        token = resolver.token(sat)
                        _write_items(target, {sat["path"]: token.encode()}, None, default_mode, "token", False)
                    else:
                        raise PodFailure("UnsupportedVolume", f"volume {name}: projected source {list(source)} "
                                                              "is not supported by the node agent")
            elif "downwardAPI" in vol:
                _write_items(target, resolver.downward_items(vol["downwardAPI"].get("items") or []), None,
                             vol["downwardAPI"].get("defaultMode", 0o644), "downwardAPI", False)
            else:
                kinds = [k for k in vol if k != "name"]
                raise PodFailure("UnsupportedVolume", f"volume {name}: type {kinds} is not supported by the node agent")
            out[name] = target
        return out


def _write_items(target: Path, data: dict[str, bytes] | None, items: list | None, default_mode: int,
                 what: str, optional: bool) -> None:
    if data is None:
        return
    chosen: list[tuple[str, str, int]] = []
    if items:
        for it in items:
            if it["key"] not in data:
                if optional:
                    continue
                raise PodFailure("CreateContainerConfigError", f"{what} has no key {it['key']!r}")
            chosen.append((it["key"], it.get("path", it["key"]), it.get("mode", default_mode)))
    else:
        chosen = [(k, k, default_mode) for k in data]
    for key, rel, mode in chosen:
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise PodFailure("MountFailed", f"{what}: item path {rel!r} must be relative without '..'")
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])
        path.chmod(mode)


class _Resolver:
    """Secrets, ConfigMaps and downward API values for one pod (cached for the pod's run)."""

    def __init__(self, run: _PodRun):
        self.run = run
        self.cache: dict[tuple[str, str], dict[str, bytes] | None] = {}

    def data(self, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
        """The object's data as bytes; None when absent and optional; retried a while when absent."""
        key = (kind, name)
        if key not in self.cache:
            self.cache[key] = self._fetch(kind, name)
        if self.cache[key] is None and not optional:
            wait_until = _monotonic() + CONFIG_RETRY_SECONDS
            message = f"{kind} {name!r} not found in namespace {self.run.ns}"
            for c in self.run.inits + self.run.mains:
                if "waiting" in c.state:
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
            self.run.report()
            while self.cache[key] is None and _monotonic() < wait_until:
                if self.run.killed.wait(2):
                    raise PodFailure("Killed", "pod was stopped while waiting for " + message)
                self.cache[key] = self._fetch(kind, name)
            if self.cache[key] is None:
                raise PodFailure("CreateContainerConfigError", message)
        return self.cache[key]

    def _fetch(self, kind: str, name: str) -> dict[str, bytes] | None:
        core = self.run.agent.kube.core
        try:
            if kind == "secret":
                obj = core.read_namespaced_secret(name, self.run.ns, _request_timeout=API_TIMEOUT)
                return {k: _b64(v) for k, v in (obj.data or {}).items()}
            obj = core.read_namespaced_config_map(name, self.run.ns, _request_timeout=API_TIMEOUT)
            out = {k: v.encode() for k, v in (obj.data or {}).items()}
            out.update({k: _b64(v) for k, v in (obj.binary_data or {}).items()})
            return out
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def field(self, path: str) -> str:
        pod = self.run.pod
        meta, spec = pod["metadata"], pod.get("spec") or {}
        simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "metadata.uid": meta["uid"], "spec.nodeName": self.run.agent.node_name,
                  "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
                  "status.podIP": LOCAL_IP, "status.hostIP": LOCAL_IP, "status.podIPs": LOCAL_IP,
                  "status.hostIPs": LOCAL_IP}
        if path in simple:
            return simple[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        raise PodFailure("CreateContainerConfigError", f"unsupported fieldRef {path!r}")

    def resource(self, ref: dict, container: dict | None) -> str:
        res = ref.get("resource", "")
        kind, _, name = res.partition(".")
        value = ((container or {}).get("resources") or {}).get(kind, {}).get(name)
        if value is None:
            value = str(os.cpu_count() or 1) if name == "cpu" else str(_mem_bytes()) if name == "memory" else "0"
        return str(value)

    def downward_items(self, items: list) -> dict[str, bytes]:
        out = {}
        containers = {c["name"]: c for c in self.run.spec.get("containers") or []}
        for it in items:
            if "fieldRef" in it:
                value = self.field(it["fieldRef"]["fieldPath"])
            else:
                ref = it["resourceFieldRef"]
                value = self.resource(ref, containers.get(ref.get("containerName", "")))
            out[it["path"]] = value.encode()
        return out

    def token(self, sat: dict) -> str:
        from kubernetes.client import AuthenticationV1TokenRequest, V1TokenRequestSpec
        spec = V1TokenRequestSpec(audiences=[sat["audience"]] if sat.get("audience") else [],
                                  expiration_seconds=sat.get("expirationSeconds", 3600))
        sa = self.run.spec.get("serviceAccountName") or "default"
        try:
            result = self.run.agent.kube.core.create_namespaced_service_account_token(
                sa, self.run.ns, AuthenticationV1TokenRequest(spec=spec), _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            raise PodFailure("CreateContainerConfigError",
                             f"token for service account {sa}: {exc.status} {exc.reason}") from None
        return result.status.token

    def container_env(self, spec: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in spec.get("envFrom") or []:
            prefix = src.get("prefix", "")
            kind, ref = ("configMap", src["configMapRef"]) if "configMapRef" in src else ("secret", src["secretRef"])
            data = self.data(kind, ref["name"], bool(ref.get("optional")))
            for k, v in (data or {}).items():
                if _ENV_NAME.match(prefix + k):
                    env[prefix + k] = v.decode(errors="surrogateescape")
        for item in spec.get("env") or []:
            name = item["name"]
            if "valueFrom" not in item:
                env[name] = expand_vars(item.get("value", ""), env)
                continue
            vf = item["valueFrom"]
            if "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind = "secret" if "secretKeyRef" in vf else "configMap"
                ref = vf["secretKeyRef" if kind == "secret" else "configMapKeyRef"]
                optional = bool(ref.get("optional"))
                data = self.data(kind, ref["name"], optional)
                if data is None or ref["key"] not in data:
                    if optional:
                        continue
                    raise PodFailure("CreateContainerConfigError",
                                     f"couldn't find key {ref['key']} in {kind} {self.run.ns}/{ref['name']}")
                env[name] = data[ref["key"]].decode(errors="surrogateescape")
            elif "fieldRef" in vf:
                env[name] = self.field(vf["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in vf:
                env[name] = self.resource(vf["resourceFieldRef"], spec)
            else:
                raise PodFailure("CreateContainerConfigError", f"env {name}: unsupported valueFrom {list(vf)}")
        return env


def _monotonic() -> float:
    import time
    return time.monotonic()


def _mem_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024 ** 3


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)   # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------
# the agent
# --------------------------------------------------------------------------------------
class NodeAgent:
    """The kubelet of the local backend: one Node, pods as host processes."""

    def __init__(self, kube: Kube, node_name: str, work_dir: Path, images: Mapping[str, Toolset],
                 namespace_selector: Callable[[str], bool]):
        self.kube, self.node_name, self.work_dir = kube, node_name, Path(work_dir)
        self.images, self.namespace_selector = dict(images), namespace_selector
        self.tools = _host_tools()
        self._unshare = [self.tools["unshare"], "--mount", "--propagation", "private", "--"]
        if os.geteuid() != 0:
            self._unshare[1:1] = ["--user", "--map-root-user"]
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._runs: dict[str, _PodRun] = {}
        self._deleting: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._watches: list[kube_watch.Watch] = []
        self._started = False

    # --- node ------------------------------------------------------------------------
    def _node_status(self) -> dict:
        now = _now()
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_mem_bytes() // 1024}Ki", "pods": "110",
                    "ephemeral-storage": "100Gi"}
        return {"capacity": capacity, "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": LOCAL_IP},
                              {"type": "Hostname", "address": self.node_name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "NodeAgentReady",
                                "message": "e2e-harness node agent is running pods as host processes",
                                "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "nodeInfo": {"architecture": os.uname().machine, "operatingSystem": "linux",
                             "kernelVersion": os.uname().release, "osImage": "host",
                             "containerRuntimeVersion": "host://e2e-harness", "kubeletVersion": "v0.0.0-node-agent",
                             "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}

    def register_node(self) -> None:
        """Create (or take over) the Node and report it Ready."""
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": {"kubernetes.io/hostname": self.node_name,
                                                                 "kubernetes.io/os": "linux",
                                                                 "node.e2e-harness/agent": "local"}}}
        core = self.kube.core
        try:
            core.create_node(body, _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.patch_node(self.node_name, {"metadata": body["metadata"], "spec": {"taints": None,
                                                                                    "unschedulable": False}},
                            _content_type=SMP, _request_timeout=API_TIMEOUT)
        self._heartbeat()

    def _heartbeat(self) -> None:
        self.kube.core.patch_node_status(self.node_name, {"status": self._node_status()}, _content_type=SMP,
                                         _request_timeout=API_TIMEOUT)

    # --- threads ---------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.work_dir.mkdir(parents=True, exist_ok=True)
        specs = [("agent-heartbeat", self._heartbeat_loop, ()),
                 ("agent-watch-pending", self._watch_loop, ("spec.nodeName=",)),
                 ("agent-watch-node", self._watch_loop, (f"spec.nodeName={self.node_name}",))]
        for name, target, args in specs:
            t = threading.Thread(target=target, args=args, name=name, daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        """Stop watching, kill every container process group, join the threads. Idempotent."""
        self._stop.set()
        for w in list(self._watches):
            w.stop()
            resp = getattr(w, "_resp", None)   # interrupt the blocking read (client >= 29 keeps it)
            if resp is not None:
                try:
                    resp.close()
                except Exception:  # noqa: BLE001 - best effort, the watch times out anyway
                    pass
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.abort("NodeAgentStopped", "the node agent was stopped")
        for run in runs:
            run.thread.join(timeout=KILL_GRACE_SECONDS + 10) if run.thread.ident else None
        for t in self._threads:
            t.join(timeout=WATCH_SECONDS + API_TIMEOUT[1] + 5)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("node agent threads still alive after stop: %s", alive)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._heartbeat()
            except Exception as exc:  # noqa: BLE001 - the next beat retries
                log.warning("node %s heartbeat failed: %s", self.node_name, exc)

    def _watch_loop(self, field_selector: str) -> None:
        core = self.kube.core
        while not self._stop.is_set():
            try:
                listing = core.list_pod_for_all_namespaces(field_selector=field_selector, _request_timeout=API_TIMEOUT)
                for pod in listing.items:
                    self._on_pod("SYNC", self.kube.api.sanitize_for_serialization(pod))
                rv = listing.metadata.resource_version
                while not self._stop.is_set():
                    w = kube_watch.Watch()
                    self._watches.append(w)
                    try:
                        for event in w.stream(core.list_pod_for_all_namespaces, field_selector=field_selector,
                                              resource_version=rv, timeout_seconds=WATCH_SECONDS,
                                              allow_watch_bookmarks=True,
                                              _request_timeout=(API_TIMEOUT[0], WATCH_SECONDS + 10)):
                            if self._stop.is_set():
                                break
                            raw = event["raw_object"]
                            rv = raw.get("metadata", {}).get("resourceVersion", rv)
                            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                                self._on_pod(event["type"], raw)
                    finally:
                        self._watches.remove(w)
                    if w.resource_version is None:   # the client saw 410 Gone: list again
                        break
            except ApiException as exc:
                if exc.status != 410 and not self._stop.is_set():
                    log.warning("pod watch (%s) failed: %s %s", field_selector, exc.status, exc.reason)
                    self._stop.wait(1)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if self._stop.is_set():
                    return
                log.warning("pod watch (%s) connection: %s", field_selector, exc)
                self._stop.wait(1)
            except Exception:  # noqa: BLE001 - the agent must keep going
                if self._stop.is_set():
                    return
                log.error("pod watch (%s) error:\n%s", field_selector, traceback.format_exc())
                self._stop.wait(1)

    def _on_pod(self, event: str, pod: dict) -> None:
        try:
            self._dispatch(event, pod)
        except Exception:  # noqa: BLE001
            log.error("handling pod event %s: %s", event, traceback.format_exc())

    def _dispatch(self, event: str, pod: dict) -> None:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid, node = meta.get("uid"), spec.get("nodeName") or ""
        if not uid or self._stop.is_set():
            return
        with self._lock:
            run = self._runs.get(uid)
            if event == "DELETED":
                # a field-selector watch also says DELETED when the pod merely leaves the selection:
                # binding makes every pod "leave" spec.nodeName=; only our node's watch means it
                if run and node == self.node_name:
                    threading.Thread(target=run.abort, args=("Deleted", "the pod was deleted"), daemon=True).start()
                return
            if meta.get("deletionTimestamp"):
                if node == self.node_name and uid not in self._deleting:
                    self._deleting.add(uid)
                    t = threading.Thread(target=self._delete_pod, args=(pod, run), daemon=True,
                                         name=f"delete-{meta.get('namespace')}/{meta.get('name')}")
                    t.start()
                return
            if run is not None:
                return
            phase = (pod.get("status") or {}).get("phase")
            if not node:
                if not self.namespace_selector(meta.get("namespace", "")):
                    return
                run = _PodRun(self, pod, bind=True)
            elif node == self.node_name:
                if phase in ("Succeeded", "Failed"):
                    return
                run = _PodRun(self, pod, bind=False)
            else:
                return
            self._runs[uid] = run
            run.thread.start()

    def _bind(self, pod: dict) -> bool:
        from kubernetes.client import V1Binding, V1ObjectMeta, V1ObjectReference
        meta = pod["metadata"]
        body = V1Binding(metadata=V1ObjectMeta(name=meta["name"], namespace=meta["namespace"]),
                         target=V1ObjectReference(api_version="v1", kind="Node", name=self.node_name))
        try:
            # the client cannot parse the binding response (ValueError); do not parse it
            self.kube.core.create_namespaced_binding(meta["namespace"], body, _preload_content=False,
                                                     _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status == 409:
                current = self.kube.core.read_namespaced_pod(meta["name"], meta["namespace"],
                                                             _request_timeout=API_TIMEOUT)
                return current.spec.node_name == self.node_name
            if exc.status == 404:
                return False
            raise
        return True

    def _delete_pod(self, pod: dict, run: _PodRun | None) -> None:
        meta = pod["metadata"]
        try:
            if run is not None:
                run.abort("Deleted", "the pod was deleted")
                run.finished.wait(KILL_GRACE_SECONDS + 10)
            self.kube.core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0,
                                                 _request_timeout=API_TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("deleting pod %s/%s: %s %s", meta["namespace"], meta["name"], exc.status, exc.reason)
        except Exception as exc:  # noqa: BLE001
            log.warning("deleting pod %s/%s: %s", meta["namespace"], meta["name"], exc)

    # --- logs ------------------------------------------------------------------------
    def log_dir(self) -> Path:
        return self.work_dir

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        pod_dir = self.work_dir / namespace / pod
        if container is None:
            with self._lock:
                runs = [r for r in self._runs.values() if r.ns == namespace and r.name == pod]
            if runs and runs[-1].mains:
                container = runs[-1].mains[0].name
            else:
                logs = sorted(pod_dir.glob("*.log"))
                if len(logs) != 1:
                    return f"<no log for pod {namespace}/{pod}: {len(logs)} container logs in {pod_dir}, name one>"
                container = logs[0].stem
        path = pod_dir / f"{container}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return f"<no log for pod {namespace}/{pod} container {container}: {path} does not exist>"
