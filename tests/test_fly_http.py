"""FlapsHTTPClient: the Machines API on the wire, errors, retries and threads."""

from __future__ import annotations

import json
import logging
import socket
import threading
from importlib.metadata import version

import pytest
import requests
import responses
import urllib3.connection
import urllib3.exceptions

import flyautoscaler as fas
from flyautoscaler._errors import FlyAPIError
from flyautoscaler._http import replica_user_agent, request_timeouts
from flyautoscaler.fly import (
    DEFAULT_TIMEOUT,
    FlapsHTTPClient,
    RetryPolicy,
    new_flaps_client_func,
)

BASE = "http://127.0.0.1:4280"
MACHINES = f"{BASE}/v1/apps/my-app/machines"
TOKEN = "FlyV1 fm2_lJPECAAAAAAAAsecret,fm2_lJPEsecondsecret"  # noqa: S105 - fake
USER_TOKEN = "fo1_usertokensecret42"  # noqa: S105 - fake

MACHINE_JSON = {
    "id": "148ed193b95e89",
    "name": "aged-wind-2649",
    "state": "started",
    "region": "ord",
    "instance_id": "01HEHQ3T5K95DK9IVP4XHTTPEY",
    "private_ip": "fdaa:0:18:a7b:196:e274:9ce1:2",
    "image_ref": {
        "registry": "registry.fly.io",
        "repository": "my-app",
        "tag": "deployment-01",
        "digest": "sha256:abc",
    },
    "config": {
        "image": "registry.fly.io/my-app:deployment-01",
        "env": {"B": "2", "A": "1"},
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
        "init": {},
    },
    "host_status": "ok",
}


@pytest.fixture
def client(fake_time):
    """A client for my-app on 127.0.0.1 that never really sleeps."""
    with FlapsHTTPClient(
        "my-app", TOKEN, base_url=BASE, sleep=fake_time.sleep, clock=fake_time.clock
    ) as flaps:
        yield flaps


def no_retry_client(token: str = TOKEN) -> FlapsHTTPClient:
    """Return a client that tries each request once."""
    return FlapsHTTPClient(
        "my-app", token, base_url=BASE, retry=RetryPolicy(max_attempts=1)
    )


def launch_input() -> fas.LaunchMachineInput:
    """Return a clone of MACHINE_JSON's config with a new image."""
    source = fas.Machine.from_api(MACHINE_JSON)
    assert source.config is not None
    return fas.LaunchMachineInput(
        config=source.config.clone(image="registry.fly.io/my-app:deployment-02"),
        region="ams",
    )


def refused_error(url: str) -> requests.exceptions.ConnectionError:
    """Return what requests raises when the TCP connection is refused."""
    reason = urllib3.exceptions.NewConnectionError(
        urllib3.connection.HTTPConnection("127.0.0.1", 9),
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, url, reason)  # type: ignore[arg-type]
    )


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- paths, query parameters, bodies ------------------------------------------


def test_list_path_and_parsing(rsps, client):
    """list GETs /v1/apps/{app}/machines with no query and parses full Machines."""
    rsps.get(MACHINES, json=[MACHINE_JSON, {**MACHINE_JSON, "id": "2"}])
    machines = client.list()
    assert [m.id for m in machines] == ["148ed193b95e89", "2"]
    assert machines[0].config is not None
    assert machines[0].config.extra["guest"]["memory_mb"] == 256
    request = rsps.calls[0].request
    assert request.method == "GET"
    assert request.url == MACHINES
    assert request.body is None


def test_list_state_query(rsps, client):
    """A state filter is sent as ?state=, not fly-go's bare ?started."""
    rsps.get(MACHINES, json=[])
    assert client.list("started") == []
    assert rsps.calls[0].request.url == f"{MACHINES}?state=started"


def test_default_base_url(rsps, monkeypatch):
    """The default base URL is the public Machines API."""
    monkeypatch.delenv("FLY_FLAPS_BASE_URL", raising=False)
    rsps.get("https://api.machines.dev/v1/apps/my-app/machines", json=[])
    with FlapsHTTPClient("my-app", TOKEN) as flaps:
        assert flaps.list() == []
    assert flaps.base_url == "https://api.machines.dev"


def test_base_url_trailing_slash(rsps):
    """A trailing slash on base_url does not double the path's slash."""
    rsps.get(MACHINES, json=[])
    with FlapsHTTPClient("my-app", TOKEN, base_url=BASE + "/") as flaps:
        flaps.list()
    assert rsps.calls[0].request.url == MACHINES


