"""The shipped fakes behave like the services they stand in for."""

from __future__ import annotations

import threading

import pytest

import flyautoscaler as fas
from clock import FakeTime
from factories import machine
from flyautoscaler.testing import (
    Call,
    CallableCollector,
    FakeFlapsClient,
    FakeFlyClient,
    StaticCollector,
    parse_image_ref,
)


def launch_input(**fields: object) -> fas.LaunchMachineInput:
    """Return a launch input with a small config."""
    config = fas.MachineConfig(
        image="registry.fly.io/my-app:deployment-02",
        metadata={"fly_process_group": "app"},
    )
    return fas.LaunchMachineInput(config, **fields)  # type: ignore[arg-type]


def test_launch_started_or_created():
    """launch makes a started Machine, or a created one with skip_launch."""
    client = FakeFlapsClient(region="ord")
    started = client.launch(launch_input())
    created = client.launch(launch_input(skip_launch=True, region="ams"))
    assert started.state == "started"
    assert started.region == "ord"
    assert started.host_status == "ok"
    assert started.full_image_ref() == "registry.fly.io/my-app:deployment-02"
    assert created.state == "created"
    assert created.region == "ams"
    assert [m.id for m in client.machines] == [started.id, created.id]
    assert started.id < created.id


def test_launch_copies_the_config():
    """The stored Machine's config is a copy of the input's."""
    client = FakeFlapsClient()
    given = launch_input()
    stored = client.launch(given)
    assert stored.config == given.config
    assert stored.config is not given.config


def test_start_stop_transitions():
    """start and stop move Machines between real states."""
    client = FakeFlapsClient([machine("1", "stopped"), machine("2", "suspended")])
    assert client.start("1").previous_state == "stopped"
    assert client.start("2").previous_state == "suspended"
    assert client.machine("1").state == "started"
    client.stop(fas.StopMachineInput("1"))
    assert client.machine("1").state == "stopped"
    client.stop(fas.StopMachineInput("1"))  # stopping a stopped Machine is a no-op
    assert client.count("stopped") == 1
    assert client.count("started") == 1


def test_invalid_transitions_conflict():
    """Starting a destroying Machine or stopping a failed one is a conflict."""
    client = FakeFlapsClient([machine("1", "destroying"), machine("2", "failed")])
    with pytest.raises(fas.FlapsConflictError):
        client.start("1")
    with pytest.raises(fas.FlapsConflictError):
        client.stop(fas.StopMachineInput("2"))


def test_suspend_goes_through_suspending_on_the_clock(fake_time: FakeTime):
    """With a delay, suspend leaves the Machine suspending until the clock passes it."""
    client = FakeFlapsClient(
        [machine("1", "started")], transition_delay=2.0, clock=fake_time.clock
    )
    assert client.suspend("1") is None
    assert client.machine("1").state == "suspending"
    assert client.list("suspended") == []
    fake_time.now += 1.9
    assert client.machine("1").state == "suspending"
    fake_time.now += 0.1
    assert client.machine("1").state == "suspended"
    assert [m.id for m in client.list("suspended")] == ["1"]


