"""``flyautoscaler simulate``: try a policy on a fake fleet before deploying it.

The options (:func:`add_arguments`), the metric values (a synthetic load or a
``--metrics`` recording), the header and the files written (:func:`run`). Which
policy runs, and why, is decided in :mod:`flyautoscaler.cli.simulate._policy`;
``--compare`` in :mod:`~flyautoscaler.cli.simulate._compare`; the live view (the
tick table and the progress line) in :mod:`~flyautoscaler.cli.simulate._console`.
The engine is in :mod:`flyautoscaler.cli.simulate._run`; the summary and the CSV
in :mod:`~flyautoscaler.cli.simulate._report`, the charts in
:mod:`~flyautoscaler.cli.simulate._chart`; the run's numbers
(:class:`SimulationSummary`) in :mod:`~flyautoscaler.cli.simulate._summary`.
:func:`run_simulation` runs a policy in-process and returns them, for benchmarks.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

from attrs import evolve

from flyautoscaler._errors import FlyAutoscalerError, redact
from flyautoscaler._extras import install_hint
from flyautoscaler.cli.simulate._api import run_simulation
from flyautoscaler.cli.simulate._backtest import load_history, refuse_range_options
from flyautoscaler.cli.simulate._chart import (
    ChartRun,
    write_chart,
    write_compare_chart,
)
from flyautoscaler.cli.simulate._compare import (
    CompareEntry,
    compare_data,
    compare_lines,
    compared_plans,
    first_label,
)
from flyautoscaler.cli.simulate._console import LiveView
from flyautoscaler.cli.simulate._policy import choose_policy
from flyautoscaler.cli.simulate._profile import (
    DEFAULT_PEAK,
    Recording,
    load_metrics_csv,
    parse_seconds,
    synthetic_series,
)
from flyautoscaler.cli.simulate._report import (
    TickRow,
    format_band,
    format_clock,
    format_seconds,
    summarize,
    write_csv,
)
from flyautoscaler.cli.simulate._run import (
    DEFAULT_BOOT_TIME,
    DEFAULT_MACHINES,
    DEFAULT_RESUME_TIME,
    DEFAULT_START_TIME,
    DEFAULT_STARTED_MACHINES,
    DEFAULT_TRANSITION_DELAY,
    Outcome,
    Plan,
    Policy,
    SimulationError,
    Timing,
    simulate,
)
from flyautoscaler.cli.simulate._summary import SimulationSummary

__all__ = ["SimulationSummary", "add_arguments", "run", "run_simulation"]

DEFAULT_DURATION: Final = 3600.0
#: The default output folder's name, before its date (``YYYYmmdd-HHMMSS``).
OUT_PREFIX: Final = "flyautoscaler-sim-"
# Written into the default output folder: git ignores it all, itself included.
_GITIGNORE: Final = "# Written by flyautoscaler simulate: git ignores this folder.\n*\n"
#: Most ticks one run may have: a week at 15 s ticks (40,320) fits, in about a
#: minute (docs/simulate.md, "Speed").
MAX_TICKS: Final = 50_000
_USER_ERRORS: Final = (FlyAutoscalerError, ValueError, OSError)


# --- options ----------------------------------------------------------------------


def _duration(text: str) -> float:
    try:
        seconds = parse_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return seconds


def _delay(text: str) -> float:
    try:
        return parse_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``simulate`` to *parser* (its subparser)."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration, as for serve (default: the FAS_* variables "
        "when one of the six count expressions, such as "
        "FAS_STARTED_MACHINE_COUNT, is set, else the built-in policy on "
        "queue_depth)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="FILE",
        help="also run the policy of this YAML file on the same load, fleet "
        "and seed, and compare: one table, one chart, a CSV per policy and "
        "compare.json; repeat for more policies. Each must use the same "
        "metrics as the first",
    )
    parser.add_argument(
        "--metrics",
        metavar="FILE.csv",
        help="replay a recorded time series: a 'time' column (seconds from the "
        "start) and one column per metric (default: a synthetic load with a "
        "ramp, a spike and a decay)",
    )
    parser.add_argument(
        "--from-prometheus",
        action="store_true",
        help="replay the configured Prometheus queries over --start .. --end "
        "(range queries, one value per --step) instead of a synthetic load",
    )
    parser.add_argument(
        "--start",
        metavar="TIME",
        help="with --from-prometheus: the first time replayed, RFC 3339 "
        "(2026-11-23T00:00:00Z) or relative to now (-7d, -2h, -30m)",
    )
    parser.add_argument(
        "--end",
        metavar="TIME",
        help="with --from-prometheus: where the replay ends, excluded, as "
        "--start (default: now)",
    )
    parser.add_argument(
        "--step",
        type=_duration,
        metavar="DURATION",
        help="with --from-prometheus: time between two points, the tick "
        "(default: the configured interval, 15s)",
    )
    parser.add_argument(
        "--app",
        metavar="NAME",
        help="with --from-prometheus: the app whose history is replayed "
        "($APP_NAME); needed when the configured app-name is a wildcard",
    )
    # Relative times count from this Unix time; None: the clock's. Tests set it.
    parser.set_defaults(now=None)
    # Take "-7d" (a dash, then a digit) as an option's value, not as an option,
    # as argparse itself does from Python 3.13 on: --start -7d works everywhere.
    parser._negative_number_matcher = re.compile(r"-\.?\d")  # noqa: SLF001
    parser.add_argument(
        "--duration",
        type=_duration,
        metavar="DURATION",
        help="simulated time to run, e.g. 30m or 2h (default: 1h, or the "
        "length of the --metrics file)",
    )
    parser.add_argument(
        "--tick",
        type=_duration,
        metavar="DURATION",
        help="simulated time between two passes (default: the configured "
        "interval, 15s)",
    )
    parser.add_argument(
        "--machines",
        type=_count,
        default=DEFAULT_MACHINES,
        metavar="N",
        help=f"Machines the app has at the start (default: {DEFAULT_MACHINES})",
    )
    parser.add_argument(
        "--started",
        type=_count,
        default=DEFAULT_STARTED_MACHINES,
        metavar="N",
        help="how many of them are started; the others are stopped "
        f"(default: {DEFAULT_STARTED_MACHINES})",
    )
    parser.add_argument(
        "--transition-delay",
        type=_delay,
        metavar="DURATION",
        help="simulated time a Machine spends stopping or suspending "
        f"(default: {DEFAULT_TRANSITION_DELAY:g}s, Fly's default kill_timeout); "
        "when given, also the default of --boot-time, --start-time and "
        "--resume-time",
    )
    parser.add_argument(
        "--boot-time",
        type=_delay,
        metavar="DURATION",
        help="simulated time a new Machine takes from create to started "
        f"(default: {format_seconds(DEFAULT_BOOT_TIME)})",
    )
    parser.add_argument(
        "--start-time",
        type=_delay,
        metavar="DURATION",
        help="simulated time a start from stopped takes, a cold start "
        f"(default: {format_seconds(DEFAULT_START_TIME)})",
    )
    parser.add_argument(
        "--resume-time",
        type=_delay,
        metavar="DURATION",
        help="simulated time a start from suspended takes, a resume "
        f"(default: {format_seconds(DEFAULT_RESUME_TIME)})",
    )
    parser.add_argument(
        "--peak",
        type=_positive,
        default=DEFAULT_PEAK,
        metavar="VALUE",
        help=f"peak of the synthetic load (default: {DEFAULT_PEAK:g})",
    )
    parser.add_argument(
        "--capacity",
        type=_positive,
        metavar="N",
        help="units of the (first) metric one started Machine serves: the "
        "summary then compares the Machine-seconds used with the ideal, "
        "ceil(load / N) Machines at every tick, and counts the "
        "under-provisioned Machine-seconds (default: no comparison)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="N",
        help="seed of the synthetic load's noise and the fleet (default: 1)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where to write timeseries.csv, chart.png, summary.txt and "
        "summary.json "
        "(default: a new ./flyautoscaler-sim-YYYYmmdd-HHMMSS, which git "
        "ignores)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--quiet",
        action="store_true",
        help="print no tick and no progress, only the header and the summary",
    )
    output.add_argument(
        "--verbose",
        action="store_true",
        help="print every tick, not only those where Machines were created, "
        "destroyed, started or stopped or something failed",
    )


# --- the policy -------------------------------------------------------------------


def _load_policy(path: str | None, environ: Mapping[str, str]) -> Policy:
    """Return the policy of ``--config``, the ``FAS_*`` variables, or the built-in one.

    The rule is :func:`~flyautoscaler.cli.simulate._policy.choose_policy`'s.

    Raises:
        ConfigError: The configuration is invalid.
        OSError: The file cannot be read.
    """
    return choose_policy(path, environ).policy


# --- the plan ---------------------------------------------------------------------


def _plan(args: argparse.Namespace, environ: Mapping[str, str]) -> Plan:
    """Check the options and prepare the run, before anything starts.

    The values come from ``--from-prometheus`` (fetched here), a ``--metrics``
    file or the synthetic load.

    Raises:
        ValueError: An option is out of range, or the metrics file is invalid.
        ConfigError: The configuration is invalid.
        MetricCollectionError: A query of ``--from-prometheus`` failed.
        OSError: A file cannot be read.
    """
    policy = _load_policy(args.config, environ)
    if args.started > args.machines:
        raise ValueError(
            f"--started ({args.started}) cannot exceed --machines ({args.machines})"
        )
    if args.machines < 1:
        raise ValueError("--machines must be at least 1: new Machines are clones")
    if args.capacity is not None and not policy.metric_names:
        raise ValueError(
            "--capacity needs a metric (one started Machine serves N units of the "
            f"first metric), and the policy from {policy.source} uses none"
        )
    timing = Timing.resolve(
        transition_delay=args.transition_delay,
        boot=args.boot_time,
        start=args.start_time,
        resume=args.resume_time,
    )
    if args.from_prometheus:
        history = load_history(
            args,
            environ,
            source=policy.source,
            interval=policy.interval,
            max_ticks=MAX_TICKS,
            now=time.time() if args.now is None else args.now,
        )
        return Plan(
            policy=evolve(policy, app_name=history.app_name),
            times=history.span.times,
            tick=history.span.step,
            values=history.values,
            load=history.describe(),
            machines=args.machines,
            started=args.started,
            transition_delay=timing.stop,
            seed=args.seed,
            capacity=args.capacity,
            timing=timing,
        )
    refuse_range_options(args)
    tick: float = args.tick or policy.interval
    recording: Recording | None = None
    if args.metrics is not None:
        recording = load_metrics_csv(args.metrics, policy.metric_names)
    duration: float = args.duration or (
        recording.end + tick if recording is not None else DEFAULT_DURATION
    )
    count = max(1, -int(-duration // tick))  # ceil, without float surprises
    if count > MAX_TICKS:
        raise ValueError(
            f"{count} ticks of {format_seconds(tick)} in {format_seconds(duration)}: "
            f"at most {MAX_TICKS}; lengthen --tick or shorten --duration"
        )
    times = tuple(i * tick for i in range(count))
    if recording is not None:
        values: Mapping[str, Sequence[float]] = {
            n: [recording.value_at(n, t) for t in times] for n in policy.metric_names
        }
        load = f"replayed from {args.metrics} ({len(recording.times)} rows)"
    else:
        values = synthetic_series(
            policy.metric_names,
            times,
            duration=count * tick,
            peak=args.peak,
            seed=args.seed,
        )
        load = (
            f"synthetic (quiet, ramp, plateau, spike, decay), peak {args.peak:g}, "
            f"seed {args.seed}"
        )
    return Plan(
        policy=policy,
        times=times,
        tick=tick,
        values=values,
        load=load,
        machines=args.machines,
        started=args.started,
        transition_delay=timing.stop,
        seed=args.seed,
        capacity=args.capacity,
        timing=timing,
    )


# --- the terminal -----------------------------------------------------------------


def _expressions(band: tuple[str, str]) -> str:
    low, high = band
    if not (low or high):
        return "not managed"
    if low == high:
        return low
    return f"{low or '(none)'} .. {high or '(none)'}"


def _origin(policy: Policy) -> str:
    """Return ``"policy from a.yml"`` or ``"the built-in policy"``."""
    source = policy.source
    return source if source.startswith("the built-in") else f"policy from {source}"


def _header_lines(entries: Sequence[CompareEntry]) -> list[str]:
    """Return the header: each policy and why it runs, the load, fleet and time."""
    plan = entries[0].plan
    policy = plan.policy
    count = len(plan.times)
    fleet = f"{plan.machines} Machines ({plan.started} started)"
    if len(entries) == 1:
        lines = [
            f"flyautoscaler simulate: app {policy.app_name}, {entries[0].why}",
            f"  started Machines: {_expressions(policy.started)}",
            f"  created Machines: {_expressions(policy.created)}",
        ]
        fleet += f" in group {policy.process_group!r}"
    else:
        lines = [f"flyautoscaler simulate: {len(entries)} policies on the same load"]
        for entry in entries:
            its = entry.plan.policy
            lines += [
                f"  {entry.label}: {entry.why}",
                f"    app {its.app_name}, group {its.process_group!r}",
                f"    started Machines: {_expressions(its.started)}",
                f"    created Machines: {_expressions(its.created)}",
            ]
            if entry.note:
                lines.append(f"    {entry.note}")
        fleet += " in each policy's group"
    return [
        *lines,
        f"  metrics: {', '.join(policy.metric_names) or '(none)'}; {plan.load}",
        (f"  fleet: {fleet}; {plan.transitions.describe()}"),
        (
            f"  time: {format_seconds(count * plan.tick)} simulated, a pass every "
            f"{format_seconds(plan.tick)} ({count} ticks)"
        ),
    ]


def _widths(names: Sequence[str]) -> list[int]:
    return [max(len(n), 7) for n in names]


def _table_header(names: Sequence[str]) -> str:
    metrics = "".join(f"  {n:>{w}}" for n, w in zip(names, _widths(names), strict=True))
    return (
        f"{'time':>9}{metrics}  {'started':>7}  {'target':>8}  {'created':>7}  "
        f"{'target':>8}  actions"
    )


def _table_line(row: TickRow, names: Sequence[str]) -> str:
    metrics = "".join(
        f"  {row.metrics.get(n, float('nan')):>{w}.6g}"
        for n, w in zip(names, _widths(names), strict=True)
    )
    started = f"{row.started}+{row.starting}" if row.starting else str(row.started)
    return (
        f"{format_clock(row.time):>9}{metrics}  {started:>7}  "
        f"{format_band(row.started_band):>8}  {row.machines:>7}  "
        f"{format_band(row.created_band):>8}  {row.actions()}"
    )


def _out_dir(requested: str | None) -> Path:
    """Create and return the output folder (a new, dated one by default).

    The default folder holds a ``.gitignore`` that ignores everything in it,
    itself included, so that a run in a checkout leaves ``git status`` clean.
    """
    if requested is not None:
        path = Path(requested)
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = datetime.now(UTC).astimezone().strftime("%Y%m%d-%H%M%S")
    base = Path(f"{OUT_PREFIX}{stamp}")
    for i in range(1, 100):
        path = base if i == 1 else Path(f"{base}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
        return path
    raise FileExistsError(f"{base}: 99 folders of that name exist; use --out")


def _one_line(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    return redact(" ".join(" ".join([str(exc), *notes]).split()))


def _entries(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> list[CompareEntry]:
    """Return the policies to run, each with its plan: the first, then --compare's.

    Raises:
        ValueError: An option is out of range, or the metrics file is invalid.
        ConfigError: A configuration is invalid, or a compared policy's metrics
            differ from the first one's.
        OSError: A file cannot be read.
    """
    plan = _plan(args, environ)
    # The header's words; the plan holds the policy of the same rule.
    choice = choose_policy(args.config, environ)
    first = CompareEntry(first_label(args.config, choice), plan, choice.why)
    return compared_plans(
        first, args.compare, environ, tick_given=args.tick is not None
    )


def run(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run ``flyautoscaler simulate`` with *args* (from :func:`add_arguments`).

    Args:
        args: The parsed options.
        environ: The environment: ``FAS_*`` variables and what the
            configuration refers to.
        stdout: Where the live view and the summary go; a progress line is
            rewritten in place when it is a terminal (``isatty()``).
        stderr: Where an error goes, as one ``error: ...`` line.
        clock: Real seconds, for the progress line.

    Returns:
        0 on success; 1 when the options, a configuration or the metrics
        file are invalid, an output cannot be written, or the run stalled.
    """
    try:
        entries = _entries(args, environ)
        out = _out_dir(args.out)
    except _USER_ERRORS as exc:
        print(f"error: {_one_line(exc)}", file=stderr)
        return 1
    header = _header_lines(entries)
    for line in header:
        print(line, file=stdout)
    try:
        outcomes = [
            _run_one(entry, args, stdout, clock, len(entries)) for entry in entries
        ]
        if len(entries) == 1:
            written = _report(entries[0].plan, outcomes[0], out, stdout, header)
        else:
            written = _report_compare(entries, outcomes, out, stdout, header)
    except (*_USER_ERRORS, SimulationError) as exc:
        print(f"error: {_one_line(exc)}", file=stderr)
        return 1
    _wrote(written, out, stdout, ignored=args.out is None)
    return 0