def test_launch_body_keeps_config_and_key_order(rsps, client):
    """launch POSTs the config as received (order too), image replaced."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    machine = client.launch(launch_input())
    assert machine.id == "148ed193b95e89"
    config = {**MACHINE_JSON["config"], "image": "registry.fly.io/my-app:deployment-02"}
    expected = json.dumps({"config": config, "region": "ams"}, separators=(",", ":"))
    request = rsps.calls[0].request
    assert request.method == "POST"
    assert request.url == MACHINES
    assert request.body.decode() == expected
    assert list(json.loads(request.body)["config"]) == list(MACHINE_JSON["config"])


def test_launch_body_optional_fields(rsps, client):
    """skip_launch and name are sent when set; empty fields are omitted."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    config = fas.MachineConfig.from_api({"image": "img", "auto_destroy": True})
    client.launch(fas.LaunchMachineInput(config, skip_launch=True, name="web-2"))
    client.launch(fas.LaunchMachineInput(config))
    first, second = (json.loads(call.request.body) for call in rsps.calls)
    assert first == {
        "config": {"image": "img", "auto_destroy": True},
        "skip_launch": True,
        "name": "web-2",
    }
    assert second == {"config": {"image": "img", "auto_destroy": True}}


def test_start_path_no_body(rsps, client):
    """start POSTs .../{id}/start without a body and parses the answer."""
    rsps.post(f"{MACHINES}/abc123/start", json={"previous_state": "stopped"})
    answer = client.start("abc123")
    assert answer.previous_state == "stopped"
    request = rsps.calls[0].request
    assert request.body is None
    assert "Content-Type" not in request.headers


def test_start_tolerates_empty_body(rsps, client):
    """A start answered with an empty 200 gives an empty MachineStartResponse."""
    rsps.post(f"{MACHINES}/abc123/start", body="")
    assert client.start("abc123") == fas.MachineStartResponse()


def test_stop_body_only_set_fields(rsps, client):
    """stop sends signal and timeout only when set, and {} when neither is."""
    rsps.post(f"{MACHINES}/abc123/stop", json={"ok": True})
    client.stop(fas.StopMachineInput("abc123", signal="SIGTERM", timeout=10))
    client.stop(fas.StopMachineInput("abc123"))
    first, second = (call.request for call in rsps.calls)
    assert first.body == b'{"signal":"SIGTERM","timeout":"10s"}'
    assert second.body == b"{}"
    assert second.headers["Content-Type"] == "application/json"


def test_suspend_path_no_body(rsps, client):
    """suspend POSTs .../{id}/suspend without a body and returns None."""
    rsps.post(f"{MACHINES}/abc123/suspend", json={"ok": True})
    assert client.suspend("abc123") is None
    request = rsps.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{MACHINES}/abc123/suspend"
    assert request.body is None
    assert "Content-Type" not in request.headers
    assert "fly-machine-lease-nonce" not in request.headers
    assert request.headers["Authorization"] == TOKEN


def test_suspend_tolerates_any_2xx_body(rsps, client):
    """A suspend answered 200 with an empty body, or 202, is a success."""
    rsps.post(f"{MACHINES}/m1/suspend", body="")
    rsps.post(f"{MACHINES}/m2/suspend", status=202, body="not json")
    client.suspend("m1")
    client.suspend("m2")
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    ("kill", "query"), [(True, "?force=true&kill=true"), (False, "")]
)
def test_destroy_query(rsps, client, kill, query):
    """destroy DELETEs .../{id}; kill sends both force=true and kill=true."""
    rsps.delete(f"{MACHINES}/abc123", json={"ok": True})
    client.destroy(fas.RemoveMachineInput("abc123", kill=kill))
    request = rsps.calls[0].request
    assert request.method == "DELETE"
    assert request.url == f"{MACHINES}/abc123{query}"
    assert request.body is None


def test_path_segments_are_escaped(rsps):
    """An app name or Machine id cannot escape its path segment."""
    rsps.post(f"{BASE}/v1/apps/a%2Fb/machines/..%2Fx/start", json={})
    with FlapsHTTPClient("a/b", TOKEN, base_url=BASE) as flaps:
        flaps.start("../x")
    assert len(rsps.calls) == 1


