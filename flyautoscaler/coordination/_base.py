"""The coordination seam (:class:`AppLease`, :class:`Coordinator`) and its helpers.

Shared by the in-memory and the Redis coordinator: the replica ids (their
default and their check), rendezvous hashing, and the checks of a TTL and a
margin.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import socket
from collections.abc import Sequence
from typing import Final, Protocol

from attrs import frozen

from flyautoscaler._errors import ConfigError
from flyautoscaler._validation import check_duration

__all__ = [
    "DEFAULT_LIVENESS",
    "MAX_REPLICA_ID_LENGTH",
    "AppLease",
    "Coordinator",
    "check_replica_id",
    "check_seconds",
    "check_ttl",
    "default_replica_id",
    "margin_ok",
    "rendezvous_owner",
]

#: Longest replica id, in characters.
MAX_REPLICA_ID_LENGTH: Final = 128
#: How long a replica counts as alive after its last heartbeat, by default (s).
DEFAULT_LIVENESS: Final = 15.0

# Characters of a host name kept in a default replica id (the rest is cut).
_HOST_PART: Final = 64
_WHITESPACE: Final = re.compile(r"\s")


@frozen
class AppLease:
    """This replica's exclusive right to act on one app, for a while.

    Returned by :meth:`Coordinator.acquire` and :meth:`Coordinator.renew`;
    before each action, :meth:`Coordinator.holds` proves it is still good.

    Attributes:
        app_name: The app.
        replica_id: The replica that holds it.
        token: The fencing token: strictly increasing per app, whichever
            replica acquires, and never given twice (see
            :mod:`flyautoscaler.coordination`). A renewal keeps it.
        expires: When the holder must stop acting, on the coordinator's own
            monotonic clock: the time the request that acquired (or renewed)
            it was *sent*, plus the TTL. The store's copy never expires before.
    """

    app_name: str
    replica_id: str
    token: int
    expires: float


class Coordinator(Protocol):
    """How replicas share apps out and make sure one acts on an app at a time.

    Two implementations ship: :class:`~flyautoscaler.coordination.RedisCoordinator`
    and :class:`~flyautoscaler.coordination.InMemoryCoordinator`. Each is safe
    to use from several threads at once.

    Attributes:
        replica_id: This replica's id (printable, no whitespace, at most 128
            characters).
    """

    replica_id: str

    def heartbeat(self) -> None:
        """Announce that this replica is alive (call it every heartbeat interval).

        Raises:
            CoordinationError: The store cannot be reached or refused.
        """
        ...

    def replicas(self) -> list[str]:
        """Return the ids of the replicas heard from within the liveness window, sorted.

        Raises:
            CoordinationError: The store cannot be reached or refused.
        """
        ...

    def owns(self, app_name: str, replicas: Sequence[str]) -> bool:
        """Whether this replica is *app_name*'s owner among *replicas*.

        Rendezvous (highest-random-weight) hashing: each replica scores the
        app, the highest wins; so adding or removing one replica moves only
        the apps it wins or won. Pure and deterministic across processes and
        platforms; false when this replica is not among *replicas*.
        """
        ...

    def acquire(self, app_name: str, ttl: float) -> AppLease | None:
        """Take *app_name*'s lease for *ttl* seconds, if nobody holds it.

        Atomic set-if-absent: of replicas (or threads) asking at once, one
        gets it. Every successful acquisition has a larger token than any
        before it.

        Returns:
            The lease; ``None`` when it is held (by anyone, this replica
            included) or cannot be granted yet.

        Raises:
            CoordinationError: The store cannot be reached or refused.
        """
        ...

    def renew(self, lease: AppLease, ttl: float) -> AppLease | None:
        """Extend *lease* to *ttl* seconds from now, if it is still this one.

        Returns:
            The lease with its new :attr:`~AppLease.expires` (same token), or
            ``None`` when it was lost: expired, released, or acquired since.

        Raises:
            CoordinationError: The store cannot be reached or refused.
        """
        ...

    def holds(self, lease: AppLease, margin: float) -> bool:
        """Whether *lease* is still this one and lasts *margin* more seconds.

        The proof asked before each action: true only when the store has this
        very lease (same token) with at least *margin* seconds of its TTL left,
        and its local :attr:`~AppLease.expires` is at least *margin* away.
        False on any doubt, the store unreachable included; never raises.
        """
        ...

    def release(self, lease: AppLease) -> None:
        """Give *lease* up, if it is still this one; never raises."""
        ...

    def leave(self) -> None:
        """Say this replica is gone (best effort, never raises), at shutdown."""
        ...

    def close(self) -> None:
        """Release the coordinator's connections; idempotent."""
        ...


def check_replica_id(replica_id: str | None) -> str:
    """Return *replica_id* if it can be one (``None``: a new default one), or raise.

    A replica id is 1 to 128 printable characters without whitespace (it is
    stored with the token in one Redis value, separated by a space).

    Raises:
        ConfigError: *replica_id* cannot be one.
    """
    if replica_id is None:
        return default_replica_id()
    if not (
        0 < len(replica_id) <= MAX_REPLICA_ID_LENGTH
        and replica_id.isprintable()
        and not _WHITESPACE.search(replica_id)
    ):
        raise ConfigError(
            f"replica id must be 1 to {MAX_REPLICA_ID_LENGTH} printable characters "
            f"without whitespace, got {replica_id!r}",
            field="replica_id",
        )
    return replica_id


def default_replica_id() -> str:
    """Return a new replica id: ``{FLY_MACHINE_ID or host name}-{pid}-{random}``.

    Unique to this process and this call, and readable: the Machine (on Fly)
    or host it runs on comes first.
    """
    host = os.environ.get("FLY_MACHINE_ID") or socket.gethostname() or "replica"
    host = "".join(
        c if c.isprintable() and not c.isspace() else "-" for c in host[:_HOST_PART]
    )
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def _score(replica: str, app_name: str) -> int:
    digest = hashlib.blake2b(f"{replica}\0{app_name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def rendezvous_owner(app_name: str, replicas: Sequence[str]) -> str | None:
    """Return the replica that owns *app_name* by rendezvous hashing, or ``None``.

    Each replica's score is the first 8 bytes of BLAKE2b of the UTF-8 of the
    replica id, a NUL character and the app's name, read as a big-endian
    integer; the highest wins, a tie (never seen in practice) going to the
    larger id. The same inputs give the same owner in every process, on every
    platform.
    """
    if not replicas:
        return None
    return max(replicas, key=lambda replica: (_score(replica, app_name), replica))


def check_ttl(ttl: float) -> int:
    """Return *ttl* seconds as whole milliseconds (rounded up), or raise.

    Raises:
        ConfigError: *ttl* is not a positive duration of at most 24 hours.
    """
    check_duration(ttl, "lease ttl", field="ttl")
    return math.ceil(round(ttl * 1000, 6))  # 2.007 s is 2007 ms, not 2008


def check_seconds(_instance: object, attribute: object, value: float) -> None:
    """Validate an attrs field of seconds: a positive duration of at most 24 hours.

    Raises:
        ConfigError: It is not; the message and ``field`` name the attribute.
    """
    name = str(getattr(attribute, "name", "value"))
    check_duration(value, name.replace("_", " "), field=name)


def margin_ok(margin: float) -> bool:
    """Whether *margin* is a number of seconds :meth:`Coordinator.holds` accepts.

    A negative, NaN or infinite margin is a doubt: ``holds`` says false.
    """
    return math.isfinite(margin) and margin >= 0
