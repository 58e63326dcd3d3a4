"""The release under test: component pins read from ``release.env``.

Validation happens here, before any clone, build or cluster work, so that a typo
in a pin costs a second rather than a cluster start. Environment variables of the
same name override the file (CI matrices, quick experiments).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from dotenv.parser import parse_stream


class ReleaseError(ValueError):
    """release.env (or an overriding environment variable) is not usable."""


# A Go pseudo-version: vX.Y.Z-[pre.]0.yyyymmddhhmmss-<12 hex> or vX.Y.Z-yyyymmddhhmmss-<12 hex>.
PSEUDO_VERSION = re.compile(r"^v\d+\.\d+\.\d+-(?:[0-9A-Za-z.]+\.)?(?:0\.)?\d{14}-(?P<commit>[0-9a-f]{12})$")
# A release tag as the components use them: v4.1.0-rc1, v0.1.3, v0.1, 1.0.0-rc1.
VERSION_TAG = re.compile(r"^v?\d+\.\d+(?:\.\d+)?(?:[-.]?[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)?$")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
# A branch must be spelled explicitly, so that a mistyped version never becomes a branch.
BRANCH = re.compile(r"^branch:(?P<name>[A-Za-z0-9][A-Za-z0-9._/-]*)$")
STRICT_SEMVER = re.compile(r"^v\d+\.\d+\.\d+$")
K3S_VERSION = re.compile(r"^v\d+\.\d+\.\d+-k3s\d+$")
MAJOR_ONLY = re.compile(r"^\d{2}$")


@dataclass(frozen=True)
class Pin:
    """One component pin, classified by its spelling."""

    raw: str

    @property
    def kind(self) -> str:
        if BRANCH.match(self.raw):
            return "branch"
        if PSEUDO_VERSION.match(self.raw):
            return "pseudo-version"
        if COMMIT.match(self.raw):
            return "commit"
        return "tag"

    @property
    def git_ref(self) -> str:
        """What to check out in a git clone."""
        if m := BRANCH.match(self.raw):
            return m.group("name")
        if m := PSEUDO_VERSION.match(self.raw):
            return m.group("commit")
        return self.raw

    @property
    def is_branch(self) -> bool:
        return self.kind == "branch"

    def __str__(self) -> str:
        return self.raw


def _component_pin(value: str) -> str | None:
    if BRANCH.match(value) or PSEUDO_VERSION.match(value) or COMMIT.match(value) or VERSION_TAG.match(value):
        return None
    return ("a release tag (v4.1.0-rc1, 1.0.0-rc1), a Go pseudo-version "
            "(v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8), a commit hash (7-40 hex digits) "
            "or branch:<name>")


def _matches(pattern: re.Pattern, expected: str):
    def check(value: str) -> str | None:
        return None if pattern.match(value) else expected
    return check


@dataclass(frozen=True)
class Key:
    name: str
    meaning: str
    check: object  # callable(value) -> error text or None


KEYS: tuple[Key, ...] = (
    Key("SERVER_VERSION", "backup-repository server", _component_pin),
    Key("CONTROLLER_VERSION", "backup-maker-controller", _component_pin),
    Key("BACKUP_MAKER_VERSION", "backup-maker CLI used in backup pods", _component_pin),
    Key("PGBR_VERSION", "pgbr (PostgreSQL dump/restore wrapper)", _component_pin),
    Key("KUBERNETES_VERSION", "Kubernetes control plane of the local backend",
        _matches(STRICT_SEMVER, "a Kubernetes release like v1.34.2")),
    Key("ETCD_VERSION", "etcd of the local backend",
        _matches(STRICT_SEMVER, "an etcd release like v3.5.21")),
    Key("COREDNS_VERSION", "CoreDNS of the local backend's real node (the one its Kubernetes release ships)",
        _matches(STRICT_SEMVER, "a CoreDNS release like v1.12.1")),
    Key("LOCAL_PATH_PROVISIONER_VERSION", "local-path-provisioner of the local backend's real node (as k3s ships it)",
        _matches(STRICT_SEMVER, "a local-path-provisioner release like v0.0.30")),
    Key("K3S_VERSION", "k3s image of the k3d backend",
        _matches(K3S_VERSION, "a k3s release like v1.31.5-k3s1")),
    Key("POSTGRES_VERSION", "PostgreSQL major version of the backup subject and server database",
        _matches(MAJOR_ONLY, "a PostgreSQL major version like 15")),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}
COMPONENT_KEYS = ("SERVER_VERSION", "CONTROLLER_VERSION", "BACKUP_MAKER_VERSION", "PGBR_VERSION")


@dataclass(frozen=True)
class Release:
    """Validated pins, plus where each value came from (for the report)."""

    path: Path
    values: Mapping[str, str]
    origins: Mapping[str, str] = field(default_factory=dict)

    def pin(self, key: str) -> Pin:
        return Pin(self.values[key])

    def __getitem__(self, key: str) -> str:
        return self.values[key]


def load_release(path: Path | str, environ: Mapping[str, str] | None = None) -> Release:
    """Read and validate ``path``; environment variables with a known key override it."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseError(f"{path}: file not found. Pass --release-env or create it "
                           f"with the keys {', '.join(k.name for k in KEYS)}.") from None
    except IsADirectoryError:
        raise ReleaseError(f"{path}: is a directory; --release-env takes the release file itself "
                           f"(e.g. {path / 'release.env'})") from None
    except PermissionError:
        raise ReleaseError(f"{path}: not readable by this user; fix its permissions") from None
    except UnicodeDecodeError as exc:
        raise ReleaseError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                           "expected KEY=value lines") from None

    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        # The parser folds preceding blank lines into a binding's text.
        line = binding.original.line + len(original) - len(original.lstrip("\n"))
        where = f"{path}:{line}"
        if binding.error:
            raise ReleaseError(f"{where}: cannot parse {original.strip()!r}; "
                               "expected KEY=value")
        if binding.key is None:  # comment or blank line
            continue
        key = binding.key
        if key not in KEYS_BY_NAME:
            raise ReleaseError(f"{where}: unknown key {key}; known keys: "
                               f"{', '.join(KEYS_BY_NAME)}")
        if key in values:
            raise ReleaseError(f"{where}: key {key} given twice (first at {origins[key]})")
        values[key] = _validated(key, binding.value, where)
        origins[key] = where

    for key in KEYS_BY_NAME:
        if key in environ:
            where = f"environment variable {key} (overriding {path})"
            values[key] = _validated(key, environ[key], where)
            origins[key] = where

    missing = [k.name for k in KEYS if k.name not in values]
    if missing:
        raise ReleaseError(f"{path}: missing key(s) {', '.join(missing)}; add e.g. "
                           + ", ".join(f"{m}=<{KEYS_BY_NAME[m].meaning}>" for m in missing))
    return Release(path=path, values=values, origins=origins)


def _validated(key: str, value: str | None, where: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ReleaseError(f"{where}: key {key} is empty; expected {_expected(key)}")
    error = KEYS_BY_NAME[key].check(value)
    if error:
        raise ReleaseError(f"{where}: key {key} has malformed value {value!r}; expected {error}")
    return value


def _expected(key: str) -> str:
    return KEYS_BY_NAME[key].check("") or "a value"
