"""Component sources against real git repositories made here, and the real Go module proxy."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading

import pytest

from e2e_harness.components import COMPONENTS, MARKER, ComponentSourceError, SourceResolver, main
from e2e_harness.release import Pin
from e2e_harness.waiting import Observation, poll_until

from tests.unit.test_components import MIRROR_URL, component, resolver

from .conftest import PROJECT_DIR, git

# A small module the Go module proxy serves, standing in for a component whose git host is down.
PROXY_MODULE, PROXY_VERSION = "github.com/google/uuid", "v1.6.0"
UNREACHABLE_GIT = "https://127.0.0.1:9/unreachable.git"  # port 9 (discard): connection refused


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
    assert not [p for p in (tmp_path / "build").iterdir() if p.suffix != ".lock"], "no partial clone left behind"


def test_symlinked_checkout_is_used_as_is(origin, tmp_path):
    origin.commit("module example.org/none\n", "go.mod")
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


def test_symlink_to_another_components_checkout_is_refused(origin, tmp_path):
    origin.commit("module example.org/something-else\n", "go.mod")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "demo").symlink_to(origin.path)
    with pytest.raises(ComponentSourceError, match="not a checkout of demo.*declares module example.org/something-else"
                                                   ".*expected example.org/none"):
        resolver(tmp_path).resolve(component(origin.url), Pin("v1.0.0"))


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


# --- a git mirror directory (bundles or bare repositories made here) ---------------------------
def bundle(origin, mirror_dir):
    """``git bundle create`` of every ref of ``origin``, as README tells users to make one."""
    mirror_dir.mkdir(exist_ok=True)
    target = mirror_dir / "demo-repo.bundle"
    target.unlink(missing_ok=True)
    git(origin.path, "bundle", "create", "--quiet", str(target), "--all")
    return target


@pytest.mark.parametrize("kind", ["bundle", "bare"])
@pytest.mark.parametrize("url", [MIRROR_URL, MIRROR_URL.removesuffix(".git")])
def test_mirror_serves_a_tag_pin_for_the_url_with_and_without_dot_git(origin, tmp_path, kind, url):
    first = origin.commit("one")
    origin.tag("v1.0.0")
    origin.commit("two")
    mirror = tmp_path / "mirror"
    if kind == "bundle":
        served = bundle(origin, mirror)
    else:
        served = mirror / "demo-repo.git"
        git(tmp_path, "clone", "--quiet", "--bare", str(origin.path), str(served))
    src = resolver(tmp_path, git_mirror=mirror).resolve(component(url), Pin("v1.0.0"))
    assert (src.origin, src.revision) == (f"mirror: {served}", first)
    assert f"-> mirror: {served} {first}" in src.describe()
    assert (src.path / "file.txt").read_text() == "one\n"
    assert git(src.path, "remote", "get-url", "origin") == url, "origin stays the upstream URL"
    assert "insteadof" not in git(src.path, "config", "--list").lower(), "never written to git config"


def test_pin_missing_from_the_mirror_names_component_pin_file_and_its_tags(origin, tmp_path):
    origin.commit("one")
    origin.tag("v1.0.0")
    origin.commit("two")
    origin.tag("v1.1.0")
    served = bundle(origin, tmp_path / "mirror")
    with pytest.raises(ComponentSourceError) as err:
        resolver(tmp_path, git_mirror=tmp_path / "mirror").resolve(component(MIRROR_URL), Pin("v9.9.9"))
    message = str(err.value)
    assert "demo" in message and "v9.9.9" in message and str(served) in message
    assert "tags: v1.0.0, v1.1.0" in message
    assert not [p for p in (tmp_path / "build").iterdir() if p.suffix != ".lock"], "no partial clone left behind"


def test_existing_clone_fetches_a_new_tag_through_the_mirror(origin, tmp_path):
    origin.commit("one")
    origin.tag("v1.0.0")
    mirror = tmp_path / "mirror"
    bundle(origin, mirror)
    resolver(tmp_path, git_mirror=mirror).resolve(component(MIRROR_URL), Pin("v1.0.0"))
    second = origin.commit("two")
    origin.tag("v1.1.0")
    served = bundle(origin, mirror)  # the mirror refreshed later
    src = resolver(tmp_path, git_mirror=mirror).resolve(component(MIRROR_URL), Pin("v1.1.0"))
    assert (src.origin, src.revision) == (f"mirror: {served}", second)
    assert "insteadof" not in git(src.path, "config", "--list").lower(), "never written to git config"


def test_existing_clone_pulls_a_branch_through_the_mirror_unless_skip_git_pull(origin, tmp_path):
    origin.commit("one")
    mirror = tmp_path / "mirror"
    bundle(origin, mirror)
    comp, pin = component(MIRROR_URL), Pin("branch:main")
    first = resolver(tmp_path, git_mirror=mirror).resolve(comp, pin).revision
    second = origin.commit("two")
    bundle(origin, mirror)
    assert resolver(tmp_path, git_mirror=mirror, skip_git_pull=True).resolve(comp, pin).revision == first
    assert resolver(tmp_path, git_mirror=mirror).resolve(comp, pin).revision == second


def test_cli_resolves_every_component_through_a_mirror_from_the_environment(origin, tmp_path, monkeypatch,
                                                                             capsys):
    """The catalogue's real URLs are rewritten to bundles named after their repositories."""
    from e2e_harness.components import repository_name

    commit = origin.commit("one")
    origin.tag("v1.0.0")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for comp in COMPONENTS:
        git(origin.path, "bundle", "create", "--quiet", str(mirror / f"{repository_name(comp.git_url)}.bundle"),
            "--all")
    release_env = tmp_path / "release.env"
    release_env.write_text("SERVER_VERSION=v1.0.0\nCONTROLLER_VERSION=v1.0.0\nBACKUP_MAKER_VERSION=v1.0.0\n"
                           "PGBR_VERSION=v1.0.0\nKUBERNETES_VERSION=v1.34.4\nETCD_VERSION=v3.6.4\nCOREDNS_VERSION=v1.12.1\nLOCAL_PATH_PROVISIONER_VERSION=v0.0.30\n"
                           "K3S_VERSION=v1.31.5-k3s1\nPOSTGRES_VERSION=15\n")
    for key in ("SERVER_VERSION", "CONTROLLER_VERSION", "BACKUP_MAKER_VERSION", "PGBR_VERSION",
                "SKIP_GIT_PULL", "COMPONENT_SOURCE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("E2E_GIT_MIRROR", str(mirror))
    assert main(["--release-env", str(release_env), "--build-dir", str(tmp_path / "build")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" -> ")[1] for line in lines] == [
        f"mirror: {mirror / repository_name(c.git_url)}.bundle {commit}" for c in COMPONENTS]


def test_pseudo_version_missing_from_the_mirror_falls_back_to_the_go_module_proxy(origin, goproxy, tmp_path):
    """The real case: backup-maker's pinned pseudo-version is not on its main branch, so no bundle holds it."""
    from e2e_harness.release import load_release

    pin = load_release(PROJECT_DIR / "release.env", environ={}).pin("BACKUP_MAKER_VERSION")
    assert pin.kind == "pseudo-version"
    origin.commit("one")
    bundle(origin, tmp_path / "mirror")
    said: list[str] = []
    comp = component(MIRROR_URL, "github.com/riotkit-org/br-backup-maker")
    src = SourceResolver(tmp_path / "build", progress=said.append,
                         git_mirror=tmp_path / "mirror").resolve(comp, pin)
    assert (src.origin, src.revision) == ("goproxy", f"github.com/riotkit-org/br-backup-maker@{pin}")
    assert any("not in the mirror" in line and "Go module proxy" in line for line in said), said
    with pytest.raises(ComponentSourceError, match="unknown revision .* in the git mirror .*COMPONENT_SOURCE=auto"):
        resolver(tmp_path / "git-only", mode="git", git_mirror=tmp_path / "mirror").resolve(comp, pin)


SHARED_MIRRORS = PROJECT_DIR.parent / "shared" / "mirrors"


@pytest.mark.skipif(not SHARED_MIRRORS.is_dir(), reason=f"needs the shared git mirrors at {SHARED_MIRRORS}")
def test_release_tag_pins_resolve_through_the_shared_mirrors(tmp_path):
    """The release's tag pins, from the bundles this machine and its CI use in place of GitHub."""
    from e2e_harness.release import load_release

    release = load_release(PROJECT_DIR / "release.env", environ={})
    chosen = [c for c in COMPONENTS if release.pin(c.pin_key).kind == "tag"]
    assert {c.name for c in chosen} >= {"backup-repository", "backup-maker-controller", "pgbr"}
    for src in resolver(tmp_path, git_mirror=SHARED_MIRRORS).resolve_release(release, chosen):
        served = SHARED_MIRRORS / f"{src.component.git_url.rsplit('/', 1)[1].removesuffix('.git')}.bundle"
        tag_commit = git(tmp_path, "ls-remote", str(served), f"refs/tags/{src.pin}^{{}}",
                         f"refs/tags/{src.pin}").splitlines()[0].split()[0]
        assert (src.origin, src.revision) == (f"mirror: {served}", tag_commit), src.describe()


def test_two_runs_resolving_one_component_at_once_both_get_the_pin(origin, tmp_path):
    """Two runs in one checkout: the second waits for the first instead of cloning into the same place."""

    first = origin.commit("one")
    origin.tag("v1.0.0")
    bundle(origin, tmp_path / "mirror")
    said: list[str] = []
    holder = resolver(tmp_path, git_mirror=tmp_path / "mirror")
    waiter = SourceResolver(tmp_path / "build", progress=said.append, git_mirror=tmp_path / "mirror")
    results = []
    lock_path = tmp_path / "build" / ".demo.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as held:  # the first run holds the component's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: results.append(
            waiter.resolve(component(MIRROR_URL), Pin("v1.0.0"))))
        thread.start()
        poll_until(lambda: Observation(bool(said), "not waiting yet"), what="the second run to wait",
                   timeout=30, interval=0.05)
        assert not results, "the second run resolved while the first held the component"
        results.append(holder._resolve_locked(component(MIRROR_URL), Pin("v1.0.0")))
    thread.join(timeout=60)
    assert [r.revision for r in results] == [first, first]
    assert "waiting for another run" in said[0]
