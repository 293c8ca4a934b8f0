"""The simulator in-process: run a policy on a load, get its numbers.

:func:`run_simulation` is what ``flyautoscaler simulate`` does, minus the
options, the live view and the files: for a benchmark that compares policies
on the same loads and reads :class:`SimulationSummary` fields instead of
parsing a summary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from flyautoscaler._protocols import MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler.cli.simulate._run import (
    DEFAULT_MACHINES,
    DEFAULT_STARTED_MACHINES,
    DEFAULT_TICK,
    GATE_METRIC,
    Plan,
    Policy,
    Timing,
    simulate,
)
from flyautoscaler.cli.simulate._summary import SimulationSummary, check_capacity

__all__ = ["run_simulation"]

#: The app seeded and reconciled (any name does; this is the command's).
_APP: Final = "sim-app"


def _check_values(values: Mapping[str, Sequence[float]]) -> int:
    """Return the number of ticks *values* give.

    Raises:
        ValueError: No metric, an empty series, series of different
            lengths, or a value that is not a finite number.
    """
    if not values:
        raise ValueError("values must hold at least one metric's series")
    lengths = {name: len(series) for name, series in values.items()}
    count = next(iter(lengths.values()))
    if count == 0 or set(lengths.values()) != {count}:
        raise ValueError(
            "values must hold series of the same length, at least 1; got "
            + ", ".join(f"{name}: {n}" for name, n in lengths.items())
        )
    for name, series in values.items():
        for k, value in enumerate(series):
            if not math.isfinite(value):
                raise ValueError(f"values[{name!r}][{k}] is not finite: {value!r}")
    return count


def run_simulation(  # noqa: PLR0913 - the options of the command, by keyword
    new_reconciler: Callable[[list[MetricCollector]], Reconciler],
    values: Mapping[str, Sequence[float]],
    *,
    tick: float = DEFAULT_TICK,
    capacity: float | None = None,
    machines: int = DEFAULT_MACHINES,
    started: int = DEFAULT_STARTED_MACHINES,
    transition_delay: float | None = None,
    seed: int = 1,
    boot_time: float | None = None,
    start_time: float | None = None,
    resume_time: float | None = None,
) -> SimulationSummary:
    """Simulate a policy on a load, as ``flyautoscaler simulate`` does, in-process.

    A fake Machines API on 127.0.0.1 with Fly's rate limits and timing, the
    real pool and HTTP clients, one pass per tick; nothing is printed or
    written. A tick costs about a millisecond of real time.

    Args:
        new_reconciler: Builds the policy's reconciler around the collectors
            it is given (they hand each pass its tick's values); its
            ``process_group`` and ``regions`` are the seeded fleet's.
        values: Each metric's value at each tick, tick *k* at *k* x *tick*
            seconds; every series as long as the others. The first metric is
            the one *capacity* applies to.
        tick: Simulated seconds between two passes.
        capacity: Units of the first metric one started Machine serves; with
            it the summary compares the run with the ideal fleet.
        machines: Machines the app has at the start (at least 1).
        started: How many of them are started.
        transition_delay: Simulated seconds a Machine spends stopping or
            suspending (default 5 s, Fly's default ``kill_timeout``); when
            given, also the default of the three times below.
        seed: Seed of the fleet's ids and names.
        boot_time: Simulated seconds a new Machine takes to boot (default
            10 s; see :class:`~flyautoscaler.cli.simulate._run.Timing`).
        start_time: Simulated seconds of a start from ``stopped`` (default
            2 s, Fly's cold start).
        resume_time: Simulated seconds of a resume from ``suspended``
            (default 0.3 s, Fly's "a few hundred ms").

    Returns:
        The run's numbers.

    Raises:
        ValueError: An argument is out of range.
        ExpressionError: The reconciler's expressions do not compile.
        ConfigError: The reconciler's settings are invalid.
        SimulationError: A pass did not finish in time.
    """
    count = _check_values(values)
    if not (math.isfinite(tick) and tick > 0):
        raise ValueError(f"tick must be a finite number of seconds > 0, got {tick!r}")
    timing = Timing.resolve(
        transition_delay=_delay("transition_delay", transition_delay),
        boot=_delay("boot_time", boot_time),
        start=_delay("start_time", start_time),
        resume=_delay("resume_time", resume_time),
    )
    if machines < 1:
        raise ValueError(
            f"machines must be at least 1 (new ones are clones), got {machines}"
        )
    if not 0 <= started <= machines:
        raise ValueError(
            f"started must be from 0 to machines ({machines}), got {started}"
        )
    check_capacity(capacity, list(values))
    if any(name.startswith(GATE_METRIC) for name in values):
        raise ValueError(
            f"metric names starting with {GATE_METRIC!r} are the simulator's"
        )
    probe = new_reconciler([])
    try:
        policy = Policy(
            source="run_simulation",
            app_name=_APP,
            org="personal",
            process_group=probe.process_group,
            regions=tuple(probe.regions),
            metric_names=tuple(values),
            started=(probe.min_started_machine_n, probe.max_started_machine_n),
            created=(probe.min_created_machine_n, probe.max_created_machine_n),
            interval=tick,
            new_reconciler=new_reconciler,
        )
    finally:
        probe.close()
    plan = Plan(
        policy=policy,
        times=tuple(k * tick for k in range(count)),
        tick=tick,
        values=values,
        load="given in-process",
        machines=machines,
        started=started,
        transition_delay=timing.stop,
        seed=seed,
        capacity=capacity,
        timing=timing,
    )
    return simulate(plan, _ignore).summary


def _delay(name: str, seconds: float | None) -> float | None:
    """Return *seconds* (``None`` too) if it is a valid delay.

    Raises:
        ValueError: It is negative or not finite, naming *name*.
    """
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(
            f"{name} must be a finite number of seconds >= 0, got {seconds!r}"
        )
    return seconds


def _ignore(row: object) -> None:
    del row
