"""Every scaling rule: targets and the fleet in, a plan and its reasons out.

This is the one place where flyautoscaler decides. :func:`plan` takes the four
target counts as the expressions gave them and the app's Machines as listed,
and returns a :class:`Plan`: which step brings the *created* count into range
(create or destroy), which step then brings the *started* count into range
(start or stop), which Machines each step may act on and in which order, and
every rule that changed the targets or limited a step, in words
(:class:`Reason`). :func:`plan_started` plans the second step again on the
fleet the first one actually left.

Nothing here does I/O, reads a clock, logs or starts a thread, so every rule is
tested on these functions directly, without fakes. Carrying a plan out is the
executor's job (:mod:`flyautoscaler._executor`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar, Final, Literal

from attrs import evolve, field, frozen

from flyautoscaler._errors import NoMachineToCloneError
from flyautoscaler._models import (
    HOST_STATUS_OK,
    Machine,
    MachineConfig,
    MachineState,
)

__all__ = [
    "Behaviour",
    "Create",
    "Destroy",
    "Fleet",
    "Memory",
    "Plan",
    "Ranking",
    "Reason",
    "Start",
    "StepLimit",
    "Stop",
    "Targets",
    "fallback_targets",
    "plan",
    "plan_started",
]

# States of Machines on their way out: not counted, never acted on.
GONE: Final = frozenset(
    {
        MachineState.DESTROYING,
        MachineState.DESTROYED,
        MachineState.REPLACED,
        MachineState.MIGRATED,
    }
)
# States counted as started: already running or about to be (no overshoot).
RUNNING: Final = frozenset(
    {MachineState.STARTED, MachineState.STARTING, MachineState.RESTARTING}
)
# Start candidates, in order of preference: suspended ones resume fastest.
STARTABLE: Final = (MachineState.SUSPENDED, MachineState.STOPPED, MachineState.CREATED)
# Destroy candidates, in order of preference: idle first, running last.
DESTROY_ORDER: Final = (
    MachineState.FAILED,
    MachineState.LAUNCH_FAILED,
    MachineState.STOPPED,
    MachineState.SUSPENDED,
    MachineState.CREATED,
)


# --- inputs -----------------------------------------------------------------------


@frozen
class Targets:
    """The four Machine counts a pass aims for; ``None`` means no bound.

    Attributes:
        min_created: The least created Machines.
        max_created: The most created Machines.
        min_started: The least started Machines.
        max_started: The most started Machines.
    """

    min_created: int | None = None
    max_created: int | None = None
    min_started: int | None = None
    max_started: int | None = None

    def as_dict(self) -> dict[str, dict[str, int | None]]:
        """Return ``{"created": {"min", "max"}, "started": {"min", "max"}}``."""
        return {
            "created": {"min": self.min_created, "max": self.max_created},
            "started": {"min": self.min_started, "max": self.max_started},
        }


@frozen
class StepLimit:
    """At most this many actions of one kind in one pass.

    Either a fixed *count*, or a *percent* of the current count (rounded up,
    at least 1). Build one with :func:`flyautoscaler._validation.parse_step`.
    """

    count: int | None = None
    percent: float | None = None

    def of(self, current: int) -> int:
        """Return the most actions allowed when *current* Machines are counted."""
        if self.count is not None:
            return self.count
        assert self.percent is not None  # noqa: S101 - one of the two is set
        return max(1, math.ceil(current * self.percent / 100 - 1e-9))

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{self.percent:g}%"


@frozen
class Fleet:
    """The watched Machines of one app: reachable, of the group, not going away.

    Attributes:
        machines: The watched Machines, in the order the API listed them.
        unreachable: Machines of the app left out because their host did not
            answer (``host_status`` other than ``ok``).
    """

    machines: tuple[Machine, ...]
    unreachable: int = 0

    @classmethod
    def watched(cls, listed: Iterable[Machine], process_group: str) -> Fleet:
        """Keep the Machines a pass counts and acts on, from a listing.

        A Machine is watched when its host answers, it belongs to
        *process_group*, and it is not being destroyed, replaced or migrated.
        """
        machines = list(listed)
        reachable = [m for m in machines if m.host_status == HOST_STATUS_OK]
        return cls(
            tuple(
                m
                for m in reachable
                if m.process_group() == process_group and m.state not in GONE
            ),
            unreachable=len(machines) - len(reachable),
        )

    @property
    def created_count(self) -> int:
        """How many Machines are watched."""
        return len(self.machines)

    @property
    def started_count(self) -> int:
        """How many are started, or on their way (``starting``, ``restarting``)."""
        return sum(1 for m in self.machines if m.state in RUNNING)

    def in_states(self, states: Iterable[str]) -> tuple[Machine, ...]:
        """Return the Machines in *states*, in that order, lowest id first in each."""
        ordered: list[Machine] = []
        for state in states:
            ordered.extend(
                sorted((m for m in self.machines if m.state == state), key=_by_id)
            )
        return tuple(ordered)

    def changed(
        self, *, added: Iterable[Machine] = (), removed: Iterable[str] = ()
    ) -> Fleet:
        """Return the fleet after Machines were *added*, and *removed* (by id).

        Args:
            added: Machines created, as the API returned them.
            removed: Ids of Machines destroyed.
        """
        gone = set(removed)
        machines = [m for m in self.machines if m.id not in gone]
        return evolve(self, machines=(*machines, *added))


def _by_id(machine: Machine) -> str:
    return machine.id


@frozen
class Behaviour:
    """How decisions use an app's memory; the defaults are the Go original's.

    Attributes:
        scale_down_window: Seconds; a max target is brought down only to the
            highest max computed within this window (per dimension).
        scale_up_window: Seconds; a min target is brought up only to the
            lowest min computed within this window.
        max_up_step: At most this many creates, and this many starts, a pass.
        max_down_step: At most this many destroys, and this many stops, a pass.
        fallback_after: Passes in a row whose metrics or expressions failed
            after which :attr:`fallback_started` applies; 0 never falls back.
        fallback_started: The started count during fallback.
        suspend: Bring the started count down by suspending, not stopping.
    """

    scale_down_window: float = 0.0
    scale_up_window: float = 0.0
    max_up_step: StepLimit | None = None
    max_down_step: StepLimit | None = None
    fallback_after: int = 0
    fallback_started: int | None = None
    suspend: bool = False

    @property
    def horizon(self) -> float:
        """How long computed targets are remembered, in seconds."""
        return max(self.scale_down_window, self.scale_up_window)


#: Most computed targets an app's memory keeps, oldest dropped first: a pass
#: every second over a window of more than an hour. Keeps memory bounded
#: whatever the clock or the pass rate.
MAX_REMEMBERED: Final = 4096


@frozen
class Memory:
    """What an app's earlier passes leave for the next one.

    A plan returns the memory its pass leaves (:attr:`Plan.memory`); a pass
    whose metrics or expressions failed and that holds the fleet leaves
    :meth:`failed`.

    Attributes:
        computed: ``(time, targets)`` of recent passes, oldest first: the
            targets the expressions gave (after the rules every target
            obeys), within the longest stabilization window.
        failed_passes: Passes in a row whose metrics or expressions failed.
        fallback: Whether the last pass used the fallback count.
    """

    computed: tuple[tuple[float, Targets], ...] = ()
    failed_passes: int = 0
    fallback: bool = False

    def failed(self) -> Memory:
        """Return the memory after one more pass whose metrics or expressions failed."""
        return evolve(self, failed_passes=self.failed_passes + 1, fallback=False)

    def remember(self, now: float, targets: Targets, horizon: float) -> Memory:
        """Return the memory after a pass computed *targets* at *now*."""
        kept = [(t, v) for t, v in self.computed if t >= now - horizon and t <= now]
        kept.append((now, targets))
        return Memory(tuple(kept[-MAX_REMEMBERED:]))


@frozen
class Ranking:
    """Per-Machine values that order the Machines to stop, lowest first.

    Attributes:
        name: The metric's name, for explanations.
        values: Value by Machine id; Machines without one go last. ``None``
            when collection failed (the default order is kept).
        error: Why collection failed, when it did.
    """

    name: str
    values: Mapping[str, float] | None = None
    error: str = ""

    def order(self, machines: Iterable[Machine]) -> tuple[Machine, ...]:
        """Return *machines* lowest value first, then those without one (by id)."""
        values = self.values or {}
        return tuple(
            sorted(
                machines,
                key=lambda m: (m.id not in values, values.get(m.id, 0.0), m.id),
            )
        )


# --- the plan ---------------------------------------------------------------------


@frozen
class Reason:
    """A rule that changed a target or limited a step, and what it did.

    Attributes:
        rule: The rule's stable name (``"min_above_max"``, ...).
        text: What it did, in words, for logs and ``eval --explain``.
    """

    rule: str
    text: str

    def __str__(self) -> str:
        return self.text


@frozen
class Create:
    """Create *n* Machines, cloning *config*; the first *started* launched started.

    Attributes:
        n: Machines to create (a count: it may be huge; nothing is per Machine).
        started: How many of them to launch started; the others are launched
            stopped (``skip_launch``), created but not running.
        source: The Machine cloned.
        config: The config every new Machine gets (the source's, with its
            image pinned to the source's full image reference).
    """

    n: int
    started: int
    source: Machine
    config: MachineConfig = field(repr=False)

    action: ClassVar[Literal["create"]] = "create"


@frozen
class Destroy:
    """Destroy at most *n* of *candidates*, in their order.

    A failed destroy uses up its turn: never more than *n* Machines go, and
    *n* never takes the last Machine (:func:`plan` caps it).
    """

    n: int
    candidates: tuple[Machine, ...] = field(repr=False)

    action: ClassVar[Literal["destroy"]] = "destroy"


@frozen
class Start:
    """Start *n* Machines: *candidates* in order; a failed one makes way for the next.

    Attributes:
        n: Machines to start.
        candidates: Listed Machines that may be started, in order.
        new: Machines this pass creates stopped that may be started too (a
            prediction: the fleet the created step leaves is planned again
            with :func:`plan_started`).
    """

    n: int
    candidates: tuple[Machine, ...] = field(repr=False)
    new: int = 0

    action: ClassVar[Literal["start"]] = "start"


@frozen
class Stop:
    """Stop (or suspend) *n* Machines: *candidates* in order.

    A failed one makes way for the next.

    Attributes:
        n: Machines to stop.
        candidates: Started Machines that may be stopped, in order.
        suspend: Suspend them (``stop_mode`` ``"suspend"``) instead.
    """

    n: int
    candidates: tuple[Machine, ...] = field(repr=False)
    suspend: bool = False

    action: ClassVar[Literal["stop"]] = "stop"


#: The step that brings the created count into range.
CreatedStep = Create | Destroy
#: The step that brings the started count into range.
StartedStep = Start | Stop


@frozen
class Plan:
    """What one pass will do, and why.

    Attributes:
        raw: The targets as the expressions gave them (all ``None`` when
            they failed and the pass falls back).
        targets: The targets the pass aims for, after the rules below.
        created_count: Watched Machines when listed.
        started_count: Of those, how many were started (or starting).
        unreachable: Machines left out because their host did not answer.
        created_step: Create or destroy, or ``None`` when the created count is
            in range.
        started_step: Start or stop, or ``None`` when the started count is in
            range; planned on the fleet the created step leaves if it all
            succeeds (the pass plans it again on the fleet it really left).
        reasons: Every rule that changed a target or limited a step, the
            started step's last.
        started_reasons: How many of :attr:`reasons` (the last ones) are
            the started step's.
        memory: What this pass leaves for the next.
        fallback: Whether the targets are the fallback count.
    """

    raw: Targets
    targets: Targets
    created_count: int
    started_count: int
    unreachable: int
    created_step: CreatedStep | None
    started_step: StartedStep | None
    reasons: tuple[Reason, ...] = ()
    started_reasons: int = 0
    memory: Memory = Memory()
    fallback: bool = False

    def with_started_step(
        self, step: StartedStep | None, reasons: Iterable[Reason]
    ) -> Plan:
        """Return this plan with *step* (and its *reasons*) as its started step."""
        kept = self.reasons[: len(self.reasons) - self.started_reasons]
        more = tuple(reasons)
        return evolve(
            self,
            started_step=step,
            reasons=(*kept, *more),
            started_reasons=len(more),
        )

    @property
    def steps(self) -> tuple[CreatedStep | StartedStep, ...]:
        """The steps to take, in order."""
        return tuple(s for s in (self.created_step, self.started_step) if s)

    def needs_ranking(self) -> bool:
        """Whether a step stops or destroys started Machines (ranked, if asked)."""
        if isinstance(self.started_step, Stop):
            return True
        step = self.created_step
        return isinstance(step, Destroy) and any(
            m.state in RUNNING for m in step.candidates[: step.n]
        )


# --- the rules --------------------------------------------------------------------


def bound_targets(raw: Targets) -> tuple[Targets, list[Reason]]:
    """Apply the rules every target obeys; return the targets and the reasons.

    - Created counts are at least 1: there must be a Machine to clone.
    - A minimum above its maximum wins: the maximum is raised to it (so a
      fleet never flaps between the two).
    """
    reasons: list[Reason] = []
    min_created = _at_least_one(raw.min_created, "min created", reasons)
    max_created = _at_least_one(raw.max_created, "max created", reasons)
    max_created = _max_at_least_min("created", min_created, max_created, reasons)
    max_started = _max_at_least_min(
        "started", raw.min_started, raw.max_started, reasons
    )
    targets = Targets(min_created, max_created, raw.min_started, max_started)
    return targets, reasons


def at_least_one(value: int | None) -> int | None:
    """Return a created-count target raised to at least 1 (``None`` stays)."""
    return None if value is None else max(1, value)


def _at_least_one(value: int | None, label: str, reasons: list[Reason]) -> int | None:
    bounded = at_least_one(value)
    if bounded != value:
        reasons.append(
            Reason(
                "created_at_least_one",
                f"{label} count raised from {value} to 1: a Machine must stay to clone",
            )
        )
    return bounded


def _max_at_least_min(
    kind: str, low: int | None, high: int | None, reasons: list[Reason]
) -> int | None:
    if low is None or high is None or high >= low:
        return high
    reasons.append(
        Reason(
            "min_above_max",
            f"min {kind} count {low} is above max {kind} count {high}: "
            f"max {kind} raised to {low} (min wins)",
        )
    )
    return low


def _window(seconds: float) -> str:
    """Return *seconds* as a window's length for reasons (``5m``, ``90s``)."""
    whole = round(seconds)
    if whole >= 60 and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{seconds:g}s"


def _target(targets: Targets, attr: str) -> int | None:
    value: int | None = getattr(targets, attr)
    return value


def stabilize(
    targets: Targets, memory: Memory, now: float, behaviour: Behaviour
) -> tuple[Targets, list[Reason]]:
    """Apply the stabilization windows to *targets*, computed at *now*.

    *memory* already holds *targets* (:meth:`Memory.remember`). Each max
    target becomes the highest max computed within the scale-down window, so
    a dip shorter than the window stops or destroys nothing; each min target
    becomes the lowest min computed within the scale-up window, so a spike
    shorter than it starts or creates nothing. Neither window delays the
    other direction: raising a max never delays a scale-up, lowering a min
    never delays a scale-down.
    """
    reasons: list[Reason] = []
    down, up = behaviour.scale_down_window, behaviour.scale_up_window

    def held(attr: str, window: float, *, highest: bool) -> int | None:
        value = _target(targets, attr)
        if value is None or window <= 0:
            return value
        seen = [
            v
            for t, past in memory.computed
            if t >= now - window and (v := _target(past, attr)) is not None
        ]
        chosen = max(value, *seen) if highest else min(value, *seen)
        if chosen != value:
            bound, kind = attr.split("_")
            direction = "scale-down" if highest else "scale-up"
            reasons.append(
                Reason(
                    f"{direction.replace('-', '_')}_stabilization",
                    f"{direction} stabilization held {bound} {kind} at {chosen} "
                    f"(raw {value}, {_window(window)} window)",
                )
            )
        return chosen

    stabilized = Targets(
        min_created=held("min_created", up, highest=False),
        max_created=held("max_created", down, highest=True),
        min_started=held("min_started", up, highest=False),
        max_started=held("max_started", down, highest=True),
    )
    return stabilized, reasons


def fallback_targets(behaviour: Behaviour, memory: Memory) -> Targets | None:
    """Return the targets of a pass whose metrics or expressions failed.

    *memory* counts that pass already (:meth:`Memory.failed`). ``None`` means
    hold the fleet: no fallback is configured, or fewer than
    ``fallback_after`` passes before this one failed. Otherwise the started
    count is the fallback count (min and max), the created count at least it
    (and 1); no Machine is destroyed.
    """
    count = behaviour.fallback_started
    if (
        not behaviour.fallback_after
        or count is None
        or memory.failed_passes <= behaviour.fallback_after
    ):
        return None
    return Targets(min_created=max(1, count), min_started=count, max_started=count)


def clone_source(fleet: Fleet) -> tuple[Machine, MachineConfig]:
    """Return the Machine a create clones, and the config new Machines get.

    The first started Machine that has a config, in listing order; else the
    first Machine with a config. The config is a deep copy with its image
    pinned to the source's full image reference (the config's own image when
    the Machine has no usable ``image_ref``).

    Raises:
        NoMachineToCloneError: No watched Machine has a config.
    """
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


_SCALING_UP: Final = frozenset({"creates", "starts"})


def _limit(
    n: int, behaviour: Behaviour, what: str, current: int, reasons: list[Reason]
) -> int:
    """Return *n* actions capped by the step limit of their direction.

    *what* says the action (``creates``, ``starts``: scaling up; ``destroys``,
    ``stops``, ``suspends``: down); a percent limit is of *current*.
    """
    up = what in _SCALING_UP
    limit = behaviour.max_up_step if up else behaviour.max_down_step
    if limit is None:
        return n
    allowed = limit.of(current)
    if allowed >= n:
        return n
    setting = "max_scale_up_step" if up else "max_scale_down_step"
    said = str(limit) if limit.count is not None else f"{limit} of {current}"
    reasons.append(
        Reason(
            setting,
            f"{what} {allowed} of {n} Machines this pass: "
            f"{setting.replace('_', '-')} is {said}",
        )
    )
    return allowed


def plan(  # noqa: PLR0913 - the planner's inputs, all keyword but two
    raw: Targets,
    fleet: Fleet,
    *,
    initial_state: str = MachineState.STARTED,
    behaviour: Behaviour = Behaviour(),
    memory: Memory = Memory(),
    now: float = 0.0,
    fallback: Reason | None = None,
    ranking: Ranking | None = None,
) -> Plan:
    """Plan one pass: the targets, the created step, then the started step.

    The targets are bounded (:func:`bound_targets`), remembered and
    stabilized (:func:`stabilize`), unless the pass falls back. The created
    count is brought into [min, max] first: below min, create the
    difference; above max, destroy it (never the last Machine). Creates are
    launched started while the max started count leaves room (with
    *initial_state* ``"started"``), stopped beyond it, so that no serving
    Machine is ever stopped to make room for Machines this pass created. The
    started step is then planned on the fleet the created step leaves. Step
    limits cap each step.

    Args:
        raw: The targets as the expressions gave them, or the fallback
            targets (:func:`fallback_targets`) when *fallback* is given.
        fleet: The watched Machines, as listed.
        initial_state: ``"started"`` or ``"stopped"``: how new Machines are
            launched when nothing says otherwise.
        behaviour: Windows, step limits, fallback and stop mode.
        memory: What the app's earlier passes left (for a fallback pass:
            already counting this one, :meth:`Memory.failed`).
        now: The time of this pass, on the clock *memory*'s times are on.
        fallback: Why the pass falls back to *raw*; ``None`` for a pass whose
            expressions gave *raw*.
        ranking: Per-Machine values that order stop (and started destroy)
            candidates; ``None`` keeps the default order.

    Raises:
        NoMachineToCloneError: Machines must be created and none has a config.
    """
    if fallback is None:
        bounded, reasons = bound_targets(raw)
        memory = memory.remember(now, bounded, behaviour.horizon)
        targets, held = stabilize(bounded, memory, now, behaviour)
        reasons += held
    else:
        targets, reasons = raw, [fallback]
        memory = evolve(memory, fallback=True)
        raw = Targets()
    created = fleet.created_count
    running = fleet.started_count
    created_step: CreatedStep | None = None
    running_after, startable_new = running, 0
    destroyed: tuple[Machine, ...] = ()
    if targets.min_created is not None and created < targets.min_created:
        n = _limit(
            targets.min_created - created, behaviour, "creates", created, reasons
        )
        source, config = clone_source(fleet)
        room = n
        if initial_state == MachineState.STOPPED:
            room = 0
        elif targets.max_started is not None:
            room = min(n, max(0, targets.max_started - running))
        if room < n and initial_state != MachineState.STOPPED:
            reasons.append(
                Reason(
                    "create_stopped_beyond_max_started",
                    f"{n - room} of {n} new Machines launched stopped: max "
                    f"started is {targets.max_started}",
                )
            )
        created_step = Create(n, room, source, config)
        running_after, startable_new = running + room, n - room
    elif targets.max_created is not None and created > targets.max_created:
        n = min(created - targets.max_created, created - 1)
        if n < created - targets.max_created:
            reasons.append(
                Reason(
                    "keep_last_machine",
                    f"destroys {n} Machines, not {created - targets.max_created}: "
                    "the last Machine stays, to clone",
                )
            )
        n = _limit(n, behaviour, "destroys", created, reasons)
        idle = fleet.in_states(DESTROY_ORDER)
        busy = tuple(m for m in fleet.machines if m.state not in DESTROY_ORDER)
        if n > 0:
            busy = _ranked(busy, ranking, n - len(idle), reasons)
            candidates = idle + busy
            created_step = Destroy(n, candidates)
            destroyed = candidates[:n]
    predicted = fleet.changed(removed=(m.id for m in destroyed))
    running_after -= sum(1 for m in destroyed if m.state in RUNNING)
    started_step, more = _started_step(
        targets,
        predicted,
        _Counts(running_after, startable_new, running),
        behaviour,
        ranking,
    )
    return Plan(
        raw=raw,
        targets=targets,
        created_count=created,
        started_count=running,
        unreachable=fleet.unreachable,
        created_step=created_step,
        started_step=started_step,
        reasons=(*reasons, *more),
        started_reasons=len(more),
        memory=memory,
        fallback=fallback is not None,
    )


def _ranked(
    machines: tuple[Machine, ...],
    ranking: Ranking | None,
    acted_on: int,
    reasons: list[Reason],
) -> tuple[Machine, ...]:
    """Order started *machines* by *ranking*; say so when it picks any."""
    if ranking is None or acted_on <= 0 or not machines:
        return machines
    if ranking.values is None:
        reasons.append(
            Reason(
                "stop_metric_unavailable",
                f"{ranking.name} could not be collected ({ranking.error}): "
                "Machines chosen in the default order (lowest id first)",
            )
        )
        return machines
    reasons.append(
        Reason(
            "stop_metric",
            f"Machines to stop chosen by {ranking.name}, lowest first",
        )
    )
    return ranking.order(machines)


@frozen
class _Counts:
    """The started counts a started step is planned from."""

    running: int  # started (or starting) once the created step is done
    new: int  # Machines the created step launches stopped
    listed: int  # started when listed: what a percent step limit is of


def plan_started(
    targets: Targets,
    fleet: Fleet,
    *,
    behaviour: Behaviour = Behaviour(),
    listed_started: int | None = None,
    ranking: Ranking | None = None,
) -> tuple[StartedStep | None, list[Reason]]:
    """Plan the started step on *fleet*, as the created step really left it.

    Below min started, start the difference: suspended Machines first (they
    resume fastest), then stopped ones, then created ones, lowest id first
    within each. Above max started, stop the difference: started Machines,
    lowest id first or lowest *ranking* value first (``starting`` and
    ``restarting`` ones count as started but are not stopped). The step
    limits of *behaviour* cap either; a percent limit is of
    *listed_started* (the count when the pass listed the Machines; default
    the fleet's).
    """
    running = fleet.started_count
    listed = running if listed_started is None else listed_started
    return _started_step(
        targets, fleet, _Counts(running, 0, listed), behaviour, ranking
    )


def _started_step(
    targets: Targets,
    fleet: Fleet,
    counts: _Counts,
    behaviour: Behaviour,
    ranking: Ranking | None,
) -> tuple[StartedStep | None, list[Reason]]:
    reasons: list[Reason] = []
    running = counts.running
    if targets.min_started is not None and running < targets.min_started:
        n = targets.min_started - running
        candidates = fleet.in_states(STARTABLE)
        available = len(candidates) + counts.new
        if available < n:
            reasons.append(
                Reason(
                    "not_enough_to_start",
                    f"only {available} of {n} can start: set a min created "
                    "count to create more Machines",
                )
            )
        n = _limit(n, behaviour, "starts", counts.listed, reasons)
        return Start(n, candidates, counts.new), reasons
    if targets.max_started is not None and running > targets.max_started:
        n = _limit(
            running - targets.max_started,
            behaviour,
            "suspends" if behaviour.suspend else "stops",
            counts.listed,
            reasons,
        )
        candidates = _ranked(
            fleet.in_states([MachineState.STARTED]), ranking, n, reasons
        )
        return Stop(n, candidates, suspend=behaviour.suspend), reasons
    return None, reasons
