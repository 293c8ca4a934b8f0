"""Metric collectors: Prometheus, Redis list lengths, Temporal workflows.

Each implements :class:`~flyautoscaler.MetricCollector`: a ``name`` and a
``collect_metric(app_name)`` returning one float, raising
:class:`~flyautoscaler.MetricCollectionError` when it cannot.

- :class:`PrometheusCollector`: an instant query (needs nothing more than
  flyautoscaler).
- :class:`PrometheusMachineCollector`: an instant query giving one value per
  Machine (its ``instance`` label), a
  :class:`~flyautoscaler.MachineMetricCollector` that ranks which Machines to
  stop.
- :class:`RedisListLengthCollector`: the summed length of Redis lists, such as
  RQ and Celery queues (extra ``flyautoscaler[redis]``).
- :class:`TemporalCollector`: the number of running Temporal workflows (extra
  ``flyautoscaler[temporal]``).

Importing this package never imports redis-py or temporalio; building a
collector whose extra is missing raises :class:`ImportError` naming the
``pip install`` command.

Each collector lives in its own module with its declaration for the command
(a :class:`~flyautoscaler._settings.CollectorType`: its YAML keys, ``FAS_*``
variables, secrets, checks and how it is built); :data:`TYPES` lists them,
and :mod:`flyautoscaler.config` derives its collector settings from it. To
add a collector: its module, one line here, its tests and its section of
the collectors page.
"""

from __future__ import annotations

from typing import Final

from flyautoscaler._settings import CollectorType
from flyautoscaler.collectors._prometheus import (
    DEFAULT_PROMETHEUS_TIMEOUT,
    PROMETHEUS,
    PrometheusCollector,
    PrometheusMachineCollector,
    PrometheusQueryError,
)
from flyautoscaler.collectors._redis import (
    DEFAULT_REDIS_TIMEOUT,
    REDIS,
    RedisListLengthCollector,
)
from flyautoscaler.collectors._temporal import (
    DEFAULT_TEMPORAL_TIMEOUT,
    RUNNING_FILTER,
    TEMPORAL,
    TemporalCollector,
)

__all__ = [
    "DEFAULT_PROMETHEUS_TIMEOUT",
    "DEFAULT_REDIS_TIMEOUT",
    "DEFAULT_TEMPORAL_TIMEOUT",
    "RUNNING_FILTER",
    "PrometheusCollector",
    "PrometheusMachineCollector",
    "PrometheusQueryError",
    "RedisListLengthCollector",
    "TemporalCollector",
]

#: The collector types the command configures, in the order the environment
#: adds them (not part of the public API: see :mod:`flyautoscaler.config`).
TYPES: Final[tuple[CollectorType, ...]] = (PROMETHEUS, TEMPORAL, REDIS)