def _run_one(
    entry: CompareEntry,
    args: argparse.Namespace,
    stdout: TextIO,
    clock: Callable[[], float],
    count: int,
) -> Outcome:
    """Run one policy, showing its ticks and its progress."""
    plan = entry.plan
    names = list(plan.policy.metric_names)
    if count > 1 and not args.quiet:
        print(f"{entry.label}:", file=stdout)
    view = LiveView(
        stdout,
        total=len(plan.times),
        tick=plan.tick,
        header=_table_header(names),
        line=functools.partial(_table_line, names=names),
        quiet=args.quiet,
        verbose=args.verbose,
        label=entry.label if count > 1 else "",
        clock=clock,
    )
    outcome = simulate(plan, view.show)
    view.finish()
    return outcome


def _wrote(paths: Sequence[Path], out: Path, stdout: TextIO, *, ignored: bool) -> None:
    """Say which files were written, and where."""
    names = [p.name for p in paths]
    listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    print(f"Wrote {listed} in {out}{os.sep}.", file=stdout)
    if ignored:
        print(
            f"Git ignores {out}{os.sep} (it holds a .gitignore); delete it when "
            "done, or pass --out DIR to keep the results elsewhere.",
            file=stdout,
        )
    stdout.flush()


def _no_chart(stdout: TextIO) -> None:
    print(
        f"No chart: matplotlib is not installed; get it with {install_hint('plot')}.",
        file=stdout,
    )


