"""The engine of ``flyautoscaler simulate``: a pool, a fake fleet, a fast clock.

:func:`simulate` runs the real :class:`~flyautoscaler.ReconcilerPool` with the
real HTTP clients (:class:`~flyautoscaler.fly.FlyGraphQLClient` and
:class:`~flyautoscaler.fly.FlapsHTTPClient`, with its rate limiter)
against an app of a :class:`~flyautoscaler.testing.FakeMachinesServer` on
127.0.0.1, which enforces Fly's documented rate limits. Time is simulated
(:class:`_SimClock`); each tick of the plan is a moment of it.

**A pass per tick.** The pool runs passes back to back. Each one starts at its
tick, its clock at the tick's time, and collects that tick's metric values.
When it ends, the pool publishes its report; the engine, subscribed, turns it
into rows, moves the clock to the next tick and sets that tick's values, all
before the pool starts the next pass (on the same worker thread: no hand-off
between threads per tick). A pass therefore always sees the values of its
tick, however fast or slow the computer is, and its deadline (the policy's
``reconcile_timeout``) counts from its tick.

**Time inside a pass.** API calls take no simulated time. Waits do: the
Machines client's rate limiter and its retries sleep through the engine
(:meth:`_Engine.sleep`), which moves the simulated clock forward by the wait.
So creates pace through Fly's per-app create limit as they do in production:
a burst of 3, then one every 1.05 s (the limiter's headroom), and a pass that
must create 30 Machines takes about 28 simulated seconds, or ends at its
deadline with the rest left to the next pass. A step's actions run one after
another (``max_parallel_actions`` 1): with calls that take no time, that is the
same timeline as running them side by side, and one thread owns the clock.

**What a tick sees.** A pass that runs past the next tick carries on; the
ticks it runs through get no pass of their own, and the next pass starts at
the first tick after it ends (in production the pool would start it as soon
as the late one ends: at most one tick earlier). Every tick still gets its row:
the fleet as it is when simulated time leaves the tick (after the zero-time
work of the tick's own pass, or, while a long pass sleeps through it, at the
tick's time), and the actions completed since the row before it was sampled,
so that each row's Machines are the previous row's plus its creates, minus
its destroys. A spike that needs 30 new Machines shows the creates arriving
over the ticks the create limit spreads them across.

What each pass did comes from the pool's report of it
(:meth:`~flyautoscaler.ReconcilerPool.subscribe`) and from the calls the
reconciler made through the client, never from log records.
"""

from __future__ import annotations

import contextlib
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from attrs import define, field, frozen

from flyautoscaler._collect import InstantCollector
from flyautoscaler._errors import MetricCollectionError, describe
from flyautoscaler._models import (
    HOST_STATUS_OK,
    ImageRef,
    LaunchMachineInput,
    Machine,
    MachineConfig,
    MachineStartResponse,
    MachineState,
    RemoveMachineInput,
    StopMachineInput,
)
from flyautoscaler._pool import DEFAULT_RECONCILE_TIMEOUT, ReconcilerPool
from flyautoscaler._protocols import FlapsClient, MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._results import ReconcileResult
from flyautoscaler._status import PassReport, PoolState
from flyautoscaler.cli.simulate._report import TickRow, format_clock, format_seconds
from flyautoscaler.cli.simulate._summary import (
    SimulationSummary,
    check_capacity,
    summarize_run,
)
from flyautoscaler.fly import FlapsHTTPClient, RateLimiter, SessionPool
from flyautoscaler.testing import FakeMachinesServer

__all__ = [
    "DEFAULT_BOOT_TIME",
    "DEFAULT_MACHINES",
    "DEFAULT_RESUME_TIME",
    "DEFAULT_STARTED_MACHINES",
    "DEFAULT_START_TIME",
    "DEFAULT_TICK",
    "DEFAULT_TRANSITION_DELAY",
    "GATE_METRIC",
    "TICK_TIMEOUT",
    "NoValue",
    "Outcome",
    "Plan",
    "Policy",
    "SimulationError",
    "Timing",
    "simulate",
]

