"""Pinned tools: the manifest, and the fallback to the tool's Go module when its download host refuses the
connection, with the build faked (downloads from a real local HTTP server, the other ways a host cannot be
reached and the real Go module proxy: tests/integration/test_tools.py)."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest
import yaml

from e2e_harness import tools
from e2e_harness.tools import Tool, ToolError, current_platform, install_one, load_manifest

FAKE_TOOL = b"#!/bin/sh\necho fake-tool 1.2.3\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_unreachable_server_is_a_clear_error(tmp_path):
    tool = Tool("faketool", "v1", "http://127.0.0.1:9/faketool", sha(FAKE_TOOL))
    with pytest.raises(ToolError, match="cannot download http://127.0.0.1:9/faketool"):
        install_one(tool, tmp_path / "bin")


def test_packaged_manifest_pins_every_tool_for_linux_and_darwin():
    for plat in ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"):
        tools = {t.name: t for t in load_manifest(plat=plat)}
        assert set(tools) == {"kubectl", "k3d", "helm", "skaffold"}
        for tool in tools.values():
            assert len(tool.sha256) == 64 and int(tool.sha256, 16) >= 0
            assert tool.version in tool.url and "{" not in tool.url


# --- the fallback: built from the tool's Go module when its download host cannot be reached ---------

FAKE_GO = {"module": "example.com/faketool", "package": "example.com/faketool/cmd/faketool",
           "ldflags": "-X example.com/faketool/version.v={version} -X m={major}.{minor}.{patch}",
           "tags": ["netgo", "release"], "version_args": ["version", "--short"]}


def fake_tool(url: str, sha256: str = sha(FAKE_TOOL), go: dict | None = FAKE_GO) -> Tool:
    spec = {"version": "v1.2.3", "url": url, "sha256": {current_platform(): sha256}}
    if go is not None:
        spec["go"] = go
    return tools.load_manifest_text(yaml.safe_dump({"faketool": spec}), "test manifest")[0]


def refusing_url() -> str:
    with socket.socket() as s:   # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/faketool"


def test_a_second_install_builds_nothing(tmp_path, fake_build):
    tool = fake_tool(refusing_url())
    install_one(tool, tmp_path / "bin")
    install_one(tool, tmp_path / "bin")          # already in place
    install_one(tool, tmp_path / "other-bin")    # copied from the cache
    assert len(fake_build.calls) == 1
    assert (tmp_path / "other-bin" / "faketool").read_bytes() == (tmp_path / "bin" / "faketool").read_bytes()


def test_two_installs_at_once_build_once(tmp_path, fake_build):
    tool = fake_tool(refusing_url())
    fake_build.delay = 0.5   # the other install arrives while this one builds, holding the lock
    errors = []

    def one(dest):
        try:
            install_one(tool, dest)
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(tmp_path / f"bin{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(fake_build.calls) == 1
    assert (tmp_path / "bin0" / "faketool").read_bytes() == (tmp_path / "bin1" / "faketool").read_bytes()


def test_a_changed_go_recipe_rebuilds(tmp_path, fake_build):
    url = refusing_url()
    install_one(fake_tool(url), tmp_path / "bin")
    install_one(fake_tool(url, go={**FAKE_GO, "tags": ["netgo"]}), tmp_path / "bin")
    assert [c["tags"] for c in fake_build.calls] == [("netgo", "release"), ("netgo",)]


def test_unreachable_tool_without_a_go_block_is_still_an_error(tmp_path, fake_build):
    with pytest.raises(ToolError, match="cannot download .*Check your network or proxy settings"):
        install_one(fake_tool(refusing_url(), go=None), tmp_path / "bin")
    assert fake_build.calls == []


def test_a_built_binary_reporting_another_version_is_not_installed(tmp_path, fake_build):
    fake_build.prints = "v9.9.9"
    with pytest.raises(ToolError, match=r"`faketool version --short` reports v9\.9\.9, not v1\.2\.3"):
        install_one(fake_tool(refusing_url()), tmp_path / "bin")
    assert list((tmp_path / "bin").iterdir()) == []
    assert not (tmp_path / "cache" / "e2e-harness" / "tools" / "faketool" / "v1.2.3" / "bin" / "faketool").exists()


def test_from_source_without_go_block_is_refused(tmp_path, fake_build):
    with pytest.raises(ToolError, match="no go: block"):
        install_one(fake_tool(refusing_url(), go=None), tmp_path / "bin", from_source=True)


def test_a_go_block_with_an_unknown_key_or_placeholder_is_refused():
    with pytest.raises(ToolError, match="unknown key.*flags"):
        fake_tool("http://x", go={**FAKE_GO, "flags": "-trimpath"})
    with pytest.raises(ToolError, match="unknown placeholder"):
        fake_tool("http://x", go={**FAKE_GO, "ldflags": "-X v={commit}"})
    with pytest.raises(ToolError, match="not in module"):
        fake_tool("http://x", go={**FAKE_GO, "package": "example.com/other"})


def test_packaged_manifest_builds_every_tool_from_its_module_at_the_pinned_version():
    for tool in load_manifest():
        assert tool.go is not None, tool.name
        assert tool.go.package == tool.go.module or tool.go.package.startswith(tool.go.module + "/")
        assert tool.version in tool.go.ldflags and "{" not in tool.go.ldflags
