"""Reconciler: the Go suite's scenarios, and every rule of one pass."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import Iterator

import pytest

import flyautoscaler as fas
from factories import IMAGE_REF, machine
from flyautoscaler.testing import CallableCollector, FakeFlapsClient, StaticCollector

# The max_parallel_actions the module's tests run with (None: the default).
PARALLELISM: list[int | None] = [None]


@pytest.fixture(
    autouse=True, scope="module", params=[None, 1], ids=["default", "sequential"]
)
def parallelism(request: pytest.FixtureRequest) -> Iterator[int | None]:
    """Run every test with the default parallel actions, and one at a time."""
    PARALLELISM[0] = request.param
    yield request.param
    PARALLELISM[0] = None


def reconciler(client: FakeFlapsClient, **fields: object) -> fas.Reconciler:
    """Return a Reconciler over *client* with *fields* set."""
    r = fas.Reconciler(client=client, app_name="my-app")
    if PARALLELISM[0] is not None:
        r.max_parallel_actions = PARALLELISM[0]
    for name, value in fields.items():
        setattr(r, name, value)
    return r


def ids_of(client: FakeFlapsClient, method: str) -> list[str]:
    """Return the Machine ids *method* was called with, in order."""
    out = []
    for call in client.calls:
        if call.method != method:
            continue
        arg = call.args[0]
        out.append(arg if isinstance(arg, str) else arg.id)  # type: ignore[attr-defined]
    return out


def states(client: FakeFlapsClient) -> dict[str, str]:
    """Return each Machine's state by id."""
    return {m.id: m.state for m in client.machines}


# --- the Go suite (reconciler_test.go), translated ------------------------------


def test_value_set_and_missing():
    """set_value stores a float; value of an unknown metric is None."""
    r = fas.Reconciler()
    r.set_value("foo", 100)
    assert r.value("foo") == 100.0
    assert r.value("bar") is None


