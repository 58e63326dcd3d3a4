"""Component sources in ``.build/<component>``, at the pins of the release.

Order of preference (DESIGN.md, "Component sources"):
1. a symlink a developer placed there: used as is, never pulled, reset or cleaned;
2. an existing git clone: checked out at the pin (pulled only for branch pins,
   and not with ``SKIP_GIT_PULL=true``);
3. a fresh ``git clone``;
4. the Go module proxy (``go mod download -json module@version``, checksum-verified
   by the go command) when git hosting is unreachable or ``COMPONENT_SOURCE=goproxy``.

With a git mirror directory (``--git-mirror DIR`` or ``E2E_GIT_MIRROR``), every git
command that talks to a component's remote gets ``-c url.<mirror file>.insteadOf=<url>``,
so clones and fetches read ``DIR/<repository>.bundle`` (or a bare ``<repository>.git``)
through the same code path as the real hosting, and nothing is written to any git config.
A pseudo-version pin the mirror lacks falls back to the Go module proxy.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .commands import CommandError, run
from .knobs import SOURCE_MODES
from .locks import exclusive
from .release import COMPONENT_KEYS, Pin, Release

log = logging.getLogger("e2e_harness.components")

GIT_MIRROR_ENV = "E2E_GIT_MIRROR"
MARKER = ".e2e-harness-source.json"  # written into copies taken from the Go module proxy
GIT_TIMEOUT = 900
GO_TIMEOUT = 900
# Another run resolving the same component: its git fetch and merge, or clone and Go module download, each bounded.
LOCK_TIMEOUT = 2 * GIT_TIMEOUT + GO_TIMEOUT

# git's and go's words for "the host could not be reached" (as opposed to "no such revision").
UNREACHABLE = re.compile(
    r"Could not resolve host|Failed to connect|Connection refused|Connection timed out|"
    r"Network is unreachable|Temporary failure in name resolution|no such host|"
    r"dial tcp|i/o timeout|TLS handshake timeout|Could not read from remote repository",
    re.IGNORECASE)


class ComponentSourceError(RuntimeError):
    """A component's source could not be had at its pin."""


@dataclass(frozen=True)
class Component:
    """A component of the ecosystem and where its source lives."""

    name: str          # directory under .build/
    pin_key: str       # key in release.env
    git_url: str
    module_path: str   # Go module path (differs from the repository name for some)
    other_module_paths: tuple[str, ...] = ()  # earlier module paths of the same repository


COMPONENTS: tuple[Component, ...] = (
    Component("backup-repository", "SERVER_VERSION",
              "https://github.com/riotkit-org/backup-repository.git",
              "github.com/riotkit-org/backup-repository"),
    Component("backup-maker-controller", "CONTROLLER_VERSION",
              "https://github.com/riotkit-org/backup-maker-controller.git",
              "github.com/riotkit-org/backup-maker-controller"),
    Component("backup-maker", "BACKUP_MAKER_VERSION",
              "https://github.com/riotkit-org/br-backup-maker.git",
              "github.com/riotkit-org/br-backup-maker", ("github.com/riotkit-org/backup-maker",)),
    Component("pgbr", "PGBR_VERSION",
              "https://github.com/riotkit-org/br-pgbr.git",
              "github.com/riotkit-org/br-pg-simple-backup"),
)
assert tuple(c.pin_key for c in COMPONENTS) == COMPONENT_KEYS


@dataclass(frozen=True)
class ResolvedSource:
    """Where a component's source is, and exactly which revision it is."""

    component: Component
    pin: Pin
    path: Path
    origin: str     # symlink | clone | mirror: <file> | goproxy
    revision: str   # commit hash, or module@version
    detail: str = ""  # module checksum, "uncommitted changes", ...

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.component.name} {self.pin} -> {self.origin} {self.revision}{extra}"


