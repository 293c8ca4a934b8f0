"""FakeMachinesServer speaks the Machines and GraphQL APIs over real sockets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

import flyautoscaler as fas
from factories import machine
from flyautoscaler.testing import FakeFlapsClient, FakeMachinesServer

TOKEN = "secret-token-x"  # noqa: S105 - the fake server's test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE = 30.0  # generous: the machine is small and shared
APP = "/v1/apps/my-app/machines"


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    """Return a fresh fake clock."""
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[FakeMachinesServer]:
    """Yield a running server with my-app (m1 started, m2 stopped) in org acme."""
    with FakeMachinesServer(token=TOKEN, clock=clock) as srv:
        srv.add_app(
            "my-app",
            "acme",
            machines=[machine("m1", "started"), machine("m2", "stopped")],
        )
        yield srv


def call(
    server: FakeMachinesServer,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request to the server, authenticated unless headers say otherwise."""
    return requests.request(
        method,
        server.url + path,
        headers=AUTH if headers is None else headers,
        timeout=DEADLINE,
        **kwargs,
    )


def gql(
    server: FakeMachinesServer, query: str, **variables: object
) -> requests.Response:
    """POST a GraphQL query."""
    return call(
        server, "POST", "/graphql", json={"query": query, "variables": variables}
    )


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll *predicate* until it holds, failing after a generous deadline."""
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        threading.Event().wait(0.01)


def in_background(
    func: Callable[[], requests.Response],
) -> tuple[threading.Thread, list[Any]]:
    """Run *func* in a thread; its response or exception lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(func())
        except requests.RequestException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


ORG_QUERY = """query($slug: String!) { organization(slug: $slug) { id internalNumericId
  slug name type billable limitedAccessTokens { nodes { id name } } } }"""
APPS_QUERY = """query($org: ID, $role: String, $after: String) {
  apps(type: "container", first: 200, after: $after,
       organizationId: $org, role: $role) {
    pageInfo { hasNextPage endCursor }
    nodes { id name deployed hostname platformVersion organization { slug name }
            currentRelease { createdAt status } status } } }"""
RELEASE_QUERY = """query ($appName: String!) { app(name: $appName) { currentRelease:
  currentReleaseUnprocessed { id version description reason status imageRef stable
  user { id email name } createdAt } } }"""


# --- lifecycle ---


def test_url_and_close_leave_no_thread():
    """The server listens on 127.0.0.1, and close() is idempotent and joins all."""
    before = set(threading.enumerate())
    server = FakeMachinesServer(token=TOKEN)
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.start() is server
        with requests.Session() as session:  # keeps a connection open
            response = session.get(server.url + APP, headers=AUTH, timeout=DEADLINE)
            assert response.status_code == 404
            server.close()
            server.close()
    server.close()
    assert set(threading.enumerate()) == before
    with pytest.raises(RuntimeError, match="closed"):
        server.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_request_logging_is_silent(server, capsys):
    """No request line is printed to stderr."""
    call(server, "GET", APP)
    call(server, "GET", "/nowhere")
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


