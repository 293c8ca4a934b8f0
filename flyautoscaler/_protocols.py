"""The seams: what flyautoscaler needs from the Fly APIs and from metric sources.

Each is a :class:`typing.Protocol`; implementations need not inherit from it.
Callers pass every argument positionally, so implementations may name their
parameters freely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeAlias

from flyautoscaler._models import (
    App,
    LaunchMachineInput,
    Machine,
    MachineLease,
    MachineStartResponse,
    Organization,
    Release,
    RemoveMachineInput,
    StopMachineInput,
)

__all__ = [
    "FlapsClient",
    "FlyClient",
    "LeasingClient",
    "MachineMetricCollector",
    "MetricCollector",
    "NewFlapsClientFunc",
]


class FlapsClient(Protocol):
    """The Machines API ("flaps") for one app.

    Methods raise :class:`~flyautoscaler.FlapsError` (or any exception) on
    failure; the reconciler counts and reports the failure and goes on.
    """

    def list(self, state: str = "") -> list[Machine]:
        """Return the app's Machines (all of them when *state* is empty)."""
        ...

    def launch(self, launch_input: LaunchMachineInput) -> Machine:
        """Create a Machine and return it."""
        ...

    def destroy(self, remove_input: RemoveMachineInput, nonce: str = "") -> None:
        """Destroy a Machine (killing it first when ``remove_input.kill``)."""
        ...

    def start(self, machine_id: str, nonce: str = "") -> MachineStartResponse:
        """Start a stopped (or resume a suspended) Machine."""
        ...

    def stop(self, stop_input: StopMachineInput, nonce: str = "") -> None:
        """Stop a started Machine."""
        ...

    def suspend(self, machine_id: str, nonce: str = "") -> None:
        """Suspend a started Machine (a later start resumes it).

        Only called when a reconciler's ``stop_mode`` is ``"suspend"``; a
        client that never runs in that mode need not have it at run time.
        """
        ...


class LeasingClient(FlapsClient, Protocol):
    """A :class:`FlapsClient` that can lease Machines (Fly's ``/lease``).

    A reconciler with ``machine_leases`` on needs one: it leases a Machine
    before acting on it, and skips the Machine when someone else holds it.
    """

    def acquire_lease(
        self,
        machine_id: str,
        ttl: float = 30.0,
        *,
        description: str = "",
        nonce: str = "",
    ) -> MachineLease:
        """Lease the Machine; raise ``FlapsConflictError`` if someone else has."""
        ...

    def release_lease(self, machine_id: str, nonce: str) -> None:
        """Release a lease this client holds."""
        ...


class FlyClient(Protocol):
    """Organization, app and release look-ups (Fly's GraphQL API)."""

    def get_organization_by_slug(self, slug: str) -> Organization:
        """Return the organization named *slug*."""
        ...

    def get_apps_for_organization(self, org_id: str) -> list[App]:
        """Return every app of the organization whose id is *org_id*."""
        ...

    def get_app_current_release_machines(self, app_name: str) -> Release | None:
        """Return the app's current release, or ``None`` when it has none."""
        ...


class MetricCollector(Protocol):
    """A source of one metric value per app.

    Subclass it with a class attribute, or satisfy it structurally::

        class QueueDepth(MetricCollector):
            name = "queue_depth"

            def collect_metric(self, app_name: str) -> float:
                return float(redis.llen(f"{app_name}:jobs"))
    """

    @property
    def name(self) -> str:
        """The metric's name, as count expressions refer to it.

        A plain (class) attribute satisfies this as well as a property.
        """
        ...

    def collect_metric(self, app_name: str) -> float:
        """Return the metric's current value for *app_name*.

        Raises:
            Exception: Any failure; the reconciler wraps it in
                :class:`~flyautoscaler.MetricCollectionError` naming the collector.
        """
        ...


class MachineMetricCollector(Protocol):
    """A source of one value per Machine of an app: ranks which Machines to stop.

    A reconciler with a ``stop_metric_collector`` stops (and, when it must
    destroy started Machines, destroys) the Machines with the lowest values
    first, such as the ones with the fewest requests in flight.
    """

    @property
    def name(self) -> str:
        """The metric's name, for logs and explanations."""
        ...

    def collect_machine_metrics(self, app_name: str) -> Mapping[str, float]:
        """Return each Machine's value, keyed by Machine id.

        Machines missing from the mapping are ranked after every Machine
        with a value.

        Raises:
            Exception: Any failure; the pass then keeps its default order and
                logs a warning.
        """
        ...


#: Builds the :class:`FlapsClient` for an app, given the app's name.
NewFlapsClientFunc: TypeAlias = Callable[[str], FlapsClient]
