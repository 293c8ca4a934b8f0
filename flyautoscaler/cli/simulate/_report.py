"""What ``flyautoscaler simulate`` writes about a run: its rows, CSV and summary.

Everything here works on the list of :class:`TickRow` a run produced; nothing
here talks to the pool or the server. The chart is drawn in
:mod:`flyautoscaler.cli.simulate._chart`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from attrs import frozen

from flyautoscaler._durations import format_brief as format_seconds

__all__ = [
    "CSV_COLUMNS",
    "TargetReach",
    "TickRow",
    "format_band",
    "format_clock",
    "format_seconds",
    "summarize",
    "write_csv",
]

#: The CSV's columns after ``time`` and the metrics, in order.
CSV_COLUMNS: Final = (
    "min_created",
    "max_created",
    "min_started",
    "max_started",
    "machines",
    "started",
    "starting",
    "creates",
    "destroys",
    "starts",
    "stops",
    "failures",
    "errors",
    "notes",
    "rules",
)
#: A reversal within this many simulated seconds of the previous move is a flap.
FLAP_WINDOW: Final = 120.0
#: Most target changes listed on the terminal (``summary.txt`` lists all).
MAX_LISTED: Final = 8

Band = tuple[int | None, int | None]


@frozen
class TickRow:
    """One tick of a run: what the pass saw and did, and the fleet after it.

    Attributes:
        time: Simulated seconds from the start.
        metrics: The value of each metric the pass collected.
        min_created: The pass's min created target (``None``: unset, or the
            pass failed); likewise the three below.
        max_created: The max created target.
        min_started: The min started target.
        max_started: The max started target.
        machines: Machines of the group after the pass (created count).
        started: Of those, Machines ``started``.
        starting: Of those, Machines ``starting`` (started by this pass and
            not there yet).
        creates: Machines the pass created; likewise the three below.
        destroys: Machines destroyed.
        starts: Machines started.
        stops: Machines stopped.
        failures: Machine actions that failed.
        errors: Passes that failed before acting (collect, expression, API).
        notes: What the pass logged at warning level, in words.
        rules: The names of the rules that changed the pass's targets or
            limited its steps (each :class:`~flyautoscaler.Reason`'s
            ``rule``), each once, in the order the pass gave them.
    """

    time: float
    metrics: Mapping[str, float]
    min_created: int | None
    max_created: int | None
    min_started: int | None
    max_started: int | None
    machines: int
    started: int
    starting: int
    creates: int = 0
    destroys: int = 0
    starts: int = 0
    stops: int = 0
    failures: int = 0
    errors: int = 0
    notes: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    @property
    def running(self) -> int:
        """Machines started or starting: the ones that cost compute."""
        return self.started + self.starting

    @property
    def eventful(self) -> bool:
        """Whether the pass created, destroyed, started or stopped, or failed."""
        return bool(
            self.creates
            or self.destroys
            or self.starts
            or self.stops
            or self.failures
            or self.errors
        )

    @property
    def started_band(self) -> Band:
        """The started target as ``(min, max)``."""
        return (self.min_started, self.max_started)

    @property
    def created_band(self) -> Band:
        """The created target as ``(min, max)``."""
        return (self.min_created, self.max_created)

    def actions(self) -> str:
        """Return the actions taken and the notes, in words (``"-"``: none)."""
        parts = [
            f"{verb} {n}"
            for verb, n in (
                ("create", self.creates),
                ("destroy", self.destroys),
                ("start", self.starts),
                ("stop", self.stops),
            )
            if n
        ]
        if self.failures:
            parts.append(f"{self.failures} failed")
        parts.extend(self.notes)
        return "; ".join(parts) or "-"


def format_clock(seconds: float) -> str:
    """Return ``H:MM:SS`` (fractions of a second kept when there are any)."""
    whole = math.floor(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    fraction = seconds - whole
    return f"{text}{f'{fraction:.3f}'[1:].rstrip('0')}" if fraction > 1e-9 else text


def format_band(band: Band) -> str:
    """Return a target: ``"4"``, ``"2..6"``, ``">=2"``, ``"<=6"`` or ``"-"``."""
    low, high = band
    if low is None and high is None:
        return "-"
    if low is None:
        return f"<={high}"
    if high is None:
        return f">={low}"
    return str(low) if low == high else f"{low}..{high}"


def _within(count: int, band: Band) -> bool:
    low, high = band
    return (low is None or count >= low) and (high is None or count <= high)


def _cell(value: int | None) -> str:
    return "" if value is None else str(value)


def write_csv(path: Path, rows: Sequence[TickRow], metric_names: Sequence[str]) -> None:
    """Write one row per tick: ``time``, each metric, then :data:`CSV_COLUMNS`.

    An unset (or unknown, when the pass failed) target is an empty cell;
    ``notes`` are joined by ``"; "``, ``rules`` (names without spaces) by a
    space.
    """
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["time", *metric_names, *CSV_COLUMNS])
        for row in rows:
            metrics = [
                f"{row.metrics[n]:.10g}" if n in row.metrics else ""
                for n in metric_names
            ]
            writer.writerow(
                [
                    f"{row.time:g}",
                    *metrics,
                    _cell(row.min_created),
                    _cell(row.max_created),
                    _cell(row.min_started),
                    _cell(row.max_started),
                    row.machines,
                    row.started,
                    row.starting,
                    row.creates,
                    row.destroys,
                    row.starts,
                    row.stops,
                    row.failures,
                    row.errors,
                    "; ".join(row.notes),
                    " ".join(row.rules),
                ]
            )


# --- summary ---------------------------------------------------------------------


@frozen
class TargetChange:
    """A new target the fleet was outside of, and how long it took to get in.

    Targets that move again while the fleet catches up are folded into one
    change: from the target before the first to the target the fleet reached.

    Attributes:
        time: When a pass first computed a target the fleet was outside of.
        before: The target before (``(None, None)`` at the start).
        after: The target the fleet reached (or the last one, if it did not).
        moves: How many times the target moved before the fleet was inside.
        reached: Seconds from *time* to the first tick the fleet was inside
            the target of that tick; ``None`` when that never happened.
    """

    time: float
    before: Band
    after: Band
    moves: int
    reached: float | None

    def describe(self, kind: str) -> str:
        """Return one sentence: when, from what to what, and how long it took."""
        moved = f" (after {self.moves} moves)" if self.moves > 1 else ""
        if self.before == (None, None):
            change = f"the first {kind} target was {format_band(self.after)}{moved}"
        elif self.before == self.after:
            change = (
                f"the {kind} target moved away from {format_band(self.before)} and "
                f"back{moved}"
            )
        else:
            change = (
                f"the {kind} target went from {format_band(self.before)} to "
                f"{format_band(self.after)}{moved}"
            )
        if self.reached is None:
            outcome = "the fleet had not reached it by the end"
        elif self.reached == 0:
            outcome = "the fleet was inside it after that pass"
        else:
            outcome = f"the fleet was inside it {format_seconds(self.reached)} later"
        return f"At {format_clock(self.time)} {change}; {outcome}."


def target_changes(
    rows: Sequence[TickRow], kind: str, initial: int
) -> list[TargetChange]:
    """Return each new *kind* (``started``/``created``) target the fleet was outside.

    A target the fleet already met when the pass computed it asks for nothing
    and is left out. A failed pass (no target) keeps the previous target. The
    fleet is inside a started target when its Machines ``started`` (not
    ``starting``) are; inside a created target when the group's Machines are.

    Args:
        rows: The run.
        kind: ``"started"`` or ``"created"``.
        initial: The count before the first pass (started or created).
    """
    changes: list[TargetChange] = []
    previous: Band = (None, None)
    count_before = initial  # what the pass saw: started and starting count
    opened: tuple[float, Band, int] | None = None  # time, band before, moves
    for row in rows:
        band = row.started_band if kind == "started" else row.created_band
        band = previous if band == (None, None) else band
        changed = band != previous
        if opened is None and changed and not _within(count_before, band):
            opened = (row.time, previous, 0)
        if opened is not None:
            start, before, moves = opened
            opened = (start, before, moves + changed)
            count = row.started if kind == "started" else row.machines
            if _within(count, band):
                changes.append(
                    TargetChange(start, before, band, moves + changed, row.time - start)
                )
                opened = None
        previous = band
        count_before = row.running if kind == "started" else row.machines
    if opened is not None:
        start, before, moves = opened
        changes.append(TargetChange(start, before, previous, moves, None))
    return changes


def direction_changes(
    counts: Sequence[int], times: Sequence[float], initial: int
) -> tuple[int, int]:
    """Return (direction changes, flaps) of a count over time.

    A direction change is a move up after a move down, or down after up; a
    flap is one that comes within :data:`FLAP_WINDOW` seconds of the move
    before it.
    """
    changes = flaps = 0
    last_direction = 0
    last_move = -math.inf
    previous = initial
    for count, t in zip(counts, times, strict=True):
        direction = (count > previous) - (count < previous)
        previous = count
        if direction == 0:
            continue
        if last_direction and direction != last_direction:
            changes += 1
            if t - last_move <= FLAP_WINDOW:
                flaps += 1
        last_direction, last_move = direction, t
    return changes, flaps


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _times(n: int) -> str:
    return {0: "never", 1: "once", 2: "twice"}.get(n, f"{n} times")


@frozen
class TargetReach:
    """How fast the fleet reached the new targets of one kind.

    Attributes:
        changes: The target changes the fleet was outside of
            (:func:`target_changes`).
        median: The median seconds to reach one, of those reached; ``None``
            when none was.
        slowest: The most seconds to reach one, of those reached.
    """

    changes: tuple[TargetChange, ...]
    median: float | None
    slowest: float | None

    @property
    def reached(self) -> int:
        """How many of the changes the fleet reached before the end."""
        return sum(1 for c in self.changes if c.reached is not None)

    @classmethod
    def of(cls, rows: Sequence[TickRow], kind: str, initial: int) -> TargetReach:
        """Return the reach of *rows*' *kind* targets (see :func:`target_changes`)."""
        changes = tuple(target_changes(rows, kind, initial))
        times = sorted(c.reached for c in changes if c.reached is not None)
        if not times:
            return cls(changes, None, None)
        return cls(changes, times[len(times) // 2], times[-1])

    def sentence(self, kind: str) -> str:
        """Return one sentence: how many new targets, how many reached, how fast."""
        n = len(self.changes)
        if not n:
            return f"No new {kind} target asked the fleet to change."
        targets = f"The fleet was outside {_plural(n, f'new {kind} target')}"
        if self.median is None or self.slowest is None:
            missed = "did not reach it" if n == 1 else "reached none of them"
            return f"{targets} and {missed} by the end."
        if n == 1:
            return f"{targets} and reached it {_how_fast(self.slowest, 'it')}."
        which = "all of them" if self.reached == n else f"{self.reached} of them"
        if self.slowest == 0:
            return f"{targets} and reached {which} {_how_fast(0, 'them')}."
        return (
            f"{targets} and reached {which}: half {_how_fast(self.median, 'them')}, "
            f"the slowest in {format_seconds(self.slowest)}."
        )


def _how_fast(seconds: float, them: str) -> str:
    if seconds == 0:
        return f"within the pass that set {them}"
    return (
        f"in {format_seconds(seconds)}"
        if them == "it"
        else (f"within {format_seconds(seconds)}")
    )


def _reach_lines(reach: TargetReach, kind: str, *, full: bool) -> list[str]:
    """Return the sentence about *kind* targets, then the changes it lists.

    *full* lists every change; otherwise those that took longest, at most
    :data:`MAX_LISTED` and none that the fleet met within the pass.
    """
    lines = [f"  {reach.sentence(kind)}"]
    changes = list(reach.changes)
    if not full:
        slow = [c for c in changes if c.reached != 0]
        # The slowest (not reached is slowest), then back in time order.
        slow.sort(key=lambda c: -math.inf if c.reached is None else -c.reached)
        shown = sorted(slow[:MAX_LISTED], key=lambda c: c.time)
        if len(shown) < len(changes):
            if shown:
                lines.append(
                    f"  Those that took longest (summary.txt lists all {len(changes)}):"
                )
            changes = shown
    lines.extend(f"    {c.describe(kind)}" for c in changes)
    return lines


def summarize(
    rows: Sequence[TickRow],
    *,
    tick: float,
    initial_started: int,
    initial_machines: int,
    full: bool = False,
) -> list[str]:
    """Return the summary's sentences, one a line (the changes indented under theirs).

    Args:
        rows: The run, one row per tick.
        tick: Simulated seconds per tick (each row holds for one tick).
        initial_started: Machines started before the first pass.
        initial_machines: Machines before the first pass.
        full: List every target change, not only the :data:`MAX_LISTED`
            slowest of each kind.
    """
    first = (
        f"Summary: {_plural(len(rows), 'pass', 'passes')}, one every "
        f"{format_seconds(tick)}, over {format_seconds(len(rows) * tick)} of "
        "simulated time."
    )
    lines = [first]
    initial = {"started": initial_started, "created": initial_machines}
    for kind in ("started", "created"):
        reach = TargetReach.of(rows, kind, initial[kind])
        lines.extend(_reach_lines(reach, kind, full=full))
    used = sum(r.running for r in rows) * tick
    peak = max([initial_started, *(r.running for r in rows)])
    fixed = peak * tick * len(rows)
    cost = (
        f"  The Machines started or starting cost {used:,.0f} Machine-seconds "
        f"({used / 3600:,.1f} Machine-hours)"
    )
    if fixed:
        cost += (
            f", {100 * (1 - used / fixed):.0f}% less than a fleet kept at the peak "
            f"of {_plural(peak, 'started Machine')} ({fixed:,.0f})"
        )
    lines.append(cost + ".")
    creates, destroys, starts, stops = (
        sum(r.creates for r in rows),
        sum(r.destroys for r in rows),
        sum(r.starts for r in rows),
        sum(r.stops for r in rows),
    )
    failures, errors = sum(r.failures for r in rows), sum(r.errors for r in rows)
    failed_actions = (
        "no action failed" if not failures else f"{_plural(failures, 'action')} failed"
    )
    failed_passes = (
        "no pass failed"
        if not errors
        else f"{_plural(errors, 'pass', 'passes')} failed before acting"
    )
    lines.append(
        f"  The autoscaler created {_plural(creates, 'Machine')}, destroyed "
        f"{destroys}, started {starts} and stopped {stops}; {failed_actions} and "
        f"{failed_passes}."
    )
    times = [r.time for r in rows]
    started = direction_changes([r.running for r in rows], times, initial_started)
    created = direction_changes([r.machines for r in rows], times, initial_machines)
    lines.append(
        f"  The started Machines changed direction {_times(started[0])} "
        f"({_plural(started[1], 'flap')}), the created Machines "
        f"{_times(created[0])} ({_plural(created[1], 'flap')}); a flap is a "
        f"reversal within {format_seconds(FLAP_WINDOW)} of the move before it."
    )
    return lines