# --- auth ---


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {TOKEN}",
        f"FlyV1 {TOKEN}",
        f"Bearer FlyV1 {TOKEN}",
        f"bearer {TOKEN}",
        f"FlyV1 fm2_other,{TOKEN}",
        f"Bearer oauth, {TOKEN}",
    ],
)
def test_accepted_authorization_forms(server, value):
    """Every documented header form carrying the token is accepted."""
    assert call(server, "GET", APP, headers={"Authorization": value}).ok
    response = requests.post(
        server.url + "/graphql",
        json={"query": ORG_QUERY, "variables": {"slug": "acme"}},
        headers={"Authorization": value},
        timeout=DEADLINE,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_bad_token_is_401(server, headers):
    """A missing or wrong token gets 401 on both APIs."""
    response = call(server, "GET", APP, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Authenticate: token validation error"}
    assert response.headers["fly-request-id"]
    graphql = requests.post(
        server.url + "/graphql", json={"query": ORG_QUERY}, headers=headers, timeout=30
    )
    assert graphql.status_code == 401
    assert graphql.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"


# --- list and get ---


def test_list_returns_full_machines(server):
    """list returns every Machine with config and host_status."""
    response = call(server, "GET", APP)
    assert response.status_code == 200
    assert response.headers["fly-request-id"]
    body = response.json()
    assert [m["id"] for m in body] == ["m1", "m2"]
    assert body[0]["host_status"] == "ok"
    assert body[0]["config"] == machine("m1").config.to_api()  # type: ignore[union-attr]
    assert [fas.Machine.from_api(m) for m in body] == server.machines("my-app")


def test_list_summary_omits_config(server):
    """summary=true leaves config out."""
    body = call(server, "GET", APP, params={"summary": "true"}).json()
    assert all("config" not in m for m in body)
    assert [m["state"] for m in body] == ["started", "stopped"]


def test_list_state_filter(server):
    """?state= filters by a comma-separated or repeated list of states."""
    server.flaps_client("my-app").add(machine("m3", "suspended"))
    ids = [m["id"] for m in call(server, "GET", APP + "?state=started").json()]
    assert ids == ["m1"]
    both = call(server, "GET", APP + "?state=started,suspended").json()
    assert [m["id"] for m in both] == ["m1", "m3"]
    repeated = call(server, "GET", APP + "?state=stopped&state=suspended").json()
    assert [m["id"] for m in repeated] == ["m2", "m3"]


def test_list_include_deleted(server):
    """Destroyed Machines are listed only with include_deleted."""
    assert call(server, "DELETE", APP + "/m2").ok
    assert [m["id"] for m in call(server, "GET", APP).json()] == ["m1"]
    body = call(server, "GET", APP, params={"include_deleted": "true"}).json()
    assert [(m["id"], m["state"]) for m in body] == [
        ("m1", "started"),
        ("m2", "destroyed"),
    ]


def test_get_machine_and_not_found(server):
    """get returns one Machine; unknown Machines and apps are 404 with an error."""
    assert call(server, "GET", APP + "/m2").json()["state"] == "stopped"
    missing = call(server, "GET", APP + "/nope")
    assert missing.status_code == 404
    assert "error" in missing.json()
    no_app = call(server, "GET", "/v1/apps/ghost/machines")
    assert no_app.status_code == 404
    assert no_app.json() == {"error": 'Could not find App "ghost"'}


def test_unknown_path_and_method(server):
    """Unknown paths are 404 and wrong methods 405, both with fly-request-id."""
    assert call(server, "GET", "/v2/whatever").status_code == 404
    wrong = call(server, "PUT", APP + "/m1/start")
    assert wrong.status_code == 405
    assert wrong.headers["fly-request-id"]


# --- create ---

FULL_CONFIG: dict[str, Any] = {
    "init": {"exec": None, "cmd": ["serve"]},
    "image": "registry.fly.io/my-app:deployment-02",
    "env": {"A": "1", "EMPTY": ""},
    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
    "services": [
        {
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": "suspend",
            "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            "concurrency": {"type": "requests", "soft_limit": 20},
        }
    ],
    "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
    "mounts": [{"volume": "vol_1", "path": "/data"}],
    "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "15s"}},
    "restart": {"policy": "on-failure", "max_retries": 3},
    "stop_config": {"timeout": "30s", "signal": "SIGTERM"},
    "auto_destroy": False,
    "dns": {"skip_registration": True},
    "processes": [],
    "files": None,
    "statics": [{"guest_path": "/app/public", "url_prefix": "/static"}],
    "x_future_field": {"nested": [1, 2.5, "three", None, True]},
}


def test_create_keeps_every_config_field(server):
    """The created Machine's config is the request's config, field for field."""
    body = {"config": FULL_CONFIG, "region": "ams", "name": "clone-1"}
    response = call(server, "POST", APP, json=body)
    assert response.status_code == 200
    created = response.json()
    assert created["config"] == FULL_CONFIG
    assert list(created["config"]) == list(FULL_CONFIG)
    assert created["host_status"] == "ok"
    assert created["state"] == "started"
    assert (created["region"], created["name"]) == ("ams", "clone-1")
    stored = call(server, "GET", f"{APP}/{created['id']}").json()
    assert json.dumps(stored["config"]) == json.dumps(FULL_CONFIG)
    assert server.count("launch") == 1


def test_create_skip_launch_and_unknown_fields(server):
    """skip_launch makes a created Machine; unknown fields like lease_ttl are fine."""
    body = {
        "config": {"image": "img:1"},
        "skip_launch": True,
        "skip_service_registration": True,
        "skip_secrets": False,
        "lease_ttl": 30,
    }
    created = call(server, "POST", APP, json=body).json()
    assert created["state"] == "created"
    assert created["nonce"]  # lease_ttl leases the new Machine
    blocked = call(server, "POST", f"{APP}/{created['id']}/start")
    assert blocked.status_code == 409
    started = call(
        server,
        "POST",
        f"{APP}/{created['id']}/start",
        headers={**AUTH, "fly-machine-lease-nonce": created["nonce"]},
    )
    assert started.json() == {"previous_state": "created"}


@pytest.mark.parametrize(
    "data", [b"{not json", b"[1, 2]", b'{"region": "ams"}', b'{"config": {}}']
)
def test_create_rejects_bad_bodies(server, data):
    """Malformed JSON, a non-object or a config without image is 400."""
    response = call(
        server,
        "POST",
        APP,
        data=data,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "error" in response.json()
    assert len(server.machines("my-app")) == 2


# --- start, stop, destroy ---


def test_start_answers_previous_state(server):
    """start answers the previous state and starts the Machine."""
    response = call(server, "POST", APP + "/m2/start")
    assert response.status_code == 200
    assert response.json() == {"previous_state": "stopped"}
    assert server.flaps_client("my-app").machine("m2").state == "started"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"json": {}},
        {"json": {"signal": "SIGTERM", "timeout": "10s"}},
        {"json": {"id": "m1", "timeout": "0s"}},
        {"json": {"timeout": 5}},
    ],
)
def test_stop_accepts_every_body(server, kwargs):
    """stop accepts no body, {}, signal+timeout and fly-go's {id, timeout: 0s}."""
    response = call(server, "POST", APP + "/m1/stop", **kwargs)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert server.flaps_client("my-app").machine("m1").state == "stopped"


