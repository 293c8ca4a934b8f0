"""ReconcilerPool: scheduling, safety, lifecycle and metrics (against the fakes)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import flyautoscaler as fas
from factories import machine
from flyautoscaler.collectors import PrometheusCollector
from flyautoscaler.coordination import AppLease, InMemoryCoordinator, InMemoryStore
from flyautoscaler.fly import new_flaps_client_func
from flyautoscaler.testing import (
    CallableCollector,
    FakeFlapsClient,
    FakeFlyClient,
    FakeMachinesServer,
    StaticCollector,
)

WAIT = 20.0  # generous deadline for anything that should happen within a few passes
FAST = 0.005  # a reconcile interval that keeps passes coming


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll *predicate* until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.002)
    return predicate()


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    """The captured records of the log event *name*."""
    return [r for r in caplog.records if r.msg == name]


def settle(pool: fas.ReconcilerPool, passes: int = 3) -> None:
    """Wait until *passes* more passes have completed after this call."""
    assert pool.wait_for_passes(pool.pass_count + passes, WAIT)


class Hold:
    """A before_call hook that holds every call of *method* until released."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, method: str, args: tuple[object, ...]) -> None:
        """Hold a call of the method: signal ``entered``, wait for ``release``."""
        if method == self.method:
            self.entered.set()
            self.release.wait(WAIT)


def slow(seconds: float) -> Callable[[str, tuple[object, ...]], None]:
    """Return a before_call hook that makes every call take *seconds*."""
    pause = threading.Event()

    def hook(method: str, args: tuple[object, ...]) -> None:
        pause.wait(seconds)

    return hook


@pytest.fixture
def pools() -> Iterator[list[fas.ReconcilerPool]]:
    """Close every pool a test made, and check no worker thread is left."""
    made: list[fas.ReconcilerPool] = []
    yield made
    for pool in made:
        pool.close()
    assert pool_threads() == []


