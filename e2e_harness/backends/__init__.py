"""Backends: where the release runs. ``auto`` picks k3d when a Docker engine answers, else local."""

from __future__ import annotations

from .base import Backend, BackendError, BackendUnavailable, Endpoints, Settings

BACKEND_NAMES = ("auto", "k3d", "local", "existing")


def backend_class(name: str, docker_available=None) -> type[Backend]:
    """The class for ``name``; ``auto`` asks whether a Docker engine answers."""
    if name == "auto":
        if docker_available is None:
            from .k3d import docker_engine_available as docker_available
        name = "k3d" if docker_available() else "local"
    if name == "k3d":
        from .k3d import K3dBackend
        return K3dBackend
    if name == "local":
        from .local import LocalBackend
        return LocalBackend
    if name == "existing":
        from .existing import ExistingBackend
        return ExistingBackend
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


__all__ = ["Backend", "BackendError", "BackendUnavailable", "Endpoints", "Settings", "backend_class",
           "BACKEND_NAMES"]
