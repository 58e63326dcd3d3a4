"""Go binaries built from published Go modules at a pinned version, through a generated module.

A small module is generated in a temporary directory: it requires ``module@version``, copies
the replace directives that module's own go.mod carries (Go ignores a dependency's replaces, so
without them the build would pick other versions than the project's own release does), imports
the packages to build, and ``go mod tidy`` + ``go build`` produce the binaries. Go verifies
every module against the checksum database.

:func:`find_or_build` is the one find-or-build of a pinned binary: the caller's places first, else
the cache outside the repository (``<cache>/<dir>/<version>/bin``), built there once under a file
lock and checked to report the version. Its callers keep only their tables of what to build: the
local backend's Kubernetes (``backends/local/binaries.py``), the pinned tools' fallback when their
download hosts cannot be reached (``tools.py``) and actionlint (``lint_tools.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from . import progress
from .commands import CommandError, run
from .locks import exclusive

log = logging.getLogger("e2e_harness.gomodules")

KUBE_MODULE = "k8s.io/kubernetes"
BUILD_TIMEOUT = 3600   # per go command; a cold k8s.io/kubernetes build takes about 12 minutes on 2 cores
DOWNLOAD_TIMEOUT = 900
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}
GO_MISSING = "the Go toolchain (`go` on PATH, see https://go.dev/dl/)"
VERSION = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")
VERSION_TIMEOUT = 30


class GoModuleError(RuntimeError):
    """A module could not be downloaded or built."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/e2e-harness``, else ``~/.cache/e2e-harness``: built binaries, outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "e2e-harness"


def go_download(module_at_version: str) -> dict:
    """``go mod download -json module@version``: where its go.mod and source are (``GoMod``, ``Dir``)."""
    if shutil.which("go") is None:
        raise GoModuleError(f"downloading {module_at_version} needs {GO_MISSING}")
    with tempfile.TemporaryDirectory() as scratch:
        result = run(["go", "mod", "download", "-json", module_at_version], cwd=Path(scratch), env=GO_ENV,
                     timeout=DOWNLOAD_TIMEOUT, check=False, what=f"go mod download {module_at_version}")
    try:
        info = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if result.returncode or info.get("Error") or "GoMod" not in info:
        raise GoModuleError(f"cannot download {module_at_version} from the Go module proxy: "
                            f"{info.get('Error') or result.stderr.strip() or 'no go.mod reported'}")
    return info


def go_mod_replaces(go_mod: Path) -> list[dict]:
    """The replace directives of ``go_mod`` as ``go mod edit -json`` parses them:
    ``{"Old": {"Path", "Version"?}, "New": {"Path", "Version"?}}`` (no New version: a local path)."""
    try:
        result = run(["go", "mod", "edit", "-json", go_mod], cwd=go_mod.parent, env=GO_ENV, timeout=60,
                     what=f"go mod edit -json {go_mod}")
        return json.loads(result.stdout).get("Replace") or []
    except (CommandError, json.JSONDecodeError) as exc:
        raise GoModuleError(f"cannot read the replace directives of {go_mod}: {exc}") from None


def module_replaces(module: str, version: str) -> dict[str, str]:
    """The replace directives a generated module requiring ``module@version`` needs, ``{old: "new version"}``.

    Every directive of its go.mod whose target is a module at a version is copied as it is.
    Local-path targets point into the module's own tree and cannot be copied; k8s.io/kubernetes's
    ``./staging`` ones become the published modules of the same release (:func:`kubernetes_staging_replaces`),
    any other is skipped (and logged)."""
    go_mod = Path(go_download(f"{module}@{version}")["GoMod"])
    replaces: dict[str, str] = {}
    for directive in go_mod_replaces(go_mod):
        old, new = directive["Old"], directive["New"]
        left = f"{old['Path']} {old['Version']}" if old.get("Version") else old["Path"]
        if new.get("Version"):
            replaces[left] = f"{new['Path']} {new['Version']}"
        elif not (module == KUBE_MODULE and _is_staging(new["Path"])):
            log.info("%s@%s: skipping its replace %s => %s (a path inside its own tree)", module, version,
                     left, new["Path"])
    if module == KUBE_MODULE:
        replaces.update(kubernetes_staging_replaces(version, go_mod))
    return replaces


def _is_staging(path: str) -> bool:
    return path.startswith("./staging/")


