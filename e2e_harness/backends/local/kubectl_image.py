"""``ghcr.io/riotkit-org/kubectl-light-image:<tag>``, the image of the release's ``kubectl`` template, built here.

Upstream (github.com/riotkit-org/kubectl-light-image; v1.26.1-r1 is what the pinned backup-maker's
generate/templates/definition/kubectl.json names): ``FROM python:3.11-alpine3.17``, ``apk add git curl bash``,
kubectl copied from ``bitnami/kubectl:1.26.1`` to /usr/bin/kubectl, krew, and ``kubectl krew install neat``
(kubectl-neat v2.0.3 at the time) in /root/.krew/bin, which its PATH names.

Here: a Debian bookworm minbase root filesystem with bash, python3 (3.11, as upstream), tar, gzip,
coreutils and ca-certificates; kubectl built from ``k8s.io/kubernetes`` at the version the tag names, and
kubectl-neat built from ``github.com/itaysk/kubectl-neat`` v1.2.0, both pinned Go-module binaries
(``gomodules.find_or_build``, cached under ``~/.cache/e2e-harness/kubectl-light-image/``). The Go module
proxy serves kubectl-neat up to v1.2.0 only (v2.x is refused), so the restore's ``kubectl neat`` is
v1.2.0, not upstream's v2.0.3: the recipe's description (the report's platform table) says so. git and
curl are left out: the template's scripts run neither.

What the template runs in it (generate/chart/_helpers.tpl, generate/templates/{backup,restore}/kubectl.tmpl):
``/bin/bash -c`` with cp and chmod, the scripts through ``/usr/bin/env python3``, kubectl, ``tar -zcvf`` for
backup-maker's ``-c`` (backup-maker itself comes from the chart's injector container), and ``kubectl neat``.

``recipes`` gives the recipe of each kubectl-light-image tag the pinned templates name, or why it cannot be
built here; ``unhostable`` the reason for one that was not built.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ... import gomodules, progress as progress_lines
from ...gomodules import KUBE_MODULE, Binary, GoModuleError, Pinned
from .images import Dir, File, ImageConfig, Layer, NoRecipe, Recipe, Rootfs, normalise, split_ref

REPOSITORY = "riotkit-org/kubectl-light-image"   # as the node's registry serves ghcr.io/riotkit-org/...
NEAT_MODULE = "github.com/itaysk/kubectl-neat"
# kubectl-neat v1.2.0's go.mod requires vbom.ml/util, whose host the Go module proxy no longer reaches (403);
# the same code is published as github.com/fvbommel/util (its author's), at the commit vbom.ml served.
NEAT_REPLACES = (("vbom.ml/util", "github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc"),)
KREW_BIN = "root/.krew/bin"
PATH = f"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/{KREW_BIN}"   # upstream's ENV PATH
PACKAGES = ("bash", "python3", "tar", "gzip", "coreutils", "ca-certificates")
TAG = re.compile(r"v(?P<kubectl>\d+\.\d+\.\d+)-r\d+")   # v<kubectl's Kubernetes release>-r<image revision>


@dataclass(frozen=True)
class Pin:
    """What one upstream tag holds, and what the recipe builds for it."""

    kubectl: str         # the Kubernetes release of its kubectl (the tag's v<X.Y.Z>)
    neat: str            # kubectl-neat built here
    upstream_neat: str   # the kubectl-neat upstream's krew installed
    python: str          # upstream's Python (python:<x.y>-alpine)
    suite: str           # the Debian suite whose python3 is that Python


# The tags recipes build; a tag's kubectl version must be the one its name says (``pin`` checks).
KUBECTL_LIGHT_IMAGES: dict[str, Pin] = {
    "v1.26.1-r1": Pin(kubectl="v1.26.1", neat="v1.2.0", upstream_neat="v2.0.3", python="3.11", suite="bookworm"),
}


def pin(tag: str) -> Pin:
    """The pin of ``tag``, or NoRecipe saying which tags recipes build; its kubectl agrees with the tag."""
    found = KUBECTL_LIGHT_IMAGES.get(tag)
    if found is None:
        raise NoRecipe(f"no recipe builds kubectl-light-image {tag} here: KUBECTL_LIGHT_IMAGES in "
                       f"{__name__} pins {', '.join(KUBECTL_LIGHT_IMAGES)} only; add the tag with its kubectl, "
                       "kubectl-neat and Python (read them from that tag's Dockerfile)")
    named = TAG.fullmatch(tag)
    if named is None or f"v{named['kubectl']}" != found.kubectl:
        raise NoRecipe(f"kubectl-light-image {tag}: KUBECTL_LIGHT_IMAGES pins kubectl {found.kubectl}, but the tag "
                       f"names {'v' + named['kubectl'] if named else 'no kubectl version (v<X.Y.Z>-r<N>)'}")
    return found


def kubectl_target(version: str) -> Pinned:
    """kubectl of k8s.io/kubernetes at ``version``, stamped as the local backend stamps its Kubernetes."""
    from .binaries import kubernetes_ldflags   # not at import: `python -m ...local.binaries` must not see it imported

    return Pinned(KUBE_MODULE, version, "kubectl-light-image/kubectl",
                  (Binary("kubectl", f"{KUBE_MODULE}/cmd/kubectl", ("version", "--client")),),
                  kubernetes_ldflags(version))


def neat_target(version: str) -> Pinned:
    """kubectl-neat at ``version`` (it prints no version of its own: the cache directory names it)."""
    return Pinned(NEAT_MODULE, version, "kubectl-light-image/kubectl-neat",
                  (Binary("kubectl-neat", NEAT_MODULE, None),),
                  recipe=json.dumps({"replaces": dict(NEAT_REPLACES)}, sort_keys=True) + "\n",
                  replaces=NEAT_REPLACES)


def recipe(tag: str, kubectl: Path, neat: Path) -> Recipe:
    """The image of ``tag`` from the built kubectl and kubectl-neat (nothing is built here)."""
    found = pin(tag)
    rootfs = Rootfs(found.suite, PACKAGES)
    binaries = Layer((File("usr/bin/kubectl", Path(kubectl), 0o755),
                      Dir("root/.krew", 0o755), Dir(KREW_BIN, 0o755),
                      File(f"{KREW_BIN}/kubectl-neat", Path(neat), 0o755)),
                     f"kubectl {found.kubectl} at /usr/bin/kubectl, kubectl-neat {found.neat} in /{KREW_BIN} "
                     "(built from their Go modules)")
    # python:<x.y>-alpine's Env and Cmd; root, as upstream (no USER)
    config = ImageConfig(cmd=("python3",), env=(PATH, "LANG=C.UTF-8"),
                         labels=(("org.opencontainers.image.version", tag),))
    return Recipe(f"kubectl-light-image-{tag}", (f"{REPOSITORY}:{tag}",), config, (binaries,), rootfs,
                  description=(f"kubectl {found.kubectl} and kubectl-neat {found.neat} built from their Go modules "
                               f"on Debian {found.suite} (python3 {found.python}); upstream: "
                               f"python:{found.python}-alpine, kubectl-neat {found.upstream_neat}, which the Go "
                               f"module proxy does not serve"))


def build_binaries(tag: str, progress: Callable[[str], None] = progress_lines.say) -> dict[str, Path]:
    """kubectl and kubectl-neat of ``tag``, found in the cache or built there first (NoRecipe when the tag has
    no pin or a build fails)."""
    found = pin(tag)
    built: dict[str, Path] = {}
    for target, how_long in ((kubectl_target(found.kubectl), ", about 8 minutes on 2 cores"),
                             (neat_target(found.neat), ", about 3 minutes on 2 cores")):
        built.update(gomodules.find_or_build(target, progress=progress, how_long=how_long,
                                             why=f"kubectl-light-image {tag} needs it", fail=NoRecipe))
    return built


def build_recipe(tag: str, progress: Callable[[str], None] = progress_lines.say) -> Recipe:
    """The recipe of ``tag``, its binaries found in the cache or built there first (see build_binaries)."""
    built = build_binaries(tag, progress)
    return recipe(tag, built["kubectl"], built["kubectl-neat"])


def kubectl_light_images(progress: Callable[[str], None] = progress_lines.say) -> dict[str, dict[str, Path]]:
    """The binaries of every tag KUBECTL_LIGHT_IMAGES pins, built ahead of a run (``make local-binaries``): a
    cold deploy would otherwise spend about 11 minutes on 2 cores building them."""
    return {tag: build_binaries(tag, progress) for tag in KUBECTL_LIGHT_IMAGES}


@dataclass
class TemplateImages:
    recipes: list[Recipe] = field(default_factory=list)
    unbuildable: dict[str, str] = field(default_factory=dict)   # normalised reference -> why not built


def recipes(images: Iterable[str], progress: Callable[[str], None] = progress_lines.say) -> TemplateImages:
    """The recipes of the kubectl-light-image tags among ``images`` (the pinned templates' images), and why
    each tag that cannot be built here was not (the template matrix's skip reason)."""
    out = TemplateImages()
    for image in sorted({normalise(i) for i in images}):
        if "@" in image or split_ref(image)[0] != REPOSITORY:
            continue
        tag = split_ref(image)[1]
        try:
            out.recipes.append(build_recipe(tag, progress))
        except (NoRecipe, GoModuleError) as exc:
            out.unbuildable[image] = str(exc)
            progress(f"image {image} is not built: {exc}")
    return out


def unhostable(image: str) -> str | None:
    """Why ``image``, a kubectl-light-image the deploy did not publish, is missing (None: not one)."""
    ref = normalise(image)
    if "@" in ref or split_ref(ref)[0] != REPOSITORY:
        return None
    try:
        pin(split_ref(ref)[1])
    except NoRecipe as exc:
        return str(exc)
    return ("not published by this run (the deploy builds kubectl-light-image at the tags the pinned templates "
            "name)")
