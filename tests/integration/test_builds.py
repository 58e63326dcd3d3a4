"""Component builds with the real go command, from tiny Go modules made here."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from e2e_harness.builds import BuildError, build, build_all
from e2e_harness.components import COMPONENTS, ResolvedSource
from e2e_harness.release import Pin

from tests.unit.test_builds import Lines

from .conftest import git

PGBR = next(c for c in COMPONENTS if c.name == "pgbr")


def requires_go(test):
    """The needs_go marker, and a skip naming the missing capability."""
    test = pytest.mark.needs_go(test)
    test = pytest.mark.skipif(shutil.which("git") is None, reason="needs git (capability: git on PATH)")(test)
    return pytest.mark.skipif(shutil.which("go") is None,
                              reason="needs the Go toolchain to build (capability: go on PATH)")(test)


def main_go(text: str) -> str:
    return f'package main\n\nimport "fmt"\n\nfunc main() {{\n\tfmt.Println("{text}")\n}}\n'


def write_module(path: Path, text: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "go.mod").write_text("module example.org/demo\n\ngo 1.21\n")
    (path / "main.go").write_text(main_go(text))


def commit_all(path: Path, message: str) -> str:
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", message)
    return git(path, "rev-parse", "HEAD")


def repo(tmp_path: Path, text: str = "one") -> tuple[Path, str]:
    path = tmp_path / "src"
    write_module(path, text)
    (path / ".gitignore").write_text("*.log\n")
    git(path, "init", "--quiet", "--initial-branch=main")
    return path, commit_all(path, "first")


def cloned(tmp_path: Path) -> ResolvedSource:
    """pgbr's source: a clone at the commit ``repo`` made."""
    path, commit = repo(tmp_path)
    return ResolvedSource(PGBR, Pin(commit), path, "clone", commit)


def output_of(binary: Path) -> str:
    return subprocess.run([binary], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


@requires_go
def test_second_build_of_a_commit_reuses_the_cached_binary(tmp_path):
    source = cloned(tmp_path)
    cache = tmp_path / "cache"
    lines = Lines()

    first = build(source, cache, progress=lines)
    assert lines.starting("building pgbr at ") == [f"building pgbr at {source.revision}"]
    assert first.name == "pgbr" and first.parent.parent == cache / "pgbr"
    assert output_of(first) == "one"
    assert not list(first.parent.glob(".*partial"))  # the temporary name is gone
    built_at = first.stat().st_mtime_ns

    lines.clear()
    second = build(source, cache, progress=lines)
    assert second == first
    assert lines == [f"pgbr: cached {first}"]
    assert second.stat().st_mtime_ns == built_at


@requires_go
def test_symlinked_checkout_is_keyed_by_content(tmp_path):
    path, commit = repo(tmp_path)
    link = tmp_path / "build" / "pgbr"
    link.parent.mkdir()
    link.symlink_to(path)
    source = ResolvedSource(PGBR, Pin(commit), link, "symlink", commit)
    cache = tmp_path / "cache"
    lines = Lines()

    clean = build(source, cache, progress=lines)
    assert output_of(clean) == "one"

    (path / "main.go").write_text(main_go("two"))  # an uncommitted edit
    edited = build(source, cache, progress=lines)
    assert edited != clean
    assert output_of(edited) == "two"
    assert len(lines.starting("building pgbr at ")) == 2
    assert lines[-1].startswith(f"building pgbr at {commit} (working tree sha256:")

    (path / "main.go").write_text(main_go("one"))  # reverted
    (path / "debug.log").write_text("ignored by git, so no rebuild\n")
    lines.clear()
    assert build(source, cache, progress=lines) == clean
    assert lines == [f"pgbr: cached {clean}"]

    (path / "extra.go").write_text("package main\n\nvar unused = 1\n")  # untracked, not ignored
    lines.clear()
    assert build(source, cache, progress=lines) not in (clean, edited)
    assert len(lines.starting("building pgbr at ")) == 1


@requires_go
def test_symlinked_tree_without_git_is_keyed_by_its_files(tmp_path):
    path = tmp_path / "plain"
    write_module(path, "one")
    link = tmp_path / "pgbr"
    link.symlink_to(path)
    source = ResolvedSource(PGBR, Pin("v1.0.0"), link, "symlink", "unknown", "not a git checkout")
    cache = tmp_path / "cache"

    first = build(source, cache, progress=Lines())
    (path / "main.go").write_text(main_go("two"))
    second = build(source, cache, progress=Lines())
    assert output_of(second) == "two" and second != first
    (path / "main.go").write_text(main_go("one"))
    assert build(source, cache, progress=Lines()) == first


@requires_go
def test_compiler_error_names_component_revision_and_go_output(tmp_path):
    path, _ = repo(tmp_path)
    (path / "main.go").write_text('package main\n\nfunc main() {\n\tnotDeclared()\n}\n')
    commit = commit_all(path, "broken")
    source = ResolvedSource(PGBR, Pin(commit), path, "clone", commit)
    cache = tmp_path / "cache"

    with pytest.raises(BuildError) as failure:
        build(source, cache, progress=Lines())
    message = str(failure.value)
    assert message.startswith(f"pgbr at {commit}: `CGO_ENABLED=0 go build -o ")
    assert "undefined: notDeclared" in message
    assert not [p for p in (cache / "pgbr").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


@requires_go
def test_concurrent_builds_of_one_revision_build_once(tmp_path):
    source = cloned(tmp_path)
    cache = tmp_path / "cache"
    lines = Lines()
    other_waits = threading.Event()

    def progress(line: str) -> None:
        lines(line)
        if "waiting for another build" in line:
            other_waits.set()
        if line.startswith("building "):
            # Hold the lock until the other build is seen waiting on it: the overlap is certain.
            assert other_waits.wait(120), "the second build never waited for the first"

    results: list[Path] = []
    errors: list[BaseException] = []

    def one_build() -> None:
        try:
            results.append(build(source, cache, progress=progress))
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one_build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]
    assert len(results) == 2 and results[0] == results[1]
    assert len(lines.starting("building pgbr at ")) == 1
    assert len(lines.starting("pgbr: cached ")) == 1
    assert output_of(results[0]) == "one"


@requires_go
def test_build_all_maps_component_names_to_binaries(tmp_path):
    source = cloned(tmp_path)
    binaries = build_all([source], tmp_path / "cache", progress=Lines())
    assert list(binaries) == ["pgbr"] and output_of(binaries["pgbr"]) == "one"