def kubernetes_staging_replaces(version: str, go_mod: Path | None = None) -> dict[str, str]:
    """k8s.io/kubernetes's go.mod points its staging modules (k8s.io/api, ...) at ./staging:
    replace each with its published ``v0.Y.Z`` of the same release, ``{module: "module v0.Y.Z"}``."""
    go_mod = go_mod or Path(go_download(f"{KUBE_MODULE}@{version}")["GoMod"])
    staging = [d["Old"]["Path"] for d in go_mod_replaces(go_mod)
               if not d["New"].get("Version") and _is_staging(d["New"]["Path"])]
    if not staging:
        raise GoModuleError(f"{KUBE_MODULE}@{version}: no staging replace directives found in its go.mod")
    published = "v0" + version[version.index("."):]
    return {m: f"{m} {published}" for m in staging}


def generated_go_mod(module: str, version: str, replaces: dict[str, str] | None = None) -> str:
    """The go.mod of the generated module: requires ``module@version``, with ``replaces`` ({old: "new version"})."""
    lines = ["module example.local/e2e-harness-binaries", "", "go 1.24", "", f"require {module} {version}"]
    if replaces:
        lines += ["", "replace ("] + [f"\t{old} => {new}" for old, new in sorted(replaces.items())] + [")"]
    return "\n".join(lines) + "\n"