def pool_threads() -> list[str]:
    """The names of pool threads alive (a lone Reconciler's are not the pool's)."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("flyauto")
        and not t.name.startswith("flyautoscaler-action-")
    ]


def org_with_apps(*names: str, release: str | None = "complete") -> FakeFlyClient:
    """Return a FakeFlyClient with org 'myorg' holding *names*."""
    fly = FakeFlyClient()
    fly.add_organization("myorg", org_id="123")
    for name in names:
        fly.add_app(name, "myorg", release_status=release)
    return fly


def make_pool(
    pools: list[fas.ReconcilerPool],
    fly: FakeFlyClient | None,
    clients: dict[str, FakeFlapsClient] | Callable[[str], fas.FlapsClient],
    *,
    collectors: Callable[[], list[fas.MetricCollector]] = list,
    target: str = "",
    **fields: object,
) -> fas.ReconcilerPool:
    """Build a pool over the fakes; *target* sets min and max started."""

    def new_reconciler() -> fas.Reconciler:
        return fas.Reconciler(
            min_started_machine_n=target,
            max_started_machine_n=target,
            collectors=collectors(),
        )

    pool = fas.ReconcilerPool(fly, concurrency=fields.pop("concurrency", 1))  # type: ignore[arg-type]
    pool.new_flaps_client = (
        clients.__getitem__ if isinstance(clients, dict) else clients
    )
    pool.new_reconciler = new_reconciler
    pool.reconcile_interval = FAST
    for name, value in fields.items():
        setattr(pool, name, value)
    pools.append(pool)
    return pool


# --- the Go suite's pool scenario ---------------------------------------------------


def test_go_pool_scenario(pools):
    """Wildcard my-app-* in myorg: started count follows 0, 2, 4, 10 (capped), 0."""
    client = FakeFlapsClient([machine(str(i), "stopped") for i in range(1, 5)])
    fly = org_with_apps("other-app", "my-app-1")
    target = StaticCollector("target", 0.0)
    pool = make_pool(
        pools,
        fly,
        {"my-app-1": client},
        collectors=lambda: [target],
        target="target",
        app_name="my-app-*",
        organization_slug="myorg",
    )
    pool.open()
    for value, expected in [(0, 0), (2, 2), (4, 4), (10, 4), (0, 0)]:
        target.value = float(value)
        settle(pool)
        assert client.count("started") == expected, value
    assert pool.app_names() == ["my-app-1"]
    assert set(target.calls) == {"my-app-1"}


def test_single_app_needs_no_organization(pools):
    """A name without '*' is managed alone, without org look-ups."""
    client = FakeFlapsClient([machine("1", "stopped"), machine("2", "stopped")])
    fly = FakeFlyClient()
    pool = make_pool(pools, fly, {"my-app": client}, target="2", app_name="my-app")
    pool.open()
    assert wait_until(lambda: client.count("started") == 2)
    assert fly.call_count("get_organization_by_slug") == 0
    assert fly.call_count("get_app_current_release_machines") >= 1


def test_single_app_without_fly_client(pools):
    """Without a fly client there is no release gate; a single app still runs."""
    client = FakeFlapsClient([machine("1", "stopped")])
    pool = make_pool(pools, None, {"a": client}, target="1", app_name="a")
    pool.open()
    assert wait_until(lambda: client.count("started") == 1)


# --- safety -------------------------------------------------------------------------


def test_no_overlapping_passes_under_stress(pools):
    """One app, slow client, 4 workers, tiny interval: one pass in flight at most."""
    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 5)], before_call=slow(0.003)
    )
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def depth(app: str) -> float:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        threading.Event().wait(0.003)
        with lock:
            active["now"] -= 1
        return 2.0

    pool = make_pool(
        pools,
        org_with_apps("my-app-1"),
        {"my-app-1": client},
        collectors=lambda: [CallableCollector("depth", depth)],
        target="depth",
        app_name="my-app-*",
        organization_slug="myorg",
        concurrency=4,
        reconcile_interval=0.0001,
    )
    pool.open()
    settle(pool, 30)
    assert client.max_in_flight == 1
    assert active["max"] == 1


def test_release_gate_skips_running_deploys(pools):
    """An app whose current release is running is skipped until it completes."""
    client = FakeFlapsClient([machine("1", "stopped")])
    fly = org_with_apps("my-app-1", release="running")
    pool = make_pool(
        pools,
        fly,
        {"my-app-1": client},
        target="1",
        app_name="my-app-*",
        organization_slug="myorg",
    )
    pool.open()
    settle(pool, 5)
    assert client.call_count("list") == 0
    assert pool.app_status()["my-app-1"].skipped >= 5
    fly.set_release("my-app-1", "complete")
    assert wait_until(lambda: client.count("started") == 1)


def test_missing_release_is_not_an_error(pools):
    """An app without any release is reconciled normally."""
    client = FakeFlapsClient([machine("1", "stopped")])
    pool = make_pool(
        pools,
        org_with_apps("my-app-1", release=None),
        {"my-app-1": client},
        target="1",
        app_name="my-app-*",
        organization_slug="myorg",
    )
    pool.open()
    assert wait_until(lambda: client.count("started") == 1)
    assert pool.app_status()["my-app-1"].errors["release"] == 0


def test_release_lookup_failure_skips_and_counts(pools):
    """A failing release look-up skips the pass, counts it, and the worker lives on."""
    client = FakeFlapsClient([machine("1", "stopped")])
    fly = org_with_apps("my-app-1")
    fly.fail("get_app_current_release_machines", times=3)
    pool = make_pool(
        pools,
        fly,
        {"my-app-1": client},
        target="1",
        app_name="my-app-*",
        organization_slug="myorg",
    )
    pool.open()
    assert wait_until(lambda: client.count("started") == 1)
    assert pool.app_status()["my-app-1"].errors["release"] == 3


def test_failing_collector_does_not_affect_other_apps(pools, caplog):
    """A collector failing for one app is logged and counted; the other app scales."""
    caplog.set_level(logging.ERROR, logger="flyautoscaler")
    clients = {
        "my-app-a": FakeFlapsClient([machine("1", "stopped")]),
        "my-app-b": FakeFlapsClient([machine("1", "stopped")]),
    }

    def depth(app: str) -> float:
        if app == "my-app-a":
            raise ConnectionError("redis down")
        return 1.0

    pool = make_pool(
        pools,
        org_with_apps(*clients),
        clients,
        collectors=lambda: [CallableCollector("depth", depth)],
        target="depth",
        app_name="my-app-*",
        organization_slug="myorg",
        concurrency=2,
    )
    pool.open()
    assert wait_until(lambda: clients["my-app-b"].count("started") == 1)
    assert wait_until(lambda: pool.app_status()["my-app-a"].errors["collect"] >= 2)
    assert clients["my-app-a"].count("started") == 0
    failed = [r for r in caplog.records if r.msg == "pool.pass_failed"]
    assert failed
    assert {r.app for r in failed} == {"my-app-a"}  # type: ignore[attr-defined]
    assert all(r.kind == "collect" for r in failed)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda c: c.fail("list", times=None), "api"),
        (lambda c: c.fail("start", times=None), "action"),
    ],
)
def test_api_failures_are_counted(pools, setup, kind):
    """Failing Machines API calls are counted by kind; the worker keeps going."""
    client = FakeFlapsClient([machine("1", "stopped")])
    setup(client)
    pool = make_pool(pools, None, {"a": client}, target="1", app_name="a")
    pool.open()
    assert wait_until(lambda: pool.app_status()["a"].errors[kind] >= 3)


def test_expression_failure_is_counted(pools):
    """An expression failing at run time (NaN) is counted, not fatal."""
    client = FakeFlapsClient([machine("1", "stopped")])
    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [StaticCollector("x", float("nan"))],
        target="x",
        app_name="a",
    )
    pool.open()
    assert wait_until(lambda: pool.app_status()["a"].errors["expression"] >= 2)


def test_pass_timeout(pools):
    """A pass over its timeout starts no action and is reported as timed out."""
    client = FakeFlapsClient([machine("1", "stopped")])
    skew = [0.0]

    def clock() -> float:
        return time.monotonic() + skew[0]

    def depth(app: str) -> float:
        skew[0] += 100.0  # collecting takes "100 seconds"
        return 1.0

    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [CallableCollector("depth", depth)],
        target="depth",
        app_name="a",
        clock=clock,
        reconcile_timeout=30.0,
    )
    pool.open()
    assert wait_until(lambda: pool.app_status()["a"].errors["timeout"] >= 2)
    assert client.call_count("start") == 0


# --- the app list -------------------------------------------------------------------


def test_app_list_refresh_adds_and_removes_apps(pools):
    """Refreshing picks up new matching apps and drops deleted ones."""
    clients = {
        n: FakeFlapsClient([machine("1", "stopped")]) for n in ("my-app-1", "my-app-2")
    }
    fly = org_with_apps("my-app-1", "other")
    pool = make_pool(
        pools,
        fly,
        clients,
        target="1",
        app_name="my-app-*",
        organization_slug="myorg",
        app_list_refresh_interval=3600.0,
    )
    pool.open()
    assert wait_until(lambda: pool.app_names() == ["my-app-1"])
    fly.add_app("my-app-2", "myorg", release_status="complete")
    pool.refresh_app_list()
    assert pool.app_names() == ["my-app-1", "my-app-2"]
    assert wait_until(lambda: clients["my-app-2"].count("started") == 1)
    fly.remove_app("my-app-1")
    pool.refresh_app_list()
    assert pool.app_names() == ["my-app-2"]
    calls = clients["my-app-1"].call_count("list")
    settle(pool, 5)
    assert (
        clients["my-app-1"].call_count("list") <= calls + 1
    )  # at most the one in flight


def test_failed_refresh_keeps_the_list(pools, caplog):
    """A failing app-list look-up keeps the apps already managed."""
    caplog.set_level(logging.ERROR, logger="flyautoscaler")
    fly = org_with_apps("my-app-1")
    pool = make_pool(
        pools,
        fly,
        {"my-app-1": FakeFlapsClient([machine("1", "started")])},
        app_name="my-app-*",
        organization_slug="myorg",
        app_list_refresh_interval=3600.0,
    )
    pool.open()
    assert wait_until(lambda: pool.app_names() == ["my-app-1"])
    fly.fail("get_apps_for_organization")
    pool.refresh_app_list()
    assert pool.app_names() == ["my-app-1"]
    assert "pool.app_list_refresh_failed" in caplog.text


def test_one_app_client_failure_does_not_abort_refresh(pools):
    """An app whose client cannot be built is skipped; the others are managed."""
    good = FakeFlapsClient([machine("1", "started")])

    def new_client(name: str) -> fas.FlapsClient:
        if name == "my-app-bad":
            raise fas.FlapsError("no token for this app")
        return good

    pool = make_pool(
        pools,
        org_with_apps("my-app-bad", "my-app-good"),
        new_client,
        app_name="my-app-*",
        organization_slug="myorg",
        app_list_refresh_interval=3600.0,
    )
    pool.open()
    assert wait_until(lambda: pool.app_names() == ["my-app-good"])


def test_many_apps_are_served_fairly(pools):
    """With more apps than workers, every app gets passes and lag is observable."""
    names = [f"my-app-{i}" for i in range(12)]
    clients = {
        n: FakeFlapsClient([machine("1", "started")], before_call=slow(0.002))
        for n in names
    }
    pool = make_pool(
        pools,
        org_with_apps(*names),
        clients,
        app_name="my-app-*",
        organization_slug="myorg",
        concurrency=3,
        reconcile_interval=0.0001,
    )
    pool.open()
    settle(pool, 120)
    status = pool.app_status()
    passes = [s.passes for s in status.values()]
    assert len(passes) == 12
    # Longest-waiting app first: no app falls far behind the others.
    assert min(passes) >= 5
    assert min(passes) >= max(passes) / 2
    # The work exceeds the workers, so passes start late, and that shows.
    assert max(s.last_lag for s in status.values()) > 0


# --- lifecycle ----------------------------------------------------------------------


def test_open_twice_and_reopen_raise(pools):
    """Opening an open or closed pool raises a clear error."""
    pool = make_pool(pools, None, {"a": FakeFlapsClient()}, app_name="a")
    assert pool.state is fas.PoolState.NEW
    pool.open()
    assert pool.state is fas.PoolState.RUNNING
    with pytest.raises(RuntimeError, match="running"):
        pool.open()
    pool.close()
    assert pool.state is fas.PoolState.CLOSED
    with pytest.raises(RuntimeError, match="closed"):
        pool.open()
    pool.close()  # idempotent


def test_close_without_open(pools):
    """close() on a pool never opened is fine, and it cannot be opened after."""
    pool = make_pool(pools, None, {}, app_name="a")
    pool.close()
    pool.close()
    with pytest.raises(RuntimeError):
        pool.open()


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"app_name": ""}, fas.ConfigError, "app name required"),
        ({"app_name": "my-*"}, fas.ConfigError, "organization required"),
        (
            {"app_name": "a", "reconcile_interval": 0},
            fas.ConfigError,
            "reconcile_interval",
        ),
        ({"app_name": "a", "target": "typo + 1"}, fas.ExpressionError, "typo"),
        (
            {"app_name": "a", "reconcile_interval": 99999999999 * 3600.0},
            fas.ConfigError,
            "reconcile_interval must be at most 24h0m0s, got 99999999999h0m0s",
        ),
        (
            {"app_name": "a", "reconcile_timeout": math.nan},
            fas.ConfigError,
            "reconcile_timeout",
        ),
        ({"app_name": "a", "close_timeout": math.inf}, fas.ConfigError, "close"),
        (
            {
                "app_name": "my-*",
                "organization_slug": "o",
                "app_list_refresh_interval": 1e12,
            },
            fas.ConfigError,
            "app_list_refresh_interval must be",
        ),
        (
            {"app_name": "my-*", "organization_slug": "o", "concurrency": 2000},
            fas.ConfigError,
            "concurrency must be at most 256, got 2000",
        ),
        ({"app_name": "My_App"}, fas.ConfigError, "app_name must be a Fly app name"),
        ({"app_name": "a" * 64}, fas.ConfigError, "at most 63 characters"),
        (
            {"app_name": "a", "target": "max()"},
            fas.ExpressionError,
            r"max\(\) takes at least 1 argument, got 0",
        ),
    ],
)
def test_open_validates(pools, fields, error, match):
    """open() refuses a bad configuration, and close() after that is safe."""
    pool = make_pool(pools, FakeFlyClient(), {"a": FakeFlapsClient()}, **fields)
    with pytest.raises(error, match=match):
        pool.open()
    assert pool.state is fas.PoolState.NEW
    pool.close()


def test_open_needs_a_flaps_client_constructor(pools):
    """Without new_flaps_client, open() says what is missing."""
    pool = fas.ReconcilerPool(None)
    pool.app_name = "a"
    pools.append(pool)
    with pytest.raises(fas.ConfigError, match="flaps client constructor"):
        pool.open()


def test_context_manager(pools):
    """'with pool:' opens and closes it."""
    client = FakeFlapsClient([machine("1", "stopped")])
    pool = make_pool(pools, None, {"a": client}, target="1", app_name="a")
    with pool:
        assert wait_until(lambda: client.count("started") == 1)
    assert pool.state is fas.PoolState.CLOSED


def test_close_wakes_idle_workers_at_once(pools):
    """close() returns promptly even with a long interval (workers wait on an event)."""
    pool = make_pool(
        pools,
        org_with_apps("my-app-1"),
        {"my-app-1": FakeFlapsClient([machine("1", "started")])},
        app_name="my-app-*",
        organization_slug="myorg",
        concurrency=4,
        reconcile_interval=3600.0,
    )
    pool.open()
    assert pool.wait_for_passes(1, WAIT)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < WAIT / 4


def test_close_while_a_pass_runs(pools):
    """close() waits for the pass in flight, which starts no new action."""
    hold = Hold("start")
    entered, release = hold.entered, hold.release
    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 6)], before_call=hold
    )
    pool = make_pool(pools, None, {"a": client}, target="5", app_name="a")
    pool.open()
    assert entered.wait(WAIT)
    closer = threading.Thread(target=pool.close)
    closer.start()
    assert wait_until(lambda: pool.state is fas.PoolState.CLOSED)
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert client.call_count("start") == 1
    result = pool.app_status()["a"].last_result
    assert result is not None
    assert result.timed_out


# --- metrics and logs ---------------------------------------------------------------


def test_prometheus_series(pools):
    """Upstream's series keep their names; per-app series carry the app label."""
    client = FakeFlapsClient([machine("1", "stopped"), machine("2", "stopped")])
    client.fail("start", key="1")
    registry = CollectorRegistry()
    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [StaticCollector("depth", 1.0)],
        target="depth",
        app_name="a",
    )
    pool.register_prom_metrics(registry)
    pool.open()
    assert wait_until(lambda: client.count("started") == 1)
    settle(pool, 2)
    pool.close()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    stats = pool.stats
    assert value("fas_machine_start_count", status="ok") == stats.machine_started == 1
    assert value("fas_machine_start_count", status="failed") == 1
    assert value("fas_machine_stop_count", status="ok") == 0
    assert value("fas_machine_create_count", status="ok") == 0
    assert value("fas_machine_destroy_count", status="failed") == 0
    assert value("fas_reconcile_count", status="start") == stats.bulk_start
    assert value("fas_reconcile_count", status="no_scale") == stats.no_scale >= 1
    assert value("fas_apps") == 1
    assert value("fas_app_metric_value", app="a", metric="depth") == 1.0
    assert value("fas_app_target_machines", app="a", kind="started", bound="min") == 1
    assert (
        value("fas_app_target_machines", app="a", kind="created", bound="min") is None
    )
    assert value("fas_app_current_machines", app="a", kind="started") == 1
    assert value("fas_app_consecutive_failed_passes", app="a") == 0
    assert value("fas_app_reconcile_errors_total", app="a", kind="action") == 1
    passes = pool.app_status()["a"].passes
    assert value("fas_app_reconcile_passes_total", app="a") == passes
    assert value("fas_app_reconcile_duration_seconds_count", app="a") == passes
    assert value("fas_app_reconcile_lag_seconds", app="a") is not None
    with pytest.raises(ValueError, match="Duplicated"):
        pool.register_prom_metrics(registry)


