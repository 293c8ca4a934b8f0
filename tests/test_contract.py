"""Contract tests: one set of behaviours, run against every FlapsClient/FlyClient.

The in-memory fakes and the real HTTP clients pointed at FakeMachinesServer must
behave the same, so a test written against the fakes means the same thing as one
against Fly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler.fly import FlapsHTTPClient, FlyGraphQLClient
from flyautoscaler.testing import FakeFlapsClient, FakeFlyClient, FakeMachinesServer

TOKEN = "FlyV1 fm2_contract-test-token"  # noqa: S105 - a fake server's token
CONFIG_JSON = {
    "image": "registry.fly.io/my-app:deployment-01",
    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
    "env": {"QUEUE": "jobs"},
    "services": [{"autostop": "suspend", "ports": [{"port": 443}]}],
    "mounts": [],
    "metadata": {"fly_process_group": "app", "fly_platform_version": "v2"},
    "init": {"cmd": None},
}


def seed() -> list[fas.Machine]:
    """Three Machines of group app: 1 started, 2 stopped, 3 suspended."""
    return [machine("1", "started"), machine("2", "stopped"), machine("3", "suspended")]


@pytest.fixture(params=["fake", "http"])
def flaps(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[fas.FlapsClient, FakeFlapsClient]]:
    """Yield (client under test, the Machine table behind it)."""
    if request.param == "fake":
        table = FakeFlapsClient(seed(), app_name="my-app")
        yield table, table
        return
    with FakeMachinesServer(token=TOKEN) as server:
        table = server.add_app("my-app", machines=seed())
        client = FlapsHTTPClient("my-app", TOKEN, base_url=server.url)
        try:
            yield client, table
        finally:
            client.close()


@pytest.fixture(params=["fake", "http"])
def fly(request: pytest.FixtureRequest) -> Iterator[fas.FlyClient]:
    """Yield a FlyClient over org 'myorg' with apps a (release complete) and b."""
    if request.param == "fake":
        fake = FakeFlyClient()
        fake.add_organization("myorg", org_id="org-1")
        fake.add_app("a", "myorg", release_status="complete")
        fake.add_app("b", "myorg")
        yield fake
        return
    with FakeMachinesServer(token=TOKEN) as server:
        server.add_organization("myorg", org_id="org-1")
        server.add_app("a", "myorg", release_status="complete")
        server.add_app("b", "myorg")
        client = FlyGraphQLClient(TOKEN, base_url=server.url)
        try:
            yield client
        finally:
            client.close()


def test_list_returns_machines(flaps):
    """list('') returns every Machine with its state and config."""
    client, _ = flaps
    machines = {m.id: m for m in client.list("")}
    assert {k: m.state for k, m in machines.items()} == {
        "1": "started",
        "2": "stopped",
        "3": "suspended",
    }
    assert machines["1"].process_group() == "app"
    assert machines["1"].host_status == "ok"


def test_list_filters_by_state(flaps):
    """list(state) returns only Machines in that state."""
    client, _ = flaps
    assert [m.id for m in client.list("stopped")] == ["2"]


def test_start_and_stop(flaps):
    """start and stop change the state, and start reports the previous state."""
    client, table = flaps
    assert client.start("2", "").previous_state == "stopped"
    assert table.machine("2").state == "started"
    client.stop(fas.StopMachineInput("1"), "")
    assert table.machine("1").state == "stopped"
    assert client.start("3", "").previous_state == "suspended"


def test_suspend_and_resume(flaps):
    """suspend suspends a started Machine (again: no-op); start resumes it."""
    client, table = flaps
    assert client.suspend("1", "") is None
    assert table.machine("1").state == "suspended"
    client.suspend("1", "")
    assert [m.id for m in client.list("suspended")] == ["1", "3"]
    assert client.start("1", "").previous_state == "suspended"
    assert table.machine("1").state == "started"
    assert table.call_count("suspend") == 2


def test_suspend_conflicts_on_a_stopped_machine(flaps):
    """Suspending a stopped Machine is a 409 conflict and leaves it stopped."""
    client, table = flaps
    with pytest.raises(fas.FlapsConflictError) as info:
        client.suspend("2", "")
    assert info.value.status == 409
    assert info.value.message == "machine is stopped, cannot suspend"
    assert table.machine("2").state == "stopped"


def test_suspending_a_suspended_machine_is_a_no_op(flaps):
    """Suspending a suspended Machine succeeds and changes nothing."""
    client, table = flaps
    client.suspend("3", "")
    assert table.machine("3").state == "suspended"


def test_suspend_needs_the_lease_nonce(flaps):
    """A leased Machine is suspended only with the lease's nonce."""
    client, table = flaps
    lease = table.acquire_lease("1", 60)
    with pytest.raises(fas.FlapsConflictError, match="lease currently held"):
        client.suspend("1", "")
    assert table.machine("1").state == "started"
    client.suspend("1", lease.nonce)
    assert table.machine("1").state == "suspended"


