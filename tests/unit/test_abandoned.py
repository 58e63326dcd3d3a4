"""Directories of a killed run are removed by the next run, and only those (e2e_harness/abandoned.py).

The end-to-end case (a run SIGKILLed while its databases start, then the next run) is in
test_interrupts.py; these cases pin down whose directory counts as abandoned.
"""

from __future__ import annotations

import os
import subprocess
import sys

from e2e_harness import abandoned

from .conftest import PROJECT_DIR


def _claimed_by_a_process_that_exited(directory) -> int:
    directory.mkdir()
    child = subprocess.run([sys.executable, "-c", "import os, sys; from pathlib import Path; "
                            "from e2e_harness.abandoned import claim; claim(Path(sys.argv[1])); print(os.getpid())",
                            str(directory)], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_a_directory_whose_owner_is_gone_is_removed_and_named(tmp_path):
    left = tmp_path / "build" / "local" / "20261124-010203-abcd"
    left.parent.mkdir(parents=True)
    pid = _claimed_by_a_process_that_exited(left)
    (left / "pki").mkdir()
    (left / "pki" / "ca.key").write_text("private")
    said = []

    removed = abandoned.sweep(abandoned.candidates(tmp_path / "build", tmp_path / "tmp"), say=said.append)

    assert removed == [left] and not left.exists()
    assert said == [f"removed {left}, left by a run that was killed (pid {pid} is no longer running)"]


def test_a_live_owner_an_unowned_directory_and_a_symlink_are_kept(tmp_path):
    temp = tmp_path / "tmp"
    live, unowned = temp / "e2e-server-postgres-live", temp / "e2e-kept-cluster"
    for directory in (live, unowned):
        directory.mkdir(parents=True)
    abandoned.claim(live)
    _claimed_by_a_process_that_exited(tmp_path / "target-of-link")
    (temp / "e2e-link").symlink_to(tmp_path / "target-of-link")
    said = []

    removed = abandoned.sweep(abandoned.candidates(tmp_path / "build", temp), say=said.append)

    assert removed == [] and said == []
    assert live.is_dir() and unowned.is_dir() and (tmp_path / "target-of-link").is_dir()


def test_a_reused_pid_does_not_count_as_the_owner(tmp_path):
    directory = tmp_path / "tmp" / "e2e-subject-mariadb-x"
    directory.mkdir(parents=True)
    (directory / abandoned.OWNER_FILE).write_text(f"{os.getpid()} 1\n")   # this pid, but started at another time

    assert abandoned.owner_gone(directory) == f"pid {os.getpid()} is now another process"
    assert abandoned.sweep([directory], say=lambda line: None) == [directory] and not directory.exists()


def test_an_unreadable_owner_file_leaves_the_directory_alone(tmp_path):
    directory = tmp_path / "e2e-odd"
    directory.mkdir()
    (directory / abandoned.OWNER_FILE).write_text("not a pid\n")

    assert abandoned.owner_gone(directory) is None
    assert abandoned.sweep([directory], say=lambda line: None) == [] and directory.is_dir()
