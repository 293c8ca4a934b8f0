"""Client-side token buckets that keep requests inside Fly's rate limits.

Fly limits the Machines API per action and per identifier (``fly-api.md`` §4):
1 request/s with a burst of 3 for each action on one Machine (start, stop,
destroy, ...) or on one app (create, list), and 5 requests/s with a burst of 10
for get. :class:`RateLimiter` keeps one bucket per ``(action, Machine id or app)``
so that a large scale-up paces itself instead of drawing a storm of 429s, and
learns from the 429s it still gets (``Retry-After``).

The buckets use the "generic cell rate algorithm" form of a token bucket: each
key stores the time its next token is due, so a bucket is one float and waits
are reserved first come, first served. The limiter never reads a clock or
sleeps itself: the caller passes ``now`` and does the waiting, with its own
injectable clock and sleep.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Final

from attrs import define, field, frozen

__all__ = [
    "DEFAULT_MAX_WAIT",
    "DEFAULT_RATE_LIMIT",
    "FLY_RATE_LIMITS",
    "RateLimit",
    "RateLimiter",
]

# Float slack: a wait this short is no wait.
_EPSILON: Final = 1e-9
# Forget buckets that are full again once there are this many.
_PRUNE_AT: Final = 1024


def _positive(_instance: object, attribute: object, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        name = getattr(attribute, "name", "value")
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@frozen
class RateLimit:
    """A token bucket: *rate* tokens per second, at most *burst* saved up.

    Args:
        rate: Requests per second in the long run.
        burst: Requests that may go at once after a quiet spell (at least 1).
    """

    rate: float = field(validator=_positive)
    burst: float = field(validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst!r}")


#: Fly's documented limit for every action not in :data:`FLY_RATE_LIMITS`.
DEFAULT_RATE_LIMIT: Final = RateLimit(rate=1.0, burst=3.0)
#: Fly's documented exceptions, by action: get is 5/s with a burst of 10.
FLY_RATE_LIMITS: Final[Mapping[str, RateLimit]] = {"get": RateLimit(5.0, 10.0)}
#: The longest a request waits for a token before failing without being sent.
DEFAULT_MAX_WAIT: Final = 15.0


@define
class RateLimiter:
    """Token buckets keyed by ``(action, Machine id or app)``, shared by threads.

    One limiter belongs to one :class:`~flyautoscaler.fly.FlapsHTTPClient` by
    default and is used by every thread calling it; pass the same limiter to
    several clients to share the buckets. All methods are thread-safe.

    Args:
        limits: Per-action limits; an action not listed gets *default*.
        default: The limit of every other action (Fly's 1/s, burst 3).
        headroom: Fraction by which the steady rate is kept below the limit
            (0.05: one request every 1.05 s instead of 1 s), so that jitter
            between this process and Fly's counters does not cost a 429.
        max_wait: Seconds a request may wait for its token; a longer wait is
            not taken (see :meth:`reserve`).

    Raises:
        ValueError: *headroom* is not in [0, 1) or *max_wait* is negative.
    """

    limits: Mapping[str, RateLimit] = field(factory=lambda: dict(FLY_RATE_LIMITS))
    default: RateLimit = DEFAULT_RATE_LIMIT
    headroom: float = 0.05
    max_wait: float = DEFAULT_MAX_WAIT
    _lock: threading.Lock = field(init=False, factory=threading.Lock, repr=False)
    # (action, key) -> the time the bucket's next token is due ("theoretical
    # arrival time"); the bucket is full when that time is burst intervals away.
    _due: dict[tuple[str, str], float] = field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (0 <= self.headroom < 1):
            raise ValueError(f"headroom must be in [0, 1), got {self.headroom!r}")
        if not math.isfinite(self.max_wait) or self.max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {self.max_wait!r}")

    def limit(self, action: str) -> RateLimit:
        """Return the limit that applies to *action*."""
        return self.limits.get(action, self.default)

    def _interval_and_tolerance(self, action: str) -> tuple[float, float]:
        limit = self.limit(action)
        interval = (1.0 + self.headroom) / limit.rate
        return interval, (limit.burst - 1.0) * interval

    def reserve(
        self, action: str, key: str, now: float, *, max_wait: float | None = None
    ) -> float | None:
        """Take a token for one request, possibly in the future.

        Args:
            action: The request's action (``"launch"``, ``"start"``, ...).
            key: The Machine id, or the app for create and list.
            now: The current time on the caller's monotonic clock.
            max_wait: A tighter bound than :attr:`max_wait` for this request
                (such as the time left before its pass's deadline).

        Returns:
            Seconds to wait before sending (0: send now), or ``None`` when the
            wait would exceed :attr:`max_wait` (or *max_wait*); no token is
            taken then.
        """
        interval, tolerance = self._interval_and_tolerance(action)
        bound = self.max_wait if max_wait is None else min(max_wait, self.max_wait)
        with self._lock:
            due = max(self._due.get((action, key), now), now)
            wait = due - tolerance - now
            wait = 0.0 if wait <= _EPSILON else wait
            if wait > bound:
                return None
            self._due[action, key] = due + interval
            self._prune(now)
        return wait

    def take(self, action: str, key: str, now: float) -> None:
        """Count a request sent without waiting (a retry, already backed off)."""
        interval, _ = self._interval_and_tolerance(action)
        with self._lock:
            due = max(self._due.get((action, key), now), now)
            self._due[action, key] = due + interval

    def rate_limited(self, action: str, key: str, now: float, delay: float) -> None:
        """Learn from a 429: hold the bucket's next token until ``now + delay``.

        Args:
            action: See :meth:`reserve`.
            key: See :meth:`reserve`.
            now: See :meth:`reserve`.
            delay: Seconds until the server accepts a request again (its
                ``Retry-After``, as the client obeys it); at least one interval
                when the server did not say.
        """
        interval, tolerance = self._interval_and_tolerance(action)
        with self._lock:
            due = self._due.get((action, key), now)
            # Empty the bucket: the next token is due after *delay*, and no
            # burst is saved up before it.
            self._due[action, key] = max(due, now + max(delay, interval) + tolerance)

    def wait_time(self, action: str, key: str, now: float) -> float:
        """Return how long a request for ``(action, key)`` would wait now."""
        _, tolerance = self._interval_and_tolerance(action)
        with self._lock:
            due = max(self._due.get((action, key), now), now)
        wait = due - tolerance - now
        return 0.0 if wait <= _EPSILON else wait

    def _prune(self, now: float) -> None:
        """Forget full buckets (lock held) once there are many keys."""
        if len(self._due) >= _PRUNE_AT:
            self._due = {k: due for k, due in self._due.items() if due > now}