def test_stop_rejects_malformed_body(server):
    """A stop body that is not JSON, or a bad timeout, is 400."""
    assert call(server, "POST", APP + "/m1/stop", data=b"{oops").status_code == 400
    bad = call(server, "POST", APP + "/m1/stop", json={"timeout": "soon"})
    assert bad.status_code == 400
    assert server.flaps_client("my-app").machine("m1").state == "started"


def test_destroy_running_needs_kill_or_force(server):
    """A running Machine is destroyed only with kill=true or force=true."""
    refused = call(server, "DELETE", APP + "/m1")
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "unable to destroy machine, not currently stopped"
    }
    assert call(server, "DELETE", APP + "/m1?kill=true").json() == {"ok": True}
    server.flaps_client("my-app").add(machine("m3", "started"))
    assert call(server, "DELETE", APP + "/m3?force=true").status_code == 200
    assert call(server, "DELETE", APP + "/m2").status_code == 200  # stopped
    assert server.machines("my-app") == []
    assert call(server, "GET", APP + "/m2").status_code == 404


def test_suspend_route(server):
    """POST .../{id}/suspend, no body: 200 {"ok": true}; the Machine is suspended."""
    response = call(server, "POST", APP + "/m1/suspend")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert response.headers["fly-request-id"]
    assert server.flaps_client("my-app").machine("m1").state == "suspended"
    listed = call(server, "GET", APP + "?state=suspended").json()
    assert [m["id"] for m in listed] == ["m1"]
    resumed = call(server, "POST", APP + "/m1/start")
    assert resumed.json() == {"previous_state": "suspended"}


