"""pytest-timeout bounds a test's own call, not the session fixtures' setup.

On a cold machine the first test's setup holds the component builds and the cluster start
(minutes, each bounded by its own timeout); a fresh clone's first `make test` once failed every
test with `Timeout (>900.0s)` because pytest-timeout counted that setup against the first test.
This runs a child pytest with the project's own timeout settings (read from pyproject.toml),
scaled down: a session fixture slower than the per-test timeout must not fail the test, and a
test body slower than it still must.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from .conftest import PROJECT_DIR

CONFTEST = '''
import time
import pytest

@pytest.fixture(scope="session")
def slow_setup():
    time.sleep(3)   # stands in for minutes of builds: the work itself, not a wait for something
    return "ready"
'''

TESTS = '''
import time

def test_uses_the_slow_session_fixture(slow_setup):
    assert slow_setup == "ready"

def test_a_slow_body_still_times_out():
    time.sleep(3)
'''


def test_session_setup_is_not_counted_against_the_first_tests_timeout(tmp_path):
    options = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    timeout_keys = {key: value for key, value in options.items() if key.startswith("timeout")}
    assert timeout_keys.get("timeout"), "pyproject.toml sets no per-test timeout"
    ini = "\n".join(f"{key} = {str(value).lower() if isinstance(value, bool) else value}"
                    for key, value in {**timeout_keys, "timeout": 1}.items())
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_child.py").write_text(TESTS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert "PASSED test_child.py::test_uses_the_slow_session_fixture" in output, output
    assert "FAILED test_child.py::test_a_slow_body_still_times_out" in output and "Timeout" in output, output
