"""Running a command as a user who is not root, as CI runners and most developers run the harness."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def as_runner_user() -> list[str]:
    """argv prefix that runs a command as a user who is not root: ``nobody`` through ``setpriv`` when the
    tests run as root, nothing otherwise. Skips, saying why, when that is not possible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is not on PATH: cannot switch to a non-root user")
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot switch to the user nobody with setpriv")
    return prefix


def runner_python(prefix: list[str]) -> str:
    """A Python of this one's version that the user of ``prefix`` can run through bash, as make runs it
    (an interpreter under /root, such as pyenv's, is not one). Skips when there is none."""
    for candidate in (getattr(sys, "_base_executable", None), sys.executable, "/usr/bin/python3"):
        if not candidate or not os.path.exists(candidate):
            continue
        probe = subprocess.run([*prefix, "/bin/bash", "-c", '"$0" -c "import sys; print(sys.version_info[:2])"',
                                candidate], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **{
                                    # setup-python's Python finds its libpython through it
                                    k: v for k, v in os.environ.items() if k == "LD_LIBRARY_PATH"}})
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return os.path.realpath(candidate)
    pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} here that a non-root user can run")
