"""One app's pass: collect, plan, execute, report.

:class:`Reconciler` holds one app's configuration (its client, expressions,
collectors and limits) and runs a pass in four moves, each owned elsewhere:

1. **collect** the metric values (:mod:`flyautoscaler._collect`), or take the
   values it is handed;
2. **plan**: evaluate the four count expressions (:mod:`flyautoscaler._expr`),
   list the Machines, and ask the planner (:mod:`flyautoscaler._plan`, where
   every scaling rule lives) what to do;
3. **execute** the plan's steps (:mod:`flyautoscaler._executor`);
4. **report** it as a :class:`~flyautoscaler.ReconcileResult`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final, Self

from attrs import define, field

from flyautoscaler._collect import Collection, Gatherer
from flyautoscaler._errors import (
    ConfigError,
    ExpressionError,
    FlyAutoscalerError,
    ReconcileError,
    describe,
    redact,
)
from flyautoscaler._executor import ActionThreads, StepOutcome, Steps, run_step
from flyautoscaler._expr import compile_expression
from flyautoscaler._log import get_logger
from flyautoscaler._models import DEFAULT_PROCESS_GROUP, MachineState
from flyautoscaler._plan import (
    Behaviour,
    Create,
    CreatedStep,
    Fleet,
    Memory,
    Plan,
    Ranking,
    Reason,
    StartedStep,
    Stop,
    Targets,
    at_least_one,
    fallback_targets,
    plan,
    plan_started,
)
from flyautoscaler._protocols import (
    FlapsClient,
    MachineMetricCollector,
    MetricCollector,
)
from flyautoscaler._results import ReconcileResult, explain_decision
from flyautoscaler._scope import ACTION_SECONDS, Scope
from flyautoscaler._stats import ReconcilerStats
from flyautoscaler._validation import (
    MACHINE_LEASE_VALUES,
    check_fallback,
    check_initial_machine_state,
    check_machine_leases,
    check_range,
    check_stop_mode,
    check_window,
    parse_step,
)

__all__ = [
    "DEFAULT_MACHINE_LEASES",
    "FLEET_NAMES",
    "MACHINE_LEASE_MODES",
    "Reconciler",
    "check_client",
    "share_action_threads",
]

logger = get_logger("flyautoscaler.reconciler")

#: How many launches in a row may fail before a pass stops creating.
DEFAULT_MAX_CREATE_ATTEMPTS: Final = 3
#: How many Machine actions of one bulk step run at the same time.
DEFAULT_MAX_PARALLEL_ACTIONS: Final = 8

#: Which Machine actions a pass takes under a Fly lease, by ``machine_leases``
#: (the values :data:`~flyautoscaler._validation.MACHINE_LEASE_VALUES` allows:
#: off, scale-down, all).
MACHINE_LEASE_MODES: Final = dict(
    zip(
        MACHINE_LEASE_VALUES,
        (
            frozenset[str](),
            frozenset({"destroy", "stop"}),
            frozenset({"destroy", "stop", "start"}),
        ),
        strict=True,
    )
)
#: The default ``machine_leases``: off, as the Go original (and a client of the
#: user's own need not lease); see docs/scaling.md for what leases cost.
DEFAULT_MACHINE_LEASES: Final = "off"

#: Names every count expression may use besides the metrics: the watched
#: group's created and started counts as listed at the start of the pass.
FLEET_NAMES: Final = ("created_machine_count", "started_machine_count")

_FLEET_NAME_SET: Final = frozenset(FLEET_NAMES)

_COUNT_NAMES: Final = {
    "min_created_machine_n": "min created machine count",
    "max_created_machine_n": "max created machine count",
    "min_started_machine_n": "min started machine count",
    "max_started_machine_n": "max started machine count",
}


@define
class Reconciler:
    """Scales one app's Machines to the targets its count expressions give.

    Every field may be set at construction or later. A reconciler is used by
    one thread at a time (the pool guarantees it); its :attr:`stats` may be
    shared. Its parallel actions run on threads it starts when first needed
    and keeps (with their HTTP connections) until :meth:`close`, or until
    they have been idle for a minute; a pool shares its own threads with its
    reconcilers instead.

    Attributes:
        client: Machines API client for :attr:`app_name`.
        app_name: The app reconciled.
        regions: Regions to create Machines in, round-robin; empty means the
            region of the Machine cloned.
        process_group: The process group watched (default ``"app"``).
        min_created_machine_n: Expression for the least number of created
            Machines (``""`` = unset). Likewise the three below.
        max_created_machine_n: Expression for the most created Machines.
        min_started_machine_n: Expression for the least started Machines.
        max_started_machine_n: Expression for the most started Machines.
        initial_machine_state: ``"started"`` (default) or ``"stopped"``: the
            state new Machines are created in.
        collectors: Metric sources; each value is stored under its ``name``.
        stats: Counters of what passes did.
        max_create_attempts: Failed launches in a row after which a pass stops
            creating (a launch that may have reached Fly is never resent in
            the same pass; one Fly refused is tried again, in the next region).
        max_parallel_actions: Machine actions of one bulk step (create,
            destroy, start or stop) that may run at the same time; 1 runs them
            one after another on the calling thread, as the Go original does.
            Results, stats and limits are the same either way.
        scale_down_stabilization: Seconds; scale down (stop, destroy) only to
            the highest max target computed within this window, per
            dimension (created, started). 0 (the default) acts on each pass's
            targets alone, as the Go original does.
        scale_up_stabilization: Seconds; scale up (create, start) only to the
            lowest min target computed within this window. 0 by default.
        max_scale_up_step: At most this many creates, and this many starts,
            in one pass: a count (``4``) or a percent of the current count
            (``"50%"``, rounded up, at least 1). ``None``: no limit.
        max_scale_down_step: At most this many destroys, and this many stops,
            in one pass; as :attr:`max_scale_up_step`.
        fallback_after: After this many passes in a row whose metrics or
            expressions failed, the next ones use
            :attr:`fallback_started_machine_n`. 0 (the default) never falls
            back: a failing pass holds the fleet.
        fallback_started_machine_n: During fallback, the min and max started
            count (and the least created count).
        stop_mode: ``"stop"`` (default) or ``"suspend"``: how the started
            count is brought down. Suspended Machines resume in hundreds of
            milliseconds instead of booting; the client must have
            :meth:`~flyautoscaler.FlapsClient.suspend`.
        stop_metric_collector: Ranks the Machines to stop (and started ones to
            destroy) by a per-Machine metric, lowest first; ``None`` keeps the
            default order (lowest id first).
        machine_leases: Which Machine actions are taken under a short Fly
            lease on the Machine, so that a Machine someone else has leased
            (a deploy in progress, say) is skipped for the pass instead of
            fought over: ``"off"`` (the default), ``"scale-down"`` (destroy,
            stop, suspend) or ``"all"`` (starts too). The client needs
            ``acquire_lease`` and ``release_lease`` unless ``"off"``.
        clock: Monotonic clock for deadlines and stabilization windows
            (injectable for tests).
    """

    client: FlapsClient | None = None
    app_name: str = ""
    regions: list[str] = field(factory=list)
    process_group: str = DEFAULT_PROCESS_GROUP
    min_created_machine_n: str = ""
    max_created_machine_n: str = ""
    min_started_machine_n: str = ""
    max_started_machine_n: str = ""
    initial_machine_state: str = MachineState.STARTED
    collectors: list[MetricCollector] = field(factory=list)
    stats: ReconcilerStats = field(factory=ReconcilerStats)
    max_create_attempts: int = DEFAULT_MAX_CREATE_ATTEMPTS
    max_parallel_actions: int = DEFAULT_MAX_PARALLEL_ACTIONS
    scale_down_stabilization: float = 0.0
    scale_up_stabilization: float = 0.0
    max_scale_up_step: int | str | None = None
    max_scale_down_step: int | str | None = None
    fallback_after: int = 0
    fallback_started_machine_n: int | None = None
    stop_mode: str = "stop"
    stop_metric_collector: MachineMetricCollector | None = None
    machine_leases: str = DEFAULT_MACHINE_LEASES
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _metrics: dict[str, float] = field(init=False, factory=dict, repr=False)
    _metrics_error: FlyAutoscalerError | None = field(
        init=False, default=None, repr=False
    )
    _memory: Memory = field(init=False, factory=Memory, repr=False)
    _gatherer: Gatherer = field(init=False, repr=False)
    _threads: ActionThreads | None = field(init=False, default=None, repr=False)
    _own_threads: bool = field(init=False, default=True, repr=False)
    _region_seq: int = field(init=False, default=0, repr=False)
    _region_lock: threading.Lock = field(init=False, factory=threading.Lock, repr=False)

    def __attrs_post_init__(self) -> None:
        self._gatherer = Gatherer(self._now)

    def _now(self) -> float:
        # The clock may be replaced after construction (a pool sets its own).
        return self.clock()

    # --- metrics ---------------------------------------------------------------

    def next_region(self) -> str:
        """Return the next region of :attr:`regions`, round-robin, or ``""``."""
        if not self.regions:
            return ""
        with self._region_lock:
            self._region_seq += 1
            seq = self._region_seq
        return self.regions[(seq - 1) % len(self.regions)]

    def value(self, name: str) -> float | None:
        """Return the metric *name*'s stored value, or ``None`` if it has none."""
        return self._metrics.get(name)

    def set_value(self, name: str, value: float) -> None:
        """Store *value* for the metric *name*."""
        self._metrics[name] = float(value)

    def collect(self, *, deadline: float | None = None) -> Collection:
        """Ask every collector for its value and return what came back.

        Nothing is stored: pass the values to :meth:`reconcile` (``metrics=``).
        A failure is logged (``metrics.collect_failed``) and listed; it never
        stops the other collectors.

        Args:
            deadline: A time on :attr:`clock` by which collection must end.
                ``None`` (the default) asks the collectors one after another on
                this thread, however long they take. With a deadline they are
                asked at once, each on a daemon thread of its own, and one that
                has not answered by the deadline fails ("no value within ..."):
                a metric source that hangs or trickles bytes cannot hold the
                pass. Its thread is left to end on its own; until it has, that
                collector is not asked again.
        """
        return self._gatherer.collect(self.collectors, self.app_name, deadline)

    def collect_metrics(self, *, deadline: float | None = None) -> None:
        """Clear the stored values, then store every collector's new value.

        Every collector is asked even when one fails, so the others' values
        are there; the first failure is then raised. See :meth:`collect`.

        Raises:
            MetricCollectionError: A collector raised, returned a non-number or
                (with a deadline) did not answer in time; the error names it.
        """
        collection = self.collect(deadline=deadline)
        self._metrics = dict(collection.values)
        self._metrics_error = collection.errors[0] if collection.errors else None
        if collection.errors:
            raise collection.errors[0]

    # --- targets ---------------------------------------------------------------

    def _evaluate(self, attr: str, values: Mapping[str, float]) -> int | None:
        """Return the count *attr*'s expression gives, unbounded (None: unset)."""
        source: str = getattr(self, attr)
        if not source:
            return None
        try:
            return compile_expression(source).evaluate_int(values)
        except FlyAutoscalerError as exc:
            label = _COUNT_NAMES[attr]
            if isinstance(exc, ExpressionError):
                exc.count = label
                exc.expression = exc.expression or source
            exc.add_note(f"while computing the {label} ({source})")
            raise

    def _raw_targets(self, values: Mapping[str, float]) -> Targets:
        """Return the four counts as the expressions give them, in order."""
        return Targets(*(self._evaluate(attr, values) for attr in _COUNT_NAMES))

    def targets(self, metrics: Mapping[str, float] | None = None) -> Targets:
        """Return the four counts, as the ``calc_*_machine_n`` methods give them.

        Created counts are at least 1; no other rule is applied. When an
        expression uses the current Machine counts (``created_machine_count``,
        ``started_machine_count``) and *metrics* does not give them, the
        Machines are listed to count them (if :attr:`client` is set).

        Args:
            metrics: The values to evaluate with (default: the stored ones).

        Raises:
            ExpressionError: An expression cannot be evaluated; its ``count``
                says which.
        """
        values = self._metrics if metrics is None else metrics
        missing = not all(name in values for name in FLEET_NAMES)
        if missing and self.client is not None and self.uses_machine_counts:
            scope = Scope(None, self.clock, None)
            values = _with_counts(values, self._list(self.client, scope))
        raw = self._raw_targets(values)
        return Targets(
            at_least_one(raw.min_created),
            at_least_one(raw.max_created),
            raw.min_started,
            raw.max_started,
        )

    def calc_min_created_machine_n(self) -> int | None:
        """Return the least number of created Machines (at least 1), or ``None``.

        Raises:
            ExpressionError: The expression cannot be evaluated (NaN and
                Inf raise :class:`ExprNaNError` / :class:`ExprInfError`).
        """
        return at_least_one(self._evaluate("min_created_machine_n", self._metrics))

    def calc_max_created_machine_n(self) -> int | None:
        """Return the most created Machines (at least 1), or ``None``.

        Raises:
            ExpressionError: See :meth:`calc_min_created_machine_n`.
        """
        return at_least_one(self._evaluate("max_created_machine_n", self._metrics))

    def calc_min_started_machine_n(self) -> int | None:
        """Return the least number of started Machines, or ``None``.

        Raises:
            ExpressionError: See :meth:`calc_min_created_machine_n`.
        """
        return self._evaluate("min_started_machine_n", self._metrics)

    def calc_max_started_machine_n(self) -> int | None:
        """Return the most started Machines, or ``None``.

        Raises:
            ExpressionError: See :meth:`calc_min_created_machine_n`.
        """
        return self._evaluate("max_started_machine_n", self._metrics)

    def validate(self) -> None:
        """Compile every expression and check it only uses the collectors' names.

        Call it at start-up so that a typo fails before anything runs.

        Raises:
            ExpressionError: An expression does not compile or names a metric
                no collector provides.
            ConfigError: ``initial_machine_state`` is neither ``"started"``
                nor ``"stopped"``, ``max_parallel_actions`` is below 1, a
                window, step or fallback setting is out of range (or one of
                the fallback pair is set without the other), ``stop_mode`` is
                ``"suspend"`` with a client that cannot suspend, or a
                collector is named ``created_machine_count`` or
                ``started_machine_count``.
        """
        check_range(
            self.max_parallel_actions,
            "max_parallel_actions",
            field="max_parallel_actions",
            low=1,
        )
        check_initial_machine_state(self.initial_machine_state)
        self._validate_behaviour()
        names = [c.name for c in self.collectors]
        for name in names:
            if name in FLEET_NAMES:
                raise ConfigError(
                    f"metric name {name!r} is reserved: expressions use it for "
                    "the current Machine count; rename the collector",
                    field="collectors",
                )
        for attr, label in _COUNT_NAMES.items():
            source: str = getattr(self, attr)
            if source:
                try:
                    compile_expression(source, [*names, *FLEET_NAMES])
                except FlyAutoscalerError as exc:
                    exc.add_note(f"in the {label} expression")
                    raise

    def _validate_behaviour(self) -> None:
        """Check the settings of decisions with memory (windows, steps, ...)."""
        for name in ("scale_down_stabilization", "scale_up_stabilization"):
            check_window(getattr(self, name), name, field=name)
        for name in ("max_scale_up_step", "max_scale_down_step"):
            parse_step(getattr(self, name), name, field=name)
        check_range(
            self.fallback_after, "fallback_after", field="fallback_after", low=0
        )
        count = self.fallback_started_machine_n
        if count is not None:
            check_range(
                count,
                "fallback_started_machine_n",
                field="fallback_started_machine_n",
                low=0,
            )
        check_fallback(self.fallback_after, count)
        check_stop_mode(self.stop_mode)
        check_machine_leases(self.machine_leases)
        if self.client is not None:
            check_client(self.client, self)

    # --- the pass --------------------------------------------------------------

    def reconcile(
        self,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        metrics: Mapping[str, float] | Collection | None = None,
        permit: Callable[[float], bool] | None = None,
        action_seconds: float = ACTION_SECONDS,
    ) -> ReconcileResult:
        """Run one pass: evaluate the targets, list the Machines, plan, act.

        The created count is brought inside [min, max] first (create or
        destroy), then the started count, on the fleet as it is after the first
        step: one pass may create and then start. Within a step up to
        :attr:`max_parallel_actions` actions run at once. A failed action is
        counted, logged and reported in the result; it never stops the other
        actions. Every loop is bounded.

        The pass remembers the targets it computed, for the stabilization
        windows, and counts passes whose metrics or expressions failed, for
        the fallback. Such a pass raises its error and changes nothing (the
        fleet is held), unless the fallback applies: then it scales to the
        fallback count and its result says so (``fallback_error``).

        Args:
            deadline: A time on :attr:`clock` (``time.monotonic`` by default)
                after which no new action starts; the result then says
                ``timed_out``. ``None`` means no deadline.
            cancel: When this event is set, no new action starts either (the
                pool sets it on ``close()``); the result then says ``timed_out``.
            metrics: The metric values to evaluate the expressions with, such
                as :meth:`collect` returned them (a collection with errors is
                a failed-metrics pass); ``None`` uses the stored ones
                (:meth:`collect_metrics`, :meth:`set_value`), and a failure of
                the last :meth:`collect_metrics`.
            permit: Asked before each request that changes a Machine, with
                the seconds the request may take; when it says ``False`` the
                request is not sent and the pass ends as ``timed_out`` (the
                pool passes the app's lease when replicas coordinate).
            action_seconds: Seconds one Machine action may take: what *permit*
                is asked for before each action starts (each request the
                HTTP client sends asks again, for its own connect and read
                timeouts). The default, 35, is the HTTP client's default
                timeouts.

        Returns:
            What the pass saw, decided and did.

        Raises:
            ExpressionError: A target expression failed (and no fallback
                applies).
            MetricCollectionError: The metrics failed (and no fallback
                applies).
            NoMachineToCloneError: Machines must be created and the group has
                none with a config to clone.
            ReconcileError: :attr:`client` is not set.
            Exception: Whatever the client's ``list`` raised.
        """
        values, error = self._values(metrics)
        client = self._require_client()
        scope = Scope(deadline, self.clock, cancel, permit, action_seconds)
        behaviour = self._behaviour()
        now = self.clock()
        fleet = self._list(client, scope) if self.uses_machine_counts else None
        memory, raw, fallback = self._memory, Targets(), None
        try:
            if error is not None:
                raise error
            raw = self._raw_targets(_with_counts(values, fleet))
        except FlyAutoscalerError as exc:
            memory = memory.failed()
            targets = fallback_targets(behaviour, memory)
            if targets is None:
                self._memory = memory
                raise
            raw, fallback = targets, exc
        if fleet is None:
            fleet = self._list(client, scope)
        the_plan, ranking = self._plan(
            raw, fleet, behaviour=behaviour, memory=memory, now=now, fallback=fallback
        )
        self._remember(the_plan, fallback)
        self._log_plan(the_plan)
        steps = Steps(
            client=client,
            threads=self._action_threads(),
            max_parallel=self.max_parallel_actions,
            scope=scope,
            stats=self.stats,
            app_name=self.app_name,
            next_region=self.next_region,
            max_attempts=max(1, self.max_create_attempts),
            leases=MACHINE_LEASE_MODES.get(self.machine_leases, frozenset()),
        )
        outcomes: list[StepOutcome] = []
        if the_plan.created_step is not None:
            outcomes.append(run_step(the_plan.created_step, steps))
            # The started step again, on the fleet the created step really left.
            after = _after(fleet, outcomes[0])
            the_plan = self._replan_started(the_plan, after, behaviour, ranking)
        if the_plan.started_step is not None:
            outcomes.append(run_step(the_plan.started_step, steps))
        if not outcomes:
            self.stats.incr("no_scale")
        return self._result(the_plan, outcomes, fallback)

    def explain(self, metrics: Mapping[str, float] | Collection | None = None) -> str:
        """Return what a pass would decide now, and why, without acting.

        Lists the Machines (the only API call), evaluates the expressions and
        plans as :meth:`reconcile` would, with this reconciler's memory (which
        is left as it was), and returns the decision in words: the counts, the
        targets from the expressions and as applied, each rule that changed
        them, and the steps a pass would take.

        Args:
            metrics: As for :meth:`reconcile`.

        Raises:
            ExpressionError: A target expression failed.
            MetricCollectionError: The metrics failed.
            ReconcileError: :attr:`client` is not set.
            Exception: Whatever the client's ``list`` raised.
        """
        values, error = self._values(metrics)
        client = self._require_client()
        if error is not None:
            raise error
        fleet = self._list(client, Scope(None, self.clock, None))
        raw = self._raw_targets(_with_counts(values, fleet))
        the_plan, _ = self._plan(
            raw,
            fleet,
            behaviour=self._behaviour(),
            memory=self._memory,
            now=self.clock(),
            fallback=None,
        )
        lines = explain_decision(
            self.app_name,
            (the_plan.created_count, the_plan.started_count),
            raw=the_plan.raw,
            targets=the_plan.targets,
            reasons=the_plan.reasons,
            fallback_error=None,
        )
        steps = [_step_in_words(step) for step in the_plan.steps]
        lines.append("would: " + ("; ".join(steps) if steps else "change nothing"))
        return "\n".join(lines)

    # --- deciding --------------------------------------------------------------

    def _values(
        self, metrics: Mapping[str, float] | Collection | None
    ) -> tuple[Mapping[str, float], FlyAutoscalerError | None]:
        """Return the values a pass evaluates with, and its metrics failure."""
        if metrics is None:
            return self._metrics, self._metrics_error
        if isinstance(metrics, Collection):
            return metrics.values, (metrics.errors[0] if metrics.errors else None)
        return metrics, None

    def _behaviour(self) -> Behaviour:
        """Return the decision settings, as the planner takes them."""
        return Behaviour(
            scale_down_window=self.scale_down_stabilization,
            scale_up_window=self.scale_up_stabilization,
            max_up_step=parse_step(
                self.max_scale_up_step, "max_scale_up_step", field="max_scale_up_step"
            ),
            max_down_step=parse_step(
                self.max_scale_down_step,
                "max_scale_down_step",
                field="max_scale_down_step",
            ),
            fallback_after=self.fallback_after,
            fallback_started=self.fallback_started_machine_n,
            suspend=self.stop_mode == "suspend",
        )

    @property
    def uses_machine_counts(self) -> bool:
        """Whether an expression uses the current Machine counts.

        That is, ``created_machine_count`` or ``started_machine_count``: a
        pass then lists the Machines before it evaluates the expressions.
        """
        for attr in _COUNT_NAMES:
            source: str = getattr(self, attr)
            if source and not _FLEET_NAME_SET.isdisjoint(
                compile_expression(source).names
            ):
                return True
        return False

    def _list(self, client: FlapsClient, scope: Scope) -> Fleet:
        """List the app's Machines; return the watched ones."""
        with scope.entered():
            fleet = Fleet.watched(client.list(""), self.process_group)
        if fleet.unreachable:
            logger.warning(
                "reconcile.unreachable_machines",
                extra={"app": self.app_name, "count": fleet.unreachable},
            )
        return fleet

    def _plan(  # noqa: PLR0913 - the planner's inputs, gathered for it
        self,
        raw: Targets,
        fleet: Fleet,
        *,
        behaviour: Behaviour,
        memory: Memory,
        now: float,
        fallback: FlyAutoscalerError | None,
    ) -> tuple[Plan, Ranking | None]:
        """Ask the planner; again with the stop ranking if a step needs it."""
        reason = None
        if fallback is not None:
            reason = Reason(
                "fallback",
                f"metrics or expressions failed {memory.failed_passes} passes in "
                f"a row ({redact(describe(fallback))}): started count set to "
                f"{behaviour.fallback_started} (fallback after "
                f"{behaviour.fallback_after})",
            )

        def planned(ranking: Ranking | None) -> Plan:
            return plan(
                raw,
                fleet,
                initial_state=self.initial_machine_state,
                behaviour=behaviour,
                memory=memory,
                now=now,
                fallback=reason,
                ranking=ranking,
            )

        the_plan = planned(None)
        if self.stop_metric_collector is None or not the_plan.needs_ranking():
            return the_plan, None
        ranking = self._rank()
        return planned(ranking), ranking

    def _replan_started(
        self,
        the_plan: Plan,
        fleet: Fleet,
        behaviour: Behaviour,
        ranking: Ranking | None,
    ) -> Plan:
        """Plan the started step again on *fleet*, as the created step left it.

        The stop ranking is collected now if the pass had none and must stop.
        """

        def planned(ranking: Ranking | None) -> tuple[StartedStep | None, list[Reason]]:
            return plan_started(
                the_plan.targets,
                fleet,
                behaviour=behaviour,
                listed_started=the_plan.started_count,
                ranking=ranking,
            )

        step, reasons = planned(ranking)
        if (
            isinstance(step, Stop)
            and ranking is None
            and self.stop_metric_collector is not None
        ):
            step, reasons = planned(self._rank())
        return the_plan.with_started_step(step, reasons)

    def _rank(self) -> Ranking:
        """Collect the stop metric; on failure, warn and keep the default order."""
        collector = self.stop_metric_collector
        assert collector is not None  # noqa: S101 - only called when set
        name = str(collector.name)
        try:
            values = dict(collector.collect_machine_metrics(self.app_name))
        except Exception as exc:  # noqa: BLE001 - a failed ranking keeps the order
            error = redact(describe(exc))
            logger.warning(
                "reconcile.stop_metric_failed",
                extra={"app": self.app_name, "collector": name, "error": error},
            )
            return Ranking(name, None, error)
        return Ranking(
            name,
            {str(k): float(v) for k, v in values.items() if math.isfinite(float(v))},
        )

    def _remember(self, the_plan: Plan, fallback: FlyAutoscalerError | None) -> None:
        """Keep what the pass leaves; log entering or leaving the fallback."""
        before = self._memory
        self._memory = the_plan.memory
        if the_plan.fallback and not before.fallback:
            logger.warning(
                "reconcile.fallback_started",
                extra={
                    "app": self.app_name,
                    "failed_passes": the_plan.memory.failed_passes,
                    "started": self.fallback_started_machine_n,
                    "error": redact(describe(fallback)) if fallback else "",
                },
            )
        elif before.fallback and not the_plan.fallback:
            logger.warning("reconcile.fallback_ended", extra={"app": self.app_name})

    def _log_plan(self, the_plan: Plan) -> None:
        raw, targets = the_plan.raw, the_plan.targets
        for kind, low, high in (
            ("created", targets.min_created, at_least_one(raw.max_created)),
            ("started", raw.min_started, raw.max_started),
        ):
            if low is not None and high is not None and high < low:
                logger.warning(
                    "reconcile.min_above_max",
                    extra={"app": self.app_name, "kind": kind, "min": low, "max": high},
                )

    def _log_pass(self, the_plan: Plan, result: ReconcileResult) -> None:
        """Log ``reconcile.pass``: at INFO when the pass acted or failed, else DEBUG.

        A wildcard over many apps then logs a line a pass only for the apps
        that changed (or could not).
        """
        acted = result.scaled or not result.ok or result.fallback
        logger.log(
            logging.INFO if acted else logging.DEBUG,
            "reconcile.pass",
            extra={
                "app": self.app_name,
                "current": {
                    "created": the_plan.created_count,
                    "started": the_plan.started_count,
                },
                "target": the_plan.targets.as_dict(),
                "raw_target": the_plan.raw.as_dict(),
                "actions": {
                    "created": len(result.created),
                    "destroyed": len(result.destroyed),
                    "started": len(result.started),
                    "stopped": len(result.stopped),
                    "failed": len(result.failures),
                },
                "reasons": [r.text for r in the_plan.reasons],
                "rules": list(result.rules),
                "fallback": the_plan.fallback,
            },
        )

    def _result(
        self,
        the_plan: Plan,
        outcomes: list[StepOutcome],
        fallback: FlyAutoscalerError | None,
    ) -> ReconcileResult:
        done = {o.action: tuple(m.id for m in o.done) for o in outcomes}
        targets = the_plan.targets
        result = ReconcileResult(
            app_name=self.app_name,
            min_created=targets.min_created,
            max_created=targets.max_created,
            min_started=targets.min_started,
            max_started=targets.max_started,
            created_count=the_plan.created_count,
            started_count=the_plan.started_count,
            created=done.get("create", ()),
            destroyed=done.get("destroy", ()),
            started=done.get("start", ()),
            stopped=done.get("stop", ()),
            failures=tuple(f for o in outcomes for f in o.failures),
            gave_up_creating=any(o.gave_up for o in outcomes),
            timed_out=any(o.timed_out for o in outcomes),
            reasons=the_plan.reasons,
            skipped=tuple(m.id for o in outcomes for m in o.skipped),
            raw_targets=the_plan.raw,
            fallback_error=fallback,
        )
        self._log_pass(the_plan, result)
        if not result.ok:
            logger.warning(
                "reconcile.incomplete",
                extra={
                    "app": self.app_name,
                    "failures": [str(f) for f in result.failures],
                    "gave_up_creating": result.gave_up_creating,
                    "timed_out": result.timed_out,
                },
            )
        return result

    def _require_client(self) -> FlapsClient:
        if self.client is None:
            raise ReconcileError(f"reconciler for app {self.app_name!r} has no client")
        return self.client

    # --- threads ---------------------------------------------------------------

    def _action_threads(self) -> ActionThreads | None:
        """Return the threads parallel actions run on (``None``: run inline)."""
        if self.max_parallel_actions <= 1:
            return None
        threads = self._threads
        if self._own_threads and (
            threads is None or threads.size < self.max_parallel_actions
        ):
            if threads is not None:
                threads.close(0)
            threads = ActionThreads(self.max_parallel_actions)
            self._threads = threads
        return threads

    def close(self) -> None:
        """End the threads this reconciler started for its actions; idempotent.

        A pool's reconcilers share the pool's threads, which the pool closes.
        The reconciler stays usable: a later pass starts threads again.
        """
        if self._own_threads and self._threads is not None:
            self._threads.close()
            self._threads = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_client(client: object, reconciler: Reconciler) -> None:
    """Raise :class:`ConfigError` unless *client* can do what *reconciler* asks.

    ``suspend`` with ``stop_mode="suspend"``; ``acquire_lease`` and
    ``release_lease`` unless ``machine_leases`` is ``"off"``.
    """
    needed: list[tuple[str, str, str]] = []
    if reconciler.stop_mode == "suspend":
        needed.append(("suspend", "stop_mode is 'suspend'", "stop_mode"))
    if MACHINE_LEASE_MODES.get(reconciler.machine_leases):
        why = f"machine_leases is {reconciler.machine_leases!r}"
        needed += [
            ("acquire_lease", why, "machine_leases"),
            ("release_lease", why, "machine_leases"),
        ]
    for method, why, field_name in needed:
        if not callable(getattr(client, method, None)):
            raise ConfigError(
                f"{why} but the client ({type(client).__name__}) has no "
                f"{method}() method",
                field=field_name,
            )


