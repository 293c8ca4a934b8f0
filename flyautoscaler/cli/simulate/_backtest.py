"""``simulate --from-prometheus``: a past span of the configured queries, per tick.

The configured Prometheus collectors' own queries (their address, token,
``$APP_NAME`` and ``metric-query-variables``, as ``serve`` sends them) are
asked as range queries (:meth:`PrometheusCollector.query_range
<flyautoscaler.collectors.PrometheusCollector.query_range>`) over
``--start`` .. ``--end``, one point per tick. The ticks are the whole
multiples of the step since the Unix epoch from the start (included) to the
end (excluded), so that each is a time a range query evaluates at, on
Prometheus as on servers that align the span to the step.

A span longer than :data:`MAX_POINTS` ticks is asked in chunks of at most that
many, each chunk starting one step after the last one ended, so no tick is
asked twice or skipped. A tick without a point is a gap: it gets no value
(:class:`~flyautoscaler.cli.simulate._run.NoValue`), so that tick's pass
fails for that metric as it would in a metrics outage, and the header lists
the gaps.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from attrs import frozen

from flyautoscaler._durations import format_brief, parse_duration
from flyautoscaler._errors import MetricCollectionError, redact
from flyautoscaler._names import expand_metric_query, format_wildcard_as_regexp
from flyautoscaler.cli.simulate._run import NoValue
from flyautoscaler.collectors import PrometheusCollector
from flyautoscaler.config import Config, load_config

__all__ = [
    "MAX_POINTS",
    "MAX_REQUESTS",
    "RANGE_TIMEOUT",
    "Gap",
    "History",
    "Span",
    "fetch_history",
    "load_history",
    "parse_time",
    "refuse_range_options",
]

#: Most points Prometheus returns per series for one range query.
MAX_POINTS: Final = 11_000
#: Most range queries one replay may send, over all metrics.
MAX_REQUESTS: Final = 100
#: (connect, read) timeout of each range query, in seconds.
RANGE_TIMEOUT: Final = (5.0, 60.0)
#: Gaps the header lists; it counts the others.
GAPS_SHOWN: Final = 3

_TIME_FORMS: Final = (
    "RFC 3339 such as 2026-11-23T00:00:00Z, or relative to now such as -7d, "
    "-2h, -30m or now"
)
_RELATIVE: Final = re.compile(r"-(?:(?P<days>\d+(?:\.\d+)?)d)?(?P<rest>.*)", re.ASCII)
# The options only a replay takes, by attribute, as the user writes them.
_RANGE_OPTIONS: Final = {
    "start": "--start",
    "end": "--end",
    "step": "--step",
    "app": "--app",
}
# The options a replay does without: the span and the step say it all.
_OTHER_SOURCES: Final = {
    "metrics": "--metrics (a replay's values come from Prometheus)",
    "duration": "--duration (the span is --start to --end)",
    "tick": "--tick (a replay's tick is --step)",
}


# --- times ------------------------------------------------------------------------


def parse_time(text: str, *, option: str, now: float) -> float:
    """Return the Unix time *text* means.

    Args:
        text: RFC 3339 with a time zone (``2026-11-23T00:00:00Z``,
            ``2026-11-23T01:00:00+01:00``), ``now``, or ``-`` and a duration
            before now: days (``-7d``), a Go duration (``-2h``, ``-1h30m``)
            or both (``-1d12h``).
        option: The option it was given to, for messages.
        now: The Unix time relative times count from.

    Raises:
        ValueError: *text* is none of those; the message names *option*.
    """
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        return now - _ago(value, text, option)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{option} {text!r} is not a time: use {_TIME_FORMS}"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{option} {text!r} has no time zone: end it with Z (UTC) or an "
            "offset such as +01:00"
        )
    return moment.timestamp()


def _ago(value: str, text: str, option: str) -> float:
    """Return the seconds a relative time (``-7d``, ``-2h``) is before now."""
    found = _RELATIVE.fullmatch(value)
    days, rest = (found["days"], found["rest"]) if found else (None, "")
    seconds: float | None = None
    if (days or rest) and rest[:1] not in {"+", "-"}:
        with contextlib.suppress(ValueError):
            duration = parse_duration(rest) if rest else 0.0
            seconds = float(days or 0) * 86_400 + duration
    if seconds is None:
        raise ValueError(
            f"{option} {text!r} is not a time: use {_TIME_FORMS}; a relative "
            "time is - and days (7d), a duration (2h, 1h30m, 90s) or both (1d12h)"
        )
    return seconds


def format_instant(ms: int) -> str:
    """Return the Unix time *ms* (milliseconds) in RFC 3339, in UTC."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


# --- the span ---------------------------------------------------------------------


