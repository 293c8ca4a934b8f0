"""ActionThreads: the long-lived daemon threads Machine actions run on."""

from __future__ import annotations

import threading

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler._executor import ActionThreads
from flyautoscaler.testing import FakeFlapsClient, FakeFlyClient

WAIT = 10.0  # a safety net for the waits below, never a timing assertion


def test_threads_start_as_calls_come_and_never_exceed_the_size():
    """Four calls held at once on a size-3 pool: three run, one waits its turn."""
    release = threading.Event()
    running = threading.Semaphore(0)
    threads = ActionThreads(3, name="test-action")

    def hold() -> str:
        running.release()
        release.wait(WAIT)
        return threading.current_thread().name

    futures = [threads.submit(hold) for _ in range(4)]
    for _ in range(3):
        assert running.acquire(timeout=WAIT)
    assert len(threads.threads()) == 3
    assert not futures[3].running()
    release.set()
    names = {f.result(WAIT) for f in futures}
    assert len(names) == 3
    assert all(t.daemon for t in threads.threads())
    threads.close(WAIT)
    assert threads.threads() == []


def test_idle_threads_are_reused():
    """Calls one after another run on the one thread already started."""
    threads = ActionThreads(4)
    names = {
        threads.submit(threading.current_thread).result(WAIT).name for _ in range(5)
    }
    assert len(names) == 1
    threads.close(WAIT)


def test_errors_reach_the_future():
    """An exception raised by a call is the future's exception."""
    threads = ActionThreads(1)

    def boom() -> None:
        raise fas.FlapsServerError("down", status=503)

    with pytest.raises(fas.FlapsServerError):
        threads.submit(boom).result(WAIT)
    threads.close(WAIT)


def test_closed_threads_take_no_call():
    """After close() every thread has ended and submit() refuses."""
    threads = ActionThreads(2)
    threads.submit(lambda: None).result(WAIT)
    threads.close(WAIT)
    assert threads.threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        threads.submit(lambda: None)


def test_size_must_be_positive():
    """A pool of no thread is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        ActionThreads(0)


def test_pool_apps_share_the_pools_threads():
    """Every app of a pool acts on the pool's threads, closed with the pool."""
    fly = FakeFlyClient()
    fly.add_organization("myorg", org_id="1")
    clients = {}
    for name in ("my-app-1", "my-app-2"):
        fly.add_app(name, "myorg", release_status="complete")
        clients[name] = FakeFlapsClient([machine(f"{i}") for i in range(4)])
    seen: set[str] = set()

    def note(method: str, args: tuple[object, ...]) -> None:
        seen.add(threading.current_thread().name)

    for client in clients.values():
        client._rec.before_call = note
    pool = fas.ReconcilerPool(fly, concurrency=2)
    pool.app_name = "my-app-*"
    pool.organization_slug = "myorg"
    pool.new_flaps_client = clients.__getitem__
    pool.new_reconciler = lambda: fas.Reconciler(min_started_machine_n="4")
    pool.reconcile_interval = 0.01
    with pool:
        assert pool.wait_for_passes(6, WAIT)
    assert all(c.count("started") == 4 for c in clients.values())
    action_threads = {n for n in seen if n.startswith("flyautoscaler-pool-action")}
    assert action_threads
    alive = [t.name for t in threading.enumerate() if t.name in action_threads]
    assert alive == []
