"""Interrupts (Ctrl-C is SIGINT, a CI cancel is SIGTERM) where stopping half-way leaves things behind.

An interrupt normally raises KeyboardInterrupt wherever the harness is, and the fixtures
tear down what they started. The teardown itself must not be cut short, or it leaves the
run's state directory (etcd data, certificates, pods' secret volumes) and the databases'
data directories behind:

* ``deferred(what)`` holds SIGINT and SIGTERM back while ``what`` runs (stopping the
  backend), says so, and raises KeyboardInterrupt once it is done, so the run still stops
  (and says it was interrupted during ``what``). Enter it before announcing the step
  (``with deferred(what), progress.step(what):``): a signal may follow the announcement
  at once;
* ``hold_during_teardown()``, called once a run has been interrupted, makes every further
  SIGINT or SIGTERM only say that the teardown is still going (SIGKILL ends the harness at
  once; its services die with it through their process group's watchdog); a ``deferred``
  block in that teardown does the same and raises nothing more.

Only the main thread receives signals in Python; elsewhere both do nothing.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from . import progress

SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORCE = "SIGKILL stops the harness at once (its services die with it)"
_interrupted = False   # the run has been interrupted and is tearing down (hold_during_teardown)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def deferred(what: str, say: Callable[[str], None] = progress.say) -> Iterator[None]:
    """Run the block to its end despite SIGINT/SIGTERM; then raise KeyboardInterrupt if one came."""
    if not _main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame) -> None:
        if _interrupted:
            _say_again(signum, say)
            return
        received.append(signum)
        say(f"{signal.Signals(signum).name} received during {what}: finishing it first ({FORCE})")

    previous = {sig: signal.signal(sig, hold) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        progress.note_interrupt(what)
        raise KeyboardInterrupt(f"signal {signal.Signals(received[0]).name}")


def hold_during_teardown(say: Callable[[str], None] = progress.say) -> None:
    """After an interrupt: further SIGINT/SIGTERM only say that the teardown goes on."""
    global _interrupted
    _interrupted = True
    if not _main_thread():
        return
    for sig in SIGNALS:
        signal.signal(sig, lambda signum, frame: _say_again(signum, say))


def _say_again(signum: int, say: Callable[[str], None]) -> None:
    say(f"{signal.Signals(signum).name} received again: still tearing down what the run started ({FORCE})")
