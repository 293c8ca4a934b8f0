"""Fly's real timing in the fakes and in ``flyautoscaler simulate``.

The fakes give each transition its own delay (a new Machine's boot, a cold
start, a resume, a stop, a suspend). Through the command: creates pace through
Fly's per-app create limit (a burst of 3, then 1 per second) and show in the
time series; new Machines boot before they are ``started``; a resume is
faster than a cold start; the documented defaults are the ones used. Nothing
here sleeps or measures real time: every run is on the simulated clock.
"""

from __future__ import annotations

import threading
import time

import pytest

import flyautoscaler as fas
from clock import FakeTime
from factories import machine
from flyautoscaler._collect import Gatherer, InstantCollector
from flyautoscaler.fly import SessionPool
from flyautoscaler.testing import TRANSITIONS, FakeFlapsClient, FakeMachinesServer

TOKEN = "fo1_timing-token"  # noqa: S105 - the fake server's token


def launch_input() -> fas.LaunchMachineInput:
    """Return a launch input of the default group."""
    config = fas.MachineConfig(
        image="registry.fly.io/my-app:deployment-02",
        metadata={"fly_process_group": "app"},
    )
    return fas.LaunchMachineInput(config)


# --- the fakes' per-transition delays ---------------------------------------------


def test_each_transition_takes_its_own_delay(fake_time: FakeTime) -> None:
    """create, start, resume, stop and suspend each wait their own delay."""
    delays = {"create": 10.0, "start": 2.0, "resume": 0.3, "stop": 5.0, "suspend": 4.0}
    client = FakeFlapsClient(
        [machine("s", "stopped"), machine("p", "suspended"), machine("r", "started")],
        transition_delays=delays,
        clock=fake_time.clock,
    )
    new = client.launch(launch_input())
    client.start("s")
    client.start("p")
    client.stop(fas.StopMachineInput("r"))
    began = fake_time.now

    def states() -> dict[str, str]:
        return {m.id: m.state for m in client.machines}

    assert states() == {
        "s": "starting",
        "p": "starting",
        "r": "stopping",
        new.id: "starting",
    }
    fake_time.now = began + 0.3
    assert states()["p"] == "started"
    assert states()["s"] == "starting"
    fake_time.now = began + 2.0
    assert states()["s"] == "started"
    fake_time.now = began + 5.0
    assert states()["r"] == "stopped"
    assert states()[new.id] == "starting"
    fake_time.now = began + 10.0
    assert states()[new.id] == "started"
    client.suspend("s")
    assert states()["s"] == "suspending"
    fake_time.now += 4.0
    assert states()["s"] == "suspended"


def test_transition_delay_is_the_default_of_the_others(fake_time: FakeTime) -> None:
    """A transition without its own delay takes transition_delay."""
    client = FakeFlapsClient(
        [machine("s", "stopped")],
        transition_delay=7.0,
        transition_delays={"create": 1.0},
        clock=fake_time.clock,
    )
    assert client.transition_delays == {
        "create": 1.0,
        "start": 7.0,
        "resume": 7.0,
        "stop": 7.0,
        "suspend": 7.0,
    }
    assert client.delay("start") == 7.0
    client.start("s")
    fake_time.now += 6.9
    assert client.machine("s").state == "starting"
    fake_time.now += 0.1
    assert client.machine("s").state == "started"


@pytest.mark.parametrize(
    ("delays", "message"),
    [
        ({"boot": 1.0}, "unknown transitions ['boot']"),
        ({"start": -1.0}, "transition_delays['start'] must be >= 0"),
        ({"resume": float("nan")}, "transition_delays['resume'] must be >= 0"),
    ],
)
def test_bad_transition_delays_are_refused(
    delays: dict[str, float], message: str
) -> None:
    """An unknown transition or a negative delay is a ValueError naming it."""
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        FakeFlapsClient(transition_delays=delays)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        FakeMachinesServer(token=TOKEN, transition_delays=delays)


def test_server_apps_get_the_delays(fake_time: FakeTime) -> None:
    """FakeMachinesServer hands its transition_delays to every app's table."""
    server = FakeMachinesServer(
        token=TOKEN,
        transition_delay=3.0,
        transition_delays={"resume": 0.5},
        clock=fake_time.clock,
    )
    table = server.add_app("my-app", machines=[machine("p", "suspended")])
    assert table.transition_delays == dict.fromkeys(TRANSITIONS, 3.0) | {"resume": 0.5}
    table.start("p")
    fake_time.now += 0.5
    assert server.machines("my-app")[0].state == "started"


def test_session_pool_can_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SessionPool(trust_env=False) makes sessions that read no proxy settings."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    default, loopback = SessionPool(), SessionPool(trust_env=False)
    try:
        assert default.get().trust_env is True
        assert loopback.get().trust_env is False
    finally:
        default.close()
        loopback.close()


def test_an_instant_collector_is_asked_on_the_calling_thread() -> None:
    """With a deadline, an InstantCollector runs inline; the others on threads."""
    seen: dict[str, threading.Thread] = {}

    class Instant(InstantCollector):
        name = "instant"

        def collect_metric(self, app_name: str) -> float:
            seen[self.name] = threading.current_thread()
            return 1.0

    class Threaded:
        name = "threaded"

        def collect_metric(self, app_name: str) -> float:
            seen[self.name] = threading.current_thread()
            return 2.0

    collection = Gatherer().collect(
        [Threaded(), Instant()], "app", deadline=time.monotonic() + 60
    )
    assert dict(collection.values) == {"threaded": 2.0, "instant": 1.0}
    assert list(collection.values) == ["threaded", "instant"]
    assert seen["instant"] is threading.current_thread()
    assert seen["threaded"] is not threading.current_thread()
