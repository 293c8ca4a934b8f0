"""The coordinators: one behaviour from InMemoryCoordinator and RedisCoordinator.

The contract tests run against both: in memory on a fake clock, and against a
real ``redis-server`` on 127.0.0.1 in real (short) time, polling conditions
with a deadline. Each replica has its own clock, which a test can jump to
make that replica pause.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

import flyautoscaler as fas
from clock import FakeTime
from flyautoscaler._extras import install_hint
from flyautoscaler.coordination import (
    AppLease,
    CoordinationError,
    Coordinator,
    InMemoryCoordinator,
    InMemoryStore,
    RedisCoordinator,
)
from servers import RedisServer, eventually, free_port, import_or_skip

#: Real seconds a condition may take to hold before a test fails.
DEADLINE = 10.0
#: A TTL that never runs out during a test.
LONG = 30.0
#: A TTL, or a liveness window, that runs out during a test.
SHORT = 0.3
APP = "my-app"


class LocalClock:
    """One replica's monotonic clock: a base clock, plus a jump to make it pause."""

    def __init__(self, base: Callable[[], float]) -> None:
        self.base = base
        self.jump = 0.0

    def __call__(self) -> float:
        return self.base() + self.jump


class MemoryBackend:
    """Replicas sharing one InMemoryStore, on a fake clock that moves on demand."""

    name = "memory"

    def __init__(self) -> None:
        self.time = FakeTime()
        self.store = InMemoryStore(clock=self.time.clock)
        self.clocks: dict[str, LocalClock] = {}

    def coordinator(self, replica_id: str, *, liveness: float = 15.0) -> Coordinator:
        """A replica with its own clock (the store's, until it jumps)."""
        clock = self.clocks[replica_id] = LocalClock(self.time.clock)
        return InMemoryCoordinator(
            self.store, replica_id=replica_id, liveness=liveness, clock=clock
        )

    def elapse(self, seconds: float, until: Callable[[], bool]) -> None:
        """Move every clock on by *seconds*; then *until* must hold."""
        self.time.sleep(seconds)
        assert until()

    def pause(self, replica_id: str, seconds: float) -> None:
        """Jump one replica's clock: it was paused while the store's time stood."""
        self.clocks[replica_id].jump += seconds

    def unreachable(self) -> None:
        """Cut the store off."""
        self.store.reachable = False

    def restart(self) -> None:
        """Lose the store's data."""
        self.store.restart()

    def close(self) -> None:
        """Nothing to close."""


class RedisBackend:
    """Replicas sharing one real redis-server, in real time."""

    name = "redis"

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.clocks: dict[str, LocalClock] = {}
        self.coordinators: list[RedisCoordinator] = []
        with client_of(server) as client:
            client.flushall()
            # A store first seen long ago: leases are granted at once (a
            # newly emptied store makes them wait one TTL, tested apart).
            client.set("fas:epoch", 0)

    def coordinator(self, replica_id: str, *, liveness: float = 15.0) -> Coordinator:
        """A replica with its own clock (time.monotonic, until it jumps)."""
        clock = self.clocks[replica_id] = LocalClock(time.monotonic)
        coordinator = RedisCoordinator(
            self.server.url(), replica_id=replica_id, liveness=liveness, clock=clock
        )
        self.coordinators.append(coordinator)
        return coordinator

    def elapse(self, seconds: float, until: Callable[[], bool]) -> None:
        """Let real time pass until *until* holds (about *seconds*)."""
        eventually(until, deadline=seconds + DEADLINE)

    def pause(self, replica_id: str, seconds: float) -> None:
        """Jump one replica's clock: it was paused while Redis's time stood."""
        self.clocks[replica_id].jump += seconds

    def unreachable(self) -> None:
        """Kill the server."""
        self.server.kill()

    def restart(self) -> None:
        """Kill the server and start it again, empty, on the same port."""
        self.server.kill()
        self.server.start()

    def close(self) -> None:
        """Close every coordinator's connections."""
        for coordinator in self.coordinators:
            coordinator.close()


Backend = MemoryBackend | RedisBackend


def acquire_after(
    backend: Backend, coordinator: Coordinator, ttl: float, seconds: float
) -> AppLease:
    """Let about *seconds* pass until *coordinator* acquires APP; return the lease."""
    taken: list[AppLease] = []

    def acquired() -> bool:
        lease = coordinator.acquire(APP, ttl)
        if lease is not None:
            taken.append(lease)
        return bool(taken)

    backend.elapse(seconds, until=acquired)
    return taken[0]


