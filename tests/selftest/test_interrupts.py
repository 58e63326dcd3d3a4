"""Ctrl-C at every phase of a run leaves nothing behind, and the run says where it was stopped.

Each case starts a real e2e run on the local backend (``pytest tests/e2e/...`` as a child
process in its own session, ``tests/child_runs.py``), waits until the run is in one phase
(its console's phase line, and the processes of that phase seen running), sends SIGINT to
the child only, as a terminal's Ctrl-C would reach the harness, and then requires:

* the run exits non-zero with ``e2e-harness: interrupted during <that phase>``;
* no process of the run is left: none recorded while it ran (descendants of the child and
  members of its session, by pid and start time), none in its session, none carrying its
  marker or run id in environment, command line or working directory (never a name);
* none of the loopback ports its processes listened on is still listened on by the run;
* its state directory ``.build/local/<run-id>`` is gone, its temp dir (the child's
  ``TMPDIR``, where the harness's temp dirs go) is empty, and no ``/tmp/e2e-*`` directory
  that its processes named is left.

Phases: the control plane starting, the real node starting, a component build (``go build``), skaffold deploying the
controller's chart, a backup Job's pod running, a restore Job's pod
running, and the teardown. Builds are cached in ``~/.cache/e2e-harness``, so a normal run
passes the build phase in a second, too fast to hit; the build case gives the child an
empty build cache of its own (``XDG_CACHE_HOME``; the control plane binaries are handed
over through ``KUBEBUILDER_ASSETS``, and Go's own compile cache stays warm), so it really
runs ``go build``, and is interrupted while the compiler or linker runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from e2e_harness import abandoned
from e2e_harness.release import load_release
from tests.child_runs import ChildRun

from .conftest import PROJECT_DIR, control_plane_binaries

pytestmark = pytest.mark.timeout(1200)

SCENARIO = "tests/e2e/test_postgres_backup.py::test_internal_pg15_template_backs_up_encrypted_and_restores_the_snapshot"
QUICK = "tests/e2e/test_install.py::test_controller_crds_carry_the_status_fields_scenarios_assert_on"
MIRROR = Path(os.environ.get("E2E_GIT_MIRROR") or PROJECT_DIR.parent / "shared" / "mirrors")
# Components from the git mirror where there is one (this machine), else cloned from the git hosting (CI).
MIRROR_ENV = {"E2E_GIT_MIRROR": str(MIRROR)} if MIRROR.is_dir() else {}
PHASE_TIMEOUT = 900   # from the start of the child until the phase is reached (cold: clones and builds)
EXIT_TIMEOUT = 300    # from SIGINT until the child has exited (its teardown is bounded: namespace 120 s, then the stop)
GRACE = 20            # for the last processes to go after the child exited (the watchdog kills its group)


def _in_pod(run: ChildRun):
    """A container process of the run's node, beyond CoreDNS (the scenario's Job pod has started)."""
    return run.run_id and len(run.pod_processes()) > 2   # pause + coredns are there from the start


def _named(*names: str):
    """Those processes of the run are running, and the run's id is known (the leftover checks need it)."""
    return lambda run: run.run_id and run.processes(lambda s: s.comm in names)


