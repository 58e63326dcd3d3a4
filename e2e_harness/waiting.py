"""Every wait of the harness goes through here: bounded, and self-explaining on timeout.

A timeout names what was awaited, the last state seen and where to look, so that
a red run can be read without rerunning it. Polling (for things without a watch,
such as an HTTP readiness endpoint) is done by tenacity, never by sleeping.
"""

from __future__ import annotations

import time
from typing import Callable

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed



class WaitTimeout(TimeoutError):
    """A bounded wait ran out."""

    def __init__(self, what: str, timeout: float, last_state: str, where: str = ""):
        self.what, self.timeout, self.last_state, self.where = what, timeout, last_state, where
        message = f"timed out after {timeout:.0f}s waiting for {what}; last state seen: {last_state or 'nothing'}"
        if where:
            message += f"; look at: {where}"
        super().__init__(message)


class Observation:
    """What a check saw: whether the wait is over, and a short description of the state."""

    __slots__ = ("done", "state", "value")

    def __init__(self, done: bool, state: str, value=None):
        self.done, self.state, self.value = done, state, value


def deadline_clock(timeout: float) -> Callable[[], float]:
    """A function returning the seconds left until ``timeout`` from now (negative after)."""
    deadline = time.monotonic() + timeout
    return lambda: deadline - time.monotonic()


def poll_until(check: Callable[[], Observation], *, what: str, timeout: float,
               interval: float = 0.5, where: str = "") -> Observation:
    """Call ``check`` every ``interval`` seconds until it reports done, at most ``timeout`` s.

    Exceptions raised by ``check`` propagate: a wait must never hide a real failure.
    """
    last: list[Observation] = []

    def observe() -> Observation:
        observation = check()
        last[:] = [observation]
        return observation

    retrying = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval),
                        retry=retry_if_result(lambda o: not o.done), reraise=True)
    try:
        return retrying(observe)
    except RetryError:
        raise WaitTimeout(what, timeout, last[0].state if last else "", where) from None