def test_suspend_without_delay_is_immediate_and_idempotent():
    """Without a delay the Machine is suspended at once; suspending again is a no-op."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "started")])
    client.suspend("1")
    client.suspend("1")
    assert client.machine("1").state == "suspended"
    assert client.machine("2").state == "started"
    assert client.count("suspended") == 1


def test_a_starting_machine_can_be_suspended(fake_time: FakeTime):
    """A Machine still starting is suspended once both delays have passed."""
    client = FakeFlapsClient(
        [machine("1", "stopped")], transition_delay=5.0, clock=fake_time.clock
    )
    client.start("1")
    assert client.machine("1").state == "starting"
    client.suspend("1")
    assert client.machine("1").state == "suspending"
    fake_time.now += 5.0
    assert client.machine("1").state == "suspended"


def test_start_resumes_a_suspended_machine(fake_time: FakeTime):
    """start on a suspended Machine reports previous_state suspended and starts it."""
    client = FakeFlapsClient(
        [machine("1", "started")], transition_delay=1.0, clock=fake_time.clock
    )
    client.suspend("1")
    fake_time.now += 1.0
    answer = client.start("1")
    assert answer.previous_state == "suspended"
    assert client.machine("1").state == "starting"
    fake_time.now += 1.0
    assert client.machine("1").state == "started"


@pytest.mark.parametrize(
    "state", ["stopped", "created", "stopping", "destroying", "failed"]
)
def test_suspend_conflicts_unless_started(state: str):
    """Suspending a Machine that is not started (or starting) is a 409 conflict."""
    client = FakeFlapsClient([machine("1", state)], app_name="my-app")
    with pytest.raises(fas.FlapsConflictError) as info:
        client.suspend("1")
    assert info.value.status == 409
    assert info.value.method == "POST"
    assert info.value.url == "/v1/apps/my-app/machines/1"
    assert f"machine is {state}, cannot suspend" in str(info.value)
    assert client.machine("1").state == state


def test_suspend_unknown_machine_not_found():
    """Suspending an unknown id raises FlapsNotFoundError (404)."""
    client = FakeFlapsClient()
    with pytest.raises(fas.FlapsNotFoundError) as info:
        client.suspend("nope")
    assert info.value.status == 404


def test_suspend_of_a_leased_machine_needs_the_nonce(fake_time: FakeTime):
    """While leased, suspend needs the lease's nonce; once it expires, it does not."""
    client = FakeFlapsClient(
        [machine("1", "started"), machine("2", "started")], clock=fake_time.clock
    )
    lease = client.acquire_lease("1", ttl=10)
    for nonce in ("", "not-the-nonce"):
        with pytest.raises(fas.FlapsConflictError, match="aborted: machine ID 1 lease"):
            client.suspend("1", nonce)
    assert client.machine("1").state == "started"
    client.suspend("1", lease.nonce)
    assert client.machine("1").state == "suspended"
    client.acquire_lease("2", ttl=10)
    fake_time.now += 10
    client.suspend("2")
    assert client.machine("2").state == "suspended"


def test_suspend_calls_are_recorded_and_can_fail():
    """Each suspend is in the call log with its arguments; fail() injects errors."""
    client = FakeFlapsClient([machine("1", "started")])
    client.fail("suspend", fas.FlapsServerError("boom", status=500), key="1")
    with pytest.raises(fas.FlapsServerError):
        client.suspend("1", "n-1")
    assert client.machine("1").state == "started"  # a failed call changes nothing
    client.suspend("1")
    assert client.call_count("suspend") == 2
    assert client.calls == [Call("suspend", ("1", "n-1")), Call("suspend", ("1", ""))]


