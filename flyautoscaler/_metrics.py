"""Prometheus series of a reconciler pool (prometheus-client, on a given registry).

Nothing is registered at import time: :meth:`ReconcilerPool.register_prom_metrics`
registers one custom collector that reads the pool's counters when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from flyautoscaler._stats import ReconcilerStats
from flyautoscaler._status import AppStatus

__all__ = ["PoolCollector", "register_prom_metrics"]

# Upstream's series (exact names and labels, untyped so no "_total" is added),
# plus the create/destroy counters upstream collected but never exported:
# name -> (help, {status label value: stats counter}).
_STATUS_SERIES: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "fas_machine_start_count": (
        "Machines started (ok) and failed start calls (failed).",
        {"ok": "machine_started", "failed": "machine_start_failed"},
    ),
    "fas_machine_stop_count": (
        "Machines stopped (ok) and failed stop calls (failed).",
        {"ok": "machine_stopped", "failed": "machine_stop_failed"},
    ),
    "fas_machine_create_count": (
        "Machines created (ok) and failed create calls (failed).",
        {"ok": "machine_created", "failed": "machine_create_failed"},
    ),
    "fas_machine_destroy_count": (
        "Machines destroyed (ok) and failed destroy calls (failed).",
        {"ok": "machine_destroyed", "failed": "machine_destroy_failed"},
    ),
    "fas_reconcile_count": (
        "Reconcile passes by outcome: create, destroy, start, stop, no_scale.",
        {
            "create": "bulk_create",
            "destroy": "bulk_destroy",
            "start": "bulk_start",
            "stop": "bulk_stop",
            "no_scale": "no_scale",
        },
    ),
}


class PoolView(Protocol):
    """What the series are read from: a pool's counters and its apps' status."""

    @property
    def stats(self) -> ReconcilerStats:
        """The counters shared by the pool's reconcilers."""
        ...

    def app_status(self) -> dict[str, AppStatus]:
        """A copy of each app's status, by name."""
        ...


class PoolCollector(Collector):
    """Exposes a :class:`ReconcilerPool`'s counters and per-app state."""

    def __init__(self, pool: PoolView) -> None:
        self._pool = pool

    def describe(self) -> Iterator[Metric]:
        """Yield every family without samples (for duplicate detection)."""
        yield from self._families(with_samples=False)

    def collect(self) -> Iterator[Metric]:
        """Yield every family with the pool's current values."""
        yield from self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:  # noqa: C901 - one flat list of series
        stats = self._pool.stats.snapshot() if with_samples else {}
        apps = self._pool.app_status() if with_samples else {}

        for name, (help_text, by_status) in _STATUS_SERIES.items():
            family = UnknownMetricFamily(name, help_text, labels=["status"])
            for status, counter in by_status.items():
                if with_samples:
                    family.add_metric([status], float(stats[counter]))
            yield family

        yield from _lease_families(stats, apps, with_samples=with_samples)

        managed = GaugeMetricFamily("fas_apps", "Apps under management.")
        if with_samples:
            managed.add_metric([], float(len(apps)))
        yield managed

        passes = CounterMetricFamily(
            "fas_app_reconcile_passes", "Reconcile passes run, per app.", labels=["app"]
        )
        skipped = CounterMetricFamily(
            "fas_app_reconcile_skipped",
            "Passes skipped because a deploy was running, per app.",
            labels=["app"],
        )
        errors = CounterMetricFamily(
            "fas_app_reconcile_errors",
            "Failed passes per app and kind (release, collect, expression, api, "
            "action, timeout, reconcile, internal).",
            labels=["app", "kind"],
        )
        duration = SummaryMetricFamily(
            "fas_app_reconcile_duration_seconds",
            "Time spent in reconcile passes, per app.",
            labels=["app"],
        )
        last_duration = GaugeMetricFamily(
            "fas_app_reconcile_last_duration_seconds",
            "Duration of the last pass, per app.",
            labels=["app"],
        )
        lag = GaugeMetricFamily(
            "fas_app_reconcile_lag_seconds",
            "How late the last pass started after it was due, per app.",
            labels=["app"],
        )
        values = GaugeMetricFamily(
            "fas_app_metric_value",
            "Last collected value of each metric, per app.",
            labels=["app", "metric"],
        )
        targets = GaugeMetricFamily(
            "fas_app_target_machines",
            "Target Machine counts of the last pass (unset bounds are absent).",
            labels=["app", "kind", "bound"],
        )
        current = GaugeMetricFamily(
            "fas_app_current_machines",
            "Created and started Machines of the watched group, as last listed.",
            labels=["app", "kind"],
        )
        failing = GaugeMetricFamily(
            "fas_app_consecutive_failed_passes",
            "Failed passes in a row, per app.",
            labels=["app"],
        )
        for name, app in sorted(apps.items()):
            passes.add_metric([name], float(app.passes))
            skipped.add_metric([name], float(app.skipped))
            for kind, count in app.errors.items():
                errors.add_metric([name, kind], float(count))
            duration.add_metric(
                [name], count_value=app.passes, sum_value=app.duration_sum
            )
            last_duration.add_metric([name], app.last_duration)
            lag.add_metric([name], app.last_lag)
            failing.add_metric([name], float(app.consecutive_failures))
            for metric, value in sorted(app.metrics.items()):
                values.add_metric([name, metric], value)
            result = app.last_result
            if result is None:
                continue
            bounds = {
                ("created", "min"): result.min_created,
                ("created", "max"): result.max_created,
                ("started", "min"): result.min_started,
                ("started", "max"): result.max_started,
            }
            for (kind, bound), target in bounds.items():
                if target is not None:
                    targets.add_metric([name, kind, bound], float(target))
            current.add_metric([name, "created"], float(result.created_count))
            current.add_metric([name, "started"], float(result.started_count))
        yield from (passes, skipped, errors, duration, last_duration, lag)
        yield from (values, targets, current, failing)


def register_prom_metrics(pool: PoolView, registry: CollectorRegistry) -> PoolCollector:
    """Register *pool*'s series on *registry* and return the collector.

    Raises:
        ValueError: The registry already has these series (registered twice).
    """
    collector = PoolCollector(pool)
    registry.register(collector)
    return collector


def _lease_families(
    stats: Mapping[str, int],
    apps: Mapping[str, AppStatus],
    *,
    with_samples: bool,
) -> Iterator[Metric]:
    """Yield the series of Machine leases and of replicas' app ownership."""
    leased = CounterMetricFamily(
        "fas_machine_lease_skipped",
        "Machine actions not made because someone else held the Machine's "
        "lease (a deploy, say).",
    )
    if with_samples:
        leased.add_metric([], float(stats["machine_lease_skipped"]))
    yield leased
    owned = GaugeMetricFamily(
        "fas_app_owned",
        "With replicas coordinating: 1 for each app this replica owns, 0 for "
        "the others'.",
        labels=["app"],
    )
    for name in sorted(apps):
        if (mine := apps[name].owned) is not None:
            owned.add_metric([name], float(mine))
    yield owned