def _report(
    plan: Plan, outcome: Outcome, out: Path, stdout: TextIO, header: Sequence[str]
) -> list[Path]:
    """Write the files and print the summary; return the files written."""
    names = list(plan.policy.metric_names)
    rows = outcome.rows

    def summary(*, full: bool) -> list[str]:
        return summarize(
            rows,
            tick=plan.tick,
            initial_started=plan.started,
            initial_machines=plan.machines,
            full=full,
        )

    numbers = outcome.summary.lines()
    csv_path = out / "timeseries.csv"
    write_csv(csv_path, rows, names)
    summary_path = out / "summary.txt"
    summary_path.write_text(
        "\n".join([*header, *summary(full=True), *numbers]) + "\n",
        encoding="utf-8",
    )
    json_path = out / "summary.json"
    json_path.write_text(
        json.dumps(outcome.summary.to_dict(), indent=2) + "\n", encoding="utf-8"
    )
    chart_path = out / "chart.png"
    policy = plan.policy
    drawn = write_chart(
        chart_path,
        rows,
        metric_names=names,
        tick=plan.tick,
        title=f"flyautoscaler simulate: {policy.app_name}, {_origin(policy)}",
        subtitle=f"started = {_expressions(policy.started)}\n"
        f"created = {_expressions(policy.created)}",
        headline=outcome.summary.headline(),
        capacity=plan.capacity,
    )
    print(file=stdout)
    for line in [*summary(full=False), *numbers]:
        print(line, file=stdout)
    print(
        f"  It ran {format_seconds(len(rows) * plan.tick)} of simulated time in "
        f"{outcome.seconds:.1f} s.",
        file=stdout,
    )
    print(file=stdout)
    written = [csv_path, summary_path, json_path]
    if drawn:
        written.append(chart_path)
    else:
        _no_chart(stdout)
    return written


