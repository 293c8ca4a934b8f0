"""The pool's side of coordination: membership, who owns an app, the app's lease.

A :class:`~flyautoscaler.ReconcilerPool` with a ``coordinator`` runs a pass of
an app only when

1. its replica *owns* the app: rendezvous hashing over the replicas the store
   last listed as alive (:class:`Membership`, refreshed every
   :data:`HEARTBEAT_INTERVAL` by a pool thread, which also heartbeats); and
2. it *holds the app's lease* (:meth:`Membership.claim`), taken before the
   pass and released after it.

During the pass every request that changes a Machine first asks
:meth:`LeaseKeeper.permit`: the lease must hold for as long as the request can
take (renewed when it would not). A replica that cannot prove it holds
the lease (the store is unreachable, the lease expired while the process was
paused, another replica took the app) sends nothing.

How long a request can take is the pool's ``request_timeout``: the Machines
API client's connect plus read timeouts. The lease's TTL must exceed it (a
lease shorter than a request could never be proven for one), so it is the
pass's timeout plus that plus :data:`LEASE_SLACK` (:func:`lease_ttl`). The
TTL is also how long a dead replica's lease keeps its app from the others:
shorter request timeouts make takeovers faster, at no cost to safety, since
every request is still proven against its own client's real timeouts.
"""

from __future__ import annotations

import threading
from typing import Final, Literal

from attrs import define, field, frozen

from flyautoscaler._errors import describe
from flyautoscaler._log import get_logger
from flyautoscaler._scope import ACTION_SECONDS
from flyautoscaler.coordination import AppLease, CoordinationError, Coordinator
from flyautoscaler.coordination._base import rendezvous_owner

__all__ = ["HEARTBEAT_INTERVAL", "Claim", "LeaseKeeper", "Membership", "lease_ttl"]

logger = get_logger("flyautoscaler.pool")

#: Seconds between two heartbeats (and refreshes of the replica list): a third
#: of the coordinators' default liveness window (15 s).
HEARTBEAT_INTERVAL: Final = 5.0
#: Seconds a lease must still hold before a Machine request is sent, by
#: default: the longest one request may take with the Machines API client's
#: default connect and read timeouts.
ACTION_MARGIN: Final = ACTION_SECONDS
#: Seconds of a lease beyond the pass's timeout and the action margin.
LEASE_SLACK: Final = 5.0


def lease_ttl(
    reconcile_timeout: float, request_timeout: float = ACTION_MARGIN
) -> float:
    """Return the TTL of an app's lease for passes of *reconcile_timeout*.

    Longer than a pass may take plus the longest request (*request_timeout*),
    so that the last request of a pass can still be proven (and the lease is
    renewed anyway).
    """
    return reconcile_timeout + request_timeout + LEASE_SLACK


ClaimOutcome = Literal["leased", "not_owner", "held", "unreachable"]


@frozen
class Claim:
    """What came of asking for an app before a pass.

    Attributes:
        outcome: ``leased`` (go on, with :attr:`lease`), ``not_owner``
            (another replica owns the app), ``held`` (another replica still
            holds its lease) or ``unreachable`` (the store did not answer, or
            never has: no pass acts).
        owner: The replica that owns the app, when known.
        lease: The app's lease, when ``leased``.
        error: What went wrong, when ``unreachable``.
    """

    outcome: ClaimOutcome
    owner: str | None = None
    lease: AppLease | None = None
    error: str = ""


@define
class Membership:
    """The live replicas as last listed, and this replica's claims on apps."""

    coordinator: Coordinator
    _replicas: list[str] | None = field(init=False, default=None)
    _error: str = field(init=False, default="the store has not answered yet")
    _lock: threading.Lock = field(init=False, factory=threading.Lock)

    @property
    def replica_id(self) -> str:
        """This replica's id."""
        return self.coordinator.replica_id

    @property
    def replicas(self) -> list[str] | None:
        """The live replicas as last listed; ``None`` while the store is down."""
        with self._lock:
            return None if self._replicas is None else list(self._replicas)

    def refresh(self) -> None:
        """Heartbeat, then list the live replicas; log when the store comes and goes.

        Never raises: an unreachable store makes every claim ``unreachable``
        until it answers again.
        """
        try:
            self.coordinator.heartbeat()
            replicas = self.coordinator.replicas()
        except CoordinationError as exc:
            with self._lock:
                was_up, self._replicas = self._replicas is not None, None
                self._error = describe(exc)
            if was_up:
                logger.error("pool.coordination_lost", extra={"error": describe(exc)})
            return
        with self._lock:
            was_down, before = self._replicas is None, self._replicas
            self._replicas = replicas
        if was_down:
            logger.info(
                "pool.coordination_ready",
                extra={"replica": self.replica_id, "replicas": replicas},
            )
        elif before != replicas:
            logger.info(
                "pool.replicas_changed",
                extra={"replica": self.replica_id, "replicas": replicas},
            )

    def owner(self, app_name: str) -> str | None:
        """Return the replica that owns *app_name*; ``None`` while the store is down."""
        replicas = self.replicas
        if not replicas:
            return None
        return rendezvous_owner(app_name, replicas)

    def claim(self, app_name: str, ttl: float) -> Claim:
        """Ask for *app_name* before a pass: ownership, then its lease."""
        with self._lock:
            replicas, error = self._replicas, self._error
        if replicas is None:
            return Claim("unreachable", error=error)
        owner = rendezvous_owner(app_name, replicas) if replicas else None
        if owner != self.replica_id:
            # Not listed yet (a first heartbeat not seen) is not owning either.
            return Claim("not_owner", owner=owner)
        try:
            lease = self.coordinator.acquire(app_name, ttl)
        except CoordinationError as exc:
            return Claim("unreachable", owner=owner, error=describe(exc))
        if lease is None:
            return Claim("held", owner=owner)
        return Claim("leased", owner=owner, lease=lease)

    def release(self, lease: AppLease) -> None:
        """Give the app's lease back after a pass (never raises)."""
        self.coordinator.release(lease)

    def keeper(self, lease: AppLease, ttl: float) -> LeaseKeeper:
        """Return the permit of a pass holding *lease*."""
        return LeaseKeeper(self.coordinator, lease, ttl)


@define
class LeaseKeeper:
    """Proves, before each Machine request of a pass, that the app's lease holds.

    When the lease no longer holds for long enough, it is renewed (if it is
    still this replica's) and proven again. Thread-safe: a pass's requests
    run on several action threads.
    """

    coordinator: Coordinator
    lease: AppLease
    ttl: float
    _lock: threading.Lock = field(init=False, factory=threading.Lock)

    def permit(self, seconds: float) -> bool:
        """Whether a request that may take *seconds* may be sent now."""
        with self._lock:
            lease = self.lease
        if self.coordinator.holds(lease, seconds):
            return True
        try:
            renewed = self.coordinator.renew(lease, self.ttl)
        except CoordinationError:
            renewed = None
        if renewed is None:
            logger.warning(
                "pool.lease_lost",
                extra={"app": lease.app_name, "token": lease.token},
            )
            return False
        with self._lock:
            self.lease = renewed
        return self.coordinator.holds(renewed, seconds)

    def final(self) -> AppLease:
        """The lease as last renewed, to release."""
        with self._lock:
            return self.lease
