"""The workflows' jobs, run here the way GitHub's ubuntu-24.04 runner runs them: not root, no local node packages.

Each job that runs the e2e suite as the runner's user has its ``run:`` commands read from the
workflow YAML (with the workflow's, job's and step's ``env:``, and ``${{ matrix.* }}`` taken from
the job's first matrix combination) and run with ``bash -eo pipefail`` as the user ``nobody``
(through ``setpriv`` when the tests run as root), in a copy of this checkout, with a HOME of its
own and a PATH that holds only what the runner has and the steps before set up: bash, make,
coreutils and a few basics, git, gpg, skopeo (the ubuntu-24.04 image ships it), Go
(actions/setup-go) and Python (actions/setup-python). None of the local backend's own packages
(containerd, runc, mmdebstrap, ...) is on it, and ``docker``
is a client whose engine does not answer. Such a job must get as far as the k3d backend's
preflight and fail there, with its message: not at ``make system-deps``, not for want of root
or of a package.

The ``uses:`` steps are emulated: checkout is the copy; setup-go and setup-python are their
tools on the PATH; a cache restore of ``.build/bin`` is a cache hit of stand-ins for the pinned
tools (here the tools' download hosts may be unreachable; nothing runs them before the
preflight, which asks for Docker first); ``pip install`` is bounded the same way: the copy's
``.build/venv`` holds the packages of the venv running these tests, as a made one would.
upload-artifact must find what it uploads, and v4 skips hidden paths (``.build``) unless
``include-hidden-files: true``.

Jobs that need root (the self-tests run the local backend's real node; the local backend's
e2e job) cannot get it here: they must run those commands through ``sudo`` with the runner's
PATH (sudo's secure_path would hide setup-go's Go) and LD_LIBRARY_PATH (setup-python's
Python finds its libpython through it; sudo drops it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e_harness.debian import HOST_TOOLS
from e2e_harness.processes import signal_group
from e2e_harness.tools import load_manifest
from tests.runner_user import as_runner_user, runner_python
from tests.unit.test_workflow_jobs import SUITE_JOBS, runs_the_suite

from .conftest import PROJECT_DIR

PREFLIGHT = "k3d backend needs a running Docker engine (`docker info` failed)"
# Messages that mean the job stopped before the preflight: system-deps, root, a missing package.
TOO_EARLY = ("cannot install them", "missing tools", "apt-get install", "needs root", "not root",
             "Permission denied", "command not found")
STEP_TIMEOUT = 600   # seconds; here a step takes about 10 (backup-maker from the mirror and one Go module)

# What an ubuntu-24.04 runner's user has on PATH besides coreutils, and what the setup actions add.
RUNNER_COMMANDS = ("bash", "sh", "make", "env", "sed", "grep", "find", "xargs", "tar", "gzip", "which", "git",
                   "gpg", "gpgconf", "gpg-agent", "skopeo")
SETUP_GO = ("go", "gofmt")
ACTIONS_EMULATED = {
    "actions/checkout": "the copy of this checkout",
    "actions/setup-python": "its python3 on PATH",
    "actions/setup-go": "its go on PATH",
    "actions/cache": "a hit of stand-ins for the pinned tools when it restores .build/bin, else a miss",
    "actions/upload-artifact": "checked: finds what it uploads",
    "actions/download-artifact": "not needed by the jobs run here",
    "mikepenz/action-junit-report": "publishes only",
}
DOCKER_WITHOUT_ENGINE = """#!/bin/sh
echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
exit 1
"""
STAND_IN_TOOL = """#!/bin/sh
echo "$0: a stand-in from tests/selftest/test_workflow_jobs.py (a cache hit of .build/bin); nothing may run it" >&2
echo "before the k3d preflight, which asks for a Docker engine first" >&2
exit 97
"""


# --- the runner, emulated ----------------------------------------------------------------------


def coreutils() -> list[str]:
    """The commands of Debian's coreutils package, else a list of the usual ones."""
    listed = subprocess.run(["dpkg-query", "-L", "coreutils"], capture_output=True, text=True) \
        if shutil.which("dpkg-query") else None
    if listed is not None and listed.returncode == 0:
        names = {Path(p).name for p in listed.stdout.splitlines() if re.match(r"^(/usr)?/s?bin/[^/]+$", p)}
    else:
        names = set("basename cat chmod chown cp cut date dirname echo env false head id ln ls mkdir mktemp mv "
                    "printf readlink realpath rm rmdir sleep sort tail tee touch tr true uname uniq wc".split())
    return sorted(names)


def link_tree(src: Path, dst: Path) -> None:
    """``src`` at ``dst``, files hard-linked where the file system allows (the venv is large), else copied."""
    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    shutil.copytree(src, dst, symlinks=True, copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns("__pycache__", "__editable__*"))


def checkout_files() -> list[str]:
    """The checkout as the working tree has it: tracked and untracked files that git does not ignore."""
    listed = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(PROJECT_DIR), "ls-files", "-z", "--cached",
                             "--others", "--exclude-standard"], capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    return [f for f in listed.stdout.split("\0") if f and os.path.isfile(PROJECT_DIR / f)]


