"""Several replicas of ``serve``, one Redis, one fake Fly API: who acts, and when.

Each test starts a real ``redis-server``, one
:class:`~flyautoscaler.testing.FakeMachinesServer` holding an organization of
many apps (``app-00``, ``app-01``, ...: two Machines each) and two or three
``serve`` processes managing ``app-*`` through ``FAS_COORDINATION_URL``, then
judges what happened from the fake server's request log. Each request there
says which replica sent it (its ``User-Agent`` ends in ``(replica ID)``) and
when the server received and answered it, on one clock for every replica:
the server runs in the test's process, on ``time.monotonic``, so the test's
own readings of that clock compare with the log's.

How passes are told apart in the log: every pass lists the app's Machines
exactly once, first, and sends nothing else before the list (no fault is
injected here, so no request is retried). So the requests one replica sent
to one app's Machines, in the order received, split into passes at each
``list``; a pass's span runs from its list's arrival to the answer of its
last request. Two replicas' passes on one app overlap when their spans
intersect, and no two may: the check covers every request, reads and
Machine changes alike, of every pass in the test. The spans are the part of
each pass the API sees, which is what acting at the same time means for it.

The scenarios, and the bounds they hold the replicas to:

- every app reaches its target, each app's Machines are changed only by its
  owner once the replicas share the apps out, and no passes overlap (a
  negative control shows the check catches two replicas that do not
  coordinate);
- a replica killed with SIGKILL has its apps reconciled by the others within
  the longer of the lease TTL and the liveness window plus one heartbeat
  interval (its heartbeat must age out, and the others see that at their
  next refresh), plus two intervals;
- Redis killed: no Machine action is sent at all (none was pending when it
  died, so none can be in flight), and every replica says it lost the store;
  Redis restarted *empty*, as one without persistence is: actions resume no
  sooner than one lease TTL after the restart began (the empty-store pause
  that keeps a holder that may still be acting safe) and within one heartbeat
  interval plus the TTL plus two intervals;
- a Machine someone else leased is never stopped while leased, and the
  skipped actions are counted (``fas_machine_lease_skipped_total``).

The TTL is kept short by ``FAS_TIMEOUT`` and ``FAS_REQUEST_TIMEOUT`` (2 s
each: 9 s); with the default request timeout it would be 41 s, which made
the takeover and outage tests take about 50 s each. Each bound has
:data:`SLACK` added for four Python processes and Redis sharing two cores.

Without ``redis-server`` (or redis-py) the module is skipped; in CI it fails.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler._coordinating import HEARTBEAT_INTERVAL, lease_ttl
from flyautoscaler.coordination import DEFAULT_LIVENESS
from flyautoscaler.testing import FakeMachinesServer, RequestRecord
from servers import RedisServer, eventually, import_or_skip
from serving import Process, base_env, http_get

redis = import_or_skip("redis", "redis")

TOKEN = "fo1_replicas-e2e-secret-token"  # noqa: S105 - the fake server's token
ORG = "acme"
#: Seconds between two passes of an app (FAS_INTERVAL).
INTERVAL = 0.2
#: Seconds a pass may take (FAS_TIMEOUT).
TIMEOUT = 2.0
#: Seconds each Machines API request may take (FAS_REQUEST_TIMEOUT).
REQUEST_TIMEOUT = 2.0
#: The apps' lease TTL in Redis, as serve computes it from the two above.
TTL = lease_ttl(TIMEOUT, REQUEST_TIMEOUT)
#: How long one replica's startup, or a condition of several, may take here.
WAIT = 60.0
#: Slack for scheduling: four Python processes and Redis on two cores.
SLACK = 3.0
#: Machine-changing actions, as the fake server names them.
CHANGES = frozenset({"launch", "start", "stop", "suspend", "destroy"})
_REPLICA = re.compile(r"\(replica (?P<id>[^()]+)\)$")


# --- reading the request log ------------------------------------------------------


def replica_of(record: RequestRecord) -> str:
    """The replica that sent *record*, from its User-Agent."""
    match = _REPLICA.search(record.headers.get("user-agent", ""))
    assert match is not None, f"no replica in {record.headers.get('user-agent')!r}"
    return match.group("id")


def app_of(record: RequestRecord) -> str | None:
    """The app whose Machines *record* asked about; ``None`` for GraphQL."""
    if not record.path.startswith("/v1/apps/"):
        return None
    return record.path.split("/")[3]


@attrs.define
class Span:
    """The part of one pass the API saw: first request received to last answered."""

    replica: str
    start: float
    end: float
    actions: list[str] = attrs.field(factory=list)


def pass_spans(records: list[RequestRecord]) -> dict[str, list[Span]]:
    """Split each replica's requests to each app into passes; return them by app."""
    spans: dict[str, list[Span]] = defaultdict(list)
    current: dict[tuple[str, str], Span] = {}
    for record in sorted(records, key=lambda r: r.received):
        app = app_of(record)
        if app is None:
            continue
        key = (app, replica_of(record))
        span = current.get(key)
        if record.action == "list" or span is None:
            span = current[key] = Span(key[1], record.received, record.answered)
            spans[app].append(span)
        span.end = max(span.end, record.answered)
        span.actions.append(record.action)
    return spans


