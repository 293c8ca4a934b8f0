"""In-memory fakes of every seam, for your tests and ours.

- :class:`FakeFlapsClient`: a Machines API for one app, with a Machine table,
  real state transitions, a call log and injectable failures.
- :class:`FakeFlyClient`: organizations, apps and releases.
- :class:`FakeMachinesServer`: both of the above over real HTTP on 127.0.0.1,
  for the HTTP clients, with auth, rate limits, latency and faults.
- :class:`StaticCollector` and :class:`CallableCollector`: metric sources.

Every fake is safe to use from several threads at once.
"""

from __future__ import annotations

from flyautoscaler.testing._fakes import (
    TRANSITIONS,
    Call,
    CallableCollector,
    FakeFlapsClient,
    FakeFlyClient,
    Lease,
    StaticCollector,
    parse_image_ref,
)
from flyautoscaler.testing._server import FakeMachinesServer, RequestRecord

__all__ = [
    "TRANSITIONS",
    "Call",
    "CallableCollector",
    "FakeFlapsClient",
    "FakeFlyClient",
    "FakeMachinesServer",
    "Lease",
    "RequestRecord",
    "StaticCollector",
    "parse_image_ref",
]
