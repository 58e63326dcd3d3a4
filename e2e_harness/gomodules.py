"""Go binaries built from published Go modules at a pinned version, through a generated module.

A small module is generated in a temporary directory: it requires ``module@version``, copies
the replace directives that module's own go.mod carries (Go ignores a dependency's replaces, so
without them the build would pick other versions than the project's own release does), imports
the packages to build, and ``go mod tidy`` + ``go build`` produce the binaries. Go verifies
every module against the checksum database.

Used by the local backend's control plane (``backends/local/binaries.py``) and by the pinned
tools' fallback when their download hosts cannot be reached (``tools.py``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import progress
from .commands import CommandError, run

log = logging.getLogger("e2e_harness.gomodules")

KUBE_MODULE = "k8s.io/kubernetes"
BUILD_TIMEOUT = 3600   # per go command; a cold k8s.io/kubernetes build takes about 12 minutes on 2 cores
DOWNLOAD_TIMEOUT = 900
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GO111MODULE": "on"}
GO_MISSING = "the Go toolchain (`go` on PATH, see https://go.dev/dl/)"


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
          ldflags: str = "", tags: Iterable[str] = (), timeout: float = BUILD_TIMEOUT,
          go_missing_hint: str = "") -> None:
    """Build ``packages`` of ``module@version`` through a generated module into ``dest``.

    ``replaces`` maps a replaced module to its full target, ``"module version"``; ``outputs``
    names a package's binary (default: the package's last path element); ``tags`` are build
    tags. Each binary is built by :func:`go_build`. CGO_ENABLED=0. Every go command is bounded
    by ``timeout`` seconds."""
    if shutil.which("go") is None:
        raise GoModuleError(f"building {module}@{version} needs {GO_MISSING}; install it"
                            + (f", {go_missing_hint}" if go_missing_hint else ""))
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
