"""How a bulk step runs its Machine actions: bounded, parallel, in order.

A step (create, destroy, start or stop) hands :func:`run_step` a
:class:`Step`: a source of :class:`Job` s and what to do with each outcome.
:func:`run_step` issues them up to a bound at a time on daemon threads that
live for the step, and the :class:`PassRecord` keeps the results in the order
the actions were issued.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import TypeVar

from attrs import define, field, frozen

from flyautoscaler._errors import FlapsNotSentError
from flyautoscaler._models import Machine
from flyautoscaler._results import ActionFailure
from flyautoscaler._scope import Scope

__all__ = ["Job", "PassRecord", "Step", "ordered", "run_step"]

_T = TypeVar("_T")


@define
class PassRecord:
    """Mutable record of one pass, frozen into a ReconcileResult at the end.

    Results are kept with the (step, dispatch number) of their action and put
    in that order at the end: the order the actions were issued in, whatever
    order they finished in.
    """

    scope: Scope
    created: list[tuple[tuple[int, int], str]] = field(factory=list)
    destroyed: list[tuple[tuple[int, int], str]] = field(factory=list)
    started: list[tuple[tuple[int, int], str]] = field(factory=list)
    stopped: list[tuple[tuple[int, int], str]] = field(factory=list)
    failures: list[tuple[tuple[int, int], ActionFailure]] = field(factory=list)
    gave_up_creating: bool = False
    timed_out: bool = False
    step: int = 0
    _seq: int = 0

    def may_act(self) -> bool:
        """Return False (and remember why) once the deadline passed or on cancel."""
        if self.scope.remaining() <= 0 or self.scope.cancelled:
            self.timed_out = True
        return not self.timed_out

    def next_seq(self) -> int:
        """Return the next dispatch number."""
        self._seq += 1
        return self._seq

    @staticmethod
    def add(out: list[tuple[tuple[int, int], str]], job: Job, machine_id: str) -> None:
        """Record that *job* succeeded on *machine_id*."""
        out.append((job.seq, machine_id))

    def acted(self) -> bool:
        """Whether any action succeeded."""
        return bool(self.created or self.destroyed or self.started or self.stopped)


def ordered(items: list[tuple[tuple[int, int], _T]]) -> tuple[_T, ...]:
    return tuple(item for _, item in sorted(items, key=lambda pair: pair[0]))


@define
class Job:
    """One Machine action of a bulk step.

    Attributes:
        machine: The Machine acted on (``None`` for a create).
        slot: Unused; kept for the step functions' shape.
        prepare: Called with the job on the reconciling thread just before the
            action is issued (its ``seq`` is set); returns the call to run (on
            an action thread).
        seq: (step, dispatch number) within the pass: the order of results.
    """

    machine: Machine | None
    slot: int
    prepare: Callable[[Job], Callable[[], object]]
    seq: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, machine: Machine, call: Callable[[], object]) -> Job:
        return cls(machine, 0, lambda _job: call)

    @property
    def machine_id(self) -> str:
        return "" if self.machine is None else self.machine.id

    def target(self) -> Machine:
        assert self.machine is not None  # noqa: S101 - only creates have none
        return self.machine


@frozen
class Step:
    """A bulk step, as :func:`run_step` drives it.

    ``next_job(in_flight)`` returns the next action to issue, or ``None`` when
    none may start now (the step ends once nothing is in flight either);
    ``done`` and ``failed`` record an action's outcome.
    """

    next_job: Callable[[int], Job | None]
    done: Callable[[Job, object], None]
    failed: Callable[[Job, Exception], None]


class _InlineExecutor(Executor):
    """Runs each call at once on the calling thread: ``max_parallel_actions=1``."""

    def submit(  # type: ignore[override]
        self, fn: Callable[[], object], /
    ) -> Future[object]:
        future: Future[object] = Future()
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed over like a pool's
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future


_Call = tuple[Future[object], Callable[[], object]]


class _DaemonThreads(Executor):
    """Up to *size* daemon threads, started as calls come.

    Unlike :class:`~concurrent.futures.ThreadPoolExecutor`, whose threads the
    interpreter waits for at exit, these never hold a process up: a process
    stopping (SIGTERM) while a call waits on the network exits at once.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[
            tuple[Future[object], Callable[[], object]] | None
        ]
        self._calls = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(  # type: ignore[override]
        self, fn: Callable[[], object], /
    ) -> Future[object]:
        future: Future[object] = Future()
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1
        self._calls.put((future, fn))
        return future

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn()
                except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:  # noqa: FBT001, FBT002 - Executor's signature
        """Let every thread finish its call and end; join them if *wait*."""
        del cancel_futures  # run_step never leaves a call queued
        for _ in self._threads:
            self._calls.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def _in_scope(scope: Scope, call: Callable[[], object]) -> Callable[[], object]:
    """Return *call*, to be run inside *scope* on whichever thread runs it."""

    def run() -> object:
        with scope.entered():
            return call()

    return run


def run_step(record: PassRecord, step: Step, max_parallel: int) -> None:
    """Run *step*'s actions, up to *max_parallel* at a time.

    The first action runs alone; once one succeeds, the step runs as many
    at once as allowed; after a failure it goes back to one at a time until
    an action succeeds. Only the client calls run on the action threads:
    the fleet, the record, the stats and the logs are touched on this one.
    Before each action the deadline and ``cancel`` are checked; once they
    stop the step, the actions in flight are waited for. Each call runs in
    the pass's scope, so a call the client did not send because the pass was
    cancelled or out of time (:class:`FlapsNotSentError`) ends the step like
    the deadline does, and is not a failure.
    """
    bound = max(1, max_parallel)
    record.step += 1
    executor: Executor = (
        _InlineExecutor()
        if bound == 1
        else _DaemonThreads(bound, "flyautoscaler-action")
    )
    running: dict[Future[object], Job] = {}
    window = 1
    stopped = False
    with executor:
        while True:  # bounded: every turn issues a job or waits for one
            while not stopped and len(running) < window:
                job = step.next_job(len(running))
                if job is None:
                    break
                if not record.may_act():
                    stopped = True
                    break
                job.seq = (record.step, record.next_seq())
                call = _in_scope(record.scope, job.prepare(job))
                running[executor.submit(call)] = job
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: running[f].seq):
                job = running.pop(future)
                error = future.exception()
                if error is None:
                    step.done(job, future.result())
                    window = bound
                elif isinstance(error, FlapsNotSentError):
                    record.timed_out = stopped = True
                elif isinstance(error, Exception):
                    step.failed(job, error)
                    window = 1
                else:  # KeyboardInterrupt and the like: not an action failure
                    raise error
