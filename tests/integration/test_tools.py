"""Pinned tools against real servers: downloads from a local HTTP server, verified by sha256; the fallback to
the tool's Go module when the host refuses, does not resolve, does not answer or answers 503; and the real Go
module proxy (the fallback's logic with a fake build: tests/unit/test_tools.py)."""

from __future__ import annotations

import dataclasses
import http.server
import io
import re
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from e2e_harness import gomodules, tools
from e2e_harness.tools import ToolError, current_platform, install_one, load_manifest
from tests.unit.test_tools import FAKE_GO, FAKE_TOOL, fake_tool, refusing_url, sha


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


def test_platform_without_checksum_is_refused(tmp_path, file_server):
    path = manifest(tmp_path, file_server, sha256=sha(FAKE_TOOL))
    with pytest.raises(ToolError, match="no sha256 for plan9-mips"):
        load_manifest(path, plat="plan9-mips")


@pytest.fixture
def silent_url():
    """A server that accepts the connection and never answers: a read timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/faketool"


@pytest.fixture
def unavailable_url():
    """A real HTTP server answering 503, as a proxy that cannot reach the host does."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(503, "upstream unreachable")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/faketool"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("unreachable", ["refused", "dns", "timeout", "proxy-503"])
def test_unreachable_host_falls_back_to_the_go_module(unreachable, tmp_path, fake_build, monkeypatch, request):
    if unreachable == "timeout":
        monkeypatch.setattr(tools, "DOWNLOAD_TIMEOUT", (2, 0.3))
    url = {"refused": refusing_url, "dns": lambda: "http://faketool.invalid/faketool",   # .invalid never resolves
           "timeout": lambda: request.getfixturevalue("silent_url"),
           "proxy-503": lambda: request.getfixturevalue("unavailable_url")}[unreachable]()
    dest = tmp_path / "bin"
    path = install_one(fake_tool(url), dest)

    assert path == dest / "faketool"
    assert subprocess.run([path], capture_output=True, text=True).stdout == "faketool version v1.2.3 (built)\n"
    [call] = fake_build.calls
    cached = tmp_path / "cache" / "e2e-harness" / "tools" / "faketool" / "v1.2.3" / "bin"
    assert call["module"] == "example.com/faketool" and call["version"] == "v1.2.3"
    assert call["packages"] == ["example.com/faketool/cmd/faketool"] and call["dest"] == cached
    assert call["outputs"] == {"example.com/faketool/cmd/faketool": "faketool"}
    assert call["ldflags"] == "-X example.com/faketool/version.v=v1.2.3 -X m=1.2.3"
    assert call["tags"] == ("netgo", "release")
    assert call["replaces"] == {"example.com/dep": "example.com/dep v0.9.0 (example.com/faketool@v1.2.3)"}
    assert (cached / "faketool").read_bytes() == path.read_bytes()
    assert (dest / ".faketool.verified").read_text() == (
        f"v1.2.3 built from Go module example.com/faketool@v1.2.3 sha256:{sha(path.read_bytes())}\n")


def test_sha256_mismatch_does_not_fall_back(tmp_path, file_server, fake_build):
    serve(file_server, "faketool-{os}-{arch}", FAKE_TOOL)
    tool = fake_tool(f"{file_server.url}/v1.2.3/faketool-{{os}}-{{arch}}", sha256=sha(b"other"))
    with pytest.raises(ToolError, match="sha256 mismatch"):
        install_one(tool, tmp_path / "bin")
    assert fake_build.calls == [] and list((tmp_path / "bin").iterdir()) == []


def test_http_404_does_not_fall_back(tmp_path, file_server, fake_build):
    tool = fake_tool(f"{file_server.url}/v1.2.3/missing")
    with pytest.raises(ToolError, match="answered HTTP 404"):
        install_one(tool, tmp_path / "bin")
    assert fake_build.calls == [] and list((tmp_path / "bin").iterdir()) == []