def test_go_no_scale():
    """Target equal to the started count starts nothing and counts no_scale."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "stopped")])
    r = reconciler(client, min_started_machine_n="1", max_started_machine_n="2")
    result = r.reconcile()
    assert client.call_count("start") == 0
    assert r.stats.no_scale == 1
    assert result.ok
    assert not result.scaled


def test_start_step_without_candidates_counts_only_bulk_start():
    """A start step with nothing to start counts bulk_start, not no_scale (as Go)."""
    client = FakeFlapsClient([machine("1", "started")])
    r = reconciler(client, min_started_machine_n="3")
    result = r.reconcile()
    assert result.started == ()
    assert r.stats.bulk_start == 1
    assert r.stats.no_scale == 0


def test_go_create_ok():
    """Below the min created count, Machines are cloned from the started one."""
    client = FakeFlapsClient(
        [
            machine("1", "started", region="iad", metadata={"foo": "bar"}),
            machine("2", "stopped", region="den", metadata={"baz": "bat"}),
        ]
    )
    r = reconciler(client, min_created_machine_n="4", max_created_machine_n="4")
    result = r.reconcile()
    launches = [c.args[0] for c in client.calls if c.method == "launch"]
    assert len(launches) == 2
    for launch in launches:
        assert isinstance(launch, fas.LaunchMachineInput)
        assert launch.config.metadata is not None
        assert launch.config.metadata["foo"] == "bar"
    assert len(result.created) == 2
    assert r.stats.bulk_create == 1
    assert r.stats.machine_created == 2
    assert r.stats.machine_create_failed == 0


def test_go_create_no_machine_available():
    """Scale-up with no Machine to clone raises, without any launch."""
    client = FakeFlapsClient([])
    r = reconciler(client, min_created_machine_n="1")
    with pytest.raises(
        fas.NoMachineToCloneError, match="no machine available to clone"
    ):
        r.reconcile()
    assert client.call_count("launch") == 0


def test_go_destroy_ok():
    """Above the max created count, stopped Machines are destroyed first."""
    client = FakeFlapsClient(
        [
            machine("1", "started", region="iad"),
            machine("2", "stopped", region="den"),
            machine("3", "stopped", region="iad"),
            machine("4", "stopped", region="mad"),
        ]
    )
    r = reconciler(client, min_created_machine_n="2", max_created_machine_n="2")
    result = r.reconcile()
    assert ids_of(client, "destroy") == ["2", "3"]
    assert result.destroyed == ("2", "3")
    assert r.stats.bulk_destroy == 1
    assert r.stats.machine_destroyed == 2
    assert r.stats.machine_destroy_failed == 0


def test_go_destroy_attempt_scale_to_zero():
    """A max created count of 0 still leaves one Machine (the started one)."""
    client = FakeFlapsClient(
        [
            machine("1", "stopped"),
            machine("2", "stopped"),
            machine("3", "started"),
            machine("4", "created"),
        ]
    )
    r = reconciler(client, max_created_machine_n="0")
    r.reconcile()
    assert r.stats.machine_destroyed == 3
    assert r.stats.machine_destroy_failed == 0
    assert states(client) == {"3": "started"}


def test_go_start_ok():
    """Below the min started count, stopped Machines start in id order."""
    client = FakeFlapsClient(
        [
            machine("1", "started"),
            machine("2", "stopped"),
            machine("3", "stopped"),
            machine("4", "stopped"),
        ]
    )
    r = reconciler(client, min_started_machine_n="foo + 2")
    r.max_started_machine_n = r.min_started_machine_n
    r.set_value("foo", 1.0)
    r.reconcile()
    assert ids_of(client, "start") == ["2", "3"]
    assert r.stats.bulk_start == 1
    assert r.stats.machine_started == 2
    assert r.stats.machine_start_failed == 0


def test_go_start_failed_moves_on():
    """A failed start is counted and the next candidate is tried."""
    client = FakeFlapsClient([machine(str(i), "stopped") for i in range(1, 5)])
    client.fail("start", key="2")
    r = reconciler(client, min_started_machine_n="2", max_started_machine_n="2")
    result = r.reconcile()
    assert ids_of(client, "start") == ["1", "2", "3"]
    assert r.stats.bulk_start == 1
    assert r.stats.machine_started == 2
    assert r.stats.machine_start_failed == 1
    assert [(f.action, f.machine_id) for f in result.failures] == [("start", "2")]
    assert not result.ok


def test_go_stop_ok():
    """Above the max started count, started Machines stop in id order."""
    client = FakeFlapsClient(
        [
            machine("1", "started"),
            machine("2", "started"),
            machine("3", "started"),
            machine("4", "stopped"),
        ]
    )
    r = reconciler(client, min_started_machine_n="1", max_started_machine_n="1")
    r.reconcile()
    assert ids_of(client, "stop") == ["1", "2"]
    assert r.stats.bulk_stop == 1
    assert r.stats.machine_stopped == 2


def test_go_stop_failed_moves_on():
    """A failed stop is counted and the next started Machine is stopped."""
    client = FakeFlapsClient(
        [
            machine("1", "started"),
            machine("2", "started"),
            machine("3", "started"),
            machine("4", "stopped"),
        ]
    )
    client.fail("stop", key="2")
    r = reconciler(client, min_started_machine_n="1", max_started_machine_n="1")
    result = r.reconcile()
    assert ids_of(client, "stop") == ["1", "2", "3"]
    assert r.stats.machine_stopped == 2
    assert r.stats.machine_stop_failed == 1
    assert result.stopped == ("1", "3")


# --- metrics ----------------------------------------------------------------------


def test_next_region_round_robin():
    """next_region cycles through regions; with none it returns ''."""
    r = fas.Reconciler(regions=["iad", "ord", "ams"])
    assert [r.next_region() for _ in range(5)] == ["iad", "ord", "ams", "iad", "ord"]
    assert fas.Reconciler().next_region() == ""


def test_collect_metrics_clears_old_values():
    """Each collection starts from an empty set of values."""
    r = fas.Reconciler(collectors=[StaticCollector("a", 1.0)])
    r.set_value("stale", 5.0)
    r.collect_metrics()
    assert r.value("a") == 1.0
    assert r.value("stale") is None


def test_collect_metrics_failure_names_the_collector():
    """A raising collector becomes MetricCollectionError naming it; others still run."""

    def boom(app: str) -> float:
        raise ConnectionError("redis down")

    good = StaticCollector("good", 3.0)
    r = fas.Reconciler(
        app_name="my-app", collectors=[CallableCollector("queue_depth", boom), good]
    )
    with pytest.raises(fas.MetricCollectionError, match="queue_depth") as info:
        r.collect_metrics()
    assert info.value.collector == "queue_depth"
    assert isinstance(info.value.__cause__, ConnectionError)
    assert r.value("good") == 3.0
    assert good.calls == ["my-app"]


def test_collect_metrics_rejects_non_numbers():
    """A collector returning something other than a number is a collection error."""
    r = fas.Reconciler(collectors=[CallableCollector("x", lambda app: "7")])  # type: ignore[arg-type,return-value]
    with pytest.raises(fas.MetricCollectionError, match="not a number"):
        r.collect_metrics()


def test_metric_collector_subclass():
    """A MetricCollector subclass with a class attribute name works."""

    class QueueDepth(fas.MetricCollector):
        name = "queue_depth"

        def collect_metric(self, app_name: str) -> float:
            return 42.0 if app_name == "my-app" else 0.0

    r = fas.Reconciler(app_name="my-app", collectors=[QueueDepth()])
    r.min_started_machine_n = "queue_depth / 2"
    r.validate()
    r.collect_metrics()
    assert r.calc_min_started_machine_n() == 21


# --- targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "source", "expected"),
    [
        ("min_created_machine_n", "0", 1),
        ("max_created_machine_n", "-5", 1),
        ("min_created_machine_n", "3", 3),
        ("min_started_machine_n", "0", 0),
        ("max_started_machine_n", "-5", 0),
        ("max_started_machine_n", "2.5", 3),
    ],
)
def test_calc_clamps(attr: str, source: str, expected: int):
    """Created targets are at least 1, started targets at least 0."""
    r = fas.Reconciler()
    setattr(r, attr, source)
    assert getattr(r, "calc_" + attr)() == expected


def test_calc_unset_is_none():
    """An empty expression is unset: None, not 0."""
    r = fas.Reconciler()
    assert r.calc_min_created_machine_n() is None
    assert r.calc_max_started_machine_n() is None


def test_calc_error_says_which_count():
    """An expression error carries a note naming the count it computes."""
    r = fas.Reconciler(max_started_machine_n="x + 1")
    with pytest.raises(fas.ExpressionError) as info:
        r.calc_max_started_machine_n()
    assert "max started machine count" in "".join(info.value.__notes__)


def test_validate_rejects_unknown_metric():
    """validate() fails on a metric name no collector provides, naming it."""
    r = fas.Reconciler(
        collectors=[StaticCollector("queue_depth")],
        min_started_machine_n="queue_dept / 10",
    )
    with pytest.raises(fas.ExpressionError, match="queue_dept"):
        r.validate()


def test_validate_rejects_bad_initial_state():
    """validate() rejects an initial state other than started/stopped."""
    r = fas.Reconciler(initial_machine_state="suspended")
    with pytest.raises(fas.ConfigError, match="'started' or 'stopped'"):
        r.validate()


def test_reconcile_without_client():
    """A reconciler without a client raises a clear error."""
    with pytest.raises(fas.ReconcileError, match="no client"):
        fas.Reconciler(app_name="x").reconcile()


def test_list_failure_propagates():
    """If listing Machines fails, the pass raises that error and acts on nothing."""
    client = FakeFlapsClient([machine("1", "stopped")])
    client.fail("list", fas.FlapsServerError("down", status=503))
    r = reconciler(client, min_started_machine_n="1")
    with pytest.raises(fas.FlapsServerError):
        r.reconcile()
    assert client.call_count("start") == 0


# --- which Machines are watched -----------------------------------------------------


def test_other_groups_and_unreachable_are_untouched():
    """Only reachable Machines of the watched group are counted or acted on."""
    client = FakeFlapsClient(
        [
            machine("1", "stopped", group="worker"),
            machine("2", "stopped", host_status="unreachable"),
            machine("3", "stopped"),
            machine("4", "stopped", group=None),
            machine("5", "stopped", group=None, metadata={"process_group": "app"}),
        ]
    )
    r = reconciler(client, min_started_machine_n="10")
    result = r.reconcile()
    assert result.started == ("3", "4", "5")
    assert states(client)["1"] == "stopped"
    assert states(client)["2"] == "stopped"


def test_watches_another_group():
    """process_group selects which group is scaled."""
    client = FakeFlapsClient(
        [machine("1", "stopped", group="worker"), machine("2", "stopped")]
    )
    r = reconciler(client, process_group="worker", min_started_machine_n="5")
    assert r.reconcile().started == ("1",)


def test_starting_machines_count_as_started():
    """Machines already starting count toward the started target (no overshoot)."""
    client = FakeFlapsClient(
        [machine("1", "starting"), machine("2", "stopped"), machine("3", "stopped")]
    )
    r = reconciler(client, min_started_machine_n="2")
    assert r.reconcile().started == ("2",)


def test_start_prefers_suspended_then_stopped_then_created():
    """Start candidates: suspended (a resume is fastest), stopped, created, by id."""
    client = FakeFlapsClient(
        [
            machine("1", "created"),
            machine("2", "suspended"),
            machine("3", "stopped"),
            machine("4", "stopped"),
        ]
    )
    r = reconciler(client, min_started_machine_n="4")
    assert r.reconcile().started == ("2", "3", "4", "1")


def test_destroying_machines_are_not_counted():
    """A Machine being destroyed does not count toward the created count."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "destroying")])
    r = reconciler(client, min_created_machine_n="2")
    result = r.reconcile()
    assert result.created_count == 1
    assert len(result.created) == 1


