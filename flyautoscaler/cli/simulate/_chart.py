"""The charts of ``flyautoscaler simulate``: one run, or policies compared.

:func:`write_chart` draws one run so that it explains itself: the load under
its metric's name; the started and created targets as bands and the Machines
in them; a marker where Machines were created or destroyed and where a pass
or an action failed; shaded where a stabilization window held a target or
the fallback count applied; with a capacity, the Machines the load needed
and the under-provisioning; and the run's headline numbers in the title.
:func:`write_compare_chart` draws the started Machines of several policies
over their shared load.

Both need matplotlib (the ``flyautoscaler[plot]`` extra), imported only when
a chart is drawn, with the Agg canvas and no pyplot, so no global backend is
chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from attrs import frozen

from flyautoscaler.cli.simulate._report import Band, TickRow
from flyautoscaler.cli.simulate._summary import machines_needed

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

__all__ = ["ChartRun", "write_chart", "write_compare_chart"]

#: The rule names that shade a tick, the colour, the legend's words, and
#: whether the load panel is shaded too (a fallback is about the metrics).
_SHADES: Final = (
    ("fallback", "#f4a6a6", "fallback count (metrics failing)", True),
    ("scale_down_stabilization", "#d9c8ee", "scale-down window held the max", False),
    ("scale_up_stabilization", "#c6e2ee", "scale-up window held the min", False),
)
_STARTED: Final = "tab:blue"
_TARGET: Final = "tab:orange"
_CREATED: Final = "0.35"
_NEEDED: Final = "black"
_SHORT: Final = "tab:red"
_WIDTH: Final = 11.0
# The load's colours: none of the Machines' (blue, orange, grey) nor the
# policies' first ones.
_LOAD_COLORS: Final = ("0.25", "tab:purple", "tab:olive", "tab:cyan", "tab:pink")


@frozen
class ChartRun:
    """One policy's run, for :func:`write_compare_chart`.

    Attributes:
        label: The policy's name in the legend.
        rows: Its run.
        headline: Its numbers (:meth:`SimulationSummary.headline`).
    """

    label: str
    rows: Sequence[TickRow]
    headline: str


def _figure() -> type[Figure] | None:
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 - optional extra
    except ImportError:
        return None
    return Figure


def _scale(end: float) -> tuple[float, str]:
    if end <= 180:
        return 1.0, "s"
    if end <= 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _steps(values: Sequence[float]) -> list[float]:
    """Return *values* with the last repeated, to draw the last step to the end."""
    return [*values, values[-1]] if values else []


def _step(  # noqa: PLR0913 - the line's look, by keyword
    axes: Axes,
    x: Sequence[float],
    values: Sequence[float],
    *,
    color: str,
    lw: float,
    ls: str = "-",
    label: str | None = None,
    zorder: float = 2,
) -> None:
    """Draw *values* as steps, each holding for its tick (the last to the end)."""
    axes.step(
        x,
        _steps(values),
        where="post",
        color=color,
        lw=lw,
        ls=ls,
        label=label,
        zorder=zorder,
    )


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


def _spans(
    rows: Sequence[TickRow], tick: float, rule: str
) -> list[tuple[float, float]]:
    """Return the (start, end) of each run of ticks whose pass applied *rule*."""
    spans: list[tuple[float, float]] = []
    for row in rows:
        if rule not in row.rules:
            continue
        if spans and math.isclose(spans[-1][1], row.time):
            spans[-1] = (spans[-1][0], row.time + tick)
        else:
            spans.append((row.time, row.time + tick))
    return spans


def _load_panel(
    axes: Axes,
    x: Sequence[float],
    rows: Sequence[TickRow],
    metric_names: Sequence[str],
) -> None:
    """Draw each metric, its name on the axis."""
    for i, name in enumerate(metric_names):
        values = [r.metrics.get(name, math.nan) for r in rows]
        color = _LOAD_COLORS[i % len(_LOAD_COLORS)]
        _step(axes, x, values, label=name, lw=1.3, color=color)
    axes.set_ylabel(", ".join(metric_names) if len(metric_names) <= 2 else "load")
    axes.set_ylim(bottom=0)
    if len(metric_names) > 1:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    axes.grid(visible=True, alpha=0.3)


def _band(  # noqa: PLR0913 - one band's look, by keyword
    axes: Axes,
    x: Sequence[float],
    bands: Sequence[Band],
    *,
    color: str,
    alpha: float,
    label: str,
) -> list[Patch]:
    """Draw a target's band and its edges; return its legend handle, if drawn."""
    from matplotlib.patches import Patch  # noqa: PLC0415 - optional extra

    low, high = _bounds(bands)
    if all(math.isnan(v) for v in low):  # the target is not managed
        return []
    axes.fill_between(
        x,
        _steps(low),
        _steps(high),
        step="post",
        color=color,
        alpha=alpha,
        lw=0,
    )
    _step(axes, x, low, color=color, lw=0.9)
    _step(axes, x, high, color=color, lw=0.9)
    return [Patch(facecolor=color, alpha=alpha + 0.1, edgecolor=color, label=label)]


