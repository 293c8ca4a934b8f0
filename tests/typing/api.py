"""Type-checked by `mypy --strict` (never run): the public API as users write it.

Every shipped implementation and fake is assigned to its Protocol type, so a
signature drifting from its Protocol fails the type check (Go's
``var _ I = (*T)(nil)``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import flyautoscaler as fas
from flyautoscaler.collectors import (
    PrometheusCollector,
    PrometheusMachineCollector,
    RedisListLengthCollector,
    TemporalCollector,
)
from flyautoscaler.coordination import (
    AppLease,
    CoordinationError,
    Coordinator,
    InMemoryCoordinator,
    InMemoryStore,
    RedisCoordinator,
)
from flyautoscaler.fly import FlapsHTTPClient, FlyGraphQLClient, new_flaps_client_func
from flyautoscaler.testing import (
    CallableCollector,
    FakeFlapsClient,
    FakeFlyClient,
    FakeMachinesServer,
    StaticCollector,
)

# --- Protocols ---

flaps: fas.FlapsClient = FakeFlapsClient([fas.Machine(id="1", state="stopped")])
fly: fas.FlyClient = FakeFlyClient()
static: fas.MetricCollector = StaticCollector("queue_depth", 3.0)
func: fas.MetricCollector = CallableCollector(
    "queue_depth", lambda app: float(len(app))
)


def new_flaps_client(app_name: str) -> fas.FlapsClient:
    return FakeFlapsClient(app_name=app_name)


factory: fas.NewFlapsClientFunc = new_flaps_client


class QueueDepth(fas.MetricCollector):
    """A user's collector: a subclass with a class attribute name."""

    name = "queue_depth"

    def collect_metric(self, app_name: str) -> float:
        return 1.0 if app_name else 0.0


class PropertyCollector:
    """A structural collector whose name is a read-only property."""

    @property
    def name(self) -> str:
        return "jobs"

    def collect_metric(self, app_name: str) -> float:
        return 2.0


subclassed: fas.MetricCollector = QueueDepth()
structural: fas.MetricCollector = PropertyCollector()

# --- Reconciler ---

r = fas.Reconciler()
r.client = flaps
r.app_name = "my-app"
r.regions = ["iad", "ord"]
r.process_group = "worker"
r.min_created_machine_n = "1"
r.max_created_machine_n = "10"
r.min_started_machine_n = "ceil(queue_depth / 10)"
r.max_started_machine_n = r.min_started_machine_n
r.initial_machine_state = "stopped"
r.collectors = [subclassed, structural, static]
region: str = r.next_region()
value: float | None = r.value("queue_depth")
r.set_value("queue_depth", 3)
r.validate()
r.collect_metrics()
targets: list[int | None] = [
    r.calc_min_created_machine_n(),
    r.calc_max_created_machine_n(),
    r.calc_min_started_machine_n(),
    r.calc_max_started_machine_n(),
]
result: fas.ReconcileResult = r.reconcile(deadline=None)
ok: bool = result.ok and result.scaled
failures: tuple[fas.ActionFailure, ...] = result.failures
stats: fas.ReconcilerStats = r.stats
started: int = stats.machine_started + stats.bulk_start + stats.no_scale

# --- Expressions and helpers ---

expression: fas.Expression = fas.compile_expression("x ^ 2", ["x"])
number: float = expression.evaluate({"x": 2.0})
count: int = expression.evaluate_int({"x": 2.0})
query: str = fas.expand_metric_query("sum(queue{app='$APP_NAME'})", "my-app")
regional: str = fas.expand_metric_query(
    "up{app='$APP_NAME', region='$REGION'}", "my-app", variables={"REGION": "iad"}
)
pattern: str = fas.format_wildcard_as_regexp("my-app-*")

# --- Models ---

machine = fas.Machine.from_api({"id": "1", "config": {"image": "nginx"}})
config: fas.MachineConfig | None = machine.config
group: str = machine.process_group()
image: str = machine.full_image_ref()
launch = fas.LaunchMachineInput(config=fas.MachineConfig(image="nginx"), region="iad")
body: dict[str, object] = launch.to_api()
stop = fas.StopMachineInput("1", signal="SIGTERM", timeout=10.0)
remove = fas.RemoveMachineInput("1", kill=True)
response = fas.MachineStartResponse()
org = fas.Organization(id="o1", slug="personal", name="Personal")
app = fas.App(name="my-app")
release: fas.Release | None = fly.get_app_current_release_machines("my-app")
state: str = fas.MachineState.STARTED

# --- Errors ---

try:
    r.reconcile()
except fas.FlapsRateLimitedError as exc:
    retry_after: float | None = exc.retry_after
except fas.FlapsError as exc:
    status: int | None = exc.status
    transient: bool = exc.transient
