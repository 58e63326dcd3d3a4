"""Component sources against real git repositories made here, and the real Go module proxy."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from e2e_harness.components import COMPONENTS, MARKER, Component, ComponentSourceError, SourceResolver
from e2e_harness.release import Pin

from .conftest import git

# A small module the Go module proxy serves, standing in for a component whose git host is down.
PROXY_MODULE, PROXY_VERSION = "github.com/google/uuid", "v1.6.0"
UNREACHABLE_GIT = "https://127.0.0.1:9/unreachable.git"  # port 9 (discard): connection refused


def component(url: str, module: str = "example.org/none") -> Component:
    return Component("demo", "SERVER_VERSION", url, module)


def resolver(tmp_path, **kw) -> SourceResolver:
    return SourceResolver(tmp_path / "build", progress=lambda m: None, **kw)


def head(path) -> str:
    return git(path, "rev-parse", "HEAD")


def test_tag_pin_clones_and_checks_out_the_tag(origin, tmp_path):
    first = origin.commit("one")
    origin.tag("v1.0.0")
    origin.commit("two")
    src = resolver(tmp_path).resolve(component(origin.url), Pin("v1.0.0"))
    assert (src.origin, src.revision) == ("clone", first)
    assert head(src.path) == first
    assert (src.path / "file.txt").read_text() == "one\n"


def test_pseudo_version_and_commit_pins_check_out_that_commit(origin, tmp_path):
    first = origin.commit("one")
    origin.commit("two")
    pseudo = f"v0.0.0-20230101000000-{first[:12]}"
    assert resolver(tmp_path).resolve(component(origin.url), Pin(pseudo)).revision == first
    assert resolver(tmp_path).resolve(component(origin.url), Pin(first[:9])).revision == first


def test_existing_clone_fetches_a_new_tag(origin, tmp_path):
    origin.commit("one")
    origin.tag("v1.0.0")
    resolver(tmp_path).resolve(component(origin.url), Pin("v1.0.0"))
    second = origin.commit("two")
    origin.tag("v1.1.0")
    src = resolver(tmp_path).resolve(component(origin.url), Pin("v1.1.0"))
    assert (src.origin, src.revision) == ("clone", second)


def test_branch_pin_pulls_unless_skip_git_pull(origin, tmp_path):
    origin.commit("one")
    comp, pin = component(origin.url), Pin("branch:main")
    first = resolver(tmp_path).resolve(comp, pin).revision
    second = origin.commit("two")
    assert resolver(tmp_path, skip_git_pull=True).resolve(comp, pin).revision == first
    assert resolver(tmp_path).resolve(comp, pin).revision == second


def test_skip_git_pull_refuses_to_fetch_a_missing_tag(origin, tmp_path):
    origin.commit("one")
    origin.tag("v1.0.0")
    resolver(tmp_path).resolve(component(origin.url), Pin("v1.0.0"))
    origin.commit("two")
    origin.tag("v2.0.0")
    with pytest.raises(ComponentSourceError, match="unknown revision v2.0.0.*SKIP_GIT_PULL=true"):
        resolver(tmp_path, skip_git_pull=True).resolve(component(origin.url), Pin("v2.0.0"))


def test_unknown_revision_names_component_pin_and_source(origin, tmp_path):
    origin.commit("one")
    with pytest.raises(ComponentSourceError) as err:
        resolver(tmp_path).resolve(component(origin.url), Pin("v9.9.9"))
    message = str(err.value)
    assert "demo" in message and "unknown revision v9.9.9" in message and origin.url in message
    assert not (tmp_path / "build" / "demo").exists(), "a failed clone leaves nothing behind"
    assert not [p for p in (tmp_path / "build").iterdir()], "no partial clone left behind"


def test_symlinked_checkout_is_used_as_is(origin, tmp_path):
    origin.commit("one")
    origin.tag("v1.0.0")
    work = origin.commit("work in progress")
    (origin.path / "file.txt").write_text("uncommitted\n")
    build = tmp_path / "build"
    build.mkdir()
    (build / "demo").symlink_to(origin.path)
    src = resolver(tmp_path).resolve(component(origin.url), Pin("v1.0.0"))
    assert (src.origin, src.revision, src.detail) == ("symlink", work, "uncommitted changes")
    assert head(origin.path) == work, "never checked out"
    assert (origin.path / "file.txt").read_text() == "uncommitted\n", "never reset or cleaned"


def test_foreign_directory_is_not_overwritten(origin, tmp_path):
    origin.commit("one")
    (tmp_path / "build" / "demo").mkdir(parents=True)
    (tmp_path / "build" / "demo" / "precious.txt").write_text("x")
    with pytest.raises(ComponentSourceError, match="neither a symlink, a git clone"):
        resolver(tmp_path).resolve(component(origin.url), Pin("v1.0.0"))
    assert (tmp_path / "build" / "demo" / "precious.txt").exists()


def test_git_mode_reports_unreachable_host(tmp_path):
    with pytest.raises(ComponentSourceError, match="git hosting unreachable.*COMPONENT_SOURCE=goproxy"):
        resolver(tmp_path, mode="git").resolve(component(UNREACHABLE_GIT), Pin("v1.0.0"))


def test_catalogue_module_paths_differ_from_repository_names_where_upstream_does():
    by_name = {c.name: c for c in COMPONENTS}
    assert by_name["pgbr"].module_path == "github.com/riotkit-org/br-pg-simple-backup"
    assert by_name["backup-maker"].module_path == "github.com/riotkit-org/br-backup-maker"


# --- the Go module proxy (real) ----------------------------------------------------------------
def _proxy_available() -> str | None:
    if shutil.which("go") is None:
        return "needs the Go toolchain (capability: go on PATH)"
    probe = subprocess.run(["go", "mod", "download", "-json", f"{PROXY_MODULE}@{PROXY_VERSION}"],
                           capture_output=True, text=True, cwd="/", timeout=120,
                           env={**os.environ, "GO111MODULE": "on", "GOFLAGS": "-mod=mod"})
    if probe.returncode != 0:
        return f"needs the Go module proxy (capability: go mod download answered: {probe.stdout[-300:]})"
    return None


@pytest.fixture(scope="module")
def goproxy():
    reason = _proxy_available()
    if reason:
        pytest.skip(reason)


def test_unreachable_git_falls_back_to_the_go_module_proxy(goproxy, tmp_path):
    comp = component(UNREACHABLE_GIT, PROXY_MODULE)
    src = resolver(tmp_path).resolve(comp, Pin(PROXY_VERSION))
    assert src.origin == "goproxy"
    assert src.revision == f"{PROXY_MODULE}@{PROXY_VERSION}"
    assert src.detail.startswith("h1:")
    assert (src.path / "go.mod").read_text().startswith(f"module {PROXY_MODULE}")
    assert (src.path / MARKER).exists()
    # A second resolution reuses the copy, which must be writable for builds and cleanup.
    (src.path / "scratch").write_text("written by a build")
    again = resolver(tmp_path).resolve(comp, Pin(PROXY_VERSION))
    assert again.revision == src.revision and (again.path / "scratch").exists()


def test_goproxy_unknown_version_names_component_pin_and_source(goproxy, tmp_path):
    comp = component(UNREACHABLE_GIT, PROXY_MODULE)
    with pytest.raises(ComponentSourceError) as err:
        resolver(tmp_path, mode="goproxy").resolve(comp, Pin("v9.9.9"))
    message = str(err.value)
    assert "demo" in message and "v9.9.9" in message and "Go module proxy" in message


def test_pinned_backup_maker_resolves_through_the_go_module_proxy(goproxy, tmp_path):
    """The real component at the release's pin, as CI here gets it."""
    from e2e_harness.release import load_release
    from .conftest import PROJECT_DIR

    release = load_release(PROJECT_DIR / "release.env", environ={})
    comp = next(c for c in COMPONENTS if c.name == "backup-maker")
    src = resolver(tmp_path, mode="goproxy").resolve(comp, release.pin(comp.pin_key))
    assert src.revision == f"{comp.module_path}@{release['BACKUP_MAKER_VERSION']}"
    assert "commit 8c7f6c4ad5e8" in src.detail
    assert (src.path / "main.go").exists()