def test_suspend_errors(server):
    """A stopped Machine is 409, an unknown one 404, a GET 405."""
    refused = call(server, "POST", APP + "/m2/suspend")
    assert refused.status_code == 409
    assert refused.json() == {"error": "machine is stopped, cannot suspend"}
    assert call(server, "POST", APP + "/nope/suspend").status_code == 404
    assert call(server, "GET", APP + "/m1/suspend").status_code == 405
    assert call(server, "POST", "/v1/apps/ghost/machines/m1/suspend").status_code == 404
    assert server.flaps_client("my-app").machine("m1").state == "started"


def test_suspend_needs_the_lease_nonce(server):
    """A leased Machine is suspended only with fly-machine-lease-nonce."""
    nonce = call(server, "POST", APP + "/m1/lease").json()["data"]["nonce"]
    refused = call(server, "POST", APP + "/m1/suspend")
    assert refused.status_code == 409
    assert refused.json()["error"].startswith("aborted: machine ID m1 lease")
    with_nonce = {**AUTH, "fly-machine-lease-nonce": nonce}
    assert call(server, "POST", APP + "/m1/suspend", headers=with_nonce).ok
    assert server.flaps_client("my-app").machine("m1").state == "suspended"


# --- leases ---


def test_lease_lifecycle_and_nonce_enforcement(server):
    """A lease blocks writes without its nonce until released."""
    created = call(server, "POST", APP + "/m1/lease", json={"ttl": 60})
    assert created.status_code == 201
    envelope = created.json()
    assert envelope["status"] == "success"
    data = envelope["data"]
    assert set(data) == {"nonce", "expires_at", "owner", "description", "version"}
    nonce = data["nonce"]
    assert call(server, "GET", APP + "/m1/lease").json()["data"]["nonce"] == nonce

    held = call(server, "POST", APP + "/m1/lease")
    assert held.status_code == 409
    assert held.json()["status"] == "error"
    assert "lease currently held by" in held.json()["message"]

    for method, path in [("POST", "/m1/stop"), ("DELETE", "/m1?kill=true")]:
        refused = call(server, method, APP + path)
        assert refused.status_code == 409
        assert refused.json()["error"].startswith("aborted: machine ID m1 lease")
    wrong = {**AUTH, "fly-machine-lease-nonce": "not-it"}
    assert call(server, "POST", APP + "/m1/stop", headers=wrong).status_code == 409

    with_nonce = {**AUTH, "fly-machine-lease-nonce": nonce}
    refreshed = call(server, "POST", APP + "/m1/lease?ttl=30", headers=with_nonce)
    assert refreshed.status_code == 201
    assert refreshed.json()["data"]["nonce"] == nonce
    assert call(server, "POST", APP + "/m1/stop", headers=with_nonce).ok
    assert call(server, "DELETE", APP + "/m1/lease", headers=wrong).status_code == 409
    released = call(server, "DELETE", APP + "/m1/lease", headers=with_nonce)
    assert released.json() == {"status": "success", "data": {"ok": True}}
    assert call(server, "GET", APP + "/m1/lease").status_code == 404
    assert call(server, "POST", APP + "/m1/start").ok


def test_lease_expires_on_the_clock(server, clock):
    """An expired lease no longer blocks writes."""
    assert call(server, "POST", APP + "/m1/lease?ttl=10").status_code == 201
    assert call(server, "POST", APP + "/m1/stop").status_code == 409
    clock.advance(10)
    assert call(server, "POST", APP + "/m1/stop").status_code == 200
    assert call(server, "GET", APP + "/m1/lease").status_code == 404


# --- wait ---


def test_wait_answers_at_once_when_in_state(server):
    """wait returns 200 at once when the Machine is already in the state."""
    response = call(server, "GET", APP + "/m1/wait?state=started&timeout=60")
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.json()["state"] == "started"


def test_wait_times_out_with_408():
    """wait answers 408 once a short timeout passes (real clock)."""
    with FakeMachinesServer(token=TOKEN) as server:
        server.add_app("my-app", machines=[machine("m1", "started")])
        response = call(server, "GET", APP + "/m1/wait?state=stopped&timeout=0.05")
    assert response.status_code == 408
    assert "error" in response.json()