# --- headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("fo1_plainusertoken", "Bearer fo1_plainusertoken"),
        ("FlyV1 fm2_a,fm2_b", "FlyV1 fm2_a,fm2_b"),
        ("Bearer FlyV1 fm2_x", "FlyV1 fm2_x"),
        ("fo1_user, fm2_mac , fm1r_old", "FlyV1 fm2_mac,fm1r_old"),
    ],
)
def test_authorization_header_forms(rsps, token, header):
    """The Authorization header takes fly-go's FlapsHeader form for each token."""
    rsps.get(MACHINES, json=[])
    with FlapsHTTPClient("my-app", token, base_url=BASE) as flaps:
        flaps.list()
    assert rsps.calls[0].request.headers["Authorization"] == header


def test_common_headers(rsps, client):
    """User-Agent names flyautoscaler and its version; Accept is JSON."""
    rsps.get(MACHINES, json=[])
    client.list()
    headers = rsps.calls[0].request.headers
    assert headers["User-Agent"] == f"flyautoscaler/{version('flyautoscaler')}"
    assert headers["Accept"] == "application/json"
    assert "Content-Type" not in headers
    assert "fly-machine-lease-nonce" not in headers


@pytest.mark.parametrize(
    ("replica_id", "comment"),
    [
        ("fly-abc-123-x1", "fly-abc-123-x1"),
        ("a(b)c\\d", "a_b_c_d"),
        ("répl", "r_pl"),
    ],
)
def test_replica_user_agent(rsps, replica_id, comment):
    """A replica's User-Agent names it in a comment a header can carry."""
    rsps.get(MACHINES, json=[])
    agent = replica_user_agent(replica_id)
    with FlapsHTTPClient("my-app", "secret", base_url=BASE, user_agent=agent) as flaps:
        flaps.list()
    assert rsps.calls[0].request.headers["User-Agent"] == (
        f"flyautoscaler/{version('flyautoscaler')} (replica {comment})"
    )


@pytest.mark.parametrize(
    ("total", "pair"), [(35.0, DEFAULT_TIMEOUT), (2.0, (1.0, 1.0)), (12.0, (5.0, 7.0))]
)
def test_request_timeouts_split_a_total(total, pair):
    """One request timeout: connect gets at most 5 s or half, read the rest."""
    assert request_timeouts(total) == pair


def test_content_type_only_with_body(rsps, client):
    """Content-Type is sent on launch and stop, not on start, suspend or destroy."""
    rsps.post(MACHINES, json=MACHINE_JSON)
    rsps.post(f"{MACHINES}/m1/stop", json={"ok": True})
    rsps.post(f"{MACHINES}/m1/start", json={})
    rsps.post(f"{MACHINES}/m1/suspend", json={"ok": True})
    rsps.delete(f"{MACHINES}/m1", json={"ok": True})
    client.launch(launch_input())
    client.stop(fas.StopMachineInput("m1"))
    client.start("m1")
    client.suspend("m1")
    client.destroy(fas.RemoveMachineInput("m1"))
    types = [call.request.headers.get("Content-Type") for call in rsps.calls]
    assert types == ["application/json", "application/json", None, None, None]


def test_nonce_header_when_given(rsps, client):
    """The lease nonce goes in fly-machine-lease-nonce on every Machine action."""
    rsps.post(f"{MACHINES}/m1/start", json={})
    rsps.post(f"{MACHINES}/m1/stop", json={"ok": True})
    rsps.post(f"{MACHINES}/m1/suspend", json={"ok": True})
    rsps.delete(f"{MACHINES}/m1", json={"ok": True})
    client.start("m1", "nonce-1")
    client.stop(fas.StopMachineInput("m1"), "nonce-2")
    client.suspend("m1", "nonce-3")
    client.destroy(fas.RemoveMachineInput("m1"), "nonce-4")
    client.start("m1")
    client.suspend("m1")
    nonces = [
        call.request.headers.get("fly-machine-lease-nonce") for call in rsps.calls
    ]
    assert nonces == ["nonce-1", "nonce-2", "nonce-3", "nonce-4", None, None]


