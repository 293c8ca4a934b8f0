"""Metric values for ``flyautoscaler simulate``: a synthetic load, or a recording.

:func:`synthetic_series` draws the default load (quiet, a ramp, a plateau, a
spike, a decay, with seeded noise); :func:`load_metrics_csv` reads a recorded
time series and says which line and column is wrong when it cannot.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from attrs import frozen

from flyautoscaler._durations import parse_seconds

if TYPE_CHECKING:
    from _csv import Reader as _Reader

__all__ = [
    "DEFAULT_PEAK",
    "MetricsFileError",
    "Recording",
    "load_metrics_csv",
    "parse_seconds",
    "synthetic_series",
]

#: Peak of the default synthetic load: 150 queued jobs.
DEFAULT_PEAK: Final = 150.0
#: Relative standard deviation of the synthetic load's noise.
NOISE: Final = 0.05
#: The time column of a ``--metrics`` file (``time_s`` is accepted too).
TIME_COLUMNS: Final = ("time", "time_s")
#: Most data rows read from a ``--metrics`` file.
MAX_ROWS: Final = 1_000_000

# The load's shape: (fraction of the duration, fraction of the peak) corners,
# joined by straight lines; after the last one it decays exponentially.
_CORNERS: Final = (
    (0.00, 0.05),
    (0.10, 0.05),  # quiet
    (0.35, 0.40),  # ramp
    (0.50, 0.40),  # plateau
    (0.53, 1.00),  # spike
    (0.60, 1.00),
)
_BASELINE: Final = 0.05
_DECAY: Final = 0.08  # time constant of the decay, as a fraction of the duration


def _shape(x: float) -> float:
    """Return the load at *x* (fraction of the duration) as a fraction of the peak."""
    last_x, last_y = _CORNERS[-1]
    if x >= last_x:
        return _BASELINE + (last_y - _BASELINE) * math.exp(-(x - last_x) / _DECAY)
    for (x0, y0), (x1, y1) in itertools.pairwise(_CORNERS):
        if x0 <= x < x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return _CORNERS[0][1]


def synthetic_series(
    names: Sequence[str],
    times: Sequence[float],
    *,
    duration: float,
    peak: float = DEFAULT_PEAK,
    seed: int = 1,
) -> dict[str, list[float]]:
    """Return the default load for each metric at each time.

    Every metric follows the same shape, scaled to *peak*: quiet at 5 % of
    it for the first tenth of the run, a ramp to 40 % by 35 %, a plateau, a
    spike to the peak at 50-53 %, held until 60 %, then an exponential decay
    back towards 5 %. Each value gets its own Gaussian noise (5 %), drawn from
    a generator seeded with *seed* and the metric's name, so a run repeats
    exactly. Values are whole numbers when *peak* is at least 10 (a count,
    such as a queue depth), otherwise rounded to 3 decimals; never negative.

    Args:
        names: The metrics.
        times: Seconds from the start.
        duration: The run's length in seconds (the shape spans it).
        peak: The spike's height.
        seed: The noise's seed.
    """
    out: dict[str, list[float]] = {}
    span = max(duration, 1e-9)
    for name in names:
        rng = random.Random(f"{seed}:{name}")  # noqa: S311 - repeatable noise
        values: list[float] = []
        for t in times:
            value = peak * _shape(t / span) * (1.0 + rng.gauss(0.0, NOISE))
            value = max(0.0, value)
            values.append(float(round(value)) if peak >= 10 else round(value, 3))
        out[name] = values
    return out


class MetricsFileError(ValueError):
    """A ``--metrics`` file cannot be replayed; the message names line and column."""


@frozen
class Recording:
    """A recorded time series: each metric's value from each row's time on.

    Attributes:
        times: Seconds from the start, strictly increasing.
        values: Each metric's values, one per time.
    """

    times: tuple[float, ...]
    values: Mapping[str, tuple[float, ...]]

    @property
    def end(self) -> float:
        """The last row's time."""
        return self.times[-1]

    def value_at(self, name: str, t: float) -> float:
        """Return the value of *name* recorded last at or before *t*.

        Before the first row's time, the first row's value.
        """
        i = bisect.bisect_right(self.times, t) - 1
        return self.values[name][max(i, 0)]


