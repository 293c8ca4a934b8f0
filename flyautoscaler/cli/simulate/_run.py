"""The engine of ``flyautoscaler simulate``: a pool, a fake fleet, a fast clock.

:func:`simulate` runs the real :class:`~flyautoscaler.ReconcilerPool` with the
real HTTP clients (:class:`~flyautoscaler.fly.FlyGraphQLClient` and the client
of :func:`~flyautoscaler.fly.new_flaps_client_func`) against an app of a
:class:`~flyautoscaler.testing.FakeMachinesServer` on 127.0.0.1, one pass per
tick of simulated time. The server's Machines take simulated seconds to start
and stop.

Ticks are driven one at a time: the pool's interval is tiny, and its
collectors block each pass until the driver hands it the tick's metric values
(:class:`TickGate`), so pass *k* always sees the values of time *k* x tick,
however fast or slow the computer is. Within a pass, simulated time stands
still: the Machines client's rate limiter runs on the simulated clock and its
waits take no time, so what it refuses to wait for is refused as in
production, but a pass never overlaps the next tick.

What each pass did comes from the pool's report of it
(:meth:`~flyautoscaler.ReconcilerPool.subscribe`), never from log records.
"""

from __future__ import annotations

import contextlib
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from attrs import define, field, frozen

from flyautoscaler._errors import MetricCollectionError, describe
from flyautoscaler._models import (
    HOST_STATUS_OK,
    ImageRef,
    Machine,
    MachineConfig,
    MachineState,
)
from flyautoscaler._pool import ReconcilerPool
from flyautoscaler._protocols import MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._results import ReconcileResult
from flyautoscaler._status import PassReport
from flyautoscaler.cli.simulate._report import TickRow, format_clock
from flyautoscaler.cli.simulate._summary import (
    SimulationSummary,
    check_capacity,
    summarize_run,
)
from flyautoscaler.fly import FlyGraphQLClient, new_flaps_client_func
from flyautoscaler.testing import FakeMachinesServer

__all__ = [
    "DEFAULT_MACHINES",
    "DEFAULT_STARTED_MACHINES",
    "DEFAULT_TICK",
    "DEFAULT_TRANSITION_DELAY",
    "GATE_METRIC",
    "TICK_TIMEOUT",
    "NoValue",
    "Outcome",
    "Plan",
    "Policy",
    "SimulationError",
    "TickGate",
    "simulate",
]

#: Simulated seconds between two passes, unless the policy's interval says otherwise.
DEFAULT_TICK: Final = 15.0
#: Machines the app has at the start.
DEFAULT_MACHINES: Final = 10
#: How many of them are started.
DEFAULT_STARTED_MACHINES: Final = 2
#: Simulated seconds a Machine spends starting or stopping.
DEFAULT_TRANSITION_DELAY: Final = 5.0
#: Real seconds a single pass may take before the run is abandoned.
TICK_TIMEOUT: Final = 30.0
#: The collector that paces passes; its value is the simulated time.
GATE_METRIC: Final = "_simulate_tick"

# The pool's real-time settings: passes back to back (the gate paces them).
_REAL_INTERVAL: Final = 0.001
_REAL_PASS_TIMEOUT: Final = 30.0
_CLOSE_TIMEOUT: Final = 5.0


# --- inputs ---------------------------------------------------------------------


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
        transition_delay: Simulated seconds of ``starting`` and ``stopping``.
        seed: Seed of the fleet's ids and names.
        capacity: Units of the first metric one started Machine serves
            (``--capacity``): the summary then compares the run with the
            ideal fleet. ``None``: not given.
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


# --- pacing -----------------------------------------------------------------------


