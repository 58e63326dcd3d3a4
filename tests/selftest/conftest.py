"""Self-tests that run the e2e suite (or the harness's plugin on a real cluster) as child processes:
sensitivity, interrupts, dead components, two runs at once, the developer loop."""

from .. import PROJECT_DIR  # noqa: F401 - tests import it from here
from ..conftest import control_plane_binaries  # noqa: F401 - tests import it from here