def test_timeout_on_every_request(rsps, fake_time):
    """Every request carries the (connect, read) timeout."""
    rsps.get(MACHINES, json=[])
    rsps.post(f"{MACHINES}/m1/start", json={})
    with FlapsHTTPClient("my-app", TOKEN, base_url=BASE, timeout=(1.5, 7)) as flaps:
        flaps.list()
        flaps.start("m1")
    assert [call.request.req_kwargs["timeout"] for call in rsps.calls] == [
        (1.5, 7.0),
        (1.5, 7.0),
    ]


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, fas.FlapsError),
        (401, fas.FlapsError),
        (404, fas.FlapsNotFoundError),
        (409, fas.FlapsConflictError),
        (412, fas.FlapsConflictError),
        (422, fas.FlapsError),
        (429, fas.FlapsRateLimitedError),
        (500, fas.FlapsServerError),
        (502, fas.FlapsServerError),
        (503, fas.FlapsServerError),
    ],
)
def test_status_maps_to_error(rsps, status, cls):
    """Each status maps to its FlapsError class, with status, method, URL, id."""
    rsps.get(
        MACHINES,
        status=status,
        json={"error": "something broke"},
        headers={"fly-request-id": "01J-req"},
    )
    with no_retry_client() as flaps, pytest.raises(cls) as caught:
        flaps.list()
    error = caught.value
    assert type(error) is cls
    assert error.status == status
    assert error.method == "GET"
    assert error.url == MACHINES
    assert error.request_id == "01J-req"
    assert error.message == "something broke"
    assert f"GET {MACHINES}: {status}: something broke" in str(error)
    assert "fly-request-id 01J-req" in str(error)
    assert error.transient == (status in {429, 500, 502, 503})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"error": "no capacity", "status": "insufficient_capacity"},
            "insufficient_capacity",
        ),
        ({"error": "taken", "status": "name_taken"}, "name_taken"),
        ({"status": "error", "message": "lease held", "code": "invalid"}, ""),
        ({"error": "plain"}, ""),
    ],
)
def test_error_body_status_is_kept(rsps, body, expected):
    """The error body's status (insufficient_capacity, ...) is on the error."""
    rsps.post(MACHINES, status=412, json=body)
    config = fas.MachineConfig(image="nginx")
    with no_retry_client() as flaps, pytest.raises(fas.FlapsError) as caught:
        flaps.launch(fas.LaunchMachineInput(config))
    assert caught.value.error_status == expected
    if expected:
        assert f"[{expected}]" in str(caught.value)
        assert expected in repr(caught.value)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, fas.FlapsNotFoundError),
        (409, fas.FlapsConflictError),
        (412, fas.FlapsConflictError),
        (422, fas.FlapsError),
        (429, fas.FlapsRateLimitedError),
        (500, fas.FlapsServerError),
        (503, fas.FlapsServerError),
    ],
)
def test_suspend_status_maps_to_error(rsps, status, cls):
    """A refused suspend raises the status's FlapsError class, naming POST and URL."""
    url = f"{MACHINES}/m1/suspend"
    rsps.post(
        url,
        status=status,
        json={"error": "machine is stopped, cannot suspend"},
        headers={"fly-request-id": "01J-sus"},
    )
    with no_retry_client() as flaps, pytest.raises(cls) as caught:
        flaps.suspend("m1")
    error = caught.value
    assert type(error) is cls
    assert (error.status, error.method, error.url) == (status, "POST", url)
    assert error.request_id == "01J-sus"
    assert error.message == "machine is stopped, cannot suspend"


def test_suspend_of_a_leased_machine_is_a_conflict(rsps):
    """Fly's 409 for a leased Machine (lease envelope) is a FlapsConflictError."""
    rsps.post(
        f"{MACHINES}/m1/suspend",
        status=409,
        json={"error": "aborted: machine ID m1 lease currently held by x@fly.io"},
    )
    with no_retry_client() as flaps, pytest.raises(fas.FlapsConflictError) as caught:
        flaps.suspend("m1")
    assert "lease currently held" in caught.value.message
    assert not caught.value.transient


def test_message_preferred_over_error(rsps):
    """A non-empty message wins over error, as fly-go reads error bodies."""
    rsps.post(
        f"{MACHINES}/m1/start",
        status=409,
        json={"status": "error", "message": "lease held", "error": "aborted"},
    )
    with no_retry_client() as flaps, pytest.raises(fas.FlapsConflictError) as caught:
        flaps.start("m1")
    assert caught.value.message == "lease held"


def test_empty_message_falls_back_to_error(rsps):
    """An empty message falls back to the error field."""
    rsps.get(MACHINES, status=422, json={"message": "", "error": "name taken"})
    with no_retry_client() as flaps, pytest.raises(fas.FlapsError) as caught:
        flaps.list()
    assert caught.value.message == "name taken"