def test_wait_rejects_bad_parameters(server):
    """An unknown state or timeout is 400; an unknown Machine 404."""
    assert call(server, "GET", APP + "/m1/wait?state=dancing").status_code == 400
    assert call(server, "GET", APP + "/m1/wait?timeout=later").status_code == 400
    assert call(server, "GET", APP + "/zz/wait?timeout=1").status_code == 404


def test_wait_timeout_follows_the_injected_clock(server, clock):
    """Advancing the clock past the timeout ends a pending wait with 408."""
    thread, out = in_background(
        lambda: call(server, "GET", APP + "/m1/wait?state=stopped&timeout=30")
    )
    wait_until(lambda: server.in_flight == 1)
    clock.advance(31)
    server.tick()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert out[0].status_code == 408


def test_wait_sees_a_delayed_transition():
    """A wait for started ends when the start's delay has passed on the clock."""
    clock = Clock()
    with FakeMachinesServer(token=TOKEN, clock=clock, transition_delay=5) as server:
        server.add_app("my-app", machines=[machine("m2", "stopped")])
        assert call(server, "POST", APP + "/m2/start").ok
        threads = [
            in_background(
                lambda: call(server, "GET", APP + "/m2/wait?state=started&timeout=60")
            )
            for _ in range(2)
        ]
        wait_until(lambda: server.in_flight == 2)
        assert server.max_in_flight >= 2
        clock.advance(5)
        server.tick()
        for thread, out in threads:
            thread.join(DEADLINE)
            assert out[0].status_code == 200
            assert out[0].json()["state"] == "started"


def test_wait_for_suspended_follows_the_delay():
    """A wait for suspended ends once the suspend's delay has passed on the clock."""
    clock = Clock()
    with FakeMachinesServer(token=TOKEN, clock=clock, transition_delay=5) as server:
        server.add_app("my-app", machines=[machine("m1", "started")])
        assert call(server, "POST", APP + "/m1/suspend").ok
        assert call(server, "GET", APP + "/m1").json()["state"] == "suspending"
        thread, out = in_background(
            lambda: call(server, "GET", APP + "/m1/wait?state=suspended&timeout=60")
        )
        wait_until(lambda: server.in_flight == 1)
        clock.advance(5)
        server.tick()
        thread.join(DEADLINE)
        assert not thread.is_alive()
        assert out[0].status_code == 200
        assert out[0].json()["state"] == "suspended"


def test_close_ends_a_pending_wait(clock):
    """close() returns promptly and answers a pending wait."""
    server = FakeMachinesServer(token=TOKEN, clock=clock).start()
    server.add_app("my-app", machines=[machine("m1", "started")])
    thread, out = in_background(
        lambda: call(server, "GET", APP + "/m1/wait?state=stopped&timeout=60")
    )
    wait_until(lambda: server.in_flight == 1)
    began = time.monotonic()
    server.close()
    thread.join(DEADLINE)
    assert time.monotonic() - began < DEADLINE
    assert not thread.is_alive()
    assert out[0].status_code == 503


# --- transitions ---


def test_transition_delays_follow_the_clock(clock):
    """Start goes starting -> started and stop stopping -> stopped after the delay."""
    with FakeMachinesServer(token=TOKEN, clock=clock, transition_delay=10) as server:
        server.add_app("my-app", machines=[machine("m2", "stopped")])

        def state(machine_id: str = "m2") -> str:
            return str(call(server, "GET", f"{APP}/{machine_id}").json()["state"])

        call(server, "POST", APP + "/m2/start")
        assert state() == "starting"
        clock.advance(9.9)
        assert state() == "starting"
        clock.advance(0.1)
        assert state() == "started"
        call(server, "POST", APP + "/m2/stop")
        assert state() == "stopping"
        clock.advance(10)
        assert state() == "stopped"
        created = call(server, "POST", APP, json={"config": {"image": "i:1"}}).json()
        assert created["state"] == "starting"
        clock.advance(10)
        assert state(created["id"]) == "started"


# --- GraphQL ---


