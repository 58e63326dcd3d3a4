from pathlib import Path

import pytest

from e2e_harness.release import COMPONENT_KEYS, Pin, ReleaseError, load_release

from .conftest import PROJECT_DIR

VALID = """\
# comment
SERVER_VERSION=v4.1.0-rc1
CONTROLLER_VERSION=v0.1.3

BACKUP_MAKER_VERSION=v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8
PGBR_VERSION=1.0.0-rc1
KUBERNETES_VERSION=v1.34.2
ETCD_VERSION=v3.5.21
COREDNS_VERSION=v1.12.1
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30
K3S_VERSION=v1.31.5-k3s1
POSTGRES_VERSION=15
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release.env"
    path.write_text(text)
    return path


def test_valid_file_loads_with_origins(tmp_path):
    path = write(tmp_path, VALID)
    release = load_release(path, environ={})
    assert release["SERVER_VERSION"] == "v4.1.0-rc1"
    assert release.origins["BACKUP_MAKER_VERSION"] == f"{path}:5"  # blank line 4 counted


def test_project_release_env_is_valid():
    release = load_release(PROJECT_DIR / "release.env", environ={})
    for key in COMPONENT_KEYS:
        assert release.pin(key).kind != "branch", f"{key} must pin a fixed revision for a release"


def test_environment_overrides_file(tmp_path):
    release = load_release(write(tmp_path, VALID), environ={"SERVER_VERSION": "v4.0.0", "UNRELATED": "x"})
    assert release["SERVER_VERSION"] == "v4.0.0"
    assert "environment variable SERVER_VERSION" in release.origins["SERVER_VERSION"]


@pytest.mark.parametrize("text, fragments", [
    (VALID.replace("PGBR_VERSION=1.0.0-rc1\n", ""), ["missing key", "PGBR_VERSION"]),
    (VALID + "SEVRER_VERSION=v1.0.0\n", [":13:", "unknown key SEVRER_VERSION"]),
    (VALID.replace("CONTROLLER_VERSION=v0.1.3", "CONTROLLER_VERSION="), [":3:", "CONTROLLER_VERSION is empty"]),
    (VALID.replace("SERVER_VERSION=v4.1.0-rc1", "SERVER_VERSION=four point one"),
     [":2:", "SERVER_VERSION", "malformed", "'four point one'", "expected a release tag"]),
    (VALID.replace("KUBERNETES_VERSION=v1.34.2", "KUBERNETES_VERSION=1.34"),
     [":7:", "KUBERNETES_VERSION", "v1.34.2"]),
    (VALID + "SERVER_VERSION=v4.0.0\n", [":13:", "given twice", ":2"]),
    (VALID + "this is not an assignment\n", [":13:", "cannot parse"]),
])
def test_bad_release_env_names_file_line_and_key(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ReleaseError) as err:
        load_release(path, environ={})
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_bad_override_names_the_variable(tmp_path):
    with pytest.raises(ReleaseError, match="environment variable PGBR_VERSION.*malformed"):
        load_release(write(tmp_path, VALID), environ={"PGBR_VERSION": "main;rm -rf /"})


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ReleaseError, match="file not found.*--release-env"):
        load_release(tmp_path / "nope.env", environ={})


def test_release_env_that_is_a_directory_or_unreadable_is_a_clear_error(tmp_path):
    with pytest.raises(ReleaseError, match="is a directory; --release-env takes the release file itself"):
        load_release(tmp_path, environ={})
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReleaseError, match="not UTF-8 text"):
        load_release(binary, environ={})


@pytest.mark.parametrize("raw, kind, ref", [
    ("v4.1.0-rc1", "tag", "v4.1.0-rc1"),
    ("1.0.0-rc1", "tag", "1.0.0-rc1"),
    ("v0.1", "tag", "v0.1"),
    ("v1.0.0-rc1.0.20230318231040-8c7f6c4ad5e8", "pseudo-version", "8c7f6c4ad5e8"),
    ("v0.0.0-20231103064951-d14604612a9d", "pseudo-version", "d14604612a9d"),
    ("6f58a44f544cb1d2fe6b0d857a71f51ba687173c", "commit", "6f58a44f544cb1d2fe6b0d857a71f51ba687173c"),
    ("branch:main", "branch", "main"),
])
def test_pin_kinds_map_to_git_refs(raw, kind, ref):
    pin = Pin(raw)
    assert (pin.kind, pin.git_ref) == (kind, ref)