# --- create -------------------------------------------------------------------------


def test_clone_prefers_started_and_copies_config():
    """The clone source is a started Machine; its config is copied, image pinned."""
    stopped = machine("1", "stopped", metadata={"role": "stopped-one"})
    started = machine("2", "started", region="ord", metadata={"role": "started-one"})
    client = FakeFlapsClient([stopped, started])
    r = reconciler(client, min_created_machine_n="3")
    r.reconcile()
    launch = next(c.args[0] for c in client.calls if c.method == "launch")
    assert isinstance(launch, fas.LaunchMachineInput)
    assert launch.config.metadata == {"role": "started-one", "fly_process_group": "app"}
    assert launch.config.image == IMAGE_REF.full()
    assert launch.config.extra == started.config.extra  # type: ignore[union-attr]
    assert launch.region == "ord"
    assert not launch.skip_launch
    # The listed Machine's config is never changed.
    assert started.config is not None
    assert started.config.image == "registry.fly.io/my-app:old"


def test_clone_falls_back_to_config_image():
    """Without an image_ref, the clone keeps the source config's image."""
    source = fas.Machine(
        id="1",
        state="started",
        host_status="ok",
        config=fas.MachineConfig(image="nginx:1"),
    )
    client = FakeFlapsClient([source])
    reconciler(client, min_created_machine_n="2").reconcile()
    launch = next(c.args[0] for c in client.calls if c.method == "launch")
    assert launch.config.image == "nginx:1"  # type: ignore[attr-defined]