def overlaps(records: list[RequestRecord]) -> list[str]:
    """Say each pair of two replicas' passes on one app that overlap."""
    found = []
    for app, app_spans in pass_spans(records).items():
        ordered = sorted(app_spans, key=lambda s: s.start)
        for i, first in enumerate(ordered):
            for later in ordered[i + 1 :]:
                if later.start >= first.end:
                    break  # every later span starts later still
                if later.replica != first.replica:
                    found.append(f"{app}: {first} and {later}")
    return found


def assert_no_overlapping_passes(records: list[RequestRecord]) -> int:
    """Fail if two replicas' passes on one app overlap; return the passes seen."""
    assert overlaps(records) == []
    return sum(len(s) for s in pass_spans(records).values())


def changes(
    records: list[RequestRecord], *, after: float = float("-inf")
) -> list[RequestRecord]:
    """The Machine-changing requests received after *after* (server clock)."""
    return [r for r in records if r.action in CHANGES and r.received > after]


# --- the deployment ---------------------------------------------------------------


@attrs.define
class Replica:
    """One running ``serve``: its process, replica id and HTTP address."""

    process: Process
    replica_id: str
    address: str

    def health(self) -> dict[str, object]:
        """Its ``/healthz`` body."""
        _, body = http_get(f"http://{self.address}/healthz")
        result: dict[str, object] = json.loads(body)
        return result

    def sees(self, count: int) -> bool:
        """Whether it lists *count* live replicas."""
        replicas = self.health().get("replicas")
        return isinstance(replicas, list) and len(replicas) == count

    def owned(self) -> set[str]:
        """The apps it owns, as its ``/healthz`` says (none while it is 503)."""
        apps = self.health().get("apps")
        if not isinstance(apps, dict):
            return set()
        return {name for name, app in apps.items() if app.get("owned")}

    def metric(self, name: str) -> float:
        """The value of the unlabelled series *name* on its ``/metrics``."""
        _, text = http_get(f"http://{self.address}/metrics")
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not on /metrics")


