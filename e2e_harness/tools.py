"""Pinned command-line tools in ``.build/bin``, verified by sha256.

``python -m e2e_harness.tools install`` (what ``make tools`` runs) downloads each
tool of ``tools.yaml`` for this platform, checks the sha256 of the downloaded file
before anything is written under its final name, and deletes it on a mismatch.
A stamp file per tool records what was verified, so a second run downloads nothing.

When a tool's download host cannot be reached (connection refused, DNS failure, timeout,
or a proxy answering 502/503/504: air-gapped machines), the tool is built at the same
version from its Go module instead (its ``go:`` block in tools.yaml; Go verifies the
module against the checksum database), once, into the cache outside the repository
(``<cache>/tools/<name>/<version>/bin/<name>``, under a file lock), checked to report the
pinned version, and copied into place; its stamp says it was built from the module.
``install --from-source`` takes that route without trying the download. A sha256
mismatch or any other HTTP answer (a 404) stays an error: the host was reached and
answered something other than the pin.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import platform
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

from . import gomodules

log = logging.getLogger("e2e_harness.tools")

DOWNLOAD_TIMEOUT = (10, 120)  # connect, read (seconds)
# A proxy's answers for "could not reach the host" (bad gateway, unavailable, gateway timeout).
UNREACHABLE_STATUSES = (502, 503, 504)
BUILD_TIMEOUT = 1800   # per go command; skaffold, the largest, takes about 6 minutes cold on 2 cores


class ToolError(RuntimeError):
    """A pinned tool could not be installed or did not verify."""


class Unreachable(ToolError):
    """The download host could not be reached; the tool can be built from its Go module instead."""


@dataclass(frozen=True)
class GoBuild:
    """How to build a tool from its Go module at the tool's version (tools.yaml's ``go:``)."""

    module: str
    package: str
    ldflags: str = ""
    tags: tuple[str, ...] = ()
    version_args: tuple[str, ...] = ("version",)

    def pinned(self, name: str, version: str) -> gomodules.Pinned:
        """Tool ``name`` at ``version``, cached in ``<cache>/tools/<name>/<version>``; a cached build counts
        only for the same recipe (everything that shapes the binary)."""
        recipe = json.dumps({"module": self.module, "version": version, "package": self.package,
                             "ldflags": self.ldflags, "tags": list(self.tags)}, sort_keys=True) + "\n"
        return gomodules.Pinned(self.module, version, f"tools/{name}",
                                (gomodules.Binary(name, self.package, self.version_args),),
                                self.ldflags, self.tags, recipe)


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    url: str
    sha256: str
    archive_member: str | None = None
    go: GoBuild | None = None

    @property
    def stamp(self) -> str:
        """The stamp of the downloaded, sha256-verified tool."""
        return f"{self.version} {self.sha256}\n"

    def built_stamp(self, sha256: str) -> str:
        """The stamp of the tool built from its Go module (``sha256`` of the built binary)."""
        assert self.go is not None
        return f"{self.version} built from Go module {self.go.module}@{self.version} sha256:{sha256}\n"


def current_platform() -> str:
    os_name = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system())
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if not os_name or not arch:
        raise ToolError(f"unsupported platform {platform.system()}/{platform.machine()}; "
                        "the pinned tools exist for linux and darwin on amd64 and arm64")
    return f"{os_name}-{arch}"


def load_manifest(path: Path | None = None, plat: str | None = None) -> list[Tool]:
    """Read the tool pins for ``plat`` (default: this machine)."""
    if path is None:
        text = resources.files("e2e_harness").joinpath("tools.yaml").read_text()
        where = "e2e_harness/tools.yaml"
    else:
        text, where = Path(path).read_text(), str(path)
    return load_manifest_text(text, where, plat)


def load_manifest_text(text: str, where: str, plat: str | None = None) -> list[Tool]:
    """The tool pins of a manifest's ``text`` (``where`` names it in errors) for ``plat``."""
    plat = plat or current_platform()
    data = yaml.safe_load(text) or {}
    os_name, arch = plat.split("-", 1)
    tools = []
    for name, spec in data.items():
        try:
            version, url, sums = spec["version"], spec["url"], spec["sha256"]
        except (KeyError, TypeError):
            raise ToolError(f"{where}: tool {name} needs keys version, url and sha256") from None
        if plat not in sums:
            raise ToolError(f"{where}: tool {name} has no sha256 for {plat}; known: {', '.join(sums)}")
        fill = dict(version=version, os=os_name, arch=arch)
        member = spec.get("archive_member")
        go = _go_build(name, version, spec["go"], where) if spec.get("go") is not None else None
        tools.append(Tool(name, version, url.format(**fill), str(sums[plat]).lower(),
                          member.format(**fill) if member else None, go))
    return tools