def test_clone_needs_a_config():
    """Machines without a config cannot be cloned."""
    client = FakeFlapsClient([machine("1", "started", with_config=False)])
    with pytest.raises(fas.NoMachineToCloneError):
        reconciler(client, min_created_machine_n="2").reconcile()


def test_create_regions_round_robin_and_initial_state():
    """New Machines go round-robin over regions; 'stopped' means skip_launch."""
    client = FakeFlapsClient([machine("1", "started")])
    r = reconciler(
        client,
        min_created_machine_n="4",
        regions=["ams", "syd"],
        initial_machine_state="stopped",
    )
    result = r.reconcile()
    new = [client.machine(i) for i in result.created]
    assert [m.region for m in new] == ["ams", "syd", "ams"]
    assert {m.state for m in new} == {"created"}


def test_create_gives_up_after_bounded_attempts():
    """Launches that always fail stop after max_create_attempts in a row."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail("launch", fas.FlapsServerError("no capacity", status=503), times=None)
    r = reconciler(client, min_created_machine_n="5")
    result = r.reconcile()
    assert client.call_count("launch") == fas.Reconciler().max_create_attempts == 3
    assert result.gave_up_creating
    assert not result.ok
    assert r.stats.machine_create_failed == 3
    assert len(result.failures) == 3


def test_refused_create_is_tried_again():
    """A launch Fly refused (4xx) is tried again for the same missing Machine."""
    client = FakeFlapsClient([machine("1", "started")])
    refused = fas.FlapsError(
        "no capacity", status=412, error_status="insufficient_capacity"
    )
    client.fail("launch", refused, times=2)
    r = reconciler(client, min_created_machine_n="3")
    result = r.reconcile()
    assert len(result.created) == 2
    assert client.call_count("launch") == 4
    assert not result.gave_up_creating
    assert r.stats.machine_create_failed == 2


def test_never_sent_create_is_tried_again():
    """A launch whose connection never opened is tried again in the same pass."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail("launch", fas.FlapsTransportError("refused", sent=False))
    result = reconciler(client, min_created_machine_n="2").reconcile()
    assert len(result.created) == 1
    assert client.call_count("launch") == 2


