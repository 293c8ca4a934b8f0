"""A fake clock for tests of code that sleeps and reads the time."""

from __future__ import annotations

import threading


class FakeTime:
    """A clock that moves only when someone sleeps; thread-safe; records sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        """Record *seconds* and move the clock on by as much, at once."""
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def clock(self) -> float:
        """Return the fake time."""
        with self.lock:
            return self.now
