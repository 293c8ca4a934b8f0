"""Integration: the real HTTP clients, Reconciler and pool against FakeMachinesServer.

Everything goes over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler._errors import describe as fas_describe
from flyautoscaler.fly import FlapsHTTPClient, FlyGraphQLClient, new_flaps_client_func
from flyautoscaler.testing import FakeMachinesServer, StaticCollector

TOKEN = "fo1_integration-test-token"  # noqa: S105 - a fake server's token
WAIT = 30.0
SOURCE_CONFIG = {
    "image": "registry.fly.io/my-app:deployment-01",
    "guest": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 512},
    "env": {"QUEUE": "jobs", "EMPTY": ""},
    "services": [
        {"autostop": "suspend", "internal_port": 8080, "ports": [{"port": 443}]}
    ],
    "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "15s"}},
    "mounts": [],
    "restart": {"policy": "on-failure", "max_retries": 3},
    "metadata": {"fly_process_group": "app", "fly_platform_version": "v2"},
    "init": {"cmd": None},
}


@pytest.fixture
def server() -> Iterator[FakeMachinesServer]:
    """A running FakeMachinesServer, closed after the test."""
    with FakeMachinesServer(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the HTTP client asked to sleep (it never sleeps for real)."""
    return []


@pytest.fixture
def client(
    server: FakeMachinesServer, sleeps: list[float]
) -> Iterator[FlapsHTTPClient]:
    """A FlapsHTTPClient for app 'my-app' on the server."""
    http = FlapsHTTPClient("my-app", TOKEN, base_url=server.url, sleep=sleeps.append)
    yield http
    http.close()


def reconciler(client: fas.FlapsClient, **fields: str) -> fas.Reconciler:
    """A Reconciler for 'my-app' over *client*."""
    r = fas.Reconciler(client=client, app_name="my-app")
    for name, value in fields.items():
        setattr(r, name, value)
    return r


def test_scale_up_by_starting(server, client):
    """Stopped Machines are started over HTTP."""
    table = server.add_app("my-app", machines=[machine(str(i)) for i in range(1, 5)])
    result = reconciler(client, min_started_machine_n="3").reconcile()
    assert result.ok
    assert result.started == ("1", "2", "3")
    assert table.count("started") == 3


def test_scale_up_by_creating_keeps_every_config_field(server, client):
    """Created Machines clone the source's whole config, with the pinned image."""
    source = fas.Machine.from_api(
        {
            "id": "1",
            "state": "started",
            "region": "ord",
            "host_status": "ok",
            "image_ref": {
                "registry": "registry.fly.io",
                "repository": "my-app",
                "tag": "deployment-02",
                "digest": "sha256:beef",
            },
            "config": SOURCE_CONFIG,
        }
    )
    table = server.add_app("my-app", machines=[source])
    result = reconciler(
        client, min_created_machine_n="4", max_created_machine_n="4"
    ).reconcile()
    assert result.ok
    assert len(result.created) == 3
    expected = dict(SOURCE_CONFIG)
    expected["image"] = "registry.fly.io/my-app:deployment-02@sha256:beef"
    for machine_id in result.created:
        made = table.machine(machine_id)
        assert made.config is not None
        assert made.config.to_api() == expected
        assert made.region == "ord"
    # The source Machine itself is untouched.
    kept = table.machine("1").config
    assert kept is not None
    assert kept.to_api() == SOURCE_CONFIG


def test_scale_down_by_stopping_and_destroying(server, client):
    """Extra started Machines are stopped, extra created ones destroyed."""
    table = server.add_app(
        "my-app",
        machines=[machine("1", "started"), machine("2", "started"), machine("3")],
    )
    result = reconciler(
        client,
        max_created_machine_n="2",
        min_created_machine_n="1",
        min_started_machine_n="1",
        max_started_machine_n="1",
    ).reconcile()
    assert result.ok
    assert result.destroyed == ("3",)
    assert result.stopped == ("1",)
    assert {m.id: m.state for m in table.machines} == {"1": "stopped", "2": "started"}


def test_retry_on_503_then_success(server, client, sleeps):
    """A 503 on list is retried after a backoff and the pass goes on."""
    server.add_app("my-app", machines=[machine("1")])
    server.fail_next(1, 503, method="GET")
    assert [m.id for m in client.list("")] == ["1"]
    assert len(sleeps) == 1