@pytest.mark.parametrize(
    "error",
    [
        fas.FlapsServerError("bad gateway", status=502),
        fas.FlapsTransportError("read timed out"),
        fas.FlapsError("injected", status=500),
        RuntimeError("a client of your own failed"),
    ],
    ids=["5xx", "lost answer", "500", "unknown"],
)
def test_create_that_may_have_reached_fly_is_not_sent_again(error):
    """A launch that may have created its Machine is never resent in the pass."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail("launch", error)
    r = reconciler(client, min_created_machine_n="2")
    result = r.reconcile()
    assert client.call_count("launch") == 1
    assert result.created == ()
    assert [f.action for f in result.failures] == ["create"]
    assert not result.gave_up_creating


def test_huge_target_costs_only_the_actions_taken():
    """A target of 10**7 Machines allocates as much as the launches made."""
    launches = [0]

    def count(method: str, args: tuple[object, ...]) -> None:
        if method == "launch":
            launches[0] += 1

    client = FakeFlapsClient([machine("1", "started")], before_call=count)
    r = reconciler(
        client, min_created_machine_n="10000000", clock=lambda: float(launches[0])
    )
    tracemalloc.start()
    try:
        result = r.reconcile(deadline=5.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.timed_out
    assert 5 <= client.call_count("launch") <= 5 + 8  # the deadline, plus in flight
    assert peak < 2_000_000  # bytes; a list per missing Machine takes 80 MB


def test_created_machines_never_make_a_serving_machine_a_stop_victim():
    """Creates beyond max started are launched stopped; no serving Machine stops."""
    client = FakeFlapsClient([machine("1", "started")])
    r = reconciler(client, min_created_machine_n="3", max_started_machine_n="2")
    result = r.reconcile()
    assert len(result.created) == 2
    assert result.stopped == ()
    assert client.call_count("stop") == 0
    assert client.machine("1").state == "started"
    launched = [c.args[0] for c in client.calls if c.method == "launch"]
    assert [li.skip_launch for li in launched] == [False, True]  # type: ignore[attr-defined]
    assert client.count("started") == 2
    assert client.count("created") == 1


def test_created_machines_start_when_max_started_allows():
    """Without a max started count every create is launched started, as in Go."""
    client = FakeFlapsClient([machine("1", "started")])
    result = reconciler(client, min_created_machine_n="3").reconcile()
    assert len(result.created) == 2
    assert client.count("started") == 3


def test_create_then_start_in_one_pass():
    """A plan needing creates and starts does both in one pass."""
    client = FakeFlapsClient([machine("1", "stopped"), machine("2", "stopped")])
    r = reconciler(
        client,
        min_created_machine_n="10",
        max_created_machine_n="10",
        min_started_machine_n="10",
        max_started_machine_n="10",
        initial_machine_state="stopped",
    )
    result = r.reconcile()
    assert len(result.created) == 8
    assert len(result.started) == 10
    assert client.count("started") == 10
    assert r.stats.bulk_create == 1
    assert r.stats.bulk_start == 1


# --- destroy ------------------------------------------------------------------------


def test_destroy_never_removes_the_last_machine():
    """Whatever the target, one Machine of the group stays."""
    client = FakeFlapsClient([machine("1", "started")])
    r = reconciler(client, max_created_machine_n="0")
    result = r.reconcile()
    assert client.call_count("destroy") == 0
    assert result.destroyed == ()
    assert client.count() == 1


def test_destroy_order_and_kill():
    """Destroy takes failed, stopped, suspended, created, then running; with kill."""
    client = FakeFlapsClient(
        [
            machine("a", "started"),
            machine("b", "created"),
            machine("c", "suspended"),
            machine("d", "stopped"),
            machine("e", "failed"),
            machine("f", "launch_failed"),
        ]
    )
    r = reconciler(client, max_created_machine_n="1")
    result = r.reconcile()
    assert result.destroyed == ("e", "f", "d", "c", "b")
    assert all(
        c.args[0].kill  # type: ignore[attr-defined]
        for c in client.calls
        if c.method == "destroy"
    )


def test_destroy_failure_does_not_destroy_more():
    """A failed destroy counts toward the number asked: no extra Machine goes."""
    client = FakeFlapsClient([machine(str(i), "stopped") for i in range(1, 5)])
    client.fail("destroy", key="1")
    r = reconciler(client, max_created_machine_n="2")
    result = r.reconcile()
    assert ids_of(client, "destroy") == ["1", "2"]
    assert result.destroyed == ("2",)
    assert r.stats.machine_destroy_failed == 1
    assert client.count() == 3


# --- deadline, logging --------------------------------------------------------------


def test_deadline_stops_new_actions():
    """Once the deadline passes, no new action starts and the result says so."""
    now = [0.0]

    def tick(method: str, args: tuple[object, ...]) -> None:
        if method == "start":
            now[0] += 1.0

    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 6)], before_call=tick
    )
    # The clock moves only inside each call, as if the calls took turns: with
    # parallel actions all five would rightly start at 0, before the deadline
    # (tests/test_parallel.py checks the deadline under parallel actions).
    r = reconciler(
        client, min_started_machine_n="5", clock=lambda: now[0], max_parallel_actions=1
    )
    result = r.reconcile(deadline=2.0)
    assert result.started == ("1", "2")
    assert result.timed_out
    assert not result.ok
    assert client.call_count("start") == 2


def test_deadline_already_passed_bounds_create_loop():
    """With a past deadline and failing launches, the pass ends at once."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail("launch", times=None)
    r = reconciler(client, min_created_machine_n="50", clock=lambda: 10.0)
    result = r.reconcile(deadline=5.0)
    assert client.call_count("launch") == 0
    assert result.timed_out