def test_nothing_registered_at_import():
    """Importing flyautoscaler registers nothing on the default registry."""
    names = {m.name for m in REGISTRY.collect()}
    assert not any(n.startswith("fas_") for n in names)


# --- hardening: background threads, shutdown, deadlines, health ----------------------


def test_refresh_survives_a_failing_new_reconciler(pools):
    """new_reconciler raising once skips one app; the next refresh adds it."""
    names = ("my-app-1", "my-app-2", "my-app-3")
    clients = {n: FakeFlapsClient([machine("1", "started")]) for n in names}
    calls = [0]

    def new_reconciler() -> fas.Reconciler:
        calls[0] += 1
        if calls[0] == 3:  # open()'s check, my-app-1, then my-app-2 fails once
            raise RuntimeError("a bug in the host's factory")
        return fas.Reconciler()

    pool = make_pool(
        pools,
        org_with_apps(*names),
        clients,
        app_name="my-app-*",
        organization_slug="myorg",
        app_list_refresh_interval=0.01,
    )
    pool.new_reconciler = new_reconciler
    pool.open()
    assert wait_until(lambda: pool.app_names() == list(names))
    assert pool.health().threads == {}


def test_dead_thread_makes_the_pool_unhealthy(pools, caplog):
    """A pool thread killed by an exception is logged and reported by health()."""

    class Fatal(BaseException):
        """Escapes every ``except Exception``."""

    client = FakeFlapsClient([machine("1", "started")])
    client.fail("list", Fatal("boom"), times=None)
    pool = make_pool(pools, None, {"a": client}, target="1", app_name="a")
    pool.open()
    assert wait_until(lambda: bool(pool.health().threads))
    health = pool.health()
    assert not health.healthy
    assert health.threads == {"flyautoscaler-worker-0": "Fatal: boom"}
    assert events(caplog, "pool.thread_died")


