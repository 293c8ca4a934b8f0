"""Checks of input shared by the configuration, the pool and the HTTP clients.

Each bound here exists so that a bad value fails at start-up, in one line that
names the setting, instead of failing every pass (or killing a worker) later.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_CONCURRENCY", "MAX_DURATION"]

#: Longest interval, timeout or refresh interval accepted, in seconds (24 h).
#: An autoscaler that looks less often than once a day does not autoscale, and
#: every wait stays far below :data:`threading.TIMEOUT_MAX`.
MAX_DURATION: Final = 24 * 3600.0
#: Most worker threads a pool runs. Each holds its own HTTP connections, so
#: 256 workers stay inside the usual 1024 open files; at a 15 s interval and
#: one second a pass they keep up with about 4,000 apps.
MAX_CONCURRENCY: Final = 256