def _number(text: str, where: str, column: str) -> float:
    cell = text.strip()
    if not cell:
        raise MetricsFileError(f"{where}, column {column!r}: empty value")
    try:
        value = float(cell)
    except ValueError:
        raise MetricsFileError(
            f"{where}, column {column!r}: not a number: {cell!r}"
        ) from None
    if not math.isfinite(value):
        raise MetricsFileError(f"{where}, column {column!r}: not finite: {cell!r}")
    return value


def _header(
    header: list[str] | None, path: str, names: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """Return the time column's index and each metric's, from the header row."""
    if header is None:
        raise MetricsFileError(
            f"{path}: empty file; expected a header row with 'time' and "
            + ", ".join(repr(n) for n in names)
        )
    columns = [c.strip() for c in header]
    where = f"{path}, line 1"
    for i, column in enumerate(columns):
        if columns.index(column) != i:
            raise MetricsFileError(f"{where}: column {column!r} appears twice")
    time_index = next((columns.index(c) for c in TIME_COLUMNS if c in columns), None)
    if time_index is None:
        raise MetricsFileError(
            f"{where}: no 'time' column (seconds from the start); "
            f"the header is {','.join(columns)!r}"
        )
    missing = [n for n in names if n not in columns]
    if missing:
        raise MetricsFileError(
            f"{where}: no column for the metric "
            + ", ".join(repr(n) for n in missing)
            + "; the policy uses "
            + ", ".join(repr(n) for n in names)
        )
    return time_index, {n: columns.index(n) for n in names}


def _time(cell: str, where: str, previous: float | None) -> float:
    t = _number(cell, where, "time")
    if t < 0:
        raise MetricsFileError(f"{where}, column 'time': negative: {t:g}")
    if previous is not None and t <= previous:
        raise MetricsFileError(
            f"{where}, column 'time': {t:g} is not after the previous row's "
            f"{previous:g}"
        )
    return t


def _read(reader: _Reader, path: str, names: Sequence[str]) -> Recording:
    time_index, indexes = _header(next(reader, None), path, names)
    times: list[float] = []
    values: dict[str, list[float]] = {n: [] for n in names}
    needed = max([time_index, *indexes.values()]) + 1
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}, line {reader.line_num}"
        if len(times) >= MAX_ROWS:
            raise MetricsFileError(f"{where}: more than {MAX_ROWS} rows")
        if len(row) < needed:
            raise MetricsFileError(
                f"{where}: {len(row)} fields, the header has at least {needed}"
            )
        times.append(_time(row[time_index], where, times[-1] if times else None))
        for name, i in indexes.items():
            values[name].append(_number(row[i], where, name))
    if not times:
        raise MetricsFileError(f"{path}: no data rows after the header")
    return Recording(tuple(times), {n: tuple(v) for n, v in values.items()})


def load_metrics_csv(path: str, names: Sequence[str]) -> Recording:
    """Read a recorded time series from a CSV file.

    The header names a ``time`` column (seconds from the start; ``time_s`` is
    accepted too) and one column per metric in *names*; other columns are
    ignored, so a ``timeseries.csv`` written by ``simulate`` replays as is.
    Times must be finite, at least 0 and strictly increasing; values finite
    numbers. Blank lines are skipped.

    Args:
        path: The file.
        names: The metrics the policy uses.

    Returns:
        The recording.

    Raises:
        MetricsFileError: The file is not such a series; the message names the
            line and the column.
        OSError: The file cannot be read.
    """
    with Path(path).open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, strict=True)
        try:
            return _read(reader, path, names)
        except csv.Error as exc:
            raise MetricsFileError(
                f"{path}, line {reader.line_num}: invalid CSV: {exc}"
            ) from None
        except UnicodeDecodeError as exc:
            raise MetricsFileError(f"{path}: not UTF-8 text: {exc.reason}") from None
