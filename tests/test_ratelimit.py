"""Client-side rate limiting: Fly's buckets, 429 back-off, and no 429 storms."""

from __future__ import annotations

import threading

import pytest
import responses

import flyautoscaler as fas
from clock import FakeTime
from factories import machine
from flyautoscaler._ratelimit import DEFAULT_RATE_LIMIT, RateLimit, RateLimiter
from flyautoscaler.fly import FlapsHTTPClient, RetryPolicy
from flyautoscaler.testing import FakeMachinesServer

TOKEN = "fo1_rate-limit-test-token"  # noqa: S105 - a fake server's token
BASE = "http://127.0.0.1:9"
MACHINES = f"{BASE}/v1/apps/my-app/machines"
MACHINE_JSON = {"id": "m1", "state": "started", "region": "iad", "config": {}}
# Fly's create limit with the default 5 % headroom: one launch every 1.05 s.
INTERVAL = 1.05


def launch_input() -> fas.LaunchMachineInput:
    """Return a minimal launch input."""
    return fas.LaunchMachineInput(config=fas.MachineConfig(image="nginx"))


def http_client(fake_time: FakeTime, **options: object) -> FlapsHTTPClient:
    """Return a client for my-app on the fake clock."""
    return FlapsHTTPClient(
        "my-app",
        TOKEN,
        base_url=options.pop("base_url", BASE),  # type: ignore[arg-type]
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **options,  # type: ignore[arg-type]
    )


# --- the buckets ------------------------------------------------------------------


def test_fly_defaults():
    """Defaults are Fly's documented limits: 1/s burst 3, get 5/s burst 10."""
    limiter = RateLimiter()
    assert limiter.limit("launch") == DEFAULT_RATE_LIMIT == RateLimit(1.0, 3.0)
    assert limiter.limit("get") == RateLimit(5.0, 10.0)
    assert limiter.limit("start") == RateLimit(1.0, 3.0)


def test_burst_then_steady_rate():
    """A full bucket lets the burst through, then one request per interval."""
    limiter = RateLimiter(headroom=0.0)
    waits = [limiter.reserve("launch", "my-app", 0.0) for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


def test_get_bucket_is_wider():
    """get has a burst of 10 and a 0.2 s interval."""
    limiter = RateLimiter(headroom=0.0)
    waits = [limiter.reserve("get", "m1", 0.0) for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == [pytest.approx(0.2), pytest.approx(0.4)]


def test_buckets_are_per_action_and_key():
    """Each (action, Machine or app) has its own bucket."""
    limiter = RateLimiter(headroom=0.0)
    for _ in range(3):
        limiter.reserve("start", "m1", 0.0)
    assert limiter.reserve("start", "m1", 0.0) == 1.0
    assert limiter.reserve("start", "m2", 0.0) == 0.0
    assert limiter.reserve("stop", "m1", 0.0) == 0.0


def test_bucket_refills_with_time():
    """After a quiet spell the burst is available again, never more."""
    limiter = RateLimiter(headroom=0.0)
    for _ in range(3):
        limiter.reserve("launch", "a", 0.0)
    assert limiter.wait_time("launch", "a", 0.5) == pytest.approx(0.5)
    assert [limiter.reserve("launch", "a", 10.0) for _ in range(4)] == [
        0.0,
        0.0,
        0.0,
        1.0,
    ]


def test_headroom_slows_the_steady_rate():
    """With 5 % headroom the steady interval is 1.05 s."""
    limiter = RateLimiter()
    waits = [limiter.reserve("launch", "a", 0.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(INTERVAL), pytest.approx(2.1)]


def test_max_wait_refuses_without_taking_a_token():
    """A wait over max_wait returns None and takes no token."""
    limiter = RateLimiter(headroom=0.0, max_wait=1.5)
    waits = [limiter.reserve("launch", "a", 0.0) for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 1.0, None, None]
    assert limiter.wait_time("launch", "a", 0.0) == 2.0


def test_rate_limited_holds_the_bucket():
    """After a 429 no request goes before Retry-After, then one per interval."""
    limiter = RateLimiter(headroom=0.0)
    limiter.rate_limited("start", "m1", 0.0, 4.0)
    assert limiter.wait_time("start", "m1", 0.0) == 4.0
    assert limiter.reserve("start", "m1", 4.0) == 0.0
    assert limiter.reserve("start", "m1", 4.0) == 1.0


def test_take_counts_without_waiting():
    """take() uses up a token even when the bucket is empty, without a wait."""
    limiter = RateLimiter(headroom=0.0)
    for _ in range(4):
        limiter.take("launch", "a", 0.0)
    assert limiter.wait_time("launch", "a", 0.0) == 2.0


def test_reservations_are_shared_by_threads():
    """Threads reserving on one bucket get distinct, first-come slots."""
    limiter = RateLimiter(headroom=0.0, max_wait=100.0)
    waits: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def reserve() -> None:
        barrier.wait()
        wait = limiter.reserve("launch", "a", 0.0)
        assert wait is not None
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [0.0, 0.0, 0.0] + [float(i) for i in range(1, 18)]


def test_many_keys_are_pruned():
    """Buckets that are full again are forgotten once there are many."""
    limiter = RateLimiter()
    for i in range(2000):
        limiter.reserve("start", f"m{i}", float(i))
    assert len(limiter._due) < 1100


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"headroom": 1.0}, "headroom"),
        ({"headroom": -0.1}, "headroom"),
        ({"max_wait": -1.0}, "max_wait"),
    ],
)
def test_limiter_validation(options: dict[str, float], message: str):
    """Nonsense settings are refused."""
    with pytest.raises(ValueError, match=message):
        RateLimiter(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 3.0), (1.0, 0.5), (-1.0, 1.0)])
