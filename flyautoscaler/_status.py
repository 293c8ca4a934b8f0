"""What a pool knows of its apps, built from the report of each pass.

A :class:`~flyautoscaler.ReconcilerPool` publishes a :class:`PassReport` after
every pass to its subscribers (:meth:`ReconcilerPool.subscribe`). The first
subscriber is the pool's own :class:`StatusBoard`, which keeps each app's
:class:`AppStatus` and tells its health; the Prometheus series, ``/healthz``
and the simulator read from there or subscribe themselves. Nothing learns what
a pass did from log records.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from typing import Final, Literal

from attrs import define, evolve, field, frozen

from flyautoscaler._results import ReconcileResult

__all__ = [
    "ERROR_KINDS",
    "AppStatus",
    "PassReport",
    "PoolHealth",
    "PoolState",
    "StatusBoard",
]

#: Kinds of errors counted per app (``AppStatus.errors``).
ERROR_KINDS: Final = (
    "release",
    "collect",
    "expression",
    "api",
    "action",
    "timeout",
    "reconcile",
    "internal",
    "coordination",
)


class PoolState(enum.Enum):
    """Where a :class:`~flyautoscaler.ReconcilerPool` is in its life."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


#: How a pass ended: it did its work, it failed, a deploy made the pool skip
#: it, or the pool closed during it.
Outcome = Literal["ok", "failed", "skipped", "cancelled"]


@frozen
class PassReport:
    """What one pass of one app did, as the pool publishes it.

    Attributes:
        app_name: The app.
        started: When the pass started, on the pool's clock.
        duration: Seconds it took.
        lag: Seconds it started after it was due.
        outcome: ``"ok"``, ``"failed"``, ``"skipped"`` (a deploy was running)
            or ``"cancelled"`` (the pool closed during it).
        metrics: The metric values collected (those that came back), or
            ``None`` when the pass ended before collecting (a deploy running,
            a failed release look-up).
        result: The reconcile result, when the pass got that far.
        error: Why the pass failed, in words (``""`` unless it failed).
        kinds: The kinds of error counted for it (see :data:`ERROR_KINDS`);
            a pass whose Machine actions failed counts ``"action"``.
    """

    app_name: str
    started: float
    duration: float
    lag: float
    outcome: Outcome
    metrics: Mapping[str, float] | None = None
    result: ReconcileResult | None = None
    error: str = ""
    kinds: tuple[str, ...] = ()

    @property
    def ok(self) -> bool | None:
        """Whether the pass succeeded; ``None`` for a skipped or cancelled one."""
        return (
            None if self.outcome in {"skipped", "cancelled"} else (self.outcome == "ok")
        )