@dataclass
class Runner:
    root: Path
    workspace: Path
    home: Path
    bin: Path
    summary: Path
    prefix: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def chown(self, *paths: Path) -> None:
        if self.prefix:
            for path in paths:
                subprocess.run(["chown", "-R", "nobody:nogroup", str(path)], check=True)


@pytest.fixture
def runner():
    """A fresh ubuntu-24.04 runner, emulated: a workspace with the checkout, HOME, a restricted PATH."""
    prefix = as_runner_user()
    python = runner_python(prefix)
    # Not under pytest's tmp_path: that is private to root, and the runner's user must reach this.
    root = Path(tempfile.mkdtemp(prefix="e2e-runner-"))
    try:
        root.chmod(0o755)
        shared = PROJECT_DIR.parent / "shared"
        if shared.is_dir():   # the machine's git mirrors, found by the Makefile beside the checkout as here
            (root / "shared").symlink_to(shared)
        workspace, home, bin_dir = root / PROJECT_DIR.name, root / "home", root / "bin"
        for rel in checkout_files():
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / rel, workspace / rel, follow_symlinks=False)
        home.mkdir()
        summary = root / "step-summary.md"
        summary.touch()
        (root / "runner-temp").mkdir()
        bin_dir.mkdir()
        for name in [*coreutils(), *RUNNER_COMMANDS, *SETUP_GO]:
            found = shutil.which(name)
            if found and not (bin_dir / name).exists():
                (bin_dir / name).symlink_to(found)
        for name in ("python3", "python"):
            (bin_dir / name).symlink_to(python)
        docker = bin_dir / "docker"   # a runner's Docker client, its engine down
        docker.write_text(DOCKER_WITHOUT_ENGINE)
        docker.chmod(0o755)
        runner = Runner(root, workspace, home, bin_dir, summary, prefix)
        runner.chown(workspace, home, summary, root / "runner-temp")
        runner.env = {
            "PATH": str(bin_dir), "HOME": str(home), "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace), "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(root / "runner-temp"), "RUNNER_OS": "Linux", "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
            # what setup-python exports (its libpython) and this machine's network settings
            **{k: v for k, v in os.environ.items()
               if k in ("LD_LIBRARY_PATH", "pythonLocation", "GOPROXY", "GONOSUMDB", "GOPRIVATE", "GOFLAGS",
                        "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")},
        }
        yield runner
    finally:
        shutil.rmtree(root, ignore_errors=True)


def seed_venv(runner: Runner) -> None:
    """``.build/venv`` as ``make venv`` leaves it, from the packages of the venv running these tests."""
    venv = runner.workspace / ".build" / "venv"
    python = os.path.realpath(runner.bin / "python3")
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    target = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    shutil.rmtree(target)
    link_tree(Path(sysconfig.get_path("purelib")), target)
    for pth in target.glob("*.pth"):   # this checkout's editable install -> the copy's
        if "e2e_harness" in pth.name or "e2e-harness" in pth.name:
            pth.unlink()
    (target / "e2e_harness_checkout.pth").write_text(f"{runner.workspace}\n")
    (venv / ".installed").touch()
    # The runner's user owns .build, but not the venv's files: they are hard links, whose owner is the original's.
    if runner.prefix:
        shutil.chown(runner.workspace / ".build", "nobody", "nogroup")


def seed_pinned_tools(runner: Runner) -> None:
    """.build/bin as a cache hit leaves it: the pinned tools with their stamps (stand-ins: see STAND_IN_TOOL)."""
    bin_dir = runner.workspace / ".build" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in load_manifest():
        (bin_dir / tool.name).write_text(STAND_IN_TOOL)
        (bin_dir / tool.name).chmod(0o755)
        (bin_dir / f".{tool.name}.verified").write_text(tool.stamp)
    runner.chown(bin_dir)


def expand(value: str, matrix: dict, where: str) -> str:
    """``${{ matrix.x }}`` from the job's first matrix combination; any other expression is not emulated."""
    def one(match: re.Match) -> str:
        expr = match.group(1).strip()
        if expr.startswith("matrix.") and expr[len("matrix."):] in matrix:
            return str(matrix[expr[len("matrix."):]])
        pytest.fail(f"{where}: the expression ${{{{ {expr} }}}} is not emulated by this self-test; extend expand()")
    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


@dataclass
class StepResult:
    command: str
    returncode: int
    output: str


def run_step(runner: Runner, script: str, env: dict[str, str], cwd: Path) -> StepResult:
    """A ``run:`` step as GitHub runs it on Linux: ``bash --noprofile --norc -eo pipefail {0}``."""
    script_file = runner.root / "runner-temp" / f"step-{time.monotonic_ns()}.sh"
    script_file.write_text(script)
    runner.chown(script_file)
    log = runner.root / f"{script_file.stem}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*runner.prefix, str(runner.bin / "bash"), "--noprofile", "--norc", "-eo", "pipefail",
                                 str(script_file)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            returncode = proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = -9
    return StepResult(script, returncode, log.read_text(errors="replace"))


