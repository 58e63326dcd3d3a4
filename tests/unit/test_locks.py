"""locks.exclusive: a wait for another process's flock is bounded, and its timeout names the holder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from e2e_harness.locks import exclusive


class Refused(RuntimeError):
    pass


def test_a_wait_past_its_bound_names_what_the_holding_process_and_the_lock_file(tmp_path):
    lock = tmp_path / "sub" / "thing.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)", lock],
        stdout=subprocess.PIPE, text=True)
    said: list[str] = []
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(Refused) as refused:
            with exclusive(lock, what="the thing", timeout=1.5, say=said.append, holder="another build",
                           fail=Refused):
                pytest.fail("took a lock another process holds")
    finally:
        holder.kill()
        holder.wait()
    assert said == [f"the thing: waiting for another build ({lock})"]
    message = str(refused.value)
    assert message.startswith("timed out after 2s waiting for the thing; last state seen: another build "
                              f"(pid {holder.pid}: {sys.executable} -c import fcntl")
    assert message.endswith(f"holds the lock; look at: {lock}")
    with exclusive(lock, what="the thing", timeout=1, say=said.append):   # the holder is gone: at once
        assert len(said) == 1