def test_close_returns_within_close_timeout_with_a_call_in_flight(pools):
    """A Machine call that never returns does not hold close() past its timeout."""
    hang = Hold("start")
    entered, never = hang.entered, hang.release
    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 4)], before_call=hang
    )
    pool = make_pool(
        pools, None, {"a": client}, target="3", app_name="a", close_timeout=0.5
    )
    pool.open()
    assert entered.wait(WAIT)
    began = time.monotonic()
    pool.close()
    assert time.monotonic() - began < 0.5 + 1.0
    never.set()  # let the abandoned call end, so the fixture sees no thread
    assert wait_until(lambda: not pool_threads())
    assert client.call_count("start") == 1


def test_default_close_timeout_fits_in_flys_kill_timeout():
    """Fly kills a Machine 5 s after SIGTERM: close() must be done before."""
    assert fas.ReconcilerPool(None).close_timeout < 5.0


def test_hanging_collector_does_not_block_the_worker(pools, caplog):
    """A collector that never answers fails the pass at its timeout, every pass."""
    release = threading.Event()

    def hang(app: str) -> float:
        release.wait(WAIT)
        return 2.0

    client = FakeFlapsClient([machine("1", "started"), machine("2", "stopped")])
    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [CallableCollector("depth", hang)],
        target="depth",
        app_name="a",
        reconcile_timeout=0.2,
    )
    pool.open()
    # The worker goes on: pass after pass fails, none waits for the collector.
    assert wait_until(lambda: pool.app_status()["a"].errors["collect"] >= 3)
    status = pool.app_status()["a"]
    errors = [r.error for r in events(caplog, "metrics.collect_failed")]  # type: ignore[attr-defined]
    assert any("no value within" in e for e in errors)
    assert "still collecting for an earlier pass" in status.last_error
    release.set()
    assert wait_until(lambda: client.count("started") == 2)


