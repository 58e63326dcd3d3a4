"""kubectl-light-image on the local backend: its pins, its recipe's parts, and the find-or-build of its binaries,
with the Go build faked (the real builds and image: tests/e2e/test_template_matrix.py::test_backup_and_restore[kubectl];
the pinned definition's tag: tests/integration/test_template_matrix.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_harness.backends.local import kubectl_image
from e2e_harness.backends.local.image_recipes import unhostable_reason
from e2e_harness.backends.local.images import NoRecipe, Symlink, normalise
from e2e_harness.backends.local.kubectl_image import KUBECTL_LIGHT_IMAGES, TAG, Pin, pin, recipe, recipes


IMAGE = "ghcr.io/riotkit-org/kubectl-light-image:v1.26.1-r1"


def test_every_pinned_tag_names_the_kubectl_it_pins():
    assert "v1.26.1-r1" in KUBECTL_LIGHT_IMAGES
    for tag, pinned in KUBECTL_LIGHT_IMAGES.items():
        assert f"v{TAG.fullmatch(tag)['kubectl']}" == pinned.kubectl == pin(tag).kubectl, tag


def test_a_tag_without_a_pin_or_disagreeing_with_it_has_no_recipe(monkeypatch):
    with pytest.raises(NoRecipe, match="pins v1.26.1-r1 only"):
        pin("v1.28.2-r1")
    monkeypatch.setitem(KUBECTL_LIGHT_IMAGES, "v1.27.0-r1", Pin("v1.26.1", "v1.2.0", "v2.0.3", "3.11", "bookworm"))
    with pytest.raises(NoRecipe, match="pins kubectl v1.26.1, but the tag names v1.27.0"):
        pin("v1.27.0-r1")


def test_the_recipe_puts_kubectl_and_neat_where_upstream_has_them_on_a_bookworm_with_python(tmp_path):
    image = recipe("v1.26.1-r1", Path("/cache/kubectl"), Path("/cache/kubectl-neat"))
    assert [normalise(ref) for ref in image.refs] == [normalise(IMAGE)]
    assert image.rootfs.suite == "bookworm" and image.rootfs.variant == "minbase"
    assert {"bash", "python3", "tar", "gzip", "coreutils", "ca-certificates"} <= set(image.rootfs.packages)
    files = {e.path: e for layer in image.layers for e in layer.entries if not isinstance(e, Symlink)}
    assert files["usr/bin/kubectl"].content == Path("/cache/kubectl") and files["usr/bin/kubectl"].mode == 0o755
    neat = files["root/.krew/bin/kubectl-neat"]
    assert neat.content == Path("/cache/kubectl-neat") and neat.mode == 0o755
    path = next(e for e in image.config.env if e.startswith("PATH="))
    assert path.endswith(":/root/.krew/bin") and "/usr/bin" in path
    assert image.config.user == "" and image.config.cmd == ("python3",)   # root, as python:alpine
    # the honest difference from upstream, in what the report's platform table shows
    assert "kubectl-neat v1.2.0" in image.description and "v2.0.3" in image.description
    for name, data in (("a", b"kubectl"), ("b", b"neat"), ("c", b"another neat")):
        (tmp_path / name).write_bytes(data)
    assert recipe("v1.26.1-r1", tmp_path / "a", tmp_path / "b").key() != \
        recipe("v1.26.1-r1", tmp_path / "a", tmp_path / "c").key(), "a rebuilt binary is a new image"


def test_the_binaries_are_pinned_go_module_builds_cached_apart_from_the_nodes_kubernetes():
    kubectl = kubectl_image.kubectl_target("v1.26.1")
    assert kubectl.module == "k8s.io/kubernetes" and kubectl.binaries[0].package == "k8s.io/kubernetes/cmd/kubectl"
    assert "gitVersion=v1.26.1" in kubectl.ldflags and "gitMinor=26" in kubectl.ldflags
    assert kubectl.binaries[0].version_args == ("version", "--client")
    neat = kubectl_image.neat_target("v1.2.0")
    assert neat.module == "github.com/itaysk/kubectl-neat" and neat.binaries[0].version_args is None
    assert dict(neat.replaces) == {"vbom.ml/util": "github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc"}
    assert "vbom.ml/util" in neat.recipe, "a changed replace must rebuild"
    assert kubectl.root.parent.parent.name == neat.root.parent.parent.name == "kubectl-light-image"


def test_build_recipe_builds_each_binary_once_with_the_added_replace(fake_build):
    fake_build.prints = "v1.26.1"   # what the fake kubectl reports (kubectl-neat reports nothing)
    built = kubectl_image.build_recipe("v1.26.1-r1", progress=lambda line: None)
    assert [c["module"] for c in fake_build.calls] == ["k8s.io/kubernetes", "github.com/itaysk/kubectl-neat"]
    neat_call = fake_build.calls[1]
    assert neat_call["replaces"]["vbom.ml/util"].startswith("github.com/fvbommel/util ")
    assert neat_call["replaces"]["example.com/dep"].startswith("example.com/dep v0.9.0"), "the module's own kept"
    assert neat_call["outputs"] == {"github.com/itaysk/kubectl-neat": "kubectl-neat"}
    assert {e.content.name for e in built.layers[0].entries if hasattr(e, "content")} == {"kubectl", "kubectl-neat"}
    kubectl_image.build_recipe("v1.26.1-r1", progress=lambda line: None)
    assert len(fake_build.calls) == 2, "a second image build finds both binaries in the cache"


def test_recipes_builds_only_the_kubectl_light_image_tags_the_templates_name(monkeypatch):
    def build_recipe(tag, progress):
        if tag != "v1.26.1-r1":
            raise NoRecipe(f"no pin for {tag}")
        return recipe(tag, Path("/k"), Path("/n"))

    monkeypatch.setattr(kubectl_image, "build_recipe", build_recipe)
    said = []
    wanted = recipes([IMAGE, IMAGE, "ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15", "docker.io/mariadb:10.11",
                      "ghcr.io/riotkit-org/kubectl-light-image:v1.28.2-r1"], progress=said.append)
    assert [r.name for r in wanted.recipes] == ["kubectl-light-image-v1.26.1-r1"]
    assert wanted.unbuildable == {"riotkit-org/kubectl-light-image:v1.28.2-r1": "no pin for v1.28.2-r1"}
    assert said == ["image riotkit-org/kubectl-light-image:v1.28.2-r1 is not built: no pin for v1.28.2-r1"]


def test_an_unpublished_kubectl_light_image_says_why():
    assert "not published by this run" in unhostable_reason(IMAGE, {})
    assert "pins v1.26.1-r1 only" in unhostable_reason("ghcr.io/riotkit-org/kubectl-light-image:v1.28.2-r1", {})
    assert kubectl_image.unhostable("docker.io/mariadb:10.6") is None
