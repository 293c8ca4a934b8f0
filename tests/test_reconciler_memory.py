"""Reconciler passes with memory: the new settings through the fakes, clock injected."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler.testing import CallableCollector, FakeFlapsClient, StaticCollector


class Clock:
    """A clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fleet_of(started: int = 0, stopped: int = 0) -> FakeFlapsClient:
    """A fake app with *started* then *stopped* Machines, ids 01, 02, ..."""
    machines = [machine(f"{i:02d}", "started") for i in range(1, started + 1)]
    machines += [
        machine(f"{i:02d}", "stopped")
        for i in range(started + 1, started + stopped + 1)
    ]
    return FakeFlapsClient(machines)


def started_count(client: FakeFlapsClient) -> int:
    """How many of the app's Machines are started."""
    return sum(1 for m in client.machines if m.state == "started")


class Load:
    """A metric whose value a test sets, or makes fail."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.failing = False

    def __call__(self, app_name: str) -> float:
        if self.failing:
            raise ConnectionError("prometheus is down")
        return self.value


def reconciler(
    client: FakeFlapsClient, load: Load, clock: Clock, **fields: object
) -> fas.Reconciler:
    """A reconciler scaling started Machines to ``ceil(jobs / 5)``, min = max."""
    r = fas.Reconciler(
        client=client,
        app_name="my-app",
        min_started_machine_n="ceil(jobs / 5)",
        max_started_machine_n="ceil(jobs / 5)",
        collectors=[CallableCollector("jobs", load)],
        clock=clock,
    )
    for name, value in fields.items():
        setattr(r, name, value)
    r.validate()
    return r


def run(r: fas.Reconciler) -> fas.ReconcileResult:
    """One pass as the pool runs it: collect, then reconcile with the collection."""
    return r.reconcile(metrics=r.collect())


# --- stabilization -----------------------------------------------------------------


def test_scale_down_window_keeps_machines_through_a_dip():
    """A 2-minute dip stops nothing with a 5-minute window; a lasting drop does."""
    client, load, clock = fleet_of(started=10), Load(50), Clock()
    r = reconciler(client, load, clock, scale_down_stabilization=300)
    run(r)
    load.value = 10  # wants 2
    for _ in range(8):  # 2 minutes of 15 s passes
        clock.now += 15
        result = run(r)
        assert result.stopped == ()
        assert result.rules == ("scale_down_stabilization",)
        assert result.raw_targets.max_started == 2
        assert result.max_started == 10
    assert started_count(client) == 10
    clock.now += 300 - 8 * 15 + 1  # the 10 computed first is out of the window
    result = run(r)
    assert len(result.stopped) == 8
    assert started_count(client) == 2


def test_scale_down_window_does_not_delay_scale_up():
    """A rise right after a drop is acted on at once."""
    client, load, clock = fleet_of(started=2, stopped=8), Load(10), Clock()
    r = reconciler(client, load, clock, scale_down_stabilization=300)
    run(r)
    load.value = 50
    clock.now += 15
    assert len(run(r).started) == 8


def test_scale_up_window_ignores_a_short_spike():
    """A 30 s spike under a 1-minute scale-up window starts nothing."""
    client, load, clock = fleet_of(started=1, stopped=5), Load(5), Clock()
    r = reconciler(client, load, clock, scale_up_stabilization=60)
    run(r)
    load.value = 30
    clock.now += 15
    assert run(r).started == ()
    clock.now += 15
    assert run(r).started == ()
    load.value = 5
    clock.now += 15
    assert run(r).started == ()
    assert started_count(client) == 1


def test_windows_are_kept_per_reconciler():
    """Two apps' reconcilers do not share their memory."""
    clock = Clock()
    a = reconciler(fleet_of(started=6), Load(30), clock, scale_down_stabilization=300)
    b_client = fleet_of(started=6)
    b = reconciler(b_client, Load(5), clock, scale_down_stabilization=300)
    run(a)
    clock.now += 15
    assert len(run(b).stopped) == 5  # b never computed 6


# --- step limits -------------------------------------------------------------------


def test_step_limit_reaches_the_target_over_several_passes():
    """10 missing, step 4: 4, 4, then 2 Machines created."""
    client = FakeFlapsClient([machine("1", "started")])
    r = fas.Reconciler(
        client=client,
        app_name="my-app",
        min_created_machine_n="11",
        max_scale_up_step=4,
    )
    assert [len(r.reconcile().created) for _ in range(4)] == [4, 4, 2, 0]


def test_percent_step_limit_on_stops():
    """50% of 8 started: 4 stopped in the first pass, then 2, then 1."""
    client, load, clock = fleet_of(started=8), Load(5), Clock()
    r = reconciler(client, load, clock, max_scale_down_step="50%")
    assert [len(run(r).stopped) for _ in range(4)] == [4, 2, 1, 0]
    assert started_count(client) == 1


# --- current counts in expressions -------------------------------------------------


