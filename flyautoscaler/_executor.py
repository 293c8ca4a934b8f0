"""Carrying a plan out: Machine actions, bounded and parallel, in the plan's order.

:class:`ActionThreads` is a small pool of long-lived daemon threads on which
Machine API calls run; a :class:`~flyautoscaler.ReconcilerPool` owns one for all
its apps, a lone :class:`~flyautoscaler.Reconciler` makes its own. Threads (and
so the HTTP connections each keeps) live as long as their owner, not one step.

:func:`run_step` carries out one step of a :class:`~flyautoscaler._plan.Plan`
(create, destroy, start or stop) and returns a :class:`StepOutcome`: what was
done, what failed, and whether the deadline or a cancel stopped it. The plan
says what to do; here is decided only how to do it safely:

- the first action of a step runs alone (a probe); after a success up to
  ``max_parallel`` run at once; after a failure, one at a time again;
- start and stop never have more in flight than still needed, so they never
  overshoot; a failed one makes way for the next candidate;
- a destroy that fails uses up its turn;
- a launch Fly certainly refused (``FlapsError.refused``) is tried again; one
  that may have reached Fly never is; after ``max_attempts`` failures in a row
  the step stops creating;
- before each action the deadline and the cancel event are checked; a call the
  client did not send because of them (:class:`FlapsNotSentError`) ends the
  step like the deadline, and is not a failure.

Counting (``ReconcilerStats``) and the ``machine.*`` log events happen here,
as the actions finish, on the thread that runs the step.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Final, cast

from attrs import define, field, frozen

from flyautoscaler._errors import (
    FlapsConflictError,
    FlapsError,
    FlapsNotSentError,
    describe,
)
from flyautoscaler._log import get_logger
from flyautoscaler._models import (
    LaunchMachineInput,
    Machine,
    RemoveMachineInput,
    StopMachineInput,
)
from flyautoscaler._plan import Create, Destroy, Start, Stop
from flyautoscaler._protocols import FlapsClient, LeasingClient
from flyautoscaler._results import Action, ActionFailure
from flyautoscaler._scope import Scope
from flyautoscaler._stats import ReconcilerStats

__all__ = ["ActionThreads", "StepOutcome", "Steps", "run_step"]

logger = get_logger("flyautoscaler.reconciler")

#: Seconds an idle action thread waits for work before it ends.
IDLE_TIMEOUT: Final = 60.0
#: Seconds a lease taken for one Machine action lasts (it is released after).
DEFAULT_LEASE_TTL: Final = 30.0
#: What a lease says it is for, to whoever else looks at the Machine.
LEASE_DESCRIPTION: Final = "flyautoscaler: scaling"

_DONE_COUNTERS: Final[dict[Action, str]] = {
    "create": "machine_created",
    "destroy": "machine_destroyed",
    "start": "machine_started",
    "stop": "machine_stopped",
}
_BULK_COUNTERS: Final[dict[Action, str]] = {
    "create": "bulk_create",
    "destroy": "bulk_destroy",
    "start": "bulk_start",
    "stop": "bulk_stop",
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
_BULK_EVENTS: Final[dict[Action, str]] = {
    "create": "reconcile.bulk_create",
    "destroy": "reconcile.bulk_destroy",
    "start": "reconcile.bulk_start",
    "stop": "reconcile.bulk_stop",
}

#: One call and the future that receives its outcome.
_Call = tuple[Future[object], Callable[[], object]]


class ActionThreads:
    """Up to *size* daemon threads that run Machine API calls.

    Threads start as calls come and end after :data:`IDLE_TIMEOUT` seconds
    without work, or at :meth:`close`. They are daemon threads: a process that
    is stopping never waits for a call stuck on the network.

    Args:
        size: The most threads at once (the most calls running at once).
        name: Prefix of the threads' names.
    """

    def __init__(self, size: int, *, name: str = "flyautoscaler-action") -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size!r}")
        self._size = size
        self._name = name
        self._lock = threading.Condition()
        self._calls: deque[_Call] = deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._made = 0
        self._closed = False

    @property
    def size(self) -> int:
        """The most threads at once."""
        return self._size

    def submit(self, fn: Callable[[], object]) -> Future[object]:
        """Run *fn* on a thread; return its future.

        Raises:
            RuntimeError: The threads were closed.
        """
        future: Future[object] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the action threads are closed")
            self._calls.append((future, fn))
            self._lock.notify()
            # A thread per call waiting that no idle thread will take.
            if len(self._calls) > self._idle and len(self._threads) < self._size:
                self._made += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{self._made}", daemon=True
                )
                self._threads.add(thread)
                thread.start()
        return future

    def _work(self) -> None:
        me = threading.current_thread()
        while True:  # until idle too long or closed; each turn runs one call
            with self._lock:
                self._idle += 1
                got = self._lock.wait_for(
                    lambda: self._calls or self._closed, IDLE_TIMEOUT
                )
                self._idle -= 1
                if not got or (self._closed and not self._calls):
                    self._threads.discard(me)
                    return
                future, fn = self._calls.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    result = fn()
                except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                    future.set_exception(exc)
                else:
                    future.set_result(result)

    def threads(self) -> list[threading.Thread]:
        """The threads alive now."""
        with self._lock:
            return list(self._threads)

    def close(self, timeout: float | None = None) -> None:
        """Let the calls under way finish, then end every thread; idempotent.

        Waits at most *timeout* seconds (``None``: until they end) for the
        threads; one still stuck in a call is left behind (a daemon thread).
        """
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            threads = list(self._threads)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)


@frozen
class StepOutcome:
    """What one step did.

    Attributes:
        action: ``"create"``, ``"destroy"``, ``"start"`` or ``"stop"``.
        done: The Machines acted on successfully, in the order the actions
            were issued: for a create, the new Machines as the API returned
            them; otherwise the Machines as listed.
        failures: The failed actions, in the order issued.
        timed_out: The deadline or a cancel stopped the step early.
        gave_up: (create) Too many launches failed in a row.
        skipped: Machines left alone because someone else holds a lease on
            them (a deploy in progress, say), in the order tried.
    """

    action: Action
    done: tuple[Machine, ...] = ()
    failures: tuple[ActionFailure, ...] = ()
    timed_out: bool = False
    gave_up: bool = False
    skipped: tuple[Machine, ...] = ()


@define
class Steps:
    """What every step of one pass shares: where, with what, and within which limits.

    Attributes:
        client: The app's Machines API client.
        threads: Where the calls run (``None`` or ``max_parallel`` 1: on the
            calling thread, one after another).
        max_parallel: The most actions of one step at once.
        scope: The pass's deadline and cancel event.
        stats: The counters to update.
        app_name: For the log events.
        next_region: Gives each launch its region (``""``: the source's).
        max_attempts: Failed launches in a row after which creating stops.
        leases: The actions (``"destroy"``, ``"stop"``, ``"start"``) taken
            under a Fly lease on the Machine: a Machine someone else leased is
            skipped, not fought over.
        lease_ttl: Seconds each such lease lasts (released after the action).
    """

    client: FlapsClient
    threads: ActionThreads | None
    max_parallel: int
    scope: Scope
    stats: ReconcilerStats
    app_name: str
    next_region: Callable[[], str]
    max_attempts: int
    leases: frozenset[str] = frozenset()
    lease_ttl: float = DEFAULT_LEASE_TTL
    _seq: int = field(default=0, init=False)

    def next_seq(self) -> int:
        """Return the next dispatch number of the pass."""
        self._seq += 1
        return self._seq


@define
class _Job:
    """One Machine action of a step, as issued."""

    seq: int
    call: Callable[[], object]
    machine: Machine | None = None  # None for a create
    started: bool = False  # a launch of a Machine to run


@define
class _Run:
    """The bookkeeping of one step: which action next, what came of each."""

    step: Create | Destroy | Start | Stop
    steps: Steps
    done: list[tuple[int, Machine]] = field(factory=list)
    failures: list[tuple[int, ActionFailure]] = field(factory=list)
    skipped: list[tuple[int, Machine]] = field(factory=list)
    timed_out: bool = False
    gave_up: bool = False
    # create
    todo: int = 0
    room: int = 0
    failed_in_a_row: int = 0
    # destroy, start, stop
    pending: deque[Machine] = field(factory=deque)
    succeeded: int = 0

    def __attrs_post_init__(self) -> None:
        step = self.step
        if isinstance(step, Create):
            self.todo, self.room = step.n, step.started
        else:
            self.pending = deque(step.candidates)
            if isinstance(step, Destroy):
                self.todo = step.n

    def next_job(self, in_flight: int) -> _Job | None:
        """Return the next action to issue, or ``None`` when none may start now."""
        step = self.step
        if isinstance(step, Create):
            if self.gave_up or self.todo <= 0:
                return None
            return self._launch()
        if isinstance(step, Destroy):
            if self.todo <= 0 or not self.pending:
                return None
            self.todo -= 1  # a failure uses its turn too: never more than asked
            machine = self.pending.popleft()
            remove = RemoveMachineInput(machine.id, kill=True)
            client = self.steps.client
            call = self._leased(machine, lambda nonce: client.destroy(remove, nonce))
            return _Job(self.steps.next_seq(), call, machine)
        # Start and stop: never more in flight than still needed.
        if self.succeeded + in_flight >= step.n or not self.pending:
            return None
        machine = self.pending.popleft()
        return _Job(self.steps.next_seq(), self._switch_call(machine), machine)

    def _launch(self) -> _Job:
        step = self.step
        assert isinstance(step, Create)  # noqa: S101 - only for a create
        self.todo -= 1
        started = self.room > 0
        if started:
            self.room -= 1
        launch = LaunchMachineInput(
            config=step.config,
            region=self.steps.next_region() or step.source.region,
            skip_launch=not started,
        )
        client = self.steps.client
        return _Job(
            self.steps.next_seq(), lambda: client.launch(launch), started=started
        )

    def _switch_call(self, machine: Machine) -> Callable[[], object]:
        client = self.steps.client
        step = self.step
        act: Callable[[str], object]
        if isinstance(step, Start):
            act = lambda nonce: client.start(machine.id, nonce)  # noqa: E731
        elif isinstance(step, Stop) and step.suspend:
            act = lambda nonce: client.suspend(machine.id, nonce)  # noqa: E731
        else:
            act = lambda nonce: client.stop(StopMachineInput(machine.id), nonce)  # noqa: E731
        return self._leased(machine, act)

    def _leased(
        self, machine: Machine, act: Callable[[str], object]
    ) -> Callable[[], object]:
        """Return the call of *act*, under a Fly lease when the step takes one."""
        if self.step.action not in self.steps.leases:
            return lambda: act("")
        return functools.partial(
            _under_lease,
            self.steps,
            machine.id,
            act,
            self.steps.lease_ttl,
            gone=isinstance(self.step, Destroy),
        )

    def _event(self, *, succeeded: bool) -> str:
        """Return the log event of one action's outcome."""
        step = self.step
        if isinstance(step, Stop) and step.suspend:
            return "machine.suspend" if succeeded else "machine.suspend_failed"
        return _EVENTS[step.action, succeeded]

    def succeeded_with(self, job: _Job, outcome: object) -> None:
        """Record a successful action."""
        machine = outcome if job.machine is None else job.machine
        assert isinstance(machine, Machine)  # noqa: S101 - launch returns a Machine
        self.failed_in_a_row = 0
        self.succeeded += 1
        self.done.append((job.seq, machine))
        self.steps.stats.incr(_DONE_COUNTERS[self.step.action])
        logger.info(
            self._event(succeeded=True),
            extra={
                "app": self.steps.app_name,
                "machine_id": machine.id,
                "region": machine.region,
            },
        )

    def failed_with(self, job: _Job, exc: Exception) -> None:
        """Record a failed action; a refused launch gives its Machine back."""
        action = self.step.action
        machine_id = "" if job.machine is None else job.machine.id
        self.steps.stats.incr(f"machine_{action}_failed")
        self.failures.append((job.seq, ActionFailure(action, machine_id, exc)))
        logger.error(
            self._event(succeeded=False),
            extra={
                "app": self.steps.app_name,
                "machine_id": machine_id,
                "error": describe(exc),
            },
        )
        if not isinstance(self.step, Create):
            return
        self.failed_in_a_row += 1
        if isinstance(exc, FlapsError) and exc.refused:
            self.todo += 1  # Fly did nothing: the Machine is still missing
            self.room += job.started
        if self.failed_in_a_row >= self.steps.max_attempts and not self.gave_up:
            logger.error(
                "reconcile.create_gave_up",
                extra={"app": self.steps.app_name, "attempts": self.steps.max_attempts},
            )
            self.gave_up = True

    def finished(self, job: _Job, future: Future[object], bound: int) -> int:
        """Record how *job* ended; return the next parallel window.

        A success opens the window to *bound*; a failure closes it to one;
        a call not sent (the pass was cancelled or out of time) ends the step.
        """
        error = future.exception()
        if error is None:
            self.succeeded_with(job, future.result())
            return bound
        if isinstance(error, FlapsNotSentError):
            self.timed_out = True
            return 1
        if isinstance(error, MachineLeasedError):
            self.skipped_with(job, error)
            return bound
        if isinstance(error, Exception):
            self.failed_with(job, error)
            return 1
        raise error  # KeyboardInterrupt and the like: not an action failure

    def skipped_with(self, job: _Job, error: MachineLeasedError) -> None:
        """Record a Machine left alone: someone else holds its lease."""
        assert job.machine is not None  # noqa: S101 - only Machines are leased
        self.skipped.append((job.seq, job.machine))
        if isinstance(self.step, Destroy):
            self.todo += 1  # not a failure: the next candidate takes its turn
        self.steps.stats.incr("machine_lease_skipped")
        logger.warning(
            "machine.lease_held",
            extra={
                "app": self.steps.app_name,
                "machine_id": job.machine.id,
                "action": self.step.action,
                "error": error.detail,
            },
        )

    def outcome(self) -> StepOutcome:
        """Return what the step did, in the order the actions were issued."""
        return StepOutcome(
            action=self.step.action,
            done=tuple(m for _, m in sorted(self.done, key=_first)),
            failures=tuple(f for _, f in sorted(self.failures, key=_first)),
            timed_out=self.timed_out,
            gave_up=self.gave_up,
            skipped=tuple(m for _, m in sorted(self.skipped, key=_first)),
        )


class MachineLeasedError(Exception):
    """Someone else holds a lease on the Machine: the action was not sent."""

    def __init__(self, machine_id: str, detail: str) -> None:
        super().__init__(f"machine {machine_id} is leased by someone else: {detail}")
        self.machine_id = machine_id
        self.detail = detail


def _under_lease(
    steps: Steps,
    machine_id: str,
    act: Callable[[str], object],
    ttl: float,
    *,
    gone: bool = False,
) -> object:
    """Lease the Machine, *act* with the lease's nonce, then release the lease.

    A Machine *gone* after the action (destroyed) has no lease to release.

    Raises:
        MachineLeasedError: Someone else holds the lease (Fly answered 409).
    """
    client = cast("LeasingClient", steps.client)
    try:
        lease = client.acquire_lease(machine_id, ttl, description=LEASE_DESCRIPTION)
    except FlapsConflictError as exc:
        raise MachineLeasedError(machine_id, describe(exc)) from exc
    done = False
    try:
        result = act(lease.nonce)
        done = True
        return result
    finally:
        if not (done and gone):  # a destroyed Machine's lease went with it
            _release(steps, client, machine_id, lease.nonce)


def _release(steps: Steps, client: LeasingClient, machine_id: str, nonce: str) -> None:
    """Release a lease taken for an action; a failure is logged (it expires)."""
    try:
        client.release_lease(machine_id, nonce)
    except Exception as exc:  # noqa: BLE001 - it expires on its own
        logger.warning(
            "machine.lease_release_failed",
            extra={
                "app": steps.app_name,
                "machine_id": machine_id,
                "error": describe(exc),
            },
        )


def _first(pair: tuple[int, object]) -> int:
    return pair[0]


def _in_scope(scope: Scope, call: Callable[[], object]) -> Callable[[], object]:
    """Return *call*, to be run inside *scope* on whichever thread runs it."""

    def run() -> object:
        with scope.entered():
            return call()

    return run


def _run_here(call: Callable[[], object]) -> Future[object]:
    """Run *call* on this thread; return a done future."""
    future: Future[object] = Future()
    try:
        result = call()
    except BaseException as exc:  # noqa: BLE001 - handed over like a thread's
        future.set_exception(exc)
    else:
        future.set_result(result)
    return future


def _announce(step: Create | Destroy | Start | Stop, steps: Steps) -> None:
    """Count the step's ``bulk_*`` statistic and log ``reconcile.bulk_*``."""
    steps.stats.incr(_BULK_COUNTERS[step.action])
    extra: dict[str, object] = {"app": steps.app_name, "n": step.n}
    if isinstance(step, Create):
        extra["source_machine_id"] = step.source.id
    if isinstance(step, Stop):
        extra["mode"] = "suspend" if step.suspend else "stop"
    logger.info(_BULK_EVENTS[step.action], extra=extra)
    if isinstance(step, Start) and len(step.candidates) < step.n:
        logger.warning(
            "reconcile.not_enough_stopped",
            extra={
                "app": steps.app_name,
                "wanted": step.n,
                "available": len(step.candidates),
            },
        )


def run_step(step: Create | Destroy | Start | Stop, steps: Steps) -> StepOutcome:
    """Carry out *step*; return what it did.

    The step counts its ``bulk_*`` statistic and logs ``reconcile.bulk_*``
    first, whether or not any action can then start.
    """
    _announce(step, steps)
    run = _Run(step, steps)
    bound = max(1, steps.max_parallel)
    threads = steps.threads if bound > 1 else None
    running: dict[Future[object], _Job] = {}
    window = 1
    while True:  # bounded: every turn issues an action or waits for one
        while not run.timed_out and len(running) < window:
            job = run.next_job(len(running))
            if job is None:
                break
            scope = steps.scope
            if (
                scope.remaining() <= 0
                or scope.cancelled
                or not scope.permitted(scope.action_seconds)
            ):
                run.timed_out = True
                break
            call = _in_scope(steps.scope, job.call)
            future = _run_here(call) if threads is None else threads.submit(call)
            running[future] = job
        if not running:
            return run.outcome()
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in sorted(finished, key=lambda f: running[f].seq):
            window = run.finished(running.pop(future), future, bound)