def client_of(server: RedisServer):
    """A plain redis-py client of *server*, to look at the keys."""
    redis = import_or_skip("redis", "redis")
    return redis.Redis("127.0.0.1", server.port, password=server.password)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the module's tests (emptied by each backend)."""
    import_or_skip("redis", "redis")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend in turn, with an empty store."""
    chosen: Backend = (
        MemoryBackend()
        if request.param == "memory"
        else RedisBackend(request.getfixturevalue("redis_server"))
    )
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture(params=["memory", "redis"])
def own_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn, with a store of its own that the test may kill."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    import_or_skip("redis", "redis")
    server = RedisServer(tmp_path).start()
    chosen = RedisBackend(server)
    try:
        yield chosen
    finally:
        chosen.close()
        server.stop()


# --- Leases ---


def test_acquire_gives_a_lease(backend):
    """A free app's lease comes with a token and expires a TTL after it was asked."""
    a = backend.coordinator("a")
    before = backend.clocks["a"]()
    lease = a.acquire(APP, LONG)
    after = backend.clocks["a"]()
    assert lease is not None
    assert (lease.app_name, lease.replica_id) == (APP, "a")
    assert lease.token > 0
    assert before + LONG - 0.002 <= lease.expires <= after + LONG
    assert a.holds(lease, 1.0)


def test_a_held_lease_is_not_acquired_again(backend):
    """While held, neither another replica nor the holder gets the lease again."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    assert a.acquire(APP, LONG) is not None
    assert b.acquire(APP, LONG) is None
    assert a.acquire(APP, LONG) is None
    assert b.acquire("other-app", LONG) is not None


def test_release_lets_another_acquire_with_a_larger_token(backend):
    """After a release another replica acquires, with a larger token."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    first = a.acquire(APP, LONG)
    assert first is not None
    a.release(first)
    assert not a.holds(first, 0.0)
    second = b.acquire(APP, LONG)
    assert second is not None
    assert second.token > first.token
    assert b.holds(second, 1.0)


def test_an_old_lease_proves_nothing_after_a_new_acquisition(backend):
    """The token fences: a replica's earlier lease is not its current one."""
    a = backend.coordinator("a")
    first = a.acquire(APP, LONG)
    assert first is not None
    a.release(first)
    second = a.acquire(APP, LONG)
    assert second is not None
    assert second.token > first.token
    assert not a.holds(first, 0.0)
    assert a.renew(first, LONG) is None
    a.release(first)  # not the current one: changes nothing
    assert a.holds(second, 1.0)


def test_an_expired_lease_is_taken_over(backend):
    """After the TTL another replica acquires; the old lease is then worthless."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    old = a.acquire(APP, SHORT)
    assert old is not None
    assert b.acquire(APP, LONG) is None
    new = acquire_after(backend, b, LONG, SHORT + 0.01)
    assert new.token > old.token
    assert not a.holds(old, 0.0)
    assert a.renew(old, LONG) is None
    a.release(old)
    assert b.holds(new, 1.0)


def test_renew_extends_the_lease_in_the_store(backend):
    """A renewal keeps the token, moves expires on, and lengthens the store's TTL."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    lease = a.acquire(APP, 2.0)
    assert lease is not None
    assert not a.holds(lease, 10.0)
    renewed = a.renew(lease, LONG)
    assert renewed is not None
    assert renewed.token == lease.token
    assert renewed.expires > lease.expires + 20
    assert a.holds(renewed, 20.0)  # the store has at least 20 s left too
    assert b.acquire(APP, LONG) is None


def test_holds_needs_the_margin_locally_and_in_the_store(backend):
    """holds() is false when less than the margin is left, by either clock."""
    a = backend.coordinator("a")
    lease = a.acquire(APP, 10.0)
    assert lease is not None
    assert a.holds(lease, 5.0)
    assert not a.holds(lease, 11.0)
    # A lease that claims a later expiry: the store still says 10 s at most.
    assert not a.holds(attrs.evolve(lease, expires=lease.expires + 100), 20.0)
    assert not a.holds(lease, -1.0)
    assert not a.holds(lease, float("nan"))


