"""What the users of Redis share: the optional import, URLs, clients, failures.

The list-length collector (:mod:`flyautoscaler.collectors`) and the
coordinator (:mod:`flyautoscaler.coordination`) both reach Redis through
redis-py, an optional extra. This module imports it only when asked, checks
and shows their URLs without credentials, builds their clients with timeouts,
and says what a redis-py error means (a message, and whether a retry may
help).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from flyautoscaler._errors import ConfigError, Scrubber
from flyautoscaler._extras import install_hint

if TYPE_CHECKING:
    import redis

__all__ = [
    "check_redis_url",
    "display_url",
    "import_redis",
    "new_client",
    "redis_failure",
    "redis_server",
    "url_scrubber",
]

_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})


def import_redis(user: str) -> ModuleType:
    """Return the :mod:`redis` module, or say how to install it.

    Args:
        user: Who needs it (a class name), for the message.

    Raises:
        ImportError: redis-py is not installed; the message names the extra.
    """
    try:
        return importlib.import_module("redis")
    except ImportError as exc:
        raise ImportError(f"{user} needs redis-py: {install_hint('redis')}") from exc


def check_redis_url(url: str, setting: str, *, field: str) -> None:
    """Raise :class:`ConfigError` unless *url* is one redis-py's ``from_url`` reads.

    Args:
        url: The URL (never shown).
        setting: Its name, for the message.
        field: The :attr:`ConfigError.field`.
    """
    if urlsplit(url).scheme not in _SCHEMES:
        raise ConfigError(
            f"{setting} must start with redis://, rediss:// or unix://", field=field
        )


def redis_server(url: str) -> str:
    """Return where Redis is: ``host:port``, or the socket's path (no credentials)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def display_url(url: str) -> str:
    """Return *url* without its user, password or query: ``redis://host:port/0``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{redis_server(url)}" + (
        "" if parts.scheme == "unix" else parts.path
    )


def url_scrubber(url: str) -> Scrubber:
    """Return a :class:`Scrubber` removing *url*'s password (whatever its length)."""
    return Scrubber([urlsplit(url).password or ""])


def new_client(
    url: str, *, connect_timeout: float, timeout: float, retries: bool = True
) -> redis.Redis:
    """Return a redis-py client of *url* with both timeouts.

    Args:
        url: Where Redis is, as ``redis.Redis.from_url`` reads it.
        connect_timeout: Seconds to wait for a connection.
        timeout: Seconds to wait for each answer.
        retries: Keep redis-py's own retries of a failed connection; without
            them a call takes at most one connect and one read timeout.
    """
    redis_module = import_redis("flyautoscaler")
    options: dict[str, object] = {}
    if not retries:
        retry = importlib.import_module("redis.retry")
        backoff = importlib.import_module("redis.backoff")
        options["retry"] = retry.Retry(backoff.NoBackoff(), 0)
    client: redis.Redis = redis_module.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        **options,
    )
    return client


def redis_failure(exc: Exception, scrub: Scrubber) -> tuple[str, bool]:
    """Say what a redis-py error means: its description, and whether it is transient.

    Refused credentials or permissions, and a command the server refuses (a
    key of the wrong type), do not heal by themselves; a read-only replica, a
    full memory and every failure to connect or to answer in time may.

    Args:
        exc: What redis-py raised (a :class:`redis.RedisError`).
        scrub: Removes the URL's password from the server's words.

    Returns:
        ``(description, transient)``.
    """
    redis_module = import_redis("flyautoscaler")
    exceptions = redis_module.exceptions
    text = scrub(str(exc))
    if isinstance(exc, exceptions.AuthenticationError | exceptions.AuthorizationError):
        return f"refused the credentials: {text}", False
    if isinstance(exc, exceptions.ReadOnlyError | exceptions.OutOfMemoryError):
        return f"{type(exc).__name__}: {text}", True
    if isinstance(exc, exceptions.ResponseError):
        return text, False
    return f"{type(exc).__name__}: {text}", True
