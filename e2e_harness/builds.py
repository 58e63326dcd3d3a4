"""Go binaries of the release's components, built from their resolved sources.

Each component is built inside its own source tree (``go build .``, ``main`` at the
module root) into a cache outside the repository, ``<cache>/<component>/<key>/<binary>``.
The key names exactly what went into the binary, so a second run builds nothing:
the resolved revision (commit, or module@version and checksum), the Go toolchain and
target, and the build recipe. A developer's symlinked checkout may have uncommitted
edits, so it is keyed by the content of its files instead of its commit.

Builds write to a temporary name and ``os.replace`` it (``gomodules.go_build``, which also
gives go a private ``GOTMPDIR``), under an exclusive ``flock`` per key: two runs building the
same revision at once build it once, and a binary in the cache is always complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .commands import CommandError, run, tail
from .components import ResolvedSource
from .gomodules import cache_root, go_build, go_build_command
from .locks import exclusive
from .progress import step

log = logging.getLogger("e2e_harness.builds")

BUILD_TIMEOUT = 1200  # 20 minutes: a cold build of the server with an empty module cache takes a few
LOCK_TIMEOUT = BUILD_TIMEOUT + 60  # another run's build of the same key: its go build, bounded, and a margin


class BuildError(RuntimeError):
    """A component's binary could not be built."""


@dataclass(frozen=True)
class Recipe:
    """How a component is built: its binary's name, forced environment and go build flags."""

    binary: str
    env: tuple[tuple[str, str], ...]
    flags: tuple[str, ...]

    def printable(self, output: Path) -> str:
        """The go build command as a shell line, environment included, for messages."""
        return " ".join([f"{k}={v}" for k, v in self.env] + [shlex.join(go_build_command(self.flags, output, "."))])


RECIPES: dict[str, Recipe] = {
    "backup-repository": Recipe("backup-repository", (("CGO_ENABLED", "0"),), ("-tags=nomsgpack", "-trimpath")),
    "backup-maker-controller": Recipe("backup-maker-controller", (), ()),
    "backup-maker": Recipe("backup-maker", (("CGO_ENABLED", "0"),), ()),
    "pgbr": Recipe("pgbr", (("CGO_ENABLED", "0"),), ()),
}

# What of the toolchain changes the binary: the version and target, plus ambient settings
# a recipe does not force (GOFLAGS, CGO_ENABLED for the controller).
GO_ENV_KEYS = ("GOVERSION", "GOOS", "GOARCH", "GOFLAGS", "CGO_ENABLED")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/e2e-harness/builds``, else ``~/.cache/e2e-harness/builds``."""
    return cache_root() / "builds"


def build(source: ResolvedSource, cache_dir: Path | None = None,
          progress: Callable[[str], None] = log.info) -> Path:
    """The path of ``source``'s binary in the cache, built first if the cache lacks it."""
    name = source.component.name
    recipe = RECIPES.get(name)
    if recipe is None:
        raise BuildError(f"{name}: no build recipe; known components: {', '.join(RECIPES)}")
    if shutil.which("go") is None:
        raise BuildError(f"{name}: building needs the Go toolchain (go on PATH)")
    workdir = Path(source.path)
    revision, key = _revision_and_key(source, recipe, workdir)
    component_dir = (cache_dir or default_cache_dir()) / name
    entry = component_dir / key
    binary = entry / recipe.binary
    entry.mkdir(parents=True, exist_ok=True)
    with exclusive(component_dir / f"{key}.lock", what=name, timeout=LOCK_TIMEOUT, say=progress,
                   holder=f"another build of {revision}", fail=BuildError):
        if binary.is_file():
            progress(f"{name}: cached {binary}")
            return binary
        progress(f"building {name} at {revision}")
        try:
            with step(f"go build {name}"):
                go_build(recipe.flags, ".", binary, cwd=workdir, env=dict(recipe.env), timeout=BUILD_TIMEOUT,
                         what=f"{name}: go build")
        except CommandError as exc:
            why = (f"exited with {exc.returncode}" if exc.returncode is not None
                   else f"did not finish within {BUILD_TIMEOUT}s")
            raise BuildError(f"{name} at {revision}: `{recipe.printable(binary)}` in {workdir} {why}; "
                             f"last lines of go's output:\n{tail(exc.output)}") from None
    log.info("%s: built %s", name, binary)
    return binary


def build_all(sources: Iterable[ResolvedSource], cache_dir: Path | None = None,
              progress: Callable[[str], None] = log.info) -> dict[str, Path]:
    """Every source's binary, by component name (one after the other: go parallelises inside)."""
    return {s.component.name: build(s, cache_dir, progress) for s in sources}


def _revision_and_key(source: ResolvedSource, recipe: Recipe, workdir: Path) -> tuple[str, str]:
    """The revision as people read it, and the cache key of everything that shapes the binary."""
    if source.origin == "symlink":
        digest = _tree_digest(workdir)
        revision = f"{source.revision} (working tree sha256:{digest[:12]})"
        identity = f"content sha256:{digest}"
    elif source.origin == "goproxy":
        revision = identity = f"{source.revision} {source.detail}".strip()  # detail starts with the sum
    else:
        revision = identity = source.revision
    go_env = _go_env(source, workdir)
    parts = [source.component.name, identity, go_env, repr(recipe)]
    return revision, hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _go_env(source: ResolvedSource, workdir: Path) -> str:
    """The toolchain that would build here (in the tree: a go.mod may select another toolchain)."""
    try:
        return run(["go", "env", *GO_ENV_KEYS], cwd=workdir, timeout=BUILD_TIMEOUT,
                   what=f"{source.component.name}: go env").stdout.strip()
    except CommandError as exc:
        raise BuildError(f"{source.component.name} at {source.revision}: cannot ask go about its "
                         f"toolchain: {exc}") from None


def _tree_digest(root: Path) -> str:
    """sha256 over the relative path and bytes of every file git lists (tracked and untracked,
    not ignored), or of every regular file outside .git when the tree is not a git checkout."""
    if (root / ".git").exists():
        listed = run(["git", "-C", root, "ls-files", "-co", "--exclude-standard", "-z"], timeout=300,
                     what=f"git ls-files in {root}").stdout
        names = sorted(set(n for n in listed.split("\0") if n))
    else:
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for f in filenames:
                path = Path(dirpath, f)
                if path.is_file() and not path.is_symlink():
                    names.append(str(path.relative_to(root)))
        names.sort()
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        if path.is_symlink():
            kind, data = b"link", os.readlink(path).encode()
        elif path.is_file():
            kind, data = b"file", path.read_bytes()
        else:  # deleted in the working tree but still in the index, or a submodule
            kind, data = b"other", b""
        digest.update(b"%s\0%s\0%d\0" % (name.encode(), kind, len(data)) + data)
    return digest.hexdigest()
