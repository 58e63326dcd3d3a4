"""actionlint for the workflow self-tests, at one pinned version, built once from its Go module.

Looked for, in order: ``$ACTIONLINT``, the cache outside the repository
(``$XDG_CACHE_HOME/e2e-harness/actionlint/<version>/bin``, default ``~/.cache``) and
PATH; a binary counts only when it reports :data:`ACTIONLINT_VERSION`. Otherwise
``python -m e2e_harness.lint_tools`` (``make lint-tools``) builds it with
``go install <module>@<version>`` into a temporary ``GOBIN`` and moves it into the
cache; Go verifies the module against the checksum database.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .backends.local.binaries import cache_root
from .commands import CommandError, run
from .locks import exclusive

log = logging.getLogger("e2e_harness.lint_tools")

ACTIONLINT_PACKAGE = "github.com/rhysd/actionlint/cmd/actionlint"
ACTIONLINT_VERSION = "v1.7.12"  # the one pin; the cache directory is named after it
BUILD_TIMEOUT = 900
LOCK_TIMEOUT = BUILD_TIMEOUT + 60  # another run's build: its go install, bounded, and a margin
MISSING_HINT = "run `make lint-tools` (it builds it once with Go into the cache)"


class LintToolError(RuntimeError):
    pass


def actionlint_cache_path(version: str = ACTIONLINT_VERSION) -> Path:
    return cache_root() / "actionlint" / version / "bin" / "actionlint"


def actionlint_version(binary: Path | str) -> str:
    """The version ``binary -version`` reports on its first line, or '' when it does not run."""
    try:
        out = run([binary, "-version"], timeout=30, check=False)
    except CommandError:
        return ""
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else ""


def _candidates() -> list[tuple[str, Path]]:
    found = []
    if os.environ.get("ACTIONLINT"):
        found.append(("$ACTIONLINT", Path(os.environ["ACTIONLINT"])))
    found.append(("cache", actionlint_cache_path()))
    on_path = shutil.which("actionlint")
    if on_path:
        found.append(("PATH", Path(on_path)))
    return found


def find_actionlint() -> Path | None:
    """The first actionlint that reports the pinned version, or None."""
    for _, path in _candidates():
        if path.is_file() and os.access(path, os.X_OK) and actionlint_version(path) == ACTIONLINT_VERSION:
            return path
    return None


def require_actionlint() -> Path:
    """The pinned actionlint, or LintToolError saying what was found and what to run."""
    found = find_actionlint()
    if found:
        return found
    seen = []
    for where, path in _candidates():
        if path.is_file():
            seen.append(f"{where} {path} reports {actionlint_version(path) or 'nothing'}")
        else:
            seen.append(f"{where} {path}: absent")
    raise LintToolError(f"actionlint {ACTIONLINT_VERSION} not found ({'; '.join(seen)}); {MISSING_HINT}")


def ensure_actionlint(progress=log.info) -> Path:
    """Find the pinned actionlint, else build it once into the cache (under a file lock)."""
    found = find_actionlint()
    if found:
        return found
    if shutil.which("go") is None:
        raise LintToolError(f"building actionlint {ACTIONLINT_VERSION} needs the Go toolchain (go on PATH); "
                            "install it, or put actionlint on PATH or in $ACTIONLINT")
    dest = actionlint_cache_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(dest.parent.parent / ".build.lock", what=f"actionlint {ACTIONLINT_VERSION}", timeout=LOCK_TIMEOUT,
                   say=progress, holder="another build of it", fail=LintToolError):
        if dest.is_file() and actionlint_version(dest) == ACTIONLINT_VERSION:
            return dest
        progress(f"building actionlint {ACTIONLINT_VERSION} from its Go module (once; cached in {dest.parent})")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="e2e-actionlint-") as gobin:
            target = f"{ACTIONLINT_PACKAGE}@{ACTIONLINT_VERSION}"
            try:
                # `go install pkg@version` ignores any go.mod around it; run it outside the repo anyway
                run(["go", "install", target], cwd=Path(gobin), timeout=BUILD_TIMEOUT,
                    env={"GOBIN": gobin, "CGO_ENABLED": "0", "GO111MODULE": "on"},
                    what=f"go install {target}")
            except CommandError as exc:
                raise LintToolError(str(exc)) from None
            partial = dest.parent / ".actionlint.partial"
            shutil.copy2(Path(gobin) / "actionlint", partial)
            partial.replace(dest)
        version = actionlint_version(dest)
        if version != ACTIONLINT_VERSION:
            raise LintToolError(f"built {dest}, but it reports {version or 'nothing'}, not {ACTIONLINT_VERSION}")
        progress(f"built actionlint {ACTIONLINT_VERSION} in {time.monotonic() - started:.0f}s")
    return dest


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