def test_graphql_organization(server):
    """organization(slug:) returns the org, with a string internalNumericId."""
    body = gql(server, ORG_QUERY, slug="acme").json()
    org = body["data"]["organization"]
    assert org["slug"] == "acme"
    assert org["id"] == "org-acme"
    assert isinstance(org["internalNumericId"], str)
    assert org["type"] in {"PERSONAL", "SHARED"}
    assert gql(server, ORG_QUERY, slug="nope").json() == {
        "data": {"organization": None}
    }


def test_graphql_organization_literal_argument(server):
    """An inline literal slug works as well as a variable."""
    query = 'query { organization( slug : "acme" ) { id } }'
    body = gql(server, query).json()
    assert body["data"]["organization"]["id"] == "org-acme"


def test_graphql_apps_are_paginated():
    """apps() pages by endCursor until hasNextPage is false."""
    with FakeMachinesServer(token=TOKEN, graphql_page_size=2) as server:
        names = [f"tenant-{n}" for n in range(5)]
        for name in names:
            server.add_app(name, "acme", release_status="complete")
        org_id = gql(server, ORG_QUERY, slug="acme").json()["data"]["organization"]
        seen, after, pages = [], "", 0
        while True:
            response = gql(server, APPS_QUERY, org=org_id["id"], after=after)
            assert response.status_code == 200
            apps = response.json()["data"]["apps"]
            pages += 1
            assert len(apps["nodes"]) <= 2
            seen += [node["name"] for node in apps["nodes"]]
            if not apps["pageInfo"]["hasNextPage"]:
                break
            after = apps["pageInfo"]["endCursor"]
        assert seen == names
        assert pages == 3
        node = apps["nodes"][0]
        assert node["organization"]["slug"] == "acme"
        assert node["currentRelease"]["status"] == "complete"
        datetime.fromisoformat(node["currentRelease"]["createdAt"])
        assert server.count("get_apps_for_organization") == 3


def test_graphql_current_release(server):
    """currentReleaseUnprocessed: a release, null, or NOT_FOUND for no app."""
    assert gql(server, RELEASE_QUERY, appName="my-app").json() == {
        "data": {"app": {"currentRelease": None}}
    }
    server.set_release("my-app", "running")
    release = gql(server, RELEASE_QUERY, appName="my-app").json()["data"]["app"]
    assert release["currentRelease"]["status"] == "running"
    assert datetime.fromisoformat(release["currentRelease"]["createdAt"]).tzinfo
    missing = gql(server, RELEASE_QUERY, appName="ghost")
    assert missing.status_code == 200
    error = missing.json()["errors"][0]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert "ghost" in error["message"]


def test_graphql_bad_requests(server):
    """A body without a query is 400; an unknown query is an INVALID error."""
    assert call(server, "POST", "/graphql", data=b"nope").status_code == 400
    unknown = gql(server, "query { viewer { id } }").json()
    assert unknown["errors"][0]["extensions"]["code"] == "INVALID"


# --- rate limits ---


def test_rate_limits_burst_then_429_then_refill(clock):
    """Three starts of one Machine pass, the fourth gets 429, a second refills."""
    with FakeMachinesServer(token=TOKEN, clock=clock, rate_limits=True) as server:
        server.add_app("my-app", machines=[machine("m1"), machine("m2")])
        for _ in range(3):
            assert call(server, "POST", APP + "/m1/start").status_code == 200
        limited = call(server, "POST", APP + "/m1/start")
        assert limited.status_code == 429
        assert limited.json() == {"error": "rate limited"}
        assert int(limited.headers["Retry-After"]) >= 1
        assert call(server, "POST", APP + "/m2/start").status_code == 200
        assert call(server, "POST", APP + "/m1/stop").status_code == 200
        clock.advance(1)
        assert call(server, "POST", APP + "/m1/start").status_code == 200
        assert call(server, "POST", APP + "/m1/start").status_code == 429


