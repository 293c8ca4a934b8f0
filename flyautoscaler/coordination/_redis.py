"""The Redis coordinator: membership in a sorted set, leases as keys, tokens by INCR."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Final

from attrs import define, field

from flyautoscaler._closing import Closing
from flyautoscaler._errors import ConfigError, CoordinationError, describe
from flyautoscaler._log import get_logger
from flyautoscaler._redis import (
    check_redis_url,
    display_url,
    import_redis,
    new_client,
    redis_failure,
    url_scrubber,
)
from flyautoscaler.coordination._base import (
    DEFAULT_LIVENESS,
    AppLease,
    check_replica_id,
    check_seconds,
    check_ttl,
    margin_ok,
    rendezvous_owner,
)

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

__all__ = ["DEFAULT_SOCKET_TIMEOUT", "RedisCoordinator"]

logger = get_logger(__name__)

#: Default connect and read timeout of each Redis call, in seconds.
DEFAULT_SOCKET_TIMEOUT: Final = 2.0
#: A heartbeat older than this many liveness windows is deleted, not only
#: ignored, so the set of replicas stays small.
_TRIM_WINDOWS: Final = 10
#: Redis keeps times in whole milliseconds: each bound is made this much
#: shorter, so that rounding never lengthens a lease.
_GRAIN: Final = 0.001

# The scripts. Redis runs each atomically; numbers are written with %.0f, as
# Lua would otherwise write large ones in exponent form. Tokens and the epoch
# are microseconds of the server's clock (below 2^53, exact in Lua's doubles).

# KEYS: lease, fence, epoch. ARGV: replica id, ttl (ms). Returns the token (a
# string), 0 when the lease is held, -1 while the store is newly emptied. An
# epoch in the future (the server's clock went back) starts the wait again,
# so that it stays one TTL long.
_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local epoch = tonumber(redis.call('GET', KEYS[3]))
if epoch == nil or epoch > now then
  epoch = now
  redis.call('SET', KEYS[3], string.format('%.0f', now))
end
local ttl = tonumber(ARGV[2])
if now - epoch < ttl * 1000 then
  return -1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local token = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now)
local text = string.format('%.0f', token)
redis.call('SET', KEYS[2], text)
redis.call('SET', KEYS[1], text .. ' ' .. ARGV[1], 'PX', ttl)
return text
"""
# KEYS: lease. ARGV: value, ttl (ms). Returns 1 if extended, else 0.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease. ARGV: value. Returns the ms left, or a negative number.
_HOLDS: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PTTL', KEYS[1])
end
return -3
"""
# KEYS: lease. ARGV: value. Returns 1 if deleted, else 0.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS: replicas, epoch. ARGV: replica id.
_HEARTBEAT: Final = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', ms), ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('SET', KEYS[2], string.format('%.0f', now))
end
return 1
"""
# KEYS: replicas. ARGV: liveness (ms), trim horizon (ms). Returns the live ids.
_REPLICAS: Final = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local trim = string.format('%.0f', ms - tonumber(ARGV[2]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. trim)
local oldest = string.format('%.0f', ms - tonumber(ARGV[1]))
return redis.call('ZRANGEBYSCORE', KEYS[1], oldest, '+inf')
"""
_SCRIPTS: Final = {
    "acquire": _ACQUIRE,
    "renew": _RENEW,
    "holds": _HOLDS,
    "release": _RELEASE,
    "heartbeat": _HEARTBEAT,
    "replicas": _REPLICAS,
}


@define
class RedisCoordinator(Closing):
    """A :class:`Coordinator` over Redis, for replicas in separate processes.

    Uses Redis's own primitives only: a sorted set of heartbeats scored by
    the server's clock, ``SET NX PX`` leases, and Lua scripts (sent by
    ``EVALSHA``, loaded again when the server has lost them) that compare a
    lease's value before they extend, check or delete it. Needs Redis 5 or
    later, a single server or primary (not Cluster), and the ``redis``
    extra (from a checkout: ``pip install '.[redis]'``). See
    :mod:`flyautoscaler.coordination` for the keys and what is guaranteed.

    The client is created when needed and reused (it is thread-safe); every
    call waits at most *socket_timeout* to connect and as long for its
    answer, and is not retried. :meth:`close` closes the connections; a
    later call opens new ones.

    Args:
        url: Where Redis is: ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://...`` (TLS) or ``unix:///path/to/socket``. Never shown:
            messages name the store by this URL without its credentials.
        replica_id: This replica's id; by default
            ``{FLY_MACHINE_ID or host name}-{pid}-{random}``.
        key_prefix: What every key starts with, so that several deployments
            can share one database.
        liveness: Seconds a replica stays in :meth:`replicas` after its last
            heartbeat (on the server's clock).
        socket_timeout: Seconds to wait for a connection, and for each answer.
        clock: This replica's monotonic clock, on which
            :attr:`AppLease.expires` is.

    Raises:
        ImportError: redis-py is not installed.
        ConfigError: The URL cannot be read (its scheme is not redis, rediss or
            unix), or the replica id, liveness or timeout is not valid.
    """

    url: str = field(repr=False)
    replica_id: str = field(default=None, converter=check_replica_id, kw_only=True)
    key_prefix: str = field(default="fas:", kw_only=True)
    liveness: float = field(
        default=DEFAULT_LIVENESS, converter=float, validator=check_seconds, kw_only=True
    )
    socket_timeout: float = field(
        default=DEFAULT_SOCKET_TIMEOUT,
        converter=float,
        validator=check_seconds,
        kw_only=True,
    )
    clock: Callable[[], float] = field(default=time.monotonic, kw_only=True)
    _redis: ModuleType = field(init=False, repr=False)
    _client: redis.Redis | None = field(default=None, init=False, repr=False)
    _scripts: dict[str, Script] = field(factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._redis = import_redis(type(self).__name__)
        check_redis_url(self.url, "coordination url", field="url")
        try:
            self._connect()
        except ValueError as exc:
            raise ConfigError(
                f"coordination url cannot be read: {url_scrubber(self.url)(str(exc))}",
                field="url",
            ) from None

    def heartbeat(self) -> None:
        """See :meth:`Coordinator.heartbeat`."""
        self._run(
            "heartbeat",
            "heartbeat",
            [self._key("replicas"), self._key("epoch")],
            [self.replica_id],
        )

    def replicas(self) -> list[str]:
        """See :meth:`Coordinator.replicas`."""
        live_ms = math.ceil(self.liveness * 1000)
        reply = self._run(
            "list the replicas",
            "replicas",
            [self._key("replicas")],
            [live_ms, live_ms * _TRIM_WINDOWS],
        )
        return sorted(
            item.decode(errors="replace") if isinstance(item, bytes) else str(item)
            for item in (reply if isinstance(reply, list) else [])
        )

    def owns(self, app_name: str, replicas: Sequence[str]) -> bool:
        """See :meth:`Coordinator.owns`."""
        return rendezvous_owner(app_name, replicas) == self.replica_id

    def acquire(self, app_name: str, ttl: float) -> AppLease | None:
        """See :meth:`Coordinator.acquire`.

        ``None`` also while the store is newly emptied (see
        :mod:`flyautoscaler.coordination`).
        """
        ttl_ms = check_ttl(ttl)
        sent = self.clock()
        reply = self._run(
            f"acquire the lease of app {app_name!r}",
            "acquire",
            [
                self._key(f"lease:{app_name}"),
                self._key(f"fence:{app_name}"),
                self._key("epoch"),
            ],
            [self.replica_id, ttl_ms],
        )
        if isinstance(reply, int):
            if reply < 0:
                logger.debug(
                    "coordination.store_emptied",
                    extra={"app": app_name, "replica": self.replica_id},
                )
            return None
        token = int(reply.decode() if isinstance(reply, bytes) else str(reply))
        return AppLease(app_name, self.replica_id, token, self._expires(sent, ttl_ms))

    def renew(self, lease: AppLease, ttl: float) -> AppLease | None:
        """See :meth:`Coordinator.renew`."""
        ttl_ms = check_ttl(ttl)
        if lease.replica_id != self.replica_id:
            return None
        sent = self.clock()
        reply = self._run(
            f"renew the lease of app {lease.app_name!r}",
            "renew",
            [self._key(f"lease:{lease.app_name}")],
            [_value(lease), ttl_ms],
        )
        if reply != 1:
            return None
        return AppLease(
            lease.app_name, lease.replica_id, lease.token, self._expires(sent, ttl_ms)
        )

    def holds(self, lease: AppLease, margin: float) -> bool:
        """See :meth:`Coordinator.holds`.

        What Redis says is left is shortened by the round trip, and by one
        millisecond for its rounding.
        """
        if not margin_ok(margin) or lease.replica_id != self.replica_id:
            return False
        sent = self.clock()
        if lease.expires - sent < margin:
            return False  # paused past it, or too close: no need to ask
        try:
            reply = self._run(
                f"check the lease of app {lease.app_name!r}",
                "holds",
                [self._key(f"lease:{lease.app_name}")],
                [_value(lease)],
            )
        except CoordinationError as exc:
            logger.debug(
                "coordination.holds_unknown",
                extra={"app": lease.app_name, "error": describe(exc)},
            )
            return False
        except Exception as exc:  # noqa: BLE001 - holds() answers, never raises
            logger.warning(
                "coordination.holds_unknown",
                extra={"app": lease.app_name, "error": describe(exc)},
            )
            return False
        received = self.clock()
        if not isinstance(reply, int) or reply < 0:
            return False
        left = reply / 1000 - _GRAIN - (received - sent)
        return left >= margin and lease.expires - received >= margin

    def release(self, lease: AppLease) -> None:
        """See :meth:`Coordinator.release`."""
        if lease.replica_id != self.replica_id:
            return
        try:
            self._run(
                f"release the lease of app {lease.app_name!r}",
                "release",
                [self._key(f"lease:{lease.app_name}")],
                [_value(lease)],
            )
        except Exception as exc:  # noqa: BLE001 - never raises: the lease expires
            logger.warning(
                "coordination.release_failed",
                extra={"app": lease.app_name, "error": describe(exc)},
            )

    def leave(self) -> None:
        """See :meth:`Coordinator.leave`."""
        try:
            client, _ = self._connect()
            client.zrem(self._key("replicas"), self.replica_id)
        except Exception as exc:  # noqa: BLE001 - best effort: it drops out anyway
            logger.warning(
                "coordination.leave_failed",
                extra={"replica": self.replica_id, "error": describe(exc)},
            )

    def close(self) -> None:
        """Close the connections; the next call opens new ones. Idempotent."""
        with self._lock:
            client, self._client = self._client, None
            self._scripts = {}
        if client is not None:
            client.close()

    def _key(self, name: str) -> str:
        return f"{self.key_prefix}{name}"

    def _expires(self, sent: float, ttl_ms: int) -> float:
        return sent + ttl_ms / 1000 - _GRAIN

    def _connect(self) -> tuple[redis.Redis, dict[str, Script]]:
        with self._lock:
            if self._client is None:
                client = new_client(
                    self.url,
                    connect_timeout=self.socket_timeout,
                    timeout=self.socket_timeout,
                    retries=False,
                )
                self._scripts = {
                    name: client.register_script(text)
                    for name, text in _SCRIPTS.items()
                }
                self._client = client
            return self._client, self._scripts

    def _run(
        self, what: str, script: str, keys: list[str], args: list[str | int]
    ) -> object:
        """Run one script; raise :class:`CoordinationError` naming *what* failed."""
        _, scripts = self._connect()
        try:
            return scripts[script](keys=keys, args=args)
        except self._redis.RedisError as exc:
            text, transient = redis_failure(exc, url_scrubber(self.url))
            raise CoordinationError(
                display_url(self.url), f"{what}: {text}", transient=transient
            ) from None


def _value(lease: AppLease) -> str:
    """Return what the lease key holds while *lease* is held: token, space, id."""
    return f"{lease.token} {lease.replica_id}"