@attrs.define
class Deployment:
    """A Redis, a fake Fly API with an organization of apps, and serve replicas."""

    redis: RedisServer
    fly: FakeMachinesServer
    replicas: list[Replica] = attrs.field(factory=list)

    def add_apps(self, count: int, state: str = "stopped") -> list[str]:
        """Add *count* apps of two Machines in *state*; return their names."""
        names = [f"app-{n:02d}" for n in range(count)]
        for name in names:
            machines = [machine(f"{name}-m{i}", state) for i in (1, 2)]
            self.fly.add_app(name, ORG, machines=machines)
        return names

    def start(
        self, count: int, started: str = "2", *, database: int = 0
    ) -> list[Replica]:
        """Start *count* replicas with the started count *started*; wait for them.

        They coordinate through Redis database *database* (the fixture makes
        database 0 grant leases at once).
        """
        env = base_env(
            FAS_API_TOKEN=TOKEN,
            FLY_FLAPS_BASE_URL=self.fly.url,
            FLY_API_BASE_URL=self.fly.url,
            FAS_METRICS_ADDRESS="127.0.0.1:0",
            FAS_APP_NAME="app-*",
            FAS_ORG=ORG,
            FAS_CONCURRENCY="4",
            FAS_STARTED_MACHINE_COUNT=started,
            FAS_INTERVAL=f"{INTERVAL * 1000:.0f}ms",
            FAS_TIMEOUT=f"{TIMEOUT:g}s",
            FAS_REQUEST_TIMEOUT=f"{REQUEST_TIMEOUT:g}s",
            FAS_COORDINATION_URL=f"{self.redis.url().removesuffix('/0')}/{database}",
        )
        processes = [Process(env) for _ in range(count)]
        started_now = []
        for process in processes:
            process.wait_for(lambda p=process: bool(p.events("serve.started")), WAIT)
            line = process.events("serve.started")[0]
            address = process.events("serve.listening")[0]["address"]
            replica = Replica(process, str(line["replica"]), str(address))
            self.replicas.append(replica)
            started_now.append(replica)
        return started_now

    def share_out(self, apps: list[str]) -> dict[str, str]:
        """Wait until the running replicas share *apps* out; return their owners.

        That is, until every replica lists them all, and their passes since
        then have each app owned by exactly one of them (``/healthz`` says
        who owned an app at its last pass).
        """
        alive = [r for r in self.replicas if r.process.proc.poll() is None]
        eventually(lambda: all(r.sees(len(alive)) for r in alive), deadline=WAIT)
        owners: dict[str, str] = {}

        def shared() -> bool:
            owners.clear()
            for replica in alive:
                for app in replica.owned():
                    if owners.setdefault(app, replica.replica_id) != replica.replica_id:
                        return False
            return sorted(owners) == sorted(apps)

        eventually(shared, deadline=WAIT)
        return owners

    def started(self, app: str) -> int:
        """The app's started Machines now."""
        return sum(m.state == "started" for m in self.fly.machines(app))

    def at_target(self, apps: list[str], target: int) -> bool:
        """Whether every app has *target* started Machines."""
        return all(self.started(app) == target for app in apps)

    def changes_logged(
        self, count: int, *, after: float = float("-inf"), app: str | None = None
    ) -> list[RequestRecord]:
        """Wait for *count* Machine changes received after *after*; return them.

        A Machine changes while its request is handled; the request joins
        the log once answered, so the log may lag the Machines a moment.
        """
        found: list[RequestRecord] = []

        def logged() -> bool:
            found[:] = [
                r
                for r in changes(self.fly.requests, after=after)
                if app is None or app_of(r) == app
            ]
            return len(found) >= count

        eventually(logged, deadline=WAIT)
        return found

    def stop_one_machine_each(self, apps: list[str]) -> None:
        """Stop each app's first Machine behind the autoscaler's back."""
        for app in apps:
            self.fly.flaps_client(app).stop(fas.StopMachineInput(id=f"{app}-m1"))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A fresh Redis (leases granted at once) and fake Fly API; replicas cleaned up."""
    server = RedisServer(tmp_path).start()
    with redis.Redis("127.0.0.1", server.port, password=server.password) as client:
        # A store first seen long ago: no replica can have acted on it yet, so
        # leases are granted at once (see flyautoscaler.coordination).
        client.set("fas:epoch", 0)
    fly = FakeMachinesServer(token=TOKEN, latency=0.005).start()
    fly.add_organization(ORG)
    chosen = Deployment(server, fly)
    try:
        yield chosen
    finally:
        for replica in chosen.replicas:
            if replica.process.proc.poll() is None:
                replica.process.stop(signal.SIGTERM)
            replica.process.kill()
        fly.close()
        server.stop()
    for replica in chosen.replicas:
        assert TOKEN not in "".join(replica.process.lines)


# --- the tests --------------------------------------------------------------------


def test_every_app_is_reconciled_by_one_replica_at_a_time(deployment):
    """Every app reaches its target; no two replicas' passes on an app overlap."""
    apps = deployment.add_apps(40)
    replicas = deployment.start(3)
    eventually(lambda: deployment.at_target(apps, 2), deadline=WAIT)
    # Work again once all three share the apps out: each acts on its own.
    owners = deployment.share_out(apps)
    shared_out = time.monotonic()
    deployment.stop_one_machine_each(apps)
    eventually(lambda: deployment.at_target(apps, 2), deadline=WAIT)

    again = deployment.changes_logged(len(apps), after=shared_out)
    records = deployment.fly.requests
    assert assert_no_overlapping_passes(records) >= 2 * len(apps)
    ids = {r.replica_id for r in replicas}
    assert {replica_of(r) for r in records} <= ids
    assert len(again) == len(apps)  # one start per app
    for record in again:
        assert record.action == "start"
        assert replica_of(record) == owners[app_of(record) or ""]
    assert {replica_of(r) for r in again} == ids  # each did its share


def test_the_check_catches_replicas_that_do_not_coordinate(deployment):
    """Two replicas on separate Redis databases both act: their passes overlap."""
    apps = deployment.add_apps(4, state="started")
    # Lists answered after 0.3 s: each replica is in a pass on each app more
    # than half of every interval, so two that do not coordinate must meet.
    deployment.fly.delay_next(100_000, 0.3, method="GET", path="/machines")
    with redis.Redis(
        "127.0.0.1", deployment.redis.port, db=1, password=deployment.redis.password
    ) as client:
        client.set("fas:epoch", 0)
    deployment.start(1, database=0)
    deployment.start(1, database=1)
    eventually(lambda: bool(overlaps(deployment.fly.requests)), deadline=WAIT)
    assert deployment.at_target(apps, 2)