def _report_compare(
    entries: Sequence[CompareEntry],
    outcomes: Sequence[Outcome],
    out: Path,
    stdout: TextIO,
    header: Sequence[str],
) -> list[Path]:
    """Write each policy's CSV, summary.txt, compare.json and the chart; return them."""
    plan = entries[0].plan
    names = list(plan.policy.metric_names)
    written: list[Path] = []
    for entry, outcome in zip(entries, outcomes, strict=True):
        path = out / entry.csv_name
        write_csv(path, outcome.rows, names)
        written.append(path)
    table = compare_lines(entries, outcomes)
    intro = (
        f"Compared on the same load and fleet, {len(plan.times)} passes of "
        f"{format_seconds(plan.tick)} each:"
    )
    details: list[str] = []
    for entry, outcome in zip(entries, outcomes, strict=True):
        details += ["", f"{entry.label}: {entry.why}"]
        details += summarize(
            outcome.rows,
            tick=plan.tick,
            initial_started=plan.started,
            initial_machines=plan.machines,
            full=True,
        )[1:]
        details += outcome.summary.lines()
    summary_path = out / "summary.txt"
    summary_path.write_text(
        "\n".join([*header, "", intro, *table, *details]) + "\n", encoding="utf-8"
    )
    json_path = out / "compare.json"
    json_path.write_text(
        json.dumps(compare_data(entries, outcomes), indent=2) + "\n",
        encoding="utf-8",
    )
    written += [summary_path, json_path]
    chart_path = out / "chart.png"
    drawn = write_compare_chart(
        chart_path,
        [
            ChartRun(e.label, o.rows, o.summary.headline())
            for e, o in zip(entries, outcomes, strict=True)
        ],
        metric_names=names,
        tick=plan.tick,
        title=f"flyautoscaler simulate: {len(entries)} policies on the same load",
        subtitle=plan.load,
        capacity=plan.capacity,
    )
    print(file=stdout)
    print(intro, file=stdout)
    for line in table:
        print(line, file=stdout)
    seconds = sum(o.seconds for o in outcomes)
    print(
        f"  They ran {format_seconds(len(plan.times) * plan.tick)} of simulated time "
        f"each in {seconds:.1f} s; summary.txt has each policy's full summary.",
        file=stdout,
    )
    print(file=stdout)
    if drawn:
        written.append(chart_path)
    else:
        _no_chart(stdout)
    return written