def test_dropped_connection_on_list_is_retried(server, client, sleeps):
    """A connection closed without an answer on list is retried."""
    server.add_app("my-app", machines=[machine("1")])
    server.drop_next(1, method="GET")
    assert [m.id for m in client.list("")] == ["1"]
    assert len(sleeps) == 1


def test_429_waits_retry_after(server, client, sleeps):
    """A 429 with Retry-After: 1 waits about a second, then succeeds."""
    table = server.add_app("my-app", machines=[machine("1")])
    table.fail("start", fas.FlapsRateLimitedError("rate limited", retry_after=1.0))
    client.start("1", "")
    assert table.machine("1").state == "started"
    assert sleeps
    assert 0.9 <= sleeps[0] <= 1.5


def test_500_on_launch_posts_once(server, client):
    """A 500 answering a create is never retried: exactly one POST."""
    server.add_app("my-app", machines=[machine("1", "started")])
    server.fail_next(1, 500, method="POST")
    result = reconciler(client, min_created_machine_n="2").reconcile()
    posts = [r for r in server.requests if r.method == "POST"]
    assert result.failures
    assert result.failures[0].action == "create"
    # One POST per create attempt, each answered once: never a blind resend.
    assert len(posts) == len(result.failures) + len(result.created)
    assert len(result.failures) == 1


def test_token_never_in_server_log_or_errors(server, client):
    """The token appears in no request record and no error."""
    server.add_app("my-app")
    with pytest.raises(fas.FlapsNotFoundError) as info:
        client.start("nope", "")
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert TOKEN not in repr(client)
    for record in server.requests:
        assert TOKEN not in repr(record)


# --- the Go suite's pool scenario, over HTTP ------------------------------------------


def test_go_pool_scenario_over_http(server):
    """Wildcard my-app-* in myorg over HTTP: started follows 0, 2, 4, 10 (capped), 0."""
    server.add_organization("myorg", org_id="123")
    server.add_app("other-app", "myorg", machines=[machine("1")])
    table = server.add_app(
        "my-app-1",
        "myorg",
        machines=[machine(str(i)) for i in range(1, 5)],
        release_status="complete",
    )
    target = StaticCollector("target", 0.0)
    fly = FlyGraphQLClient(TOKEN, base_url=server.url)
    factory = new_flaps_client_func(TOKEN, base_url=server.url, rate_limits=False)
    pool = fas.ReconcilerPool(fly, concurrency=2)
    pool.app_name = "my-app-*"
    pool.organization_slug = "myorg"
    # Passes every 10 ms: far above Fly's 1 list/s, so no client-side limiter.
    pool.reconcile_interval = 0.01
    pool.new_flaps_client = factory
    pool.new_reconciler = lambda: fas.Reconciler(
        collectors=[target],
        min_started_machine_n="target",
        max_started_machine_n="target",
    )
    try:
        with pool:
            for value, expected in [(0, 0), (2, 2), (4, 4), (10, 4), (0, 0)]:
                target.value = float(value)
                assert pool.wait_for_passes(pool.pass_count + 3, WAIT)
                assert table.count("started") == expected, value
            assert pool.app_names() == ["my-app-1"]
    finally:
        factory.close()
        fly.close()
    other = server.flaps_client("other-app")
    assert other.calls == []
    assert [
        t
        for t in threading.enumerate()
        if t.name.startswith("flyauto")
        and not t.name.startswith("flyautoscaler-action-")  # lone reconcilers'
    ] == []


def test_pool_survives_api_outage(server):
    """Machines API faults are counted; the pool recovers when they stop."""
    table = server.add_app("my-app", machines=[machine("1"), machine("2")])
    factory = new_flaps_client_func(TOKEN, base_url=server.url, rate_limits=False)
    server.fail_next(8, 500, method="GET")
    fly = FlyGraphQLClient(TOKEN, base_url=server.url)
    pool = fas.ReconcilerPool(fly)
    pool.app_name = "my-app"
    pool.reconcile_interval = 0.01
    pool.new_flaps_client = factory
    pool.new_reconciler = lambda: fas.Reconciler(min_started_machine_n="2")
    deadline = time.monotonic() + WAIT
    try:
        with pool:
            while table.count("started") < 2 and time.monotonic() < deadline:
                pool.wait_for_passes(pool.pass_count + 1, WAIT)
            errors = pool.app_status()["my-app"].errors
    finally:
        factory.close()
        fly.close()
    assert table.count("started") == 2
    assert errors["api"] >= 1


