"""Running external commands (git, go, k3d, skaffold, helm) with bounded time.

One place decides how commands are logged (``VERBOSE``), how long they may take
and what a failure says: the command, its exit code and the tail of its output.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from . import progress
from .knobs import flag

log = logging.getLogger("e2e_harness.commands")

OUTPUT_TAIL_LINES = 40


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


def verbose() -> bool:
    """The old harness's VERBOSE knob: echo commands' output."""
    return flag(os.environ, "VERBOSE")


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
        proc = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CommandError(f"{what}: command {argv[0]!r} not found on PATH; "
                           "install it (see README, `make tools`)", returncode=None, output="") from None
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        raise CommandError(f"{what}: `{printable}` did not finish within {timeout:.0f}s; "
                           f"last output:\n{tail(output)}", returncode=None, output=output) from None
    if verbose():
        progress.say(f"ran `{printable}`: exit {proc.returncode}")
        progress.detail(proc.stderr if secret_output else proc.stdout + proc.stderr)
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        output = proc.stdout + proc.stderr
        raise CommandError(f"{what}: `{printable}` exited with {proc.returncode}; output:\n{tail(output)}",
                           returncode=proc.returncode, output=output)
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
