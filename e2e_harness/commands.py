"""Running external commands (git, go, k3d, skaffold, helm) with bounded time.

One place decides how commands are logged (``VERBOSE``), how long they may take
and what a failure says: the command, its exit code and the tail of its output.

Each command runs in its own process group. When it times out, or the harness is
interrupted (Ctrl-C, SIGTERM) while it runs, the whole group is stopped: SIGTERM (git
removes its lock files), then SIGKILL after ``STOP_GRACE`` seconds, so no child of the
command (``go build``'s compilers and linker) outlives it.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from . import progress
from .knobs import flag
from .processes import signal_group

log = logging.getLogger("e2e_harness.commands")

OUTPUT_TAIL_LINES = 40
STOP_GRACE = 5


class CommandError(RuntimeError):
    """A command failed or timed out; the message carries the output's tail."""

    def __init__(self, message: str, *, returncode: int | None, output: str):
        super().__init__(message)
        self.returncode = returncode
        self.output = output


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


_verbose: bool | None = None   # the plugin's resolved knob (--verbose-commands, VERBOSE); None: the CLIs'


def configure(*, verbose: bool) -> None:
    global _verbose
    _verbose = verbose


def verbose() -> bool:
    """The old harness's VERBOSE knob: echo commands' output."""
    return _verbose if _verbose is not None else flag(os.environ, "VERBOSE")


def tail(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(args: Sequence[str | os.PathLike], *, cwd: Path | None = None,
        env: Mapping[str, str] | None = None, timeout: float = 600,
        what: str | None = None, check: bool = True, secret_output: bool = False) -> Result:
    """Run ``args`` (no shell), wait at most ``timeout`` seconds.

    ``env`` entries are added to the current environment. With ``check`` a non-zero
    exit raises CommandError naming ``what`` (a human description of the step).
    ``secret_output`` (e.g. a kubeconfig with keys) keeps stdout out of VERBOSE output.
    """
    argv = tuple(str(a) for a in args)
    printable = shlex.join(argv)
    what = what or printable
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.debug("running %s (cwd=%s)", printable, cwd or os.getcwd())
    try:
        popen = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, stdin=subprocess.DEVNULL, process_group=0)
    except FileNotFoundError:
        raise CommandError(f"{what}: command {argv[0]!r} not found on PATH; "
                           "install it (see README, `make tools`)", returncode=None, output="") from None
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        output = "".join(_stop_group(popen))
        raise CommandError(f"{what}: `{printable}` did not finish within {timeout:.0f}s; "
                           f"last output:\n{tail(output)}", returncode=None, output=output) from None
    except BaseException:   # KeyboardInterrupt (Ctrl-C, SIGTERM): nothing of the command may outlive the harness
        _stop_group(popen)
        raise
    proc = subprocess.CompletedProcess(argv, popen.returncode, stdout, stderr)
    if verbose():
        progress.say(f"ran `{printable}`: exit {proc.returncode}")
        progress.detail(proc.stderr if secret_output else proc.stdout + proc.stderr)
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        output = proc.stdout + proc.stderr
        raise CommandError(f"{what}: `{printable}` exited with {proc.returncode}; output:\n{tail(output)}",
                           returncode=proc.returncode, output=output)
    return result


def _stop_group(popen: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM the command's process group, and SIGKILL it when the command has not ended within
    STOP_GRACE s (still unreaped, the leader's pid names this group and no other); its output."""
    signal_group(popen.pid, signal.SIGTERM)
    try:
        stdout, stderr = popen.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        signal_group(popen.pid, signal.SIGKILL)
        stdout, stderr = popen.communicate()
    return stdout or "", stderr or ""