def test_capacity_error_moves_the_create_to_the_next_region(server, client):
    """An insufficient_capacity answer is reported; the retry uses the next region."""
    table = server.add_app("my-app", machines=[machine("1", "started")])
    table.fail(
        "launch",
        fas.FlapsError(
            "no capacity in ams", status=412, error_status="insufficient_capacity"
        ),
    )
    r = reconciler(client, min_created_machine_n="2")
    r.regions = ["ams", "syd"]
    result = r.reconcile()
    assert len(result.failures) == 1
    error = result.failures[0].error
    assert isinstance(error, fas.FlapsError)
    assert error.error_status == "insufficient_capacity"
    assert [table.machine(i).region for i in result.created] == ["syd"]


# --- hardening: lost answers, Retry-After, the pass's deadline and cancel --------


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop"},
        {"kind": "fail", "status": 503},
        {"kind": "fail", "status": 500},
    ],
    ids=["answer lost", "503 after acting", "500 after acting"],
)
def test_create_whose_answer_is_lost_is_not_sent_again(server, client, fault):
    """A create Fly carried out but did not confirm is one POST, not three."""
    table = server.add_app("my-app", machines=[machine("1", "started")])
    if fault["kind"] == "drop":
        server.drop_next(2, method="POST", act=True)
    else:
        server.fail_next(2, fault["status"], method="POST", act=True)
    r = reconciler(client, min_created_machine_n="2")
    result = r.reconcile()
    assert server.count("launch") == 1
    assert table.count() == 2  # the one Machine asked for, no more
    assert result.created == ()
    assert [f.action for f in result.failures] == ["create"]
    # The next pass lists the Machine the lost answer created: nothing to do.
    server.clear_faults()
    assert r.reconcile().created == ()
    assert server.count("launch") == 1


def test_create_read_timeout_is_not_sent_again(server, sleeps):
    """A create whose answer times out is not resent, though Fly created it."""
    table = server.add_app("my-app", machines=[machine("1", "started")])
    server.delay_next(1, 1.0, method="POST")
    with FlapsHTTPClient(
        "my-app", TOKEN, base_url=server.url, sleep=sleeps.append, timeout=(5, 0.2)
    ) as slow_client:
        result = reconciler(slow_client, min_created_machine_n="2").reconcile()
    assert [type(f.error) for f in result.failures] == [fas.FlapsTransportError]
    assert table.count() == 2
    # The server logs the request once its late answer went out.
    deadline = time.monotonic() + WAIT
    while server.in_flight and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert server.count("launch") == 1


def test_refused_create_is_sent_again(server, client):
    """A create Fly refused (422) is tried again in the same pass."""
    table = server.add_app("my-app", machines=[machine("1", "started")])
    server.fail_next(1, 422, method="POST")
    result = reconciler(client, min_created_machine_n="2").reconcile()
    assert server.count("launch") == 2
    assert len(result.created) == 1
    assert table.count() == 2


def test_destroy_retried_after_a_lost_answer_succeeds(server, client, sleeps):
    """A DELETE whose answer was lost is retried; its 404 means it worked."""
    table = server.add_app(
        "my-app", machines=[machine("1", "started"), machine("2", "stopped")]
    )
    server.drop_next(1, method="DELETE", act=True)
    r = reconciler(client, max_created_machine_n="1")
    result = r.reconcile()
    assert result.ok
    assert result.destroyed == ("2",)
    assert r.stats.machine_destroy_failed == 0
    assert [m.id for m in table.machines] == ["1"]
    assert [r.status for r in server.requests if r.method == "DELETE"] == [None, 404]


def test_long_retry_after_fails_at_once(server, client, sleeps):
    """Retry-After: 60 is never cut short: one request, no wait, the error says 60 s."""
    table = server.add_app("my-app", machines=[machine("1")])
    server.fail_next(1, 429, method="POST", path="/start", retry_after="60")
    with pytest.raises(fas.FlapsRateLimitedError) as caught:
        client.start("1", "")
    assert caught.value.retry_after == 60.0
    assert "asked to wait 60 s" in str(caught.value)
    assert sleeps == []
    assert server.count("start") == 1
    assert table.machine("1").state == "stopped"


