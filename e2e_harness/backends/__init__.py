"""Backends: where the release runs. The table of them is e2e_harness/backend_registry.py."""

from __future__ import annotations

from ..backend_registry import NAMES as BACKEND_NAMES
from ..backend_registry import UnknownBackend, load, resolve
from .base import Backend, BackendError, BackendUnavailable, BackendUsageError, Endpoints, Settings


def backend_class(name: str) -> type[Backend]:
    """The class for ``name``; ``auto`` asks the registry's questions (a Docker engine answers: k3d)."""
    try:
        return load(resolve(name))
    except UnknownBackend as exc:
        raise BackendError(str(exc)) from None


__all__ = ["Backend", "BackendError", "BackendUnavailable", "BackendUsageError", "Endpoints", "Settings", "backend_class",
           "BACKEND_NAMES"]
