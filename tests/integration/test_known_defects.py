"""The cited cause of the release's intermittent upload defect is still in the pinned server's source
(e2e_harness/known-defects.yaml; the matching of symptoms and the attempts: tests/unit/test_known_defects.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import pinned_source


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