def test_another_replica_cannot_use_a_lease(backend):
    """A replica can neither prove, renew nor release another replica's lease."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    lease = a.acquire(APP, LONG)
    assert lease is not None
    assert not b.holds(lease, 0.0)
    assert b.renew(lease, LONG) is None
    b.release(lease)
    assert a.holds(lease, 1.0)


def test_a_paused_holder_sees_its_lease_expired(backend):
    """A holder whose clock jumped past expires stops; the store still has its lease."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    lease = a.acquire(APP, LONG)
    assert lease is not None
    backend.pause("a", LONG + 1)
    assert lease.expires < backend.clocks["a"]()
    assert not a.holds(lease, 0.0)
    assert b.acquire(APP, LONG) is None  # the store's TTL runs on its own clock


def test_ttl_must_be_a_positive_duration(backend):
    """acquire() and renew() refuse a TTL that is not a positive duration."""
    a = backend.coordinator("a")
    for ttl in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(fas.ConfigError, match="lease ttl"):
            a.acquire(APP, ttl)
    lease = a.acquire(APP, LONG)
    assert lease is not None
    with pytest.raises(fas.ConfigError, match="lease ttl"):
        a.renew(lease, 0.0)


# --- The store down or emptied ---


def test_an_unreachable_store(own_backend):
    """Store down: holds() is false, the other calls raise, release and leave do not."""
    a = own_backend.coordinator("a")
    lease = a.acquire(APP, LONG)
    assert lease is not None
    own_backend.unreachable()
    started = time.monotonic()
    assert not a.holds(lease, 0.0)
    assert time.monotonic() - started < 5
    calls: list[Callable[[], object]] = [
        a.heartbeat,
        a.replicas,
        lambda: a.acquire("other-app", LONG),
        lambda: a.renew(lease, LONG),
    ]
    for call in calls:
        with pytest.raises(CoordinationError) as info:
            call()
        assert info.value.transient
        assert isinstance(info.value, fas.FlyAutoscalerError)
    a.release(lease)
    a.leave()


def test_a_store_that_lost_its_data(own_backend):
    """Emptied store: old leases prove nothing, none granted for a TTL, tokens grow."""
    a, b = own_backend.coordinator("a"), own_backend.coordinator("b")
    a.heartbeat()
    old = a.acquire(APP, LONG)
    assert old is not None
    own_backend.restart()
    assert not a.holds(old, 0.0)
    assert a.renew(old, LONG) is None
    assert a.replicas() == []
    assert b.acquire(APP, SHORT) is None  # a may still be finishing an action
    assert acquire_after(own_backend, b, SHORT, SHORT + 0.01).token > old.token


# --- Membership ---


def test_replicas_are_listed_sorted(backend):
    """Every replica that heartbeats is listed, sorted by id."""
    coordinators = [backend.coordinator(name) for name in ("c", "a", "b")]
    for coordinator in coordinators:
        coordinator.heartbeat()
    assert coordinators[0].replicas() == ["a", "b", "c"]


def test_a_silent_replica_drops_out(backend):
    """A replica that stops heartbeating leaves the list after the liveness window."""
    a = backend.coordinator("a", liveness=SHORT)
    b = backend.coordinator("b", liveness=SHORT)
    a.heartbeat()
    b.heartbeat()
    assert a.replicas() == ["a", "b"]

    def only_a_is_left() -> bool:
        a.heartbeat()
        return a.replicas() == ["a"]

    backend.elapse(SHORT + 0.01, until=only_a_is_left)
    b.heartbeat()
    assert a.replicas() == ["a", "b"]


def test_leave_drops_out_at_once(backend):
    """leave() removes the replica without waiting for the window; twice is fine."""
    a, b = backend.coordinator("a"), backend.coordinator("b")
    a.heartbeat()
    b.heartbeat()
    b.leave()
    b.leave()
    assert a.replicas() == ["a"]


# --- Threads ---