def share_action_threads(reconciler: Reconciler, threads: ActionThreads) -> None:
    """Make *reconciler* run its actions on *threads*, which its owner closes."""
    reconciler.close()
    reconciler._threads = threads  # noqa: SLF001 - the pool's half of the seam
    reconciler._own_threads = False  # noqa: SLF001 - the pool's half of the seam


def _step_in_words(step: CreatedStep | StartedStep) -> str:
    """Return a planned step as ``start 2 (of 03, 04, 05)``."""
    if isinstance(step, Create):
        stopped = step.n - step.started
        more = f", {stopped} of them stopped" if stopped else ""
        return f"create {step.n} (cloning {step.source.id}{more})"
    verb = "suspend" if isinstance(step, Stop) and step.suspend else step.action
    chosen = [m.id for m in step.candidates[: step.n]]
    return f"{verb} {step.n}" + (f" ({', '.join(chosen)})" if chosen else "")


def _with_counts(
    values: Mapping[str, float], fleet: Fleet | None
) -> Mapping[str, float]:
    """Return *values* with the fleet's current counts, when it was listed."""
    if fleet is None:
        return values
    return {
        **values,
        "created_machine_count": float(fleet.created_count),
        "started_machine_count": float(fleet.started_count),
    }


def _after(fleet: Fleet, outcome: StepOutcome) -> Fleet:
    """Return *fleet* as the created step *outcome* left it."""
    if outcome.action == "create":
        return fleet.changed(added=outcome.done)
    return fleet.changed(removed=(m.id for m in outcome.done))