def test_expressions_see_the_current_counts():
    """HPA's rule: ceil(started * cpu / 0.6) with 3 started at 90% CPU wants 5."""
    client = fleet_of(started=3, stopped=4)
    r = fas.Reconciler(
        client=client,
        app_name="my-app",
        min_started_machine_n="ceil(started_machine_count * cpu / 0.6)",
        max_started_machine_n="ceil(started_machine_count * cpu / 0.6)",
        min_created_machine_n="created_machine_count",
        collectors=[StaticCollector("cpu", 0.9)],
    )
    r.validate()
    result = run(r)
    assert (result.min_started, result.max_started) == (5, 5)
    assert result.min_created == 7
    assert len(result.started) == 2


def test_counts_are_of_the_watched_group_as_listed():
    """Other groups and unreachable Machines are not counted; starting is started."""
    other = machine("9", "started")
    other = fas.Machine.from_api(
        {
            **other.to_api(),
            "config": {"image": "x", "metadata": {"fly_process_group": "w"}},
        }
    )
    client = FakeFlapsClient(
        [
            machine("1", "started"),
            machine("2", "starting"),
            machine("3", "stopped"),
            other,
            fas.Machine.from_api(
                {**machine("4", "started").to_api(), "host_status": "unreachable"}
            ),
        ]
    )
    r = fas.Reconciler(
        client=client,
        app_name="my-app",
        min_created_machine_n="created_machine_count * 10",
        min_started_machine_n="started_machine_count * 10",
    )
    result = r.reconcile(metrics={})
    assert result.raw_targets.min_created == 30
    assert result.raw_targets.min_started == 20


def test_a_collector_may_not_take_a_count_name():
    """validate() refuses a collector named created_machine_count, saying why."""
    r = fas.Reconciler(collectors=[StaticCollector("created_machine_count", 1)])
    with pytest.raises(fas.ConfigError, match="reserved"):
        r.validate()


def test_calc_methods_use_a_count_set_by_hand():
    """Outside a pass, a count name is a value like any other (set_value)."""
    r = fas.Reconciler(min_started_machine_n="started_machine_count + 1")
    r.set_value("started_machine_count", 4)
    assert r.calc_min_started_machine_n() == 5


# --- fallback ----------------------------------------------------------------------


def test_failed_metrics_hold_then_fall_back_then_recover(
    caplog: pytest.LogCaptureFixture,
):
    """fallback_after=2: two passes hold (raise), the third scales to the count."""
    caplog.set_level(logging.INFO, logger="flyautoscaler")
    client, load, clock = fleet_of(started=6), Load(30), Clock()
    r = reconciler(client, load, clock, fallback_after=2, fallback_started_machine_n=2)
    run(r)
    load.failing = True
    for _ in range(2):
        with pytest.raises(fas.MetricCollectionError, match="prometheus is down"):
            run(r)
    assert started_count(client) == 6
    result = run(r)
    assert result.fallback
    assert isinstance(result.fallback_error, fas.MetricCollectionError)
    assert result.rules == ("fallback",)
    assert "failed 3 passes in a row" in result.reasons[0].text
    assert result.raw_targets == fas.Targets()  # no expression gave them
    assert started_count(client) == 2
    assert run(r).fallback  # still falling back; logged once
    started_logs = [
        rec for rec in caplog.records if rec.msg == "reconcile.fallback_started"
    ]
    assert len(started_logs) == 1
    assert started_logs[0].failed_passes == 3  # type: ignore[attr-defined]
    load.failing = False
    recovered = run(r)
    assert not recovered.fallback
    assert started_count(client) == 6
    ended = [r for r in caplog.records if r.msg == "reconcile.fallback_ended"]
    assert len(ended) == 1


def test_failing_expression_counts_as_a_failed_pass():
    """An expression that cannot be evaluated falls back as failed metrics do."""
    client = fleet_of(started=1, stopped=3)
    r = fas.Reconciler(
        client=client,
        app_name="my-app",
        min_started_machine_n="jobs / 0 * 0",  # inf * 0: NaN
        collectors=[StaticCollector("jobs", 1)],
        fallback_after=1,
        fallback_started_machine_n=3,
    )
    with pytest.raises(fas.ExprNaNError):
        run(r)
    result = run(r)
    assert isinstance(result.fallback_error, fas.ExprNaNError)
    assert len(result.started) == 2


def test_without_fallback_a_failing_pass_always_holds():
    """The default: every failing pass raises and changes nothing."""
    client, load, clock = fleet_of(started=4), Load(0), Clock()
    r = reconciler(client, load, clock)
    load.failing = True
    for _ in range(10):
        with pytest.raises(fas.MetricCollectionError):
            run(r)
    assert started_count(client) == 4
    assert client.call_count("stop") == 0