def test_stamp_tells_downloaded_from_built_and_from_source_forces_the_module(tmp_path, file_server, fake_build,
                                                                             monkeypatch):
    serve(file_server, "faketool-{os}-{arch}", FAKE_TOOL)
    manifest_path = manifest(tmp_path, file_server, sha256=sha(FAKE_TOOL))
    spec = yaml.safe_load(manifest_path.read_text())
    spec["faketool"]["go"] = FAKE_GO
    manifest_path.write_text(yaml.safe_dump(spec))
    dest = tmp_path / "bin"
    stamp = dest / ".faketool.verified"

    assert tools.main(["install", "--manifest", str(manifest_path), "--dest", str(dest)]) == 0
    assert stamp.read_text() == f"v1.2.3 {sha(FAKE_TOOL)}\n" and fake_build.calls == []

    assert tools.main(["install", "--manifest", str(manifest_path), "--dest", str(dest), "--from-source"]) == 0
    assert len(file_server.requests) == 1, "--from-source does not download"
    built = (dest / "faketool").read_bytes()
    assert built != FAKE_TOOL and stamp.read_text().startswith("v1.2.3 built from Go module example.com/faketool@")

    # Reachable again: the download replaces the built binary.
    assert tools.main(["install", "--manifest", str(manifest_path), "--dest", str(dest)]) == 0
    assert (dest / "faketool").read_bytes() == FAKE_TOOL and stamp.read_text() == f"v1.2.3 {sha(FAKE_TOOL)}\n"
    assert len(fake_build.calls) == 1


def test_no_go_on_path_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError) as raised:
        install_one(fake_tool("http://faketool.invalid/faketool"), tmp_path / "bin")
    assert str(raised.value) == (
        "faketool v1.2.3: its download host cannot be reached, and building it from its Go module "
        "example.com/faketool needs the Go toolchain (`go` on PATH, see https://go.dev/dl/): install Go, "
        "or make faketool.invalid reachable (or set HTTPS_PROXY)")


# --- against the real Go module proxy ---------------------------------------------------------------

SKAFFOLD = "github.com/GoogleContainerTools/skaffold/v2"


@pytest.mark.needs_go
def test_generated_replaces_for_skaffolds_real_go_mod():
    version = {t.name: t for t in load_manifest()}["skaffold"].version
    replaces = gomodules.module_replaces(SKAFFOLD, version)
    # its go.mod, read independently: every `replace X => Y vN` line
    go_mod = Path(gomodules.go_download(f"{SKAFFOLD}@{version}")["GoMod"]).read_text()
    lines = re.findall(r"^replace (\S+) => (\S+ \S+)$", go_mod, re.MULTILINE)
    assert len(lines) == 6 and replaces == dict(lines)
    assert replaces["github.com/docker/docker"] == "github.com/docker/docker v27.5.1+incompatible"
    text = gomodules.generated_go_mod(SKAFFOLD, version, replaces)
    assert f"require {SKAFFOLD} {version}\n" in text
    assert "\tgithub.com/spf13/viper => github.com/spf13/viper v1.19.0\n" in text


@pytest.mark.needs_go
def test_kubectl_module_replaces_its_staging_modules_with_the_published_release():
    version = {t.name: t for t in load_manifest()}["kubectl"].version   # v1.32.11 -> v0.32.11
    replaces = gomodules.module_replaces("k8s.io/kubernetes", version)
    published = "v0" + version[version.index("."):]
    assert replaces["k8s.io/api"] == f"k8s.io/api {published}"
    assert replaces["k8s.io/kubectl"] == f"k8s.io/kubectl {published}"
    assert all(target == f"{module} {published}" for module, target in replaces.items())


@pytest.mark.needs_go
def test_helm_ldflags_name_the_kubernetes_version_of_its_client_go():
    """helm's Makefile stamps 1.<minor of k8s.io/client-go> as the version `helm template` assumes."""
    helm = {t.name: t for t in load_manifest()}["helm"]
    go_mod = Path(gomodules.go_download(f"{helm.go.module}@{helm.version}")["GoMod"]).read_text()
    minor = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", go_mod, re.MULTILINE).group(1)
    for var in ("lint/rules", "chartutil"):
        assert f"-X helm.sh/helm/v3/pkg/{var}.k8sVersionMajor=1 " in helm.go.ldflags + " "
        assert f"-X helm.sh/helm/v3/pkg/{var}.k8sVersionMinor={minor} " in helm.go.ldflags + " "


@pytest.mark.slow       # 146 s with an empty Go build cache on 2 cores; under a second once helm is cached
@pytest.mark.needs_go
@pytest.mark.timeout(2400)
def test_helm_really_built_through_the_fallback(tmp_path):
    """The real route: helm's host unreachable, built from helm.sh/helm/v3 into the shared cache
    (minutes once per machine, seconds afterwards: `make tools` offline caches it), installed into a
    fresh directory, and run."""
    helm = dataclasses.replace({t.name: t for t in load_manifest()}["helm"], url=refusing_url())
    path = install_one(helm, tmp_path / "bin")
    out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and f'Version:"{helm.version}"' in out.stdout, out
    assert (tmp_path / "bin" / ".helm.verified").read_text().startswith(
        f"{helm.version} built from Go module helm.sh/helm/v3@{helm.version} sha256:")
