"""Phase lines: a console that went away must not stop the run (its teardown writes lines too)."""

from __future__ import annotations

import threading

from e2e_harness import progress


def test_a_closed_console_does_not_stop_a_step_or_its_teardown():
    written, ran = [], []

    def broken_pipe(line: str) -> None:
        written.append(line)
        raise BrokenPipeError(32, "Broken pipe")

    before = (progress._write, progress._mask, progress._started)
    progress.configure(broken_pipe, lambda text: text)
    try:
        with progress.step("backend local: stopping"):
            ran.append("stop")
        progress.detail("a command's output")
    finally:
        progress._write, progress._mask, progress._started = before
    assert ran == ["stop"], "the step's body did not run because writing its announcement failed"
    assert any("backend local: stopping ..." in line for line in written)


def test_a_signal_handler_that_says_something_while_the_main_thread_is_writing_does_not_deadlock(monkeypatch):
    """A handler runs in the main thread between two bytecodes, possibly inside say(): here the first write
    calls say() again, as interrupts.deferred's handler does when a second SIGINT lands mid-line."""
    written: list[str] = []

    def write(line: str) -> None:
        if not written:
            written.append("(handler)")
            progress.say("SIGINT received again")   # what the handler says, on the same thread
        written.append(line)

    monkeypatch.setattr(progress, "_write", write)
    speaker = threading.Thread(target=progress.say, args=("backend local: stopping ...",), daemon=True)
    speaker.start()
    speaker.join(timeout=10)
    assert not speaker.is_alive(), "say() deadlocked on its own lock when re-entered from the same thread"
    assert [line.rsplit("] ", 1)[-1] for line in written[1:]] == ["SIGINT received again", "backend local: stopping ..."]