class SourceResolver:
    """Brings each component's source into ``build_dir/<component>``."""

    def __init__(self, build_dir: Path, *, skip_git_pull: bool = False, mode: str = "auto",
                 progress: Callable[[str], None] = log.info, git_mirror: Path | None = None):
        if mode not in SOURCE_MODES:
            raise ComponentSourceError(f"COMPONENT_SOURCE={mode!r} is not one of {', '.join(SOURCE_MODES)}")
        self.build_dir = Path(build_dir)
        self.skip_git_pull = skip_git_pull
        self.mode = mode
        self.progress = progress
        self.git_mirror = _checked_mirror_dir(git_mirror) if git_mirror else None

    def validate(self, components: Iterable[Component] = COMPONENTS) -> None:
        """Fail before any clone when the git mirror lacks a component that git will fetch."""
        if self.git_mirror is None or self.mode == "goproxy":
            return
        for component in components:
            if not (self.build_dir / component.name).is_symlink():
                self.mirror_file(component)

    def mirror_file(self, component: Component) -> Path | None:
        """The bundle or bare repository that serves ``component``, or None without a mirror."""
        if self.git_mirror is None:
            return None
        repository = repository_name(component.git_url)
        bundle, bare = self.git_mirror / f"{repository}.bundle", self.git_mirror / f"{repository}.git"
        if bundle.is_file():
            return bundle
        if bare.is_dir():
            return bare
        raise ComponentSourceError(
            f"{component.name}: the git mirror {self.git_mirror} has neither {bundle.name} nor a bare "
            f"{bare.name} for {component.git_url}; add one (`git clone --mirror {component.git_url} x && "
            f"git -C x bundle create {bundle} --all`) or drop --git-mirror/{GIT_MIRROR_ENV}")

    def resolve_release(self, release: Release, components: Iterable[Component] = COMPONENTS) -> list[ResolvedSource]:
        components = tuple(components)
        self.validate(components)
        return [self.resolve(c, release.pin(c.pin_key)) for c in components]

    def resolve(self, component: Component, pin: Pin) -> ResolvedSource:
        """One run at a time per component directory: two runs in one checkout (two terminals, an
        editor's test runner) must not check out or clone into ``.build/<component>`` at once."""
        self.build_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(self.build_dir / f".{component.name}.lock", what=component.name, timeout=LOCK_TIMEOUT,
                       say=self.progress, holder=f"another run resolving {self.build_dir / component.name}",
                       fail=ComponentSourceError):
            return self._resolve_locked(component, pin)

    def _resolve_locked(self, component: Component, pin: Pin) -> ResolvedSource:
        path = self.build_dir / component.name
        if path.is_symlink():
            return self._use_symlink(component, pin, path)
        if self.mode == "goproxy":
            return self._from_goproxy(component, pin, path)
        if (path / ".git").exists():
            return self._update_clone(component, pin, path)
        if path.exists() and not (path / MARKER).exists():
            raise ComponentSourceError(
                f"{component.name}: {path} exists but is neither a symlink, a git clone nor a copy "
                "made by this harness; remove it, or replace it by a symlink to your checkout")
        try:
            return self._clone(component, pin, path)
        except _NotInMirror as exc:
            self.progress(f"{component.name}: {exc}; using the Go module proxy")
            return self._from_goproxy(component, pin, path)
        except _Unreachable as exc:
            if self.mode == "git":
                raise ComponentSourceError(
                    f"{component.name}: git hosting unreachable ({exc}); set COMPONENT_SOURCE=goproxy "
                    "to use the Go module proxy instead") from None
            self.progress(f"{component.name}: git hosting unreachable ({exc}); using the Go module proxy")
            return self._from_goproxy(component, pin, path)

    # --- 1. a developer's symlink -------------------------------------------------
    def _use_symlink(self, component: Component, pin: Pin, path: Path) -> ResolvedSource:
        target = path.resolve()
        if not target.is_dir():
            raise ComponentSourceError(f"{component.name}: symlink {path} points to {target}, "
                                       "which is not a directory")
        module = _go_module_path(target / "go.mod")
        if module not in (component.module_path, *component.other_module_paths):
            raise ComponentSourceError(
                f"{component.name}: symlink {path} points to {target}, which is not a checkout of "
                f"{component.name} (its go.mod declares module {module or 'nothing: no go.mod'}, expected "
                f"{component.module_path}); point the symlink at that component's source")
        revision, detail = "unknown", "not a git checkout"
        if (target / ".git").exists():
            revision = _git(target, "rev-parse", "HEAD").stdout.strip()
            dirty = _git(target, "status", "--porcelain").stdout.strip()
            detail = "uncommitted changes" if dirty else ""
        self.progress(f"{component.name}: using developer checkout {target} as is "
                      f"(pin {pin} not enforced)")
        return ResolvedSource(component, pin, path, "symlink", revision, detail)

    # --- 2. an existing clone ---------------------------------------------------
    def _update_clone(self, component: Component, pin: Pin, path: Path) -> ResolvedSource:
        mirror = self.mirror_file(component)
        ref = pin.git_ref
        if pin.is_branch:
            if not self.skip_git_pull:
                self._git_remote(component, pin, path, "fetch", "origin", ref)
            self._checkout(component, pin, path, ref)
            if not self.skip_git_pull:
                self._git_remote(component, pin, path, "merge", "--ff-only", f"origin/{ref}")
        else:
            if not _has_commit(path, ref):
                if self.skip_git_pull:
                    raise ComponentSourceError(
                        f"{component.name}: unknown revision {pin} in the clone {path} and "
                        "SKIP_GIT_PULL=true forbids fetching it (source tried: existing clone)")
                self._git_remote(component, pin, path, "fetch", "--tags", "origin")
            if mirror and not _has_commit(path, ref):
                hint = ""
                if pin.kind == "pseudo-version":
                    hint = (f"; the Go module proxy serves pseudo-versions: remove the clone {path} "
                            "to let the harness fall back to it, or set COMPONENT_SOURCE=goproxy")
                raise ComponentSourceError(_not_in_mirror(component, pin, mirror) + hint)
            self._checkout(component, pin, path, ref)
        return self._clone_result(component, pin, path, _origin(mirror))

    # --- 3. a fresh clone -------------------------------------------------------
    def _clone(self, component: Component, pin: Pin, path: Path) -> ResolvedSource:
        mirror = self.mirror_file(component)
        via = f" from the mirror {mirror}" if mirror else ""
        self.progress(f"{component.name}: cloning {component.git_url}{via} at {pin}")
        partial = Path(tempfile.mkdtemp(prefix=f".{component.name}.", dir=self.build_dir))
        try:
            try:
                run(["git", *self._url_rewrite(component), "clone", "--quiet", component.git_url, partial],
                    timeout=GIT_TIMEOUT, what=f"{component.name}: git clone", env=_GIT_ENV)
            except CommandError as exc:
                if UNREACHABLE.search(exc.output) and not mirror:
                    raise _Unreachable(_first_line(exc.output)) from None
                raise ComponentSourceError(f"{component.name}: git clone {component.git_url}{via} failed:\n"
                                           f"{exc.output.strip()}") from None
            if mirror and not _has_commit(partial, pin.git_ref):
                if pin.kind == "pseudo-version" and self.mode == "auto":
                    raise _NotInMirror(f"pseudo-version {pin} (commit {pin.git_ref}) is not in the mirror {mirror}")
                hint = ("; the Go module proxy serves pseudo-versions: set COMPONENT_SOURCE=auto"
                        if pin.kind == "pseudo-version" else "")
                raise ComponentSourceError(_not_in_mirror(component, pin, mirror) + hint)
            self._checkout(component, pin, partial, pin.git_ref, source=f"git clone of {component.git_url}{via}")
            if path.exists():  # an earlier copy from the Go module proxy
                _remove_tree(path)
            partial.rename(path)
        finally:
            if partial.exists():
                _remove_tree(partial)
        return self._clone_result(component, pin, path, _origin(mirror))

    def _checkout(self, component: Component, pin: Pin, path: Path, ref: str, *,
                  source: str = "existing clone") -> None:
        if not _has_commit(path, ref):
            raise ComponentSourceError(f"{component.name}: unknown revision {pin} "
                                       f"(git ref {ref!r}, source tried: {source} at {path})")
        try:
            _git(path, "-c", "advice.detachedHead=false", "checkout", "--quiet", ref)
        except CommandError as exc:
            raise ComponentSourceError(f"{component.name}: cannot check out {pin} in {path}: "
                                       f"{exc.output.strip()}") from None

    def _url_rewrite(self, component: Component) -> tuple[str, ...]:
        """``-c`` options that send the component's URL, with and without ``.git``, to its mirror."""
        mirror = self.mirror_file(component)
        if mirror is None:
            return ()
        base = component.git_url.removesuffix(".git")
        return ("-c", f"url.{mirror}.insteadOf={base}", "-c", f"url.{mirror}.insteadOf={base}.git")

    def _git_remote(self, component: Component, pin: Pin, path: Path, *args: str) -> None:
        rewrite = self._url_rewrite(component)
        try:
            _git(path, *args, timeout=GIT_TIMEOUT, config=rewrite)
        except CommandError as exc:
            mirror = self.mirror_file(component)
            if mirror:
                raise ComponentSourceError(
                    f"{component.name}: `git {' '.join(args)}` in {path} through the mirror {mirror} "
                    f"failed for pin {pin}; {_mirror_refs(mirror)}. Output:\n{exc.output.strip()}") from None
            reason = "git hosting unreachable" if UNREACHABLE.search(exc.output) else "failed"
            raise ComponentSourceError(
                f"{component.name}: `git {' '.join(args)}` in {path} {reason} for pin {pin}; "
                f"set SKIP_GIT_PULL=true to work offline. Output:\n{exc.output.strip()}") from None

    def _clone_result(self, component: Component, pin: Pin, path: Path, origin: str) -> ResolvedSource:
        revision = _git(path, "rev-parse", "HEAD").stdout.strip()
        self.progress(f"{component.name}: {pin} is commit {revision}")
        return ResolvedSource(component, pin, path, origin, revision)

    # --- 4. the Go module proxy ---------------------------------------------------
    def _from_goproxy(self, component: Component, pin: Pin, path: Path) -> ResolvedSource:
        query = pin.git_ref if pin.is_branch else pin.raw
        module = f"{component.module_path}@{query}"
        source = f"Go module proxy ({os.environ.get('GOPROXY') or 'go env default'}) as {module}"
        self.progress(f"{component.name}: downloading {module} from the Go module proxy")
        with tempfile.TemporaryDirectory(prefix="e2e-goproxy-") as scratch:
            try:
                result = run(["go", "mod", "download", "-json", module], cwd=Path(scratch),
                             env={"GO111MODULE": "on", "GOFLAGS": "-mod=mod"}, timeout=GO_TIMEOUT,
                             what=f"{component.name}: go mod download", check=False)
            except CommandError as exc:
                raise ComponentSourceError(f"{component.name}: {exc}") from None
        info = _parse_go_json(result.stdout)
        error = info.get("Error") or (result.stderr.strip() if result.returncode else "")
        if error:
            if UNREACHABLE.search(error):
                raise ComponentSourceError(f"{component.name}: the Go module proxy is unreachable "
                                           f"(source tried: {source}): {error}")
            raise ComponentSourceError(f"{component.name}: unknown revision {pin} "
                                       f"(source tried: {source}): {error}")
        version, checksum = info["Version"], info.get("Sum", "")
        commit = (info.get("Origin") or {}).get("Hash", "")
        marker = {"module": component.module_path, "version": version, "sum": checksum, "commit": commit}
        if not _same_copy(path, marker):
            self._copy_module(Path(info["Dir"]), path, marker)
        revision = f"{component.module_path}@{version}"
        detail = f"{checksum}" + (f", commit {commit}" if commit else "")
        self.progress(f"{component.name}: {pin} is {revision} ({detail})")
        return ResolvedSource(component, pin, path, "goproxy", revision, detail)

    def _copy_module(self, module_dir: Path, path: Path, marker: dict) -> None:
        if path.exists():
            if not (path / MARKER).exists():
                raise ComponentSourceError(f"{path} exists and was not made by this harness; remove it "
                                           "or replace it by a symlink to your checkout")
            _remove_tree(path)
        partial = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=self.build_dir))
        try:
            shutil.copytree(module_dir, partial, dirs_exist_ok=True)
            _make_writable(partial)  # the module cache is read-only; builds and cleanup need writes
            (partial / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            partial.rename(path)
        finally:
            if partial.exists():
                _remove_tree(partial)


class _Unreachable(Exception):
    pass


class _NotInMirror(Exception):
    """A pseudo-version the mirror lacks: the Go module proxy may still serve it."""


def git_mirror_from(option_value: str | os.PathLike | None, environ: Mapping[str, str]) -> Path | None:
    """The git mirror directory: the option if given and not empty, else ``E2E_GIT_MIRROR``, else None."""
    value = str(option_value or "").strip() or environ.get(GIT_MIRROR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def repository_name(git_url: str) -> str:
    """``https://github.com/org/br-pgbr.git`` -> ``br-pgbr``: the name of its file in a mirror."""
    return re.split(r"[/:]", git_url.rstrip("/"))[-1].removesuffix(".git")


def _checked_mirror_dir(git_mirror: Path) -> Path:
    mirror = Path(git_mirror).expanduser().absolute()  # absolute: git runs with -C <clone>
    if not mirror.is_dir():
        raise ComponentSourceError(
            f"git mirror directory {mirror} (--git-mirror or {GIT_MIRROR_ENV}) does not exist or is not a "
            "directory; create it with one <repository>.bundle or bare <repository>.git per component "
            "(see README, \"Component sources and local checkouts\"), or drop the option")
    if "=" in str(mirror):
        raise ComponentSourceError(f"git mirror directory {mirror}: its path must not contain '=' "
                                   "(it becomes a git -c key); move or symlink it elsewhere")
    return mirror


def _origin(mirror: Path | None) -> str:
    return f"mirror: {mirror}" if mirror else "clone"


def _not_in_mirror(component: Component, pin: Pin, mirror: Path) -> str:
    return (f"{component.name}: unknown revision {pin} (git ref {pin.git_ref!r}) in the git mirror {mirror}; "
            f"{_mirror_refs(mirror)}. Pin one of those, or refresh {mirror.name} from {component.git_url}")


def _mirror_refs(mirror: Path) -> str:
    """The tags and branches a mirror file holds, for error messages."""
    result = run(["git", "ls-remote", "--sort=v:refname", "--tags", "--heads", mirror],
                 check=False, env=_GIT_ENV, timeout=120)
    if result.returncode != 0:
        return f"its refs could not be listed: {_first_line(result.stderr)}"
    tags, branches = [], []
    for line in result.stdout.splitlines():
        ref = line.split("\t")[-1]
        if ref.startswith("refs/tags/") and not ref.endswith("^{}"):
            tags.append(ref.removeprefix("refs/tags/"))
        elif ref.startswith("refs/heads/"):
            branches.append(ref.removeprefix("refs/heads/"))
    return f"it has tags: {', '.join(tags) or '(none)'}; branches: {', '.join(branches) or '(none)'}"


# git must never prompt for credentials: a non-interactive failure is a clear error.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}


def _git(path: Path, *args: str, timeout: float = 120, config: tuple[str, ...] = ()):
    return run(["git", "-C", path, *config, *args], timeout=timeout, env=_GIT_ENV,
               what=f"git {args[0]} in {path}")


def _has_commit(path: Path, ref: str) -> bool:
    return run(["git", "-C", path, "rev-parse", "--quiet", "--verify", f"{ref}^{{commit}}"],
               check=False, env=_GIT_ENV).returncode == 0


def _go_module_path(go_mod: Path) -> str:
    try:
        match = re.search(r"^module\s+(\S+)", go_mod.read_text(errors="replace"), re.MULTILINE)
    except OSError:
        return ""
    return match.group(1).strip('"') if match else ""


def _parse_go_json(stdout: str) -> dict:
    try:
        return json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        return {"Error": f"unreadable output of go mod download: {stdout[:500]}"}


def _same_copy(path: Path, marker: dict) -> bool:
    try:
        return json.loads((path / MARKER).read_text()) == marker
    except (OSError, ValueError):
        return False


def _make_writable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
    root.chmod(root.stat().st_mode | stat.S_IWUSR)


def _remove_tree(path: Path) -> None:
    _make_writable(path)
    shutil.rmtree(path)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


def main(argv: list[str] | None = None) -> int:
    """``python -m e2e_harness.components``: resolve every pinned component, print the revisions."""
    import argparse
    import sys

    from .knobs import KnobError, Knobs
    from .release import ReleaseError, load_release

    parser = argparse.ArgumentParser(prog="python -m e2e_harness.components", description=main.__doc__)
    parser.add_argument("--release-env", type=Path, default=Path("release.env"))
    parser.add_argument("--build-dir", type=Path, default=Path(".build"))
    parser.add_argument("--git-mirror", metavar="DIR",
                        help=f"directory of <repository>.bundle or bare <repository>.git files to clone "
                             f"and fetch from instead of the git hosting (default: ${GIT_MIRROR_ENV})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="sources: %(message)s")
    try:
        knobs = Knobs.from_env()
        release = load_release(args.release_env)
        resolver = SourceResolver(args.build_dir, skip_git_pull=knobs.skip_git_pull, mode=knobs.component_source,
                                  git_mirror=git_mirror_from(args.git_mirror, os.environ))
        resolver.validate()
    except (ReleaseError, KnobError, ComponentSourceError) as exc:
        print(f"sources: error: {exc}", file=sys.stderr)
        return 2
    failures = 0
    for component in COMPONENTS:
        try:
            print(resolver.resolve(component, release.pin(component.pin_key)).describe())
        except ComponentSourceError as exc:
            failures += 1
            print(f"sources: error: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