def test_trickling_metric_source_fails_the_pass_at_its_timeout(pools, caplog):
    """A Prometheus answer that trickles in byte by byte cannot hold a worker."""
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    def trickle() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{")
                while not stop.wait(0.05):
                    conn.sendall(b" ")

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    collector = PrometheusCollector(
        "depth", f"http://127.0.0.1:{port}", "up", timeout=(2.0, 1.0)
    )
    client = FakeFlapsClient([machine("1", "started")])
    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [collector],
        target="depth",
        app_name="a",
        reconcile_timeout=0.5,
    )
    try:
        pool.open()
        assert wait_until(lambda: pool.app_status()["a"].errors["collect"] >= 2)
        errors = [r.error for r in events(caplog, "metrics.collect_failed")]  # type: ignore[attr-defined]
        assert any("no value within" in e for e in errors)
    finally:
        pool.close()
        stop.set()
        listener.close()
        server.join(WAIT)
    # The collection thread ends with the connection.
    assert wait_until(lambda: not pool_threads())


def test_pass_past_its_timeout_is_reported(pools, caplog):
    """A pass running past its timeout makes health() name it, and is logged."""
    hold = Hold("start")
    entered, release = hold.entered, hold.release
    skew = [0.0]
    client = FakeFlapsClient([machine("1", "stopped")], before_call=hold)
    pool = make_pool(
        pools,
        None,
        {"a": client},
        target="1",
        app_name="a",
        clock=lambda: time.monotonic() + skew[0],
        reconcile_timeout=30.0,
    )
    pool.open()
    assert entered.wait(WAIT)
    assert pool.health().healthy
    skew[0] = 31.0  # the start call has now taken "31 seconds"
    health = pool.health()
    assert not health.healthy
    assert "past its timeout of 30 s" in health.apps["a"]
    release.set()
    assert wait_until(lambda: bool(events(caplog, "pool.pass_overran")))
    assert pool.app_status()["a"].errors["timeout"] >= 1


def test_failed_expression_log_names_the_count_and_expression(pools, caplog):
    """pool.pass_failed says which count failed and what its expression is."""
    pool = make_pool(
        pools,
        None,
        {"a": FakeFlapsClient([machine("1", "started")])},
        collectors=lambda: [StaticCollector("depth", 0.0)],
        target="depth / depth",
        app_name="a",
    )
    pool.open()
    assert wait_until(lambda: pool.app_status()["a"].errors["expression"] >= 1)
    record = events(caplog, "pool.pass_failed")[0]
    assert record.count == "min started machine count"  # type: ignore[attr-defined]
    assert record.expression == "depth / depth"  # type: ignore[attr-defined]
    assert "ExprNaNError" in record.error  # type: ignore[attr-defined]
    assert "min started machine count" in record.error  # type: ignore[attr-defined]


