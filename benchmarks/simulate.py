"""How fast the simulator runs: passes per second for an hour, a day and a week.

Run: ``python benchmarks/simulate.py`` (or ``nox -s bench``). Each row runs
:func:`flyautoscaler.cli.simulate.run_simulation`, which is what
``flyautoscaler simulate`` does minus the files: the real pool, reconciler and
HTTP clients against :class:`~flyautoscaler.testing.FakeMachinesServer` on
127.0.0.1, one pass per 15 s tick of simulated time, with the built-in policy
(``ceil(queue_depth / 10)`` .. ``ceil(queue_depth / 8)`` started Machines) on a
seeded load that rises and falls every day, with a spike every few hours that
needs new Machines. The three runs are 1 hour (240 passes), 1 day (5,760) and
7 days (40,320 passes, a week's backtest at 15 s, which must take under a
minute). ``--quick`` skips the 7-day run.

The table gives the real seconds of each run, passes per second, and the
actions the run took (so that a faster run is seen to do the same work). The
exit status is 1 if the 7-day run took a minute or more. The docs quote a run
of this script.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time

import flyautoscaler as fas
from flyautoscaler.cli.simulate import SimulationSummary, run_simulation

TICK = 15.0
#: name -> simulated seconds.
RUNS = {"1 hour": 3600.0, "1 day": 86_400.0, "7 days": 7 * 86_400.0}
#: Issue 13: a 7-day backtest at 15 s ticks in under a minute.
WEEK_BUDGET = 60.0


def load(ticks: int, seed: int = 7) -> list[float]:
    """Queued jobs at each tick: a daily cycle (10 to 150), spikes, noise."""
    rng = random.Random(seed)
    values = []
    for k in range(ticks):
        t = k * TICK
        day = 80.0 - 70.0 * math.cos(2 * math.pi * t / 86_400.0)
        spike = 250.0 if t % 10_800.0 < 300.0 else 0.0  # 5 minutes every 3 hours
        values.append(max(0.0, float(round((day + spike) * rng.gauss(1.0, 0.05)))))
    return values


def new_reconciler(collectors: list[fas.MetricCollector]) -> fas.Reconciler:
    """The built-in policy of ``flyautoscaler simulate``."""
    return fas.Reconciler(
        min_started_machine_n="ceil(queue_depth / 10)",
        max_started_machine_n="ceil(queue_depth / 8)",
        min_created_machine_n="ceil(queue_depth / 10)",
        max_created_machine_n="max(10, ceil(queue_depth / 10) + 5)",
        collectors=list(collectors),
    )


def run(seconds: float) -> tuple[float, SimulationSummary]:
    """Simulate *seconds* of the load; return the real seconds and the summary."""
    ticks = round(seconds / TICK)
    values = {"queue_depth": load(ticks)}
    began = time.perf_counter()
    summary = run_simulation(new_reconciler, values, tick=TICK)
    return time.perf_counter() - began, summary


def main(argv: list[str] | None = None) -> int:
    """Run each span; print the table; exit 1 if the week missed its budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 7-day run")
    args = parser.parse_args(argv)
    print(
        f"# simulate benchmark on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print()
    print("| run | passes | real seconds | passes per second | actions |")
    print("|---|---:|---:|---:|---|")
    week: float | None = None
    for name, seconds in RUNS.items():
        if args.quick and seconds > 86_400.0:
            continue
        real, summary = run(seconds)
        passes = round(seconds / TICK)
        if seconds > 86_400.0:
            week = real
        print(
            f"| {name} | {passes:,} | {real:.1f} | {passes / real:,.0f} "
            f"| {summary.creates} creates, {summary.destroys} destroys, "
            f"{summary.starts} starts, {summary.stops} stops |",
            flush=True,
        )
    print()
    if week is None:
        print("7-day run skipped (--quick)")
        return 0
    met = week < WEEK_BUDGET
    print(
        f"7 days at 15 s ticks: {week:.1f} s, budget {WEEK_BUDGET:g} s: "
        f"{'met' if met else 'missed'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
