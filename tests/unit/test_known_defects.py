"""The intermittent defects of the pinned release: matched only by their exact symptom, and their
cited cause still in the pinned server's source (fixtures/known-defects.yaml)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from e2e_harness.known_defects import intermittent_match, load
from e2e_harness.release import load_release

from .conftest import PROJECT_DIR, pinned_source

RELEASE = load_release(PROJECT_DIR / "release.env")
# What backup-maker logs when the server refuses an upload (from a soak run's failed Job, trimmed)
REFUSED = ('level=error msg="Status: 500 Internal Server Error, Out: {\\n    \\"data\\": {},\\n    \\"error\\": '
           '\\"cannot upload version. cannot upload file, cannot copy stream, error: {}\\"')


@pytest.mark.parametrize(("message", "defect"), [
    ("first chunk of uploaded data does not contain a valid GPG header", "gpg-header-split-across-chunks"),
    ("end of stream does not contain a valid GPG footer, suspecting a data corruption",
     "gpg-footer-split-across-chunks"),
])
def test_an_upload_refused_for_a_split_armor_line_is_a_known_intermittent_defect(message, defect):
    found = intermittent_match(load(), RELEASE, REFUSED.replace("{}", message))
    assert found is not None and found.id == defect and found.attempts > 1


def test_other_failures_and_other_pins_are_not_retried():
    defects = load()
    assert intermittent_match(defects, RELEASE, REFUSED.replace("{}", "filesize reached allowed limit")) is None
    other_server = replace(RELEASE, values={**RELEASE.values, "SERVER_VERSION": "v4.2.0"})
    footer = REFUSED.replace("{}", "end of stream does not contain a valid GPG footer")
    assert intermittent_match(defects, other_server, footer) is None


@pytest.fixture(scope="module")
def server_source(tmp_path_factory) -> Path:
    return pinned_source(tmp_path_factory.mktemp("build"), "backup-repository")


@pytest.mark.parametrize(("path", "line", "text"), [
    ("pkg/storage/validation.go", 57, 'bytes.Contains(buff, []byte("-----BEGIN PGP MESSAGE"))'),
    ("pkg/storage/validation.go", 65, '[]byte("-----END PGP MESSAGE")'),
    ("pkg/storage/io.go", 60, "n, err := inputStream.Read(buff)"),
    ("pkg/storage/io.go", 84, "previousBuff = buff[:n]"),
])
def test_the_cited_server_lines_hold_the_cause(server_source, path, line, text):
    lines = (server_source / path).read_text().splitlines()
    assert text in lines[line - 1], f"{path}:{line} is now {lines[line - 1].strip()!r}; update the defect's cause"
