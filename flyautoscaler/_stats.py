"""Counters of what reconcilers did, shared safely between threads."""

from __future__ import annotations

import threading
from typing import Final

__all__ = ["ReconcilerStats"]

_FIELDS: Final = (
    "bulk_create",
    "bulk_destroy",
    "bulk_start",
    "bulk_stop",
    "no_scale",
    "machine_created",
    "machine_create_failed",
    "machine_destroyed",
    "machine_destroy_failed",
    "machine_started",
    "machine_start_failed",
    "machine_stopped",
    "machine_stop_failed",
    "machine_lease_skipped",
)


class ReconcilerStats:
    """What reconcile passes did, as plain ``int`` attributes.

    One instance may be shared by many reconcilers (the pool does); every
    increment takes a lock, every read is a plain attribute read.

    Attributes:
        bulk_create: Passes that set out to create Machines; failed calls too.
        bulk_destroy: Passes that set out to destroy Machines; failed calls too.
        bulk_start: Passes that set out to start Machines; failed calls too.
        bulk_stop: Passes that set out to stop Machines; failed calls too.
        no_scale: Passes that had nothing to do and met no failure.
        machine_created: Machines created.
        machine_create_failed: Failed create calls.
        machine_destroyed: Machines destroyed.
        machine_destroy_failed: Failed destroy calls.
        machine_started: Machines started.
        machine_start_failed: Failed start calls.
        machine_stopped: Machines stopped.
        machine_stop_failed: Failed stop calls.
        machine_lease_skipped: Machine actions not made because someone else
            held a lease on the Machine (with ``machine_leases`` on).
    """

    FIELDS: Final = _FIELDS

    bulk_create: int
    bulk_destroy: int
    bulk_start: int
    bulk_stop: int
    no_scale: int
    machine_created: int
    machine_create_failed: int
    machine_destroyed: int
    machine_destroy_failed: int
    machine_started: int
    machine_start_failed: int
    machine_stopped: int
    machine_stop_failed: int
    machine_lease_skipped: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        for name in _FIELDS:
            setattr(self, name, 0)

    def incr(self, counter: str, n: int = 1) -> None:
        """Add *n* to *counter* (one of :attr:`FIELDS`), atomically.

        Raises:
            ValueError: *counter* is not a counter's name.
        """
        if counter not in _FIELDS:
            raise ValueError(
                f"unknown counter {counter!r}; counters are {', '.join(_FIELDS)}"
            )
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def snapshot(self) -> dict[str, int]:
        """Return every counter's value, read at one instant."""
        with self._lock:
            return {name: getattr(self, name) for name in _FIELDS}

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.snapshot().items() if v)
        return f"ReconcilerStats({values})"