#: Simulated seconds between two passes, unless the policy's interval says otherwise.
DEFAULT_TICK: Final = 15.0
#: Machines the app has at the start.
DEFAULT_MACHINES: Final = 10
#: How many of them are started.
DEFAULT_STARTED_MACHINES: Final = 2
#: Simulated seconds a Machine spends stopping or suspending: Fly's default
#: ``kill_timeout``, the longest a stop waits before SIGKILL. When given, it
#: is also the default of the other times (``--transition-delay``).
DEFAULT_TRANSITION_DELAY: Final = 5.0
#: Simulated seconds a new Machine takes to boot (create to ``started``). Fly
#: documents no figure; a create is a cold start plus pulling the image and
#: building the root filesystem (see docs/simulate.md, "Fly's timing").
DEFAULT_BOOT_TIME: Final = 10.0
#: Simulated seconds of a start from ``stopped``: Fly's docs give a cold start
#: of "~2+ seconds for common apps" (fly.io/docs/reference/suspend-resume).
DEFAULT_START_TIME: Final = 2.0
#: Simulated seconds of a resume from ``suspended``: "a few hundred ms"
#: (fly.io/docs/reference/suspend-resume).
DEFAULT_RESUME_TIME: Final = 0.3
#: Real seconds a single pass may take before the run is abandoned.
TICK_TIMEOUT: Final = 30.0
#: A prefix metric names may not have: the simulator's own (refused in policies).
GATE_METRIC: Final = "_simulate_tick"

# The pool's real interval between passes: none to speak of (the engine paces
# them on the simulated clock).
_REAL_INTERVAL: Final = 0.001
_CLOSE_TIMEOUT: Final = 5.0
# How often a worker held after the last tick looks whether the pool closed.
_HOLD_POLL: Final = 0.002


# --- inputs ---------------------------------------------------------------------


