"""The client side of a backup: keys, ScheduledBackups, RequestedBackupActions and their Jobs.

Rules of the pinned controller (backup-maker-controller v0.1.3) that this module encodes:
* the GPG Secret is made here with complete keys (gpg, ed25519/cv25519, no passphrase),
  never left to the controller's ``createIfNotExists``, which creates and then updates the
  Secret (pkg/factory/aggregate_factory.go:97-130) after its condition is True and so races
  the first Job — unless a scenario asks for it;
* a RequestedBackupAction is created only after its ScheduledBackup's condition is True;
* the Job is found through the action's ``ownedReferences`` tracking id (label
  ``riotkit.org/job-tracking-id``), its pods through their ownerReference to the Job
  (every Job of one ScheduledBackup shares the pod label ``job-name``);
* the verdict is the Job's own condition; the action's ``healthy`` is read only after
  the Job has finished and the observer has reported that outcome: a report written
  before the Job counted its pod says ``succeeded`` (controller pkg/integration/
  kubernetesjob.go:58-72, ``Succeeded: !running``), so a report that disagrees with the
  finished Job is stale, and the harness pokes the observer until it reports again.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import yaml

from . import abandoned, progress
from .jobs import job_conditions, job_finished, job_outcome
from .known_defects import KnownDefect, Occurrences, intermittent_match
from .kube import Kube
from .masking import SecretMasker
from .release import Release
from .waiting import Observation, poll_until

RIOTKIT = "riotkit.org/v1alpha1"
TRACKING_LABEL = "riotkit.org/job-tracking-id"
SCHEDULED_TIMEOUT = 60      # the controller retries every few seconds; True took 0.4-10 s by hand
RENDER_TIMEOUT = 60         # action processed and its Job created
JOB_TIMEOUT = 300           # a backup Job took 3 s by hand; the pods' activeDeadlineSeconds is 3600
HEALTH_TIMEOUT = 60         # the observer re-checks every 10 s
REFUSED_AFTER = 20          # a Job still without pods this long while the API refuses them (FailedCreate) never runs
GPG_TIMEOUT = 60
POKE_ANNOTATION = "e2e-harness.riotkit.org/poke"
POKE_INTERVAL = 1.0


class BackupError(AssertionError):
    """A step of a backup or restore did not happen as a scenario requires; says what was seen."""


class PodsRefused(BackupError):
    """The API refuses to create a Job's pods (a missing ServiceAccount, a quota): the Job would never finish."""


def refusal(job: dict, events: list[dict]) -> str:
    """Why the API refuses to create the pods of ``job``: the last FailedCreate message among ``events``
    for it, while it has no pod at all ('' otherwise)."""
    status = job.get("status") or {}
    if any(status.get(count) for count in ("active", "succeeded", "failed", "terminating")):
        return ""
    name = job["metadata"]["name"]
    refused = [e for e in events if e.get("reason") == "FailedCreate"
               and (e.get("involvedObject") or {}).get("kind") == "Job" and e["involvedObject"].get("name") == name]
    return refused[-1].get("message") or "FailedCreate" if refused else ""