def go_build(flags: Sequence[str], package: str, output: Path, *, cwd: Path, env: Mapping[str, str],
             timeout: float, what: str) -> None:
    """``go build <flags> -o <output> <package>`` in ``cwd``, written under a temporary name and renamed:
    ``output`` is never half a binary. Go's work directory is a private ``GOTMPDIR``, removed however the
    build ends (an interrupted go build, killed with its process group by ``commands.run``, cannot)."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        with tempfile.TemporaryDirectory(prefix="e2e-go-build-") as gotmp:
            run(go_build_command(flags, partial, package), cwd=cwd, env={**env, "GOTMPDIR": gotmp},
                timeout=timeout, what=what)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def go_build_command(flags: Sequence[str], output: Path, package: str) -> list[str]:
    return ["go", "build", *flags, "-o", str(output), package]


def build(module: str, version: str, packages: list[str], dest: Path, *,
          replaces: dict[str, str] | None = None, outputs: dict[str, str] | None = None,
          ldflags: str = "", tags: Iterable[str] = (), timeout: float = BUILD_TIMEOUT) -> None:
    """Build ``packages`` of ``module@version`` through a generated module into ``dest``.

    ``replaces`` maps a replaced module to its full target, ``"module version"``; ``outputs``
    names a package's binary (default: the package's last path element); ``tags`` are build
    tags. Each binary is built by :func:`go_build`. CGO_ENABLED=0. Every go command is bounded
    by ``timeout`` seconds."""
    dest.mkdir(parents=True, exist_ok=True)
    tags = [t for t in tags if t]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="e2e-build-") as workdir:
        work = Path(workdir)
        (work / "go.mod").write_text(generated_go_mod(module, version, replaces))
        imports = "\n".join(f'\t_ "{p}"' for p in packages)
        (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
        what = f"building {module}@{version}"
        flags = [f"-ldflags={ldflags}"] + ([f"-tags={','.join(tags)}"] if tags else [])
        try:
            with progress.step(what):  # minutes cold: the heartbeat shows it is alive
                run(["go", "mod", "tidy"], cwd=work, env=GO_ENV, timeout=timeout, what=f"{what}: go mod tidy")
                for package in packages:
                    name = (outputs or {}).get(package, package.rsplit("/", 1)[-1])
                    go_build(flags, package, dest / name, cwd=work, env=GO_ENV, timeout=timeout,
                             what=f"{what}: go build {package}")
        except CommandError as exc:
            raise GoModuleError(str(exc)) from None
    log.info("built %s@%s in %.0fs", module, version, time.monotonic() - started)


@dataclass(frozen=True)
class Binary:
    """A binary of a pinned module: its file name, its package, and how it tells its version."""

    name: str
    package: str
    version_args: tuple[str, ...] | None = ("--version",)   # None: it tells none, its cache directory names it


@dataclass(frozen=True)
class Pinned:
    """``binaries`` of Go module ``module`` at ``version``, built into ``<cache>/<cache_dir>/<version>/bin``."""

    module: str
    version: str
    cache_dir: str
    binaries: tuple[Binary, ...]
    ldflags: str = ""
    tags: tuple[str, ...] = ()
    recipe: str = ""   # when set: recorded beside the build, which counts only for the same recipe
    # replace directives added to the module's own, (old module, "new module version"): for a dependency
    # whose import path the Go module proxy no longer serves (a dead vanity host); put them in ``recipe`` too
    replaces: tuple[tuple[str, str], ...] = ()

    @property
    def root(self) -> Path:
        return cache_root() / self.cache_dir / self.version

    @property
    def label(self) -> str:
        return f"{', '.join(b.name for b in self.binaries)} {self.version}"


def reported_version(binary: Path, args: Sequence[str]) -> str:
    """The first version ``binary args`` prints (vX.Y.Z[-pre], the ``v`` added), or ''."""
    try:
        out = run([binary, *args], timeout=VERSION_TIMEOUT, check=False, what=f"{binary.name} {' '.join(args)}")
    except CommandError:
        return ""
    found = VERSION.search(out.stdout + "\n" + out.stderr)
    return f"v{found.group(1)}" if found else ""


def reports(binary: Path, version: str, args: Sequence[str] | None) -> bool:
    """Whether ``binary`` is an executable file printing ``version`` when run with ``args`` (None: it cannot)."""
    return bool(args) and binary.is_file() and os.access(binary, os.X_OK) and reported_version(binary, args) == version


def find_or_build(target: Pinned, *, elsewhere: Callable[[str], Iterable[Path]] = lambda name: (),
                  progress: Callable[[str], None] = log.info, why: str = "not found", go_hint: str = "",
                  how_long: str = "", timeout: float = BUILD_TIMEOUT,
                  fail: Callable[[str], Exception] = GoModuleError) -> dict[str, Path]:
    """Each binary of ``target`` by name: from ``elsewhere(name)`` when every one is there at the version,
    else from the cache, built there first when missing. Built once for all, under a lock that another
    build waits at (bounded), and checked to report the version; ``fail`` of whatever went wrong."""
    found = {b.name: next((p for p in elsewhere(b.name) if reports(p, target.version, b.version_args)), None)
             for b in target.binaries}
    if all(found.values()):
        return found
    bin_dir, recipe_file = target.root / "bin", target.root / "recipe.json"
    built = {b.name: bin_dir / b.name for b in target.binaries}

    def cached() -> bool:
        return ((not target.recipe or recipe_file.is_file() and recipe_file.read_text() == target.recipe)
                and all(reports(path, target.version, b.version_args) if b.version_args else path.is_file()
                        for b, path in zip(target.binaries, built.values())))

    if cached():
        return built
    # another build's go commands: its download, tidy and first build (later builds reuse go's cache)
    with exclusive(target.root / ".lock", what=target.label, timeout=DOWNLOAD_TIMEOUT + 2 * timeout, say=progress,
                   holder="another build of it", fail=fail):
        if cached():
            return built
        recipe_file.unlink(missing_ok=True)
        failed = f"{target.label}: {why}, and building it from its Go module {target.module}"
        if shutil.which("go") is None:
            raise fail(f"{failed} needs {GO_MISSING}: install Go" + (f", {go_hint}" if go_hint else ""))
        progress(f"building {target.label} from Go module {target.module}: {why} "
                 f"(once; cached in {bin_dir}{how_long})")
        try:
            build(target.module, target.version, [b.package for b in target.binaries], bin_dir,
                  replaces={**module_replaces(target.module, target.version), **dict(target.replaces)},
                  ldflags=target.ldflags,
                  outputs={b.package: b.name for b in target.binaries}, tags=target.tags, timeout=timeout)
        except GoModuleError as exc:
            raise fail(f"{failed} failed: {exc}") from None
        for b in target.binaries:
            if b.version_args and (reported := reported_version(built[b.name], b.version_args)) != target.version:
                built[b.name].unlink(missing_ok=True)
                raise fail(f"{target.label}: built it from Go module {target.module}, but `{b.name} "
                           f"{' '.join(b.version_args)}` reports {reported or 'no version'}, not {target.version}; "
                           "it is not kept (check the ldflags that stamp its version)")
        if target.recipe:
            recipe_file.write_text(target.recipe)
    return built
