"""actionlint for the workflow self-tests, at one pinned version, built once from its Go module.

Looked for, in order: ``$ACTIONLINT``, PATH and the cache outside the repository
(``$XDG_CACHE_HOME/e2e-harness/actionlint/<version>/bin``, default ``~/.cache``); a binary
counts only when it reports :data:`ACTIONLINT_VERSION`. Otherwise ``python -m e2e_harness.lint_tools``
(``make lint-tools``) builds it from its Go module into the cache (``gomodules.find_or_build``);
Go verifies the module against the checksum database.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from . import gomodules

log = logging.getLogger("e2e_harness.lint_tools")

ACTIONLINT_VERSION = "v1.7.12"  # the one pin; the cache directory is named after it
VERSION_ARGS = ("-version",)
# ldflags: `go install module@version` would stamp the version from the module; a generated module's build must say it.
ACTIONLINT = gomodules.Pinned("github.com/rhysd/actionlint", ACTIONLINT_VERSION, "actionlint",
                              (gomodules.Binary("actionlint", "github.com/rhysd/actionlint/cmd/actionlint",
                                                VERSION_ARGS),),
                              ldflags=f"-X github.com/rhysd/actionlint.version={ACTIONLINT_VERSION}")
BUILD_TIMEOUT = 900
MISSING_HINT = "run `make lint-tools` (it builds it once with Go into the cache)"


class LintToolError(RuntimeError):
    pass


def _elsewhere() -> list[tuple[str, Path]]:
    """Where actionlint may be, before the cache."""
    found = [("$ACTIONLINT", Path(os.environ["ACTIONLINT"]))] if os.environ.get("ACTIONLINT") else []
    on_path = shutil.which("actionlint")
    return found + ([("PATH", Path(on_path))] if on_path else [])


def require_actionlint() -> Path:
    """The pinned actionlint, or LintToolError saying what was found and what to run."""
    candidates = [*_elsewhere(), ("cache", ACTIONLINT.root / "bin" / "actionlint")]
    for _, path in candidates:
        if gomodules.reports(path, ACTIONLINT_VERSION, VERSION_ARGS):
            return path
    seen = [f"{where} {path} reports {gomodules.reported_version(path, VERSION_ARGS) or 'nothing'}" if path.is_file()
            else f"{where} {path}: absent" for where, path in candidates]
    raise LintToolError(f"actionlint {ACTIONLINT_VERSION} not found ({'; '.join(seen)}); {MISSING_HINT}")


def ensure_actionlint(progress=log.info) -> Path:
    """Find the pinned actionlint, else build it once into the cache (under a file lock)."""
    return gomodules.find_or_build(ACTIONLINT, elsewhere=lambda name: [path for _, path in _elsewhere()],
                                   progress=progress, go_hint="or put actionlint on PATH or in $ACTIONLINT",
                                   timeout=BUILD_TIMEOUT, fail=LintToolError)["actionlint"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m e2e_harness.lint_tools",
                                     description=f"Find or build actionlint {ACTIONLINT_VERSION} for the "
                                                 "workflow self-tests.")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="lint-tools: %(message)s")
    try:
        print(f"actionlint {ACTIONLINT_VERSION}: {ensure_actionlint()}")
    except LintToolError as exc:
        print(f"lint-tools: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