def test_non_json_error_body(rsps):
    """A non-JSON error body is kept as the message."""
    rsps.get(MACHINES, status=502, body="<html>Bad Gateway</html>")
    with no_retry_client() as flaps, pytest.raises(fas.FlapsServerError) as caught:
        flaps.list()
    assert caught.value.message == "<html>Bad Gateway</html>"


def test_long_error_body_is_truncated(rsps):
    """A huge error body is truncated in the error."""
    rsps.get(MACHINES, status=500, body="x" * 10_000)
    with no_retry_client() as flaps, pytest.raises(fas.FlapsServerError) as caught:
        flaps.list()
    assert len(caught.value.message) < 600


@pytest.mark.parametrize(
    ("header", "expected"),
    [("1", 1.0), ("2.5", 2.5), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None)],
)
def test_rate_limited_retry_after(rsps, header, expected):
    """429 carries Retry-After in seconds, from seconds or an HTTP-date."""
    headers = {"Retry-After": header} if header is not None else {}
    rsps.get(MACHINES, status=429, json={"error": "rate limited"}, headers=headers)
    with no_retry_client() as flaps, pytest.raises(fas.FlapsRateLimitedError) as caught:
        flaps.list()
    assert caught.value.retry_after == expected
    assert caught.value.status == 429


def test_any_2xx_is_success(rsps, client):
    """A 201, 202 or 204 is a success like 200."""
    rsps.post(f"{MACHINES}/m1/stop", status=202)
    rsps.delete(f"{MACHINES}/m1", status=204)
    client.stop(fas.StopMachineInput("m1"))
    client.destroy(fas.RemoveMachineInput("m1"))
    assert len(rsps.calls) == 2


def test_malformed_success_body(rsps, client):
    """A 200 whose body is not JSON is a transient FlapsError, not a crash."""
    rsps.get(MACHINES, body="[{not json")
    with pytest.raises(fas.FlapsError) as caught:
        client.list()
    assert caught.value.status == 200
    assert caught.value.transient
    assert "not JSON" in caught.value.message


@pytest.mark.parametrize("payload", [{"machines": []}, [{"name": "no id"}], ["x"]])
def test_wrong_shape_success_body(rsps, client, payload):
    """A list answer that is not an array of Machines is a FlapsError."""
    rsps.get(MACHINES, json=payload)
    with pytest.raises(fas.FlapsError):
        client.list()


def test_transport_error_has_no_status(rsps):
    """A connection failure is a FlapsTransportError with status None."""
    rsps.get(MACHINES, body=requests.exceptions.ConnectionError("reset by peer"))
    with no_retry_client() as flaps, pytest.raises(fas.FlapsTransportError) as caught:
        flaps.list()
    assert caught.value.status is None
    assert caught.value.transient
    assert caught.value.url == MACHINES
    assert "reset by peer" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.exceptions.ConnectionError)


# --- secrets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "pieces"),
    [
        (TOKEN, ["fm2_lJPECAAAAAAAAsecret", "fm2_lJPEsecondsecret"]),
        (USER_TOKEN, [USER_TOKEN]),
        (f"Bearer {USER_TOKEN}", [USER_TOKEN]),
        (f"{USER_TOKEN},fm2_mixedsecret", [USER_TOKEN, "fm2_mixedsecret"]),
    ],
)
def test_echoed_token_never_in_error(rsps, token, pieces):
    """A token the server echoes in its error body is not in str/repr."""
    echo = f"invalid token {token} (pieces {' '.join(pieces)})"
    rsps.get(MACHINES, status=401, json={"error": echo})
    with no_retry_client(token) as flaps, pytest.raises(fas.FlapsError) as caught:
        flaps.list()
    for text in (str(caught.value), repr(caught.value), caught.value.message):
        assert "invalid token" in text
        for piece in pieces:
            assert piece not in text


def test_client_repr_has_no_token():
    """The client's repr shows the app and endpoint, never the token."""
    with FlapsHTTPClient("my-app", USER_TOKEN, base_url=BASE) as flaps:
        text = repr(flaps)
    assert "my-app" in text
    assert BASE in text
    assert USER_TOKEN not in text
    assert "fo1_" not in text