def test_collect_metrics_failure_is_seen_by_the_next_reconcile():
    """The Go-style flow: collect_metrics() raised, reconcile() holds or falls back."""
    client, load, clock = fleet_of(started=4), Load(0), Clock()
    r = reconciler(client, load, clock, fallback_after=1, fallback_started_machine_n=1)
    load.failing = True
    for expected in (None, 1):
        with pytest.raises(fas.MetricCollectionError):
            r.collect_metrics()
        if expected is None:
            with pytest.raises(fas.MetricCollectionError):
                r.reconcile()
        else:
            assert r.reconcile().fallback
    assert started_count(client) == 1
    load.failing = False
    load.value = 15
    r.collect_metrics()
    assert not r.reconcile().fallback
    assert started_count(client) == 3


# --- suspend and the stop metric ---------------------------------------------------


def test_suspend_mode_suspends_and_resumes_first():
    """stop_mode suspend: scaled down by suspend; a later scale-up resumes them."""
    client, load, clock = fleet_of(started=4, stopped=1), Load(20), Clock()
    r = reconciler(client, load, clock, stop_mode="suspend")
    load.value = 5
    result = run(r)
    assert result.stopped == ("01", "02", "03")
    assert client.call_count("suspend") == 3
    assert client.call_count("stop") == 0
    assert {m.id: m.state for m in client.machines}["01"] == "suspended"
    load.value = 10
    assert run(r).started == ("01",)  # suspended before the stopped 05
    assert r.stats.machine_stopped == 3


def test_suspend_needs_a_client_that_can():
    """validate() names the client that has no suspend method."""

    class OldClient:
        def list(self, state: str = "") -> list[fas.Machine]:
            return []

    r = fas.Reconciler(client=OldClient(), stop_mode="suspend")  # type: ignore[arg-type]
    with pytest.raises(fas.ConfigError, match=r"OldClient.*suspend"):
        r.validate()


class Inflight:
    """A per-Machine metric: requests in flight by Machine id."""

    name = "inflight"

    def __init__(self, values: Mapping[str, float] | None) -> None:
        self.values = values
        self.calls = 0

    def collect_machine_metrics(self, app_name: str) -> Mapping[str, float]:
        self.calls += 1
        if self.values is None:
            raise TimeoutError("no answer")
        return self.values


def test_stop_metric_picks_the_idlest_machines():
    """The Machines with the fewest requests in flight are stopped first."""
    client, load, clock = fleet_of(started=4), Load(10), Clock()
    ranking = Inflight({"01": 7, "02": 0, "03": 3, "04": float("nan")})
    r = reconciler(client, load, clock, stop_metric_collector=ranking)
    result = run(r)
    assert result.stopped == ("02", "03")
    assert "stop_metric" in result.rules


def test_stop_metric_is_not_asked_when_nothing_stops():
    """No stop, no destroy of a started Machine: the collector is not called."""
    client, load, clock = fleet_of(started=2), Load(10), Clock()
    ranking = Inflight({})
    r = reconciler(client, load, clock, stop_metric_collector=ranking)
    run(r)
    assert ranking.calls == 0


def test_failed_stop_metric_keeps_the_default_order(caplog: pytest.LogCaptureFixture):
    """Collection failed: lowest id first, a warning, and a reason."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler")
    client, load, clock = fleet_of(started=3), Load(5), Clock()
    r = reconciler(client, load, clock, stop_metric_collector=Inflight(None))
    result = run(r)
    assert result.stopped == ("01", "02")
    assert "stop_metric_unavailable" in result.rules
    warned = [r.msg for r in caplog.records if r.msg == "reconcile.stop_metric_failed"]
    assert warned == ["reconcile.stop_metric_failed"]


# --- explained ---------------------------------------------------------------------


def test_explain_says_what_and_why(caplog: pytest.LogCaptureFixture):
    """The result, its explain() text and the pass's log line carry the reasons."""
    caplog.set_level(logging.DEBUG, logger="flyautoscaler")
    client, load, clock = fleet_of(started=10), Load(50), Clock()
    r = reconciler(client, load, clock, scale_down_stabilization=300)
    run(r)
    load.value = 20
    clock.now += 15
    result = run(r)
    text = result.explain()
    assert text.splitlines() == [
        "my-app: 10 created, 10 started when listed",
        "targets: created any, started 4..10",
        "from the expressions: created any, started 4",
        "- scale-down stabilization held max started at 10 (raw 4, 5m window)",
        "actions: none",
    ]
    line = [rec for rec in caplog.records if rec.msg == "reconcile.pass"][-1]
    assert line.raw_target["started"] == {"min": 4, "max": 4}  # type: ignore[attr-defined]
    assert line.rules == ["scale_down_stabilization"]  # type: ignore[attr-defined]
    assert line.reasons == [  # type: ignore[attr-defined]
        "scale-down stabilization held max started at 10 (raw 4, 5m window)"
    ]


def test_defaults_keep_the_go_behaviour():
    """No new setting: every pass acts on its own sample, as the Go original."""
    client, load, clock = fleet_of(started=10), Load(50), Clock()
    r = reconciler(client, load, clock)
    run(r)
    load.value = 10
    clock.now += 15
    result = run(r)
    assert len(result.stopped) == 8
    assert result.reasons == ()
    assert result.raw_targets == result.targets