GO_KEYS = {"module", "package", "ldflags", "tags", "version_args"}


def _go_build(name: str, version: str, spec, where: str) -> GoBuild:
    """A tool's ``go:`` block; ldflags may use {version}, {major}, {minor}, {patch}."""
    def bad(why: str) -> ToolError:
        return ToolError(f"{where}: tool {name}: go: {why}")

    if not isinstance(spec, dict):
        raise bad("must be a mapping with keys module, package and optionally ldflags, tags, version_args")
    if set(spec) - GO_KEYS:
        raise bad(f"unknown key(s) {', '.join(sorted(set(spec) - GO_KEYS))}; known: {', '.join(sorted(GO_KEYS))}")
    module, package = spec.get("module"), spec.get("package")
    if not isinstance(module, str) or not isinstance(package, str):
        raise bad("needs keys module and package (strings)")
    if package != module and not package.startswith(module + "/"):
        raise bad(f"package {package} is not in module {module}")
    lists = {}
    for key in ("tags", "version_args"):
        value = spec.get(key, [] if key == "tags" else ["version"])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a list of strings")
        lists[key] = tuple(value)
    parts = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
    fill = dict(version=version, major=parts.group(1) if parts else "", minor=parts.group(2) if parts else "",
                patch=parts.group(3) if parts else "")
    try:
        ldflags = " ".join(str(spec.get("ldflags", "")).format(**fill).split())
    except (KeyError, IndexError, ValueError) as exc:
        raise bad(f"ldflags: unknown placeholder or stray brace ({exc}); known: {', '.join(fill)}") from None
    return GoBuild(module, package, ldflags, lists["tags"], lists["version_args"])


def install(tools: list[Tool], dest: Path, from_source: bool = False) -> list[Path]:
    """Install every tool into ``dest``; returns the installed paths."""
    return [install_one(tool, dest, from_source=from_source) for tool in tools]


def install_one(tool: Tool, dest: Path, from_source: bool = False) -> Path:
    """Download and verify ``tool`` into ``dest``; built from its Go module when its download
    host cannot be reached, or with ``from_source``."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / tool.name
    stamp = dest / f".{tool.name}.verified"
    if from_source:
        if tool.go is None:
            raise ToolError(f"{tool.name} {tool.version}: --from-source, but its entry in tools.yaml has no "
                            "go: block saying how to build it")
        return _install_built(tool, dest, "--from-source")
    if target.exists() and stamp.exists() and stamp.read_text() == tool.stamp:
        log.info("%s %s already installed and verified", tool.name, tool.version)
        return target
    log.info("downloading %s %s from %s", tool.name, tool.version, tool.url)
    try:
        payload = _download_verified(tool)
    except Unreachable as exc:
        if tool.go is None:
            raise ToolError(f"{exc} Check your network or proxy settings.") from None
        log.warning("%s", exc)
        return _install_built(tool, dest, "its download host cannot be reached")
    if tool.archive_member:
        payload = _extract(tool, payload)
    _place(payload, target)
    stamp.write_text(tool.stamp)
    log.info("%s %s installed at %s", tool.name, tool.version, target)
    return target


def _place(payload: bytes, target: Path) -> None:
    """Write ``target`` executable under a temporary name first: it is never half written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _install_built(tool: Tool, dest: Path, why: str) -> Path:
    """Install the tool built from its Go module (built once into the cache, else copied from it)."""
    target = dest / tool.name
    stamp = dest / f".{tool.name}.verified"
    binary = built_binary(tool, why)
    payload = binary.read_bytes()
    sha256 = hashlib.sha256(payload).hexdigest()
    wanted = tool.built_stamp(sha256)
    if (target.is_file() and stamp.is_file() and stamp.read_text() == wanted
            and hashlib.sha256(target.read_bytes()).hexdigest() == sha256):
        log.info("%s %s already installed (built from its Go module)", tool.name, tool.version)
        return target
    _place(payload, target)
    stamp.write_text(wanted)
    log.info("%s %s installed at %s (built from Go module %s@%s)", tool.name, tool.version, target,
             tool.go.module, tool.version)
    return target