@define
class AppStatus:
    """What the pool knows of one app, for metrics and inspection.

    Attributes:
        name: The app.
        passes: Passes completed (skipped ones included).
        skipped: Passes skipped: a deploy was running, or (with a
            coordinator) another replica owns the app or holds its lease.
        errors: Errors by kind: ``release`` (the release look-up failed),
            ``collect``, ``expression``, ``api`` (listing Machines or another
            API call failed), ``action`` (a pass with failed Machine actions),
            ``timeout``, ``reconcile`` (e.g. no Machine to clone), ``internal``.
        last_duration: Seconds the last pass took.
        duration_sum: Seconds all passes took.
        last_lag: Seconds the last pass started after it was due.
        metrics: The last collected metric values.
        last_result: The last result a pass returned (an earlier pass's when
            the last one failed before it had a result).
        last_ok: Whether the last pass succeeded: ``None`` before the first
            pass and while every pass was skipped (a deploy running).
        last_error: Why the last pass failed, in words (``""`` when it did not).
        consecutive_failures: Failed passes in a row, up to now (skipped passes
            leave it as it is).
        running_since: When the pass in progress started (on the pool's
            clock), or ``None`` when no pass runs.
        owner: With a coordinator: the replica that owns the app (by
            rendezvous hashing over the live replicas), ``None`` while unknown
            (or without a coordinator).
        owned: With a coordinator: whether this replica owns the app;
            ``None`` without one.
    """

    name: str
    passes: int = 0
    skipped: int = 0
    errors: dict[str, int] = field(factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    last_duration: float = 0.0
    duration_sum: float = 0.0
    last_lag: float = 0.0
    metrics: dict[str, float] = field(factory=dict)
    last_result: ReconcileResult | None = None
    last_ok: bool | None = None
    last_error: str = ""
    consecutive_failures: int = 0
    running_since: float | None = None
    owner: str | None = None
    owned: bool | None = None

    def record(self, report: PassReport) -> None:
        """Count *report* in this status."""
        self.running_since = None
        self.passes += 1
        self.last_duration = report.duration
        self.duration_sum += report.duration
        self.last_lag = report.lag
        self.skipped += report.outcome == "skipped"
        if report.metrics is not None:
            self.metrics = dict(report.metrics)
        for kind in report.kinds:
            self.errors[kind] += 1
        if report.result is not None:
            self.last_result = report.result
        if report.ok is not None:
            self.last_ok = report.ok
            self.last_error = report.error
            self.consecutive_failures = (
                0 if report.ok else self.consecutive_failures + 1
            )


@frozen
class PoolHealth:
    """Whether a pool works, and if not, what is wrong.

    Attributes:
        healthy: The pool runs, no thread of it died, and no app is unhealthy.
        state: The pool's lifecycle state.
        apps: Each unhealthy app, with why in words: its last
            ``unhealthy_after`` passes failed (and the last error), or its pass
            has run past the pass timeout.
        threads: Each pool thread that died, with the error that killed it.
    """

    healthy: bool
    state: PoolState
    apps: dict[str, str]
    threads: dict[str, str]


@define
class StatusBoard:
    """Each app's :class:`AppStatus`, kept from the pool's pass reports.

    Thread-safe: workers report while readers take copies.
    """

    _apps: dict[str, AppStatus] = field(factory=dict)
    _lock: threading.Lock = field(factory=threading.Lock)

    def add(self, name: str) -> None:
        """Start keeping *name*'s status (a fresh one)."""
        with self._lock:
            self._apps[name] = AppStatus(name)

    def remove(self, name: str) -> None:
        """Forget *name*."""
        with self._lock:
            self._apps.pop(name, None)

    def started(self, name: str, when: float) -> None:
        """Note that a pass of *name* started at *when*."""
        with self._lock:
            if (status := self._apps.get(name)) is not None:
                status.running_since = when

    def owned(self, name: str, owner: str | None, replica: str) -> None:
        """Note which replica owns *name* (``None``: unknown) as seen by *replica*."""
        with self._lock:
            if (status := self._apps.get(name)) is not None:
                status.owner = owner
                status.owned = owner == replica

    def collected(self, name: str, metrics: Mapping[str, float]) -> None:
        """Note the values a pass of *name* just collected (before it acts)."""
        with self._lock:
            if (status := self._apps.get(name)) is not None:
                status.metrics = dict(metrics)

    def record(self, report: PassReport) -> None:
        """Count *report* in its app's status (a subscriber of the pool)."""
        with self._lock:
            if (status := self._apps.get(report.app_name)) is not None:
                status.record(report)

    def snapshot(self, names: Iterable[str] | None = None) -> dict[str, AppStatus]:
        """Return a copy of the statuses of *names* (default: every app)."""
        with self._lock:
            keep = self._apps.keys() if names is None else set(names)
            return {
                name: evolve(
                    status, errors=dict(status.errors), metrics=dict(status.metrics)
                )
                for name, status in self._apps.items()
                if name in keep
            }

    def unhealthy(self, now: float, *, timeout: float, after: int) -> dict[str, str]:
        """Return each unhealthy app and why.

        An app is unhealthy when its last *after* passes all failed, or when
        its pass in progress has run for more than *timeout* seconds.
        """
        apps: dict[str, str] = {}
        with self._lock:
            for name, status in self._apps.items():
                if status.consecutive_failures >= after:
                    apps[name] = (
                        f"the last {status.consecutive_failures} passes failed; "
                        f"last error: {status.last_error}"
                    )
                elif (
                    status.running_since is not None
                    and now - status.running_since > timeout
                ):
                    apps[name] = (
                        f"a pass has run for {now - status.running_since:.1f} s, "
                        f"past its timeout of {timeout:g} s"
                    )
        return apps
