"""Many apps reconciled on a pool of threads: safely, fairly, observably."""

from __future__ import annotations

import enum
import heapq
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Final, Self

from attrs import define, evolve, field, frozen
from prometheus_client.registry import CollectorRegistry

from flyautoscaler._errors import (
    ConfigError,
    ExpressionError,
    FlapsError,
    FlapsNotSentError,
    FlyAutoscalerError,
    MetricCollectionError,
    ReconcileError,
    describe,
)
from flyautoscaler._metrics import register_prom_metrics
from flyautoscaler._names import format_wildcard_as_regexp
from flyautoscaler._protocols import FlapsClient, FlyClient, NewFlapsClientFunc
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._results import ReconcileResult
from flyautoscaler._stats import ReconcilerStats
from flyautoscaler._validation import (
    MAX_CONCURRENCY,
    check_app_name,
    check_duration,
    check_range,
    check_wildcard_org,
    require,
)

__all__ = ["AppStatus", "PoolHealth", "PoolState", "ReconcilerPool"]

logger = logging.getLogger("flyautoscaler.pool")

DEFAULT_RECONCILE_TIMEOUT: Final = 30.0
DEFAULT_RECONCILE_INTERVAL: Final = 15.0
DEFAULT_APP_LIST_REFRESH_INTERVAL: Final = 60.0
#: Longest ``close()`` waits for passes in flight, in seconds: well inside the
#: 5 s Fly gives a Machine between SIGTERM (or SIGINT) and SIGKILL by default.
DEFAULT_CLOSE_TIMEOUT: Final = 3.0
#: Failed passes in a row after which an app is unhealthy (``/healthz`` 503).
DEFAULT_UNHEALTHY_AFTER: Final = 3

#: Release status of a deploy in progress: the app is skipped.
RELEASE_RUNNING: Final = "running"

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
)


class PoolState(enum.Enum):
    """Where a :class:`ReconcilerPool` is in its life."""

    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


@define
class AppStatus:
    """What the pool knows of one app, for metrics and inspection.

    Attributes:
        name: The app.
        passes: Passes completed (skipped ones included).
        skipped: Passes skipped because a deploy was running.
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


@frozen
class _Outcome:
    """How one pass ended, for the app's status: ``ok`` None means skipped."""

    ok: bool | None
    error: str = ""
    result: ReconcileResult | None = None

    @classmethod
    def failed(cls, error: str, result: ReconcileResult | None = None) -> _Outcome:
        return cls(ok=False, error=error, result=result)

    @classmethod
    def skipped(cls) -> _Outcome:
        return cls(ok=None)


@define
class _App:
    """An app under management: its reconciler and scheduling state."""

    name: str
    reconciler: Reconciler
    status: AppStatus
    due: float
    busy: bool = False
    removed: bool = False


def _classify(exc: BaseException) -> str:
    if isinstance(exc, MetricCollectionError):
        return "collect"
    if isinstance(exc, ExpressionError):
        return "expression"
    if isinstance(exc, ReconcileError):
        return "reconcile"
    if isinstance(exc, FlapsError | FlyAutoscalerError | OSError):
        return "api"
    return "internal"


