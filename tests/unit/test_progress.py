"""Phase lines: a console that went away must not stop the run (its teardown writes lines too)."""

from __future__ import annotations

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
