"""The Redis list-length collector (RQ, Celery and other list-based queues).

Also its declaration for the command's configuration (``REDIS``): its keys,
variables and credential, and how an entry builds it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Final

from attrs import define, field

from flyautoscaler._closing import Closing
from flyautoscaler._errors import ConfigError, MetricCollectionError
from flyautoscaler._names import check_query_variables, expand_metric_query
from flyautoscaler._redis import (
    check_redis_url,
    new_client,
    redis_failure,
    redis_server,
    url_scrubber,
)
from flyautoscaler._redis import import_redis as _import_redis
from flyautoscaler._settings import CollectorType, Entry, Setting
from flyautoscaler._validation import positive_seconds, require

if TYPE_CHECKING:
    import redis

__all__ = ["DEFAULT_REDIS_TIMEOUT", "REDIS", "RedisListLengthCollector"]

#: Default connect and read timeout of a Redis call, in seconds.
DEFAULT_REDIS_TIMEOUT: Final = 5.0


def import_redis() -> ModuleType:
    """Return the :mod:`redis` module, or say how to install it.

    Raises:
        ImportError: redis-py is not installed; the message names the extra.
    """
    return _import_redis("RedisListLengthCollector")


def _keys(value: str | Sequence[str]) -> tuple[str, ...]:
    keys = (value,) if isinstance(value, str) else tuple(value)
    if not keys or not all(keys):
        raise ConfigError(
            "redis keys must be one or more non-empty strings", field="keys"
        )
    return keys


@define
class RedisListLengthCollector(Closing):
    r"""The summed length (``LLEN``) of one or more Redis lists, per app.

    Queues of RQ (``rq:queue:<name>``) and of Celery on Redis (the queue's name,
    ``celery`` by default) are lists, so their length is the number of jobs
    waiting. Each key may use ``$APP_NAME`` (see
    :func:`~flyautoscaler.expand_metric_query`); a key that does not exist
    counts as an empty list. All keys are read in one round trip.

    Needs the ``redis`` extra (from a checkout: ``pip install '.[redis]'``).

    The client is created on first use and reused (it is thread-safe); call
    :meth:`close`, or use the collector as a context manager, to close its
    connections.

    Args:
        name: The metric's name, as count expressions refer to it.
        url: Where Redis is, as redis-py's ``from_url`` reads it:
            ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...``
            (TLS) or ``unix:///path/to/socket``. Never logged or shown.
        keys: One key, or several whose lengths are summed.
        connect_timeout: Seconds to wait for a connection.
        timeout: Seconds to wait for an answer.
        variables: Other variables the keys may use, by name, with their
            values; any other ``$VAR`` stays as written. Never shown.

    Raises:
        ImportError: redis-py is not installed.
        ConfigError: The URL's scheme is not redis, rediss or unix, there is
            no key, a timeout is not positive, or a variable's name is not a
            name.
    """

    name: str
    url: str = field(repr=False)
    keys: tuple[str, ...] = field(converter=_keys)
    connect_timeout: float = field(
        default=DEFAULT_REDIS_TIMEOUT, converter=positive_seconds, kw_only=True
    )
    timeout: float = field(
        default=DEFAULT_REDIS_TIMEOUT, converter=positive_seconds, kw_only=True
    )
    variables: Mapping[str, str] = field(
        factory=dict, converter=check_query_variables, repr=False, kw_only=True
    )
    _client: redis.Redis | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        import_redis()
        require(self.name, "collector name required", field="name")
        check_redis_url(self.url, "redis url", field="url")

    @property
    def server(self) -> str:
        """Where Redis is, ``host:port`` or the socket path (no credentials)."""
        return redis_server(self.url)

    def collect_metric(self, app_name: str) -> float:
        """Return the summed length of the lists for *app_name*.

        Args:
            app_name: The app being reconciled (replaces ``$APP_NAME``).

        Returns:
            The total number of items in the lists.

        Raises:
            MetricCollectionError: Redis cannot be reached or did not answer in
                time (transient), refused the credentials, or a key holds
                something other than a list (not transient).
        """
        redis_module = import_redis()
        keys = [
            expand_metric_query(key, app_name, variables=self.variables)
            for key in self.keys
        ]
        try:
            with self._connect().pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                lengths = pipe.execute()
        except redis_module.RedisError as exc:
            text, transient = redis_failure(exc, url_scrubber(self.url))
            if isinstance(exc, redis_module.ResponseError):
                text += f" (keys {keys!r})"
            raise MetricCollectionError(
                self.name, f"redis at {self.server}: {text}", transient=transient
            ) from None
        return float(sum(int(n) for n in lengths))

    def close(self) -> None:
        """Close the connections; the next collection opens new ones."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connect(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                self._client = new_client(
                    self.url,
                    connect_timeout=self.connect_timeout,
                    timeout=self.timeout,
                )
            return self._client


def _build(entry: Entry, variables: Mapping[str, str]) -> RedisListLengthCollector:
    return RedisListLengthCollector(
        entry.text("metric_name"),
        entry.text("url"),
        [key for key in entry.strings("keys") if key],
        variables=variables,
    )


#: The ``redis`` entries of the command's configuration.
REDIS: Final = CollectorType(
    name="redis",
    enabled_by="FAS_REDIS_URL",
    settings=(
        Setting(
            "url",
            "url",
            "secret",
            env=("FAS_REDIS_URL",),
            credential=True,
            required="redis url required",
        ),
        Setting("metric-name", "metric_name", env=("FAS_REDIS_METRIC_NAME",)),
        Setting(
            "keys",
            "keys",
            "query_list",
            env=("FAS_REDIS_KEYS",),
            required="redis keys required",
        ),
    ),
    build=_build,
)