def built_binary(tool: Tool, why: str = "installing it") -> Path:
    """``tool`` built from its Go module: from the cache, else built there once (gomodules.find_or_build)."""
    assert tool.go is not None
    reach = "" if why == "--from-source" else f"or make {urlsplit(tool.url).hostname} reachable (or set HTTPS_PROXY)"
    return gomodules.find_or_build(tool.go.pinned(tool.name, tool.version), why=why, go_hint=reach, fail=ToolError,
                                   how_long="; minutes on a cold Go cache", timeout=BUILD_TIMEOUT)[tool.name]


def _download_verified(tool: Tool) -> bytes:
    """Download into memory and verify before anything lands on disk."""
    cannot = f"{tool.name} {tool.version}: cannot download {tool.url}"
    try:
        response = requests.get(tool.url, timeout=DOWNLOAD_TIMEOUT)
    except requests.exceptions.SSLError as exc:   # reached, but not trusted: no fallback
        raise ToolError(f"{cannot}: {exc}. Check your network or proxy settings.") from None
    except (requests.ConnectionError, requests.Timeout) as exc:   # refused, DNS failure, timeout
        raise Unreachable(f"{cannot}: {exc}.") from None
    except requests.RequestException as exc:
        raise ToolError(f"{cannot}: {exc}. Check your network or proxy settings.") from None
    if response.status_code in UNREACHABLE_STATUSES:
        raise Unreachable(f"{cannot}: {tool.url} answered HTTP {response.status_code} (it, or a proxy "
                          "on the way, cannot serve it now).")
    if response.status_code != 200:
        raise ToolError(f"{tool.name} {tool.version}: {tool.url} answered HTTP {response.status_code}")
    actual = hashlib.sha256(response.content).hexdigest()
    if actual != tool.sha256:
        raise ToolError(f"{tool.name} {tool.version}: sha256 mismatch for {tool.url}: expected "
                        f"{tool.sha256}, got {actual}. Nothing was installed; if the pin was bumped, "
                        "update every sha256 in e2e_harness/tools.yaml from the project's published checksums.")
    return response.content


def _extract(tool: Tool, payload: bytes) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as archive:
            member = archive.extractfile(tool.archive_member)
            if member is None:
                raise KeyError(tool.archive_member)
            return member.read()
    except (KeyError, tarfile.TarError) as exc:
        raise ToolError(f"{tool.name} {tool.version}: archive {tool.url} has no file "
                        f"{tool.archive_member} ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e_harness.tools",
                                     description="Install the pinned tools into a directory.")
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="download and verify every pinned tool (built from its Go module "
                                          "when its download host cannot be reached)")
    inst.add_argument("--dest", type=Path, default=Path(".build/bin"))
    inst.add_argument("--manifest", type=Path, default=None, help="tool pins (default: the packaged tools.yaml)")
    inst.add_argument("--only", nargs="*", default=None, help="install only these tools")
    inst.add_argument("--from-source", action="store_true",
                      help="build the tools from their Go modules (tools.yaml's go: blocks) at the pinned "
                           "versions instead of downloading them; needs Go and the Go module proxy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="tools: %(message)s")
    try:
        tools = load_manifest(args.manifest)
        if args.only:
            unknown = set(args.only) - {t.name for t in tools}
            if unknown:
                raise ToolError(f"unknown tool(s) {', '.join(sorted(unknown))}; known: "
                                f"{', '.join(t.name for t in tools)}")
            tools = [t for t in tools if t.name in args.only]
        install(tools, args.dest, from_source=args.from_source)
    except ToolError as exc:
        print(f"tools: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
