"""What ``flyautoscaler simulate`` shows and writes: lines, summary, CSV and chart.

Everything here works on the list of :class:`TickRow` a run produced; nothing
here talks to the pool or the server. The chart needs matplotlib (the
``flyautoscaler[plot]`` extra), imported only when a chart is drawn, with the
Agg canvas and no pyplot, so no global backend is chosen.
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
    "TickRow",
    "format_band",
    "format_clock",
    "format_seconds",
    "summarize",
    "write_chart",
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


# --- summary ----------------------------------------------------------------------


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
        """Return one line: when, from what to what, and how long it took."""
        outcome = (
            "not reached by the end"
            if self.reached is None
            else f"reached in {format_seconds(self.reached)}"
        )
        change = f"{format_band(self.before)} -> {format_band(self.after)}"
        moved = f" ({self.moves} moves)" if self.moves > 1 else ""
        return f"{format_clock(self.time):>9}  {kind} {change}{moved}: {outcome}"


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


def summarize(
    rows: Sequence[TickRow],
    *,
    tick: float,
    initial_started: int,
    initial_machines: int,
    full: bool = False,
) -> list[str]:
    """Return the summary's lines.

    Args:
        rows: The run, one row per tick.
        tick: Simulated seconds per tick (each row holds for one tick).
        initial_started: Machines started before the first pass.
        initial_machines: Machines before the first pass.
        full: List every target change, not just the first :data:`MAX_LISTED`.
    """
    lines = [f"summary: {_plural(len(rows), 'tick')} of {format_seconds(tick)}"]
    lines.append("  time to reach each new target the fleet was outside:")
    initial = {"started": initial_started, "created": initial_machines}
    for kind in ("started", "created"):
        changes = target_changes(rows, kind, initial[kind])
        if not changes:
            lines.append(f"{'':13}{kind}: no target asked for a change")
            continue
        shown = changes if full else changes[:MAX_LISTED]
        lines.extend(f"  {c.describe(kind)}" for c in shown)
        if len(shown) < len(changes):
            lines.append(
                f"{'':13}... {len(changes) - len(shown)} more {kind} target "
                "changes in summary.txt"
            )
        times = sorted(c.reached for c in changes if c.reached is not None)
        if times:
            lines.append(
                f"{'':13}{kind}: {len(times)} of {len(changes)} reached; median "
                f"{format_seconds(times[len(times) // 2])}, slowest "
                f"{format_seconds(times[-1])}"
            )
    used = sum(r.running for r in rows) * tick
    peak = max([initial_started, *(r.running for r in rows)])
    fixed = peak * tick * len(rows)
    lines.append(
        f"  Machine-seconds (started or starting): {used:,.0f} = "
        f"{used / 3600:,.1f} Machine-hours"
    )
    if fixed:
        lines.append(
            f"{'':13}{100 * (1 - used / fixed):.0f}% less than a fleet kept at the "
            f"peak ({peak} started): {fixed:,.0f}"
        )
    totals = {
        "create": sum(r.creates for r in rows),
        "destroy": sum(r.destroys for r in rows),
        "start": sum(r.starts for r in rows),
        "stop": sum(r.stops for r in rows),
    }
    lines.append(
        "  actions: "
        + ", ".join(_plural(n, verb) for verb, n in totals.items())
        + f"; failed: {_plural(sum(r.failures for r in rows), 'action')}, "
        + _plural(sum(r.errors for r in rows), "pass", "passes")
    )
    times = [r.time for r in rows]
    started = direction_changes([r.running for r in rows], times, initial_started)
    created = direction_changes([r.machines for r in rows], times, initial_machines)
    lines.append(
        f"  direction changes: started Machines {started[0]} "
        f"({_plural(started[1], 'flap')}), created Machines {created[0]} "
        f"({_plural(created[1], 'flap')})"
    )
    lines.append(
        f"{'':13}(a flap: a reversal within {format_seconds(FLAP_WINDOW)} of the "
        "move before it)"
    )
    return lines


# --- chart ------------------------------------------------------------------------


def _steps(values: Sequence[float]) -> list[float]:
    """Return *values* with the last repeated, to draw the last step to the end."""
    return [*values, values[-1]] if values else []


def _bounds(bands: Sequence[Band]) -> tuple[list[float], list[float]]:
    nan = math.nan
    lows = [
        float(lo) if lo is not None else float(hi) if hi is not None else nan
        for lo, hi in bands
    ]
    highs = [
        float(hi) if hi is not None else float(lo) if lo is not None else nan
        for lo, hi in bands
    ]
    return lows, highs


def write_chart(  # noqa: PLR0913 - the labels, by keyword
    path: Path,
    rows: Sequence[TickRow],
    *,
    metric_names: Sequence[str],
    tick: float,
    title: str,
    subtitle: str,
) -> bool:
    """Draw the metrics, the targets and the Machines over time into a PNG.

    Returns:
        False when matplotlib is not installed (nothing is written).
    """
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 - optional extra
    except ImportError:
        return False
    end = rows[-1].time + tick
    scale, unit = (
        (1.0, "s")
        if end <= 180
        else (60.0, "min")
        if end <= 3 * 3600
        else (3600.0, "h")
    )
    x = [r.time / scale for r in rows] + [end / scale]
    fig = Figure(figsize=(10, 6.2), dpi=100, layout="constrained")
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if metric_names:
        top, bottom = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.5]}
        )
        for name in metric_names:
            values = [r.metrics.get(name, math.nan) for r in rows]
            top.step(x, _steps(values), where="post", label=name, lw=1.4)
        top.set_ylabel("metric value")
        top.set_title(subtitle, fontsize=9, loc="left", family="monospace")
        top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
        top.grid(visible=True, alpha=0.3)
    else:
        bottom = fig.subplots()
        bottom.set_title(subtitle, fontsize=9, loc="left", family="monospace")
    low, high = _bounds([r.started_band for r in rows])
    bottom.fill_between(
        x,
        _steps(low),
        _steps(high),
        step="post",
        color="tab:orange",
        alpha=0.25,
        lw=0,
    )
    bottom.step(x, _steps(low), where="post", color="tab:orange", lw=1.2)
    bottom.step(
        x,
        _steps(high),
        where="post",
        color="tab:orange",
        lw=1.2,
        label="started target (min..max)",
    )
    bottom.step(
        x,
        _steps([float(r.started) for r in rows]),
        where="post",
        color="tab:blue",
        lw=2.2,
        label="started Machines",
    )
    low, high = _bounds([r.created_band for r in rows])
    bottom.step(x, _steps(low), where="post", color="0.55", lw=0.9, ls=":")
    bottom.step(
        x,
        _steps(high),
        where="post",
        color="0.55",
        lw=0.9,
        ls=":",
        label="created target (min..max)",
    )
    bottom.step(
        x,
        _steps([float(r.machines) for r in rows]),
        where="post",
        color="0.35",
        lw=1.4,
        ls="--",
        label="created Machines",
    )
    bottom.set_ylabel("Machines")
    bottom.set_xlabel(f"simulated time ({unit})")
    bottom.set_ylim(bottom=0)
    bottom.set_xlim(0, end / scale)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    bottom.grid(visible=True, alpha=0.3)
    fig.savefig(path, format="png")
    return True