def test_rate_limits_apply_to_suspend(clock):
    """Suspends of one Machine: burst 3, then 429; other Machines and actions pass."""
    with FakeMachinesServer(token=TOKEN, clock=clock, rate_limits=True) as server:
        server.add_app(
            "my-app", machines=[machine("m1", "started"), machine("m2", "started")]
        )
        statuses = [
            call(server, "POST", APP + "/m1/suspend").status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        assert server.requests[-1].action == "suspend"
        assert call(server, "POST", APP + "/m2/suspend").status_code == 200
        assert call(server, "POST", APP + "/m1/start").status_code == 200
        assert call(server, "POST", APP + "/m1/suspend").status_code == 429
        clock.advance(1)
        assert call(server, "POST", APP + "/m1/suspend").status_code == 200


def test_rate_limits_get_and_list(clock):
    """get allows a burst of 10 per Machine; list 3 per app."""
    with FakeMachinesServer(token=TOKEN, clock=clock, rate_limits=True) as server:
        server.add_app("my-app", machines=[machine("m1")])
        statuses = [call(server, "GET", APP + "/m1").status_code for _ in range(11)]
        assert statuses == [200] * 10 + [429]
        lists = [call(server, "GET", APP).status_code for _ in range(4)]
        assert lists == [200] * 3 + [429]
        clock.advance(0.2)
        assert call(server, "GET", APP + "/m1").status_code == 200


def test_rate_limits_are_off_by_default(server):
    """Without rate_limits, bursts are never refused."""
    assert {call(server, "GET", APP).status_code for _ in range(6)} == {200}


# --- faults and latency ---


def test_fail_next(server):
    """fail_next answers the next N requests with the status and does nothing."""
    server.fail_next(2)
    assert [call(server, "POST", APP + "/m2/start").status_code for _ in range(3)] == [
        503,
        503,
        200,
    ]
    server.fail_next(1, 500, method="POST", path="/stop")
    assert call(server, "GET", APP).status_code == 200
    failed = call(server, "POST", APP + "/m1/stop")
    assert failed.status_code == 500
    assert failed.json() == {"error": "injected failure"}
    assert server.flaps_client("my-app").machine("m1").state == "started"


def test_drop_next(server):
    """drop_next closes the connection without an answer; nothing is done."""
    server.drop_next(1, path="/start")
    with pytest.raises(requests.ConnectionError):
        call(server, "POST", APP + "/m2/start")
    assert server.flaps_client("my-app").machine("m2").state == "stopped"
    assert server.requests[-1].status is None
    assert call(server, "POST", APP + "/m2/start").ok


def test_malformed_next(server):
    """malformed_next answers 200 with a body that is not JSON."""
    server.malformed_next()
    response = call(server, "GET", APP)
    assert response.status_code == 200
    with pytest.raises(ValueError, match="Expecting"):
        response.json()
    assert call(server, "GET", APP).json()[0]["id"] == "m1"


def test_errors_injected_into_the_fakes_map_to_http(server):
    """FakeFlapsClient.fail() errors come out as their HTTP status."""
    client: FakeFlapsClient = server.flaps_client("my-app")
    client.fail("start", fas.FlapsRateLimitedError("slow down", retry_after=2.5))
    limited = call(server, "POST", APP + "/m2/start")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    client.fail("start", fas.FlapsTransportError("gone"))
    with pytest.raises(requests.ConnectionError):
        call(server, "POST", APP + "/m2/start")
    client.fail("list")
    assert call(server, "GET", APP).status_code == 500
    server.fly_client.fail("get_organization_by_slug")
    assert gql(server, ORG_QUERY, slug="acme").status_code == 500


def test_latency_is_applied_and_recorded(server):
    """Latency set at runtime is applied to the next request and recorded."""
    server.latency = 0.01
    assert call(server, "GET", APP).ok
    assert server.requests[-1].latency == 0.01
    server.latency = 0
    assert call(server, "GET", APP).ok
    assert server.requests[-1].latency == 0
    with pytest.raises(ValueError, match="latency"):
        server.latency = -1


def test_request_log_records_when_each_request_was_handled(server, clock):
    """Each record says when it was received and answered, on the server's clock."""
    assert call(server, "GET", APP).ok
    clock.advance(5)
    assert call(server, "POST", f"{APP}/m2/start").ok
    first, second = server.requests
    assert (first.received, first.answered) == (1000.0, 1000.0)
    assert (second.received, second.answered) == (1005.0, 1005.0)


def test_request_times_span_the_latency():
    """On the real clock, received comes before the latency and answered after it."""
    with FakeMachinesServer(token=TOKEN, latency=0.05) as server:
        server.add_app("my-app")
        before = time.monotonic()
        assert call(server, "GET", APP).ok
        after = time.monotonic()
    record = server.requests[-1]
    assert before <= record.received
    assert record.received + 0.05 <= record.answered <= after


def test_close_is_prompt_while_a_slow_request_is_pending():
    """A request held by a long latency does not hold close() up."""
    server = FakeMachinesServer(token=TOKEN, latency=600).start()
    server.add_app("my-app")
    thread, out = in_background(lambda: call(server, "GET", APP))
    wait_until(lambda: server.in_flight == 1)
    began = time.monotonic()
    server.close()
    assert time.monotonic() - began < DEADLINE
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert out  # answered or refused, but finished


# --- request log and counters ---


def test_request_log_records_requests_without_the_token(server):
    """The log has method, path, query, headers, body and status, never the token."""
    call(server, "POST", APP + "/m1/stop", json={"signal": "SIGTERM"})
    call(server, "GET", APP + f"?leak={TOKEN}")
    call(server, "GET", APP, headers={"Authorization": f"Bearer FlyV1 {TOKEN}"})
    stop, leak, flyv1 = server.requests[-3:]
    assert (stop.method, stop.path, stop.status, stop.action) == (
        "POST",
        APP + "/m1/stop",
        200,
        "stop",
    )
    assert stop.json() == {"signal": "SIGTERM"}
    assert stop.headers["authorization"] == "Bearer [REDACTED]"
    assert flyv1.headers["authorization"] == "Bearer FlyV1 [REDACTED]"
    assert leak.params == {"leak": ["[REDACTED]"]}
    assert TOKEN not in repr(server.requests)
    assert server.count("stop") == 1
    assert server.action_counts["list"] == 2
    server.clear_requests()
    assert server.requests == []


def test_request_log_records_a_suspend(server):
    """A suspend is logged with its action, path, empty body and status."""
    call(
        server,
        "POST",
        APP + "/m1/suspend",
        headers={**AUTH, "fly-machine-lease-nonce": "n-1"},
    )
    record = server.requests[-1]
    assert (record.method, record.path, record.query) == (
        "POST",
        APP + "/m1/suspend",
        "",
    )
    assert (record.action, record.status, record.body) == ("suspend", 200, b"")
    assert record.headers["fly-machine-lease-nonce"] == "n-1"
    assert server.count("suspend") == 1
    assert server.action_counts["suspend"] == 1


def test_concurrent_creates_are_consistent(server):
    """Creates from several threads all land, each with its own id."""
    body = {"config": {"image": "img:1"}}
    workers = [
        in_background(lambda: call(server, "POST", APP, json=body)) for _ in range(8)
    ]
    ids = set()
    for thread, out in workers:
        thread.join(DEADLINE)
        ids.add(out[0].json()["id"])
    assert len(ids) == 8
    assert len(server.machines("my-app")) == 10
    assert server.in_flight == 0


# --- the in-memory fake's new options ---


def test_fake_flaps_client_delay_and_leases(clock):
    """FakeFlapsClient moves through transient states and enforces leases."""
    client = FakeFlapsClient([machine("m1")], transition_delay=2, clock=clock)
    client.start("m1")
    assert client.machine("m1").state == "starting"
    assert client.wait("m1", "started", timeout=0) is None
    clock.advance(2)
    assert client.wait("m1", "started", timeout=0) is not None
    lease = client.acquire_lease("m1", 5)
    with pytest.raises(fas.FlapsConflictError, match="aborted"):
        client.stop(fas.StopMachineInput("m1"))
    client.stop(fas.StopMachineInput("m1"), lease.nonce)
    client.release_lease("m1", lease.nonce)
    assert client.get_lease("m1") is None