@frozen
class Span:
    """The ticks of a replay: ``count`` times, ``step_ms`` apart from ``first_ms``.

    Attributes:
        first_ms: The first tick, in Unix milliseconds (a multiple of the step).
        step_ms: Milliseconds between two ticks, at least 1.
        count: How many ticks.
    """

    first_ms: int
    step_ms: int
    count: int

    @classmethod
    def between(cls, start: float, end: float, step: float) -> Span:
        """Return the ticks from *start* (included) to *end* (excluded).

        They are the whole multiples of *step* since the Unix epoch, to the
        millisecond; there may be none (``count`` 0).

        Raises:
            ValueError: *step* is not at least a millisecond.
        """
        step_ms = round(step * 1000) if math.isfinite(step) else 0
        if step_ms < 1:
            raise ValueError(f"--step must be at least 1ms, got {step:g}s")
        start_ms = math.ceil(round(start * 1000, 3))
        end_ms = math.ceil(round(end * 1000, 3))
        first_ms = -(-start_ms // step_ms) * step_ms
        count = max(0, -(-(end_ms - first_ms) // step_ms))
        return cls(first_ms, step_ms, count)

    @property
    def step(self) -> float:
        """Seconds between two ticks."""
        return self.step_ms / 1000

    @property
    def times(self) -> tuple[float, ...]:
        """Each tick in seconds from the first one (the simulation's clock)."""
        return tuple(k * self.step for k in range(self.count))

    def tick_ms(self, k: int) -> int:
        """Return tick *k* in Unix milliseconds."""
        return self.first_ms + k * self.step_ms

    def chunks(self, max_points: int) -> list[tuple[int, int]]:
        """Return the first and last tick of each query: at most *max_points* each.

        Each chunk starts one tick after the one before it ended.
        """
        return [
            (first, min(first + max_points, self.count) - 1)
            for first in range(0, self.count, max_points)
        ]

    def describe(self) -> str:
        """Return the span in words: its first and last tick, its step, its size."""
        last = self.tick_ms(self.count - 1)
        return (
            f"{format_instant(self.first_ms)} to {format_instant(last)}, a point "
            f"every {format_brief(self.step)} ({self.count} per metric)"
        )


# --- the history ------------------------------------------------------------------


@frozen
class Gap:
    """Ticks in a row at which a metric has no point.

    Attributes:
        metric: The metric.
        first: The first tick without a point (its index).
        last: The last one.
    """

    metric: str
    first: int
    last: int

    @property
    def ticks(self) -> int:
        """How many ticks it spans."""
        return self.last - self.first + 1

    def describe(self, span: Span) -> str:
        """Return the gap in words: the metric, its times, its ticks."""
        begin = format_instant(span.tick_ms(self.first))
        if self.first == self.last:
            return f"{self.metric} at {begin} (1 tick)"
        end = format_instant(span.tick_ms(self.last))
        return f"{self.metric} from {begin} to {end} ({self.ticks} ticks)"


@frozen
class History:
    """What a replay fetched: each metric's value at each tick, and whence.

    Attributes:
        app_name: The app the queries were expanded for.
        address: The server (without credentials).
        queries: Each metric's query, as sent (expanded), by metric.
        span: The ticks.
        values: Each metric's value at each tick; :class:`NoValue` at a gap.
        gaps: The gaps, by metric, in time order.
        requests: The range queries sent.
        seconds: Real seconds the fetch took.
    """

    app_name: str
    address: str
    queries: Mapping[str, str]
    span: Span
    values: Mapping[str, Sequence[float | NoValue]]
    gaps: tuple[Gap, ...]
    requests: int
    seconds: float

    @property
    def gap_ticks(self) -> int:
        """How many ticks lack a point of at least one metric."""
        return len({k for g in self.gaps for k in range(g.first, g.last + 1)})

    def describe(self) -> str:
        """Return where the values came from, in lines for the run's header."""
        lines = [
            f"replayed from Prometheus at {self.address} for app {self.app_name}",
            (
                f"    span: {self.span.describe()}; time 0:00:00 is "
                f"{format_instant(self.span.first_ms)}"
            ),
            (
                f"    fetched in {self.requests} range "
                f"{'query' if self.requests == 1 else 'queries'} "
                f"({self.seconds:.2f} s)"
            ),
            *(f"    query {name}: {query}" for name, query in self.queries.items()),
        ]
        if not self.gaps:
            lines.append("    gaps: none, every tick has a value of every metric")
            return "\n".join(lines)
        shown = "; ".join(g.describe(self.span) for g in self.gaps[:GAPS_SHOWN])
        more = len(self.gaps) - GAPS_SHOWN
        lines.append(
            f"    gaps: {self.gap_ticks} of {self.span.count} ticks have no data "
            f"in {len(self.gaps)} {'span' if len(self.gaps) == 1 else 'spans'} "
            f"({shown}{f'; {more} more' if more > 0 else ''}): their passes "
            "fail for lack of the metric, as in a metrics outage"
        )
        return "\n".join(lines)


def fetch_history(  # noqa: PLR0913 - the span, then options by keyword
    collectors: Sequence[PrometheusCollector],
    app_name: str,
    span: Span,
    *,
    max_points: int = MAX_POINTS,
    timeout: tuple[float, float] = RANGE_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> History:
    """Ask each collector's query over *span*; return the values per tick.

    Args:
        collectors: The queries, one metric each.
        app_name: The app (``$APP_NAME``).
        span: The ticks.
        max_points: Most ticks one query asks for.
        timeout: (connect, read) timeout of each query.
        clock: Measures the fetch (real seconds).

    Returns:
        The history. A tick without a point gets the collector's ``default``
        when it has one (as an empty instant query would), else a gap.

    Raises:
        PrometheusQueryError: A query failed (the server's message included),
            returned several series or no point at all in the span.
        MetricCollectionError: The server answered a point off the ticks.
    """
    began = clock()
    values: dict[str, list[float | NoValue]] = {}
    gaps: list[Gap] = []
    requests = 0
    for collector in collectors:
        points: dict[int, float] = {}
        for first, last in span.chunks(max_points):
            answer = collector.query_range(
                app_name,
                span.tick_ms(first) / 1000,
                span.tick_ms(last) / 1000,
                span.step,
                timeout=timeout,
            )
            requests += 1
            for t, value in answer:
                points[_tick(collector.name, span, t, first, last)] = value
        if not points and collector.default is None:
            raise MetricCollectionError(
                collector.name,
                f"the query has no data from {format_instant(span.first_ms)} to "
                f"{format_instant(span.tick_ms(span.count - 1))} for app "
                f"{app_name}: check the query, the app and the span",
                transient=False,
            )
        values[collector.name] = _series(collector, span, points, gaps)
    return History(
        app_name=app_name,
        address=collector_address(collectors),
        queries={
            c.name: redact(
                expand_metric_query(c.query, app_name, variables=c.variables)
            )
            for c in collectors
        },
        span=span,
        values=values,
        gaps=tuple(gaps),
        requests=requests,
        seconds=clock() - began,
    )


def _tick(name: str, span: Span, t: float, first: int, last: int) -> int:
    """Return the tick of a point at *t* asked for in ticks *first*..*last*.

    Raises:
        MetricCollectionError: *t* is not one of those ticks.
    """
    offset = round(t * 1000) - span.first_ms
    k, off = divmod(offset, span.step_ms)
    if off or not first <= k <= last:
        raise MetricCollectionError(
            name,
            f"the server answered a point at {t:.3f}, which is not a time it was "
            f"asked for (every {format_brief(span.step)} from "
            f"{format_instant(span.tick_ms(first))} to "
            f"{format_instant(span.tick_ms(last))})",
            transient=False,
        )
    return k


def _series(
    collector: PrometheusCollector,
    span: Span,
    points: Mapping[int, float],
    gaps: list[Gap],
) -> list[float | NoValue]:
    """Return the value at each tick of *span*; append the gaps to *gaps*."""
    series: list[float | NoValue] = []
    start: int | None = None
    for k in range(span.count):
        value = points.get(k, collector.default)
        if value is not None:
            series.append(value)
            if start is not None:
                gaps.append(Gap(collector.name, start, k - 1))
                start = None
            continue
        series.append(NoValue(f"no data at {format_instant(span.tick_ms(k))}"))
        start = k if start is None else start
    if start is not None:
        gaps.append(Gap(collector.name, start, span.count - 1))
    return series


def collector_address(collectors: Sequence[PrometheusCollector]) -> str:
    """Return the servers of *collectors*, without credentials, as one text."""
    return ", ".join(dict.fromkeys(c.shown_address for c in collectors))


# --- from the options -------------------------------------------------------------


def refuse_range_options(args: argparse.Namespace) -> None:
    """Refuse the options only ``--from-prometheus`` takes, when it is not given.

    Raises:
        ValueError: One of them is given.
    """
    for attribute, option in _RANGE_OPTIONS.items():
        if getattr(args, attribute) is not None:
            raise ValueError(f"{option} needs --from-prometheus")


def _replayed(
    config: Config, source: str, environ: Mapping[str, str]
) -> list[PrometheusCollector]:
    """Return the configured collectors, which must all be Prometheus ones.

    Raises:
        ValueError: There is none, or one is of another type.
        ConfigError: One cannot be built.
    """
    if not config.metric_collectors:
        raise ValueError(
            f"--from-prometheus replays the configured Prometheus queries, and "
            f"{source} has none: give --config FILE, or the FAS_PROMETHEUS_* "
            "variables"
        )
    for i, entry in enumerate(config.metric_collectors):
        if entry.type != "prometheus":
            raise ValueError(
                f"--from-prometheus replays Prometheus queries only, and "
                f"metric-collectors[{i}] ({entry.metric_name!r}) is a "
                f"{entry.type} collector"
            )
    return [
        c
        for c in config.build_collectors(environ)
        if isinstance(c, PrometheusCollector)
    ]


def _app_name(configured: str, given: str | None) -> str:
    """Return the app whose history is replayed: ``--app``, or the configured one.

    Raises:
        ValueError: The configured name is a pattern and ``--app`` is missing
            or does not match it, or it is a name and ``--app`` differs.
    """
    if "*" not in configured:
        if given is not None and given != configured:
            raise ValueError(
                f"--app {given!r}: the configuration scales the app {configured!r} "
                "(--app names one app of a wildcard app-name)"
            )
        return configured
    if given is None:
        raise ValueError(
            f"the configured app-name {configured!r} is a wildcard: name the app "
            "whose history to replay with --app NAME"
        )
    if not re.fullmatch(format_wildcard_as_regexp(configured), given):
        raise ValueError(
            f"--app {given!r} does not match the configured app-name {configured!r}"
        )
    return given


def _span(
    args: argparse.Namespace, *, interval: float, now: float, max_ticks: int
) -> Span:
    """Return the ticks ``--start``, ``--end`` and ``--step`` ask for.

    Raises:
        ValueError: A time is invalid, the start is not before the end, the
            end is after now, or there are no ticks or too many.
    """
    if args.start is None:
        raise ValueError(f"--from-prometheus needs --start: {_TIME_FORMS}")
    start = parse_time(args.start, option="--start", now=now)
    end_text = "now" if args.end is None else args.end
    end = parse_time(end_text, option="--end", now=now)
    shown = (
        f"--start {args.start!r} ({_instant(start)}), "
        f"--end {end_text!r} ({_instant(end)})"
    )
    if start >= end:
        raise ValueError(f"the start must come before the end: {shown}")
    if end > now:
        raise ValueError(f"the end is after now ({_instant(now)}): {shown}")
    step: float = args.step or interval
    span = Span.between(start, end, step)
    if span.count == 0:
        raise ValueError(
            f"no tick: no multiple of --step {format_brief(step)} since the Unix "
            f"epoch falls between {shown}"
        )
    if span.count > max_ticks:
        raise ValueError(
            f"{span.count} ticks of {format_brief(span.step)} from "
            f"{_instant(start)} to {_instant(end)}: at most {max_ticks}; lengthen "
            "--step or shorten the span"
        )
    return span


def _instant(seconds: float) -> str:
    return format_instant(round(seconds * 1000))


def load_history(  # noqa: PLR0913 - what a replay is made of, by keyword
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    source: str,
    interval: float,
    max_ticks: int,
    now: float,
) -> History:
    """Check the replay's options, then fetch the history they ask for.

    Args:
        args: simulate's options.
        environ: The environment the configuration is read from.
        source: Where the policy comes from, in words.
        interval: The policy's interval: the default ``--step``.
        max_ticks: Most ticks a run may have.
        now: The Unix time relative times count from.

    Raises:
        ValueError: An option is invalid or conflicts with the replay, the
            configuration has a collector that is not Prometheus, or there
            are too many ticks or queries, or a gap where ``--capacity``
            needs a value.
        ConfigError: The configuration is invalid.
        PrometheusQueryError: A query failed.
    """
    for attribute, option in _OTHER_SOURCES.items():
        if getattr(args, attribute) is not None:
            raise ValueError(f"--from-prometheus takes no {option}")
    span = _span(args, interval=interval, now=now, max_ticks=max_ticks)
    config = load_config(args.config, environ)
    collectors = _replayed(config, source, environ)
    app_name = _app_name(config.app_name, args.app)
    requests = len(collectors) * len(span.chunks(MAX_POINTS))
    if requests > MAX_REQUESTS:
        raise ValueError(
            f"the replay needs {requests} range queries, at most {MAX_REQUESTS}: "
            "lengthen --step or shorten the span"
        )
    history = fetch_history(collectors, app_name, span)
    first = collectors[0].name
    short = [g for g in history.gaps if g.metric == first]
    if args.capacity is not None and short:
        raise ValueError(
            f"--capacity needs a value of {first} at every tick, and "
            f"{sum(g.ticks for g in short)} ticks have none (first: "
            f"{short[0].describe(span)}): shorten the span around the gaps, or "
            "leave out --capacity"
        )
    return history