def test_health_follows_the_last_passes(pools):
    """Three failed passes in a row make an app unhealthy; one success heals it."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail(
        "list", fas.FlapsError("Authenticate: token invalid", status=401), times=None
    )
    pool = make_pool(pools, None, {"a": client}, target="1", app_name="a")
    pool.open()
    assert wait_until(lambda: not pool.health().healthy)
    health = pool.health()
    assert health.state is fas.PoolState.RUNNING
    assert "passes failed" in health.apps["a"]
    assert "401" in health.apps["a"]
    status = pool.app_status()["a"]
    assert status.last_ok is False
    assert status.consecutive_failures >= 3
    client.clear_failures()
    assert wait_until(lambda: pool.health().healthy)
    status = pool.app_status()["a"]
    assert status.last_ok is True
    assert status.last_error == ""
    assert status.consecutive_failures == 0


def test_health_threshold_is_configurable(pools):
    """unhealthy_after=1: one failed pass is enough."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail("list", times=None)
    pool = make_pool(
        pools, None, {"a": client}, target="1", app_name="a", unhealthy_after=1
    )
    pool.open()
    assert wait_until(lambda: "a" in pool.health().apps)
    with pytest.raises(fas.ConfigError, match="unhealthy_after"):
        make_pool(pools, None, {}, app_name="b", unhealthy_after=0).open()


def test_closed_pool_is_unhealthy(pools):
    """A pool that is not running is not healthy."""
    pool = make_pool(pools, None, {"a": FakeFlapsClient()}, app_name="a")
    assert not pool.health().healthy
    pool.open()
    pool.close()
    assert pool.health().state is fas.PoolState.CLOSED
    assert not pool.health().healthy


# --- pass reports ------------------------------------------------------------------


def test_subscribers_get_every_pass(pools):
    """Each pass is published: its outcome, metrics and result, or its error."""
    client = FakeFlapsClient([machine("1", "stopped")])
    depth = [1.0]
    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [CallableCollector("depth", lambda app: depth[0])],
        target="depth",
        app_name="a",
    )
    reports: list[fas.PassReport] = []
    unsubscribe = pool.subscribe(reports.append)
    pool.open()
    assert wait_until(lambda: any(r.result and r.result.started for r in reports))
    scaled = next(r for r in reports if r.result and r.result.started)
    assert scaled.app_name == "a"
    assert scaled.outcome == "ok"
    assert scaled.ok is True
    assert scaled.metrics == {"depth": 1.0}
    assert scaled.result is not None
    assert scaled.result.started == ("1",)
    depth[0] = math.nan
    assert wait_until(lambda: reports[-1].outcome == "failed")
    failed = reports[-1]
    assert failed.kinds == ("expression",)
    assert "ExprNaNError" in failed.error
    assert failed.result is None
    unsubscribe()
    count = len(reports)
    settle(pool)
    assert len(reports) == count


def test_a_failing_subscriber_never_stops_the_worker(pools, caplog):
    """A subscriber that raises is logged; passes and other subscribers go on."""

    def broken(report: fas.PassReport) -> None:
        raise RuntimeError("a bug in the host's dashboard")

    seen: list[fas.PassReport] = []
    pool = make_pool(
        pools, None, {"a": FakeFlapsClient([machine("1", "started")])}, app_name="a"
    )
    pool.subscribe(broken)
    pool.subscribe(seen.append)
    pool.open()
    settle(pool, 3)
    assert len(seen) >= 3
    assert events(caplog, "pool.subscriber_failed")
    assert pool.health().healthy


def test_a_failed_release_lookup_keeps_the_last_metrics(pools):
    """A pass that never collected leaves the app's last metric values as they were."""
    fly = org_with_apps("a")
    client = FakeFlapsClient([machine("1", "started")])
    pool = make_pool(
        pools,
        fly,
        {"a": client},
        collectors=lambda: [StaticCollector("depth", 1.0)],
        target="depth",
        app_name="a",
    )
    reports: list[fas.PassReport] = []
    pool.subscribe(reports.append)
    pool.open()
    assert wait_until(lambda: pool.app_status()["a"].metrics == {"depth": 1.0})
    fly.fail("get_app_current_release_machines", times=None)
    assert wait_until(lambda: pool.app_status()["a"].errors["release"] >= 2)
    assert pool.app_status()["a"].metrics == {"depth": 1.0}
    failed = [r for r in reports if "release" in r.kinds]
    assert failed
    assert failed[-1].metrics is None


def test_metrics_are_visible_while_the_pass_acts(pools):
    """The values a pass collected show in its status before its actions end."""
    hold = Hold("start")
    client = FakeFlapsClient([machine("1", "stopped")], before_call=hold)
    pool = make_pool(
        pools,
        None,
        {"a": client},
        collectors=lambda: [StaticCollector("depth", 1.0)],
        target="depth",
        app_name="a",
    )
    pool.open()
    assert hold.entered.wait(WAIT)
    status = pool.app_status()["a"]
    assert status.passes == 0
    assert status.metrics == {"depth": 1.0}
    hold.release.set()


# --- decisions with memory, through the pool -------------------------------------


