"""Container images for the local backend's node, built here without Docker and served by its registry.

Only Debian's archive is reachable from these machines (no Docker Hub, no ghcr.io), so the
images that pod specs name (busybox, postgres, pgbr, ...) are made here from recipes
(``image_recipes``): a Debian root filesystem made by ``mmdebstrap`` and/or layers of
files the harness writes, plus an image config. This module

* writes an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``) from tar
  layers and an image config; layers the harness writes are deterministic (sorted entries,
  fixed mtimes and owners, gzip without a timestamp);
* caches each image in ``~/.cache/e2e-harness/images/<recipe>-<key>/``, the key hashing
  everything the recipe puts in (Debian suite and packages, hooks, file bytes, config). An
  entry is built in a temporary directory beside it and renamed into place under a per-key
  ``flock``: two runs building the same image build it once, and an entry is always whole.
  A Debian rootfs is cached the same way on its own (``rootfs-<suite>-<key>/``: the gzipped
  layer and its package versions), so images on the same rootfs (postgres and pgbr) share
  one layer, built once. Its key holds the suite, packages, hooks, the archive lines when a
  rootfs names its own (``mirrors``) and the pinned downloads unpacked into it (``unpack``,
  by sha256; fetched by ``e2e_harness.downloads``). Rootfs images record their Debian package versions
  (``packages.json``) so a report can name what ran. Nothing expires: a rootfs keeps the
  package versions it was built with until its directory is removed;
* pushes a layout to a registry with ``skopeo`` (plain http) and returns the manifest digest,
  and names references as that registry serves them (``normalise``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import platform
import shlex
import shutil
import tarfile
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import requests

from ... import progress
from ...commands import CommandError, run
from ...gomodules import cache_root
from ...downloads import DownloadError, Pinned, fetch, verify
from ...locks import exclusive
from ...waiting import Observation, poll_until

log = logging.getLogger("e2e_harness.local.images")

# Bump when the writer changes what it puts in a layout: every cached image is then rebuilt.
LAYOUT_FORMAT = 1
BUILD_TIMEOUT = 1800        # mmdebstrap of a rootfs with PostgreSQL: about a minute or two on 2 cores
PUSH_TIMEOUT = 600
LAYER_MTIME = 0             # mtime of every entry of a layer the harness writes
GZIP_LEVEL = 6
MMDEBSTRAP_HOOKS = Path("/usr/share/mmdebstrap/hooks")
# Like Debian's official "slim" images: no documentation (but the copyrights), manuals or translations.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/lintian/*", "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
)
# Left out of a rootfs layer: the runtime provides /dev, and the host's name and resolver
# (which mmdebstrap copies in for apt) are no part of an image.
ROOTFS_DROPPED = ("etc/resolv.conf", "etc/hostname")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# Registries the node's containerd sends to its own registry (containerd.MIRRORED): their images are
# served under the repository path alone.
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
MIRRORED_HOSTS = (*DOCKER_HUB, "ghcr.io", "registry.k8s.io")
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"   # what `ctr images import` names the image


class ImageError(RuntimeError):
    """An image could not be built or pushed; the message says what to do."""


class NoRecipe(ImageError):
    """No recipe can build the image asked for on this machine."""


# ---------------------------------------------------------------- what an image is made of


@dataclass(frozen=True)
class File:
    """A regular file: ``content`` is its bytes, or a host file read when the image is built."""

    path: str
    content: Union[bytes, Path]
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()    # e.g. security.capability (see file_capability)

    def data(self) -> bytes:
        if isinstance(self.content, bytes):
            return self.content
        try:
            return Path(self.content).read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read {self.content} for /{self.path} of an image: {exc}") from None


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


@dataclass(frozen=True)
class Tree:
    """A host directory copied to ``path``: root-owned, modes 0755/0644 (executables keep 0755),
    symlinks kept as they are."""

    path: str
    source: Path


Entry = Union[File, Dir, Symlink, Tree]


@dataclass(frozen=True)
class Layer:
    """Files the harness adds, as one layer. ``parents`` adds the missing parent directories
    (0755, root): for images from scratch, never over a rootfs (where ``bin`` may be a symlink)."""

    entries: tuple[Entry, ...]
    comment: str
    parents: bool = False


@dataclass(frozen=True)
class Compressed:
    """A gzipped tar layer made before (a cached rootfs), with its diff_id (sha256 of the tar)."""

    path: Path
    diff_id: str


@dataclass(frozen=True)
class Unpacked:
    """A pinned download unpacked into a rootfs after its packages, before its customize hooks: a .tar.gz,
    or (``member``) a .tar.gz inside the downloaded zip (a Python wheel), checked by ``member_sha256``."""

    download: Pinned
    into: str                       # a directory of the rootfs (made if missing); entries owned by root
    member: str = ""
    member_sha256: str = ""
    strip_components: int = 0


@dataclass(frozen=True)
class ArchiveKeyring:
    """The keyring that signs an archive other than Debian's (Ubuntu's), as a file inside a pinned .deb:
    ``member`` of its data, checked by ``member_sha256``; mmdebstrap verifies the archive with it."""

    download: Pinned
    member: str
    member_sha256: str


@dataclass(frozen=True)
class Rootfs:
    """A Debian root filesystem made by ``mmdebstrap --variant=<variant> <suite>``, as the first layer.

    Hooks are shell commands mmdebstrap runs with the rootfs as ``$1`` (as root: ``chroot "$1" ...``):
    ``essential_hooks`` after the Essential packages, before ``packages``; ``customize_hooks`` at the end.
    ``mirrors``: the archive lines mmdebstrap takes after the suite and target (``deb <uri> <suite>
    <components>``), replacing its default (deb.debian.org, the suite's main): e.g. a suite with its
    security updates. ``unpack``: pinned downloads put into the rootfs (``Unpacked``). ``keyring``: the
    archive's signing keys when it is not Debian's (an Ubuntu suite).
    """

    suite: str
    packages: tuple[str, ...] = ()
    variant: str = "minbase"
    essential_hooks: tuple[str, ...] = ()
    customize_hooks: tuple[str, ...] = ()
    slim: bool = True
    mirrors: tuple[str, ...] = ()
    unpack: tuple[Unpacked, ...] = ()
    keyring: ArchiveKeyring | None = None

    def key_inputs(self) -> dict:
        """What shapes the rootfs, for cache keys. Fields added later count only when set, so a rootfs
        without them keeps the key (and the cached image) it had."""
        inputs = asdict(self)
        for added in ("mirrors", "unpack", "keyring"):
            if not inputs[added]:
                del inputs[added]
        return inputs


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config a pod sees."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()                 # "NAME=value"
    user: str = ""
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()       # "5432/tcp"
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def as_oci(self) -> dict:
        config: dict = {}
        if self.env:
            config["Env"] = list(self.env)
        if self.entrypoint is not None:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            config["Cmd"] = list(self.cmd)
        if self.user:
            config["User"] = self.user
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            config["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            config["Volumes"] = {v: {} for v in self.volumes}
        if self.stop_signal:
            config["StopSignal"] = self.stop_signal
        if self.labels:
            config["Labels"] = dict(self.labels)
        return config


@dataclass(frozen=True)
class Recipe:
    """An image: an optional Debian rootfs, harness layers over it, its config, and the references
    (``repository:tag`` in the node's registry, e.g. ``library/busybox:latest``) it serves."""

    name: str
    refs: tuple[str, ...]
    config: ImageConfig
    layers: tuple[Layer, ...] = ()
    rootfs: Rootfs | None = None
    description: str = ""

    def key(self) -> str:
        """12 hex digits of sha256 over everything that shapes the image."""
        return _key(self.inputs())

    def inputs(self) -> dict:
        return {"format": LAYOUT_FORMAT, "name": self.name, "refs": list(self.refs),
                "rootfs": self.rootfs.key_inputs() if self.rootfs else None,
                "layers": [{"comment": layer.comment, "parents": layer.parents,
                            "entries": [_describe(e) for e in _expand(layer)]} for layer in self.layers],
                "config": self.config.as_oci(), "architecture": architecture()}


@dataclass(frozen=True)
class BuiltImage:
    """A recipe's image in the cache."""

    name: str
    entry: Path                    # the cache entry: oci/, image.json, packages.json
    layout_dir: Path               # the OCI image layout
    digest: str                    # its manifest's digest: what the registry serves after push
    refs: tuple[str, ...]
    packages: dict[str, str] = field(default_factory=dict)   # Debian package -> version (rootfs images)
    suite: str = ""                # the Debian suite of its rootfs, if any
    size: int = 0                  # bytes of its compressed blobs (config, layers, manifest)
    build_seconds: float = 0.0     # how long it took to build when it was built
    fresh: bool = False            # built by this call (False: found in the cache)


def file_capability(*capabilities: int) -> tuple[str, bytes]:
    """The ``security.capability`` xattr (VFS_CAP_REVISION_2, effective) granting ``capabilities``
    (numbers, e.g. CAP_NET_BIND_SERVICE = 10): what ``setcap cap_x=+ep`` writes."""
    low = sum(1 << c for c in capabilities if c < 32)
    high = sum(1 << (c - 32) for c in capabilities if c >= 32)
    value = (0x02000001).to_bytes(4, "little") + low.to_bytes(4, "little") + bytes(4) \
        + high.to_bytes(4, "little") + bytes(4)
    return ("security.capability", value)


def architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


# ---------------------------------------------------------------- the OCI image layout


def write_layout(dest: Path, layers: Sequence[Union[Path, Layer, Compressed]], config: ImageConfig, ref: str,
                 history: Sequence[str] = ()) -> tuple[str, int]:
    """Write an OCI image layout of ``layers`` (uncompressed tar files, harness layers, or gzipped
    layers made before) to ``dest``; the index names it ``ref``. Returns the manifest's digest and
    the size of all its blobs."""
    dest.mkdir(parents=True, exist_ok=True)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    descriptors, diff_ids = [], []
    for number, layer in enumerate(layers):
        if isinstance(layer, Compressed):
            diff_id, descriptor = layer.diff_id, _link_blob(layer.path, blobs)
        elif isinstance(layer, Layer):
            tar_path = dest / f".layer-{number}.tar"
            write_layer_tar(layer, tar_path)
            try:
                diff_id, descriptor = _gzip_blob(tar_path, blobs)
            finally:
                tar_path.unlink(missing_ok=True)
        else:
            diff_id, descriptor = _gzip_blob(Path(layer), blobs)
        diff_ids.append(diff_id)
        descriptors.append(descriptor)
    labels = list(history) + [""] * (len(descriptors) - len(history))
    image_config = {"architecture": architecture(), "os": "linux", "config": config.as_oci(),
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                    "history": [{"created_by": text} if text else {} for text in labels]}
    config_descriptor = _json_blob(image_config, OCI_CONFIG, blobs)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor, "layers": descriptors}
    manifest_descriptor = _json_blob(manifest, OCI_MANIFEST, blobs)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**manifest_descriptor, "platform": {"architecture": architecture(), "os": "linux"},
         "annotations": {REF_NAME: ref, CONTAINERD_NAME: qualified(ref)}}]}
    (dest / "index.json").write_bytes(_canonical(index))
    size = sum(d["size"] for d in descriptors) + config_descriptor["size"] + manifest_descriptor["size"]
    return manifest_descriptor["digest"], size