def _markers(
    axes: Axes, rows: Sequence[TickRow], scale: float, specs: Sequence[_Marker]
) -> None:
    for spec in specs:
        hits = [r for r in rows if spec.count(r)]
        if not hits:
            continue
        total = sum(spec.count(r) for r in hits)
        axes.scatter(
            [r.time / scale for r in hits],
            [spec.height(r) for r in hits],
            marker=spec.marker,
            s=46,
            color=spec.color,
            edgecolors="white",
            linewidths=0.6,
            zorder=5,
            label=f"{spec.label} ({total})",
        )


@frozen
class _Marker:
    marker: str
    color: str
    label: str
    count: Callable[[TickRow], int]
    height: Callable[[TickRow], float]


_MARKERS: Final = (
    _Marker(
        "^", "tab:green", "Machines created", lambda r: r.creates, lambda r: r.machines
    ),
    _Marker(
        "v",
        "tab:brown",
        "Machines destroyed",
        lambda r: r.destroys,
        lambda r: r.machines,
    ),
    _Marker(
        "X",
        "tab:red",
        "failed passes and actions",
        lambda r: r.errors + r.failures,
        lambda r: r.running,
    ),
)


def _shade(
    panels: Sequence[Axes], rows: Sequence[TickRow], tick: float, scale: float
) -> list[Artist]:
    """Shade the ticks of each rule in :data:`_SHADES`; return legend handles.

    The Machines panel is the last of *panels*; the load panel, if any, the
    first.
    """
    from matplotlib.patches import Patch  # noqa: PLC0415 - optional extra

    handles: list[Artist] = []
    for rule, color, label, everywhere in _SHADES:
        spans = _spans(rows, tick, rule)
        if not spans:
            continue
        for axes in panels if everywhere else panels[-1:]:
            for start, end in spans:
                axes.axvspan(start / scale, end / scale, color=color, alpha=0.55, lw=0)
        handles.append(Patch(color=color, alpha=0.55, label=label))
    return handles


def _needed_line(
    axes: Axes, x: Sequence[float], rows: Sequence[TickRow], capacity: tuple[str, float]
) -> list[float]:
    """Draw the Machines the load needs, ``ceil(load / capacity)``; return them."""
    metric, units = capacity
    needed = [float(machines_needed(r.metrics[metric], units)) for r in rows]
    _step(
        axes,
        x,
        needed,
        color=_NEEDED,
        lw=1.0,
        ls=":",
        label=f"needed: ceil({metric} / {units:g})",
    )
    return needed


def _capacity(
    axes: Axes,
    x: Sequence[float],
    rows: Sequence[TickRow],
    started: Sequence[float],
    capacity: tuple[str, float],
) -> None:
    """Draw the Machines the load needs, and where fewer were started."""
    needed = _needed_line(axes, x, rows, capacity)
    short = [n > s for n, s in zip(_steps(needed), _steps(started), strict=True)]
    if any(short):
        axes.fill_between(
            x,
            _steps(started),
            _steps(needed),
            where=short,
            step="post",
            color=_SHORT,
            alpha=0.85,
            zorder=3,
            lw=0,
            label="under-provisioned",
        )