def _seconds(_instance: object, attribute: object, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        name = getattr(attribute, "name", "value")
        raise ValueError(
            f"{name} must be a finite number of seconds >= 0, got {value!r}"
        )


@frozen
class Timing:
    """Simulated seconds each Machine transition takes on the fake server.

    The defaults are Fly's (docs/simulate.md, "Fly's timing", gives the
    sources): a cold start takes seconds, a resume from a snapshot hundreds of
    milliseconds, a new Machine longer than either.

    Attributes:
        boot: A new Machine, from create to ``started`` (through ``starting``).
        start: A start from ``stopped`` (or ``created``).
        resume: A start from ``suspended``.
        stop: A stop (through ``stopping``).
        suspend: A suspend (through ``suspending``).
    """

    boot: float = field(default=DEFAULT_BOOT_TIME, validator=_seconds)
    start: float = field(default=DEFAULT_START_TIME, validator=_seconds)
    resume: float = field(default=DEFAULT_RESUME_TIME, validator=_seconds)
    stop: float = field(default=DEFAULT_TRANSITION_DELAY, validator=_seconds)
    suspend: float = field(default=DEFAULT_TRANSITION_DELAY, validator=_seconds)

    @classmethod
    def uniform(cls, seconds: float) -> Timing:
        """Return a timing where every transition takes *seconds*."""
        return cls(seconds, seconds, seconds, seconds, seconds)

    @classmethod
    def resolve(
        cls,
        *,
        transition_delay: float | None = None,
        boot: float | None = None,
        start: float | None = None,
        resume: float | None = None,
    ) -> Timing:
        """Return the timing of the given options, the others defaulted.

        Each of *boot*, *start* and *resume* is its own value when given,
        else *transition_delay* when that is given, else Fly's default; stops
        and suspends take *transition_delay`, by default
        :data:`DEFAULT_TRANSITION_DELAY`. So ``transition_delay`` alone
        makes every transition take it, as it did before the others existed.

        Raises:
            ValueError: A value is negative or not finite.
        """

        def pick(value: float | None, default: float) -> float:
            if value is not None:
                return value
            return default if transition_delay is None else transition_delay

        delay = DEFAULT_TRANSITION_DELAY
        if transition_delay is not None:
            delay = transition_delay
        return cls(
            boot=pick(boot, DEFAULT_BOOT_TIME),
            start=pick(start, DEFAULT_START_TIME),
            resume=pick(resume, DEFAULT_RESUME_TIME),
            stop=delay,
            suspend=delay,
        )

    def transition_delays(self) -> dict[str, float]:
        """Return the delays by transition, as the fake server takes them."""
        return {
            "create": self.boot,
            "start": self.start,
            "resume": self.resume,
            "stop": self.stop,
            "suspend": self.suspend,
        }

    def describe(self) -> str:
        """Return the timing in words, for a header line."""
        stop = format_seconds(self.stop)
        suspend = format_seconds(self.suspend)
        suspend = "" if suspend == stop else f", a suspend {suspend}"
        return (
            f"a new Machine boots in {format_seconds(self.boot)}, a start takes "
            f"{format_seconds(self.start)}, a resume {format_seconds(self.resume)}, "
            f"a stop {stop}{suspend}"
        )


@frozen
class Policy:
    """What to simulate: the app, its group and the reconciler to run.

    Attributes:
        source: Where the policy comes from, in words (for the header).
        app_name: The app seeded on the server and reconciled.
        org: Its organization.
        process_group: The group of the seeded Machines.
        regions: Regions of the seeded Machines, round-robin (default iad).
        metric_names: The metrics the expressions may use.
        started: The min and max started expressions (``""``: unset).
        created: The min and max created expressions (``""``: unset).
        interval: The configured interval: the default tick.
        new_reconciler: Builds a reconciler with the given collectors.
        reconcile_timeout: Simulated seconds a pass may take (the configured
            ``timeout``); after it no new Machine action starts.
    """

    source: str
    app_name: str
    org: str
    process_group: str
    regions: tuple[str, ...]
    metric_names: tuple[str, ...]
    started: tuple[str, str]
    created: tuple[str, str]
    interval: float
    new_reconciler: Callable[[list[MetricCollector]], Reconciler]
    reconcile_timeout: float = DEFAULT_RECONCILE_TIMEOUT


@frozen
class NoValue:
    """A metric without a value at a tick: its collector fails that tick's pass.

    The pass then holds the fleet or falls back, as it does when a real
    collector fails; the tick's row has no value for the metric.

    Attributes:
        reason: The collector's error message, such as ``no data at
            2026-11-23T03:15:00Z``.
    """

    reason: str


@frozen
class Plan:
    """A validated run: the policy, the ticks and each tick's metric values.

    Attributes:
        policy: What to simulate.
        times: Simulated seconds of each tick.
        tick: Simulated seconds between two ticks.
        values: Each metric's value at each tick (:class:`NoValue`: none).
        load: Where the values come from, in words.
        machines: Machines seeded.
        started: How many of them are started.
        transition_delay: Simulated seconds of every transition :attr:`timing`
            does not give (all of them when it is ``None``).
        seed: Seed of the fleet's ids and names.
        capacity: Units of the first metric one started Machine serves
            (``--capacity``): the summary then compares the run with the
            ideal fleet. ``None``: not given.
        timing: Simulated seconds of each transition (:class:`Timing`;
            ``--boot-time``, ``--start-time``, ``--resume-time``).
            ``None``: :meth:`Timing.uniform` of :attr:`transition_delay`.
    """

    policy: Policy
    times: tuple[float, ...]
    tick: float
    values: Mapping[str, Sequence[float | NoValue]]
    load: str
    machines: int
    started: int
    transition_delay: float
    seed: int
    capacity: float | None = None
    timing: Timing | None = None

    @property
    def transitions(self) -> Timing:
        """The timing the run uses."""
        return self.timing or Timing.uniform(self.transition_delay)


# --- the fleet --------------------------------------------------------------------

_ADJECTIVES: Final = ("quiet", "bold", "misty", "sunny", "late", "young", "proud")
_NOUNS: Final = ("river", "pine", "field", "cloud", "meadow", "star", "frost")


def _fleet(plan: Plan) -> list[Machine]:
    """Return the app's Machines at the start: realistic JSON, seeded."""
    rng = random.Random(f"{plan.seed}:fleet")  # noqa: S311 - a repeatable fleet
    policy = plan.policy
    app, group = policy.app_name, policy.process_group
    regions = policy.regions or ("iad",)
    deployment = "deployment-01J" + "".join(
        rng.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(23)
    )
    digest = "sha256:" + f"{rng.getrandbits(256):064x}"
    image_ref = ImageRef("registry.fly.io", app, deployment, digest)
    created_at = "2024-06-03T09:14:27Z"
    machines = []
    for i in range(plan.machines):
        region = regions[i % len(regions)]
        config = MachineConfig(
            image=f"registry.fly.io/{app}:{deployment}",
            metadata={
                "fly_flyctl_version": "0.3.37",
                "fly_platform_version": "v2",
                "fly_process_group": group,
                "fly_release_id": "Rk9XQ2bXa1YPhNYm",
                "fly_release_version": "7",
            },
            extra={
                "init": {},
                "env": {"FLY_PROCESS_GROUP": group, "PRIMARY_REGION": regions[0]},
                "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
                "services": [
                    {
                        "protocol": "tcp",
                        "internal_port": 8080,
                        "autostop": "off",
                        "autostart": False,
                        "ports": [
                            {"port": 80, "handlers": ["http"], "force_https": True},
                            {"port": 443, "handlers": ["tls", "http"]},
                        ],
                    }
                ],
                "restart": {"policy": "on-failure", "max_retries": 10},
            },
        )
        machines.append(
            Machine(
                id=f"e{rng.getrandbits(52):013x}",
                name=f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-"
                f"{rng.randrange(1000, 10000)}",
                state=MachineState.STARTED
                if i < plan.started
                else MachineState.STOPPED,
                region=region,
                instance_id=f"01J{rng.getrandbits(100):023X}"[:26],
                private_ip=f"fdaa:9:4e1c:a7b:{rng.randrange(16, 256):x}:"
                f"{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:2",
                image_ref=image_ref,
                config=config,
                host_status=HOST_STATUS_OK,
                created_at=created_at,
                updated_at=created_at,
            )
        )
    return machines


# --- the clock and the client ------------------------------------------------------


@define
class _SimClock:
    """Simulated seconds; the engine moves them, only forward."""

    _now: float = 0.0

    def __call__(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        self._now = max(self._now, t)


@define(eq=False)
class _RecordingClient:
    """A Machines client that tells the engine of each action that succeeded.

    Every call goes to the real HTTP client; what succeeded is counted in the
    tick the simulated clock is in when it returns.
    """

    client: FlapsClient
    done: Callable[[str], None]

    def list(self, state: str = "") -> list[Machine]:
        return self.client.list(state)

    def launch(self, launch_input: LaunchMachineInput) -> Machine:
        machine = self.client.launch(launch_input)
        self.done("creates")
        return machine

    def destroy(self, remove_input: RemoveMachineInput, nonce: str = "") -> None:
        self.client.destroy(remove_input, nonce)
        self.done("destroys")

    def start(self, machine_id: str, nonce: str = "") -> MachineStartResponse:
        answer = self.client.start(machine_id, nonce)
        self.done("starts")
        return answer

    def stop(self, stop_input: StopMachineInput, nonce: str = "") -> None:
        self.client.stop(stop_input, nonce)
        self.done("stops")

    def suspend(self, machine_id: str, nonce: str = "") -> None:
        self.client.suspend(machine_id, nonce)
        self.done("stops")


@frozen
class _TickCollector(InstantCollector):
    """One metric's value at the tick of the pass that asks (asked inline)."""

    name: str
    engine: _Engine

    def collect_metric(self, app_name: str) -> float:
        """Return this metric's value at the pass's tick.

        Raises:
            MetricCollectionError: The tick has no value for it (:class:`NoValue`).
        """
        del app_name
        value = self.engine.value(self.name)
        if isinstance(value, NoValue):
            raise MetricCollectionError(self.name, value.reason)
        return value


# --- the run ----------------------------------------------------------------------


class SimulationError(RuntimeError):
    """The pool stopped answering: a pass did not finish in time."""


@frozen
class Outcome:
    """What a run produced.

    Attributes:
        rows: One row per tick.
        seconds: Real seconds the run took.
        summary: Its numbers (cost, flaps and, with a capacity, the ideal).
    """

    rows: list[TickRow]
    seconds: float
    summary: SimulationSummary


def _notes(report: PassReport) -> list[str]:
    """Return what a pass's report tells, as short notes for the tick's row."""
    notes: list[str] = []
    result = report.result
    if result is not None:
        notes.extend(reason.text for reason in result.reasons)
        notes.extend(f"{f.action} failed: {describe(f.error)}" for f in result.failures)
        if result.gave_up_creating:
            notes.append("gave up creating")
    if report.outcome == "failed" and result is None:
        notes.append(f"pass failed ({report.error})")
    if result is not None and result.timed_out:
        notes.append(f"pass timed out ({report.error})")
    return list(dict.fromkeys(notes))  # each note once, in order


@define(eq=False)
class _Engine:
    """The simulated time of one run, and the rows it produces.

    Everything here runs on the pool's worker thread: :meth:`sleep` inside a
    pass, :meth:`finish_pass` as the pool publishes its report. The caller's
    thread only waits for :attr:`done` (see :func:`simulate`).
    """

    plan: Plan
    server: FakeMachinesServer
    clock: _SimClock
    on_row: Callable[[TickRow], None]
    rows: list[TickRow] = field(factory=list)
    done: threading.Event = field(factory=threading.Event)
    closed: threading.Event = field(factory=threading.Event)
    error: BaseException | None = None
    progress_at: float = field(factory=time.monotonic)  # real time of the last pass
    pool_state: Callable[[], PoolState] = lambda: PoolState.NEW
    _row: int = 0  # the tick the clock is in
    _pass_row: int = 0  # the tick of the pass under way
    _samples: dict[int, tuple[int, int, int]] = field(factory=dict)
    _actions: dict[int, Counter[str]] = field(factory=dict)
    _values: dict[str, float | NoValue] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._values = self._tick_values(0)

    def _tick_values(self, k: int) -> dict[str, float | NoValue]:
        """Return each metric's value at tick *k* (:class:`NoValue`: none)."""
        plan = self.plan
        return {
            n: v if isinstance(v := plan.values[n][k], NoValue) else float(v)
            for n in plan.policy.metric_names
        }

    def _row_metrics(self, k: int) -> dict[str, float]:
        """Return the metrics that have a value at tick *k*, for its row."""
        return {
            n: v for n, v in self._tick_values(k).items() if not isinstance(v, NoValue)
        }

    @property
    def pass_time(self) -> float:
        """Simulated seconds of the tick of the pass under way."""
        return self.plan.times[self._pass_row]

    # --- inside a pass ---

    def value(self, name: str) -> float | NoValue:
        """Return *name*'s value at the tick of the pass under way (collector side)."""
        return self._values[name]

    def action_done(self, kind: str) -> None:
        """Count one successful action in the first row whose fleet includes it.

        That is the tick the clock is in while that tick is not yet sampled
        (the clock is at its time), else the next one; past the last tick,
        the last one.
        """
        k = self._row if self._row not in self._samples else self._row + 1
        k = min(k, len(self.plan.times) - 1)
        counter = self._actions.get(k)
        if counter is None:
            counter = self._actions[k] = Counter()
        counter[kind] += 1

    def sleep(self, seconds: float) -> None:
        """Let *seconds* of simulated time pass (the client's waits).

        The ticks the wait runs through get their rows' fleet samples as the
        clock passes them; a tick the wait ends exactly on is sampled when the
        clock leaves it.
        """
        now = self.clock()
        target = now + seconds
        if not target > now:
            return
        times = self.plan.times
        self._sample_leaving()
        nxt = self._row + 1
        while nxt < len(times) and times[nxt] <= target:
            self.clock.advance_to(times[nxt])
            self._row = nxt
            if times[nxt] < target:
                self._sample_leaving()
            nxt += 1
        self.clock.advance_to(target)

    def _sample_leaving(self) -> None:
        """Sample the fleet for the tick the clock is in, unless done already.

        A tick not yet sampled has the clock at its time: this is the fleet
        as it is when simulated time leaves the tick.
        """
        if self._row not in self._samples:
            self._samples[self._row] = self._sample()

    def _sample(self) -> tuple[int, int, int]:
        """Return the group's Machines, started ones and starting ones, now."""
        policy = self.plan.policy
        group = policy.process_group
        machines = started = starting = 0
        for m in self.server.machines(policy.app_name):
            if m.process_group() != group:
                continue
            machines += 1
            if m.state == MachineState.STARTED:
                started += 1
            elif m.state in {MachineState.STARTING, MachineState.RESTARTING}:
                starting += 1
        return machines, started, starting

    # --- between passes ---

    def finish_pass(self, report: PassReport) -> None:
        """Make the rows of the pass that ended, then move to the next tick.

        The pool calls this (as a subscriber) before it starts the next pass.
        An exception is kept in :attr:`error` and ends the run. Once the run
        is over, the worker is held here until the pool is closed, so that it
        starts no pass after the last tick.
        """
        if self.done.is_set():
            return  # the run ended (closed) while this pass ran
        try:
            self._finish(report)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            self.error = exc
            self.done.set()
        if self.done.is_set():
            self._hold()

    def _hold(self) -> None:
        """Wait until the pool is closed (bounded by :data:`TICK_TIMEOUT`).

        The caller's thread closes the pool as soon as it sees :attr:`done`;
        the pool then queues no further pass once this returns.
        """
        deadline = time.monotonic() + TICK_TIMEOUT
        while self.pool_state() is not PoolState.CLOSED:
            if time.monotonic() >= deadline or self.closed.wait(_HOLD_POLL):
                return

    def _finish(self, report: PassReport) -> None:
        self._sample_leaving()
        first, last = self._pass_row, self._row
        result = report.result
        notes = _notes(report)
        errors = sum(1 for kind in report.kinds if kind != "action")
        for k in range(first, last + 1):
            if k == first:
                row = self._make_row(k, result, errors=errors, notes=tuple(notes))
            else:
                began = format_clock(self.plan.times[first])
                note = (
                    f"no pass of its own: the pass of {began} ran until "
                    f"{format_clock(self.clock())}"
                )
                row = self._make_row(k, result, errors=0, notes=(note,), carried=True)
            self.rows.append(row)
            self.on_row(row)
        self.progress_at = time.monotonic()
        nxt = last + 1
        if nxt >= len(self.plan.times):
            self.done.set()
            return
        self._values = self._tick_values(nxt)
        self.clock.advance_to(self.plan.times[nxt])
        self._row = self._pass_row = nxt

    def _make_row(
        self,
        k: int,
        result: ReconcileResult | None,
        *,
        errors: int,
        notes: tuple[str, ...],
        carried: bool = False,
    ) -> TickRow:
        machines, started, starting = self._samples.pop(k)
        actions = self._actions.pop(k, None) or Counter()
        targets: tuple[int | None, ...] = (None, None, None, None)
        failures = 0
        rules: tuple[str, ...] = ()
        if result is not None:  # else the pass failed before it had targets
            targets = (
                result.min_created,
                result.max_created,
                result.min_started,
                result.max_started,
            )
            if not carried:
                failures = len(result.failures)
                rules = tuple(dict.fromkeys(r.rule for r in result.reasons))
        min_created, max_created, min_started, max_started = targets
        return TickRow(
            time=self.plan.times[k],
            metrics=self._row_metrics(k),
            min_created=min_created,
            max_created=max_created,
            min_started=min_started,
            max_started=max_started,
            machines=machines,
            started=started,
            starting=starting,
            creates=actions["creates"],
            destroys=actions["destroys"],
            starts=actions["starts"],
            stops=actions["stops"],
            failures=failures,
            errors=errors,
            notes=notes,
            rules=rules,
        )


def _sequential(reconciler: Reconciler) -> Reconciler:
    """Run *reconciler*'s actions one after another (see the module's docstring)."""
    reconciler.max_parallel_actions = 1
    return reconciler


def _wait(engine: _Engine) -> None:
    """Wait for the run to end; raise if a pass stalls or the engine failed.

    Raises:
        SimulationError: No pass finished for :data:`TICK_TIMEOUT` real seconds.
    """
    while not engine.done.is_set():
        left = engine.progress_at + TICK_TIMEOUT - time.monotonic()
        if left <= 0:
            t = engine.pass_time
            raise SimulationError(
                f"the pass at {format_clock(t)} did not finish within "
                f"{TICK_TIMEOUT:g} s (real time)"
            )
        engine.done.wait(left)
    if engine.error is not None:
        raise engine.error


def simulate(plan: Plan, on_row: Callable[[TickRow], None]) -> Outcome:
    """Run *plan*: one pass per tick, *on_row* called with each tick's row.

    *on_row* is called in tick order, on the pool's worker thread, between
    passes; the rows of the ticks a long pass runs through come after the
    row of its own tick, once it has ended. The server, the clients and the
    pool are always closed, however the run ends.

    Raises:
        SimulationError: A pass did not finish in :data:`TICK_TIMEOUT`.
        ExpressionError: An expression does not compile (from ``pool.open()``).
        ConfigError: The pool's configuration is invalid.
        ValueError: The plan has a capacity but no metric (checked first).
        Exception: What *on_row* raised.
    """
    capacity_metric = check_capacity(plan.capacity, plan.policy.metric_names)
    token = secrets.token_urlsafe(24)  # the fake's; no real token is ever used
    clock = _SimClock()
    began = time.monotonic()
    timing = plan.transitions
    with contextlib.ExitStack() as stack:  # closes in the reverse order
        server = FakeMachinesServer(
            token=token,
            clock=clock,
            transition_delays=timing.transition_delays(),
            rate_limits=True,
            record_requests=False,
        )
        stack.enter_context(server)
        server.add_app(
            plan.policy.app_name,
            plan.policy.org,
            machines=_fleet(plan),
            release_status="complete",
            region=(plan.policy.regions or ("iad",))[0],
        )
        engine = _Engine(plan, server, clock, on_row)
        # The clients' sessions read no proxy settings: the server is on
        # 127.0.0.1, and reading them costs half a millisecond a request.
        sessions = SessionPool(trust_env=False)
        stack.callback(sessions.close)

        def new_flaps_client(app: str) -> FlapsClient:
            client = FlapsHTTPClient(
                app,
                token,
                base_url=server.url,
                sleep=engine.sleep,
                clock=clock,
                sessions=sessions,
                rate_limiter=RateLimiter(),  # Fly's limits, as in production
            )
            return _RecordingClient(client, engine.action_done)

        pool = ReconcilerPool(
            fly_client=server.fly_client,
            app_name=plan.policy.app_name,
            organization_slug=plan.policy.org,
            new_flaps_client=new_flaps_client,
            reconcile_interval=_REAL_INTERVAL,
            # The pool (and so each reconciler) runs on the simulated clock:
            # each pass starts at its tick, so its timeout counts from there,
            # and stabilization windows count simulated time.
            reconcile_timeout=plan.policy.reconcile_timeout,
            close_timeout=_CLOSE_TIMEOUT,
            clock=clock,
        )
        collectors: list[MetricCollector] = [
            _TickCollector(name, engine) for name in plan.policy.metric_names
        ]
        new_reconciler = plan.policy.new_reconciler
        pool.new_reconciler = lambda: _sequential(new_reconciler(collectors))
        engine.pool_state = lambda: pool.state
        pool.subscribe(engine.finish_pass)
        stack.callback(engine.closed.set)
        stack.callback(pool.close)  # releases a worker held after the last tick
        stack.callback(engine.done.set)
        clock.advance_to(plan.times[0])
        pool.open()
        _wait(engine)
    rows = engine.rows
    summary = summarize_run(
        rows,
        tick=plan.tick,
        initial_started=plan.started,
        capacity=plan.capacity,
        capacity_metric=capacity_metric,
    )
    return Outcome(rows, time.monotonic() - began, summary)
