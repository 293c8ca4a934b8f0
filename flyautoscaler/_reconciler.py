"""One app's autoscaling: collect metrics, evaluate targets, act on Machines."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final, Literal, cast

from attrs import define, evolve, field, frozen

from flyautoscaler._errors import (
    ExpressionError,
    FlapsError,
    FlyAutoscalerError,
    MetricCollectionError,
    NoMachineToCloneError,
    ReconcileError,
    describe,
)
from flyautoscaler._expr import compile_expression
from flyautoscaler._models import (
    DEFAULT_PROCESS_GROUP,
    HOST_STATUS_OK,
    LaunchMachineInput,
    Machine,
    MachineConfig,
    MachineState,
    RemoveMachineInput,
    StopMachineInput,
)
from flyautoscaler._protocols import FlapsClient, MetricCollector
from flyautoscaler._results import Action, ActionFailure, ReconcileResult
from flyautoscaler._scope import Scope
from flyautoscaler._stats import ReconcilerStats
from flyautoscaler._steps import Job, PassRecord, Step, ordered, run_step
from flyautoscaler._validation import check_initial_machine_state, check_range

__all__ = ["Reconciler"]

logger = logging.getLogger("flyautoscaler.reconciler")

#: How many launches in a row may fail before a pass stops creating.
DEFAULT_MAX_CREATE_ATTEMPTS: Final = 3
#: How many Machine actions of one bulk step run at the same time.
DEFAULT_MAX_PARALLEL_ACTIONS: Final = 8

# States of Machines on their way out: not counted, never acted on.
_GONE: Final = frozenset(
    {
        MachineState.DESTROYING,
        MachineState.DESTROYED,
        MachineState.REPLACED,
        MachineState.MIGRATED,
    }
)
# States counted as started: already running or about to be (no overshoot).
_RUNNING: Final = frozenset(
    {MachineState.STARTED, MachineState.STARTING, MachineState.RESTARTING}
)
# Start candidates, in order of preference.
_STARTABLE: Final = (MachineState.STOPPED, MachineState.SUSPENDED, MachineState.CREATED)
# Destroy candidates, in order of preference: idle first, running last.
_DESTROY_ORDER: Final = (
    MachineState.FAILED,
    MachineState.LAUNCH_FAILED,
    MachineState.STOPPED,
    MachineState.SUSPENDED,
    MachineState.CREATED,
)

_DONE_COUNTERS: Final[dict[Action, str]] = {
    "create": "machine_created",
    "destroy": "machine_destroyed",
    "start": "machine_started",
    "stop": "machine_stopped",
}

# Log event names: (action, succeeded) -> event.
_EVENTS: Final[dict[tuple[Action, bool], str]] = {
    ("create", True): "machine.create",
    ("create", False): "machine.create_failed",
    ("destroy", True): "machine.destroy",
    ("destroy", False): "machine.destroy_failed",
    ("start", True): "machine.start",
    ("start", False): "machine.start_failed",
    ("stop", True): "machine.stop",
    ("stop", False): "machine.stop_failed",
}

_COUNT_NAMES: Final = {
    "min_created_machine_n": "min created machine count",
    "max_created_machine_n": "max created machine count",
    "min_started_machine_n": "min started machine count",
    "max_started_machine_n": "max started machine count",
}


@define
class _Fleet:
    """The watched group's Machines during a pass, updated as actions succeed."""

    machines: list[Machine]

    def created_count(self) -> int:
        return len(self.machines)

    def running(self) -> list[Machine]:
        return [m for m in self.machines if m.state in _RUNNING]

    def in_states(self, states: Iterable[str]) -> list[Machine]:
        ordered: list[Machine] = []
        for state in states:
            ordered.extend(
                sorted((m for m in self.machines if m.state == state), key=_by_id)
            )
        return ordered

    def replace(self, machine: Machine) -> None:
        self.machines = [machine if m.id == machine.id else m for m in self.machines]

    def remove(self, machine_id: str) -> None:
        self.machines = [m for m in self.machines if m.id != machine_id]