def test_retry_after_beyond_the_pass_deadline_fails_at_once(server, client, sleeps):
    """A Retry-After the pass cannot wait for fails the action at once."""
    server.add_app("my-app", machines=[machine("1")])
    server.fail_next(1, 429, method="POST", path="/start", retry_after="5")
    r = reconciler(client, min_started_machine_n="1")
    result = r.reconcile(deadline=time.monotonic() + 2.0)
    assert sleeps == []
    assert server.count("start") == 1
    (failure,) = result.failures
    assert "deadline" in fas_describe(failure.error)


def test_no_action_is_sent_after_cancel(server):
    """Actions waiting for a rate-limit token when the pool closes are not sent."""
    table = server.add_app("my-app", machines=[machine("1", "started")])
    cancel = threading.Event()
    now = [100.0]

    def sleep(seconds: float) -> None:
        cancel.set()  # the signal arrives while the first launch waits for a token
        now[0] += seconds

    with FlapsHTTPClient(
        "my-app", TOKEN, base_url=server.url, sleep=sleep, clock=lambda: now[0]
    ) as limited:
        r = reconciler(limited, min_created_machine_n="11")
        result = r.reconcile(cancel=cancel)
    launches = server.count("launch")
    assert launches == 3  # the burst of 3 went before the signal; nothing after
    assert table.count() == 1 + launches
    assert result.timed_out
    assert result.failures == ()
    assert len(result.created) == launches


# --- base URLs from the environment ---------------------------------------------------


def test_clients_built_directly_read_the_environment(server, monkeypatch):
    """FlapsHTTPClient and FlyGraphQLClient honour FLY_*_BASE_URL, as fly-go does."""
    server.add_organization("myorg", org_id="123")
    server.add_app("my-app", "myorg", machines=[machine("1")])
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", server.url)
    monkeypatch.setenv("FLY_API_BASE_URL", server.url + "/")
    with FlapsHTTPClient("my-app", TOKEN) as flaps:
        assert flaps.base_url == server.url
        assert [m.id for m in flaps.list()] == ["1"]
    with FlyGraphQLClient(TOKEN) as fly:
        assert fly.url == server.url + "/graphql"
        assert fly.get_organization_by_slug("myorg").id == "123"


def test_explicit_base_url_wins_over_the_environment(server, monkeypatch):
    """An explicit base_url wins; the variables then point nowhere useful."""
    server.add_organization("myorg", org_id="123")
    server.add_app("my-app", "myorg", machines=[machine("1")])
    nowhere = "http://127.0.0.1:9"  # discard: nothing answers there
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", nowhere)
    monkeypatch.setenv("FLY_API_BASE_URL", nowhere)
    with FlapsHTTPClient("my-app", TOKEN, base_url=server.url) as flaps:
        assert [m.id for m in flaps.list()] == ["1"]
    with FlyGraphQLClient(TOKEN, base_url=server.url) as fly:
        assert fly.get_organization_by_slug("myorg").id == "123"
    with new_flaps_client_func(TOKEN, base_url=server.url) as factory:
        assert [m.id for m in factory("my-app").list()] == ["1"]


def test_blank_variables_mean_the_public_api(monkeypatch):
    """Unset or blank variables leave the public endpoints (nothing is sent)."""
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "  ")
    monkeypatch.delenv("FLY_API_BASE_URL", raising=False)
    with FlapsHTTPClient("my-app", TOKEN) as flaps:
        assert flaps.base_url == "https://api.machines.dev"
    with FlyGraphQLClient(TOKEN) as fly:
        assert fly.base_url == "https://api.fly.io"


# --- tokens ---------------------------------------------------------------------------


def test_token_a_header_cannot_carry_is_refused_before_sending(server):
    """A non-Latin-1 token fails when the client is built, not on every request."""
    server.add_app("my-app", machines=[machine("1")])
    with pytest.raises(
        fas.ConfigError, match=f"character {len(TOKEN) + 1} is not a Latin-1"
    ):
        FlapsHTTPClient("my-app", TOKEN + "\u20ac", base_url=server.url)
    with pytest.raises(fas.ConfigError, match="control character"):
        new_flaps_client_func("fo1_a\nb", base_url=server.url)


def test_token_with_a_trailing_newline_works(server):
    """A token read from a file with its newline still authenticates over HTTP."""
    server.add_app("my-app", machines=[machine("1")])
    with FlapsHTTPClient("my-app", TOKEN + "\n", base_url=server.url) as flaps:
        assert [m.id for m in flaps.list()] == ["1"]
