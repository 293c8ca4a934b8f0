"""Many apps reconciled on a pool of threads: safely, fairly, observably."""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final, Self

from attrs import define, field, frozen
from prometheus_client.registry import CollectorRegistry

from flyautoscaler._coordinating import (
    ACTION_MARGIN,
    HEARTBEAT_INTERVAL,
    Claim,
    Membership,
    lease_ttl,
)
from flyautoscaler._errors import (
    ConfigError,
    ExpressionError,
    FlapsNotSentError,
    describe,
    error_kind,
)
from flyautoscaler._executor import ActionThreads
from flyautoscaler._log import get_logger
from flyautoscaler._metrics import register_prom_metrics
from flyautoscaler._names import format_wildcard_as_regexp
from flyautoscaler._protocols import FlapsClient, FlyClient, NewFlapsClientFunc
from flyautoscaler._reconciler import (
    Reconciler,
    check_client,
    share_action_threads,
)
from flyautoscaler._results import ReconcileResult
from flyautoscaler._stats import ReconcilerStats
from flyautoscaler._status import (
    ERROR_KINDS,
    AppStatus,
    Outcome,
    PassReport,
    PoolHealth,
    PoolState,
    StatusBoard,
)
from flyautoscaler._validation import (
    MAX_CONCURRENCY,
    check_app_name,
    check_duration,
    check_range,
    check_wildcard_org,
    check_window,
    require,
)
from flyautoscaler.coordination import Coordinator

__all__ = [
    "ERROR_KINDS",
    "AppStatus",
    "PassReport",
    "PoolHealth",
    "PoolState",
    "ReconcilerPool",
]

#: Called with each pass's report (see :meth:`ReconcilerPool.subscribe`).
Subscriber = Callable[[PassReport], object]

logger = get_logger("flyautoscaler.pool")

DEFAULT_RECONCILE_TIMEOUT: Final = 30.0
#: Seconds one Machines API request may take: the HTTP client's default
#: connect and read timeouts.
DEFAULT_REQUEST_TIMEOUT: Final = ACTION_MARGIN
DEFAULT_RECONCILE_INTERVAL: Final = 15.0
DEFAULT_APP_LIST_REFRESH_INTERVAL: Final = 60.0
#: Longest ``close()`` waits for passes in flight, in seconds: well inside the
#: 5 s Fly gives a Machine between SIGTERM (or SIGINT) and SIGKILL by default.
DEFAULT_CLOSE_TIMEOUT: Final = 3.0
#: Failed passes in a row after which an app is unhealthy (``/healthz`` 503).
DEFAULT_UNHEALTHY_AFTER: Final = 3

#: Release status of a deploy in progress: the app is skipped.
RELEASE_RUNNING: Final = "running"


@frozen
class _Outcome:
    """How one pass ended, before it is timed and published."""

    outcome: Outcome
    error: str = ""
    kinds: tuple[str, ...] = ()
    result: ReconcileResult | None = None
    metrics: Mapping[str, float] | None = None

    @classmethod
    def failed(
        cls,
        error: str,
        kind: str,
        *,
        metrics: Mapping[str, float] | None = None,
    ) -> _Outcome:
        return cls("failed", error, (kind,), metrics=metrics)


