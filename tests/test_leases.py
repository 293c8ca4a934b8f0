"""Fly Machine leases: act under a lease, skip a Machine someone else leased."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import responses

import flyautoscaler as fas
from factories import machine
from flyautoscaler.fly import FlapsHTTPClient
from flyautoscaler.testing import FakeFlapsClient, FakeMachinesServer

TOKEN = "fo1_leases-test-token"  # noqa: S105 - a fake server's token


def reconciler(
    client: fas.FlapsClient, leases: str, **fields: object
) -> fas.Reconciler:
    """A reconciler of 'my-app' over *client* with *leases*, one action at a time."""
    r = fas.Reconciler(
        client=client, app_name="my-app", machine_leases=leases, max_parallel_actions=1
    )
    for name, value in fields.items():
        setattr(r, name, value)
    r.validate()
    return r


def methods(client: FakeFlapsClient) -> list[tuple[str, str]]:
    """The (method, Machine id) of every call but list, in order."""
    out = []
    for call in client.calls:
        if call.method == "list":
            continue
        arg = call.args[0]
        out.append((call.method, arg if isinstance(arg, str) else arg.id))  # type: ignore[attr-defined]
    return out


# --- the in-memory fake -------------------------------------------------------


def test_scale_down_stops_under_a_lease_and_releases_it():
    """acquire, stop with the lease's nonce, release; the nonce is the lease's."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "started")])
    result = reconciler(client, "scale-down", max_started_machine_n="1").reconcile()
    assert result.stopped == ("1",)
    assert methods(client) == [
        ("acquire_lease", "1"),
        ("stop", "1"),
        ("release_lease", "1"),
    ]
    nonces = {call.method: call.args for call in client.calls}
    assert nonces["stop"][1] == nonces["release_lease"][1] != ""
    assert client.get_lease("1") is None


def test_a_machine_leased_by_someone_else_is_skipped(caplog):
    """Another party's lease: the Machine is left alone, the next one stops."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler")
    client = FakeFlapsClient([machine("1", "started"), machine("2", "started")])
    deploy = client.acquire_lease("1", 60, description="fly deploy")
    r = reconciler(client, "scale-down", max_started_machine_n="1")
    result = r.reconcile()
    assert result.stopped == ("2",)
    assert result.skipped == ("1",)
    assert result.ok
    assert result.failures == ()
    assert r.stats.machine_lease_skipped == 1
    assert r.stats.machine_stop_failed == 0
    assert ("stop", "1") not in methods(client)
    assert client.get_lease("1") == deploy  # never fought over
    [held] = [rec for rec in caplog.records if rec.msg == "machine.lease_held"]
    assert held.machine_id == "1"  # type: ignore[attr-defined]
    assert "skipped (leased by someone else): 1" in result.explain()


def test_a_leased_destroy_candidate_gives_its_turn_to_the_next():
    """Destroy: a leased Machine does not use up its turn, and is not released."""
    client = FakeFlapsClient(
        [machine("1", "stopped"), machine("2", "stopped"), machine("3", "started")]
    )
    client.acquire_lease("1", 60)
    result = reconciler(client, "scale-down", max_created_machine_n="2").reconcile()
    assert result.destroyed == ("2",)
    assert result.skipped == ("1",)
    assert methods(client)[-2:] == [("acquire_lease", "2"), ("destroy", "2")]


def test_starts_are_leased_only_with_all():
    """scale-down leaves starts alone; all leases them too."""
    for leases, expected in (
        ("scale-down", [("start", "1")]),
        ("all", [("acquire_lease", "1"), ("start", "1"), ("release_lease", "1")]),
        ("off", [("start", "1")]),
    ):
        client = FakeFlapsClient([machine("1", "stopped")])
        reconciler(client, leases, min_started_machine_n="1").reconcile()
        assert methods(client) == expected, leases


def test_suspend_is_leased_like_a_stop():
    """stop_mode suspend under scale-down: acquire, suspend, release."""
    client = FakeFlapsClient([machine("1", "started"), machine("2", "started")])
    reconciler(
        client, "scale-down", max_started_machine_n="1", stop_mode="suspend"
    ).reconcile()
    assert methods(client) == [
        ("acquire_lease", "1"),
        ("suspend", "1"),
        ("release_lease", "1"),
    ]


def test_a_failed_release_is_logged_and_the_action_counts(caplog):
    """The lease expires on its own: a failed release is a warning, not a failure."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler")
    client = FakeFlapsClient([machine("1", "started"), machine("2", "started")])
    client.fail("release_lease", times=1)
    result = reconciler(client, "scale-down", max_started_machine_n="1").reconcile()
    assert result.stopped == ("1",)
    assert result.ok
    assert [r.msg for r in caplog.records] == ["machine.lease_release_failed"]


