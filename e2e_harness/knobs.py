"""The old harness's knobs, as pytest options with their environment variables as fallback.

``SKIP_GIT_PULL``, ``SKIP_SERVER_INSTALL``, ``SKIP_CLIENT_INSTALL`` and ``VERBOSE`` keep their
meaning; ``COMPONENT_SOURCE`` (auto|git|goproxy) is new. Each is also an option (``KNOBS``: the
option wins, then the environment variable, then the default), so ``pytest --help`` lists them,
and ``resolve`` is the one place that reads them. A value that is neither true nor false is an
error rather than silently false.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")
SOURCE_MODES = ("auto", "git", "goproxy")   # COMPONENT_SOURCE (e2e_harness/components.py)


class KnobError(ValueError):
    pass


@dataclass(frozen=True)
class Knob:
    field: str        # Knobs' attribute
    option: str       # the pytest option
    env: str          # its environment fallback (the old harness's name)
    help: str
    choices: tuple[str, ...] = ()   # empty: a flag (true/false)
    default: str = ""


KNOBS = (
    Knob("skip_git_pull", "--skip-git-pull", "SKIP_GIT_PULL",
         "use the component clones in .build as they are: never fetch or pull (offline work)"),
    Knob("skip_server_install", "--skip-server-install", "SKIP_SERVER_INSTALL",
         "leave backup-repository as deployed in a kept (--keep-cluster) or existing cluster"),
    Knob("skip_client_install", "--skip-client-install", "SKIP_CLIENT_INSTALL",
         "leave backup-maker-controller as deployed in a kept (--keep-cluster) or existing cluster"),
    Knob("verbose", "--verbose-commands", "VERBOSE", "echo the output of every command the harness runs"),
    Knob("component_source", "--component-source", "COMPONENT_SOURCE",
         "where component sources come from: auto (git, else the Go module proxy), git, goproxy",
         choices=SOURCE_MODES, default="auto"),
)


def flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise KnobError(f"environment variable {name}={environ[name]!r}: expected true or false")


@dataclass(frozen=True)
class Knobs:
    skip_git_pull: bool = False
    skip_server_install: bool = False
    skip_client_install: bool = False
    verbose: bool = False
    component_source: str = "auto"

    @classmethod
    def resolve(cls, options: Mapping[str, object] | None = None,
                environ: Mapping[str, str] = os.environ) -> "Knobs":
        """Each knob from ``options`` (by field; None: not given), else its environment variable."""
        options = options or {}
        values = {}
        for knob in KNOBS:
            given = options.get(knob.field)
            if given is not None:
                values[knob.field] = given
            elif knob.choices:
                value = environ.get(knob.env, knob.default).strip() or knob.default
                if value not in knob.choices:
                    raise KnobError(f"environment variable {knob.env}={value!r}: expected "
                                    f"{', '.join(knob.choices[:-1])} or {knob.choices[-1]} (or {knob.option})")
                values[knob.field] = value
            else:
                values[knob.field] = flag(environ, knob.env)
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Knobs":
        """The command-line tools' knobs (no pytest options there)."""
        return cls.resolve(None, environ)


def add_options(group) -> None:
    """The knobs as options of a pytest option group."""
    for knob in KNOBS:
        text = f"{knob.help} (environment: {knob.env})"
        if knob.choices:
            group.addoption(knob.option, choices=knob.choices, default=None, dest=f"knob_{knob.field}", help=text)
        else:
            group.addoption(knob.option, action="store_const", const=True, default=None,
                            dest=f"knob_{knob.field}", help=text)


def from_pytest(config) -> Knobs:
    return Knobs.resolve({knob.field: config.getoption(f"knob_{knob.field}") for knob in KNOBS})