def test_factory_repr_has_no_token():
    """The factory's repr never shows the token."""
    with new_flaps_client_func(USER_TOKEN, base_url=BASE) as factory:
        assert USER_TOKEN not in repr(factory)
        assert USER_TOKEN not in repr(factory("my-app"))


def test_empty_token_rejected():
    """An empty token (or a bare scheme) is a ConfigError up front."""
    for token in ("", "   ", "Bearer ", "FlyV1 , ,"):
        with pytest.raises(fas.ConfigError):
            FlapsHTTPClient("my-app", token)


@pytest.mark.parametrize("base_url", ["api.machines.dev", "ftp://x", ""])
def test_bad_base_url_rejected(base_url):
    """A base URL that is not http(s)://host is a ConfigError."""
    with pytest.raises(fas.ConfigError):
        FlapsHTTPClient("my-app", TOKEN, base_url=base_url)


def test_bad_timeout_rejected():
    """A zero or negative timeout is a ConfigError."""
    with pytest.raises(fas.ConfigError):
        FlapsHTTPClient("my-app", TOKEN, timeout=(0, 30))


# --- retries ------------------------------------------------------------------


def test_503_then_success_is_retried(rsps, client, fake_time):
    """A 503 on list is retried once after one backoff sleep."""
    rsps.get(MACHINES, status=503, json={"error": "unavailable"})
    rsps.get(MACHINES, json=[MACHINE_JSON])
    assert len(client.list()) == 1
    assert len(rsps.calls) == 2
    assert len(fake_time.sleeps) == 1
    assert 0.0 <= fake_time.sleeps[0] <= 0.1


def test_429_waits_retry_after(rsps, client, fake_time):
    """A 429 with Retry-After: 1 waits about a second, then retries."""
    rsps.get(MACHINES, status=429, headers={"Retry-After": "1"})
    rsps.get(MACHINES, json=[])
    client.list()
    assert fake_time.sleeps == [pytest.approx(1.0)]


def test_retry_after_longer_than_the_cap_fails_at_once(rsps, client, fake_time):
    """A Retry-After beyond max_retry_after is not cut short: no wait, no resend."""
    rsps.get(MACHINES, status=429, headers={"Retry-After": "3600"})
    rsps.get(MACHINES, json=[])
    with pytest.raises(fas.FlapsRateLimitedError) as caught:
        client.list()
    assert fake_time.sleeps == []
    assert len(rsps.calls) == 1
    assert caught.value.retry_after == 3600.0
    assert "asked to wait 3600 s" in str(caught.value)
    assert "longer than this client waits (10 s)" in caught.value.__notes__[0]


def test_retry_budget_exhausted(rsps, client, fake_time):
    """After max_attempts failures the last error is raised."""
    rsps.get(MACHINES, status=503, json={"error": "still down"})
    with pytest.raises(fas.FlapsServerError) as caught:
        client.list()
    assert caught.value.message == "still down"
    assert len(rsps.calls) == 4
    assert len(fake_time.sleeps) == 3
    # Full jitter under a doubling bound: 0.1, 0.2, 0.4.
    for sleep, bound in zip(fake_time.sleeps, [0.1, 0.2, 0.4], strict=True):
        assert 0.0 <= sleep <= bound


def test_retry_elapsed_budget(rsps, fake_time):
    """No retry starts that would end after max_elapsed seconds."""
    rsps.get(MACHINES, status=429, headers={"Retry-After": "1"})
    policy = RetryPolicy(max_attempts=10, max_elapsed=1.5)
    with (
        FlapsHTTPClient(
            "my-app",
            TOKEN,
            base_url=BASE,
            retry=policy,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        ) as flaps,
        pytest.raises(fas.FlapsRateLimitedError),
    ):
        flaps.list()
    assert fake_time.sleeps == [1.0]
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("status", [500, 400, 404, 409])
def test_other_statuses_not_retried(rsps, client, fake_time, status):
    """500 and 4xx other than 429 are raised at once, even on a GET."""
    rsps.get(MACHINES, status=status, json={"error": "no"})
    with pytest.raises(fas.FlapsError):
        client.list()
    assert len(rsps.calls) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_mutations_retried_on_gateway_errors(rsps, client, fake_time, status):
    """start, stop, suspend and destroy are retried on 502, 503 and 504."""
    for method, url in [
        (responses.POST, f"{MACHINES}/m1/start"),
        (responses.POST, f"{MACHINES}/m1/stop"),
        (responses.POST, f"{MACHINES}/m1/suspend"),
        (responses.DELETE, f"{MACHINES}/m1"),
    ]:
        rsps.add(method, url, status=status)
        rsps.add(method, url, json={"ok": True})
    client.start("m1")
    client.stop(fas.StopMachineInput("m1"))
    client.suspend("m1")
    client.destroy(fas.RemoveMachineInput("m1", kill=True))
    assert len(rsps.calls) == 8
    assert len(fake_time.sleeps) == 4


