"""The existing backend: any cluster a kubeconfig context points at.

The harness reads the kubeconfig but never changes it (no context switch). With
``SKIP_SERVER_INSTALL``/``SKIP_CLIENT_INSTALL`` the components are assumed to be
installed already; otherwise they are deployed with skaffold, pushing images to
``SKAFFOLD_DEFAULT_REPO``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .base import BackendUnavailable
from .skaffold import Skaffold, SkaffoldBackend


def user_kubeconfig(environ=os.environ) -> Path:
    value = environ.get("KUBECONFIG", "")
    paths = [p for p in value.split(os.pathsep) if p]
    if len(paths) > 1:
        raise BackendUnavailable(f"KUBECONFIG names {len(paths)} files; the existing backend (and the "
                                 "controller) need exactly one: KUBECONFIG=/path/to/one/file")
    path = Path(paths[0]) if paths else Path.home() / ".kube" / "config"
    if not path.is_file():
        raise BackendUnavailable(f"existing backend: kubeconfig {path} not found (set KUBECONFIG)")
    return path


def check_kubeconfig(path: Path, context: str | None) -> str:
    """The context the harness will use, after checking that ``path`` parses as a kubeconfig that has it
    (and the cluster and user it names); raises BackendUnavailable saying what is wrong and what to do."""
    where = f"existing backend: kubeconfig {path}"
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BackendUnavailable(f"{where} cannot be read ({exc.strerror}); fix its permissions or set "
                                 "KUBECONFIG to a readable file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BackendUnavailable(f"{where} does not parse as YAML{at}: {problem}; fix the file, or set "
                                 "KUBECONFIG to a valid kubeconfig") from None
    if not isinstance(config, dict) or not isinstance(config.get("contexts"), list):
        raise BackendUnavailable(f"{where} is not a kubeconfig: expected a YAML mapping with a list of "
                                 f"'contexts' (and 'clusters', 'users'), found {type(config).__name__}"
                                 f"{' without contexts' if isinstance(config, dict) else ''}; set KUBECONFIG "
                                 "to the file `kubectl config view` reads")

    def names(key: str) -> list[str]:
        return [str(e["name"]) for e in config.get(key) or [] if isinstance(e, dict) and e.get("name")]

    contexts = names("contexts")
    have = f"it has: {', '.join(contexts)}" if contexts else "it has no contexts"
    if context is None:
        context = config.get("current-context") or None
        if context is None:
            raise BackendUnavailable(f"{where} sets no current-context; pass --kube-context NAME ({have})")
        source = "its current-context"
    else:
        source = "--kube-context"
    if context not in contexts:
        raise BackendUnavailable(f"{where}: context {context!r} ({source}) is not in it; {have}. "
                                 "Pass --kube-context with one of those")
    entry = next(e for e in config["contexts"] if isinstance(e, dict) and e.get("name") == context)
    details = entry.get("context") or {}
    clusters = names("clusters")
    if details.get("cluster") not in clusters:  # a user is optional (anonymous), a cluster is not
        raise BackendUnavailable(f"{where}: context {context!r} names cluster {details.get('cluster')!r}, which is "
                                 f"not among its clusters ({', '.join(clusters) or 'none'}); fix the file")
    return context


class ExistingBackend(SkaffoldBackend):
    name = "existing"
    owns_cluster = False

    def __init__(self, settings, environ=os.environ):
        super().__init__(settings)
        self._kubeconfig = user_kubeconfig(environ)
        self._default_repo = environ.get("SKAFFOLD_DEFAULT_REPO")

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def kube_context(self) -> str | None:
        return self.settings.kube_context

    def preflight(self) -> None:
        """The kubeconfig parses and has the context (before any source is resolved or built)."""
        check_kubeconfig(self.kubeconfig, self.kube_context)

    def start(self) -> None:
        self.kube.core.list_namespace(limit=1)  # fails early and clearly when the cluster is unreachable

    def skaffold(self) -> Skaffold:
        if not self._default_repo:
            raise BackendUnavailable("existing backend: set SKAFFOLD_DEFAULT_REPO to a registry the cluster "
                                     "can pull from, or SKIP_SERVER_INSTALL=true SKIP_CLIENT_INSTALL=true")
        return Skaffold(self.settings.bin_dir / "skaffold", self.settings.project_dir, self.kubeconfig,
                        self.kube_context, self._default_repo, tools_dir=self.settings.bin_dir,
                        build_dir=self.settings.build_dir)