def upload_problems(runner: Runner, step: dict, name: str) -> list[str]:
    """What upload-artifact v4 would not find: nothing matching, or only hidden paths without include-hidden-files."""
    spec = step.get("with", {})
    hidden_ok = str(spec.get("include-hidden-files", "false")).lower() == "true"
    problems = []
    for pattern in str(spec.get("path", "")).split("\n"):
        pattern = pattern.strip()
        if not pattern:
            continue
        matches = [m for m in runner.workspace.glob(pattern)]
        files = [f for m in matches for f in ([m] if m.is_file() else m.rglob("*")) if f.is_file()]
        visible = [f for f in files if hidden_ok or not any(part.startswith(".")
                                                             for part in f.relative_to(runner.workspace).parts)]
        if not files:
            problems.append(f"{name}: {pattern} matches no file")
        elif not visible:
            problems.append(f"{name}: {pattern} matches only hidden paths, which upload-artifact v4 "
                            "skips: set include-hidden-files: true")
    return problems


def run_job(runner: Runner, workflow: Path, spec: dict, job_id: str, job: dict) -> tuple[list[StepResult], list[str]]:
    """The job's steps in order, up to the first failing run step; then its `if: always()` uploads, checked."""
    matrix = {k: v[0] for k, v in job.get("strategy", {}).get("matrix", {}).items() if isinstance(v, list)}
    where = f"{workflow.name}:{job_id}"
    env_base = {**runner.env, "GITHUB_JOB": job_id, "GITHUB_WORKFLOW": spec.get("name", workflow.name),
                **{k: expand(v, matrix, where) for k, v in (spec.get("env") or {}).items()},
                **{k: expand(v, matrix, where) for k, v in (job.get("env") or {}).items()}}
    seed_venv(runner)
    results: list[StepResult] = []
    problems: list[str] = []
    failed = False
    for number, step in enumerate(job["steps"], 1):
        if "uses" in step:
            action = step["uses"].split("@", 1)[0]
            if action not in ACTIONS_EMULATED:
                pytest.fail(f"{where} step {number} uses {action}, which this self-test does not emulate; add it "
                            "to ACTIONS_EMULATED (and emulate what it does for the steps after it)")
            if action == "actions/cache" and ".build/bin" in str(step.get("with", {}).get("path", "")).split():
                seed_pinned_tools(runner)
            if action == "actions/upload-artifact" and (not failed or "always()" in str(step.get("if", ""))):
                problems += upload_problems(runner, step, expand(step.get("with", {}).get("name", ""), matrix, where))
            continue
        if failed:
            continue
        if not (runner.workspace / ".build" / "bin").exists():
            # No cache step: `make tools` would download the pinned tools; bounded here the same way.
            seed_pinned_tools(runner)
        env = {**env_base, **{k: expand(v, matrix, where) for k, v in (step.get("env") or {}).items()}}
        cwd = runner.workspace / step.get("working-directory", ".")
        result = run_step(runner, expand(step["run"], matrix, where), env, cwd)
        results.append(result)
        failed = result.returncode != 0
    return results, problems


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow, spec, job_id, job", SUITE_JOBS)
def test_a_job_that_runs_the_suite_reaches_the_k3d_preflight_as_a_non_root_user_without_the_local_packages(
        runner, workflow: Path, spec: dict, job_id: str, job: dict):
    local_only = sorted(set(HOST_TOOLS["local"]) - set(HOST_TOOLS["k3d"]) - {"docker"})
    on_path = [t for t in local_only if not t.startswith("/") and shutil.which(t, path=runner.env["PATH"])]
    assert not on_path, f"the emulated runner's PATH has local node packages: {on_path}"
    for tool in ("sudo", "setpriv", "runuser", "su"):
        assert shutil.which(tool, path=runner.env["PATH"]) is None, tool

    results, upload = run_job(runner, workflow, spec, job_id, job)
    suite = [r for r in results if runs_the_suite(r.command)]
    assert suite, f"{workflow.name}:{job_id}: no step ran the suite; steps run:\n" + "\n".join(
        f"--- {r.command.strip()} (exit {r.returncode})\n{r.output[-3000:]}" for r in results)
    last = suite[-1]
    report = runner.summary.read_text(errors="replace")
    junit = runner.workspace / ".build" / "junit-e2e.xml"
    evidence = last.output + report + (junit.read_text(errors="replace") if junit.exists() else "")
    context = f"{workflow.name}:{job_id}: `{last.command.strip()}` exited {last.returncode}:\n{last.output[-6000:]}"
    too_early = [m for m in TOO_EARLY if m in last.output]
    assert not too_early, f"stopped before the k3d preflight ({', '.join(too_early)}): {context}"
    assert "--backend k3d" in last.output, f"pytest did not start with --backend k3d: {context}"
    assert PREFLIGHT in evidence, f"the k3d preflight's message is missing: {context}"
    assert last.returncode != 0, f"a run whose backend was unavailable passed: {context}"
    assert not upload, f"{workflow.name}:{job_id}: " + "; ".join(upload)