def test_suspend_retried_like_stop(rsps, client, fake_time):
    """suspend, like stop, retries a 429 after Retry-After and a dropped connection."""
    url = f"{MACHINES}/m1/suspend"
    rsps.post(url, status=429, headers={"Retry-After": "2"})
    rsps.post(url, body=requests.exceptions.ConnectionError("Connection aborted"))
    rsps.post(url, json={"ok": True})
    client.suspend("m1")
    assert len(rsps.calls) == 3
    assert fake_time.sleeps[0] == 2.0
    assert len(fake_time.sleeps) == 2


@pytest.mark.parametrize("status", [400, 409, 500])
def test_suspend_not_retried_on_other_statuses(rsps, client, fake_time, status):
    """A 400, 409 or 500 on suspend is raised at once, as for stop."""
    rsps.post(f"{MACHINES}/m1/suspend", status=status, json={"error": "no"})
    with pytest.raises(fas.FlapsError):
        client.suspend("m1")
    assert len(rsps.calls) == 1
    assert fake_time.sleeps == []


def test_suspend_retry_budget_exhausted(rsps, client, fake_time):
    """A suspend that keeps getting 503 gives up after max_attempts."""
    rsps.post(f"{MACHINES}/m1/suspend", status=503, json={"error": "still down"})
    with pytest.raises(fas.FlapsServerError) as caught:
        client.suspend("m1")
    assert caught.value.message == "still down"
    assert len(rsps.calls) == 4
    assert len(fake_time.sleeps) == 3


def test_dropped_connection_on_list_is_retried(rsps, client, fake_time):
    """A dropped connection or a timeout on list is retried."""
    rsps.get(MACHINES, body=requests.exceptions.ConnectionError("Connection aborted"))
    rsps.get(MACHINES, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(MACHINES, json=[MACHINE_JSON])
    assert len(client.list()) == 1
    assert len(rsps.calls) == 3
    assert len(fake_time.sleeps) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_launch_5xx_is_one_post(rsps, client, fake_time, status):
    """A 5xx on launch may have created a Machine: exactly one POST."""
    rsps.post(MACHINES, status=status, json={"error": "boom"})
    with pytest.raises(fas.FlapsServerError):
        client.launch(launch_input())
    assert len(rsps.calls) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("Connection reset by peer"),
        requests.exceptions.ChunkedEncodingError("incomplete read"),
    ],
)
def test_launch_after_sending_is_one_post(rsps, client, fake_time, failure):
    """A read timeout or reset on launch is raised at once: exactly one POST."""
    rsps.post(MACHINES, body=failure)
    with pytest.raises(fas.FlapsTransportError):
        client.launch(launch_input())
    assert len(rsps.calls) == 1
    assert fake_time.sleeps == []


def test_launch_429_is_retried(rsps, client, fake_time):
    """A 429 on launch means nothing was created: it is retried."""
    rsps.post(MACHINES, status=429, headers={"Retry-After": "2"})
    rsps.post(MACHINES, json=MACHINE_JSON)
    assert client.launch(launch_input()).id == "148ed193b95e89"
    assert len(rsps.calls) == 2
    assert fake_time.sleeps == [2.0]


def test_launch_refused_connection_is_retried(rsps, client, fake_time):
    """A launch whose connection was refused (never sent) is retried."""
    rsps.post(MACHINES, body=refused_error(MACHINES))
    rsps.post(MACHINES, json=MACHINE_JSON)
    assert client.launch(launch_input()).id == "148ed193b95e89"
    assert len(rsps.calls) == 2
    assert len(fake_time.sleeps) == 1