@define
class _SimClock:
    """Simulated seconds; only the driver moves them, and only forward."""

    _now: float = 0.0
    _lock: threading.Lock = field(init=False, factory=threading.Lock, repr=False)

    def __call__(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        with self._lock:
            self._now = max(self._now, t)


def _no_sleep(seconds: float) -> None:
    """Within a pass simulated time stands still: waits take no time."""
    del seconds


class _GateClosedError(MetricCollectionError):
    """The run ended while a pass waited for its tick."""


@define
class TickGate:
    """Hands each pass one tick's metric values; the driver releases the ticks.

    Every collector of a pass waits for a tick the pass has not had yet: the
    first one to ask (the pass's collectors are asked at once, on threads of
    their own) takes the tick, and the others of the same pass get its values.
    """

    _cond: threading.Condition = field(init=False, factory=threading.Condition)
    _released: int = field(init=False, default=0)
    _values: dict[str, float | NoValue] = field(init=False, factory=dict)
    _seen: dict[str, int] = field(init=False, factory=dict)
    _closed: bool = field(init=False, default=False)

    def release(self, values: Mapping[str, float | NoValue]) -> None:
        """Let the next pass run with *values*."""
        with self._cond:
            self._values = dict(values)
            self._released += 1
            self._cond.notify_all()

    def value(self, name: str) -> float | NoValue:
        """Wait for a tick *name* has not had; return its value (worker side).

        Once the gate is closed, a pass still waiting gets the last tick's
        values again: it asks for nothing new, and logs no error while the
        pool closes.

        Raises:
            MetricCollectionError: No tick came in :data:`TICK_TIMEOUT`, or
                the gate closed before the first tick.
        """
        with self._cond:
            seen = self._seen.get(name, 0)
            ready = self._cond.wait_for(
                lambda: self._closed or self._released > seen, TICK_TIMEOUT
            )
            if self._closed and self._values:
                return self._values[name]
            if not ready or self._closed:
                raise _GateClosedError(name, "no tick came: the run ended")
            self._seen[name] = self._released
            return self._values[name]

    def close(self) -> None:
        """End every wait (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@frozen
class _TickCollector:
    """One metric's value at the tick the pass waits for."""

    name: str
    gate: TickGate

    def collect_metric(self, app_name: str) -> float:
        """Return this metric's value at the pass's tick, once released.

        Raises:
            MetricCollectionError: The tick has no value for it (:class:`NoValue`).
        """
        del app_name
        value = self.gate.value(self.name)
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


def _sample(server: FakeMachinesServer, plan: Plan) -> tuple[int, int, int]:
    """Return the group's Machines, started ones and starting ones, now."""
    group = plan.policy.process_group
    machines = [
        m for m in server.machines(plan.policy.app_name) if m.process_group() == group
    ]
    started = sum(1 for m in machines if m.state == MachineState.STARTED)
    starting = sum(
        1
        for m in machines
        if m.state in {MachineState.STARTING, MachineState.RESTARTING}
    )
    return len(machines), started, starting


def _row(  # noqa: PLR0913 - one tick's facts, put together
    t: float,
    metrics: Mapping[str, float],
    result: ReconcileResult | None,
    *,
    fleet: tuple[int, int, int],
    errors: int,
    notes: tuple[str, ...],
) -> TickRow:
    machines, started, starting = fleet
    if result is None:  # the pass failed before it had targets
        return TickRow(
            t, metrics, None, None, None, None, *fleet, errors=errors, notes=notes
        )
    return TickRow(
        time=t,
        metrics=metrics,
        min_created=result.min_created,
        max_created=result.max_created,
        min_started=result.min_started,
        max_started=result.max_started,
        machines=machines,
        started=started,
        starting=starting,
        creates=len(result.created),
        destroys=len(result.destroyed),
        starts=len(result.started),
        stops=len(result.stopped),
        failures=len(result.failures),
        errors=errors,
        notes=notes,
        rules=tuple(dict.fromkeys(reason.rule for reason in result.reasons)),
    )


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
    return notes


@frozen
class _Rig:
    """The running parts of one simulation."""

    plan: Plan
    server: FakeMachinesServer
    gate: TickGate
    clock: _SimClock
    reports: queue.Queue[PassReport]


def _drive(rig: _Rig, on_row: Callable[[TickRow], None]) -> list[TickRow]:
    """Run one pass per tick and return the rows.

    After releasing a tick, the driver reads the pool's reports until the one
    of the pass that took the tick (its metrics hold the tick's time); the
    reports of passes that failed before collecting count in that row too.

    Raises:
        SimulationError: A pass did not finish in :data:`TICK_TIMEOUT`.
    """
    plan, gate = rig.plan, rig.gate
    rows: list[TickRow] = []
    for k, t in enumerate(plan.times):
        rig.clock.advance_to(t)
        rig.server.tick()
        given = {n: plan.values[n][k] for n in plan.policy.metric_names}
        metrics = {n: float(v) for n, v in given.items() if not isinstance(v, NoValue)}
        gate.release({**given, **metrics, GATE_METRIC: t})
        notes: list[str] = []
        errors = 0
        deadline = time.monotonic() + TICK_TIMEOUT
        while True:  # bounded by the deadline: each turn reads one report
            try:
                report = rig.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SimulationError(
                    f"the pass at {format_clock(t)} did not finish within "
                    f"{TICK_TIMEOUT:g} s (real time)"
                ) from None
            notes.extend(_notes(report))
            errors += sum(1 for kind in report.kinds if kind != "action")
            if (report.metrics or {}).get(GATE_METRIC) == t:
                break
        row = _row(
            t,
            metrics,
            report.result,
            fleet=_sample(rig.server, plan),
            errors=errors,
            notes=tuple(dict.fromkeys(notes)),  # each note once per tick, in order
        )
        rows.append(row)
        on_row(row)
    return rows


def simulate(plan: Plan, on_row: Callable[[TickRow], None]) -> Outcome:
    """Run *plan*: one pass per tick, *on_row* called after each.

    The server, the clients and the pool are always closed, however the run
    ends.

    Raises:
        SimulationError: A pass did not finish in :data:`TICK_TIMEOUT`.
        ExpressionError: An expression does not compile (from ``pool.open()``).
        ConfigError: The pool's configuration is invalid.
        ValueError: The plan has a capacity but no metric (checked first).
    """
    capacity_metric = check_capacity(plan.capacity, plan.policy.metric_names)
    token = secrets.token_urlsafe(24)  # the fake's; no real token is ever used
    clock = _SimClock()
    began = time.monotonic()
    with contextlib.ExitStack() as stack:  # closes in the reverse order
        server = FakeMachinesServer(
            token=token, clock=clock, transition_delay=plan.transition_delay
        )
        stack.enter_context(server)
        server.add_app(
            plan.policy.app_name,
            plan.policy.org,
            machines=_fleet(plan),
            release_status="complete",
            region=(plan.policy.regions or ("iad",))[0],
        )
        graphql = stack.enter_context(FlyGraphQLClient(token, base_url=server.url))
        flaps = stack.enter_context(
            new_flaps_client_func(
                token, base_url=server.url, clock=clock, sleep=_no_sleep
            )
        )
        pool = ReconcilerPool(
            fly_client=graphql,
            app_name=plan.policy.app_name,
            organization_slug=plan.policy.org,
            new_flaps_client=flaps,
            reconcile_interval=_REAL_INTERVAL,
            # The pool (and so each reconciler) runs on the simulated clock, so
            # stabilization windows count simulated time. A pass may start
            # before the driver moves the clock to its tick (it then waits for
            # the tick's values): its timeout spans the tick too.
            reconcile_timeout=plan.tick + _REAL_PASS_TIMEOUT,
            close_timeout=_CLOSE_TIMEOUT,
            clock=clock,
        )
        gate = TickGate()
        collectors: list[MetricCollector] = [
            _TickCollector(name, gate)
            for name in (GATE_METRIC, *plan.policy.metric_names)
        ]
        pool.new_reconciler = lambda: plan.policy.new_reconciler(collectors)
        reports: queue.Queue[PassReport] = queue.Queue()
        pool.subscribe(reports.put)
        stack.callback(pool.close)
        stack.callback(gate.close)  # first: a pass waiting for a tick ends
        pool.open()
        rows = _drive(_Rig(plan, server, gate, clock, reports), on_row)
    summary = summarize_run(
        rows,
        tick=plan.tick,
        initial_started=plan.started,
        capacity=plan.capacity,
        capacity_metric=capacity_metric,
    )
    return Outcome(rows, time.monotonic() - began, summary)
