"""Coordination of several replicas: who owns which app, and one actor per app.

Replicas of one autoscaler share a store (Redis, or memory in one process)
through a :class:`Coordinator`:

- **Membership.** Each replica calls :meth:`~Coordinator.heartbeat` every
  heartbeat interval; :meth:`~Coordinator.replicas` lists those heard from
  within the liveness window.
- **Ownership.** :meth:`~Coordinator.owns` shares the apps out by rendezvous
  (highest-random-weight) hashing over the live replicas: each app has one
  owner, and a replica joining or leaving moves only the apps it takes or
  had. It is pure: replicas that see the same list agree without talking.
- **One actor per app.** Ownership can be briefly seen two ways while the
  list changes, so before a pass a replica takes the app's lease
  (:meth:`~Coordinator.acquire`, an atomic set-if-absent with a TTL), renews
  it while the pass runs (:meth:`~Coordinator.renew`), proves it before each
  action (:meth:`~Coordinator.holds`), and gives it back after
  (:meth:`~Coordinator.release`).

What the fencing token is for
-----------------------------

Every acquisition of an app's lease gets a token larger than every token
before it, whichever replica acquires. Fly's Machines API compares nothing,
so the token cannot fence the actions themselves; it fences the *proof*:
:meth:`~Coordinator.holds` is true only while the store holds this very
acquisition (the same replica *and* the same token). A lease object kept
from an earlier acquisition, by this replica or another, never proves
anything again: not after it expired and someone else (or the same replica)
acquired the app, and not after Redis lost its data and leases started
afresh.

What is guaranteed: two replicas never both get ``holds(lease, margin)``
true for overlapping periods of *margin* seconds. A replica that checks
``holds`` with a margin at least as long as its action can take (the
request's timeout), and acts only when it is true, never acts on an app at
the same time as another replica. Because:

- a lease is granted only while the key is absent, and the key outlives
  every holder's right to act: the holder's :attr:`AppLease.expires` is
  counted from the moment the request was *sent*, on its own monotonic
  clock, so a holder that pauses (or loses Redis) for longer than the TTL
  sees ``expires`` passed when it wakes, and ``holds`` says false without
  asking Redis;
- ``holds`` asks Redis how long the key has left and deducts the round trip
  before comparing with the margin, so a slow Redis makes it say false, not
  true;
- when Redis comes back empty (restarted without persistence, flushed, or
  replaced), the lease a holder was relying on is gone, so no lease for any
  app is granted for one TTL after the store is first seen empty (the
  *epoch* key records when), which is how long that holder may still act.
  A brand-new Redis looks the same, so the first start of a deployment
  waits one TTL too; where no replica can have acted yet, setting the
  epoch key to ``0`` skips that wait.

What is not guaranteed: the actions of a replica that ignores ``holds``, or
whose action outlasts its margin (an HTTP request cannot be recalled); Redis
deployments that lose acknowledged writes without losing everything
(failover to a lagging replica, a restore from an older snapshot, keys
evicted by an ``allkeys-*`` policy: use ``noeviction``), or whose server
clock jumps (keys expire by wall-clock time); replicas configured with
different TTLs (the empty-store pause uses the acquirer's: give every
replica the same ``reconcile_timeout`` and ``request_timeout``); and tokens
after the Redis server's clock went backwards *and* its data was lost.

Keys in Redis
-------------

With the default prefix ``fas:``:

====================  =========  ==============================================
Key                   Type       Holds
====================  =========  ==============================================
``fas:replicas``      sorted     replica ids, scored by their last heartbeat
                      set        (ms of the server's ``TIME``); entries older
                                 than ten liveness windows are deleted
``fas:lease:{app}``   string     ``"{token} {replica_id}"`` while held, with the
                                 lease's TTL (``SET NX PX``)
``fas:fence:{app}``   string     the app's last token (no TTL)
``fas:epoch``         string     when the store was first seen empty (µs of the
                                 server's ``TIME``; no TTL)
====================  =========  ==============================================

A token is the larger of the app's last token plus one (what ``INCR``
gives) and the server's ``TIME`` in microseconds, taken in the same Lua
script as the lease's ``SET``, so no token is spent on a lease not granted.
Seeded so from the clock, tokens keep increasing when the fence key is lost
with the rest.

Two implementations:

- :class:`RedisCoordinator`: replicas in separate processes (the ``redis``
  extra).
- :class:`InMemoryCoordinator`: tests and a single process; instances that
  share one :class:`InMemoryStore` act as replicas of one deployment, on an
  injectable clock.

Importing this module never imports redis-py.
"""

from __future__ import annotations

from flyautoscaler._errors import CoordinationError
from flyautoscaler.coordination._base import (
    DEFAULT_LIVENESS,
    MAX_REPLICA_ID_LENGTH,
    AppLease,
    Coordinator,
)
from flyautoscaler.coordination._memory import InMemoryCoordinator, InMemoryStore
from flyautoscaler.coordination._redis import DEFAULT_SOCKET_TIMEOUT, RedisCoordinator

__all__ = [
    "DEFAULT_LIVENESS",
    "DEFAULT_SOCKET_TIMEOUT",
    "MAX_REPLICA_ID_LENGTH",
    "AppLease",
    "CoordinationError",
    "Coordinator",
    "InMemoryCoordinator",
    "InMemoryStore",
    "RedisCoordinator",
]
