"""The in-memory coordinator, and the store its replicas share (tests, one process)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from attrs import define, field, frozen

from flyautoscaler._closing import Closing
from flyautoscaler._errors import CoordinationError
from flyautoscaler.coordination._base import (
    DEFAULT_LIVENESS,
    AppLease,
    check_replica_id,
    check_seconds,
    check_ttl,
    margin_ok,
    rendezvous_owner,
)

__all__ = ["InMemoryCoordinator", "InMemoryStore"]

#: How an in-memory store is named in a :class:`CoordinationError`.
_STORE_NAME: Final = "memory://"


@frozen
class _Held:
    replica_id: str
    token: int
    deadline: float  # on the store's clock


@define
class InMemoryStore:
    """What Redis is to :class:`RedisCoordinator`, inside this process.

    Several :class:`InMemoryCoordinator` instances sharing one store act as
    replicas of one deployment: the same leases, tokens and heartbeats. Safe
    to use from several threads at once.

    Its methods other than :meth:`restart` are the coordinators' side (the
    store's "commands"); use a coordinator.

    Args:
        clock: The store's clock, in seconds (what ``TIME`` is to Redis):
            lease TTLs and the liveness of heartbeats run on it. Inject one to
            move time in a test.
        reachable: Set it to false to make the store unreachable: every
            coordinator call then fails as it would with Redis down
            (:class:`~flyautoscaler.CoordinationError`; ``holds`` false).
    """

    clock: Callable[[], float] = field(default=time.monotonic, kw_only=True)
    reachable: bool = field(default=True, kw_only=True)
    _lock: threading.Lock = field(factory=threading.Lock, init=False, repr=False)
    _heartbeats: dict[str, float] = field(factory=dict, init=False, repr=False)
    _leases: dict[str, _Held] = field(factory=dict, init=False, repr=False)
    _fences: dict[str, int] = field(factory=dict, init=False, repr=False)
    _emptied: float = field(default=-math.inf, init=False, repr=False)

    def restart(self) -> None:
        """Lose every lease and heartbeat, as Redis restarting without its data does.

        Tokens keep increasing (Redis's are seeded from its clock), and, as
        with Redis, no lease is granted for one TTL after: a holder may still
        be finishing an action under a lease the store forgot.
        """
        with self._lock:
            self._heartbeats.clear()
            self._leases.clear()
            self._emptied = self.clock()

    def heartbeat(self, replica_id: str) -> None:
        """Record that *replica_id* is alive now."""
        with self._lock:
            self._check("heartbeat")
            self._heartbeats[replica_id] = self.clock()

    def live(self, liveness: float) -> list[str]:
        """Return the replicas heard from within *liveness* seconds, sorted."""
        with self._lock:
            self._check("list the replicas")
            oldest = self.clock() - liveness
            return sorted(r for r, seen in self._heartbeats.items() if seen >= oldest)

    def forget(self, replica_id: str) -> None:
        """Remove *replica_id* from the replicas."""
        with self._lock:
            self._check("remove the replica")
            self._heartbeats.pop(replica_id, None)

    def acquire(self, app_name: str, replica_id: str, ttl: float) -> int | None:
        """Set *app_name*'s lease if absent; return its new token, or ``None``."""
        with self._lock:
            self._check(f"acquire the lease of app {app_name!r}")
            now = self.clock()
            if now - self._emptied < ttl or self._current(app_name, now) is not None:
                return None
            token = self._fences.get(app_name, 0) + 1
            self._fences[app_name] = token
            self._leases[app_name] = _Held(replica_id, token, now + ttl)
            return token

    def renew(self, lease: AppLease, ttl: float) -> bool:
        """Extend *lease* by *ttl* from now if the store still has it."""
        with self._lock:
            self._check(f"renew the lease of app {lease.app_name!r}")
            now = self.clock()
            if not self._is(lease, now):
                return False
            self._leases[lease.app_name] = _Held(
                lease.replica_id, lease.token, now + ttl
            )
            return True

    def remaining(self, lease: AppLease) -> float | None:
        """Return the seconds left of *lease*, or ``None`` if the store lost it."""
        with self._lock:
            self._check(f"check the lease of app {lease.app_name!r}")
            now = self.clock()
            held = self._current(lease.app_name, now)
            if held is None or not self._is(lease, now):
                return None
            return held.deadline - now

    def release(self, lease: AppLease) -> None:
        """Delete *lease* if the store still has it."""
        with self._lock:
            self._check(f"release the lease of app {lease.app_name!r}")
            if self._is(lease, self.clock()):
                del self._leases[lease.app_name]

    def _check(self, what: str) -> None:
        if not self.reachable:
            raise CoordinationError(_STORE_NAME, f"{what}: the store is unreachable")

    def _current(self, app_name: str, now: float) -> _Held | None:
        held = self._leases.get(app_name)
        if held is not None and held.deadline <= now:
            del self._leases[app_name]
            return None
        return held

    def _is(self, lease: AppLease, now: float) -> bool:
        held = self._current(lease.app_name, now)
        return (
            held is not None
            and held.replica_id == lease.replica_id
            and held.token == lease.token
        )


def _store(store: InMemoryStore | None) -> InMemoryStore:
    return InMemoryStore() if store is None else store


@define
class InMemoryCoordinator(Closing):
    """A :class:`Coordinator` whose store is an :class:`InMemoryStore`.

    Alone, it coordinates the threads of one process; several sharing a
    store behave as replicas (each with its own id and clock), which is how
    tests run a deployment in one process. It behaves as
    :class:`RedisCoordinator` does, with no network in between: a new store
    grants leases at once (only :meth:`InMemoryStore.restart` holds them back
    for a TTL), and tokens count from 1.

    Args:
        store: The store shared with the other replicas; a new one by default.
        replica_id: This replica's id; by default
            ``{FLY_MACHINE_ID or host name}-{pid}-{random}``.
        liveness: Seconds a replica stays in :meth:`replicas` after its last
            heartbeat.
        clock: This replica's monotonic clock, on which
            :attr:`AppLease.expires` is; the store's by default. Give each
            replica its own to make one of them pause.

    Raises:
        ConfigError: The replica id or the liveness is not valid.
    """

    store: InMemoryStore = field(default=None, converter=_store)
    replica_id: str = field(default=None, converter=check_replica_id, kw_only=True)
    liveness: float = field(
        default=DEFAULT_LIVENESS, converter=float, validator=check_seconds, kw_only=True
    )
    clock: Callable[[], float] | None = field(default=None, kw_only=True)

    def heartbeat(self) -> None:
        """See :meth:`Coordinator.heartbeat`."""
        self.store.heartbeat(self.replica_id)

    def replicas(self) -> list[str]:
        """See :meth:`Coordinator.replicas`."""
        return self.store.live(self.liveness)

    def owns(self, app_name: str, replicas: Sequence[str]) -> bool:
        """See :meth:`Coordinator.owns`."""
        return rendezvous_owner(app_name, replicas) == self.replica_id

    def acquire(self, app_name: str, ttl: float) -> AppLease | None:
        """See :meth:`Coordinator.acquire`."""
        seconds = check_ttl(ttl) / 1000
        sent = self._now()
        token = self.store.acquire(app_name, self.replica_id, seconds)
        if token is None:
            return None
        return AppLease(app_name, self.replica_id, token, sent + seconds)

    def renew(self, lease: AppLease, ttl: float) -> AppLease | None:
        """See :meth:`Coordinator.renew`."""
        seconds = check_ttl(ttl) / 1000
        if lease.replica_id != self.replica_id:
            return None
        sent = self._now()
        if not self.store.renew(lease, seconds):
            return None
        return AppLease(lease.app_name, lease.replica_id, lease.token, sent + seconds)

    def holds(self, lease: AppLease, margin: float) -> bool:
        """See :meth:`Coordinator.holds`."""
        if not margin_ok(margin) or lease.replica_id != self.replica_id:
            return False
        if lease.expires - self._now() < margin:
            return False  # paused past it, or too close: no need to ask
        try:
            remaining = self.store.remaining(lease)
        except CoordinationError:
            return False
        return (
            remaining is not None
            and remaining >= margin
            and lease.expires - self._now() >= margin
        )

    def release(self, lease: AppLease) -> None:
        """See :meth:`Coordinator.release`."""
        if lease.replica_id != self.replica_id:
            return
        try:
            self.store.release(lease)
        except CoordinationError:
            return  # it expires by itself

    def leave(self) -> None:
        """See :meth:`Coordinator.leave`."""
        try:
            self.store.forget(self.replica_id)
        except CoordinationError:
            return  # it drops out after the liveness window

    def close(self) -> None:
        """Nothing to release; here for the :class:`Coordinator` protocol."""

    def _now(self) -> float:
        return (self.clock or self.store.clock)()