def _by_id(machine: Machine) -> str:
    return machine.id


@define
class Reconciler:
    """Scales one app's Machines to the targets its count expressions give.

    Every field may be set at construction or later. A reconciler is used by
    one thread at a time (the pool guarantees it); its :attr:`stats` may be
    shared.

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
            destroy, start or stop) that may run at the same time, each on a
            thread of a pool that lives only as long as the step; 1 runs them
            one after another on the calling thread, as the Go original does.
            Results, stats and limits are the same either way.
        clock: Monotonic clock for deadlines (injectable for tests).
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
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _metrics: dict[str, float] = field(init=False, factory=dict, repr=False)
    _collecting: dict[str, _Collection] = field(init=False, factory=dict, repr=False)
    _collecting_lock: threading.Lock = field(
        init=False, factory=threading.Lock, repr=False
    )
    _region_seq: int = field(init=False, default=0, repr=False)
    _region_lock: threading.Lock = field(init=False, factory=threading.Lock, repr=False)

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
        """Return the metric *name*'s value, or ``None`` if it has none."""
        return self._metrics.get(name)

    def set_value(self, name: str, value: float) -> None:
        """Set the metric *name* to *value*."""
        self._metrics[name] = float(value)

    def collect_metrics(self, *, deadline: float | None = None) -> None:
        """Clear the metrics, then ask every collector for its value.

        Every collector is asked even when one fails, so the others' values are
        there; the first failure is then raised.

        Args:
            deadline: A time on :attr:`clock` by which collection must end.
                ``None`` (the default) asks the collectors one after another on
                this thread, however long they take. With a deadline they are
                asked at once, each on a daemon thread of its own, and one that
                has not answered by the deadline fails the collection
                ("no value within ..."): a metric source that hangs or trickles
                bytes cannot hold the pass. Its thread is left to end on its
                own; until it has, that collector is not asked again (so a stuck
                source costs one thread, not one per pass).

        Raises:
            MetricCollectionError: A collector raised, returned a non-number or
                (with a deadline) did not answer in time; the error names it.
        """
        self._metrics = {}
        if deadline is None:
            outcomes = [_collect_one(c, self.app_name) for c in self.collectors]
        else:
            outcomes = self._collect_with_deadline(deadline)
        first: MetricCollectionError | None = None
        for name, outcome in outcomes:
            if isinstance(outcome, float):
                self.set_value(name, outcome)
                continue
            logger.warning(
                "metrics.collect_failed",
                extra={"app": self.app_name, "collector": name, "error": str(outcome)},
            )
            first = first or outcome
        if first is not None:
            raise first

    def _collect_with_deadline(
        self, deadline: float
    ) -> list[tuple[str, float | MetricCollectionError]]:
        """Ask every collector on a thread of its own; wait until *deadline*."""
        started: list[tuple[str, _Collection | None]] = []
        for collector in self.collectors:
            name = collector.name
            with self._collecting_lock:
                busy = self._collecting.get(name)
                if busy is not None and not busy.finished.is_set():
                    started.append((name, None))
                    continue
                fresh = _Collection(collector, self.app_name)
                self._collecting[name] = fresh
            fresh.start()
            started.append((name, fresh))
        outcomes: list[tuple[str, float | MetricCollectionError]] = []
        for name, job in started:
            if job is None:
                stuck = "still collecting for an earlier pass: not asked"
                outcomes.append((name, MetricCollectionError(name, stuck)))
                continue
            job.finished.wait(max(0.0, deadline - self.clock()))
            outcomes.append((name, job.outcome()))
        return outcomes

    # --- targets ---------------------------------------------------------------

    def _calc(self, attr: str) -> int | None:
        source: str = getattr(self, attr)
        if not source:
            return None
        try:
            return compile_expression(source).evaluate_int(self._metrics)
        except FlyAutoscalerError as exc:
            label = _COUNT_NAMES[attr]
            if isinstance(exc, ExpressionError):
                exc.count = label
                exc.expression = exc.expression or source
            exc.add_note(f"while computing the {label} ({source})")
            raise

    def calc_min_created_machine_n(self) -> int | None:
        """Return the least number of created Machines (at least 1), or ``None``.

        Raises:
            ExpressionError: The expression cannot be evaluated (NaN and
                Inf raise :class:`ExprNaNError` / :class:`ExprInfError`).
        """
        value = self._calc("min_created_machine_n")
        return None if value is None else max(1, value)

    def calc_max_created_machine_n(self) -> int | None:
        """Return the most created Machines (at least 1), or ``None``.

        Raises:
            ExpressionError: See :meth:`calc_min_created_machine_n`.
        """
        value = self._calc("max_created_machine_n")
        return None if value is None else max(1, value)

    def calc_min_started_machine_n(self) -> int | None:
        """Return the least number of started Machines, or ``None``.

        Raises:
            ExpressionError: See :meth:`calc_min_created_machine_n`.
        """
        return self._calc("min_started_machine_n")

    def calc_max_started_machine_n(self) -> int | None:
        """Return the most started Machines, or ``None``.

        Raises:
            ExpressionError: See :meth:`calc_min_created_machine_n`.
        """
        return self._calc("max_started_machine_n")

    def validate(self) -> None:
        """Compile every expression and check it only uses the collectors' names.

        Call it at start-up so that a typo fails before anything runs.

        Raises:
            ExpressionError: An expression does not compile or names a metric
                no collector provides.
            ConfigError: ``initial_machine_state`` is neither ``"started"``
                nor ``"stopped"``, or ``max_parallel_actions`` is below 1.
        """
        check_range(
            self.max_parallel_actions,
            "max_parallel_actions",
            field="max_parallel_actions",
            low=1,
        )
        check_initial_machine_state(self.initial_machine_state)
        names = [c.name for c in self.collectors]
        for attr, label in _COUNT_NAMES.items():
            source: str = getattr(self, attr)
            if source:
                try:
                    compile_expression(source, names)
                except FlyAutoscalerError as exc:
                    exc.add_note(f"in the {label} expression")
                    raise

    # --- the pass --------------------------------------------------------------

    def reconcile(
        self,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> ReconcileResult:
        """Run one pass: evaluate the targets, list the Machines, act.

        The created count is brought inside [min, max] first (create or
        destroy), then the started count, on the fleet as it is after the first
        step: one pass may create and then start. Within a step up to
        :attr:`max_parallel_actions` actions run at once. A failed action is
        counted, logged and reported in the result; it never stops the other
        actions. Every loop is bounded.

        Args:
            deadline: A time on :attr:`clock` (``time.monotonic`` by default)
                after which no new action starts; the result then says
                ``timed_out``. ``None`` means no deadline.
            cancel: When this event is set, no new action starts either (the
                pool sets it on ``close()``); the result then says ``timed_out``.

        Returns:
            What the pass saw and did.

        Raises:
            ExpressionError: A target expression failed.
            NoMachineToCloneError: Machines must be created and the group has
                none with a config to clone.
            ReconcileError: :attr:`client` is not set.
            Exception: Whatever the client's ``list`` raised.
        """
        targets = (
            self.calc_min_created_machine_n(),
            self.calc_max_created_machine_n(),
            self.calc_min_started_machine_n(),
            self.calc_max_started_machine_n(),
        )
        min_created, max_created, min_started, max_started = targets
        max_created = self._max_at_least_min("created", min_created, max_created)
        max_started = self._max_at_least_min("started", min_started, max_started)
        client = self._require_client()
        scope = Scope(deadline, self.clock, cancel)
        with scope.entered():
            fleet = _Fleet(self._watched(client.list("")))
        created_count = fleet.created_count()
        started_count = len(fleet.running())
        logger.info(
            "reconcile.pass",
            extra={
                "app": self.app_name,
                "current": {"created": created_count, "started": started_count},
                "target": {
                    "created": {"min": min_created, "max": max_created},
                    "started": {"min": min_started, "max": max_started},
                },
            },
        )
        record = PassRecord(scope)
        if min_created is not None and created_count < min_created:
            # Room for started Machines: a create beyond it is launched
            # stopped, so that no serving Machine is stopped to make room.
            room = None if max_started is None else max_started - started_count
            self._create(client, fleet, min_created - created_count, record, room)
        elif max_created is not None and created_count > max_created:
            self._destroy(client, fleet, created_count - max_created, record)

        running = len(fleet.running())
        if min_started is not None and running < min_started:
            self._start(client, fleet, min_started - running, record)
        elif max_started is not None and running > max_started:
            self._stop(client, fleet, running - max_started, record)

        if record.step == 0:  # no bulk step was called for
            self.stats.incr("no_scale")
        result = ReconcileResult(
            app_name=self.app_name,
            min_created=min_created,
            max_created=max_created,
            min_started=min_started,
            max_started=max_started,
            created_count=created_count,
            started_count=started_count,
            created=ordered(record.created),
            destroyed=ordered(record.destroyed),
            started=ordered(record.started),
            stopped=ordered(record.stopped),
            failures=ordered(record.failures),
            gave_up_creating=record.gave_up_creating,
            timed_out=record.timed_out,
        )
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

    def _max_at_least_min(
        self, kind: str, low: int | None, high: int | None
    ) -> int | None:
        """Return *high*, raised to *low* when the band is inverted (min wins)."""
        if low is None or high is None or high >= low:
            return high
        logger.warning(
            "reconcile.min_above_max",
            extra={"app": self.app_name, "kind": kind, "min": low, "max": high},
        )
        return low

    def _require_client(self) -> FlapsClient:
        if self.client is None:
            raise ReconcileError(f"reconciler for app {self.app_name!r} has no client")
        return self.client

    def _watched(self, machines: list[Machine]) -> list[Machine]:
        reachable = [m for m in machines if m.host_status == HOST_STATUS_OK]
        if len(reachable) < len(machines):
            logger.warning(
                "reconcile.unreachable_machines",
                extra={"app": self.app_name, "count": len(machines) - len(reachable)},
            )
        return [
            m
            for m in reachable
            if m.process_group() == self.process_group and m.state not in _GONE
        ]

    def _fail(
        self, record: PassRecord, job: Job, action: Action, exc: Exception
    ) -> None:
        machine_id = job.machine_id
        self.stats.incr(f"machine_{action}_failed")
        record.failures.append((job.seq, ActionFailure(action, machine_id, exc)))
        logger.error(
            _EVENTS[action, False],
            extra={
                "app": self.app_name,
                "machine_id": machine_id,
                "error": describe(exc),
            },
        )

    def _done(self, action: Action, machine: Machine) -> None:
        self.stats.incr(_DONE_COUNTERS[action])
        logger.info(
            _EVENTS[action, True],
            extra={
                "app": self.app_name,
                "machine_id": machine.id,
                "region": machine.region,
            },
        )

    def _clone_source(self, fleet: _Fleet) -> tuple[Machine, MachineConfig]:
        with_config = [m for m in fleet.machines if m.config is not None]
        started = [m for m in with_config if m.state == MachineState.STARTED]
        candidates = started or with_config
        if not candidates:
            raise NoMachineToCloneError
        source = candidates[0]
        config = source.config
        assert config is not None  # noqa: S101 - filtered above
        image = source.full_image_ref() if source.image_ref is not None else ""
        if not source.image_ref or not source.image_ref.repository:
            image = config.image
        return source, config.clone(image=image)

    def _create(
        self,
        client: FlapsClient,
        fleet: _Fleet,
        n: int,
        record: PassRecord,
        start_room: int | None,
    ) -> None:
        """Create *n* Machines; at most *start_room* of them launched started.

        See :class:`_Launches` for which launches are sent, and when the step
        stops.
        """
        source, config = self._clone_source(fleet)
        self.stats.incr("bulk_create")
        logger.info(
            "reconcile.bulk_create",
            extra={"app": self.app_name, "n": n, "source_machine_id": source.id},
        )
        launches = _Launches(
            todo=n,
            room=start_room,
            always_stopped=self.initial_machine_state == MachineState.STOPPED,
            attempts=max(1, self.max_create_attempts),
        )

        def next_job(in_flight: int) -> Job | None:
            del in_flight  # each launch takes its own missing Machine
            if record.gave_up_creating or launches.todo <= 0:
                return None
            return Job(None, 0, prepare)

        def prepare(job: Job) -> Callable[[], object]:
            # The deadline was checked: take the Machine and the next region
            # now, on this thread, so regions go round-robin in launch order.
            launch = LaunchMachineInput(
                config=config,
                skip_launch=launches.take(job.seq),
                region=self.next_region() or source.region,
            )
            return lambda: client.launch(launch)

        def done(job: Job, outcome: object) -> None:
            launches.succeeded()
            machine = cast("Machine", outcome)
            self._done("create", machine)
            record.add(record.created, job, machine.id)
            fleet.machines.append(machine)

        def failed(job: Job, exc: Exception) -> None:
            self._fail(record, job, "create", exc)
            refused = isinstance(exc, FlapsError) and exc.refused
            if (
                launches.failed(job.seq, refused=refused)
                and not record.gave_up_creating
            ):
                logger.error(
                    "reconcile.create_gave_up",
                    extra={"app": self.app_name, "attempts": launches.attempts},
                )
                record.gave_up_creating = True

        run_step(record, Step(next_job, done, failed), self.max_parallel_actions)

    def _destroy(
        self, client: FlapsClient, fleet: _Fleet, n: int, record: PassRecord
    ) -> None:
        self.stats.incr("bulk_destroy")
        logger.info("reconcile.bulk_destroy", extra={"app": self.app_name, "n": n})
        candidates = iter(
            fleet.in_states(_DESTROY_ORDER)
            + [m for m in fleet.machines if m.state not in _DESTROY_ORDER]
        )
        remaining = n

        def next_job(in_flight: int) -> Job | None:
            nonlocal remaining
            # Never below one Machine: it is the clone source of every scale-up.
            # A destroy in flight counts as done until it fails.
            if remaining <= 0 or fleet.created_count() - in_flight <= 1:
                return None
            machine = next(candidates, None)
            if machine is None:
                return None
            remaining -= 1  # a failure counts too: never destroy more than asked
            remove = RemoveMachineInput(machine.id, kill=True)
            return Job.of(machine, lambda: client.destroy(remove, ""))

        def done(job: Job, _outcome: object) -> None:
            machine = job.target()
            self._done("destroy", machine)
            record.add(record.destroyed, job, machine.id)
            fleet.remove(machine.id)

        def failed(job: Job, exc: Exception) -> None:
            self._fail(record, job, "destroy", exc)

        run_step(record, Step(next_job, done, failed), self.max_parallel_actions)

    def _start(
        self, client: FlapsClient, fleet: _Fleet, n: int, record: PassRecord
    ) -> None:
        self.stats.incr("bulk_start")
        candidates = fleet.in_states(_STARTABLE)
        logger.info("reconcile.bulk_start", extra={"app": self.app_name, "n": n})
        if len(candidates) < n:
            logger.warning(
                "reconcile.not_enough_stopped",
                extra={"app": self.app_name, "wanted": n, "available": len(candidates)},
            )
        switch = _Switch("start", MachineState.STARTED, record.started, n)
        self._switch(
            record, fleet, switch, candidates, lambda m: client.start(m.id, "")
        )

    def _stop(
        self, client: FlapsClient, fleet: _Fleet, n: int, record: PassRecord
    ) -> None:
        self.stats.incr("bulk_stop")
        logger.info("reconcile.bulk_stop", extra={"app": self.app_name, "n": n})
        switch = _Switch("stop", MachineState.STOPPED, record.stopped, n)
        self._switch(
            record,
            fleet,
            switch,
            fleet.in_states([MachineState.STARTED]),
            lambda m: client.stop(StopMachineInput(m.id), ""),
        )

    def _switch(
        self,
        record: PassRecord,
        fleet: _Fleet,
        switch: _Switch,
        candidates: list[Machine],
        call: Callable[[Machine], object],
    ) -> None:
        """Start or stop ``switch.n`` of *candidates*; a failure tries the next."""
        pending = iter(candidates)
        succeeded = 0

        def next_job(in_flight: int) -> Job | None:
            # Never more in flight than still needed, so there is no overshoot
            # even if all succeed; a failure frees its slot for the next one.
            if succeeded + in_flight >= switch.n:
                return None
            machine = next(pending, None)
            if machine is None:
                return None
            return Job.of(machine, lambda: call(machine))

        def done(job: Job, _outcome: object) -> None:
            nonlocal succeeded
            machine = job.target()
            succeeded += 1
            self._done(switch.action, machine)
            record.add(switch.out, job, machine.id)
            fleet.replace(_with_state(machine, switch.state))

        def failed(job: Job, exc: Exception) -> None:
            self._fail(record, job, switch.action, exc)

        run_step(record, Step(next_job, done, failed), self.max_parallel_actions)


def _collect_one(
    collector: MetricCollector, app_name: str
) -> tuple[str, float | MetricCollectionError]:
    """Ask *collector* for its value; return it, or the error to report."""
    name = collector.name
    try:
        value = collector.collect_metric(app_name)
    except MetricCollectionError as exc:
        return name, exc
    except Exception as exc:  # noqa: BLE001 - any collector failure is reported
        error = MetricCollectionError(name, f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return name, error
    if not isinstance(value, bool) and isinstance(value, int | float):
        return name, float(value)
    return name, MetricCollectionError(
        name,
        f"collect_metric returned {type(value).__name__}, not a number",
        transient=False,
    )


class _Collection:
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
            self._result = _collect_one(self._collector, self._app_name)[1]
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
class _Launches:
    """The bookkeeping of a create step: what is missing, and what to launch.

    Memory and time are proportional to the launches made, not to the number
    of missing Machines, which is a count (:attr:`todo`). A launch Fly
    certainly refused (a 4xx, or a connection never opened) gives its Machine
    back, to be tried again (in the next region); a launch that may have
    reached Fly (a 5xx, a lost answer) is never sent again in the pass, since
    it may have created the Machine: the next pass lists and decides. After
    :attr:`attempts` failed launches in a row the step stops.

    A Machine is launched started while :attr:`room` (the started Machines
    the max started count still allows) lasts, and stopped after that, so the
    pass never stops a serving Machine to make room for one it created.
    """

    todo: int
    room: int | None
    always_stopped: bool
    attempts: int
    failed_in_a_row: int = 0
    started: set[tuple[int, int]] = field(factory=set)

    def take(self, seq: tuple[int, int]) -> bool:
        """Take a missing Machine for launch *seq*; return True to launch it stopped."""
        self.todo -= 1
        if self.always_stopped or (self.room is not None and self.room <= 0):
            return True
        self.started.add(seq)
        if self.room is not None:
            self.room -= 1
        return False

    def succeeded(self) -> None:
        """Count a launch that worked."""
        self.failed_in_a_row = 0

    def failed(self, seq: tuple[int, int], *, refused: bool) -> bool:
        """Count a failed launch; return True once the step must stop."""
        self.failed_in_a_row += 1
        if refused:  # Fly did nothing: the Machine is still missing
            self.todo += 1
            if seq in self.started and self.room is not None:
                self.room += 1
        return self.failed_in_a_row >= self.attempts


@frozen
class _Switch:
    """What differs between a start and a stop step."""

    action: Literal["start", "stop"]
    state: str
    out: list[tuple[tuple[int, int], str]]
    n: int


def _with_state(machine: Machine, state: str) -> Machine:
    return evolve(machine, state=state)
