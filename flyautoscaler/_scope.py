"""How long the current pass may still act, and whether it was cancelled.

A reconcile pass has a deadline (the pool's ``reconcile_timeout``) and a cancel
event (set by ``ReconcilerPool.close()``). Code deep below the pass, such as
the Machines API client waiting for a rate-limit token or a ``Retry-After``,
must obey both without being handed them through every signature: the pass
enters a :class:`Scope`, and that code reads :func:`current_scope`.

The scope is a :mod:`contextvars` variable, so it follows the pass onto the
action threads that run its calls (they enter it explicitly) and never leaks
to other threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
from collections.abc import Callable, Iterator
from typing import Final

from attrs import frozen

__all__ = ["ACTION_SECONDS", "Scope", "current_scope", "pause"]

#: Longest single sleep of :func:`pause`: how soon a cancel is noticed.
PAUSE_SLICE: Final = 0.05
#: Seconds one Machine action may take, as a permit asks before it starts,
#: by default: the Machines API client's default connect and read timeouts.
ACTION_SECONDS: Final = 35.0

_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "flyautoscaler_scope", default=None
)


@frozen
class Scope:
    """The limits of one pass: a deadline on *clock*, and a cancel event.

    Attributes:
        deadline: A time on :attr:`clock` after which nothing new may start,
            or ``None`` for no deadline.
        clock: The clock the deadline is on.
        cancel: Set when the pass must stop starting things, or ``None``.
        permit: Asked before each request that changes something, with the
            seconds that request may take: ``True`` when the pass may still
            act for that long (when replicas coordinate, the app's lease
            holds). ``None`` always permits.
        action_seconds: Seconds one Machine action may take: what
            :attr:`permit` is asked for before each action starts.
    """

    deadline: float | None
    clock: Callable[[], float]
    cancel: threading.Event | None = None
    permit: Callable[[float], bool] | None = None
    action_seconds: float = ACTION_SECONDS

    def remaining(self) -> float:
        """Return the seconds left before the deadline (``inf`` without one)."""
        if self.deadline is None:
            return math.inf
        return max(0.0, self.deadline - self.clock())

    @property
    def cancelled(self) -> bool:
        """Whether the cancel event is set."""
        return self.cancel is not None and self.cancel.is_set()

    def permitted(self, seconds: float) -> bool:
        """Whether a change that may take *seconds* may be sent now."""
        return self.permit is None or self.permit(seconds)

    @contextlib.contextmanager
    def entered(self) -> Iterator[Scope]:
        """Make this the current scope of the calling thread while inside."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


def current_scope() -> Scope | None:
    """Return the scope the calling code runs in, or ``None`` outside a pass."""
    return _current.get()


def pause(seconds: float, sleep: Callable[[float], object]) -> bool:
    """Wait *seconds* with *sleep*, in slices, unless the current scope is cancelled.

    Outside a scope with a cancel event this is one ``sleep(seconds)``.

    Returns:
        ``False`` when the wait ended because the scope was cancelled.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot pause for {seconds!r} seconds")
    scope = current_scope()
    if scope is None or scope.cancel is None:
        if seconds > 0:
            sleep(seconds)
        return True
    left = seconds
    # Bounded: each turn sleeps PAUSE_SLICE (or the rest) and subtracts it.
    while left > 0:
        if scope.cancelled:
            return False
        step = min(left, PAUSE_SLICE)
        sleep(step)
        left -= step
    return not scope.cancelled
