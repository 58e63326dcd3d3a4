import itertools

import pytest

from e2e_harness.waiting import Observation, WaitTimeout, poll_until


def test_poll_until_returns_the_observation_that_ended_the_wait():
    counter = itertools.count()
    result = poll_until(lambda: Observation(next(counter) >= 2, "counting", "value"),
                        what="a counter", timeout=5, interval=0.01)
    assert result.done and result.value == "value"


def test_timeout_names_what_last_state_and_where():
    states = itertools.count()
    with pytest.raises(WaitTimeout) as err:
        poll_until(lambda: Observation(False, f"phase=Pending#{next(states)}"),
                   what="pod p to run", timeout=0.3, interval=0.05, where="kubectl describe pod p")
    message = str(err.value)
    assert "waiting for pod p to run" in message
    assert "last state seen: phase=Pending#" in message
    assert "look at: kubectl describe pod p" in message


def test_errors_of_the_check_are_not_hidden():
    def broken():
        raise ValueError("real failure")
    with pytest.raises(ValueError, match="real failure"):
        poll_until(broken, what="anything", timeout=5, interval=0.01)