def test_launch_refused_by_a_real_closed_port(fake_time):
    """Against a closed port on 127.0.0.1 launch is retried, then raises."""
    base = f"http://127.0.0.1:{closed_port()}"
    with (
        FlapsHTTPClient(
            "my-app", TOKEN, base_url=base, sleep=fake_time.sleep, clock=fake_time.clock
        ) as flaps,
        pytest.raises(fas.FlapsTransportError) as caught,
    ):
        flaps.launch(launch_input())
    assert len(fake_time.sleeps) == 3  # four attempts
    assert caught.value.status is None
    assert caught.value.method == "POST"
    assert caught.value.url == f"{base}/v1/apps/my-app/machines"


def test_retry_is_logged_without_token(rsps, client, caplog):
    """Each retry logs flaps.retry with its data in extra, and no token."""
    rsps.get(MACHINES, status=503, json={"error": f"echo {TOKEN}"})
    rsps.get(MACHINES, json=[])
    with caplog.at_level(logging.DEBUG, logger="flyautoscaler"):
        client.list()
    [record] = [r for r in caplog.records if r.msg == "flaps.retry"]
    assert record.name == "flyautoscaler.fly"
    assert record.args == ()
    data = vars(record)
    assert data["app"] == "my-app"
    assert data["method"] == "GET"
    assert data["url"] == MACHINES
    assert data["attempt"] == 1
    assert data["status"] == 503
    assert 0.0 <= data["delay"] <= 0.1
    everything = repr(record.__dict__) + caplog.text
    assert "fm2_" not in everything
    assert "secret" not in everything


def test_no_retry_policy(rsps, fake_time):
    """max_attempts=1 never retries."""
    rsps.get(MACHINES, status=503)
    with (
        FlapsHTTPClient(
            "my-app", TOKEN, base_url=BASE, retry=RetryPolicy(max_attempts=1)
        ) as flaps,
        pytest.raises(fas.FlapsServerError),
    ):
        flaps.list()
    assert len(rsps.calls) == 1


# --- sessions and threads -----------------------------------------------------


def test_one_session_per_thread(rsps, client):
    """Four threads calling at once each get their own session, kept per thread."""
    rsps.get(MACHINES, json=[])
    barrier = threading.Barrier(4, timeout=10)
    sessions: dict[int, list[requests.Session]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            client.list()
            barrier.wait()
            client.list()
            sessions[n] = [client._session(), client._session()]
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert len(rsps.calls) == 8
    assert all(first is second for first, second in sessions.values())
    assert len({id(pair[0]) for pair in sessions.values()}) == 4
    assert client._session() not in [pair[0] for pair in sessions.values()]


def test_close_closes_sessions(rsps, fake_time):
    """close() is idempotent; a closed client refuses to send."""
    rsps.get(MACHINES, json=[])
    flaps = FlapsHTTPClient("my-app", TOKEN, base_url=BASE)
    flaps.list()
    flaps.close()
    flaps.close()
    with pytest.raises(RuntimeError, match="closed"):
        flaps.list()


def test_factory_clients_share_sessions(rsps):
    """Clients from one factory share the per-thread session; close ends them."""
    rsps.get(f"{BASE}/v1/apps/a/machines", json=[])
    factory = new_flaps_client_func(TOKEN, base_url=BASE)
    first, second = factory("a"), factory("b")
    assert first.app_name == "a"
    assert second.app_name == "b"
    assert first._session() is second._session()
    first.close()  # a shared pool stays open
    first.list()
    factory.close()
    with pytest.raises(RuntimeError, match="closed"):
        second.list()


def test_factory_is_a_new_flaps_client_func():
    """The factory is a callable app_name -> FlapsHTTPClient with the options."""
    policy = RetryPolicy(max_attempts=2)
    with new_flaps_client_func(
        TOKEN, base_url=BASE, timeout=(2, 3), retry=policy, user_agent="me/1"
    ) as factory:
        client: fas.FlapsClient = factory("my-app")
        assert isinstance(client, FlapsHTTPClient)
        assert client.base_url == BASE
        assert client.timeout == (2.0, 3.0)
        assert client.retry is policy
        assert client.user_agent == "me/1"


def test_fly_api_error_is_in_the_tree():
    """FlyAPIError is a FlyAutoscalerError (exported from _errors)."""
    assert issubclass(FlyAPIError, fas.FlyAutoscalerError)


def test_configuration_is_frozen():
    """A client's configuration cannot change after it is built."""
    with FlapsHTTPClient("my-app", TOKEN, base_url=BASE) as flaps:
        with pytest.raises(AttributeError):
            flaps.timeout = (1.0, 2.0)  # type: ignore[misc]
        assert flaps.timeout == (5.0, 30.0)
