"""``flyautoscaler simulate``: try a policy on a fake fleet before deploying it.

The options (:func:`add_arguments`), the policy (the built-in one, or the
``--config`` file and ``FAS_*`` variables ``serve`` reads), the metric values
(a synthetic load or a ``--metrics`` recording), the live view and the files
written (:func:`run`). The engine is in :mod:`flyautoscaler.cli.simulate._run`; the
summary, the CSV and the chart in :mod:`flyautoscaler.cli.simulate._report`; the
run's numbers (:class:`SimulationSummary`) in
:mod:`flyautoscaler.cli.simulate._summary`. :func:`run_simulation` runs a policy
in-process and returns them, for benchmarks.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

from attrs import evolve

from flyautoscaler._errors import ConfigError, FlyAutoscalerError, redact
from flyautoscaler._extras import install_hint
from flyautoscaler._models import DEFAULT_PROCESS_GROUP
from flyautoscaler._protocols import MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler.cli.simulate._api import run_simulation
from flyautoscaler.cli.simulate._backtest import load_history, refuse_range_options
from flyautoscaler.cli.simulate._profile import (
    DEFAULT_PEAK,
    Recording,
    load_metrics_csv,
    parse_seconds,
    synthetic_series,
)
from flyautoscaler.cli.simulate._report import (
    CSV_COLUMNS,
    TickRow,
    format_band,
    format_clock,
    format_seconds,
    summarize,
    write_chart,
    write_csv,
)
from flyautoscaler.cli.simulate._run import (
    DEFAULT_MACHINES,
    DEFAULT_STARTED_MACHINES,
    DEFAULT_TICK,
    DEFAULT_TRANSITION_DELAY,
    GATE_METRIC,
    Outcome,
    Plan,
    Policy,
    SimulationError,
    simulate,
)
from flyautoscaler.cli.simulate._summary import SimulationSummary
from flyautoscaler.config import Config, load_config

__all__ = ["SimulationSummary", "add_arguments", "run", "run_simulation"]

#: The built-in policy's metric and expressions (see docs/simulate.md).
DEFAULT_METRIC: Final = "queue_depth"
DEFAULT_MIN_STARTED: Final = "ceil(queue_depth / 10)"
DEFAULT_MAX_STARTED: Final = "ceil(queue_depth / 8)"
DEFAULT_MIN_CREATED: Final = "ceil(queue_depth / 10)"
DEFAULT_MAX_CREATED: Final = "max(10, ceil(queue_depth / 10) + 5)"
DEFAULT_DURATION: Final = 3600.0
#: The name of the seeded app when the configured one is a wildcard.
WILDCARD_APP: Final = "sim-app"
#: Most ticks one run may have.
MAX_TICKS: Final = 10_000
_USER_ERRORS: Final = (FlyAutoscalerError, ValueError, OSError)
_CONFIG_HINT: Final = "FAS_"
# Names a metric cannot have: the CSV's other columns.
_RESERVED: Final = frozenset({"time", "time_s", *CSV_COLUMNS})


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
        "if any is set, else the built-in policy on queue_depth)",
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
        default=DEFAULT_TRANSITION_DELAY,
        metavar="DURATION",
        help="simulated time a Machine spends starting or stopping "
        f"(default: {DEFAULT_TRANSITION_DELAY:g}s)",
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
        "(default: a new ./flyautoscaler-sim-YYYYmmdd-HHMMSS)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print no line per tick, only the summary",
    )


# --- the policy -------------------------------------------------------------------


def _default_policy() -> Policy:
    def new_reconciler(collectors: list[MetricCollector]) -> Reconciler:
        return Reconciler(
            process_group=DEFAULT_PROCESS_GROUP,
            min_created_machine_n=DEFAULT_MIN_CREATED,
            max_created_machine_n=DEFAULT_MAX_CREATED,
            min_started_machine_n=DEFAULT_MIN_STARTED,
            max_started_machine_n=DEFAULT_MAX_STARTED,
            collectors=list(collectors),
        )

    return Policy(
        source="the built-in policy",
        app_name=WILDCARD_APP,
        org="personal",
        process_group=DEFAULT_PROCESS_GROUP,
        regions=(),
        metric_names=(DEFAULT_METRIC,),
        started=(DEFAULT_MIN_STARTED, DEFAULT_MAX_STARTED),
        created=(DEFAULT_MIN_CREATED, DEFAULT_MAX_CREATED),
        interval=DEFAULT_TICK,
        new_reconciler=new_reconciler,
    )


def _explain_environment(exc: FlyAutoscalerError, names: Sequence[str]) -> None:
    verb = "is" if len(names) == 1 else "are"
    exc.add_note(
        f"simulate reads its policy from the environment because "
        f"{', '.join(names)} {verb} set; unset them to simulate the built-in policy"
    )


def _load_policy(path: str | None, environ: Mapping[str, str]) -> Policy:
    """Return the policy of ``--config`` or the ``FAS_*`` variables, or the default.

    Without ``--config``, the environment is read when a ``FAS_*`` variable
    that the configuration reads is set (one that changes it); otherwise the
    built-in policy is simulated.

    Raises:
        ConfigError: The configuration is invalid.
        OSError: The file cannot be read.
    """
    fas = {k: v for k, v in environ.items() if k.startswith(_CONFIG_HINT)}
    names = sorted(fas)
    try:
        if path is None and (
            not fas or load_config(None, fas) == load_config(None, {})
        ):
            return _default_policy()
        config = load_config(path, environ)
        config.validate(require_token=False)
    except FlyAutoscalerError as exc:
        if path is None:
            _explain_environment(exc, names)
        raise
    for name in config.metric_names():
        if name in _RESERVED or name.startswith(GATE_METRIC):
            raise ConfigError(
                f"metric name {name!r} is a column of simulate's CSV; rename it",
                field="metric_name",
            )
    return Policy(
        source=path if path is not None else "the FAS_* variables",
        app_name=WILDCARD_APP if "*" in config.app_name else config.app_name,
        org=config.org or "personal",
        process_group=config.process_group,
        regions=tuple(config.regions),
        metric_names=tuple(config.metric_names()),
        started=(config.min_started_expr(), config.max_started_expr()),
        created=(config.min_created_expr(), config.max_created_expr()),
        interval=config.interval,
        new_reconciler=functools.partial(_simulated_reconciler, config),
    )


def _simulated_reconciler(
    config: Config, collectors: list[MetricCollector]
) -> Reconciler:
    """Return the configured reconciler, without its stop metric.

    A simulated fleet has no per-Machine metric to rank by: the Machines to
    stop are chosen in the default order (lowest id first).
    """
    reconciler = config.new_reconciler(collectors)
    reconciler.stop_metric_collector = None
    return reconciler


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
            transition_delay=args.transition_delay,
            seed=args.seed,
            capacity=args.capacity,
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
        transition_delay=args.transition_delay,
        seed=args.seed,
        capacity=args.capacity,
    )


# --- the terminal -----------------------------------------------------------------


def _expressions(band: tuple[str, str]) -> str:
    low, high = band
    if not (low or high):
        return "not managed"
    if low == high:
        return low
    return f"{low or '(none)'} .. {high or '(none)'}"


def _header_lines(plan: Plan) -> list[str]:
    policy = plan.policy
    count = len(plan.times)
    return [
        f"flyautoscaler simulate: app {policy.app_name}, policy from {policy.source}",
        f"  started Machines: {_expressions(policy.started)}",
        f"  created Machines: {_expressions(policy.created)}",
        f"  metrics: {', '.join(policy.metric_names) or '(none)'}; {plan.load}",
        (
            f"  fleet: {plan.machines} Machines ({plan.started} started) in group "
            f"{policy.process_group!r}; starting or stopping takes "
            f"{format_seconds(plan.transition_delay)}"
        ),
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
    """Create and return the output folder (a new, dated one by default)."""
    if requested is not None:
        path = Path(requested)
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = datetime.now(UTC).astimezone().strftime("%Y%m%d-%H%M%S")
    base = Path(f"flyautoscaler-sim-{stamp}")
    for i in range(1, 100):
        path = base if i == 1 else Path(f"{base}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{base}: 99 folders of that name exist; use --out")


def _one_line(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    return redact(" ".join(" ".join([str(exc), *notes]).split()))


def run(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Run ``flyautoscaler simulate`` with *args* (from :func:`add_arguments`).

    Args:
        args: The parsed options.
        environ: The environment: ``FAS_*`` variables and what the
            configuration refers to.
        stdout: Where the live view and the summary go.
        stderr: Where an error goes, as one ``error: ...`` line.

    Returns:
        0 on success; 1 when the options, the configuration or the metrics
        file are invalid, an output cannot be written, or the run stalled.
    """
    try:
        plan = _plan(args, environ)
        out = _out_dir(args.out)
    except _USER_ERRORS as exc:
        print(f"error: {_one_line(exc)}", file=stderr)
        return 1
    names = list(plan.policy.metric_names)

    def show(row: TickRow) -> None:
        if not args.quiet:
            print(_table_line(row, names), file=stdout, flush=True)

    for line in _header_lines(plan):
        print(line, file=stdout)
    if not args.quiet:
        print(_table_header(names), file=stdout, flush=True)
    try:
        outcome = simulate(plan, show)
        return _report(plan, outcome, out, stdout)
    except (*_USER_ERRORS, SimulationError) as exc:
        print(f"error: {_one_line(exc)}", file=stderr)
        return 1


def _report(plan: Plan, outcome: Outcome, out: Path, stdout: TextIO) -> int:
    """Write the files and print the summary; return the exit code."""
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
    lines = [*summary(full=False), *numbers]
    csv_path = out / "timeseries.csv"
    write_csv(csv_path, rows, names)
    header = _header_lines(plan)
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
        title=f"flyautoscaler simulate: {policy.app_name}",
        subtitle=f"started = {_expressions(policy.started)}\n"
        f"created = {_expressions(policy.created)}",
    )
    print(file=stdout)
    for line in lines:
        print(line, file=stdout)
    print(
        f"  ran {format_seconds(len(rows) * plan.tick)} of simulated time in "
        f"{outcome.seconds:.1f} s",
        file=stdout,
    )
    print(f"wrote {csv_path}", file=stdout)
    print(f"wrote {summary_path}", file=stdout)
    print(f"wrote {json_path}", file=stdout)
    if drawn:
        print(f"wrote {chart_path}", file=stdout)
    else:
        print(
            "no chart: matplotlib is not installed; get it with",
            install_hint("plot"),
            file=stdout,
        )
    print(f"results in {out}", file=stdout, flush=True)
    return 0
