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
from collections.abc import Iterable
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
    "Create",
    "Destroy",
    "Fleet",
    "Plan",
    "Reason",
    "Start",
    "StepLimit",
    "Stop",
    "Targets",
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
# Start candidates, in order of preference.
STARTABLE: Final = (MachineState.STOPPED, MachineState.SUSPENDED, MachineState.CREATED)
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
    """Stop *n* Machines: *candidates* in order; a failed one makes way for the next."""

    n: int
    candidates: tuple[Machine, ...] = field(repr=False)

    action: ClassVar[Literal["stop"]] = "stop"


#: The step that brings the created count into range.
CreatedStep = Create | Destroy
#: The step that brings the started count into range.
StartedStep = Start | Stop


@frozen
class Plan:
    """What one pass will do, and why.

    Attributes:
        raw: The targets as the expressions gave them.
        targets: The targets the pass aims for, after the rules below.
        created_count: Watched Machines when listed.
        started_count: Of those, how many were started (or starting).
        unreachable: Machines left out because their host did not answer.
        created_step: Create or destroy, or ``None`` when the created count is
            in range.
        started_step: Start or stop, or ``None`` when the started count is in
            range; planned on the fleet the created step leaves if it all
            succeeds (the pass plans it again on the fleet it really left).
        reasons: Every rule that changed a target or limited a step.
    """

    raw: Targets
    targets: Targets
    created_count: int
    started_count: int
    unreachable: int
    created_step: CreatedStep | None
    started_step: StartedStep | None
    reasons: tuple[Reason, ...] = ()

    def with_started_step(
        self, step: StartedStep | None, reasons: Iterable[Reason]
    ) -> Plan:
        """Return this plan with *step* (and its *reasons*) as its started step."""
        kept = (r for r in self.reasons if r.rule not in _STARTED_STEP_RULES)
        return evolve(self, started_step=step, reasons=(*kept, *reasons))

    @property
    def steps(self) -> tuple[CreatedStep | StartedStep, ...]:
        """The steps to take, in order."""
        return tuple(s for s in (self.created_step, self.started_step) if s)


# --- the rules --------------------------------------------------------------------

# Rules of the started step, whose reasons change when it is planned again.
_STARTED_STEP_RULES: Final = frozenset({"not_enough_to_start"})


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


def plan(
    raw: Targets,
    fleet: Fleet,
    *,
    initial_state: str = MachineState.STARTED,
) -> Plan:
    """Plan one pass: the created step, then the started step.

    The created count is brought into [min, max] first: below min, create the
    difference; above max, destroy it (never the last Machine). Creates are
    launched started while the max started count leaves room (with
    *initial_state* ``"started"``), stopped beyond it, so that no serving
    Machine is ever stopped to make room for Machines this pass created. The
    started step is then planned on the fleet the created step leaves.

    Args:
        raw: The targets as the expressions gave them.
        fleet: The watched Machines, as listed.
        initial_state: ``"started"`` or ``"stopped"``: how new Machines are
            launched when nothing says otherwise.

    Raises:
        NoMachineToCloneError: Machines must be created and none has a config.
    """
    targets, reasons = bound_targets(raw)
    created = fleet.created_count
    running = fleet.started_count
    created_step: CreatedStep | None = None
    running_after, startable_new = running, 0
    destroyed: tuple[Machine, ...] = ()
    if targets.min_created is not None and created < targets.min_created:
        n = targets.min_created - created
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
        candidates = fleet.in_states(DESTROY_ORDER)
        candidates += tuple(m for m in fleet.machines if m.state not in DESTROY_ORDER)
        if n > 0:
            created_step = Destroy(n, candidates)
            destroyed = candidates[:n]
    predicted = fleet.changed(removed=(m.id for m in destroyed))
    running_after -= sum(1 for m in destroyed if m.state in RUNNING)
    started_step, more = _started_step(targets, predicted, running_after, startable_new)
    return Plan(
        raw=raw,
        targets=targets,
        created_count=created,
        started_count=running,
        unreachable=fleet.unreachable,
        created_step=created_step,
        started_step=started_step,
        reasons=(*reasons, *more),
    )


def plan_started(
    targets: Targets, fleet: Fleet
) -> tuple[StartedStep | None, list[Reason]]:
    """Plan the started step on *fleet*, as the created step really left it.

    Below min started, start the difference: stopped Machines first, then
    suspended ones (resumed), then created ones, lowest id first within each.
    Above max started, stop the difference: started Machines, lowest id first
    (``starting`` and ``restarting`` ones count as started but are not
    stopped).
    """
    return _started_step(targets, fleet, fleet.started_count, 0)


def _started_step(
    targets: Targets, fleet: Fleet, running: int, new: int
) -> tuple[StartedStep | None, list[Reason]]:
    reasons: list[Reason] = []
    if targets.min_started is not None and running < targets.min_started:
        n = targets.min_started - running
        candidates = fleet.in_states(STARTABLE)
        available = len(candidates) + new
        if available < n:
            reasons.append(
                Reason(
                    "not_enough_to_start",
                    f"only {available} of {n} can start: set a min created "
                    "count to create more Machines",
                )
            )
        return Start(n, candidates, new), reasons
    if targets.max_started is not None and running > targets.max_started:
        n = running - targets.max_started
        return Stop(n, fleet.in_states([MachineState.STARTED])), reasons
    return None, reasons