# the scenario's template: the release's own PostgreSQL one (tests/e2e/conftest.py, release_postgres_template)
TEMPLATE = f"pg{load_release(PROJECT_DIR / 'release.env', environ={})['POSTGRES_VERSION']}"
# phase -> (scenario, the phase line on the console, what must be running before SIGINT, the phase it names)
PHASES = {
    "control-plane": (QUICK, r"backend local: starting the cluster \.\.\.$", _named("kube-apiserver"),
                      "backend local: starting the cluster"),
    "node": (QUICK, r"starting the node \(containerd, kubelet, kube-proxy, kube-scheduler\) \.\.\.$",
             _named("kubelet"), "backend local: starting the cluster > starting the node"),
    "build": (QUICK, r"\] go build \S+ \.\.\.$", _named("compile", "link"),
              "backend local: deploying the release > building backup-maker and pgbr at their pins (for their "
              "images) > go build "),
    "deploy": (QUICK, r"skaffold: deploying the backup-maker-controller \.\.\.$",
               _named("skaffold"), "backend local: deploying the release > skaffold: deploying the "
                                   "backup-maker-controller"),
    # a scenario's phases are the lifecycle's (tests/e2e/lifecycle.py): the template, its phase, then the action
    "backup-job": (SCENARIO, r"\] backup of ScheduledBackup \S+ \.\.\.$", _in_pod,
                   f"{TEMPLATE}: backup > backup of ScheduledBackup "),
    "restore-job": (SCENARIO, r"\] restore of ScheduledBackup \S+ \.\.\.$", _in_pod,
                    f"{TEMPLATE}: restore > restore of ScheduledBackup "),
    "teardown": (QUICK, r"backend local: stopping \.\.\.$", None, "backend local: stopping"),
    # make test's way: two workers share one cluster (prepared by one, removed by the controller)
    "concurrent-backup-job": (SCENARIO, r"\] backup of ScheduledBackup \S+ \.\.\.$", _in_pod,
                              f"{TEMPLATE}: backup > backup of ScheduledBackup "),
}
# After an interrupt in a scenario the run tears down; a second SIGINT then must not cut that short.
AGAIN = {"restore-job"}
EXTRA_ARGS = {"concurrent-backup-job": ["-n", "2", QUICK]}


