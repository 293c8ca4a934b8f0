"""Parallel Machine actions: the bound, no duplicates, and every rule of a pass."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler.fly import FlapsHTTPClient
from flyautoscaler.testing import FakeFlapsClient, FakeMachinesServer

TOKEN = "fo1_parallel-test-token"  # noqa: S105 - the fake server's token
# A safety net for the synchronisation below, never a timing assertion: a test
# that waits this long has already failed.
GATE_TIMEOUT = 10.0


def ids_of(client: FakeFlapsClient, method: str) -> list[str]:
    """Return the Machine ids *method* was called with, in call order."""
    out = []
    for call in client.calls:
        if call.method == method:
            arg = call.args[0]
            out.append(arg if isinstance(arg, str) else arg.id)  # type: ignore[attr-defined]
    return out


class Gate:
    """Holds every call but the first until *width* calls are waiting together.

    The first call (the step's probe) passes alone; the next *width* calls
    block until all of them have arrived, proving they run at the same time.
    """

    def __init__(self, method: str, width: int) -> None:
        self.method = method
        self.width = width
        self.arrived = 0
        self.lock = threading.Lock()
        self.open = threading.Event()

    def __call__(self, method: str, args: tuple[object, ...]) -> None:
        """Block a call of the gated method until the gate opens."""
        if method != self.method:
            return
        with self.lock:
            self.arrived += 1
            arrived = self.arrived
        if arrived == 1:
            return
        if arrived == 1 + self.width:
            self.open.set()
        assert self.open.wait(GATE_TIMEOUT), "calls did not run side by side"


@pytest.fixture
def server() -> Iterator[FakeMachinesServer]:
    """A fake Machines API with Fly's rate limits and a little latency."""
    with FakeMachinesServer(token=TOKEN, rate_limits=True, latency=0.01) as fake:
        yield fake


def test_default_parallelism():
    """Reconciler runs 8 actions at once by default; validate rejects below 1."""
    assert fas.Reconciler().max_parallel_actions == 8
    with pytest.raises(fas.ConfigError, match="at least 1"):
        fas.Reconciler(max_parallel_actions=0).validate()


@pytest.mark.parametrize("bound", [2, 4, 8])
def test_bound_is_reached_and_never_exceeded(bound: int):
    """After the probe, exactly max_parallel_actions starts run side by side."""
    gate = Gate("start", bound)
    client = FakeFlapsClient(
        [machine(f"{i:02d}", "stopped") for i in range(20)], before_call=gate
    )
    r = fas.Reconciler(
        client=client, min_started_machine_n="20", max_parallel_actions=bound
    )
    result = r.reconcile()
    assert result.ok
    assert len(result.started) == 20
    assert client.max_in_flight == bound
    assert r._threads is not None
    assert len(r._threads.threads()) == bound


def test_bound_holds_over_http(server: FakeMachinesServer):
    """Against the fake server, in-flight requests never exceed the bound."""
    server.add_app("my-app", machines=[machine(f"{i:02d}") for i in range(24)])
    with FlapsHTTPClient("my-app", TOKEN, base_url=server.url) as client:
        r = fas.Reconciler(
            client=client, min_started_machine_n="24", max_parallel_actions=3
        )
        result = r.reconcile()
    assert result.ok
    assert server.max_in_flight <= 3
    assert server.count("start") == 24
    starts = [rec.path for rec in server.requests if rec.action == "start"]
    assert len(starts) == len(set(starts)) == 24
    assert all(rec.status == 200 for rec in server.requests)


def test_no_action_is_issued_twice():
    """With failures scattered over the candidates, each is tried at most once."""
    client = FakeFlapsClient([machine(f"{i:02d}", "stopped") for i in range(30)])
    for key in ("01", "02", "07", "13", "14", "15", "22"):
        client.fail("start", key=key)
    r = fas.Reconciler(client=client, min_started_machine_n="20")
    result = r.reconcile()
    calls = ids_of(client, "start")
    assert len(calls) == len(set(calls))
    assert len(result.started) == 20
    assert r.stats.machine_start_failed == 7
    assert client.count("started") == 20


def test_failed_start_moves_on_without_overshoot():
    """Failed starts free their slots for the next candidates; never above target."""
    gate = Gate("start", 4)
    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 10)], before_call=gate
    )
    client.fail("start", key="2")
    client.fail("start", key="4")
    r = fas.Reconciler(client=client, min_started_machine_n="5", max_parallel_actions=4)
    result = r.reconcile()
    assert sorted(ids_of(client, "start"), key=int) == [str(i) for i in range(1, 8)]
    assert result.started == ("1", "3", "5", "6", "7")
    assert [f.machine_id for f in result.failures] == ["2", "4"]
    assert client.count("started") == 5
    assert client.max_in_flight == 4
    assert r.stats.machine_started == 5
    assert r.stats.machine_start_failed == 2


def test_stop_in_parallel_keeps_candidate_order():
    """Stops run side by side; the result lists them in candidate order."""
    gate = Gate("stop", 3)
    client = FakeFlapsClient(
        [machine(str(i), "started") for i in range(1, 9)], before_call=gate
    )
    client.fail("stop", key="3")
    r = fas.Reconciler(client=client, max_started_machine_n="4", max_parallel_actions=3)
    result = r.reconcile()
    assert result.stopped == ("1", "2", "4", "5")
    assert client.count("started") == 4
    assert client.max_in_flight == 3


