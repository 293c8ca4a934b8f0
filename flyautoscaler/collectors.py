"""Metric collectors: Prometheus, Redis list lengths, Temporal workflows.

Each implements :class:`~flyautoscaler.MetricCollector`: a ``name`` and a
``collect_metric(app_name)`` returning one float, raising
:class:`~flyautoscaler.MetricCollectionError` when it cannot.

- :class:`PrometheusCollector`: an instant query (needs nothing more than
  flyautoscaler).
- :class:`RedisListLengthCollector`: the summed length of Redis lists, such as
  RQ and Celery queues (extra ``flyautoscaler[redis]``).
- :class:`TemporalCollector`: the number of running Temporal workflows (extra
  ``flyautoscaler[temporal]``).

Importing this module never imports redis-py or temporalio; building a
collector whose extra is missing raises :class:`ImportError` naming the
``pip install`` command.
"""

from __future__ import annotations

from flyautoscaler._prometheus import (
    DEFAULT_PROMETHEUS_TIMEOUT,
    PrometheusCollector,
    PrometheusQueryError,
)
from flyautoscaler._redis import DEFAULT_REDIS_TIMEOUT, RedisListLengthCollector
from flyautoscaler._temporal import (
    DEFAULT_TEMPORAL_TIMEOUT,
    RUNNING_FILTER,
    TemporalCollector,
)

__all__ = [
    "DEFAULT_PROMETHEUS_TIMEOUT",
    "DEFAULT_REDIS_TIMEOUT",
    "DEFAULT_TEMPORAL_TIMEOUT",
    "RUNNING_FILTER",
    "PrometheusCollector",
    "PrometheusQueryError",
    "RedisListLengthCollector",
    "TemporalCollector",
]
