"""Asking an app's collectors for their values, with or without a deadline.

:class:`Gatherer` asks every :class:`~flyautoscaler.MetricCollector` of a
reconciler and returns a :class:`Collection`: the values it got and an error
for each collector that failed, as a value. Nothing is stored: the pass takes
the values it is handed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from attrs import define, field, frozen

from flyautoscaler._errors import MetricCollectionError
from flyautoscaler._log import get_logger
from flyautoscaler._protocols import MetricCollector

__all__ = ["Collection", "Gatherer", "InstantCollector", "collect_one"]

logger = get_logger("flyautoscaler.reconciler")


@frozen
class Collection:
    """What one collection got.

    Attributes:
        values: Each collector's value, by metric name (the ones that answered).
        errors: One error per collector that failed, in the collectors' order.
    """

    values: Mapping[str, float]
    errors: tuple[MetricCollectionError, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every collector answered."""
        return not self.errors


def collect_one(
    collector: MetricCollector, app_name: str
) -> float | MetricCollectionError:
    """Ask *collector* for *app_name*'s value; return it, or the error to report."""
    name = collector.name
    try:
        value = collector.collect_metric(app_name)
    except MetricCollectionError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - any collector failure is reported
        error = MetricCollectionError(name, f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
    if not isinstance(value, bool) and isinstance(value, int | float):
        return float(value)
    return MetricCollectionError(
        name,
        f"collect_metric returned {type(value).__name__}, not a number",
        transient=False,
    )


class InstantCollector:
    """Marks a collector that answers at once, from memory, and never blocks.

    With a deadline, :class:`Gatherer` asks such a collector on the calling
    thread instead of a thread of its own: the simulator's collectors, which
    hand each pass its tick's values, save a thread start per pass.
    """

    __slots__ = ()


class _Asking:
    """One collector asked on a daemon thread, for a collection with a deadline."""

    def __init__(self, collector: MetricCollector, app_name: str) -> None:
        self._collector = collector
        self._app_name = app_name
        self._began = time.monotonic()
        self._result: float | MetricCollectionError | None = None
        self.finished = threading.Event()

    def start(self) -> None:
        threading.Thread(
            target=self._run,
            name=f"flyautoscaler-collect-{self._collector.name}",
            daemon=True,
        ).start()

    def _run(self) -> None:
        try:
            self._result = collect_one(self._collector, self._app_name)
        finally:
            self.finished.set()

    def outcome(self) -> float | MetricCollectionError:
        """Return the value or error, or a time-out error if still running."""
        if self.finished.is_set() and self._result is not None:
            return self._result
        waited = time.monotonic() - self._began
        return MetricCollectionError(
            self._collector.name,
            f"no value within {waited:.3g} s, the time left in the pass "
            "(a source that hangs or answers too slowly)",
        )


@define
class Gatherer:
    """Asks one app's collectors; remembers which are still busy from a past pass.

    Attributes:
        clock: The clock deadlines are on.
    """

    clock: Callable[[], float] = field(default=time.monotonic)
    _busy: dict[str, _Asking] = field(init=False, factory=dict)
    _lock: threading.Lock = field(init=False, factory=threading.Lock)

    def collect(
        self,
        collectors: Sequence[MetricCollector],
        app_name: str,
        deadline: float | None = None,
    ) -> Collection:
        """Ask every collector for *app_name*'s value; log each failure.

        Without a *deadline* they are asked one after another on this thread,
        however long they take. With one they are asked at once, each on a
        daemon thread, and one that has not answered by the deadline fails
        ("no value within ..."). Its thread is left to end on its own; until it
        has, that collector is not asked again (a stuck source costs one
        thread, not one per pass).
        """
        if deadline is None:
            outcomes = [(c.name, collect_one(c, app_name)) for c in collectors]
        else:
            outcomes = self._with_deadline(collectors, app_name, deadline)
        values: dict[str, float] = {}
        errors: list[MetricCollectionError] = []
        for name, outcome in outcomes:
            if isinstance(outcome, float):
                values[name] = outcome
                continue
            logger.warning(
                "metrics.collect_failed",
                extra={"app": app_name, "collector": name, "error": str(outcome)},
            )
            errors.append(outcome)
        return Collection(values, tuple(errors))

    def _with_deadline(
        self, collectors: Sequence[MetricCollector], app_name: str, deadline: float
    ) -> list[tuple[str, float | MetricCollectionError]]:
        asked: list[tuple[str, _Asking | float | MetricCollectionError | None]] = []
        for collector in collectors:
            name = collector.name
            if isinstance(collector, InstantCollector):
                asked.append((name, collect_one(collector, app_name)))
                continue
            with self._lock:
                busy = self._busy.get(name)
                if busy is not None and not busy.finished.is_set():
                    asked.append((name, None))
                    continue
                fresh = _Asking(collector, app_name)
                self._busy[name] = fresh
            fresh.start()
            asked.append((name, fresh))
        outcomes: list[tuple[str, float | MetricCollectionError]] = []
        for name, asking in asked:
            if asking is None:
                stuck = "still collecting for an earlier pass: not asked"
                outcomes.append((name, MetricCollectionError(name, stuck)))
                continue
            if not isinstance(asking, _Asking):  # an instant collector's outcome
                outcomes.append((name, asking))
                continue
            asking.finished.wait(max(0.0, deadline - self.clock()))
            outcomes.append((name, asking.outcome()))
        return outcomes