def test_leases_need_a_client_that_can_lease():
    """validate() names the client and the method it lacks; bad values are named."""

    class OldClient:
        def list(self, state: str = "") -> list[fas.Machine]:
            return []

    r = fas.Reconciler(client=OldClient(), machine_leases="all")  # type: ignore[arg-type]
    with pytest.raises(fas.ConfigError, match=r"OldClient.*acquire_lease"):
        r.validate()
    fas.Reconciler(client=OldClient(), machine_leases="off").validate()  # type: ignore[arg-type]
    with pytest.raises(fas.ConfigError, match="'off', 'scale-down' or 'all'"):
        fas.Reconciler(machine_leases="yes").validate()


# --- over HTTP ---------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeMachinesServer]:
    """A fake Machines API with app 'my-app' of two started Machines."""
    with FakeMachinesServer(token=TOKEN) as fake:
        fake.add_app(
            "my-app", machines=[machine("1", "started"), machine("2", "started")]
        )
        yield fake


def test_http_client_leases_and_the_server_enforces_them(server):
    """Over HTTP: a Machine leased by another party is skipped; the other stops."""
    other = server.flaps_client("my-app").acquire_lease("1", 60, description="deploy")
    with FlapsHTTPClient("my-app", TOKEN, base_url=server.url) as client:
        result = reconciler(client, "scale-down", max_started_machine_n="1").reconcile()
    assert result.stopped == ("2",)
    assert result.skipped == ("1",)
    assert server.flaps_client("my-app").get_lease("1") == other
    assert server.flaps_client("my-app").get_lease("2") is None
    actions = [r.action for r in server.requests if r.action != "list"]
    assert actions == ["acquire_lease", "acquire_lease", "stop", "release_lease"]
    stop = next(r for r in server.requests if r.action == "stop")
    assert stop.headers["fly-machine-lease-nonce"]


def test_http_acquire_and_release_wire_format():
    """POST .../lease?ttl=30 (description in the body), DELETE with the nonce."""
    base = "https://flaps.test"
    with responses.RequestsMock() as mock:
        mock.post(
            f"{base}/v1/apps/my-app/machines/m1/lease?ttl=30",
            json={
                "status": "success",
                "data": {"nonce": "n0nce", "expires_at": 1700000000, "owner": "me"},
            },
        )
        mock.delete(
            f"{base}/v1/apps/my-app/machines/m1/lease",
            json={"status": "success", "data": {"ok": True}},
        )
        with FlapsHTTPClient("my-app", TOKEN, base_url=base) as client:
            lease = client.acquire_lease("m1", 30, description="scaling")
            client.release_lease("m1", lease.nonce)
        assert lease == fas.MachineLease(
            nonce="n0nce", expires_at=1700000000, owner="me"
        )
        acquire, release = (call.request for call in mock.calls)
        assert acquire.body == b'{"description":"scaling"}'
        assert release.headers["fly-machine-lease-nonce"] == "n0nce"


def test_http_acquire_of_a_held_lease_is_a_conflict(server):
    """409 from Fly: FlapsConflictError, not retried."""
    server.flaps_client("my-app").acquire_lease("1", 60)
    with (
        FlapsHTTPClient("my-app", TOKEN, base_url=server.url) as client,
        pytest.raises(fas.FlapsConflictError, match="lease currently held"),
    ):
        client.acquire_lease("1")
    assert [r.action for r in server.requests] == ["acquire_lease"]
