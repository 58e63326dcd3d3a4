"""The cited causes of the release's defects are still in the pinned server's and controller's sources
(e2e_harness/known-defects.yaml; the matching of symptoms and the attempts: tests/unit/test_known_defects.py;
backup-maker's template lines: tests/integration/test_template_matrix.py)."""

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


@pytest.fixture(scope="module")
def controller_source(tmp_path_factory) -> Path:
    return pinned_source(tmp_path_factory.mktemp("build"), "backup-maker-controller")


@pytest.mark.parametrize(("path", "lines", "text"), [
    # kubectl-service-account-never-applied: only these kinds of what the chart renders are applied
    ("pkg/bmg/templating.go", (198, 198), "if !found {"),
    ("pkg/domain/resourcetypes.go", (28, 39), '{Group: "", Version: "v1", Kind: "ConfigMap"},'),
    ("pkg/domain/resourcetypes.go", (28, 39), 'Group: "batch", Version: "v1", Kind: "CronJob",'),
    ("pkg/domain/resourcetypes.go", (51, 51), '{Group: "batch", Version: "v1", Kind: "Job"},'),
])
def test_the_cited_controller_lines_hold_the_cause(controller_source, path, lines, text):
    first, last = lines
    cited = (controller_source / path).read_text().splitlines()[first - 1:last]
    assert any(text in line for line in cited), f"{path}:{first}-{last} is now {cited}; update the defect's cause"
    kinds = (controller_source / "pkg/domain/resourcetypes.go").read_text()
    assert "ServiceAccount" not in kinds and "ClusterRole" not in kinds