except fas.MetricCollectionError as exc:
    collector: str = exc.collector
except fas.ExpressionError as exc:
    position: int | None = exc.position
except fas.FlyAutoscalerError:
    pass

# --- The pool ---


def new_reconciler() -> fas.Reconciler:
    return fas.Reconciler(collectors=[QueueDepth()], min_started_machine_n="1")


pool = fas.ReconcilerPool(fly, concurrency=4)
pool.app_name = "my-app-*"
pool.organization_slug = "personal"
pool.new_flaps_client = factory
pool.new_reconciler = new_reconciler
pool.reconcile_interval = 15.0
pool.reconcile_timeout = 30.0
pool.app_list_refresh_interval = 60.0
pool_stats: fas.ReconcilerStats = pool.stats
with pool as opened:
    state_now: fas.PoolState = opened.state
    statuses: dict[str, fas.AppStatus] = opened.app_status()
    names: list[str] = opened.app_names()
    reached: bool = opened.wait_for_passes(1, timeout=1.0)
    health: fas.PoolHealth = opened.health()
    healthy: bool = health.healthy
    unhealthy_apps: dict[str, str] = health.apps
pool.close()

# --- The HTTP fake ---

server = FakeMachinesServer(token="t")  # noqa: S106 - a fake server's token
table: fas.FlapsClient = server.add_app("my-app", machines=[fas.Machine(id="1")])
server_url: str = server.url

# --- The HTTP clients ---

http_flaps: fas.FlapsClient = FlapsHTTPClient("my-app", "fo1_token")
http_flaps.suspend("1", nonce="")
http_fly: fas.FlyClient = FlyGraphQLClient("fo1_token")
http_factory: fas.NewFlapsClientFunc = new_flaps_client_func("fo1_token")

# --- Collectors ---

prometheus: fas.MetricCollector = PrometheusCollector(
    "queue_depth", "http://127.0.0.1:9090", "up"
)
regional_prometheus: fas.MetricCollector = PrometheusCollector(
    "queue_depth",
    "http://127.0.0.1:9090",
    "up{region='$REGION'}",
    variables={"REGION": "iad"},
)
history: list[tuple[float, float]] = PrometheusCollector(
    "queue_depth", "http://127.0.0.1:9090", "up"
).query_range("my-app", 1_700_000_000, 1_700_003_600, 15, timeout=(5.0, 60.0))
shown_address: str = PrometheusCollector(
    "queue_depth", "http://127.0.0.1:9090", "up"
).shown_address
machine_load: fas.MachineMetricCollector = PrometheusMachineCollector(
    "load",
    "http://127.0.0.1:9090",
    "sum by (instance) (fly_app_concurrency{app='$APP_NAME'})",
    "FlyV1 fm2_token",
    timeout=3.0,
    variables={"REGION": "iad"},
)
by_machine: Mapping[str, float] = machine_load.collect_machine_metrics("my-app")
r.stop_metric_collector = machine_load
redis_jobs: fas.MetricCollector = RedisListLengthCollector(
    "jobs", "redis://localhost:6379/0", ["rq:queue:default"]
)
temporal: fas.MetricCollector = TemporalCollector("workflows", "localhost:7233")

# --- Coordination ---

store = InMemoryStore(clock=time.monotonic)
in_memory: Coordinator = InMemoryCoordinator(store, replica_id="replica-1")
solo: Coordinator = InMemoryCoordinator(liveness=15.0, clock=time.monotonic)
redis_coordinator: Coordinator = RedisCoordinator(
    "redis://localhost:6379/0",
    replica_id=None,
    key_prefix="fas:",
    liveness=15.0,
    socket_timeout=2.0,
    clock=time.monotonic,
)
for coordinator in (in_memory, redis_coordinator):
    try:
        coordinator.heartbeat()
        live: list[str] = coordinator.replicas()
        mine: bool = coordinator.owns("my-app", live)
        lease: AppLease | None = coordinator.acquire("my-app", 30.0)
        if lease is not None:
            token: int = lease.token
            expires: float = lease.expires
            renewed: AppLease | None = coordinator.renew(lease, 30.0)
            proved: bool = coordinator.holds(lease, 5.0)
            coordinator.release(lease)
    except CoordinationError as exc:
        store_shown: str = exc.store
        coordination_transient: bool = exc.transient
    except fas.CoordinationError:
        pass
    finally:
        coordinator.leave()
        coordinator.close()
store.reachable = False
store.restart()
replica: str = in_memory.replica_id

# --- Machine leases ---

leasing_fake: fas.LeasingClient = FakeFlapsClient()
leasing_http: fas.LeasingClient = FlapsHTTPClient("my-app", "token")
machine_lease: fas.MachineLease = leasing_http.acquire_lease("1", 30)
leasing_http.release_lease("1", machine_lease.nonce)