def write_chart(  # noqa: PLR0913 - the labels, by keyword
    path: Path,
    rows: Sequence[TickRow],
    *,
    metric_names: Sequence[str],
    tick: float,
    title: str,
    subtitle: str,
    headline: str = "",
    capacity: float | None = None,
) -> bool:
    """Draw one run into a PNG: load, targets, Machines, events and headline.

    Args:
        path: The PNG to write.
        rows: The run.
        metric_names: The metrics, the first being the one *capacity*
            applies to.
        tick: Simulated seconds per tick.
        title: The chart's first line.
        subtitle: The policy's expressions, above the load.
        headline: The run's numbers, under the title.
        capacity: Units of the first metric one started Machine serves: the
            Machines needed are drawn, and the ticks short of them shaded.

    Returns:
        False when matplotlib is not installed (nothing is written).
    """
    figure_class = _figure()
    if figure_class is None:
        return False
    end = rows[-1].time + tick
    scale, unit = _scale(end)
    x = [r.time / scale for r in rows] + [end / scale]
    fig = figure_class(figsize=(_WIDTH, 7.0), dpi=100, layout="constrained")
    fig.suptitle(
        f"{title}\n{headline}" if headline else title, fontsize=12, fontweight="bold"
    )
    if metric_names:
        top, bottom = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.8]}
        )
        _load_panel(top, x, rows, metric_names)
        top.set_title(subtitle, fontsize=8.5, loc="left", family="monospace")
        panels = [top, bottom]
    else:
        bottom = fig.subplots()
        bottom.set_title(subtitle, fontsize=8.5, loc="left", family="monospace")
        panels = [bottom]
    shades = _shade(panels, rows, tick, scale)
    bands = [
        *_band(
            bottom,
            x,
            [r.created_band for r in rows],
            color="0.6",
            alpha=0.18,
            label="created target (min..max)",
        ),
        *_band(
            bottom,
            x,
            [r.started_band for r in rows],
            color=_TARGET,
            alpha=0.3,
            label="started target (min..max)",
        ),
    ]
    _step(
        bottom,
        x,
        [float(r.machines) for r in rows],
        color=_CREATED,
        lw=1.3,
        ls="--",
        label="created Machines",
    )
    started = [float(r.started) for r in rows]
    _step(
        bottom,
        x,
        started,
        color=_STARTED,
        lw=2.2,
        label="started Machines",
    )
    if capacity is not None and metric_names:
        _capacity(bottom, x, rows, started, (metric_names[0], capacity))
    _markers(bottom, rows, scale, _MARKERS)
    bottom.set_ylabel("Machines")
    bottom.set_xlabel(f"simulated time ({unit})")
    bottom.set_ylim(bottom=0)
    bottom.set_xlim(0, end / scale)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    handles, _ = bottom.get_legend_handles_labels()
    bottom.legend(
        handles=[*bands, *handles, *shades],
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=9,
    )
    bottom.grid(visible=True, alpha=0.3)
    fig.savefig(path, format="png")
    return True


def write_compare_chart(  # noqa: PLR0913 - the labels, by keyword
    path: Path,
    runs: Sequence[ChartRun],
    *,
    metric_names: Sequence[str],
    tick: float,
    title: str,
    subtitle: str,
    capacity: float | None = None,
) -> bool:
    """Draw the shared load and every policy's started Machines into a PNG.

    Args:
        path: The PNG to write.
        runs: The policies' runs, on the same ticks and load.
        metric_names: The metrics, the first being the one *capacity*
            applies to.
        tick: Simulated seconds per tick.
        title: The chart's first line.
        subtitle: Where the load comes from, above it.
        capacity: Units of the first metric one started Machine serves: the
            Machines needed are drawn.

    Returns:
        False when matplotlib is not installed (nothing is written).
    """
    figure_class = _figure()
    if figure_class is None:
        return False
    rows = runs[0].rows
    end = rows[-1].time + tick
    scale, unit = _scale(end)
    x = [r.time / scale for r in rows] + [end / scale]
    fig = figure_class(figsize=(_WIDTH, 7.0), dpi=100, layout="constrained")
    fig.suptitle(title, fontsize=12, fontweight="bold")
    if metric_names:
        top, bottom = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.8]}
        )
        _load_panel(top, x, rows, metric_names)
        top.set_title(subtitle, fontsize=9, loc="left")
    else:
        bottom = fig.subplots()
        bottom.set_title(subtitle, fontsize=9, loc="left")
    if capacity is not None and metric_names:
        _needed_line(bottom, x, rows, (metric_names[0], capacity))
    for i, run in enumerate(runs):
        _step(
            bottom,
            x,
            [float(r.started) for r in run.rows],
            color=f"C{i % 10}",
            # Each narrower than the one before: where they coincide, all show.
            lw=max(1.2, 3.4 - 0.9 * i),
            zorder=2 + i,
            label=f"{run.label}: {run.headline}",
        )
    bottom.set_ylabel("started Machines")
    bottom.set_xlabel(f"simulated time ({unit})")
    bottom.set_ylim(bottom=0)
    bottom.set_xlim(0, end / scale)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=9, frameon=False
    )
    bottom.grid(visible=True, alpha=0.3)
    fig.savefig(path, format="png")
    return True
