"""Component sources: what is decided before any git or Go command runs (the catalogue, the git mirror's
directory and files, the command line). tests/integration/test_components.py resolves real repositories."""

from __future__ import annotations

import pytest

from e2e_harness.components import COMPONENTS, Component, ComponentSourceError, SourceResolver, git_mirror_from, main
from e2e_harness.release import Pin

from .conftest import PROJECT_DIR


def component(url: str, module: str = "example.org/none") -> Component:
    return Component("demo", "SERVER_VERSION", url, module)


def resolver(tmp_path, **kw) -> SourceResolver:
    return SourceResolver(tmp_path / "build", progress=lambda m: None, **kw)


def test_catalogue_module_paths_differ_from_repository_names_where_upstream_does():
    by_name = {c.name: c for c in COMPONENTS}
    assert by_name["pgbr"].module_path == "github.com/riotkit-org/br-pg-simple-backup"
    assert by_name["backup-maker"].module_path == "github.com/riotkit-org/br-backup-maker"


# --- a git mirror directory ---------------------------------------------------------------------
MIRROR_URL = "https://127.0.0.1:9/org/demo-repo.git"  # never reachable: only the mirror can serve it


def test_missing_mirror_directory_is_refused_at_once(tmp_path):
    with pytest.raises(ComponentSourceError, match=f"git mirror directory {tmp_path / 'nowhere'} .*does not exist"):
        resolver(tmp_path, git_mirror=tmp_path / "nowhere")


def test_mirror_without_the_component_file_is_refused_before_any_clone(tmp_path):
    (tmp_path / "mirror").mkdir()
    chosen = resolver(tmp_path, git_mirror=tmp_path / "mirror")
    expected = f"git mirror {tmp_path / 'mirror'} has neither demo-repo.bundle nor a bare demo-repo.git"
    with pytest.raises(ComponentSourceError, match=expected):
        chosen.validate([component(MIRROR_URL)])
    with pytest.raises(ComponentSourceError, match=expected):
        chosen.resolve(component(MIRROR_URL), Pin("v1.0.0"))
    assert not [p for p in (tmp_path / "build").iterdir() if p.suffix != ".lock"], "nothing cloned"


def test_git_mirror_option_wins_over_the_environment_and_empty_means_none(tmp_path):
    env = {"E2E_GIT_MIRROR": str(tmp_path / "from-env")}
    assert git_mirror_from(str(tmp_path / "opt"), env) == tmp_path / "opt"
    assert git_mirror_from(None, env) == tmp_path / "from-env"
    assert git_mirror_from("", env) == tmp_path / "from-env"
    assert git_mirror_from(None, {"E2E_GIT_MIRROR": ""}) is None
    assert git_mirror_from(None, {}) is None


def test_cli_refuses_a_missing_mirror_before_resolving_anything(tmp_path, capsys):
    build = tmp_path / "build"
    status = main(["--release-env", str(PROJECT_DIR / "release.env"), "--build-dir", str(build),
                   "--git-mirror", str(tmp_path / "nowhere")])
    assert status == 2 and "git mirror directory" in capsys.readouterr().err
    assert not build.exists()