@define
class _App:
    """An app under management: its reconciler and scheduling state."""

    name: str
    reconciler: Reconciler
    due: float
    busy: bool = False
    removed: bool = False
    # The release seen running, since when (pool clock), and whether it was
    # logged as stuck: for release_timeout.
    release_running: tuple[str, float, bool] | None = None


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
        coordinator: Shares the apps among replicas of the autoscaler and lets
            one replica at a time act on an app (see
            :mod:`flyautoscaler.coordination`); ``None`` (the default): this
            pool reconciles every app it manages, alone.
        heartbeat_interval: Seconds between two heartbeats of this replica
            (each also lists the live replicas), with a coordinator; keep it
            well below the coordinator's liveness window (15 s by default).
        request_timeout: Seconds one Machines API request may take: the
            connect plus read timeouts of the clients ``new_flaps_client``
            builds (35, the default, is the HTTP client's defaults). With a
            coordinator, each request that changes a Machine is sent only
            while the app's lease is proven to hold this long, and the
            lease's TTL is ``reconcile_timeout + request_timeout + 5`` s: how
            long the app of a replica that died in a pass waits for the
            others. Set it from the client's ``timeout`` (``serve`` does); a
            client whose timeouts add up to more than the TTL has every
            Machine change refused.
        release_timeout: Seconds a release may stay ``running`` and still
            skip its app's passes; after it the app is scaled again (logged as
            ``pool.release_stuck``). 0 (the default) waits for the release
            however long it runs, as the Go original does.
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
    release_timeout: float = 0.0
    coordinator: Coordinator | None = None
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
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
    _actions: ActionThreads | None = field(init=False, default=None, repr=False)
    _board: StatusBoard = field(init=False, factory=StatusBoard, repr=False)
    _subscribers: list[Subscriber] = field(init=False, factory=list, repr=False)
    _membership: Membership | None = field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)
        self._subscribers.append(self._board.record)

    # --- lifecycle ------------------------------------------------------------------

    @property
    def state(self) -> PoolState:
        """The pool's lifecycle state."""
        return self._state

    @property
    def replica_id(self) -> str | None:
        """This replica's id, with a :attr:`coordinator`; ``None`` without one."""
        return None if self.coordinator is None else self.coordinator.replica_id

    @property
    def replicas(self) -> list[str] | None:
        """The live replicas as last listed (with a :attr:`coordinator`).

        ``None`` without a coordinator, before the pool opened, and while the
        store does not answer (then no pass acts).
        """
        return None if self._membership is None else self._membership.replicas

    @property
    def is_wildcard(self) -> bool:
        """Whether :attr:`app_name` is a wildcard."""
        return "*" in self.app_name

    def _validate(self) -> Reconciler:
        """Check every field; return a reconciler built and validated for it."""
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
        probe = self.new_reconciler()
        probe.validate()
        return probe

    def _validate_durations(self) -> None:
        names = [
            "reconcile_interval",
            "reconcile_timeout",
            "close_timeout",
            "request_timeout",
        ]
        if self.coordinator is not None:
            names.append("heartbeat_interval")
        if self.is_wildcard:
            names.append("app_list_refresh_interval")
        for name in names:
            # The bound keeps every wait below threading.TIMEOUT_MAX.
            check_duration(getattr(self, name), name, field=name)
        if self.coordinator is not None:
            check_duration(
                lease_ttl(self.reconcile_timeout, self.request_timeout),
                "the lease ttl (reconcile_timeout + request_timeout + 5 s)",
                field="reconcile_timeout",
            )
        check_window(self.release_timeout, "release_timeout", field="release_timeout")

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
            probe = self._validate()
            # Every app's Machine actions run on the pool's threads: as many
            # as the workers can use at once.
            workers = self.concurrency if self.is_wildcard else 1
            self._actions = ActionThreads(
                workers * max(1, probe.max_parallel_actions),
                name="flyautoscaler-pool-action",
            )
            if not self.is_wildcard:
                assert self.new_flaps_client is not None  # noqa: S101 - validated
                client = self.new_flaps_client(self.app_name)
                self._add_app(
                    self.app_name, self._new_app_reconciler(self.app_name, client)
                )
            self._state = PoolState.RUNNING
        if self.coordinator is not None:
            self._membership = Membership(self.coordinator)
            self._membership.refresh()  # the first passes know who owns what
            self._spawn(self._membership_loop, "flyautoscaler-coordination")
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
        if self._actions is not None:
            self._actions.close(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if self._actions is not None:
            alive += [t.name for t in self._actions.threads()]
        if alive:
            logger.warning(
                "pool.close_timeout", extra={"app": self.app_name, "threads": alive}
            )
        if self._membership is not None:
            # Best effort: the others take this replica's apps at once instead
            # of after the liveness window.
            self._membership.coordinator.leave()
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
        return self._board.snapshot(self.app_names())

    def health(self) -> PoolHealth:
        """Tell whether the pool works, naming each app or thread that does not.

        An app is unhealthy when its last :attr:`unhealthy_after` passes all
        failed (an error, a failed Machine action, a pass over its timeout)
        or when its pass in progress has run past :attr:`reconcile_timeout`.
        It is healthy again after one pass succeeds. A pool that is not
        running, or one of whose threads died, is unhealthy too.
        """
        unhealthy = self._board.unhealthy(
            self.clock(), timeout=self.reconcile_timeout, after=self.unhealthy_after
        )
        names = set(self.app_names())
        apps = {name: why for name, why in unhealthy.items() if name in names}
        with self._lock:
            threads = dict(self._dead_threads)
        state = self._state
        healthy = state is PoolState.RUNNING and not apps and not threads
        return PoolHealth(healthy, state, apps, threads)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call *subscriber* with the :class:`PassReport` of every pass from now on.

        Subscribers are called on the worker that ran the pass, in the order
        they subscribed, before :attr:`pass_count` counts the pass (so after
        :meth:`wait_for_passes` every subscriber has seen it). One that raises
        is logged (``pool.subscriber_failed``) and never stops the worker.

        Returns:
            A function that unsubscribes *subscriber*.
        """
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def _publish(self, report: PassReport) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(report)
            except Exception as exc:  # noqa: BLE001 - a subscriber never stops a worker
                logger.error(
                    "pool.subscriber_failed",
                    extra={"app": report.app_name, "error": describe(exc)},
                )

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
        check_client(client, reconciler)  # before any pass, not at the first stop
        if self._actions is not None:
            share_action_threads(reconciler, self._actions)
        reconciler.app_name = name
        reconciler.client = client
        reconciler.stats = self.stats
        reconciler.clock = self.clock
        return reconciler

    def _add_app(self, name: str, reconciler: Reconciler) -> None:
        """Register an app (lock held) and make it due at once."""
        app = _App(name, reconciler, due=self.clock())
        self._board.add(name)
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
                    self._board.remove(name)
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
            self._board.started(app.name, started)
            lag = max(0.0, started - app.due)
            outcome = _Outcome.failed("internal: the pass did not finish", "internal")
            try:
                outcome = self._run_pass(app, lag)
            except Exception as exc:  # never kill a worker
                outcome = _Outcome.failed(f"internal: {describe(exc)}", "internal")
                logger.exception(
                    "pool.pass_failed",
                    extra={"app": app.name, "kind": "internal", "error": describe(exc)},
                )
            finally:
                self._finish_pass(app, started, lag, outcome)

    def _finish_pass(
        self, app: _App, started: float, lag: float, outcome: _Outcome
    ) -> None:
        """Publish a pass's report, then count it and queue the app's next pass."""
        finished = self.clock()
        duration = finished - started
        if duration > self.reconcile_timeout and outcome.outcome in {"ok", "failed"}:
            outcome = self._overran(app, duration, outcome)
        self._publish(
            PassReport(
                app_name=app.name,
                started=started,
                duration=duration,
                lag=lag,
                outcome=outcome.outcome,
                metrics=outcome.metrics,
                result=outcome.result,
                error=outcome.error,
                kinds=outcome.kinds,
            )
        )
        with self._cond:
            self._in_flight -= 1
            self._pass_count += 1
            app.busy = False
            if app.removed:
                if self._apps.get(app.name) is app:
                    del self._apps[app.name]
                    self._board.remove(app.name)
            elif self._state is PoolState.RUNNING:
                app.due = max(app.due + self.reconcile_interval, finished)
                self._push(app)
            self._cond.notify_all()

    def _overran(self, app: _App, duration: float, outcome: _Outcome) -> _Outcome:
        """Log a pass that ran past its timeout; it fails, counted as a timeout."""
        logger.warning(
            "pool.pass_overran",
            extra={
                "app": app.name,
                "duration": round(duration, 3),
                "timeout": self.reconcile_timeout,
            },
        )
        if outcome.outcome == "failed":
            return outcome
        return _Outcome(
            "failed",
            f"timeout: the pass took {duration:.1f} s, more than its timeout of "
            f"{self.reconcile_timeout:g} s",
            (*outcome.kinds, "timeout"),
            outcome.result,
            outcome.metrics,
        )

    def _run_pass(self, app: _App, lag: float) -> _Outcome:
        """One pass for one app; every failure is logged and returned, never raised.

        Collect the metrics (within the pass's timeout), then reconcile with
        them; the release gate may skip the pass first.
        """
        deadline = self.clock() + self.reconcile_timeout
        if self._membership is None:
            return self._checked_pass(app, lag, deadline, None)
        ttl = lease_ttl(self.reconcile_timeout, self.request_timeout)
        claim = self._membership.claim(app.name, ttl)
        self._board.owned(app.name, claim.owner, self._membership.replica_id)
        if claim.lease is None:
            return self._unclaimed(app, claim)
        keeper = self._membership.keeper(claim.lease, ttl)
        try:
            return self._checked_pass(app, lag, deadline, keeper.permit)
        finally:
            self._membership.release(keeper.final())

    def _unclaimed(self, app: _App, claim: Claim) -> _Outcome:
        """The outcome of a pass this replica may not run (another acts, or none)."""
        if claim.outcome == "unreachable":
            logger.error(
                "pool.pass_failed",
                extra={"app": app.name, "kind": "coordination", "error": claim.error},
            )
            return _Outcome.failed(
                f"coordination: the store does not answer ({claim.error}): no "
                "replica acts without it",
                "coordination",
            )
        logger.debug(
            "pool.not_claimed",
            extra={"app": app.name, "outcome": claim.outcome, "owner": claim.owner},
        )
        return _Outcome("skipped")

    def _membership_loop(self) -> None:
        """Heartbeat and list the replicas every heartbeat interval, until close()."""
        assert self._membership is not None  # noqa: S101 - started only with one
        while not self._stop.wait(self.heartbeat_interval):
            self._membership.refresh()

    def _checked_pass(
        self,
        app: _App,
        lag: float,
        deadline: float,
        permit: Callable[[float], bool] | None,
    ) -> _Outcome:
        """The release gate, then collect and reconcile (with *permit*)."""
        skip = self._release_check(app)
        if skip is not None:
            return skip
        reconciler = app.reconciler
        collection = reconciler.collect(deadline=deadline)
        metrics = collection.values
        self._board.collected(app.name, metrics)  # visible while the pass acts
        if self._stop.is_set():
            return _Outcome("cancelled", metrics=metrics)
        if self.clock() >= deadline and not collection.errors:
            logger.warning("pool.pass_timed_out", extra={"app": app.name, "lag": lag})
            return _Outcome.failed(
                "timeout: collecting the metrics used up the pass timeout of "
                f"{self.reconcile_timeout:g} s",
                "timeout",
                metrics=metrics,
            )
        try:
            # Failed metrics are the reconciler's to judge: it holds the fleet
            # (raising the error) or falls back, as its settings say.
            result = reconciler.reconcile(
                deadline=deadline,
                cancel=self._stop,
                metrics=collection,
                permit=permit,
                action_seconds=self.request_timeout,
            )
        except Exception as exc:  # noqa: BLE001 - never kill a worker
            return self._pass_failed(app, exc, metrics)
        return self._pass_result(app, result, metrics)

    def _pass_failed(
        self, app: _App, exc: Exception, metrics: Mapping[str, float]
    ) -> _Outcome:
        """Log a pass that could not finish; return its outcome."""
        if isinstance(exc, FlapsNotSentError) and self._stop.is_set():
            return _Outcome("cancelled", metrics=metrics)  # closed while listing
        kind = _log_failure(app.name, exc)
        return _Outcome.failed(f"{kind}: {describe(exc)}", kind, metrics=metrics)

    def _pass_result(
        self, app: _App, result: ReconcileResult, metrics: Mapping[str, float]
    ) -> _Outcome:
        """Judge a pass that returned a result; return its outcome."""
        closing = self._stop.is_set()
        problems = [str(f) for f in result.failures]
        kinds: list[str] = []
        if result.failures or result.gave_up_creating:
            kinds.append("action")
        if result.gave_up_creating:
            problems.append("gave up creating")
        if result.timed_out and not closing:
            kinds.append("timeout")
            problems.append(
                f"timed out: the pass timeout ({self.reconcile_timeout:g} s) "
                "ended it before every action started"
            )
        if result.fallback_error is not None:
            kind = _log_failure(app.name, result.fallback_error, fallback=True)
            kinds.append(kind)
            problems.insert(
                0,
                f"{kind}: {describe(result.fallback_error)} (scaled to the "
                "fallback count)",
            )
        extra = {"app": app.name, "ok": result.ok, "scaled": result.scaled}
        logger.debug("pool.pass", extra=extra)
        if problems:
            return _Outcome(
                "failed", "; ".join(problems), tuple(kinds), result, metrics
            )
        return _Outcome("ok", "", tuple(kinds), result, metrics)

    def _release_check(self, app: _App) -> _Outcome | None:
        """Return the outcome of a pass skipped for its release, or ``None`` to go on.

        A deploy in progress skips the pass (not a failure), until it has been
        seen running for :attr:`release_timeout` (when set): then the pass
        goes on, logged as ``pool.release_stuck``. A failed look-up skips the
        pass too, as a failure.
        """
        if self.fly_client is None:
            return None
        try:
            release = self.fly_client.get_app_current_release_machines(app.name)
        except Exception as exc:  # noqa: BLE001 - skip this pass, keep the worker
            logger.error(
                "pool.release_check_failed",
                extra={"app": app.name, "error": describe(exc)},
            )
            return _Outcome.failed(f"release: {describe(exc)}", "release")
        if release is None or release.status != RELEASE_RUNNING:
            app.release_running = None
            return None
        now = self.clock()
        key = release.id or str(release.version)
        if app.release_running is None or app.release_running[0] != key:
            app.release_running = (key, now, False)
        _, since, warned = app.release_running
        if self.release_timeout and now - since >= self.release_timeout:
            if warned:  # said once per release
                return None
            app.release_running = (key, since, True)
            logger.warning(
                "pool.release_stuck",
                extra={
                    "app": app.name,
                    "release": key,
                    "running_for": round(now - since, 3),
                    "release_timeout": self.release_timeout,
                },
            )
            return None
        logger.debug("pool.release_running", extra={"app": app.name})
        return _Outcome("skipped")


def _log_failure(app_name: str, exc: Exception, *, fallback: bool = False) -> str:
    """Log ``pool.pass_failed`` for *exc*; return its kind.

    The line says the error's kind and whether it is ``transient`` (the API or
    a source down) or not (a bad token, an expression that cannot work), as
    the error itself says, and whether the pass fell back.
    """
    kind = error_kind(exc)
    extra: dict[str, object] = {
        "app": app_name,
        "kind": kind,
        "error": describe(exc),
        "transient": bool(getattr(exc, "transient", False)),
    }
    if isinstance(exc, ExpressionError):
        extra |= {"count": exc.count, "expression": exc.expression}
    if fallback:
        extra["fallback"] = True
    logger.error("pool.pass_failed", extra=extra)
    return kind
