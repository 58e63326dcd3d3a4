"""Images for the local node without any tool: the harness's own OCI layouts and their cache key, the
recipes that cannot exist, and how references are normalised (skopeo, umoci, a registry, mmdebstrap and
runc: tests/integration/test_images.py)."""

from __future__ import annotations

import pytest

from e2e_harness.backends.local import image_recipes, images
from e2e_harness.backends.local.images import NoRecipe, normalise


def test_a_second_build_comes_from_the_cache_and_changed_binary_bytes_change_the_key(tmp_path):
    cache = tmp_path / "cache"
    binary = tmp_path / "tool"
    binary.write_bytes(b"#!/bin/sh\necho one\n")
    first = images.build(image_recipes.static(binary, "tool"), cache)
    record = first.entry / "image.json"
    built_at = record.stat().st_mtime_ns
    again = images.build(image_recipes.static(binary, "tool"), cache)
    assert (first.fresh, again.fresh) == (True, False)
    assert again.entry == first.entry and again.digest == first.digest
    assert record.stat().st_mtime_ns == built_at, "the cached image was rebuilt"
    assert first.entry.name.startswith("static-tool-") and len(first.entry.name.rsplit("-", 1)[1]) == 12

    binary.write_bytes(b"#!/bin/sh\necho two\n")
    changed = images.build(image_recipes.static(binary, "tool"), cache)
    assert changed.fresh and changed.entry != first.entry and changed.digest != first.digest
    assert changed.refs != first.refs, "a new binary must be a new tag"


def test_no_recipe_builds_a_postgresql_major_debian_does_not_package(tmp_path):
    with pytest.raises(NoRecipe, match="no image recipe can build PostgreSQL 14"):
        image_recipes.pgbr("14", tmp_path / "pgbr", "1.0.0-rc1")
    with pytest.raises(NoRecipe, match="MariaDB 10.6"):
        image_recipes.mariadb("10.6")


def test_a_rootfs_key_changes_with_its_mirrors_and_downloads_and_is_kept_without_them(tmp_path):
    from e2e_harness.downloads import Pinned
    from e2e_harness.backends.local.images import Rootfs, Unpacked

    plain = Rootfs("bookworm", ("bash",))
    assert "mirrors" not in plain.key_inputs() and "unpack" not in plain.key_inputs()   # as before they existed
    security = Rootfs("bookworm", ("bash",), mirrors=("deb http://deb.debian.org/debian bookworm main",))
    other = Rootfs("bookworm", ("bash",), mirrors=("deb http://deb.debian.org/debian bookworm main contrib",))
    unpacked = Rootfs("bookworm", ("bash",), unpack=(Unpacked(Pinned("https://x.invalid/a.tar.gz", "ab" * 32), "opt"),))
    repinned = Rootfs("bookworm", ("bash",), unpack=(Unpacked(Pinned("https://x.invalid/a.tar.gz", "cd" * 32), "opt"),))
    keys = {images._key(images._rootfs_inputs(rootfs)) for rootfs in (plain, security, other, unpacked, repinned)}
    assert len(keys) == 5
    assert "from deb http://deb.debian.org/debian bookworm main" in images.mmdebstrap_summary(security)


def test_a_pinned_download_whose_bytes_differ_from_the_pin_is_deleted_and_refused(tmp_path):
    import hashlib

    from e2e_harness import downloads

    content = b"PostgreSQL, or so it says\n"
    good = hashlib.sha256(content).hexdigest()
    pinned = downloads.Pinned("https://files.invalid/pg.tar.gz", good, "a test file")
    cached = tmp_path / good[:16] / "pg.tar.gz"
    cached.parent.mkdir()
    cached.write_bytes(content)
    assert downloads.fetch(pinned, tmp_path) == cached   # from the cache, verified: nothing downloaded

    cached.write_bytes(b"something else\n")
    actual = hashlib.sha256(b"something else\n").hexdigest()
    with pytest.raises(downloads.DownloadError, match=f"has sha256 {actual}, expected {good}"):
        downloads.fetch(pinned, tmp_path)
    assert not cached.exists(), "a file that is not the pinned one must not stay in the cache"


def test_references_are_normalised_as_the_node_registry_serves_them():
    assert normalise("busybox") == normalise("docker.io/library/busybox:latest") == "library/busybox:latest"
    assert normalise("docker.io/mariadb:10.11-rc") == "library/mariadb:10.11-rc"
    assert normalise("ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15") == "riotkit-org/pgbr:1.0.0-rc1-pg15"
    assert normalise("registry.k8s.io/coredns/coredns:v1.12.1") == "coredns/coredns:v1.12.1"
    assert normalise("quay.io/some/image:1") == "quay.io/some/image:1"   # not mirrored: matches nothing pushed
