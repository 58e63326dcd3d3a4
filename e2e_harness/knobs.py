"""The old harness's environment knobs, read once and validated.

``SKIP_GIT_PULL``, ``SKIP_SERVER_INSTALL``, ``SKIP_CLIENT_INSTALL`` and ``VERBOSE``
keep their meaning; ``COMPONENT_SOURCE`` (auto|git|goproxy) is new. A knob with a
value that is neither true nor false is an error rather than silently false.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


class KnobError(ValueError):
    pass


def flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise KnobError(f"environment variable {name}={environ[name]!r}: expected true or false")


@dataclass(frozen=True)
class Knobs:
    skip_git_pull: bool
    skip_server_install: bool
    skip_client_install: bool
    verbose: bool
    component_source: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Knobs":
        source = environ.get("COMPONENT_SOURCE", "auto").strip() or "auto"
        if source not in ("auto", "git", "goproxy"):
            raise KnobError(f"environment variable COMPONENT_SOURCE={source!r}: expected auto, git or goproxy")
        return cls(skip_git_pull=flag(environ, "SKIP_GIT_PULL"),
                   skip_server_install=flag(environ, "SKIP_SERVER_INSTALL"),
                   skip_client_install=flag(environ, "SKIP_CLIENT_INSTALL"),
                   verbose=flag(environ, "VERBOSE"),
                   component_source=source)