@pytest.fixture
def child_tmp():
    """The child's TMPDIR, like /tmp (sticky, world-writable): as root, PostgreSQL and MariaDB run as their
    system users with data under it (outside pytest's tmp_path, which only root may enter)."""
    path = Path(tempfile.mkdtemp(prefix="e2e-interrupt-tmp-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _private_build_cache(tmp_path: Path) -> dict[str, str]:
    """An empty build cache for the child, with the control plane binaries and Go's compile cache kept."""
    from e2e_harness.backends.local import binaries as local_binaries
    from e2e_harness.release import load_release

    release = load_release(PROJECT_DIR / "release.env", environ={})
    assets = tmp_path / "assets"
    assets.mkdir()
    for binary in (control_plane_binaries().etcd,
                   *local_binaries.kubernetes_binaries(release["KUBERNETES_VERSION"]).values(),
                   local_binaries.coredns_binary(release["COREDNS_VERSION"])):
        (assets / binary.name).symlink_to(binary)
    gocache = subprocess.run(["go", "env", "GOCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(assets), "GOCACHE": gocache}


@pytest.mark.needs_go
@pytest.mark.parametrize("phase", list(PHASES))
def test_an_interrupt_leaves_nothing_of_the_run_and_names_the_phase(phase, tmp_path, child_tmp):
    scenario, line, running, named = PHASES[phase]
    env = {**MIRROR_ENV, "TMPDIR": str(child_tmp)}
    if phase == "build":
        env.update(_private_build_cache(tmp_path))
    # --capture=sys: the phase lines reach the console as they happen (with fd capture, pytest holds back
    # what fixtures print until the test's report).
    run = ChildRun([scenario, *EXTRA_ARGS.get(phase, []), "--backend", "local", "-q", "-p", "no:cacheprovider",
                    "--capture=sys",
                    "--artifacts-dir", str(tmp_path / "artifacts")], env=env, name=f"e2e run ({phase})").start()
    try:
        run.wait_for(run.line_matching(line), f"phase line /{line}/", PHASE_TIMEOUT)
        if running is not None:
            run.wait_for(running, f"processes of the phase {phase} running", 120)
        run.sample()
        at = time.monotonic() - run.started
        run.interrupt()
        if phase in AGAIN:
            stopping = run.line_matching(r"backend local: stopping \.\.\.$")
            run.wait_for(stopping, "the teardown after the interrupt", EXIT_TIMEOUT)
            run.interrupt()
        try:
            code = run.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run had not exited {EXIT_TIMEOUT}s after SIGINT in phase {phase}; its last lines:\n"
                        f"{run.tail(60)}")
    finally:
        run.kill()
    output = run.output
    assert code != 0, f"the interrupted run exited 0:\n{run.tail()}"
    # A concurrent run: each worker says where it was, and the controller that its workers say so.
    said = [m for m in re.finditer(r"e2e-harness: interrupted(?: by signal \w+)? during (.*)", output)
            if m.group(1).startswith(named)]
    assert said, f"the run does not say that it was interrupted during {named}...:\n{run.tail()}"
    said = said[0]
    assert run.run_id, f"the run's id was never seen in its processes' command lines:\n{run.tail()}"
    assert run.ports, "no listening port of the run was seen: the check below would prove nothing"
    report = tmp_path / "artifacts" / "report.md"
    if report.is_file():
        assert "PASSED" not in report.read_text().splitlines()[0], "an interrupted run's report says PASSED"
    if phase in AGAIN:
        assert "SIGINT received again: still tearing down what the run started" in output, run.tail()

    print(f"{phase}: SIGINT at {at:.1f}s, exit {code} at {time.monotonic() - run.started:.1f}s; {said.group(0)}; "
          f"run {run.run_id}: {len(run.seen)} processes, ports {sorted(run.ports)}")
    left = run.leftovers_after(GRACE)
    # pytest-xdist makes pytest's base temp dir in the controller (pytest-of-<user>/pytest-<n>, the last three
    # kept by pytest's own retention): allowed, as long as nothing but empty directories is in it.
    left += [f"temp dir {p}" for p in sorted(child_tmp.iterdir())
             if not (p.name.startswith("pytest-of-") and not [f for f in p.rglob("*") if not f.is_dir()])]
    left += [f"temp dir {p}" for p in sorted(run.temp_dirs_named()) if p.exists() and p != child_tmp]
    assert not left, (f"interrupted at {at:.1f}s ({said.group(0)}); left behind:\n" + "\n".join(left)
                      + f"\n--- console tail ---\n{run.tail()}")


@pytest.mark.needs_go
def test_a_killed_run_leaves_its_secrets_on_disk_only_until_the_next_run(tmp_path, child_tmp):
    """SIGKILL allows no teardown: the services die with the harness (their watchdog), but the state
    directory (PKI, etcd, pods' secret volumes) and the node's parts (its network
    namespace, containerd's shims and containers, mounts, cgroups) stay, until the next run."""
    env = {**MIRROR_ENV, "TMPDIR": str(child_tmp)}
    args = ["--backend", "local", "-q", "-p", "no:cacheprovider", "--capture=sys"]
    killed = ChildRun([QUICK, *args, "--artifacts-dir", str(tmp_path / "killed")], env=env, name="killed run").start()
    try:
        killed.wait_for(killed.line_matching(PHASES["node"][1]), "the node starting", PHASE_TIMEOUT)
        killed.wait_for(lambda run: run.run_id and len(run.pod_processes()) > 2, "the node's first pods running", 120)
        killed.sample()
    finally:
        killed.kill()   # SIGKILL to the harness's process group; its services are in groups of their own
    left = killed.leftovers_after(GRACE)
    assert f"state directory {killed.state_dir}: {sorted(p.name for p in killed.state_dir.iterdir())}" in left
    assert any(item.startswith("node: network namespace") for item in left), left
    assert all(item.startswith(("node: ", "state directory ")) for item in left), (
        "after SIGKILL only the state directory and the node's parts (namespace, shims, containers, mounts, "
        "cgroups) should be left (the services die with the harness):\n" + "\n".join(left))
    # The run's temp dirs (the API discovery cache), each claimed by the run
    temp_dirs = sorted(child_tmp.iterdir())
    assert all((d / abandoned.OWNER_FILE).is_file() for d in temp_dirs), temp_dirs

    after = ChildRun([QUICK, *args, "--artifacts-dir", str(tmp_path / "next")], env=env, name="next run").start()
    try:
        code = after.wait(EXIT_TIMEOUT)
    finally:
        after.kill()
    assert code == 0, after.tail()
    gone = f"pid {killed.popen.pid} is no longer running"
    assert re.search(rf"released .*network namespace {killed.node_tag}.* of a run that was killed \({gone}\)",
                     after.output), after.tail()
    for directory in [killed.state_dir, *temp_dirs]:
        assert f"removed {directory}, left by a run that was killed ({gone})" in after.output, (directory, after.tail())
        assert not directory.exists(), directory
    assert not list(child_tmp.iterdir()), sorted(child_tmp.iterdir())
    assert not after.leftovers_after(GRACE)