@dataclass(frozen=True)
class GpgKeys:
    email: str
    public: str
    private: str
    passphrase: str = ""

    def encrypt(self, plaintext: bytes) -> bytes:
        """An armored message to these keys, as backup-maker uploads it."""
        with _keyring() as home:
            _gpg(home, "--import", stdin=self.public.encode())
            return _gpg(home, "--trust-model", "always", "--armor", "--encrypt", "--recipient", self.email,
                        stdin=plaintext)

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt an armored message with these keys in a throwaway keyring (never the user's)."""
        with _keyring() as home:
            _gpg(home, "--import", stdin=self.private.encode())
            return _gpg(home, "--decrypt", stdin=data)


@contextmanager
def _keyring() -> Iterator[str]:
    """A throwaway gpg home; a later run removes it if this one is killed (it may hold a private key)."""
    with tempfile.TemporaryDirectory(prefix="e2e-gpg-") as home:
        abandoned.claim(Path(home))
        yield home


def _gpg(home: str, *args: str, stdin: bytes | None = None) -> bytes:
    gpg = shutil.which("gpg")
    if gpg is None:
        raise BackupError("gpg is not on PATH; install Debian's gnupg (`make system-deps`)")
    proc = subprocess.run([gpg, "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], input=stdin, capture_output=True, timeout=GPG_TIMEOUT)
    if proc.returncode != 0:
        raise BackupError(f"gpg {args[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def make_gpg_keys(email: str, masker: SecretMasker) -> GpgKeys:
    """A fresh ed25519 signing key with a cv25519 encryption subkey, exported armored."""
    with _keyring() as home:
        _gpg(home, "--quick-gen-key", f"e2e <{email}>", "future-default", "default", "never")
        public = _gpg(home, "--armor", "--export", email).decode()
        private = _gpg(home, "--armor", "--export-secret-keys", email).decode()
    masker.add(private)
    return GpgKeys(email, public, private)


def is_armored_pgp_message(data: bytes) -> bool:
    text = data.strip()
    return text.startswith(b"-----BEGIN PGP MESSAGE-----") and text.endswith(b"-----END PGP MESSAGE-----")


@dataclass
class ActionResult:
    """What one RequestedBackupAction produced: its Job, the Job's pods, the action's final status."""

    name: str
    kind: str          # backup | restore
    action: dict
    job: dict
    pods: list[dict]
    logs: str
    seconds: float = 0.0   # from creating the action to its health report
    phases: dict[str, float] = field(default_factory=dict)   # render, job, health: seconds of each wait

    @property
    def pod_seconds(self) -> float:
        """Time the components spent: the pods' containers' run times (the API's 1 s resolution)."""
        total = 0.0
        for pod in self.pods:
            for status in ((pod.get("status") or {}).get("initContainerStatuses") or []) + (
                    (pod.get("status") or {}).get("containerStatuses") or []):
                ended = (status.get("state") or {}).get("terminated") or {}
                if ended.get("startedAt") and ended.get("finishedAt"):
                    total += (_timestamp(ended["finishedAt"]) - _timestamp(ended["startedAt"])).total_seconds()
        return total

    @property
    def job_outcome(self) -> str | None:
        return job_outcome(self.job)

    @property
    def status(self) -> dict:
        return self.action.get("status") or {}

    def describe(self) -> str:
        """For assertion messages: the Job's verdict, the action's status and the pods' log tail."""
        tail = "\n".join(self.logs.strip().splitlines()[-25:])
        if not self.action:   # a Job made from a CronJob: no action reports it
            return (f"Job {self.job['metadata']['name']} (from the ScheduledBackup's CronJob) "
                    f"conditions={job_conditions(self.job)}\n--- pod log tail ---\n{tail}")
        return (f"RequestedBackupAction {self.name}: Job {self.job['metadata']['name']} "
                f"conditions={job_conditions(self.job)}; action status={_health_summary(self.status)}\n"
                f"--- pod log tail ---\n{tail}")


def _health_summary(status: dict) -> dict:
    return {"processed": status.get("processed"), "healthy": status.get("healthy", False),
            "childrenResourcesHealth": status.get("childrenResourcesHealth")}


@dataclass
class Backups:
    """ScheduledBackups and RequestedBackupActions in one test namespace."""

    kube: Kube
    namespace: str
    pod_logs: Callable[[str, str, str | None], str]
    masker: SecretMasker   # the run's: the Secrets made here and the Jobs' logs go through it
    check_alive: Callable[[], None] = lambda: None   # raises naming a dead component (local backend)
    release: Release | None = None
    defects: list[KnownDefect] = field(default_factory=list)   # the run's catalogue (e2e_harness/known-defects.yaml)
    occurrences: Occurrences = field(default_factory=Occurrences)   # the run's count of known-defect hits
    results: list[ActionResult] = field(default_factory=list)
    defect_hits: int = 0   # Jobs that failed with a known intermittent defect's symptom and were run again
    # action -> {hits in a row before the action ended: how many actions}: the benchmark's hit rates
    hit_runs: dict[str, dict[int, int]] = field(default_factory=dict)
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def timings(self) -> dict[str, float]:
        """Seconds spent per action kind, and in the Jobs' pods: for the suite's benchmark."""
        totals = {"backup_seconds": 0.0, "restore_seconds": 0.0, "pod_seconds": 0.0, "backup_jobs": 0.0,
                  "restore_jobs": 0.0, "defect_hits": float(self.defect_hits), "render_seconds": 0.0,
                  "job_seconds": 0.0, "health_seconds": 0.0}
        for result in self.results:
            totals[f"{result.kind}_seconds"] += result.seconds
            totals[f"{result.kind}_jobs"] += 1
            totals["pod_seconds"] += result.pod_seconds
            for phase, seconds in result.phases.items():
                totals[f"{phase}_seconds"] += seconds
        for action, runs in self.hit_runs.items():
            for hits, count in runs.items():
                totals[f"{action}_hits_in_a_row_{hits}"] = float(count)
        return totals

    # --- Secrets ------------------------------------------------------------------------
    def gpg_secret(self, keys: GpgKeys, name: str = "backup-keys") -> str:
        self._secret(name, {"public": keys.public, "private": keys.private, "passphrase": keys.passphrase,
                            "e-mail.txt": keys.email})
        return name

    def token_secret(self, token: str, name: str = "backup-token") -> str:
        self._secret(name, {"token": token})
        return name

    def _secret(self, name: str, values: dict[str, str]) -> None:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.namespace},
                  "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}
        self.masker.add_secret_object(secret)
        self.kube.apply([secret])

    # --- ScheduledBackup ------------------------------------------------------------------
    def scheduled_backup(self, name: str, *, template: dict, variables: dict, operation: str = "backup",
                         gpg_secret: str = "backup-keys", email: str = "", token_secret: str = "backup-token",
                         create_keys: bool = False, cron: dict | None = None) -> dict:
        """Apply a ScheduledBackup and wait for its condition to be True; returns the object."""
        spec = {"operation": operation, "cronJob": cron or {"enabled": False, "scheduleEvery": "00 02 * * *"},
                "collectionId": variables.get("Repository", {}).get("collectionId", ""),
                "templateRef": template,
                "gpgKeySecretRef": {"secretName": gpg_secret, "publicKey": "public", "privateKey": "private",
                                    "passphraseKey": "passphrase", "email": email or f"{name}@e2e.invalid",
                                    "createIfNotExists": create_keys},
                "tokenSecretRef": {"secretName": token_secret, "tokenKey": "token"},
                "vars": yaml.safe_dump(variables), "varsSecretRef": {}}
        self.kube.apply([{"apiVersion": RIOTKIT, "kind": "ScheduledBackup",
                          "metadata": {"name": name, "namespace": self.namespace}, "spec": spec}])
        # No nudging here: a change of the object wakes its observer too, which wins their shared lock
        # every time and starves the reconciler that templates (seen: no condition for 60 s).
        return self.kube.wait_for(RIOTKIT, "ScheduledBackup", name, self._alive(_condition_true),
                                  namespace=self.namespace, timeout=SCHEDULED_TIMEOUT,
                                  what=f"ScheduledBackup {self.namespace}/{name} to have its condition True "
                                       "(objects templated and applied by the controller)",
                                  where="the ScheduledBackup's events and the controller's log")

    # --- RequestedBackupAction -------------------------------------------------------------
    def run(self, action: str, scheduled: str) -> ActionResult:
        """Request ``action`` of ``scheduled``; wait for its Job to finish and the action's health report.

        A Job that failed with the exact symptom of a known intermittent defect of this
        release (e2e_harness/known-defects.yaml) is requested again, up to the defect's
        attempts; each occurrence is counted for the report. Nothing else is retried."""
        return self._retrying_known_defects(action, f"{action} of ScheduledBackup {self.namespace}/{scheduled}",
                                            lambda: self._run_once(action, scheduled))

    def run_scheduled(self, scheduled: str) -> ActionResult:
        """Run the ScheduledBackup's CronJob once, as its schedule would: a Job made from the CronJob's own
        ``jobTemplate`` (what ``kubectl create job --from=cronjob/<name>`` makes), waited for until it
        finishes. Known intermittent defects are retried as in ``run``. The result has no action."""
        return self._retrying_known_defects("backup", f"a Job of the CronJob of ScheduledBackup "
                                            f"{self.namespace}/{scheduled}", lambda: self._run_cronjob_once(scheduled))

    def _retrying_known_defects(self, action: str, what: str, run_once: Callable[[], ActionResult]) -> ActionResult:
        runs = self.hit_runs.setdefault(action, {})
        for attempt in itertools.count(1):
            with progress.step(what):
                result = run_once()
            defect = None if result.job_outcome != "Failed" else intermittent_match(self.defects, self.release,
                                                                                  result.logs)
            if defect is not None:
                self.occurrences.add(defect)
                self.defect_hits += 1
                progress.say(f"known defect {defect.id} hit {result.name} (attempt {attempt} of {defect.attempts})")
            if defect is None or attempt >= defect.attempts:
                hits = attempt - 1 + (defect is not None)
                runs[hits] = runs.get(hits, 0) + 1
                return result

    def _run_once(self, action: str, scheduled: str) -> ActionResult:
        name = f"{scheduled}-{action}-{next(self._counter)}"
        started = time.monotonic()
        self.kube.apply([{"apiVersion": RIOTKIT, "kind": "RequestedBackupAction",
                          "metadata": {"name": name, "namespace": self.namespace},
                          "spec": {"action": action, "scheduledBackupRef": {"name": scheduled}}}])
        rendered = self.kube.wait_for(RIOTKIT, "RequestedBackupAction", name, self._alive(_job_referenced),
                                      namespace=self.namespace, timeout=RENDER_TIMEOUT,
                                      what=f"RequestedBackupAction {self.namespace}/{name} to be processed "
                                           "with a Job in its ownedReferences",
                                      where="the ScheduledBackup's events and the controller's log")
        rendered_at = time.monotonic()
        job = self._find_job(rendered, name)
        job_name = job["metadata"]["name"]
        job = self.kube.wait_for("batch/v1", "Job", job_name, self._until_finished(job_name),
                                 namespace=self.namespace, timeout=JOB_TIMEOUT,
                                 what=f"Job {self.namespace}/{job_name} ({action} of {scheduled}) to be Complete or Failed",
                                 where=f"the pods of Job {job_name} and their logs")
        outcome = job_outcome(job)
        finished_at = time.monotonic()
        final = self._wait_poking("RequestedBackupAction", name, health_reported(outcome), timeout=HEALTH_TIMEOUT,
                                  what=f"RequestedBackupAction {self.namespace}/{name} to report its Job {outcome} "
                                       "in childrenResourcesHealth (the controller's observer)",
                                  where="the controller's log")
        pods = self._pods_of(job)
        logs = self._logs_of(pods)
        now = time.monotonic()
        result = ActionResult(name, action, final, job, pods, self.masker.mask(logs), now - started,
                              {"render": rendered_at - started, "job": finished_at - rendered_at,
                               "health": now - finished_at})
        self.results.append(result)
        return result

    def _run_cronjob_once(self, scheduled: str) -> ActionResult:
        started = time.monotonic()
        owned = [c for c in self.kube.list("batch/v1", "CronJob", self.namespace)
                 if any(o.get("kind") == "ScheduledBackup" and o.get("name") == scheduled
                        for o in c["metadata"].get("ownerReferences") or [])]
        if len(owned) != 1:
            raise BackupError(f"ScheduledBackup {self.namespace}/{scheduled}: expected exactly one CronJob owned by "
                              f"it, found {[c['metadata']['name'] for c in owned]}")
        cronjob = owned[0]
        template = cronjob["spec"]["jobTemplate"]
        name = f"{cronjob['metadata']['name']}-manual-{next(self._counter)}"[:63]
        self.kube.apply([{"apiVersion": "batch/v1", "kind": "Job",
                          "metadata": {"name": name, "namespace": self.namespace,
                                       "labels": (template.get("metadata") or {}).get("labels") or {},
                                       "annotations": {**((template.get("metadata") or {}).get("annotations") or {}),
                                                       "cronjob.kubernetes.io/instantiate": "manual"},
                                       "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                                            "name": cronjob["metadata"]["name"],
                                                            "uid": cronjob["metadata"]["uid"], "controller": True}]},
                          "spec": template["spec"]}])
        job = self.kube.wait_for("batch/v1", "Job", name, self._until_finished(name), namespace=self.namespace,
                                 timeout=JOB_TIMEOUT, what=f"Job {self.namespace}/{name} (from CronJob "
                                 f"{cronjob['metadata']['name']}) to be Complete or Failed",
                                 where=f"the pods of Job {name} and their logs")
        finished = time.monotonic()
        pods = self._pods_of(job)
        result = ActionResult(name, "backup", {}, job, pods, self.masker.mask(self._logs_of(pods)),
                              finished - started, {"job": finished - started})
        self.results.append(result)
        return result

    def _logs_of(self, pods: list[dict]) -> str:
        """Every container's log of ``pods``, and why the kubelet ended a pod (an eviction says so in its
        status, not in its log)."""
        logs = "\n".join(self.pod_logs(self.namespace, p["metadata"]["name"], c["name"])
                         for p in pods for c in (p["spec"].get("initContainers") or []) + p["spec"]["containers"])
        return logs + "".join(f"\npod {p['metadata']['name']}: {p['status']['reason']}: "
                              f"{p['status'].get('message', '')}" for p in pods if (p.get("status") or {}).get("reason"))

    def _find_job(self, action: dict, action_name: str) -> dict:
        refs = [r for r in action["status"]["ownedReferences"] if r.get("kind") == "Job"]
        jobs = self.kube.list("batch/v1", "Job", self.namespace,
                              label_selector=f"{TRACKING_LABEL}={refs[0]['trackingId']}")
        if len(jobs) != 1:
            raise BackupError(f"RequestedBackupAction {action_name}: expected exactly one Job labelled "
                              f"{TRACKING_LABEL}={refs[0]['trackingId']}, found {len(jobs)}")
        return jobs[0]

    def _pods_of(self, job: dict) -> list[dict]:
        uid = job["metadata"]["uid"]
        return [p for p in self.kube.list("v1", "Pod", self.namespace)
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]

    def _wait_poking(self, kind: str, name: str, condition, *, timeout: float, what: str, where: str) -> dict:
        """Poll ``condition``; while it does not hold, touch an annotation of the object.

        Used for the action's health report once its Job has finished: the controller runs
        two reconcilers per object behind one lock, and the one that loses requeues itself
        10 s later. A change of the object queues both at once, and the observer (the one
        that writes the health report) wins, so the harness touches an annotation instead of
        waiting out that delay. What the observer reports is unchanged: it reads the real Jobs."""
        pokes = itertools.count(1)

        def check() -> Observation:
            obj = self.kube.get(RIOTKIT, kind, name, self.namespace)
            done, state = self._alive(condition)(obj)
            if not done and obj is not None:
                self.kube.annotate(RIOTKIT, kind, name, self.namespace, {POKE_ANNOTATION: str(next(pokes))})
            return Observation(done, state, obj)

        return poll_until(check, what=what, timeout=timeout, interval=POKE_INTERVAL, where=where).value

    def _until_finished(self, job_name: str):
        """The Job wait's check: done when the Job is Complete or Failed; PodsRefused when, REFUSED_AFTER
        seconds on, it has no pod and its events show the API refusing to create one (it would never finish)."""
        since = time.monotonic()

        def check(obj: dict | None) -> tuple[bool, str]:
            done, state = job_finished(obj)
            if not done and obj is not None and time.monotonic() - since >= REFUSED_AFTER:
                if why := refusal(obj, self.kube.events(self.namespace)):
                    raise PodsRefused(f"Job {self.namespace}/{job_name} has no pod after {REFUSED_AFTER}s or more: the "
                                      f"API refuses to create them (FailedCreate): {why}")
            return done, state
        return self._alive(check)

    def _alive(self, condition):
        """A wait condition that first checks the backend's components, so a dead one fails the wait now."""
        def checked(obj):
            self.check_alive()
            return condition(obj)
        return checked


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else text


def _conditions(obj: dict | None) -> list[dict]:
    return ((obj or {}).get("status") or {}).get("conditions") or []


def _condition_true(obj: dict | None) -> tuple[bool, str]:
    conditions = _conditions(obj)
    if any(c.get("status") == "False" and "dependencies" not in (c.get("message") or "") for c in conditions):
        raise BackupError(f"ScheduledBackup {obj['metadata']['name']} failed: {conditions}")
    return any(c.get("status") == "True" for c in conditions), f"conditions={conditions}"


def _job_referenced(obj: dict | None) -> tuple[bool, str]:
    if obj is None:
        return False, "absent"
    status = obj.get("status") or {}
    refs = [r for r in status.get("ownedReferences") or [] if r.get("kind") == "Job"]
    failed = [c for c in _conditions(obj) if c.get("status") == "False"]
    if status.get("processed") and not refs:
        raise BackupError(f"RequestedBackupAction {obj['metadata']['name']} was processed without creating a "
                          f"Job: conditions={failed or _conditions(obj)}")
    return bool(status.get("processed") and refs), f"processed={status.get('processed')}, ownedReferences={refs}"


def health_reported(outcome: str | None) -> Callable[[dict | None], tuple[bool, str]]:
    """A wait condition: the observer's report, written after the Job ended as ``outcome``.

    Only a report that says what the Job says can be told from one written before the pod
    started (which reads ``succeeded``, not running); a controller that never reports a
    failed Job as failed makes this wait time out with the report it kept."""
    key = "failed" if outcome == "Failed" else "succeeded"

    def reported(obj: dict | None) -> tuple[bool, str]:
        status = (obj or {}).get("status") or {}
        children = status.get("childrenResourcesHealth") or []
        done = bool(children) and not any(c.get("running") for c in children) and any(
            c.get(key) for c in children)
        return done, f"Job {outcome}; action {_health_summary(status)}"
    return reported