def test_one_log_record_per_pass(caplog: pytest.LogCaptureFixture):
    """Each pass logs one reconcile.pass record with current and target counts."""
    caplog.set_level(logging.INFO, logger="flyautoscaler")
    client = FakeFlapsClient([machine("1", "started"), machine("2", "stopped")])
    r = reconciler(client, min_started_machine_n="2", max_started_machine_n="2")
    r.reconcile()
    passes = [rec for rec in caplog.records if rec.msg == "reconcile.pass"]
    assert len(passes) == 1
    record = passes[0]
    assert record.app == "my-app"  # type: ignore[attr-defined]
    assert record.current == {"created": 2, "started": 1}  # type: ignore[attr-defined]
    assert record.target["started"] == {"min": 2, "max": 2}  # type: ignore[attr-defined]


def test_failure_log_names_machine_and_hides_tokens(caplog: pytest.LogCaptureFixture):
    """A failed action is logged with app and Machine id, and no token."""
    caplog.set_level(logging.INFO, logger="flyautoscaler")
    client = FakeFlapsClient([machine("1", "stopped")])
    client.fail("start", RuntimeError("auth failed for Bearer s3cr3t-token"))
    r = reconciler(client, min_started_machine_n="1")
    result = r.reconcile()
    failed = [rec for rec in caplog.records if rec.msg == "machine.start_failed"]
    assert len(failed) == 1
    assert failed[0].machine_id == "1"  # type: ignore[attr-defined]
    assert failed[0].app == "my-app"  # type: ignore[attr-defined]
    assert "s3cr3t" not in failed[0].error  # type: ignore[attr-defined]
    assert "s3cr3t" not in str(result.failures[0])
    assert "s3cr3t" not in repr(result)
    assert "s3cr3t" not in caplog.text


def test_library_configures_no_handlers():
    """Importing flyautoscaler adds no logging handler."""
    assert logging.getLogger("flyautoscaler").handlers == []
    assert logging.getLogger("flyautoscaler.reconciler").handlers == []


def test_stats_shared_and_snapshot():
    """Two reconcilers may share one stats object; snapshot reads every counter."""
    stats = fas.ReconcilerStats()
    for app in ("a", "b"):
        client = FakeFlapsClient([machine("1", "started")], app_name=app)
        reconciler(client, stats=stats, min_started_machine_n="1").reconcile()
    assert stats.no_scale == 2
    assert stats.snapshot()["no_scale"] == 2
    assert set(stats.snapshot()) == set(fas.ReconcilerStats.FIELDS)
    with pytest.raises(ValueError, match="unknown counter"):
        stats.incr("bogus")


def test_inverted_band_min_wins():
    """When min is above max, the pass aims at min and does not flap."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "stopped")])
    r = reconciler(client, min_started_machine_n="2", max_started_machine_n="0")
    assert r.reconcile().started == ("2",)
    assert not r.reconcile().scaled


def test_result_names_the_rules_that_acted():
    """Each rule that changed a target or limited a step is in the result."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "stopped")])
    r = reconciler(client, min_started_machine_n="5", max_started_machine_n="0")
    result = r.reconcile()
    assert [reason.rule for reason in result.reasons] == [
        "min_above_max",
        "not_enough_to_start",
    ]
    assert str(result.reasons[1]) == (
        "only 1 of 4 can start: set a min created count to create more Machines"
    )
