"""The harness's own tests in three tiers (unit, integration, selftest), its e2e scenarios and benchmarks."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def interruptible() -> None:
    """``preexec_fn`` for a child the tests send SIGINT (Ctrl-C) to.

    A test runner started in the background (``nohup``, ``cmd &`` in a script, some CI
    launchers) ignores SIGINT, and its children inherit that: Python then installs no
    KeyboardInterrupt handler and the "Ctrl-C" would prove nothing. The child gets the
    default disposition back, as if started from a terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
