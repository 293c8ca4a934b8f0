"""The in-memory fakes: a Machines API, Fly's GraphQL API and metric sources.

Public through :mod:`flyautoscaler.testing`, which says what each one does.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Final

from attrs import define, evolve, field, frozen

from flyautoscaler._errors import (
    FlapsConflictError,
    FlapsError,
    FlapsNotFoundError,
    FlyAutoscalerError,
)
from flyautoscaler._models import (
    HOST_STATUS_OK,
    App,
    ImageRef,
    LaunchMachineInput,
    Machine,
    MachineLease,
    MachineStartResponse,
    MachineState,
    Organization,
    Release,
    RemoveMachineInput,
    StopMachineInput,
)

__all__ = [
    "TRANSITIONS",
    "Call",
    "CallableCollector",
    "FakeFlapsClient",
    "FakeFlyClient",
    "Lease",
    "StaticCollector",
    "parse_image_ref",
]

#: The timed transitions of a fake Machine, the keys of ``transition_delays``:
#: ``create`` (a launch to ``started``, through ``starting``: its boot),
#: ``start`` (from ``stopped`` or ``created``, through ``starting``),
#: ``resume`` (a start from ``suspended``, through ``starting``),
#: ``stop`` (through ``stopping``) and ``suspend`` (through ``suspending``).
TRANSITIONS: Final = ("create", "start", "resume", "stop", "suspend")


def check_transition_delays(
    delays: Mapping[str, float] | None, default: float
) -> dict[str, float]:
    """Check *default* and *delays*; return *delays* as a new dict of floats.

    Raises:
        ValueError: *default* or a delay is negative or not finite, or a key
            is not one of :data:`TRANSITIONS`.
    """
    if not math.isfinite(default) or default < 0:
        raise ValueError(f"transition_delay must be >= 0, got {default}")
    given = dict(delays or {})
    unknown = sorted(set(given) - set(TRANSITIONS))
    if unknown:
        raise ValueError(
            f"unknown transitions {unknown} in transition_delays; "
            f"known: {', '.join(TRANSITIONS)}"
        )
    for name, delay in given.items():
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"transition_delays[{name!r}] must be >= 0, got {delay}")
    return {name: float(delay) for name, delay in given.items()}


_IMAGE: Final = re.compile(
    r"^(?:(?P<registry>[^/]+\.[^/]+|localhost(?::\d+)?)/)?"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?$"
)


def parse_image_ref(image: str) -> ImageRef:
    """Split ``registry/repository:tag@digest`` into an :class:`ImageRef`."""
    match = _IMAGE.match(image)
    if match is None:
        return ImageRef(repository=image)
    return ImageRef(
        registry=match.group("registry") or "",
        repository=match.group("repository") or "",
        tag=match.group("tag") or "",
        digest=match.group("digest") or "",
    )


@frozen
class Call:
    """One call a fake received.

    Attributes:
        method: The method's name (``"list"``, ``"launch"``, ...).
        args: Its arguments, as passed.
    """

    method: str
    args: tuple[object, ...]


@define
class _Failure:
    error: BaseException
    remaining: int | None  # None: forever
    key: str | None


@define
class _FailurePlan:
    """Failures injected per method, optionally per Machine id or app name."""

    _failures: dict[str, list[_Failure]] = field(factory=dict)

    def add(
        self, method: str, error: BaseException, times: int | None, key: str | None
    ) -> None:
        self._failures.setdefault(method, []).append(_Failure(error, times, key))

    def clear(self) -> None:
        self._failures.clear()

    def take(self, method: str, key: str) -> BaseException | None:
        for failure in self._failures.get(method, []):
            if failure.key is not None and failure.key != key:
                continue
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures[method].remove(failure)
            return failure.error
        return None


@define
class _Recorder:
    """The lock, call log, failure plan and in-flight count every fake shares."""

    before_call: Callable[[str, tuple[object, ...]], None] | None = None
    lock: threading.RLock = field(factory=threading.RLock)
    calls: list[Call] = field(factory=list)
    plan: _FailurePlan = field(factory=_FailurePlan)
    in_flight: int = 0
    max_in_flight: int = 0

    @contextlib.contextmanager
    def call(self, method: str, key: str, args: tuple[object, ...]) -> Iterator[None]:
        """Record a call, run the hook, raise an injected failure, count in-flight."""
        with self.lock:
            self.calls.append(Call(method, args))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            error = self.plan.take(method, key)
        try:
            if self.before_call is not None:
                self.before_call(method, args)
            if error is not None:
                raise error
            yield
        finally:
            with self.lock:
                self.in_flight -= 1


class _Fake:
    """Call log and failure injection, shared by the fakes."""

    def __init__(
        self, before_call: Callable[[str, tuple[object, ...]], None] | None
    ) -> None:
        self._rec = _Recorder(before_call=before_call)

    @property
    def calls(self) -> list[Call]:
        """Every call received, oldest first (a copy)."""
        with self._rec.lock:
            return list(self._rec.calls)

    def call_count(self, method: str) -> int:
        """Return how many times *method* was called."""
        return sum(1 for c in self.calls if c.method == method)

    @property
    def max_in_flight(self) -> int:
        """The most calls that were ever running at the same time."""
        return self._rec.max_in_flight

    def fail(
        self,
        method: str,
        error: BaseException | None = None,
        *,
        times: int | None = 1,
        key: str | None = None,
    ) -> None:
        """Make the next *times* calls of *method* raise *error*.

        Args:
            method: The method's name, e.g. ``"launch"`` or ``"start"``.
            error: What to raise (default: a 500 :class:`FlapsError`).
            times: How many calls fail; ``None`` means every call from now on.
            key: Only calls about this Machine id (or app name for
                :class:`FakeFlyClient`) fail.
        """
        if error is None:
            error = FlapsError("injected failure", status=500, method=method)
        with self._rec.lock:
            self._rec.plan.add(method, error, times, key)

    def clear_failures(self) -> None:
        """Forget every injected failure."""
        with self._rec.lock:
            self._rec.plan.clear()


#: Who holds the leases a fake hands out (the ``owner`` of a :class:`Lease`).
LEASE_OWNER: Final = "fake@tokens.fly.io"

# States a Machine passes through on its way to another one (DOCS machine-states).
_TRANSIENT: Final = frozenset(
    {
        MachineState.STARTING,
        MachineState.STOPPING,
        MachineState.RESTARTING,
        MachineState.SUSPENDING,
        MachineState.UPDATING,
        MachineState.REPLACING,
        MachineState.DESTROYING,
        "creating",
    }
)


#: A lease on a Machine, as the fakes hand it out: the library's
#: :class:`~flyautoscaler.MachineLease` (the fakes' owner is
#: :data:`LEASE_OWNER`).
Lease = MachineLease


@define
class _HeldLease:
    lease: Lease
    expires: float  # on the fake's clock


class FakeFlapsClient(_Fake):
    """An in-memory Machines API for one app.

    Machines move through real states: ``launch`` makes a ``started`` Machine
    (``created`` with ``skip_launch``), ``start`` moves a stopped, suspended or
    created Machine to ``started``, ``stop`` moves a started one to
    ``stopped`` and ``suspend`` to ``suspended``, ``destroy`` removes it (a
    running Machine only with ``kill``).
    Wrong transitions raise :class:`~flyautoscaler.FlapsConflictError`; unknown
    ids raise :class:`~flyautoscaler.FlapsNotFoundError`.

    With a ``transition_delay``, starting goes through ``starting``, stopping
    through ``stopping`` and suspending through ``suspending``: the Machine
    reaches its state once ``clock()`` has advanced by the delay (checked on
    every call, no thread). ``transition_delays`` gives some transitions
    their own delay (a new Machine's boot, a cold start, a resume, ...: see
    :data:`TRANSITIONS`). A Machine may be leased (:meth:`acquire_lease`);
    start, stop, suspend and destroy of a leased Machine then need the
    lease's nonce.

    Args:
        machines: The app's Machines to begin with.
        app_name: The app's name (used in error messages).
        region: Region of launched Machines when the input names none.
        before_call: Called as ``before_call(method, args)`` at the start of
            every call, outside the fake's lock: block on an event there to
            make calls slow, or record timing.
        transition_delay: Seconds (on ``clock``) a Machine spends in
            ``starting``, ``stopping`` or ``suspending``; 0 (the default)
            moves it at once.
        transition_delays: Seconds of some transitions, by name (``create``,
            ``start``, ``resume``, ``stop``, ``suspend``; see
            :data:`TRANSITIONS`); the others take ``transition_delay``.
        clock: Returns the current time in seconds; inject one to move
            Machines and expire leases without sleeping.

    Raises:
        ValueError: A delay is negative or not finite, or a transition's name
            is unknown.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options of a test double
        self,
        machines: Iterable[Machine] = (),
        *,
        app_name: str = "app",
        region: str = "iad",
        before_call: Callable[[str, tuple[object, ...]], None] | None = None,
        transition_delay: float = 0.0,
        transition_delays: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(before_call)
        self._own_delays = check_transition_delays(transition_delays, transition_delay)
        self.app_name = app_name
        self.region = region
        self.transition_delay = transition_delay
        self._clock = clock
        self._machines: dict[str, Machine] = {m.id: m for m in machines}
        self._destroyed: dict[str, Machine] = {}
        self._pending: dict[str, tuple[float, str]] = {}  # id -> (due, state)
        self._leases: dict[str, _HeldLease] = {}
        self._changed = threading.Condition(self._rec.lock)
        self._ids = itertools.count(1)

    @property
    def transition_delays(self) -> dict[str, float]:
        """Seconds of every transition (:data:`TRANSITIONS`), by name (a copy)."""
        return {name: self.delay(name) for name in TRANSITIONS}

    def delay(self, transition: str) -> float:
        """Return the seconds *transition* takes (see :data:`TRANSITIONS`).

        Its own delay when ``transition_delays`` gave one, else
        :attr:`transition_delay`.

        Raises:
            KeyError: Not a transition's name.
        """
        if transition not in TRANSITIONS:
            raise KeyError(transition)
        return self._own_delays.get(transition, self.transition_delay)

    @property
    def machines(self) -> list[Machine]:
        """The Machines now in the table, in creation order."""
        with self._rec.lock:
            self._settle()
            return list(self._machines.values())

    @property
    def destroyed(self) -> list[Machine]:
        """The Machines destroyed so far (state ``destroyed``), oldest first."""
        with self._rec.lock:
            return list(self._destroyed.values())

    def machine(self, machine_id: str) -> Machine:
        """Return one Machine.

        Raises:
            FlapsNotFoundError: No such Machine.
        """
        with self._rec.lock:
            self._settle()
            return self._get(machine_id, "get")

    def count(self, state: str | None = None) -> int:
        """Return how many Machines there are (in *state*, when given)."""
        return sum(1 for m in self.machines if state is None or m.state == state)

    def add(self, machine: Machine) -> None:
        """Put *machine* in the table (replacing one with the same id)."""
        with self._rec.lock:
            self._pending.pop(machine.id, None)
            self._machines[machine.id] = machine
            self._changed.notify_all()

    def wake(self) -> None:
        """Apply the transitions that are due by ``clock()`` and wake :meth:`wait`.

        Call it after advancing an injected clock while another thread waits.
        """
        with self._rec.lock:
            self._settle()
            self._changed.notify_all()

    def _settle(self) -> None:
        """Finish the delayed transitions that are due (call with the lock held)."""
        if not self._pending:
            return
        now = self._clock()
        due = [(i, s) for i, (at, s) in self._pending.items() if at <= now]
        for machine_id, state in due:
            del self._pending[machine_id]
            machine = self._machines.get(machine_id)
            if machine is not None:
                self._machines[machine_id] = evolve(machine, state=state)
        if due:
            self._changed.notify_all()

    def _move(
        self, machine: Machine, transient: str, final: str, transition: str
    ) -> Machine:
        """Move *machine* to *final*, through *transient* if *transition* takes time."""
        self._pending.pop(machine.id, None)
        delay = self._own_delays.get(transition, self.transition_delay)
        if delay > 0:
            moved = evolve(machine, state=transient)
            self._pending[machine.id] = (self._clock() + delay, final)
        else:
            moved = evolve(machine, state=final)
        self._machines[machine.id] = moved
        self._changed.notify_all()
        return moved

    def _get(self, machine_id: str, method: str) -> Machine:
        try:
            return self._machines[machine_id]
        except KeyError:
            raise FlapsNotFoundError(
                "machine not found",
                status=404,
                method=method,
                url=f"/v1/apps/{self.app_name}/machines/{machine_id}",
            ) from None

    def _conflict(self, machine: Machine, method: str, message: str) -> FlapsError:
        return FlapsConflictError(
            message,
            status=409,
            method=method,
            url=f"/v1/apps/{self.app_name}/machines/{machine.id}",
        )

    def list(self, state: str = "", *, include_deleted: bool = False) -> list[Machine]:
        """Return the Machines, optionally only those in the comma-separated *state*.

        Args:
            state: Comma-separated states to keep; ``""`` keeps every state.
            include_deleted: Also return the destroyed Machines (after the others).
        """
        with self._rec.call("list", self.app_name, (state,)):
            wanted = {s for s in state.split(",") if s}
            with self._rec.lock:
                self._settle()
                found = list(self._machines.values())
                if include_deleted:
                    found += self._destroyed.values()
                return [m for m in found if not wanted or m.state in wanted]

    def launch(self, launch_input: LaunchMachineInput) -> Machine:
        """Create a Machine from *launch_input* and return it."""
        with self._rec.call("launch", self.app_name, (launch_input,)), self._rec.lock:
            self._settle()
            seq = next(self._ids)
            config = launch_input.config.clone()
            machine = Machine(
                id=f"f{seq:013x}",
                name=launch_input.name or f"fake-machine-{seq}",
                state=MachineState.CREATED,
                region=launch_input.region or self.region,
                instance_id=f"{seq:026d}",
                image_ref=parse_image_ref(config.image),
                config=config,
                host_status=HOST_STATUS_OK,
            )
            self._machines[machine.id] = machine
            if launch_input.skip_launch:
                self._changed.notify_all()
                return machine
            return self._move(
                machine, MachineState.STARTING, MachineState.STARTED, "create"
            )

    def destroy(self, remove_input: RemoveMachineInput, nonce: str = "") -> None:
        """Remove a Machine; a running one only with ``kill``."""
        with (
            self._rec.call("destroy", remove_input.id, (remove_input, nonce)),
            self._rec.lock,
        ):
            self._settle()
            machine = self._get(remove_input.id, "DELETE")
            self._check_lease(machine, nonce, "DELETE")
            if (
                machine.state in {MachineState.STARTED, MachineState.STARTING}
                and not remove_input.kill
            ):
                raise self._conflict(
                    machine,
                    "DELETE",
                    "unable to destroy machine, not currently stopped",
                )
            del self._machines[machine.id]
            self._pending.pop(machine.id, None)
            self._leases.pop(machine.id, None)
            self._destroyed[machine.id] = evolve(machine, state=MachineState.DESTROYED)
            self._changed.notify_all()

    def start(self, machine_id: str, nonce: str = "") -> MachineStartResponse:
        """Start a stopped, suspended or created Machine."""
        with self._rec.call("start", machine_id, (machine_id, nonce)), self._rec.lock:
            self._settle()
            machine = self._get(machine_id, "POST")
            self._check_lease(machine, nonce, "POST")
            startable = {
                MachineState.STOPPED,
                MachineState.SUSPENDED,
                MachineState.CREATED,
                MachineState.STARTED,
            }
            if machine.state not in startable:
                raise self._conflict(
                    machine, "POST", f"machine is {machine.state}, cannot start"
                )
            if machine.state != MachineState.STARTED:
                resume = machine.state == MachineState.SUSPENDED
                transition = "resume" if resume else "start"
                self._move(
                    machine, MachineState.STARTING, MachineState.STARTED, transition
                )
            return MachineStartResponse(previous_state=machine.state)

    def stop(self, stop_input: StopMachineInput, nonce: str = "") -> None:
        """Stop a started Machine (stopping a stopped one does nothing)."""
        with self._rec.call("stop", stop_input.id, (stop_input, nonce)), self._rec.lock:
            self._settle()
            machine = self._get(stop_input.id, "POST")
            self._check_lease(machine, nonce, "POST")
            if machine.state in {MachineState.STOPPED, MachineState.CREATED}:
                return
            if machine.state not in {MachineState.STARTED, MachineState.STARTING}:
                raise self._conflict(
                    machine, "POST", f"machine is {machine.state}, cannot stop"
                )
            self._move(machine, MachineState.STOPPING, MachineState.STOPPED, "stop")

    def suspend(self, machine_id: str, nonce: str = "") -> None:
        """Suspend a started Machine (suspending a suspended one does nothing).

        It goes through ``suspending`` to ``suspended``, as on Fly; a later
        :meth:`start` resumes it.
        """
        with self._rec.call("suspend", machine_id, (machine_id, nonce)), self._rec.lock:
            self._settle()
            machine = self._get(machine_id, "POST")
            self._check_lease(machine, nonce, "POST")
            if machine.state == MachineState.SUSPENDED:
                return
            if machine.state not in {MachineState.STARTED, MachineState.STARTING}:
                raise self._conflict(
                    machine, "POST", f"machine is {machine.state}, cannot suspend"
                )
            self._move(
                machine, MachineState.SUSPENDING, MachineState.SUSPENDED, "suspend"
            )

    def wait(
        self,
        machine_id: str,
        state: str | Iterable[str] = MachineState.STARTED,
        timeout: float = 60.0,
        *,
        cancel: threading.Event | None = None,
    ) -> Machine | None:
        """Block until the Machine is in *state*, or *timeout* passes.

        The timeout runs both on the fake's clock and in real time, whichever
        ends first, so a test with an injected clock can end a wait by advancing
        the clock and calling :meth:`wake`. Waiting for ``destroyed`` ends when
        the Machine is destroyed; ``settled`` means any non-transient state.

        Args:
            machine_id: The Machine to watch.
            state: One state, or several (any of them ends the wait).
            timeout: Longest wait, in seconds.
            cancel: Ends the wait early (returning ``None``) once set and the
                fake is woken (:meth:`wake`).

        Returns:
            The Machine in the wanted state, or ``None`` on timeout or cancel.

        Raises:
            FlapsNotFoundError: No such Machine (or it was destroyed and
                ``destroyed`` is not wanted).
        """
        wanted = {state} if isinstance(state, str) else set(state)
        with self._rec.call("wait", machine_id, (machine_id, state, timeout)):
            real_deadline = time.monotonic() + timeout
            with self._changed:
                deadline = self._clock() + timeout
                while True:
                    self._settle()
                    machine = self._machines.get(machine_id)
                    if machine is None and MachineState.DESTROYED in wanted:
                        machine = self._destroyed.get(machine_id)
                    if machine is None:
                        machine = self._get(machine_id, "GET")  # raises not found
                    if machine.state in wanted or (
                        "settled" in wanted and machine.state not in _TRANSIENT
                    ):
                        return machine
                    now, real_now = self._clock(), time.monotonic()
                    if now >= deadline or real_now >= real_deadline:
                        return None
                    if cancel is not None and cancel.is_set():
                        return None
                    pause = real_deadline - real_now
                    if machine_id in self._pending:
                        pause = min(pause, self._pending[machine_id][0] - now)
                    self._changed.wait(pause)

    # --- leases ---

    def _active_lease(self, machine_id: str) -> Lease | None:
        held = self._leases.get(machine_id)
        if held is None:
            return None
        if held.expires <= self._clock():
            del self._leases[machine_id]
            return None
        return held.lease

    def _held_by(self, machine: Machine, lease: Lease) -> str:
        expires = datetime.fromtimestamp(lease.expires_at, UTC).isoformat()
        return (
            f"machine ID {machine.id} lease currently held by {lease.owner}, "
            f"expires at {expires}"
        )

    def _check_lease(self, machine: Machine, nonce: str, method: str) -> None:
        lease = self._active_lease(machine.id)
        if lease is not None and nonce != lease.nonce:
            raise self._conflict(
                machine, method, f"aborted: {self._held_by(machine, lease)}"
            )

    def acquire_lease(
        self,
        machine_id: str,
        ttl: float = 30.0,
        *,
        description: str = "",
        nonce: str = "",
    ) -> Lease:
        """Take a lease on a Machine, or refresh the one whose *nonce* you hold.

        Args:
            machine_id: The Machine to lease.
            ttl: How long the lease lasts, in seconds (on the fake's clock).
            description: What the lease is for.
            nonce: The nonce of a lease you hold, to refresh it.

        Returns:
            The lease, with a new nonce unless it was refreshed.

        Raises:
            FlapsNotFoundError: No such Machine.
            FlapsConflictError: Someone else holds an unexpired lease.
        """
        with (
            self._rec.call("acquire_lease", machine_id, (machine_id, ttl, nonce)),
            self._rec.lock,
        ):
            machine = self._get(machine_id, "POST")
            current = self._active_lease(machine_id)
            if current is not None and nonce != current.nonce:
                raise self._conflict(machine, "POST", self._held_by(machine, current))
            lease = Lease(
                owner=LEASE_OWNER,
                nonce=current.nonce if current is not None else uuid.uuid4().hex,
                expires_at=math.ceil(time.time() + ttl),
                description=description,
                version=uuid.uuid4().hex[:26],
            )
            self._leases[machine_id] = _HeldLease(lease, self._clock() + ttl)
            return lease

    def get_lease(self, machine_id: str) -> Lease | None:
        """Return the Machine's unexpired lease, or ``None``.

        Raises:
            FlapsNotFoundError: No such Machine.
        """
        with self._rec.call("get_lease", machine_id, (machine_id,)), self._rec.lock:
            self._get(machine_id, "GET")
            return self._active_lease(machine_id)

    def release_lease(self, machine_id: str, nonce: str) -> None:
        """Release the Machine's lease (releasing no lease does nothing).

        Raises:
            FlapsNotFoundError: No such Machine.
            FlapsConflictError: The lease is held under another nonce.
        """
        with (
            self._rec.call("release_lease", machine_id, (machine_id, nonce)),
            self._rec.lock,
        ):
            machine = self._get(machine_id, "DELETE")
            current = self._active_lease(machine_id)
            if current is None:
                return
            if nonce != current.nonce:
                raise self._conflict(machine, "DELETE", self._held_by(machine, current))
            del self._leases[machine_id]