def test_rate_limit_validation(rate: float, burst: float):
    """A limit needs a positive rate and a burst of at least one."""
    with pytest.raises(ValueError, match=r"rate|burst"):
        RateLimit(rate, burst)


# --- in the HTTP client -------------------------------------------------------------


def test_client_paces_launches(rsps: responses.RequestsMock, fake_time: FakeTime):
    """Five launches in a row: three at once, then one per 1.05 s."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    with http_client(fake_time) as client:
        for _ in range(5):
            client.launch(launch_input())
    assert len(rsps.calls) == 5
    assert fake_time.sleeps == [pytest.approx(INTERVAL)] * 2


def test_client_keys_machine_actions_by_machine(
    rsps: responses.RequestsMock, fake_time: FakeTime
):
    """Starts of different Machines never wait for each other."""
    for i in range(10):
        rsps.post(f"{MACHINES}/m{i}/start", json={"previous_state": "stopped"})
    with http_client(fake_time) as client:
        for i in range(10):
            client.start(f"m{i}")
    assert fake_time.sleeps == []


def test_client_paces_suspends_per_machine_apart_from_stops(
    rsps: responses.RequestsMock, fake_time: FakeTime
):
    """Suspends of one Machine share a bucket (burst 3), apart from its stops."""
    rsps.post(f"{MACHINES}/m1/suspend", json={"ok": True})
    rsps.post(f"{MACHINES}/m1/stop", json={"ok": True})
    rsps.post(f"{MACHINES}/m2/suspend", json={"ok": True})
    with http_client(fake_time) as client:
        for _ in range(3):
            client.suspend("m1")
        client.stop(fas.StopMachineInput("m1"))
        client.suspend("m2")
        assert fake_time.sleeps == []
        client.suspend("m1")
    assert fake_time.sleeps == [pytest.approx(INTERVAL)]
    assert len(rsps.calls) == 6


def test_launch_429_waits_retry_after_and_the_bucket_learns(
    rsps: responses.RequestsMock, fake_time: FakeTime
):
    """A 429 on launch waits Retry-After, retries, and later launches wait too."""
    rsps.post(MACHINES, status=429, headers={"Retry-After": "2"})
    rsps.post(MACHINES, json=MACHINE_JSON)
    with http_client(fake_time) as client:
        assert client.launch(launch_input()).id == "m1"
        assert fake_time.sleeps == [2.0]
        client.launch(launch_input())
    # The server said wait 2 s, the retry used the next token: the next launch
    # waits a full interval instead of bursting into another 429.
    assert fake_time.sleeps == [2.0, pytest.approx(INTERVAL)]
    assert len(rsps.calls) == 3


def test_too_long_a_wait_fails_without_sending(
    rsps: responses.RequestsMock, fake_time: FakeTime
):
    """A token further off than max_wait raises a rate-limit error, sends nothing."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    limiter = RateLimiter(max_wait=0.5)
    with http_client(fake_time, rate_limiter=limiter) as client:
        for _ in range(3):
            client.launch(launch_input())
        with pytest.raises(fas.FlapsRateLimitedError, match="client-side") as caught:
            client.launch(launch_input())
    assert caught.value.status is None
    assert caught.value.retry_after == pytest.approx(INTERVAL)
    assert caught.value.transient
    assert len(rsps.calls) == 3
    assert fake_time.sleeps == []


def test_limiter_can_be_disabled(rsps: responses.RequestsMock, fake_time: FakeTime):
    """rate_limiter=None sends at once, however many requests."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    with http_client(fake_time, rate_limiter=None) as client:
        for _ in range(10):
            client.launch(launch_input())
    assert fake_time.sleeps == []


def test_limiter_shared_between_clients(
    rsps: responses.RequestsMock, fake_time: FakeTime
):
    """Two clients given one limiter share its buckets."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    limiter = RateLimiter()
    with (
        http_client(fake_time, rate_limiter=limiter) as one,
        http_client(fake_time, rate_limiter=limiter) as two,
    ):
        for client in (one, two, one, two):
            client.launch(launch_input())
    assert fake_time.sleeps == [pytest.approx(INTERVAL)]


# --- against the fake server's real buckets ----------------------------------------


def launch_statuses(fake_time: FakeTime, **options: object) -> list[int | None]:
    """Launch 10 Machines through the fake server on the fake clock."""
    with FakeMachinesServer(
        token=TOKEN, rate_limits=True, clock=fake_time.clock
    ) as server:
        server.add_app("my-app", machines=[machine("1", "started")])
        policy = RetryPolicy(max_attempts=10, max_elapsed=60.0)
        with http_client(
            fake_time, base_url=server.url, retry=policy, **options
        ) as client:
            for _ in range(10):
                client.launch(launch_input())
        assert len(server.machines("my-app")) == 11
        return [r.status for r in server.requests if r.action == "launch"]


def test_no_429_storm_with_the_limiter(fake_time: FakeTime):
    """With the limiter, ten launches draw no 429 from Fly's buckets."""
    statuses = launch_statuses(fake_time)
    assert statuses == [200] * 10
    assert sum(fake_time.sleeps) == pytest.approx(7 * INTERVAL)


def test_without_the_limiter_429s_are_retried_after_retry_after(fake_time: FakeTime):
    """Without the limiter the 429s come, and each is retried after Retry-After."""
    statuses = launch_statuses(fake_time, rate_limiter=None)
    assert statuses.count(200) == 10
    assert statuses.count(429) >= 1
    assert set(fake_time.sleeps) == {1.0}
