"""Pinned tools: downloads from a real local HTTP server, verified by sha256."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile

import pytest
import yaml

from e2e_harness.tools import Tool, ToolError, current_platform, install_one, load_manifest

FAKE_TOOL = b"#!/bin/sh\necho fake-tool 1.2.3\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(tmp_path, file_server, *, sha256: str, url_name="faketool-{os}-{arch}", member=None):
    plat = current_platform()
    spec = {"version": "v1.2.3", "url": f"{file_server.url}/{{version}}/{url_name}",
            "sha256": {plat: sha256}}
    if member:
        spec["archive_member"] = member
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump({"faketool": spec}))
    return path


def serve(file_server, name: str, data: bytes):
    os_name, arch = current_platform().split("-")
    target = file_server.root / "v1.2.3" / name.format(os=os_name, arch=arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_verified_tool_is_installed_executable_and_not_downloaded_twice(tmp_path, file_server):
    serve(file_server, "faketool-{os}-{arch}", FAKE_TOOL)
    tools = load_manifest(manifest(tmp_path, file_server, sha256=sha(FAKE_TOOL)))
    dest = tmp_path / "bin"
    path = install_one(tools[0], dest)
    assert subprocess.run([path], capture_output=True, text=True).stdout == "fake-tool 1.2.3\n"
    install_one(tools[0], dest)
    assert len(file_server.requests) == 1


def test_sha256_mismatch_installs_nothing(tmp_path, file_server):
    serve(file_server, "faketool-{os}-{arch}", FAKE_TOOL)
    wrong = sha(b"something else")
    path = manifest(tmp_path, file_server, sha256=wrong)
    dest = tmp_path / "bin"
    result = subprocess.run([sys.executable, "-m", "e2e_harness.tools", "install", "--manifest", path,
                             "--dest", dest], capture_output=True, text=True)
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stderr and wrong in result.stderr and sha(FAKE_TOOL) in result.stderr
    assert list(dest.iterdir()) == [], "no binary, temp file or stamp left behind"


def test_changed_pin_replaces_a_previously_verified_tool(tmp_path, file_server):
    serve(file_server, "faketool-{os}-{arch}", FAKE_TOOL)
    dest = tmp_path / "bin"
    install_one(load_manifest(manifest(tmp_path, file_server, sha256=sha(FAKE_TOOL)))[0], dest)
    newer = FAKE_TOOL.replace(b"1.2.3", b"1.2.4")
    serve(file_server, "faketool-{os}-{arch}", newer)
    install_one(load_manifest(manifest(tmp_path, file_server, sha256=sha(newer)))[0], dest)
    assert (dest / "faketool").read_bytes() == newer


def test_tool_from_a_tarball(tmp_path, file_server):
    os_name, arch = current_platform().split("-")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"{os_name}-{arch}/faketool")
        info.size = len(FAKE_TOOL)
        archive.addfile(info, io.BytesIO(FAKE_TOOL))
    data = buf.getvalue()
    serve(file_server, "faketool-{os}-{arch}.tar.gz", data)
    tools = load_manifest(manifest(tmp_path, file_server, sha256=sha(data), url_name="faketool-{os}-{arch}.tar.gz",
                                   member="{os}-{arch}/faketool"))
    assert install_one(tools[0], tmp_path / "bin").read_bytes() == FAKE_TOOL


def test_missing_download_is_a_clear_error(tmp_path, file_server):
    tools = load_manifest(manifest(tmp_path, file_server, sha256=sha(FAKE_TOOL)))
    with pytest.raises(ToolError, match="answered HTTP 404"):
        install_one(tools[0], tmp_path / "bin")


def test_unreachable_server_is_a_clear_error(tmp_path):
    tool = Tool("faketool", "v1", "http://127.0.0.1:9/faketool", sha(FAKE_TOOL))
    with pytest.raises(ToolError, match="cannot download http://127.0.0.1:9/faketool"):
        install_one(tool, tmp_path / "bin")


def test_platform_without_checksum_is_refused(tmp_path, file_server):
    path = manifest(tmp_path, file_server, sha256=sha(FAKE_TOOL))
    with pytest.raises(ToolError, match="no sha256 for plan9-mips"):
        load_manifest(path, plat="plan9-mips")


def test_packaged_manifest_pins_every_tool_for_linux_and_darwin():
    for plat in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"):
        tools = {t.name: t for t in load_manifest(plat=plat)}
        assert set(tools) == {"kubectl", "k3d", "helm", "skaffold"}
        for tool in tools.values():
            assert len(tool.sha256) == 64 and int(tool.sha256, 16) >= 0
            assert tool.version in tool.url and "{" not in tool.url
