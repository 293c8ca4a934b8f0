"""The numbers of a ``flyautoscaler simulate`` run: cost, flaps, provisioning.

:func:`summarize_run` turns the rows of a run into a :class:`SimulationSummary`,
which the command prints (:meth:`SimulationSummary.lines`) and writes to
``summary.json`` (:meth:`SimulationSummary.to_dict`), and which a benchmark gets
in-process. Pure: nothing here runs a simulation.

With a *capacity* (one started Machine serves that many units of the first
metric), the run is also measured against the ideal fleet, ``ceil(load /
capacity)`` Machines at every tick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from attrs import evolve, frozen

from flyautoscaler._durations import format_brief as format_seconds
from flyautoscaler.cli.simulate._report import TickRow, direction_changes

__all__ = [
    "SUMMARY_KEYS",
    "SimulationSummary",
    "check_capacity",
    "machines_needed",
    "summarize_run",
]

#: The keys of :meth:`SimulationSummary.to_dict` (and ``summary.json``), in order.
SUMMARY_KEYS: Final = (
    "ticks",
    "tick_seconds",
    "simulated_seconds",
    "machine_seconds",
    "flaps",
    "flaps_per_hour",
    "creates",
    "destroys",
    "starts",
    "stops",
    "failed_actions",
    "failed_passes",
    "capacity",
    "capacity_metric",
    "ideal_machine_seconds",
    "machine_seconds_ratio",
    "under_provisioned_machine_seconds",
)

# A quotient this close to a whole number is that number (0.7 / 0.1 is 6.999...).
_REL_TOLERANCE: Final = 1e-9


def check_capacity(capacity: float | None, metric_names: Sequence[str]) -> str | None:
    """Return the metric a *capacity* applies to (the first one), or ``None``.

    Raises:
        ValueError: *capacity* is not a finite number above 0, or there is no
            metric for it to apply to.
    """
    if capacity is None:
        return None
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError(f"capacity must be a finite number > 0, got {capacity!r}")
    if not metric_names:
        raise ValueError(
            "capacity needs a metric: one started Machine serves that many units "
            "of the first metric, and the policy uses none"
        )
    return metric_names[0]


def machines_needed(load: float, capacity: float) -> int:
    """Return ``ceil(load / capacity)``, at least 0.

    A quotient within rounding error of a whole number counts as that number,
    so ``machines_needed(0.7, 0.1)`` is 7, not 8.
    """
    quotient = load / capacity
    nearest = round(quotient)
    if math.isclose(quotient, nearest, rel_tol=_REL_TOLERANCE):
        return max(0, nearest)
    return max(0, math.ceil(quotient))


@frozen
class SimulationSummary:
    """The numbers of one run.

    Every tick's fleet is the one sampled right after its pass, and holds for
    the whole tick.

    Attributes:
        ticks: Passes run, one per tick.
        tick_seconds: Simulated seconds per tick.
        simulated_seconds: ``ticks * tick_seconds``.
        machine_seconds: The sum over ticks of the Machines started or
            starting (what is billed), times the tick.
        flaps: Reversals of the count of Machines started or starting (up
            after down, or down after up) that came within 2 minutes of the
            move before them.
        flaps_per_hour: ``flaps`` per simulated hour.
        creates: Machines created; likewise the three below.
        destroys: Machines destroyed.
        starts: Machines started.
        stops: Machines stopped.
        failed_actions: Machine actions that failed.
        failed_passes: Passes that failed before acting.
        capacity: Units of the first metric one started Machine serves;
            ``None`` when not given, and then the four below are ``None``.
        capacity_metric: The metric *capacity* applies to.
        ideal_machine_seconds: The sum over ticks of ``ceil(load / capacity)``,
            times the tick: a fleet that always had just enough.
        machine_seconds_ratio: ``machine_seconds / ideal_machine_seconds``;
            ``None`` when the ideal is 0 (no load).
        under_provisioned_machine_seconds: The sum over ticks of the Machines
            needed (``ceil(load / capacity)``) but not ``started`` (a Machine
            still ``starting`` serves nothing yet), times the tick.
    """

    ticks: int
    tick_seconds: float
    simulated_seconds: float
    machine_seconds: float
    flaps: int
    flaps_per_hour: float
    creates: int = 0
    destroys: int = 0
    starts: int = 0
    stops: int = 0
    failed_actions: int = 0
    failed_passes: int = 0
    capacity: float | None = None
    capacity_metric: str | None = None
    ideal_machine_seconds: float | None = None
    machine_seconds_ratio: float | None = None
    under_provisioned_machine_seconds: float | None = None

    def to_dict(self) -> dict[str, float | int | str | None]:
        """Return the numbers under :data:`SUMMARY_KEYS`, for JSON."""
        return {key: getattr(self, key) for key in SUMMARY_KEYS}

    def lines(self) -> list[str]:
        """Return the summary's sentences about flaps and, with a capacity, cost."""
        flapped = (
            "never flapped"
            if not self.flaps
            else "flapped once"
            if self.flaps == 1
            else f"flapped {self.flaps} times"
        )
        span = format_seconds(self.simulated_seconds)
        flaps = (
            f"  The started Machines {flapped} in {span}: "
            f"{self.flaps_per_hour:.1f} flaps per hour."
        )
        lines = [flaps]
        if self.capacity is None or self.ideal_machine_seconds is None:
            return lines
        metric, capacity = self.capacity_metric, f"{self.capacity:g}"
        ratio = (
            f"{self.machine_seconds_ratio:.2f} times the ideal"
            if self.machine_seconds_ratio is not None
            else "no ratio, as the ideal is 0"
        )
        used = _amount(self.machine_seconds)
        ideal = _amount(self.ideal_machine_seconds)
        short = _amount(self.under_provisioned_machine_seconds)
        lines.append(
            f"  One started Machine serves {capacity} {metric} (the capacity), so "
            f"the ideal fleet is ceil({metric} / {capacity}) Machines at every tick."
        )
        lines.append(
            f"  The run used {used} Machine-seconds against an ideal of {ideal}: "
            f"{ratio}."
        )
        lines.append(
            f"  The fleet was under-provisioned for {short} Machine-seconds: "
            "Machines the load needed that were not started."
        )
        return lines

    def headline(self) -> str:
        """Return the numbers of a chart's title: cost, flaps, under-provisioning."""
        parts = [
            f"{self.machine_seconds / 3600:,.1f} Machine-hours",
            f"{self.flaps_per_hour:.1f} flaps per hour",
        ]
        if self.under_provisioned_machine_seconds is not None:
            parts.append(
                f"{self.under_provisioned_machine_seconds / 3600:,.2f} "
                "Machine-hours under-provisioned"
            )
        return ", ".join(parts)