def test_destroy_needs_kill_for_running():
    """Destroying a started Machine needs kill; a stopped one goes at once."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "stopped")])
    with pytest.raises(fas.FlapsConflictError, match="not currently stopped"):
        client.destroy(fas.RemoveMachineInput("1"))
    client.destroy(fas.RemoveMachineInput("1", kill=True))
    client.destroy(fas.RemoveMachineInput("2"))
    assert client.machines == []


def test_unknown_machine_not_found():
    """Acting on an unknown id raises FlapsNotFoundError with status 404."""
    client = FakeFlapsClient()
    with pytest.raises(fas.FlapsNotFoundError) as info:
        client.start("nope")
    assert info.value.status == 404


def test_list_filters_by_state():
    """list('') returns all Machines; a comma-separated state filters them."""
    client = FakeFlapsClient(
        [machine("1", "started"), machine("2", "stopped"), machine("3", "created")]
    )
    assert [m.id for m in client.list()] == ["1", "2", "3"]
    assert [m.id for m in client.list("started,created")] == ["1", "3"]


def test_call_log_and_injected_failures():
    """Failures are injected per method and key, for N calls or forever."""
    client = FakeFlapsClient([machine("1", "stopped"), machine("2", "stopped")])
    client.fail("start", fas.FlapsRateLimitedError("slow down", retry_after=1.0))
    with pytest.raises(fas.FlapsRateLimitedError):
        client.start("1")
    client.start("1")
    client.fail("start", key="2", times=None)
    for _ in range(3):
        with pytest.raises(fas.FlapsError):
            client.start("2")
    client.clear_failures()
    client.start("2")
    assert client.call_count("start") == 6
    assert client.calls[0] == client.calls[1]
    assert client.calls[0].args == ("1", "")


def test_failed_call_changes_nothing():
    """An injected failure leaves the Machine table as it was."""
    client = FakeFlapsClient([machine("1", "stopped")])
    client.fail("start")
    with pytest.raises(fas.FlapsError):
        client.start("1")
    assert client.machine("1").state == "stopped"


def test_before_call_hook_and_in_flight():
    """before_call runs outside the lock: concurrent calls overlap and are counted."""
    client_ready = threading.Barrier(2, timeout=5)

    def rendezvous(method: str, args: tuple[object, ...]) -> None:
        client_ready.wait()

    client = FakeFlapsClient(
        [machine("1", "stopped"), machine("2", "stopped")], before_call=rendezvous
    )
    threads = [threading.Thread(target=client.start, args=(i,)) for i in ("1", "2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert client.max_in_flight == 2
    assert client.count("started") == 2


def test_fake_fly_client():
    """Organizations, apps and releases are looked up as the GraphQL API does."""
    fly = FakeFlyClient()
    org = fly.add_organization("myorg")
    fly.add_app("my-app-1", "myorg", release_status="complete")
    fly.add_app("my-app-2", "myorg")
    assert fly.get_organization_by_slug("myorg") == org
    names = [a.name for a in fly.get_apps_for_organization(org.id)]
    assert names == ["my-app-1", "my-app-2"]
    release = fly.get_app_current_release_machines("my-app-1")
    assert release is not None
    assert release.status == "complete"
    assert fly.get_app_current_release_machines("my-app-2") is None
    fly.set_release("my-app-2", "running")
    assert fly.get_app_current_release_machines("my-app-2") is not None
    fly.remove_app("my-app-1")
    assert [a.name for a in fly.get_apps_for_organization(org.id)] == ["my-app-2"]
    with pytest.raises(fas.FlyAutoscalerError, match="nope"):
        fly.get_organization_by_slug("nope")
    fly.fail("get_apps_for_organization")
    with pytest.raises(fas.FlapsError):
        fly.get_apps_for_organization(org.id)


def test_collectors():
    """StaticCollector returns its (changeable) value; CallableCollector calls."""
    static = StaticCollector("depth", 3.0)
    assert static.collect_metric("a") == 3.0
    static.value = 7.0
    assert static.collect_metric("b") == 7.0
    assert static.calls == ["a", "b"]
    per_app = CallableCollector("depth", lambda app: float(len(app)))
    assert per_app.collect_metric("four") == 4.0


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", fas.ImageRef("", "nginx", "", "")),
        ("nginx:1.27", fas.ImageRef("", "nginx", "1.27", "")),
        (
            "registry.fly.io/my-app:deployment-01@sha256:ab",
            fas.ImageRef("registry.fly.io", "my-app", "deployment-01", "sha256:ab"),
        ),
        (
            "localhost:5000/x@sha256:cd",
            fas.ImageRef("localhost:5000", "x", "", "sha256:cd"),
        ),
    ],
)
def test_parse_image_ref(image: str, expected: fas.ImageRef):
    """parse_image_ref splits registry, repository, tag and digest."""
    assert parse_image_ref(image) == expected