def test_a_killed_replicas_apps_are_taken_over(deployment):
    """After SIGKILL, the others reconcile its apps within the documented bound."""
    apps = deployment.add_apps(12, state="started")
    replicas = deployment.start(3)
    owners = deployment.share_out(apps)
    victim = next(r for r in replicas if r.replica_id in owners.values())
    its_apps = {app for app, owner in owners.items() if owner == victim.replica_id}

    killed = time.monotonic()
    victim.process.proc.send_signal(signal.SIGKILL)
    victim.process.proc.wait(timeout=WAIT)
    dead = time.monotonic()
    deployment.stop_one_machine_each(apps)
    # Its heartbeat ages out of the liveness window, which the others see at
    # their next refresh; a lease it held runs out after the TTL.
    bound = max(TTL, DEFAULT_LIVENESS + HEARTBEAT_INTERVAL) + 2 * INTERVAL + SLACK
    eventually(lambda: deployment.at_target(apps, 2), deadline=bound + WAIT)
    took = time.monotonic() - killed
    assert took <= bound, f"took {took:.1f} s, more than {bound:.1f} s"

    after = deployment.changes_logged(len(apps), after=dead)
    assert_no_overlapping_passes(deployment.fly.requests)
    assert {app_of(r) for r in after} == set(apps)
    assert victim.replica_id not in {replica_of(r) for r in after}
    taken = {app_of(r) for r in after if app_of(r) in its_apps}
    assert taken == its_apps


def test_a_redis_outage_stops_every_action_until_it_returns(deployment):
    """Redis killed: no Machine action at all; restarted empty: after one TTL, again."""
    apps = deployment.add_apps(8, state="started")
    replicas = deployment.start(2)
    deployment.share_out(apps)

    down = time.monotonic()
    deployment.redis.kill()
    deployment.stop_one_machine_each(apps)
    for replica in replicas:
        replica.process.wait_for(
            lambda r=replica: bool(r.process.events("pool.coordination_lost")),
            WAIT,
        )
        # Passes went on failing while the Machines waited to be started.
        count = len(_coordination_failures(replica))
        replica.process.wait_for(
            lambda r=replica, n=count: len(_coordination_failures(r)) >= n + 3,
            WAIT,
        )
    assert changes(deployment.fly.requests, after=down) == []
    assert not any(deployment.started(app) == 2 for app in apps)

    restarting = time.monotonic()
    deployment.redis.start()  # empty: its data was lost
    restarted = time.monotonic()
    bound = HEARTBEAT_INTERVAL + TTL + 2 * INTERVAL + SLACK
    eventually(lambda: deployment.at_target(apps, 2), deadline=bound + WAIT)
    took = time.monotonic() - restarted
    assert took <= bound, f"took {took:.1f} s, more than {bound:.1f} s"
    resumed = deployment.changes_logged(len(apps), after=down)
    assert len(resumed) == len(apps)
    # No lease for one TTL after the store was seen empty, which was after
    # the restart began.
    assert min(r.received for r in resumed) >= restarting + TTL
    assert_no_overlapping_passes(deployment.fly.requests)


def test_a_machine_leased_by_another_party_is_never_stopped(deployment):
    """Both Machines of one app leased elsewhere: skipped and counted, never stopped."""
    apps = deployment.add_apps(6, state="started")
    held = apps[0]
    table = deployment.fly.flaps_client(held)
    leases = {
        m.id: table.acquire_lease(m.id, 600.0, description="deploy")
        for m in table.machines
    }
    replicas = deployment.start(2, started="1")
    eventually(lambda: deployment.at_target(apps[1:], 1), deadline=WAIT)

    def refused() -> int:
        return sum(
            r.action == "acquire_lease" and r.status == 409 and app_of(r) == held
            for r in deployment.fly.requests
        )

    def skipped() -> float:
        return sum(r.metric("fas_machine_lease_skipped_total") for r in replicas)

    eventually(lambda: refused() >= 4, deadline=WAIT)
    eventually(lambda: skipped() >= 4, deadline=WAIT)  # counted once answered
    assert deployment.started(held) == 2

    released = time.monotonic()
    for machine_id, lease in leases.items():
        table.release_lease(machine_id, lease.nonce)
    eventually(lambda: deployment.at_target(apps, 1), deadline=WAIT)
    stops = deployment.changes_logged(1, app=held)
    assert all(r.received >= released for r in stops)
    assert_no_overlapping_passes(deployment.fly.requests)


def _coordination_failures(replica: Replica) -> list[dict[str, object]]:
    return [
        e
        for e in replica.process.events("pool.pass_failed")
        if e.get("kind") == "coordination"
    ]
