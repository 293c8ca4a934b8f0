"""HTTP clients for Fly's Machines API ("flaps") and GraphQL API.

:class:`FlapsHTTPClient` implements :class:`~flyautoscaler.FlapsClient` and
:class:`FlyGraphQLClient` implements :class:`~flyautoscaler.FlyClient`, both on
``requests``. :func:`new_flaps_client_func` builds the
:data:`~flyautoscaler.NewFlapsClientFunc` a pool needs. Every request carries a
``(connect, read)`` timeout; reads are retried with capped, jittered backoff;
creating a Machine is retried only when the request certainly never reached Fly.
The token never appears in a ``repr``, an exception or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from attrs import field, frozen

from flyautoscaler._closing import Closing
from flyautoscaler._flaps import (
    DEFAULT_FLAPS_BASE_URL,
    FlapsHTTPClient,
    flaps_base_url,
)
from flyautoscaler._graphql import (
    DEFAULT_API_BASE_URL,
    MAX_APP_PAGES,
    FlyGraphQLClient,
    api_base_url,
)
from flyautoscaler._http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    HTTPOptions,
    RetryPolicy,
    SessionPool,
    check_base_url,
    default_user_agent,
    flaps_authorization,
    graphql_authorization,
    parse_retry_after,
)
from flyautoscaler._ratelimit import RateLimit, RateLimiter

__all__ = [
    "DEFAULT_API_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FLAPS_BASE_URL",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_APP_PAGES",
    "FlapsClientFactory",
    "FlapsHTTPClient",
    "FlyGraphQLClient",
    "RateLimit",
    "RateLimiter",
    "RetryPolicy",
    "SessionPool",
    "api_base_url",
    "flaps_authorization",
    "flaps_base_url",
    "graphql_authorization",
    "new_flaps_client_func",
    "parse_retry_after",
]


# --- factory ------------------------------------------------------------------


@frozen(eq=False)
class FlapsClientFactory(Closing, HTTPOptions):
    """Builds a :class:`FlapsHTTPClient` per app: a ``NewFlapsClientFunc``.

    Every client it builds shares one :class:`SessionPool`, so all apps reuse
    the same connections; :meth:`close` closes them. Build it with
    :func:`new_flaps_client_func`.
    """

    _token: str = field(repr=False)
    base_url: str = field(
        factory=flaps_base_url, kw_only=True, converter=check_base_url
    )
    rate_limits: bool = field(default=True, kw_only=True)
    sessions: SessionPool = field(factory=SessionPool, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        flaps_authorization(self._token)  # fail now on an empty token

    def __call__(self, app_name: str) -> FlapsHTTPClient:
        """Return a client for *app_name*."""
        return FlapsHTTPClient(
            app_name,
            self._token,
            base_url=self.base_url,
            timeout=self.timeout,
            retry=self.retry,
            user_agent=self.user_agent,
            sleep=self.sleep,
            clock=self.clock,
            sessions=self.sessions,
            rate_limiter=RateLimiter() if self.rate_limits else None,
        )

    def close(self) -> None:
        """Close the shared sessions; idempotent. Built clients stop working."""
        self.sessions.close()


def new_flaps_client_func(  # noqa: PLR0913 - the client's options, passed through
    token: str,
    *,
    base_url: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    user_agent: str | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rate_limits: bool = True,
) -> FlapsClientFactory:
    """Return a :data:`~flyautoscaler.NewFlapsClientFunc` building HTTP clients.

    Args:
        token: A Fly API token (see :func:`flaps_authorization`).
        base_url: The Machines API; ``None`` reads :func:`flaps_base_url`
            (``FLY_FLAPS_BASE_URL``, else ``https://api.machines.dev``).
        timeout: See :class:`FlapsHTTPClient`.
        retry: See :class:`FlapsHTTPClient` (default :class:`RetryPolicy()`).
        user_agent: See :class:`FlapsHTTPClient` (default ``flyautoscaler/<version>``).
        sleep: See :class:`FlapsHTTPClient`.
        clock: See :class:`FlapsHTTPClient`.
        rate_limits: Give each client its own :class:`RateLimiter` (Fly's
            documented limits); ``False`` sends requests as fast as they come.

    Returns:
        A callable ``app_name -> FlapsHTTPClient`` with a ``close()`` method.

    Raises:
        ConfigError: The token is empty, or the base URL or timeout is invalid.
    """
    return FlapsClientFactory(
        token,
        base_url=flaps_base_url() if base_url is None else base_url,
        timeout=timeout,
        retry=RetryPolicy() if retry is None else retry,
        user_agent=default_user_agent() if user_agent is None else user_agent,
        sleep=sleep,
        clock=clock,
        rate_limits=rate_limits,
    )