@define(eq=False)
class ReconcilerPool:
    """Reconciles one app, or every app matching a wildcard, on worker threads.

    Open it at start-up and close it at shutdown (or use ``with``). Each app is
    reconciled once per :attr:`reconcile_interval`, never by two workers at
    once; when the work exceeds the workers, the app that has waited longest
    goes first, so none starves (:class:`AppStatus` ``last_lag`` shows how late
    passes start).

    Attributes:
        fly_client: GraphQL client for the organization, app list and release
            gate; ``None`` disables the release gate and wildcards.
        concurrency: Worker threads for a wildcard (a single app uses one),
            at most 256.
        reconcile_timeout: Seconds each pass may take; after it no new Machine
            action starts and the pass is reported as timed out.
        reconcile_interval: Seconds between two passes of one app.
        app_list_refresh_interval: Seconds between two refreshes of the
            wildcard's app list.
        app_name: An app name (lowercase letters, digits and dashes), or a
            wildcard such as ``my-app-*``.
        organization_slug: The organization of a wildcard's apps.
        new_flaps_client: Builds the Machines API client of an app.
        new_reconciler: Builds a configured :class:`Reconciler`; the pool sets
            its ``app_name``, ``client``, ``stats`` and ``clock``.
        stats: Counters shared by every app's reconciler.
        close_timeout: Seconds ``close()`` waits for passes in flight
            (default 3, inside the 5 s Fly allows between SIGTERM and SIGKILL);
            after it, passes still waiting on the network are abandoned (their
            threads are daemon threads) and send no new Machine action.
        unhealthy_after: Failed passes in a row after which :meth:`health`
            reports an app unhealthy.
        clock: Monotonic clock (injectable).

    Every duration must be positive and at most 24 hours (86400 seconds).
    """

    fly_client: FlyClient | None
    concurrency: int = 1
    reconcile_timeout: float = DEFAULT_RECONCILE_TIMEOUT
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL
    app_list_refresh_interval: float = DEFAULT_APP_LIST_REFRESH_INTERVAL
    app_name: str = ""
    organization_slug: str = ""
    new_flaps_client: NewFlapsClientFunc | None = None
    new_reconciler: Callable[[], Reconciler] = Reconciler
    stats: ReconcilerStats = field(factory=ReconcilerStats)
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    unhealthy_after: int = DEFAULT_UNHEALTHY_AFTER
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    _state: PoolState = field(init=False, default=PoolState.NEW)
    _lock: threading.Lock = field(init=False, factory=threading.Lock, repr=False)
    _cond: threading.Condition = field(init=False, repr=False)
    _stop: threading.Event = field(init=False, factory=threading.Event, repr=False)
    _apps: dict[str, _App] = field(init=False, factory=dict, repr=False)
    _queue: list[tuple[float, int, _App]] = field(init=False, factory=list, repr=False)
    _seq: int = field(init=False, default=0, repr=False)
    _threads: list[threading.Thread] = field(init=False, factory=list, repr=False)
    _pass_count: int = field(init=False, default=0, repr=False)
    _in_flight: int = field(init=False, default=0, repr=False)
    _dead_threads: dict[str, str] = field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    # --- lifecycle ------------------------------------------------------------------

    @property
    def state(self) -> PoolState:
        """The pool's lifecycle state."""
        return self._state

    @property
    def is_wildcard(self) -> bool:
        """Whether :attr:`app_name` is a wildcard."""
        return "*" in self.app_name

    def _validate(self) -> None:
        require(self.app_name, "app name required", field="app_name")
        check_app_name(self.app_name, "app_name", field="app_name")
        if self.new_flaps_client is None:
            raise ConfigError(
                "flaps client constructor required", field="new_flaps_client"
            )
        if self.is_wildcard:
            check_wildcard_org(
                self.app_name, self.organization_slug, field="organization_slug"
            )
            if self.fly_client is None:
                raise ConfigError(
                    "a fly client is required if app name uses a wildcard",
                    field="fly_client",
                )
        self._validate_durations()
        check_range(
            self.concurrency,
            "concurrency",
            field="concurrency",
            low=1,
            high=MAX_CONCURRENCY,
        )
        check_range(
            self.unhealthy_after, "unhealthy_after", field="unhealthy_after", low=1
        )
        # Compile every expression now: a typo fails here, not on every tick.
        self.new_reconciler().validate()

    def _validate_durations(self) -> None:
        names = ["reconcile_interval", "reconcile_timeout", "close_timeout"]
        if self.is_wildcard:
            names.append("app_list_refresh_interval")
        for name in names:
            # The bound keeps every wait below threading.TIMEOUT_MAX.
            check_duration(getattr(self, name), name, field=name)

    def open(self) -> None:
        """Validate the configuration and start the worker threads.

        Raises:
            RuntimeError: The pool is already open, or was closed.
            ConfigError: A required field is missing or invalid.
            ExpressionError: An expression does not compile or names an
                unknown metric.
            Exception: Whatever ``new_flaps_client`` raised for a single app.
        """
        with self._lock:
            if self._state is not PoolState.NEW:
                raise RuntimeError(
                    f"cannot open a reconciler pool that is {self._state.value}; "
                    "build a new one"
                )
            self._validate()
            if not self.is_wildcard:
                assert self.new_flaps_client is not None  # noqa: S101 - validated
                client = self.new_flaps_client(self.app_name)
                self._add_app(
                    self.app_name, self._new_app_reconciler(self.app_name, client)
                )
            self._state = PoolState.RUNNING
        workers = self.concurrency if self.is_wildcard else 1
        for i in range(workers):
            self._spawn(self._work, f"flyautoscaler-worker-{i}")
        if self.is_wildcard:
            self._spawn(self._refresh_loop, "flyautoscaler-app-list")
        logger.info(
            "pool.open",
            extra={
                "app": self.app_name,
                "workers": workers,
                "wildcard": self.is_wildcard,
            },
        )

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        """Start a pool thread; if it ever dies of an exception, remember why."""

        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # recorded: health() says it
                logger.critical(
                    "pool.thread_died",
                    extra={
                        "app": self.app_name,
                        "thread_name": name,
                        "error": describe(exc),
                    },
                    exc_info=True,
                )
                with self._lock:
                    self._dead_threads[name] = describe(exc)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Stop the pool: idle workers stop at once, passes in flight are awaited.

        Waits at most :attr:`close_timeout` seconds for passes in flight (a pass
        stops starting new Machine actions as soon as the pool closes). Safe to
        call more than once, and on a pool never opened or whose ``open()``
        failed.
        """
        with self._cond:
            if self._state is PoolState.CLOSED:
                return
            self._state = PoolState.CLOSED
            self._stop.set()
            self._cond.notify_all()
        deadline = time.monotonic() + self.close_timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            logger.warning(
                "pool.close_timeout", extra={"app": self.app_name, "threads": alive}
            )
        logger.info("pool.close", extra={"app": self.app_name})

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- inspection -----------------------------------------------------------------

    def register_prom_metrics(self, registry: CollectorRegistry) -> None:
        """Expose the pool's Prometheus series on *registry*.

        The Go original's series keep their exact names and labels
        (``fas_machine_start_count{status}``, ``fas_machine_stop_count{status}``,
        ``fas_reconcile_count{status}``), next to ``fas_machine_create_count``,
        ``fas_machine_destroy_count`` and per-app series; see the metrics page of
        the docs for the full list.

        Raises:
            ValueError: The series are already registered on *registry*.
        """
        register_prom_metrics(self, registry)

    def app_names(self) -> list[str]:
        """Return the names of the apps under management, sorted."""
        with self._lock:
            return sorted(n for n, a in self._apps.items() if not a.removed)

    def app_status(self) -> dict[str, AppStatus]:
        """Return a copy of every managed app's status, by name."""
        with self._lock:
            return {
                name: evolve(
                    app.status,
                    errors=dict(app.status.errors),
                    metrics=dict(app.status.metrics),
                )
                for name, app in self._apps.items()
                if not app.removed
            }

    def health(self) -> PoolHealth:
        """Tell whether the pool works, naming each app or thread that does not.

        An app is unhealthy when its last :attr:`unhealthy_after` passes all
        failed (an error, a failed Machine action, a pass over its timeout)
        or when its pass in progress has run past :attr:`reconcile_timeout`.
        It is healthy again after one pass succeeds. A pool that is not
        running, or one of whose threads died, is unhealthy too.
        """
        now = self.clock()
        with self._lock:
            apps: dict[str, str] = {}
            for name, app in self._apps.items():
                if app.removed:
                    continue
                status = app.status
                if status.consecutive_failures >= self.unhealthy_after:
                    apps[name] = (
                        f"the last {status.consecutive_failures} passes failed; "
                        f"last error: {status.last_error}"
                    )
                elif (
                    status.running_since is not None
                    and now - status.running_since > self.reconcile_timeout
                ):
                    apps[name] = (
                        f"a pass has run for {now - status.running_since:.1f} s, "
                        f"past its timeout of {self.reconcile_timeout:g} s"
                    )
            threads = dict(self._dead_threads)
        state = self._state
        healthy = state is PoolState.RUNNING and not apps and not threads
        return PoolHealth(healthy, state, apps, threads)

    @property
    def pass_count(self) -> int:
        """Passes completed by all workers since ``open()``."""
        return self._pass_count

    def wait_for_passes(self, count: int, timeout: float) -> bool:
        """Block until :attr:`pass_count` reaches *count*, or *timeout* seconds pass.

        Returns:
            Whether the count was reached.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._pass_count >= count, timeout)

    # --- the app list ---------------------------------------------------------------

    def _new_app_reconciler(self, name: str, client: FlapsClient) -> Reconciler:
        """Return a reconciler of *name*, set up for this pool."""
        reconciler = self.new_reconciler()
        reconciler.app_name = name
        reconciler.client = client
        reconciler.stats = self.stats
        reconciler.clock = self.clock
        return reconciler

    def _add_app(self, name: str, reconciler: Reconciler) -> None:
        """Register an app (lock held) and make it due at once."""
        app = _App(name, reconciler, AppStatus(name), due=self.clock())
        self._apps[name] = app
        self._push(app)

    def _push(self, app: _App) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (app.due, self._seq, app))
        self._cond.notify()

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_app_list()
            except Exception as exc:  # noqa: BLE001 - log, try again next time
                logger.error(
                    "pool.app_list_refresh_failed",
                    extra={"app": self.app_name, "error": describe(exc)},
                )
            self._stop.wait(self.app_list_refresh_interval)

    def _matching_app_names(self) -> set[str] | None:
        """Return the organization's apps matching the wildcard; None on failure."""
        fly = self.fly_client
        if fly is None:
            return None
        pattern = re.compile(format_wildcard_as_regexp(self.app_name))
        try:
            org = fly.get_organization_by_slug(self.organization_slug)
            apps = fly.get_apps_for_organization(org.id)
        except Exception as exc:  # noqa: BLE001 - keep the previous list
            logger.error(
                "pool.app_list_refresh_failed",
                extra={"app": self.app_name, "error": describe(exc)},
            )
            return None
        return {a.name for a in apps if pattern.match(a.name)}

    def _build_apps(self, names: list[str]) -> dict[str, Reconciler]:
        """Build each new app's client and reconciler; one failure skips one app.

        An app whose client or reconciler cannot be built is logged and tried
        again at the next refresh.
        """
        assert self.new_flaps_client is not None  # noqa: S101 - validated in open()
        built: dict[str, Reconciler] = {}
        for name in names:
            try:
                built[name] = self._new_app_reconciler(
                    name, self.new_flaps_client(name)
                )
            except Exception as exc:  # noqa: BLE001 - logged, tried at the next refresh
                logger.error(
                    "pool.app_client_failed",
                    extra={"app": name, "error": describe(exc)},
                )
        return built

    def refresh_app_list(self) -> None:
        """Fetch the organization's apps and manage those matching the wildcard.

        A failed look-up keeps the previous list; an app whose client cannot be
        built is skipped (and tried again at the next refresh). The pool calls
        this every :attr:`app_list_refresh_interval`; call it to refresh now.
        """
        names = self._matching_app_names()
        if names is None:
            return
        with self._lock:
            for name in names:
                # Back before its last pass ended: keep it, never a second copy.
                if (app := self._apps.get(name)) is not None and app.removed:
                    app.removed = False
            known = {n for n, a in self._apps.items() if not a.removed}
        built = self._build_apps(sorted(names - known))
        with self._cond:
            if self._state is not PoolState.RUNNING:
                return
            for name, reconciler in built.items():
                if name not in self._apps:
                    self._add_app(name, reconciler)
                    logger.info("pool.app_added", extra={"app": name})
            for name in known - names:
                if (app := self._apps.get(name)) is None:
                    continue
                app.removed = True
                if not app.busy:
                    del self._apps[name]
                logger.info("pool.app_removed", extra={"app": name})
        logger.info(
            "pool.app_list_refreshed", extra={"app": self.app_name, "apps": len(names)}
        )

    # --- workers --------------------------------------------------------------------

    def _next_app(self) -> _App | None:
        """Wait for the app due first (lock held); None when the pool stops."""
        while not self._stop.is_set():
            # Drop entries of apps removed since they were queued.
            while self._queue and self._stale(self._queue[0][2]):
                heapq.heappop(self._queue)
            if self._queue:
                due, _, app = self._queue[0]
                wait = due - self.clock()
                if wait <= 0:
                    heapq.heappop(self._queue)
                    app.busy = True
                    return app
            else:
                wait = self.reconcile_interval
            self._cond.wait(min(wait, self.reconcile_interval))
        return None

    def _stale(self, app: _App) -> bool:
        return app.removed or app.busy or self._apps.get(app.name) is not app

    def _work(self) -> None:
        while True:  # until close(); each turn runs one pass
            with self._cond:
                app = self._next_app()
                if app is None:
                    return
                self._in_flight += 1
                started = self.clock()
                app.status.running_since = started
            lag = max(0.0, started - app.due)
            outcome = _Outcome.failed("internal: the pass did not finish")
            try:
                outcome = self._run_pass(app, lag)
            except Exception as exc:  # never kill a worker
                self._count_error(app, "internal")
                outcome = _Outcome.failed(f"internal: {describe(exc)}")
                logger.exception(
                    "pool.pass_failed",
                    extra={"app": app.name, "kind": "internal", "error": describe(exc)},
                )
            finally:
                self._finish_pass(app, started, lag, outcome)

    def _finish_pass(
        self, app: _App, started: float, lag: float, outcome: _Outcome
    ) -> None:
        """Record a pass's end in the app's status and queue its next pass."""
        finished = self.clock()
        duration = finished - started
        if duration > self.reconcile_timeout and outcome.ok is not None:
            logger.warning(
                "pool.pass_overran",
                extra={
                    "app": app.name,
                    "duration": round(duration, 3),
                    "timeout": self.reconcile_timeout,
                },
            )
            if outcome.ok:
                self._count_error(app, "timeout")
                outcome = _Outcome.failed(
                    f"timeout: the pass took {duration:.1f} s, more than its "
                    f"timeout of {self.reconcile_timeout:g} s",
                    outcome.result,
                )
        with self._cond:
            self._in_flight -= 1
            self._pass_count += 1
            app.busy = False
            status = app.status
            status.running_since = None
            status.passes += 1
            status.last_duration = duration
            status.duration_sum += duration
            status.last_lag = lag
            if outcome.result is not None:
                status.last_result = outcome.result
            if outcome.ok is not None:
                status.last_ok = outcome.ok
                status.last_error = outcome.error
                status.consecutive_failures = (
                    0 if outcome.ok else status.consecutive_failures + 1
                )
            if app.removed:
                if self._apps.get(app.name) is app:
                    del self._apps[app.name]
            elif self._state is PoolState.RUNNING:
                app.due = max(app.due + self.reconcile_interval, finished)
                self._push(app)
            self._cond.notify_all()

    def _count_error(self, app: _App, kind: str) -> None:
        with self._lock:
            app.status.errors[kind] += 1

    def _run_pass(self, app: _App, lag: float) -> _Outcome:
        """One pass for one app; every failure is logged and counted, never raised."""
        name = app.name
        deadline = self.clock() + self.reconcile_timeout
        skip = self._release_check(app)
        if skip is not None:
            return skip
        reconciler = app.reconciler
        try:
            try:
                reconciler.collect_metrics(deadline=deadline)
            finally:
                values = {
                    c.name: v
                    for c in reconciler.collectors
                    if (v := reconciler.value(c.name)) is not None
                }
                with self._lock:
                    app.status.metrics = values
            if self._stop.is_set():
                return _Outcome.skipped()
            if self.clock() >= deadline:
                self._count_error(app, "timeout")
                logger.warning("pool.pass_timed_out", extra={"app": name, "lag": lag})
                return _Outcome.failed(
                    "timeout: collecting the metrics used up the pass timeout of "
                    f"{self.reconcile_timeout:g} s",
                )
            result = reconciler.reconcile(deadline=deadline, cancel=self._stop)
        except Exception as exc:  # noqa: BLE001 - never kill a worker
            return self._pass_failed(app, exc)
        return self._pass_result(app, result)

    def _pass_failed(self, app: _App, exc: Exception) -> _Outcome:
        """Log and count a pass that raised; return its outcome."""
        if isinstance(exc, FlapsNotSentError) and self._stop.is_set():
            return _Outcome.skipped()  # the pool closed while the pass listed
        kind = _classify(exc)
        self._count_error(app, kind)
        extra: dict[str, object] = {
            "app": app.name,
            "kind": kind,
            "error": describe(exc),
        }
        if isinstance(exc, ExpressionError):
            extra |= {"count": exc.count, "expression": exc.expression}
        logger.error("pool.pass_failed", extra=extra)
        return _Outcome.failed(f"{kind}: {describe(exc)}")

    def _pass_result(self, app: _App, result: ReconcileResult) -> _Outcome:
        """Count what a pass that returned went through; return its outcome."""
        closing = self._stop.is_set()
        problems = [str(f) for f in result.failures]
        if result.gave_up_creating:
            problems.append("gave up creating")
        if result.timed_out and not closing:
            problems.append(
                f"timed out: the pass timeout ({self.reconcile_timeout:g} s) "
                "ended it before every action started"
            )
        with self._lock:
            if result.failures or result.gave_up_creating:
                app.status.errors["action"] += 1
            if result.timed_out and not closing:
                app.status.errors["timeout"] += 1
        logger.debug(
            "pool.pass",
            extra={"app": app.name, "ok": result.ok, "scaled": result.scaled},
        )
        if problems:
            return _Outcome.failed("; ".join(problems), result)
        return _Outcome(ok=True, result=result)

    def _release_check(self, app: _App) -> _Outcome | None:
        """Return the outcome of a pass skipped for its release, or ``None`` to go on.

        A deploy in progress skips the pass (not a failure); a failed look-up
        skips it too, as a failure.
        """
        if self.fly_client is None:
            return None
        try:
            release = self.fly_client.get_app_current_release_machines(app.name)
        except Exception as exc:  # noqa: BLE001 - skip this pass, keep the worker
            self._count_error(app, "release")
            logger.error(
                "pool.release_check_failed",
                extra={"app": app.name, "error": describe(exc)},
            )
            return _Outcome.failed(f"release: {describe(exc)}")
        if release is not None and release.status == RELEASE_RUNNING:
            with self._lock:
                app.status.skipped += 1
            logger.info("pool.release_running", extra={"app": app.name})
            return _Outcome.skipped()
        return None