def test_threads_never_hold_overlapping_leases(backend):
    """8 threads on each of 2 replicas contend for one app: no two holds overlap."""
    coordinators = [backend.coordinator("a"), backend.coordinator("b")]
    intervals: list[tuple[float, float, int, str]] = []
    errors: list[BaseException] = []
    refused = [0]
    lock = threading.Lock()
    start = threading.Barrier(16)

    def contend(coordinator: Coordinator) -> None:
        try:
            start.wait()
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                lease = coordinator.acquire(APP, LONG)
                if lease is None:
                    with lock:
                        refused[0] += 1
                    continue
                began = time.perf_counter()
                proved = coordinator.holds(lease, 1.0)
                ended = time.perf_counter()
                coordinator.release(lease)
                assert proved
                with lock:
                    intervals.append((began, ended, lease.token, lease.replica_id))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [
        threading.Thread(target=contend, args=(c,))
        for c in coordinators
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(intervals) >= 10
    assert refused[0] > 0  # they did contend
    assert {replica for *_, replica in intervals} == {"a", "b"}
    intervals.sort()
    for first, then in itertools.pairwise(intervals):
        assert first[1] <= then[0], f"{first} overlaps {then}"
        assert first[2] < then[2]


# --- Ownership ---

REPLICAS = ["replica-1", "replica-2", "replica-3", "replica-4", "replica-5"]
APPS = [f"customer-{n:04d}" for n in range(2000)]


def owners(replicas: list[str]) -> dict[str, str]:
    """Each app's owner among *replicas*, as the coordinators say."""
    coordinators = [InMemoryCoordinator(replica_id=r) for r in replicas]
    result = {}
    for app in APPS:
        (owner,) = [c.replica_id for c in coordinators if c.owns(app, replicas)]
        result[app] = owner
    return result


def test_each_app_has_exactly_one_owner():
    """Among N replicas, exactly one owns each app, and each owns about 1/N."""
    counts: dict[str, int] = {}
    for owner in owners(REPLICAS).values():
        counts[owner] = counts.get(owner, 0) + 1
    assert set(counts) == set(REPLICAS)
    assert all(300 <= n <= 500 for n in counts.values()), counts


def test_a_new_replica_takes_only_its_share():
    """Adding a replica moves about 1/N of the apps, each to the new replica."""
    before = owners(REPLICAS)
    after = owners([*REPLICAS, "replica-6"])
    moved = [app for app in APPS if before[app] != after[app]]
    assert all(after[app] == "replica-6" for app in moved)
    assert 2000 / 6 * 0.7 <= len(moved) <= 2000 / 6 * 1.3


def test_a_lost_replica_gives_up_only_its_apps():
    """Removing a replica moves its apps, and only those."""
    before = owners(REPLICAS)
    after = owners([r for r in REPLICAS if r != "replica-3"])
    moved = {app for app in APPS if before[app] != after[app]}
    assert moved == {app for app in APPS if before[app] == "replica-3"}
    assert 2000 / 5 * 0.7 <= len(moved) <= 2000 / 5 * 1.3


def test_owns_needs_to_be_among_the_replicas():
    """A replica not in the list, or an empty list, owns nothing."""
    outsider = InMemoryCoordinator(replica_id="outsider")
    assert not any(outsider.owns(app, REPLICAS) for app in APPS[:100])
    assert not outsider.owns(APPS[0], [])
    assert outsider.owns(APPS[0], ["outsider"])


def test_ownership_is_the_same_in_another_process():
    """Another interpreter (another hash seed) computes the same owners."""
    code = (
        "from flyautoscaler.coordination import InMemoryCoordinator\n"
        f"replicas = {REPLICAS!r}\n"
        "cs = [InMemoryCoordinator(replica_id=r) for r in replicas]\n"
        "for n in range(0, 2000, 7):\n"
        "    app = f'customer-{n:04d}'\n"
        "    print(app, *[c.replica_id for c in cs if c.owns(app, replicas)])\n"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    here = owners(REPLICAS)
    lines = result.stdout.splitlines()
    assert len(lines) == len(range(0, 2000, 7))
    for line in lines:
        app, owner = line.split()
        assert here[app] == owner


def test_ownership_is_pinned():
    """The hash is fixed (BLAKE2b of replica NUL app): these owners never change."""
    replicas = ["a", "b", "c"]
    assert [
        next(
            r for r in replicas if InMemoryCoordinator(replica_id=r).owns(app, replicas)
        )
        for app in ("app-0", "app-1", "app-2", "app-3", "my-app")
    ] == ["a", "c", "a", "c", "b"]


def test_both_coordinators_agree_on_owners():
    """RedisCoordinator.owns is the same function (no server is asked)."""
    import_or_skip("redis", "redis")
    redis_one = RedisCoordinator("redis://127.0.0.1:1/0", replica_id="replica-2")
    memory_one = InMemoryCoordinator(replica_id="replica-2")
    assert all(
        redis_one.owns(app, REPLICAS) == memory_one.owns(app, REPLICAS) for app in APPS
    )


# --- Replica ids ---


def test_default_replica_id(monkeypatch):
    """By default: FLY_MACHINE_ID (or the host name), the pid and a random part."""
    monkeypatch.setenv("FLY_MACHINE_ID", "3d8d9e1b")
    first = InMemoryCoordinator().replica_id
    assert re.fullmatch(rf"3d8d9e1b-{os.getpid()}-[0-9a-f]{{8}}", first)
    assert InMemoryCoordinator().replica_id != first
    monkeypatch.delenv("FLY_MACHINE_ID")
    assert InMemoryCoordinator().replica_id.startswith(socket.gethostname()[:64])


@pytest.mark.parametrize("replica_id", ["", "a b", "tab\there", "nul\0", "x" * 129])
def test_bad_replica_ids_are_refused(replica_id):
    """A replica id is 1 to 128 printable characters without whitespace."""
    with pytest.raises(fas.ConfigError, match="replica id") as info:
        InMemoryCoordinator(replica_id=replica_id)
    assert info.value.field == "replica_id"


def test_explicit_replica_id():
    """An explicit id is kept as given, up to 128 characters."""
    assert InMemoryCoordinator(replica_id="x" * 128).replica_id == "x" * 128
    assert InMemoryCoordinator(replica_id="web-1").replica_id == "web-1"


def test_liveness_must_be_a_positive_duration():
    """The liveness window is a positive duration."""
    with pytest.raises(fas.ConfigError, match="liveness") as info:
        InMemoryCoordinator(liveness=0)
    assert info.value.field == "liveness"


def test_in_memory_coordinator_alone():
    """Alone, with its own store and the real clock, it coordinates one process."""
    coordinator = InMemoryCoordinator(replica_id="solo")
    with coordinator:
        coordinator.heartbeat()
        assert coordinator.replicas() == ["solo"]
        lease = coordinator.acquire(APP, LONG)
        assert lease is not None
        assert lease.token == 1
        assert coordinator.holds(lease, 1.0)
        coordinator.release(lease)
        again = coordinator.acquire(APP, LONG)
        assert again is not None
        assert again.token == 2


# --- Redis only ---


@pytest.fixture
def redis_backend(redis_server: RedisServer) -> Iterator[RedisBackend]:
    """The Redis backend alone."""
    chosen = RedisBackend(redis_server)
    try:
        yield chosen
    finally:
        chosen.close()


def test_keys_in_redis(redis_backend):
    """The documented layout: replicas, lease, fence and epoch keys."""
    a = redis_backend.coordinator("a")
    a.heartbeat()
    lease = a.acquire(APP, LONG)
    assert lease is not None
    client = client_of(redis_backend.server)
    with client:
        assert client.zrange("fas:replicas", 0, -1) == [b"a"]
        assert client.get(f"fas:lease:{APP}") == f"{lease.token} a".encode()
        assert 0 < client.pttl(f"fas:lease:{APP}") <= LONG * 1000
        assert client.get(f"fas:fence:{APP}") == str(lease.token).encode()
        assert client.ttl(f"fas:fence:{APP}") == -1
        assert client.get("fas:epoch") == b"0"


def test_key_prefix(redis_backend):
    """Another prefix keeps another deployment apart in the same database."""
    server = redis_backend.server
    with (
        RedisCoordinator(server.url(), replica_id="a", key_prefix="one:") as one,
        RedisCoordinator(server.url(), replica_id="b", key_prefix="two:") as two,
    ):
        client = client_of(server)
        with client:
            client.set("one:epoch", 0)
            client.set("two:epoch", 0)
        assert one.acquire(APP, LONG) is not None
        assert two.acquire(APP, LONG) is not None
        one.heartbeat()
        assert two.replicas() == []


def test_tokens_keep_growing_without_the_fence_key(redis_backend):
    """Tokens are seeded from the server's clock: losing the fence key lowers none."""
    a = redis_backend.coordinator("a")
    first = a.acquire(APP, LONG)
    assert first is not None
    assert first.token > (time.time() - 3600) * 1_000_000
    a.release(first)
    with client_of(redis_backend.server) as client:
        client.delete(f"fas:fence:{APP}")
    second = a.acquire(APP, LONG)
    assert second is not None
    assert second.token > first.token


@pytest.mark.parametrize("epoch", [None, "future"])
def test_a_new_redis_grants_no_lease_for_one_ttl(redis_backend, epoch):
    """A store never seen (or seen in its future) may have lost data: it waits a TTL."""
    with client_of(redis_backend.server) as client:
        if epoch is None:
            client.delete("fas:epoch")
        else:  # the server's clock went back an hour since
            seconds, micros = client.time()
            client.set("fas:epoch", (seconds + 3600) * 1_000_000 + micros)
    a = redis_backend.coordinator("a")
    a.heartbeat()  # the first sight of the store starts the wait
    assert a.acquire(APP, SHORT) is None
    started = time.monotonic()
    eventually(lambda: a.acquire(APP, SHORT) is not None)
    assert time.monotonic() - started < SHORT + 5


def test_dead_heartbeats_are_deleted(redis_backend):
    """Heartbeats older than ten liveness windows are deleted, not only ignored."""
    a = redis_backend.coordinator("a", liveness=0.02)
    b = redis_backend.coordinator("b", liveness=0.02)
    b.heartbeat()
    with client_of(redis_backend.server) as client:

        def b_is_deleted() -> bool:
            a.replicas()
            return client.zscore("fas:replicas", "b") is None

        eventually(b_is_deleted)


def test_scripts_are_loaded_again(redis_backend):
    """After SCRIPT FLUSH (or a restart) the scripts are sent again (EVALSHA, EVAL)."""
    a = redis_backend.coordinator("a")
    lease = a.acquire(APP, LONG)
    assert lease is not None
    with client_of(redis_backend.server) as client:
        client.script_flush()
    assert a.holds(lease, 1.0)
    assert a.renew(lease, LONG) is not None


def test_unreachable_redis_names_it_without_the_password():
    """Connection refused: a transient error naming host:port, not the password."""
    import_or_skip("redis", "redis")
    port = free_port()
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    with RedisCoordinator(url, replica_id="a", socket_timeout=1.0) as a:
        with pytest.raises(CoordinationError) as info:
            a.heartbeat()
        assert info.value.transient
        message = str(info.value)
        assert message.startswith(f"coordination store redis://127.0.0.1:{port}/0:")
        assert "heartbeat" in message
        assert "hunter2-secret" not in message
        assert "hunter2-secret" not in repr(info.value)
        assert "hunter2-secret" not in repr(a)
        with pytest.raises(CoordinationError, match=f"app '{APP}'") as info:
            a.acquire(APP, LONG)
        assert "hunter2-secret" not in str(info.value)


def test_wrong_password_is_a_permanent_error(redis_backend):
    """Refused credentials are not transient, and not shown."""
    url = redis_backend.server.url("wrong-password-value")
    with RedisCoordinator(url, replica_id="a") as a:
        with pytest.raises(CoordinationError, match="refused the credentials") as info:
            a.heartbeat()
        assert not info.value.transient
        assert "wrong-password-value" not in str(info.value)


def test_a_silent_server_times_out():
    """A server that never answers: holds() is false and calls fail, in time."""
    import_or_skip("redis", "redis")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the kernel completes the handshake
        port = listener.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0"
        with RedisCoordinator(url, replica_id="a", socket_timeout=0.3) as a:
            lease = AppLease(APP, "a", 1, a.clock() + LONG)
            started = time.monotonic()
            assert not a.holds(lease, 0.0)
            with pytest.raises(CoordinationError, match="Timeout") as info:
                a.heartbeat()
            assert info.value.transient
            assert time.monotonic() - started < 5


def test_close_is_idempotent_and_reconnects(redis_backend):
    """close() twice is fine; the next call opens new connections."""
    a = redis_backend.coordinator("a")
    a.heartbeat()
    a.close()
    a.close()
    a.heartbeat()
    assert a.replicas() == ["a"]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://localhost", "must start with redis://"),
        ("redis://:pw-secret@localhost:notaport/0", "cannot be read"),
    ],
)
def test_bad_urls_are_refused(url, match):
    """A URL redis-py cannot read is refused when built, without its password."""
    import_or_skip("redis", "redis")
    with pytest.raises(fas.ConfigError, match=match) as info:
        RedisCoordinator(url)
    assert info.value.field == "url"
    assert "pw-secret" not in str(info.value)


# --- Without redis-py (importing the module: tests/test_collectors_extras.py) ---


def test_redis_missing_names_the_install_command(monkeypatch):
    """Without redis-py, building a RedisCoordinator says how to install it."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=re.escape(install_hint("redis"))):
        RedisCoordinator("redis://localhost")
