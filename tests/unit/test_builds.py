"""Component builds: where the build cache lives, and a component without a build recipe (no go command
runs here; tests/integration/test_builds.py builds tiny Go modules for real)."""

from __future__ import annotations

import pytest

from e2e_harness.builds import BuildError, build, default_cache_dir
from e2e_harness.components import Component, ResolvedSource
from e2e_harness.release import Pin


class Lines(list):
    """Progress lines, collected."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def starting(self, prefix: str) -> list[str]:
        return [line for line in self if line.startswith(prefix)]


def test_default_cache_dir_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "e2e-harness" / "builds"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "e2e-harness" / "builds"


def test_a_component_without_a_recipe_is_refused(tmp_path):
    odd = ResolvedSource(Component("odd", "SERVER_VERSION", "", ""), Pin("v1.0.0"), tmp_path, "clone", "abc")
    with pytest.raises(BuildError, match="odd: no build recipe; known components: backup-repository"):
        build(odd, tmp_path / "cache", progress=Lines())