def test_release_timeout_scales_an_app_whose_release_is_stuck(pools, caplog):
    """A release running past release_timeout no longer blocks; logged once."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler")
    offset = [0.0]

    def clock() -> float:
        return time.monotonic() + offset[0]

    client = FakeFlapsClient([machine("1", "stopped")])
    pool = make_pool(
        pools,
        org_with_apps("my-app-1", release="running"),
        {"my-app-1": client},
        target="1",
        app_name="my-app-*",
        organization_slug="myorg",
        release_timeout=600.0,
        clock=clock,
    )
    pool.open()
    settle(pool, 5)
    assert client.call_count("list") == 0
    offset[0] += 600.0
    assert wait_until(lambda: client.count("started") == 1)
    settle(pool, 5)
    stuck = events(caplog, "pool.release_stuck")
    assert len(stuck) == 1
    assert stuck[0].app == "my-app-1"  # type: ignore[attr-defined]
    assert stuck[0].running_for >= 600  # type: ignore[attr-defined]


def test_release_timeout_zero_waits_for_the_release(pools):
    """The default (0) waits however long the release runs, as the Go original."""
    offset = [0.0]
    client = FakeFlapsClient([machine("1", "stopped")])
    pool = make_pool(
        pools,
        org_with_apps("my-app-1", release="running"),
        {"my-app-1": client},
        target="1",
        app_name="my-app-*",
        organization_slug="myorg",
        clock=lambda: time.monotonic() + offset[0],
    )
    pool.open()
    settle(pool, 3)
    offset[0] += 86400.0
    settle(pool, 5)
    assert client.call_count("list") == 0


def test_failing_metrics_fall_back_through_the_pool(pools):
    """Two failed passes hold; the third scales to the fallback count, reported."""
    client = FakeFlapsClient([machine(str(i), "started") for i in range(1, 5)])
    reports: list[fas.PassReport] = []

    def depth(app: str) -> float:
        raise ConnectionError("redis down")

    pool = make_pool(pools, None, {"a": client}, app_name="a")
    pool.new_reconciler = lambda: fas.Reconciler(
        min_started_machine_n="depth",
        max_started_machine_n="depth",
        collectors=[CallableCollector("depth", depth)],
        fallback_after=2,
        fallback_started_machine_n=1,
    )
    pool.subscribe(reports.append)
    pool.open()
    assert wait_until(lambda: client.count("started") == 1)
    settle(pool, 2)
    first = reports[:3]
    assert [r.outcome for r in first] == ["failed"] * 3
    assert [r.result is not None and r.result.fallback for r in first] == [
        False,
        False,
        True,
    ]
    assert all("collect" in r.kinds for r in first)
    assert "fallback count" in first[2].error
    assert not pool.health().healthy  # a fallback pass is still a failed pass


def test_suspend_mode_refuses_a_client_without_suspend(pools):
    """stop_mode suspend with a client that cannot: open() fails, naming it."""

    class OldClient:
        def list(self, state: str = "") -> list[fas.Machine]:
            return []

    pool = make_pool(pools, None, lambda app: OldClient(), app_name="a")  # type: ignore[arg-type, return-value]
    pool.new_reconciler = lambda: fas.Reconciler(stop_mode="suspend")
    with pytest.raises(fas.ConfigError, match=r"OldClient.*suspend"):
        pool.open()


# --- replicas coordinating ---------------------------------------------------------


def coordinated_pools(
    pools: list[fas.ReconcilerPool],
    store: object,
    clients: dict[str, FakeFlapsClient],
    replicas: int,
    **fields: object,
) -> list[fas.ReconcilerPool]:
    """*replicas* pools over the same apps, sharing the in-memory *store*."""

    made = []
    for i in range(replicas):
        pool = make_pool(
            pools,
            org_with_apps(*clients),
            clients,
            target="1",
            app_name="my-app-*",
            organization_slug="myorg",
            concurrency=2,
            coordinator=InMemoryCoordinator(store, replica_id=f"replica-{i}"),  # type: ignore[arg-type]
            heartbeat_interval=0.01,
            **fields,
        )
        made.append(pool)
    return made


def one_replica(
    pools: list[fas.ReconcilerPool],
    clients: dict[str, FakeFlapsClient] | Callable[[str], fas.FlapsClient],
    coordinator: InMemoryCoordinator | None = None,
    **fields: object,
) -> fas.ReconcilerPool:
    """A pool of app 'a' (target 1), alone with its *coordinator*."""
    return make_pool(
        pools,
        None,
        clients,
        target="1",
        app_name="a",
        coordinator=coordinator
        or InMemoryCoordinator(InMemoryStore(), replica_id="only"),
        **fields,
    )


def test_replicas_share_the_apps_and_never_overlap(pools):
    """Two replicas: each app is reconciled by its owner only, never at once."""

    clients = {
        f"my-app-{i}": FakeFlapsClient([machine(f"a{i}m1", "stopped")])
        for i in range(8)
    }
    reports: list[tuple[str, fas.PassReport]] = []
    lock = threading.Lock()
    replicas = coordinated_pools(pools, InMemoryStore(), clients, 2)
    for pool in replicas:
        replica = pool.replica_id

        def record(report: fas.PassReport, replica: str | None = replica) -> None:
            with lock:
                reports.append((str(replica), report))

        pool.subscribe(record)
    for pool in replicas:
        pool.open()
    assert wait_until(lambda: all(c.count("started") == 1 for c in clients.values()))
    assert wait_until(
        lambda: all(p.replicas == ["replica-0", "replica-1"] for p in replicas)
    )
    for pool in replicas:
        settle(pool, 10)
    with lock:
        acted = [(r, rep) for r, rep in reports if rep.outcome in {"ok", "failed"}]
    owners: dict[str, set[str]] = {}
    for replica, report in acted:
        owners.setdefault(report.app_name, set()).add(replica)
    # Before both heartbeats were seen one replica may have owned everything;
    # from then on each app has one owner, and every app has one.
    status = {
        name: s for p in replicas for name, s in p.app_status().items() if s.owned
    }
    assert set(status) == set(clients)
    by_owner = {s.owner for s in status.values()}
    assert by_owner == {"replica-0", "replica-1"}
    # Never two passes of one app at once, across replicas.
    for app in clients:
        spans = sorted(
            (rep.started, rep.started + rep.duration, r)
            for r, rep in acted
            if rep.app_name == app
        )
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= end
    assert all(
        sum(c.call_count("start") for c in [client]) == 1 for client in clients.values()
    )


def test_an_unreachable_store_stops_every_action_until_it_returns(pools):
    """No store, no pass acts (failed, kind coordination); back, they resume."""

    store = InMemoryStore(reachable=False)
    clients = {"my-app-1": FakeFlapsClient([machine("1", "stopped")])}
    [pool] = coordinated_pools(pools, store, clients, 1)
    pool.open()
    assert wait_until(lambda: pool.app_status()["my-app-1"].errors["coordination"] >= 3)
    assert clients["my-app-1"].call_count("list") == 0
    assert not pool.health().healthy
    store.reachable = True
    assert wait_until(lambda: clients["my-app-1"].count("started") == 1)
    assert wait_until(lambda: pool.health().healthy)


def test_a_lost_lease_sends_no_machine_action(pools):
    """When the lease cannot be proven, the pass sends nothing that changes."""

    class Doubting(InMemoryCoordinator):
        def holds(self, lease: object, margin: float) -> bool:  # type: ignore[override]
            return False

    clients = {"a": FakeFlapsClient([machine("1", "stopped")])}
    pool = one_replica(
        pools,
        clients,
        Doubting(InMemoryStore(), replica_id="only"),
        heartbeat_interval=0.01,
    )
    reports: list[fas.PassReport] = []
    pool.subscribe(reports.append)
    pool.open()
    settle(pool, 3)
    assert clients["a"].call_count("list") >= 1
    assert clients["a"].call_count("start") == 0
    assert any(r.result is not None and r.result.timed_out for r in reports)


def test_health_and_status_say_who_owns_what(pools):
    """app_status and replicas name the owner; a single replica owns everything."""

    clients = {"my-app-1": FakeFlapsClient([machine("1", "stopped")])}
    [pool] = coordinated_pools(pools, InMemoryStore(), clients, 1)
    pool.open()
    assert wait_until(lambda: clients["my-app-1"].count("started") == 1)
    status = pool.app_status()["my-app-1"]
    assert (status.owner, status.owned) == ("replica-0", True)
    assert pool.replicas == ["replica-0"]
    assert pool.replica_id == "replica-0"


class Measuring(InMemoryCoordinator):
    """An in-memory coordinator that records each TTL asked and margin proven."""

    def __init__(self, store: InMemoryStore, replica_id: str) -> None:
        super().__init__(store, replica_id=replica_id)
        self.ttls: list[float] = []
        self.margins: list[float] = []

    def acquire(self, app_name: str, ttl: float) -> AppLease | None:
        self.ttls.append(ttl)
        return super().acquire(app_name, ttl)

    def holds(self, lease: AppLease, margin: float) -> bool:
        self.margins.append(margin)
        return super().holds(lease, margin)


def test_the_lease_covers_the_request_timeout(pools):
    """The lease's TTL is timeout + request_timeout + 5 s; actions prove the latter."""
    clients = {"a": FakeFlapsClient([machine("1", "stopped")])}
    coordinator = Measuring(InMemoryStore(), "only")
    pool = one_replica(
        pools, clients, coordinator, reconcile_timeout=1.0, request_timeout=2.0
    )
    pool.open()
    assert wait_until(lambda: clients["a"].count("started") == 1)
    assert set(coordinator.ttls) == {8.0}
    assert coordinator.margins == [2.0]


