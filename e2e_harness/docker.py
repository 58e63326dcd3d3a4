"""Whether a Docker engine answers here: what ``--backend auto`` asks (k3d needs one).

Standard library only: ``make system-deps`` asks it with the host's python3 before the venv exists.
"""

from __future__ import annotations

import subprocess


def engine_answers(timeout: float = 10) -> bool:
    """True when a Docker engine answers ``docker info`` (the client alone is not enough)."""
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