def write_layer_tar(layer: Layer, out: Path) -> None:
    """The layer as an uncompressed tar: entries sorted by path, owned by number, fixed mtime."""
    entries = {e.path.strip("/"): e for e in _expand(layer)}
    if layer.parents:
        for path in list(entries):
            parent = os.path.dirname(path)
            while parent and parent not in entries:
                entries[parent] = Dir(parent)
                parent = os.path.dirname(parent)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            entry = entries[path]
            info = tarfile.TarInfo(path)
            info.mtime = LAYER_MTIME
            info.uname = info.gname = ""
            if isinstance(entry, Symlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                tar.addfile(info)
            elif isinstance(entry, Dir):
                info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, entry.mode, entry.uid, entry.gid
                tar.addfile(info)
            else:
                data = entry.data()
                info.size, info.mode, info.uid, info.gid = len(data), entry.mode, entry.uid, entry.gid
                if entry.xattrs:
                    info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                        for k, v in entry.xattrs}
                tar.addfile(info, io.BytesIO(data))


def layout_manifest(layout_dir: Path) -> tuple[str, dict, dict]:
    """The manifest digest, manifest and config of a single-image layout (for checks and reports)."""
    index = json.loads((layout_dir / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(_blob_path(layout_dir, digest).read_text())
    config = json.loads(_blob_path(layout_dir, manifest["config"]["digest"]).read_text())
    return digest, manifest, config


def _blob_path(layout_dir: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout_dir / "blobs" / algorithm / hexdigest


def _expand(layer: Layer) -> list[Union[File, Dir, Symlink]]:
    """The layer's entries with every Tree replaced by what it holds."""
    out: list[Union[File, Dir, Symlink]] = []
    for entry in layer.entries:
        if not isinstance(entry, Tree):
            out.append(entry)
            continue
        source = Path(entry.source)
        if not source.is_dir():
            raise ImageError(f"cannot add {source} to an image as /{entry.path.strip('/')}: not a directory")
        base = entry.path.strip("/")
        out.append(Dir(base))
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            here = Path(dirpath)
            for name in sorted(dirnames + filenames):
                host = here / name
                inside = f"{base}/{host.relative_to(source)}"
                if host.is_symlink():
                    out.append(Symlink(inside, os.readlink(host)))
                elif host.is_dir():
                    out.append(Dir(inside))
                elif host.is_file():
                    out.append(File(inside, host, 0o755 if os.access(host, os.X_OK) else 0o644))
    return out


def _describe(entry: Union[File, Dir, Symlink]) -> dict:
    if isinstance(entry, File):
        return {"file": entry.path, "mode": entry.mode, "uid": entry.uid, "gid": entry.gid,
                "sha256": hashlib.sha256(entry.data()).hexdigest(),
                "xattrs": {k: v.hex() for k, v in entry.xattrs}}
    if isinstance(entry, Dir):
        return {"dir": entry.path, "mode": entry.mode, "uid": entry.uid, "gid": entry.gid}
    return {"symlink": entry.path, "target": entry.target}


class _HashingWriter:
    """A file wrapper that hashes and counts what is written through it."""

    def __init__(self, raw):
        self.raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _gzip_blob(tar_path: Path, blobs: Path) -> tuple[str, dict]:
    """Gzip a tar into the blob store (no name or time in the gzip header); its diff_id and descriptor."""
    diff = hashlib.sha256()
    incoming = Path(tempfile.mkstemp(prefix=".incoming-", dir=blobs)[1])
    try:
        with open(tar_path, "rb") as source, open(incoming, "wb") as raw:
            hashing = _HashingWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=GZIP_LEVEL) as gz:
                while chunk := source.read(1 << 20):
                    diff.update(chunk)
                    gz.write(chunk)
        digest = hashing.sha256.hexdigest()
        os.replace(incoming, blobs / digest)
    finally:
        incoming.unlink(missing_ok=True)
    return f"sha256:{diff.hexdigest()}", {"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{digest}",
                                           "size": hashing.size}


def _link_blob(path: Path, blobs: Path) -> dict:
    """A gzipped layer put in the blob store as a hard link (a copy across file systems)."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    target = blobs / digest.hexdigest()
    if not target.exists():
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return {"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{digest.hexdigest()}", "size": path.stat().st_size}


def _json_blob(document: dict, media_type: str, blobs: Path) -> dict:
    data = _canonical(document)
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _canonical(document) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def qualified(ref: str) -> str:
    """``library/busybox:latest`` -> ``docker.io/library/busybox:latest`` (a ref naming a host stays)."""
    return ref if _host_of(ref) else f"docker.io/{ref}"


def normalise(image: str) -> str:
    """An image reference as the node's registry serves it: ``busybox``, ``docker.io/library/busybox``
    -> ``library/busybox:latest``; ``ghcr.io/riotkit-org/pgbr:x`` -> ``riotkit-org/pgbr:x``. The mirrored
    hosts go (containerd sends them all to the one registry); any other host stays, so it matches
    nothing published."""
    host = _host_of(image)
    rest = image[len(host) + 1:] if host else image
    if host in MIRRORED_HOSTS:
        if host in DOCKER_HUB and "/" not in rest:
            rest = f"library/{rest}"
        host = ""
    elif not host and "/" not in rest:
        rest = f"library/{rest}"
    name = rest.split("@", 1)[0]
    if "@" not in rest and ":" not in name.rsplit("/", 1)[-1]:
        rest += ":latest"
    return f"{host}/{rest}" if host else rest


def _host_of(ref: str) -> str:
    first, sep, _ = ref.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else ""


def split_ref(ref: str) -> tuple[str, str]:
    """``riotkit-org/pgbr:1.0.0-rc1-pg15`` -> (``riotkit-org/pgbr``, ``1.0.0-rc1-pg15``)."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not repository:
        raise ImageError(f"image reference {ref!r} has no tag; expected repository:tag")
    return repository, tag


# ---------------------------------------------------------------- building, cached


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/e2e-harness/images``, else ``~/.cache/e2e-harness/images``."""
    return cache_root() / "images"


def build(recipe: Recipe, cache_dir: Path | None = None) -> BuiltImage:
    """The recipe's image from the cache, built first (once, whoever else builds it too) if missing."""
    images = cache_dir or default_cache_dir()
    inputs = recipe.inputs()
    key = _key(inputs)
    entry, fresh = _cached(images, recipe.name, key, lambda out: _build_into(recipe, inputs, key, out, images))
    return _load(entry, fresh)


def _key(inputs: dict) -> str:
    return hashlib.sha256(_canonical(inputs)).hexdigest()[:12]


def _cached(images: Path, name: str, key: str, make: Callable[[Path], None]) -> tuple[Path, bool]:
    """``images/<name>-<key>``, made by ``make`` into a temporary directory beside it and renamed into
    place under an exclusive lock of the key; (its path, whether this call made it)."""
    entry = images / f"{name}-{key}"
    if entry.is_dir():
        return entry, False
    images.mkdir(parents=True, exist_ok=True)
    with exclusive(images / f".{name}-{key}.lock", what=name, timeout=BUILD_TIMEOUT, say=progress.say,
                   holder="another run that is building it", fail=ImageError):
        if entry.is_dir():   # another run made it while we waited
            return entry, False
        for stale in images.glob(f".{name}-{key}.*.partial"):   # left by a build that died
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{name}-{key}.", suffix=".partial", dir=images))
        os.chmod(partial, 0o755)   # mkdtemp's 0700 would become the entry's
        try:
            make(partial)
            try:
                os.rename(partial, entry)
            except OSError:
                if not entry.is_dir():   # not "a complete copy is there already": a real failure
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return entry, True


def _build_into(recipe: Recipe, inputs: dict, key: str, out: Path, images: Path) -> None:
    progress.say(f"building image {recipe.name} (once; cached in {images / f'{recipe.name}-{key}'})")
    started = time.monotonic()
    with progress.step(f"building image {recipe.name}"):
        layers: list[Union[Path, Layer, Compressed]] = []
        history: list[str] = []
        if recipe.rootfs is not None:
            rootfs_entry, _ = _cached(images, f"rootfs-{recipe.rootfs.suite}", _key(_rootfs_inputs(recipe.rootfs)),
                                      lambda partial: _build_rootfs(recipe.rootfs, partial, recipe.name))
            layer = json.loads((rootfs_entry / "layer.json").read_text())
            layers.append(Compressed(rootfs_entry / "layer.tar.gz", layer["diff_id"]))
            history.append(layer["created_by"])
            shutil.copyfile(rootfs_entry / "packages.json", out / "packages.json")
        layers += recipe.layers
        history += [f"e2e-harness: {layer.comment}" for layer in recipe.layers]
        ref = recipe.refs[0] if recipe.refs else f"e2e-harness/{recipe.name}:{key}"
        digest, size = write_layout(out / "oci", layers, recipe.config, ref, history)
    record = {"name": recipe.name, "key": key, "refs": list(recipe.refs), "digest": digest, "size": size,
              "description": recipe.description, "build_seconds": round(time.monotonic() - started, 1),
              "inputs": inputs}
    (out / "image.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def _rootfs_inputs(rootfs: Rootfs) -> dict:
    return {"format": LAYOUT_FORMAT, "rootfs": rootfs.key_inputs(), "architecture": architecture(),
            "slim": list(SLIM_DPKG_OPTIONS) if rootfs.slim else [], "dropped": list(ROOTFS_DROPPED)}


def _build_rootfs(rootfs: Rootfs, out: Path, for_image: str) -> None:
    """A rootfs layer (gzipped tar, its diff_id) and its package versions, shared by the images made on it."""
    raw = out / "rootfs.raw.tar"
    scratch = out / "unpack"
    try:
        # apt verifies signatures as its unprivileged _apt user, who cannot read the cache under /root
        with tempfile.TemporaryDirectory(prefix="e2e-harness-keyring-") as readable:
            os.chmod(readable, 0o755)
            _mmdebstrap(rootfs, raw, for_image, _unpack_hooks(rootfs, scratch, for_image),
                        _keyring(rootfs, scratch, for_image, Path(readable)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tar = out / "rootfs.tar"
    packages = dpkg_versions(_rootfs_layer(raw, tar))
    raw.unlink()
    with progress.step(f"image {for_image}: compressing its root filesystem ({tar.stat().st_size / 1e6:.0f} MB)"):
        diff_id, descriptor = _gzip_blob(tar, out)
    tar.unlink()
    os.rename(out / descriptor["digest"].split(":", 1)[1], out / "layer.tar.gz")
    (out / "layer.json").write_text(json.dumps({"diff_id": diff_id, **descriptor,
                                                "created_by": mmdebstrap_summary(rootfs)}, indent=1) + "\n")
    (out / "packages.json").write_text(json.dumps({"suite": rootfs.suite, "packages": packages},
                                                  indent=1, sort_keys=True) + "\n")


def _load(entry: Path, fresh: bool) -> BuiltImage:
    try:
        record = json.loads((entry / "image.json").read_text())
        packages = json.loads((entry / "packages.json").read_text()) if (entry / "packages.json").exists() else {}
    except (OSError, ValueError) as exc:
        raise ImageError(f"cached image {entry} is unreadable ({exc}); remove that directory to rebuild it") from None
    return BuiltImage(record["name"], entry, entry / "oci", record["digest"], tuple(record["refs"]),
                      packages.get("packages", {}), packages.get("suite", ""), record["size"],
                      record["build_seconds"], fresh)


def mmdebstrap_summary(rootfs: Rootfs) -> str:
    added = f" + {', '.join(rootfs.packages)}" if rootfs.packages else ""
    mirrors = f" from {'; '.join(rootfs.mirrors)}" if rootfs.mirrors else ""
    unpacked = "".join(f"; {u.download.name}{f':{u.member}' if u.member else ''} unpacked into /{u.into.strip('/')}"
                       for u in rootfs.unpack)
    return f"mmdebstrap --variant={rootfs.variant} {rootfs.suite}{added}{mirrors}{unpacked}"


def _unpack_hooks(rootfs: Rootfs, scratch: Path, name: str) -> list[str]:
    """The rootfs's pinned downloads fetched (cached, verified) and a customize hook unpacking each."""
    hooks = []
    for number, unpacked in enumerate(rootfs.unpack):
        try:
            archive = fetch(unpacked.download)
            if unpacked.member:
                scratch.mkdir(parents=True, exist_ok=True)
                archive = _zip_member(archive, unpacked.member, scratch / f"{number}.tar.gz")
                if unpacked.member_sha256:
                    verify(archive, unpacked.member_sha256, f"{unpacked.member} of {unpacked.download.url}")
        except DownloadError as exc:
            raise ImageError(f"image {name}: {exc}") from None
        into = '"$1/' + unpacked.into.strip("/") + '"'
        hooks.append(f"mkdir -p {into} && tar -xzf {shlex.quote(str(archive))} --no-same-owner "
                     f"--strip-components={unpacked.strip_components} -C {into}")
    return hooks


def _keyring(rootfs: Rootfs, scratch: Path, name: str, readable: Path) -> Path | None:
    """The rootfs's archive keyring taken out of its pinned .deb (fetched, cached, verified) in ``scratch``, copied
    into ``readable`` (a directory every user can read)."""
    if rootfs.keyring is None:
        return None
    keyring = rootfs.keyring
    try:
        deb = fetch(keyring.download)
        scratch.mkdir(parents=True, exist_ok=True)
        run(["dpkg-deb", "--extract", deb, scratch / "keyring"], timeout=60, what=f"unpacking {deb}")
        out = scratch / "keyring" / keyring.member.lstrip("/")
        if not out.is_file():
            raise DownloadError(f"{deb} holds no file {keyring.member}")
        verify(out, keyring.member_sha256, f"{keyring.member} of {keyring.download.url}")
        out = Path(shutil.copyfile(out, readable / out.name))
        out.chmod(0o644)
    except (DownloadError, CommandError) as exc:
        raise ImageError(f"image {name}: the archive keyring {keyring.member} of {keyring.download.url}: {exc}") \
            from None
    return out


def _zip_member(archive: Path, member: str, out: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as source, open(out, "wb") as dest:
            shutil.copyfileobj(source, dest, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise DownloadError(f"{archive}: no {member} in it ({exc})") from None
    return out


def _mmdebstrap(rootfs: Rootfs, out: Path, name: str, first_customize_hooks: Sequence[str] = (),
                keyring: Path | None = None) -> None:
    if shutil.which("mmdebstrap") is None:
        raise ImageError(f"image {name} needs a Debian root filesystem, made with mmdebstrap, which is not "
                         "installed; install it: apt-get install mmdebstrap")
    args: list[str] = ["mmdebstrap", f"--variant={rootfs.variant}", "--format=tar"]
    if keyring is not None:   # before --hook-dir: the merged-usr setup hook's apt sees only the options before it
        args.append(f"--keyring={keyring}")
    # merged /usr where the suite has it (bookworm), as Debian's own images; and no usrmerge (perl) package.
    if (MMDEBSTRAP_HOOKS / "maybe-merged-usr").is_dir():
        args.append(f"--hook-dir={MMDEBSTRAP_HOOKS / 'maybe-merged-usr'}")
    if rootfs.packages:
        args.append(f"--include={','.join(rootfs.packages)}")
    if rootfs.slim:
        args += [f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS]
    args += [f"--essential-hook={hook}" for hook in rootfs.essential_hooks]
    args += [f"--customize-hook={hook}" for hook in (*first_customize_hooks, *rootfs.customize_hooks)]
    args += [rootfs.suite, str(out), *rootfs.mirrors]
    try:
        with progress.step(f"image {name}: {mmdebstrap_summary(rootfs)}"):
            run(args, timeout=BUILD_TIMEOUT, what=f"building the root filesystem of image {name}")
    except CommandError as exc:
        raise ImageError(f"{exc}\nmmdebstrap needs root (or user namespaces) and deb.debian.org") from None


def _rootfs_layer(raw: Path, out: Path) -> bytes:
    """Copy mmdebstrap's tar without /dev's nodes, the host's resolver and name; return dpkg's status."""
    status = b""
    with tarfile.open(raw, "r|") as source, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dest:
        for member in source:
            name = member.name.removeprefix("./").rstrip("/")
            if name.startswith("dev/") or name in ROOTFS_DROPPED:
                continue
            if member.isreg():
                data = source.extractfile(member).read()
                if name == "var/lib/dpkg/status":
                    status = data
                dest.addfile(member, io.BytesIO(data))
            else:
                dest.addfile(member)
    return status


def dpkg_versions(status: bytes) -> dict[str, str]:
    """Installed package -> version, from a dpkg status file."""
    versions = {}
    for paragraph in status.decode(errors="replace").split("\n\n"):
        fields = {}
        for line in paragraph.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            versions[fields["Package"]] = fields.get("Version", "")
    return dict(sorted(versions.items()))


# ---------------------------------------------------------------- the registry


def registry_config(storage_dir: Path, address: str) -> str:
    """A config for Debian's ``docker-registry serve``: ``address`` (host:port), files in
    ``storage_dir``, no auth, no TLS (the node's containerd pulls with plain http)."""
    return (f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(storage_dir))}\n"
            f"  delete:\n    enabled: true\n"
            f"http:\n  addr: {json.dumps(address)}\n")


def _registry_state(registry: str) -> Observation:
    try:
        response = requests.get(f"http://{registry}/v2/", timeout=5)
    except requests.RequestException as exc:
        return Observation(False, f"nothing answers at http://{registry}/v2/ ({type(exc).__name__})")
    if response.status_code in (200, 401):
        return Observation(True, f"HTTP {response.status_code}")
    return Observation(False, f"http://{registry}/v2/ answered HTTP {response.status_code}")


def wait_for_registry(registry: str, timeout: float = 30, alive: Callable[[], None] | None = None) -> None:
    """Until the registry at ``registry`` (host:port) answers its API; ``alive`` raises if its process died."""
    def check() -> Observation:
        if alive is not None:
            alive()
        return _registry_state(registry)

    poll_until(check, what=f"the image registry at {registry}", timeout=timeout, interval=0.2)


def push(layout_dir: Path, registry: str, repository: str, tag: str) -> str:
    """Push the layout's image to ``registry`` (host:port, plain http) as ``repository:tag``;
    the manifest digest the registry serves (the layout's own: skopeo preserves digests)."""
    state = _registry_state(registry)
    if not state.done:
        raise ImageError(f"cannot push {repository}:{tag}: the image registry at {registry} is not reachable "
                         f"({state.state}); start it (docker-registry serve <config>) or check the address")
    if shutil.which("skopeo") is None:
        raise ImageError("pushing images needs skopeo; install it: apt-get install skopeo")
    destination = f"docker://{registry}/{repository}:{tag}"
    with tempfile.TemporaryDirectory(prefix="e2e-push-") as scratch:
        digest_file = Path(scratch) / "digest"
        try:
            run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
                 "--digestfile", digest_file, f"oci:{layout_dir}", destination],
                timeout=PUSH_TIMEOUT, what=f"pushing image {layout_dir} to {destination}")
        except CommandError as exc:
            raise ImageError(str(exc)) from None
        return digest_file.read_text().strip()


def publish(recipes: Iterable[Recipe], registry: str, cache_dir: Path | None = None,
            say: Callable[[str], None] = progress.say) -> dict[str, str]:
    """Build what the cache lacks, and push every recipe's image under each of its refs:
    ``{ref: manifest digest}``."""
    built = [build(recipe, cache_dir) for recipe in recipes]
    digests: dict[str, str] = {}
    with progress.step(f"pushing {sum(len(b.refs) for b in built)} image references to {registry}"):
        for image in built:
            for ref in image.refs:
                repository, tag = split_ref(ref)
                digests[ref] = push(image.layout_dir, registry, repository, tag)
            say(f"image {image.name}: {', '.join(image.refs)} ({image.size / 1e6:.1f} MB, {image.digest[:19]})")
    return digests
