"""The engine of ``flyautoscaler simulate``: a pool, a fake fleet, a fast clock.

:func:`simulate` runs the real :class:`~flyautoscaler.ReconcilerPool` with the
real HTTP clients (:class:`~flyautoscaler.fly.FlyGraphQLClient` and the client
of :func:`~flyautoscaler.fly.new_flaps_client_func`) against an app of a
:class:`~flyautoscaler.testing.FakeMachinesServer` on 127.0.0.1, one pass per
tick of simulated time. The server's Machines take simulated seconds to start
and stop.

Ticks are driven one at a time: the pool's interval is tiny, and its first
collector blocks each pass until the driver hands it the tick's metric values
(:class:`TickGate`), so pass *k* always sees the values of time *k* x tick,
however fast or slow the computer is. Within a pass, simulated time stands
still: the Machines client's rate limiter runs on the simulated clock and its
waits take no time, so what it refuses to wait for is refused as in
production, but a pass never overlaps the next tick.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from attrs import define, field, frozen

from flyautoscaler._errors import MetricCollectionError
from flyautoscaler._fake_server import FakeMachinesServer
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
from flyautoscaler._simreport import TickRow, format_clock
from flyautoscaler.fly import FlyGraphQLClient, new_flaps_client_func

__all__ = [
    "GATE_METRIC",
    "TICK_TIMEOUT",
    "Outcome",
    "Plan",
    "Policy",
    "SimulationError",
    "TickGate",
    "simulate",
]

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
class Plan:
    """A validated run: the policy, the ticks and each tick's metric values.

    Attributes:
        policy: What to simulate.
        times: Simulated seconds of each tick.
        tick: Simulated seconds between two ticks.
        values: Each metric's value at each tick.
        load: Where the values come from, in words.
        machines: Machines seeded.
        started: How many of them are started.
        transition_delay: Simulated seconds of ``starting`` and ``stopping``.
        seed: Seed of the fleet's ids and names.
    """

    policy: Policy
    times: tuple[float, ...]
    tick: float
    values: Mapping[str, Sequence[float]]
    load: str
    machines: int
    started: int
    transition_delay: float
    seed: int


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

    The first collector of every pass calls :meth:`take`, which blocks until
    the driver has released a tick that no pass has taken yet.
    """

    pass_count: Callable[[], int]
    _cond: threading.Condition = field(init=False, factory=threading.Condition)
    _released: int = field(init=False, default=0)
    _taken: int = field(init=False, default=0)
    _taken_at: int = field(init=False, default=0)
    _values: dict[str, float] = field(init=False, factory=dict)
    _closed: bool = field(init=False, default=False)

    def release(self, values: Mapping[str, float]) -> None:
        """Let the next pass run with *values*."""
        with self._cond:
            self._values = dict(values)
            self._released += 1
            self._cond.notify_all()

    def take(self) -> dict[str, float]:
        """Wait for a tick no pass has taken; return its values (worker side).

        Once the gate is closed, a pass still waiting gets the last tick's
        values again: it asks for nothing new, and logs no error while the
        pool closes.

        Raises:
            MetricCollectionError: No tick came in :data:`TICK_TIMEOUT`, or
                the gate closed before the first tick.
        """
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._closed or self._released > self._taken, TICK_TIMEOUT
            )
            if self._closed and self._values:
                return dict(self._values)
            if not ready or self._closed:
                raise _GateClosedError(GATE_METRIC, "no tick came: the run ended")
            self._taken += 1
            self._taken_at = self.pass_count()
            self._cond.notify_all()
            return dict(self._values)

    def current(self) -> dict[str, float]:
        """Return the values of the tick taken last."""
        with self._cond:
            return dict(self._values)

    def wait_taken(self, count: int, timeout: float) -> int | None:
        """Wait until *count* ticks were taken; return the pass count then.

        The pass that took the tick is finished once the pool's pass count
        exceeds the returned number. ``None`` on timeout.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._taken >= count, timeout):
                return None
            return self._taken_at

    def close(self) -> None:
        """End every wait (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@frozen
class _GateCollector:
    """The first collector: waits for the tick, returns the simulated time."""

    gate: TickGate
    name: str = GATE_METRIC

    def collect_metric(self, app_name: str) -> float:
        """Return the tick's simulated time, once the driver released it."""
        del app_name
        return self.gate.take()[GATE_METRIC]


@frozen
class _ValueCollector:
    """One metric's value at the tick the pass took."""

    name: str
    gate: TickGate

    def collect_metric(self, app_name: str) -> float:
        """Return this metric's value at the current tick."""
        del app_name
        return self.gate.current()[self.name]


class _EventLog(logging.Handler):
    """Keeps what the library logs at warning level or above, as short notes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._notes: list[str] = []
        self._notes_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        note = _note(record)
        if note:
            with self._notes_lock:
                self._notes.append(note)

    def drain(self) -> tuple[str, ...]:
        with self._notes_lock:
            notes, self._notes = self._notes, []
        return tuple(dict.fromkeys(notes))  # each note once per tick, in order


def _note(record: logging.LogRecord) -> str | None:  # noqa: PLR0911 - one per event
    event = record.getMessage()
    data = record.__dict__
    if event == "reconcile.not_enough_stopped":
        return f"only {data.get('available')} of {data.get('wanted')} can start"
    if event == "reconcile.min_above_max":
        return f"{data.get('kind')} min above max: min wins"
    if event == "reconcile.create_gave_up":
        return "gave up creating"
    if event == "pool.pass_failed":
        return f"pass failed ({data.get('kind')}): {data.get('error')}"
    if event.startswith("machine.") and event.endswith("_failed"):
        action = event.removeprefix("machine.").removesuffix("_failed")
        return f"{action} failed: {data.get('error')}"
    if event in {"reconcile.incomplete", "metrics.collect_failed"}:
        return None  # told by the failures count, or by pool.pass_failed
    return event


# --- the run ----------------------------------------------------------------------


class SimulationError(RuntimeError):
    """The pool stopped answering: a pass did not finish in time."""


@frozen
class Outcome:
    rows: list[TickRow]
    seconds: float


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
    )


@frozen
class _Rig:
    """The running parts of one simulation."""

    plan: Plan
    server: FakeMachinesServer
    pool: ReconcilerPool
    gate: TickGate
    clock: _SimClock
    events: _EventLog


def _drive(rig: _Rig, on_row: Callable[[TickRow], None]) -> list[TickRow]:
    """Run one pass per tick and return the rows.

    Raises:
        SimulationError: A pass did not finish in :data:`TICK_TIMEOUT`.
    """
    plan, pool, gate = rig.plan, rig.pool, rig.gate
    app = plan.policy.app_name
    rows: list[TickRow] = []
    previous: ReconcileResult | None = None
    errors_before = 0
    for k, t in enumerate(plan.times):
        rig.clock.advance_to(t)
        rig.server.tick()
        metrics = {n: float(plan.values[n][k]) for n in plan.policy.metric_names}
        gate.release({**metrics, GATE_METRIC: t})
        taken_at = gate.wait_taken(k + 1, TICK_TIMEOUT)
        if taken_at is None or not pool.wait_for_passes(taken_at + 1, TICK_TIMEOUT):
            raise SimulationError(
                f"the pass at {format_clock(t)} did not finish within "
                f"{TICK_TIMEOUT:g} s (real time)"
            )
        status = pool.app_status()[app]
        result = status.last_result if status.last_result is not previous else None
        previous = status.last_result
        errors = sum(n for kind, n in status.errors.items() if kind != "action")
        row = _row(
            t,
            metrics,
            result,
            fleet=_sample(rig.server, plan),
            errors=errors - errors_before,
            notes=rig.events.drain(),
        )
        errors_before = errors
        rows.append(row)
        on_row(row)
    return rows


def simulate(plan: Plan, on_row: Callable[[TickRow], None]) -> Outcome:
    """Run *plan*: one pass per tick, *on_row* called after each.

    The server, the clients and the pool are always closed, and the log
    handler removed, however the run ends.

    Raises:
        SimulationError: A pass did not finish in :data:`TICK_TIMEOUT`.
        ExpressionError: An expression does not compile (from ``pool.open()``).
        ConfigError: The pool's configuration is invalid.
    """
    token = secrets.token_urlsafe(24)  # the fake's; no real token is ever used
    clock = _SimClock()
    events = _EventLog()
    library = logging.getLogger("flyautoscaler")
    began = time.monotonic()
    with contextlib.ExitStack() as stack:  # closes in the reverse order
        library.addHandler(events)
        stack.callback(library.removeHandler, events)
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
            reconcile_timeout=_REAL_PASS_TIMEOUT,
            close_timeout=_CLOSE_TIMEOUT,
        )
        gate = TickGate(pass_count=lambda: pool.pass_count)
        collectors: list[MetricCollector] = [
            _GateCollector(gate),
            *(_ValueCollector(n, gate) for n in plan.policy.metric_names),
        ]
        pool.new_reconciler = lambda: plan.policy.new_reconciler(collectors)
        stack.callback(pool.close)
        stack.callback(gate.close)  # first: a pass waiting for a tick ends
        pool.open()
        rows = _drive(_Rig(plan, server, pool, gate, clock, events), on_row)
    return Outcome(rows, time.monotonic() - began)