def test_a_client_with_long_timeouts_acts_once_the_pool_knows_them(pools):
    """HTTP timeouts past the default TTL: request_timeout set to them, it acts."""
    token = "fo1_pool-test-token"  # noqa: S105 - the fake server's token
    with FakeMachinesServer(token=token) as server:
        server.add_app("a", machines=[machine("1", "stopped")])
        factory = new_flaps_client_func(token, base_url=server.url, timeout=(10, 60))
        pool = one_replica(
            pools,
            factory,
            reconcile_timeout=5.0,
            request_timeout=sum(factory.timeout),
        )
        pool.open()
        assert wait_until(lambda: server.machines("a")[0].state == "started")
        pool.close()
        factory.close()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"request_timeout": 0.0}, "request_timeout must be a positive duration"),
        ({"request_timeout": math.nan}, "request_timeout must be a positive duration"),
        (
            {"reconcile_timeout": 86400.0},
            (
                r"the lease ttl \(reconcile_timeout \+ request_timeout \+ 5 s\) "
                "must be at most 24h"
            ),
        ),
    ],
)
def test_request_timeout_and_the_lease_ttl_are_checked(pools, fields, message):
    """A bad request_timeout, or a lease TTL past 24 h, is refused at open()."""
    pool = one_replica(pools, {"a": FakeFlapsClient()}, **fields)
    with pytest.raises(fas.ConfigError, match=message):
        pool.open()
