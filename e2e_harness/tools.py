"""Pinned command-line tools in ``.build/bin``, verified by sha256.

``python -m e2e_harness.tools install`` (what ``make tools`` runs) downloads each
tool of ``tools.yaml`` for this platform, checks the sha256 of the downloaded file
before anything is written under its final name, and deletes it on a mismatch.
A stamp file per tool records what was verified, so a second run downloads nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import platform
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import requests
import yaml

log = logging.getLogger("e2e_harness.tools")

DOWNLOAD_TIMEOUT = (10, 120)  # connect, read (seconds)


class ToolError(RuntimeError):
    """A pinned tool could not be installed or did not verify."""


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    url: str
    sha256: str
    archive_member: str | None = None

    @property
    def stamp(self) -> str:
        return f"{self.version} {self.sha256}\n"


def current_platform() -> str:
    os_name = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system())
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if not os_name or not arch:
        raise ToolError(f"unsupported platform {platform.system()}/{platform.machine()}; "
                        "the pinned tools exist for linux and darwin on amd64 and arm64")
    return f"{os_name}-{arch}"


def load_manifest(path: Path | None = None, plat: str | None = None) -> list[Tool]:
    """Read the tool pins for ``plat`` (default: this machine)."""
    plat = plat or current_platform()
    if path is None:
        text = resources.files("e2e_harness").joinpath("tools.yaml").read_text()
        where = "e2e_harness/tools.yaml"
    else:
        text, where = Path(path).read_text(), str(path)
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
        tools.append(Tool(name, version, url.format(**fill), str(sums[plat]).lower(),
                          member.format(**fill) if member else None))
    return tools


def install(tools: list[Tool], dest: Path) -> list[Path]:
    """Install every tool into ``dest``; returns the installed paths."""
    return [install_one(tool, dest) for tool in tools]


def install_one(tool: Tool, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / tool.name
    stamp = dest / f".{tool.name}.verified"
    if target.exists() and stamp.exists() and stamp.read_text() == tool.stamp:
        log.info("%s %s already installed and verified", tool.name, tool.version)
        return target
    log.info("downloading %s %s from %s", tool.name, tool.version, tool.url)
    payload = _download_verified(tool)
    if tool.archive_member:
        payload = _extract(tool, payload)
    fd, tmp = tempfile.mkstemp(prefix=f".{tool.name}.", dir=dest)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    stamp.write_text(tool.stamp)
    log.info("%s %s installed at %s", tool.name, tool.version, target)
    return target


def _download_verified(tool: Tool) -> bytes:
    """Download into memory and verify before anything lands on disk."""
    try:
        response = requests.get(tool.url, timeout=DOWNLOAD_TIMEOUT)
    except requests.RequestException as exc:
        raise ToolError(f"{tool.name} {tool.version}: cannot download {tool.url}: {exc}. "
                        "Check your network or proxy settings.") from None
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
    inst = sub.add_parser("install", help="download and verify every pinned tool")
    inst.add_argument("--dest", type=Path, default=Path(".build/bin"))
    inst.add_argument("--manifest", type=Path, default=None, help="tool pins (default: the packaged tools.yaml)")
    inst.add_argument("--only", nargs="*", default=None, help="install only these tools")
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
        install(tools, args.dest)
    except ToolError as exc:
        print(f"tools: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