def _amount(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def summarize_run(
    rows: Sequence[TickRow],
    *,
    tick: float,
    initial_started: int,
    capacity: float | None = None,
    capacity_metric: str | None = None,
) -> SimulationSummary:
    """Return the numbers of the run *rows*.

    Args:
        rows: The run, one row per tick.
        tick: Simulated seconds per tick.
        initial_started: Machines started before the first pass.
        capacity: Units of *capacity_metric* one started Machine serves.
        capacity_metric: The metric *capacity* applies to (required with it).

    Raises:
        ValueError: *capacity* is given without *capacity_metric*, or is not
            a finite number above 0.
    """
    simulated = len(rows) * tick
    _, flaps = direction_changes(
        [r.running for r in rows], [r.time for r in rows], initial_started
    )
    summary = SimulationSummary(
        ticks=len(rows),
        tick_seconds=tick,
        simulated_seconds=simulated,
        machine_seconds=sum(r.running for r in rows) * tick,
        flaps=flaps,
        flaps_per_hour=flaps * 3600 / simulated if simulated else 0.0,
        creates=sum(r.creates for r in rows),
        destroys=sum(r.destroys for r in rows),
        starts=sum(r.starts for r in rows),
        stops=sum(r.stops for r in rows),
        failed_actions=sum(r.failures for r in rows),
        failed_passes=sum(r.errors for r in rows),
    )
    if capacity is None:
        return summary
    if capacity_metric is None:
        raise ValueError("a capacity needs the metric it applies to")
    check_capacity(capacity, [capacity_metric])
    needed = [machines_needed(r.metrics[capacity_metric], capacity) for r in rows]
    ideal = sum(needed) * tick
    short = sum(max(0, n - r.started) for n, r in zip(needed, rows, strict=True))
    return evolve(
        summary,
        capacity=capacity,
        capacity_metric=capacity_metric,
        ideal_machine_seconds=ideal,
        machine_seconds_ratio=summary.machine_seconds / ideal if ideal else None,
        under_provisioned_machine_seconds=short * tick,
    )