def test_destroy_in_parallel_never_more_than_asked_nor_the_last():
    """Parallel destroys stop at the number asked, failures included, and at one."""
    gate = Gate("destroy", 2)
    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 7)], before_call=gate
    )
    client.fail("destroy", key="2")
    r = fas.Reconciler(client=client, max_created_machine_n="3", max_parallel_actions=4)
    result = r.reconcile()
    assert sorted(ids_of(client, "destroy")) == ["1", "2", "3"]
    assert result.destroyed == ("1", "3")
    assert client.count() == 4

    everything = FakeFlapsClient([machine(str(i), "stopped") for i in range(1, 7)])
    r = fas.Reconciler(client=everything, max_created_machine_n="0")
    assert len(r.reconcile().destroyed) == 5
    assert everything.count() == 1


def test_create_in_parallel_gives_up_after_bounded_attempts():
    """Launches fail after the probe: the step stops after 3 failures in a row."""
    launches = [0]

    def fail_after_first(method: str, args: tuple[object, ...]) -> None:
        if method == "launch":
            launches[0] += 1
            if launches[0] > 1:
                raise fas.FlapsServerError("no capacity", status=503)

    client = FakeFlapsClient([machine("1", "started")], before_call=fail_after_first)
    r = fas.Reconciler(client=client, min_created_machine_n="9", max_parallel_actions=4)
    result = r.reconcile()
    # The probe succeeds, four launch at once and fail (each may have created
    # its Machine, so none is sent again): four failures in a row, more than
    # max_create_attempts (3), end the step.
    assert client.call_count("launch") == 1 + 4
    assert len(result.created) == 1
    assert result.gave_up_creating
    assert r.stats.machine_create_failed == 4
    assert client.count() == 2


def test_create_then_start_in_parallel():
    """Creates and starts of one pass both run in parallel and reach the targets."""
    client = FakeFlapsClient([machine("1", "stopped"), machine("2", "stopped")])
    r = fas.Reconciler(
        client=client,
        regions=["ams", "syd", "iad"],
        min_created_machine_n="30",
        min_started_machine_n="30",
        initial_machine_state="stopped",
    )
    result = r.reconcile()
    assert result.ok
    assert len(result.created) == 28
    assert len(result.started) == 30
    assert client.count("started") == 30
    regions = [client.machine(i).region for i in result.created]
    assert regions == (["ams", "syd", "iad"] * 10)[:28]


def test_deadline_stops_new_actions_in_parallel():
    """The deadline is checked before each action: nothing starts after it."""
    now = [0.0]

    def tick(method: str, args: tuple[object, ...]) -> None:
        if method == "start":
            now[0] += 1.0

    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 6)], before_call=tick
    )
    r = fas.Reconciler(client=client, min_started_machine_n="5", clock=lambda: now[0])
    result = r.reconcile(deadline=1.0)
    assert result.started == ("1",)
    assert result.timed_out
    assert client.call_count("start") == 1


def test_cancel_stops_new_actions_and_waits_for_those_in_flight():
    """Setting cancel mid-step starts nothing new; the calls in flight finish."""
    cancel = threading.Event()
    gate = Gate("start", 4)

    def cancel_then_gate(method: str, args: tuple[object, ...]) -> None:
        gate(method, args)
        if method == "start" and gate.open.is_set():
            cancel.set()

    client = FakeFlapsClient(
        [machine(f"{i:02d}", "stopped") for i in range(12)],
        before_call=cancel_then_gate,
    )
    r = fas.Reconciler(client=client, min_started_machine_n="12")
    r.max_parallel_actions = 4
    result = r.reconcile(cancel=cancel)
    assert result.timed_out
    assert result.started == ("00", "01", "02", "03", "04")
    assert client.call_count("start") == 5
    assert client._rec.in_flight == 0  # the pass waited for the calls in flight
    threads = r._threads
    assert threads is not None
    r.close()
    assert threads.threads() == []


def test_sequential_runs_on_the_calling_thread():
    """max_parallel_actions=1 calls the client on the reconciling thread only."""
    threads: set[str] = set()
    client = FakeFlapsClient(
        [machine(str(i), "stopped") for i in range(1, 5)],
        before_call=lambda method, args: threads.add(threading.current_thread().name),
    )
    r = fas.Reconciler(client=client, min_started_machine_n="4", max_parallel_actions=1)
    assert r.reconcile().started == ("1", "2", "3", "4")
    assert threads == {threading.current_thread().name}
    assert client.max_in_flight == 1


def test_action_threads_leave_no_sessions_behind(server: FakeMachinesServer):
    """Each action thread's HTTP session is closed when the thread ends."""
    server.add_app("my-app", machines=[machine(f"{i:02d}") for i in range(12)])
    with FlapsHTTPClient("my-app", TOKEN, base_url=server.url) as client:
        r = fas.Reconciler(client=client, min_started_machine_n="12")
        assert len(r.reconcile().started) == 12
        r.close()
        sessions = client._sender.sessions
        assert len(sessions._sessions) == 1


def test_action_threads_and_connections_outlive_a_step(server: FakeMachinesServer):
    """Passes reuse the reconciler's threads, and so their HTTP sessions."""
    server.add_app("my-app", machines=[machine(f"{i:02d}") for i in range(12)])
    with FlapsHTTPClient("my-app", TOKEN, base_url=server.url) as client:
        r = fas.Reconciler(client=client, min_started_machine_n="12")
        r.max_parallel_actions = 4
        assert len(r.reconcile().started) == 12
        threads = r._threads
        assert threads is not None
        first = set(threads.threads())
        sessions = len(client._sender.sessions._sessions)
        r.min_started_machine_n = "0"
        r.max_started_machine_n = "0"
        assert len(r.reconcile().stopped) == 12
        assert r._threads is threads
        assert set(threads.threads()) == first
        assert len(client._sender.sessions._sessions) == sessions <= 1 + 4
        r.close()
