r"""What ``flyautoscaler simulate`` prints while a run goes: rows and progress.

:class:`LiveView` gets each tick's row as the run produces it. It prints the
row when the pass did something (created, destroyed, started or stopped a
Machine) or something failed, or every row when verbose; and, once the run
has taken :data:`PROGRESS_AFTER` seconds of real time, a progress line: on a
terminal one line rewritten in place (``\r``), in a pipe or a log a line at
each tenth of the run. Quiet, it prints nothing. Real time comes from an
injected clock, so tests need not wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TextIO

from attrs import define, field

from flyautoscaler.cli.simulate._report import TickRow, format_clock, format_seconds

__all__ = ["PROGRESS_AFTER", "LiveView"]

#: Real seconds a run takes before it shows its progress.
PROGRESS_AFTER: Final = 2.0
#: Real seconds between two redraws of the progress line on a terminal.
REDRAW_EVERY: Final = 0.2
#: In a pipe, a progress line each time this fraction of the ticks is done.
PIPE_STEP: Final = 0.1


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


@define
class LiveView:
    """The rows and the progress of one policy's run, on *stdout*.

    Attributes:
        stdout: Where to print.
        total: Ticks of the run.
        tick: Simulated seconds per tick.
        header: The table's header line, printed before its first row.
        line: Formats a row of the table.
        quiet: Print nothing.
        verbose: Print every row, not only those of passes that did
            something or failed.
        label: Names the policy in the progress line (when several run).
        clock: Real seconds, for the progress line.
    """

    stdout: TextIO
    total: int
    tick: float
    header: str
    line: Callable[[TickRow], str]
    quiet: bool = False
    verbose: bool = False
    label: str = ""
    clock: Callable[[], float] = time.monotonic
    _began: float = field(init=False, default=0.0)
    _done: int = field(init=False, default=0)
    _shown: int = field(init=False, default=0)
    _drawn: str = field(init=False, default="")  # the progress text on screen
    _last_draw: float = field(init=False, default=-float("inf"))
    _next_step: int = field(init=False, default=1)  # in a pipe, in tenths
    _terminal: bool = field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._began = self.clock()
        self._terminal = _is_terminal(self.stdout)

    def show(self, row: TickRow) -> None:
        """Take the next tick's row: print it if it is one to show; progress."""
        self._done += 1
        if self.quiet:
            return
        if self.verbose or row.eventful:
            self._erase()
            if not self._shown:
                print(self.header, file=self.stdout)
            self._shown += 1
            print(self.line(row), file=self.stdout, flush=True)
        self._progress(row)

    def finish(self) -> None:
        """Clear the progress line and say which rows were shown."""
        if self.quiet:
            return
        self._erase()
        if self.verbose:
            return
        if not self._shown:
            print(
                "  No pass created, destroyed, started or stopped a Machine, and "
                "none failed (--verbose shows every pass).",
                file=self.stdout,
            )
        elif self._shown < self._done:
            print(
                f"  These are the {self._shown} of {self._done} passes that "
                "created, destroyed, started or stopped Machines or failed; "
                "--verbose shows every pass.",
                file=self.stdout,
            )
        self.stdout.flush()

    def _text(self, row: TickRow) -> str:
        who = f"{self.label}: " if self.label else ""
        percent = 100 * self._done // self.total
        elapsed = self.clock() - self._began
        return (
            f"  {who}simulating: {self._done:,} of {self.total:,} passes "
            f"({percent}%), {format_clock(row.time + self.tick)} of "
            f"{format_clock(self.total * self.tick)} simulated, "
            f"{format_seconds(round(elapsed))} so far"
        )

    def _progress(self, row: TickRow) -> None:
        now = self.clock()
        if now - self._began < PROGRESS_AFTER or self._done >= self.total:
            return
        if self._terminal:
            if now - self._last_draw < REDRAW_EVERY:
                return
            text = self._text(row)
            pad = " " * max(0, len(self._drawn) - len(text))
            self.stdout.write(f"\r{text}{pad}")
            self.stdout.flush()
            self._drawn, self._last_draw = text, now
            return
        step = int(self._done / self.total / PIPE_STEP)
        if step >= self._next_step:
            print(self._text(row), file=self.stdout, flush=True)
            self._next_step = step + 1

    def _erase(self) -> None:
        """Take the progress line off a terminal (it is redrawn later)."""
        if self._drawn:
            self.stdout.write("\r" + " " * len(self._drawn) + "\r")
            self._drawn = ""
            self._last_draw = -float("inf")