class FakeFlyClient(_Fake):
    """In-memory organizations, apps and current releases.

    Args:
        before_call: See :class:`FakeFlapsClient`.
    """

    def __init__(
        self, *, before_call: Callable[[str, tuple[object, ...]], None] | None = None
    ) -> None:
        super().__init__(before_call)
        self._orgs: dict[str, Organization] = {}
        self._apps: dict[str, list[App]] = {}
        self._releases: dict[str, Release] = {}

    def add_organization(
        self, slug: str, org_id: str = "", name: str = ""
    ) -> Organization:
        """Add an organization and return it (its id defaults to ``org-<slug>``)."""
        org = Organization(id=org_id or f"org-{slug}", slug=slug, name=name or slug)
        with self._rec.lock:
            self._orgs[slug] = org
            self._apps.setdefault(org.id, [])
        return org

    def add_app(
        self, name: str, org_slug: str, *, release_status: str | None = None
    ) -> App:
        """Add an app to an organization (created if new), with an optional release."""
        with self._rec.lock:
            org = self._orgs.get(org_slug) or self.add_organization(org_slug)
            app = App(
                name=name, id=f"app-{name}", organization_slug=org.slug, deployed=True
            )
            self._apps[org.id].append(app)
        if release_status is not None:
            self.set_release(name, release_status)
        return app

    def remove_app(self, name: str) -> None:
        """Remove an app from every organization."""
        with self._rec.lock:
            for org_id, apps in self._apps.items():
                self._apps[org_id] = [a for a in apps if a.name != name]
            self._releases.pop(name, None)

    def set_release(self, app_name: str, status: str | None) -> None:
        """Set the app's current release status; ``None`` removes the release."""
        with self._rec.lock:
            if status is None:
                self._releases.pop(app_name, None)
            else:
                self._releases[app_name] = Release(status=status, id=f"rel-{app_name}")

    def organization(self, slug: str) -> Organization | None:
        """Return the organization with *slug*, or ``None`` (not a recorded call)."""
        with self._rec.lock:
            return self._orgs.get(slug)

    def get_organization_by_slug(self, slug: str) -> Organization:
        """Return the organization.

        Raises:
            FlyAutoscalerError: No organization has that slug.
        """
        with self._rec.call("get_organization_by_slug", slug, (slug,)), self._rec.lock:
            org = self._orgs.get(slug)
            if org is None:
                raise FlyAutoscalerError(f"organization not found: {slug!r}")
            return org

    def get_apps_for_organization(self, org_id: str) -> list[App]:
        """Return the organization's apps."""
        with (
            self._rec.call("get_apps_for_organization", org_id, (org_id,)),
            self._rec.lock,
        ):
            return list(self._apps.get(org_id, []))

    def get_app_current_release_machines(self, app_name: str) -> Release | None:
        """Return the app's current release, or ``None``."""
        with (
            self._rec.call("get_app_current_release_machines", app_name, (app_name,)),
            self._rec.lock,
        ):
            return self._releases.get(app_name)


@define
class StaticCollector:
    """A metric collector returning :attr:`value` (change it at any time).

    Attributes:
        name: The metric's name.
        value: What :meth:`collect_metric` returns.
        calls: The app names it was asked for, in order.
    """

    name: str
    value: float = 0.0
    calls: list[str] = field(factory=list, repr=False)

    def collect_metric(self, app_name: str) -> float:
        """Return :attr:`value`."""
        self.calls.append(app_name)
        return self.value


@define
class CallableCollector:
    """A metric collector that calls ``func(app_name)`` for each value.

    Attributes:
        name: The metric's name.
        func: Returns the value for an app; may raise to simulate a failure.
    """

    name: str
    func: Callable[[str], float]

    def collect_metric(self, app_name: str) -> float:
        """Return ``func(app_name)``."""
        return self.func(app_name)
