"""A pytest plugin for self-tests only: at the end of a run, write every secret the masker learned.

Loaded into a child e2e run with ``-p tests.secret_dump_plugin`` and ``E2E_SECRET_DUMP=<file>``
(a file outside the run's artifacts), so the parent test can search the run's files for them.
"""

import json
import os
from pathlib import Path

from e2e_harness.plugin import STATE


def pytest_unconfigure(config) -> None:
    path = os.environ.get("E2E_SECRET_DUMP")
    state = config.stash.get(STATE, None)
    if path and state is not None:
        Path(path).write_text(json.dumps(state.masker.values()))