def test_suspend_unknown_machine_is_not_found(flaps):
    """Suspending an unknown Machine raises FlapsNotFoundError (404)."""
    client, _ = flaps
    with pytest.raises(fas.FlapsNotFoundError) as info:
        client.suspend("nope", "")
    assert info.value.status == 404


def test_injected_suspend_failure_changes_nothing(flaps):
    """A failure injected for suspend comes out as its FlapsError class."""
    client, table = flaps
    table.fail("suspend", fas.FlapsServerError("host down", status=500), key="1")
    with pytest.raises(fas.FlapsServerError):
        client.suspend("1", "")
    assert table.machine("1").state == "started"


def test_launch_keeps_every_config_field(flaps):
    """A launched Machine's config is the input's, field for field."""
    client, table = flaps
    config = fas.MachineConfig.from_api(CONFIG_JSON)
    made = client.launch(fas.LaunchMachineInput(config, region="ams"))
    stored = table.machine(made.id)
    assert stored.config is not None
    assert stored.config.to_api() == CONFIG_JSON
    assert stored.region == "ams"
    assert made.state in {"started", "starting"}
    created = client.launch(fas.LaunchMachineInput(config, skip_launch=True))
    assert created.state == "created"


def test_destroy(flaps):
    """Destroying a stopped Machine works; a started one needs kill."""
    client, table = flaps
    client.destroy(fas.RemoveMachineInput("2"), "")
    with pytest.raises(fas.FlapsConflictError):
        client.destroy(fas.RemoveMachineInput("1"), "")
    client.destroy(fas.RemoveMachineInput("1", kill=True), "")
    assert [m.id for m in table.machines] == ["3"]


def test_unknown_machine_is_not_found(flaps):
    """Acting on an unknown Machine raises FlapsNotFoundError (404)."""
    client, _ = flaps
    with pytest.raises(fas.FlapsNotFoundError) as info:
        client.start("nope", "")
    assert info.value.status == 404


def test_injected_failure_surfaces_as_flaps_error(flaps):
    """A failure injected in the table comes out of the client as a FlapsError."""
    client, table = flaps
    table.fail("stop", fas.FlapsConflictError("machine busy", status=409), key="1")
    with pytest.raises(fas.FlapsConflictError):
        client.stop(fas.StopMachineInput("1"), "")
    assert table.machine("1").state == "started"


def test_fly_organization_apps_release(fly):
    """The three look-ups agree between the fake and GraphQL over HTTP."""
    org = fly.get_organization_by_slug("myorg")
    assert org.id == "org-1"
    assert org.slug == "myorg"
    assert sorted(a.name for a in fly.get_apps_for_organization(org.id)) == ["a", "b"]
    release = fly.get_app_current_release_machines("a")
    assert release is not None
    assert release.status == "complete"
    assert fly.get_app_current_release_machines("b") is None


def test_fly_unknown_organization(fly):
    """An unknown organization slug is an error naming the slug."""
    with pytest.raises(fas.FlyAutoscalerError, match="nope"):
        fly.get_organization_by_slug("nope")
