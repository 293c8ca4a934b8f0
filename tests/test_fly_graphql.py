"""FlyGraphQLClient: the three queries on the wire, pagination and errors."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
import requests

import flyautoscaler as fas
from flyautoscaler._errors import FlyAPIError
from flyautoscaler.fly import FlyGraphQLClient, RetryPolicy

BASE = "http://127.0.0.1:4281"
GRAPHQL = f"{BASE}/graphql"
TOKEN = "fo1_graphqlusersecret"  # noqa: S105 - a fake token

ORG = {
    "id": "O1abc",
    "internalNumericId": "12345",
    "slug": "acme",
    "name": "Acme",
    "type": "SHARED",
    "billable": True,
    "limitedAccessTokens": {"nodes": []},
}
RELEASE = {
    "id": "R1",
    "version": 7,
    "description": "deploy",
    "reason": "deploy",
    "status": "complete",
    "imageRef": "registry.fly.io/my-app:deployment-07",
    "stable": True,
    "user": {"id": "U1", "email": "a@example.com", "name": "A"},
    "createdAt": "2024-01-02T03:04:05Z",
}


@pytest.fixture
def client(fake_time):
    """A GraphQL client on 127.0.0.1 that never really sleeps."""
    with FlyGraphQLClient(
        TOKEN, base_url=BASE, sleep=fake_time.sleep, clock=fake_time.clock
    ) as fly:
        yield fly


def sent(call) -> dict:
    """Return the JSON body of a recorded request."""
    return json.loads(call.request.body)


def apps_page(names: list[str], cursor: str | None) -> dict:
    """Return one page of the apps query."""
    return {
        "data": {
            "apps": {
                "pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor},
                "nodes": [
                    {
                        "id": f"id-{name}",
                        "name": name,
                        "deployed": True,
                        "hostname": f"{name}.fly.dev",
                        "platformVersion": "machines",
                        "organization": {"slug": "acme", "name": "Acme"},
                        "currentRelease": {"createdAt": "2024-01-01T00:00:00Z"},
                        "status": "deployed",
                    }
                    for name in names
                ],
            }
        }
    }


# --- the wire -----------------------------------------------------------------


def test_organization_query(rsps, client):
    """get_organization_by_slug POSTs §3.2's query with the slug variable."""
    rsps.post(GRAPHQL, json={"data": {"organization": ORG}})
    org = client.get_organization_by_slug("acme")
    assert org == fas.Organization(id="O1abc", slug="acme", name="Acme", type="SHARED")
    request = rsps.calls[0].request
    assert request.method == "POST"
    assert request.url == GRAPHQL
    body = sent(rsps.calls[0])
    assert set(body) == {"query", "variables"}
    assert body["variables"] == {"slug": "acme"}
    query = body["query"]
    assert "query($slug: String!) { organization(slug: $slug) {" in query
    assert "id internalNumericId slug name type billable" in query
    assert "limitedAccessTokens { nodes { id name expiresAt revokedAt" in query
    assert "\n" not in query


def test_headers(rsps, client):
    """Queries carry JSON content headers, the user agent and GraphQL auth."""
    rsps.post(GRAPHQL, json={"data": {"organization": ORG}})
    client.get_organization_by_slug("acme")
    headers = rsps.calls[0].request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"] == f"flyautoscaler/{version('flyautoscaler')}"
    assert rsps.calls[0].request.req_kwargs["timeout"] == (5.0, 30.0)


def test_mixed_token_header(rsps):
    """With a macaroon the scheme is FlyV1 and the user token is kept too."""
    rsps.post(GRAPHQL, json={"data": {"organization": ORG}})
    with FlyGraphQLClient("Bearer fm2_mac, fo1_user", base_url=BASE) as fly:
        fly.get_organization_by_slug("acme")
    header = rsps.calls[0].request.headers["Authorization"]
    assert header == "FlyV1 fm2_mac,fo1_user"


def test_default_base_url(rsps, monkeypatch):
    """The default endpoint is https://api.fly.io/graphql."""
    monkeypatch.delenv("FLY_API_BASE_URL", raising=False)
    rsps.post("https://api.fly.io/graphql", json={"data": {"organization": ORG}})
    with FlyGraphQLClient(TOKEN) as fly:
        assert fly.get_organization_by_slug("acme").id == "O1abc"
        assert fly.url == "https://api.fly.io/graphql"


def test_apps_paginated_over_three_pages(rsps, client):
    """Apps are read 200 a page, following endCursor until hasNextPage is false."""
    rsps.post(GRAPHQL, json=apps_page(["a", "b"], "c1"))
    rsps.post(GRAPHQL, json=apps_page(["c"], "c2"))
    rsps.post(GRAPHQL, json=apps_page(["d"], None))
    apps = client.get_apps_for_organization("O1abc")
    assert [app.name for app in apps] == ["a", "b", "c", "d"]
    assert apps[0].platform_version == "machines"
    assert apps[0].organization_slug == "acme"
    bodies = [sent(call) for call in rsps.calls]
    assert [b["variables"] for b in bodies] == [
        {"org": "O1abc", "after": ""},
        {"org": "O1abc", "after": "c1"},
        {"org": "O1abc", "after": "c2"},
    ]
    query = bodies[0]["query"]
    assert "query($org: ID, $role: String, $after: String) {" in query
    assert 'apps(type: "container", first: 200, after: $after,' in query
    assert "organizationId: $org, role: $role)" in query
    assert "pageInfo { hasNextPage endCursor }" in query
    assert "nodes { id name deployed hostname platformVersion" in query


def test_apps_pages_are_bounded(rsps, fake_time):
    """A server that always has a next page stops at max_pages with an error."""
    for n in range(5):
        rsps.post(GRAPHQL, json=apps_page([f"app{n}"], f"cursor{n}"))
    with (
        FlyGraphQLClient(TOKEN, base_url=BASE, max_pages=3) as fly,
        pytest.raises(FlyAPIError, match="more than 3 pages"),
    ):
        fly.get_apps_for_organization("O1abc")
    assert len(rsps.calls) == 3


@pytest.mark.parametrize("cursor", ["", None, "c1"])
def test_apps_stuck_cursor(rsps, client, cursor):
    """A next page with a missing or repeated cursor is an error, not a loop."""
    rsps.post(GRAPHQL, json=apps_page(["a"], "c1"))
    page = apps_page(["b"], "x")
    page["data"]["apps"]["pageInfo"]["endCursor"] = cursor
    rsps.post(GRAPHQL, json=page)
    with pytest.raises(FlyAPIError, match="cursor"):
        client.get_apps_for_organization("O1abc")
    assert len(rsps.calls) == 2


def test_apps_tolerates_null_nodes(rsps, client):
    """Null nodes and a null page are skipped."""
    page = apps_page(["a"], None)
    page["data"]["apps"]["nodes"].append(None)
    rsps.post(GRAPHQL, json=page)
    rsps.post(GRAPHQL, json={"data": {"apps": None}})
    assert [a.name for a in client.get_apps_for_organization("O1")] == ["a"]
    assert client.get_apps_for_organization("O2") == []


def test_release_query(rsps, client):
    """get_app_current_release_machines reads app.currentRelease (§3.4)."""
    rsps.post(GRAPHQL, json={"data": {"app": {"currentRelease": RELEASE}}})
    release = client.get_app_current_release_machines("my-app")
    assert release is not None
    assert release.status == "complete"
    assert release.version == 7
    body = sent(rsps.calls[0])
    assert body["variables"] == {"appName": "my-app"}
    assert "query ($appName: String!) { app(name: $appName) {" in body["query"]
    assert "currentRelease: currentReleaseUnprocessed {" in body["query"]
    assert "id version description reason status imageRef stable" in body["query"]
    assert "inProgress" not in body["query"]


def test_null_release_is_none(rsps, client):
    """An app with no current release gives None."""
    rsps.post(GRAPHQL, json={"data": {"app": {"currentRelease": None}}})
    assert client.get_app_current_release_machines("my-app") is None


# --- errors -------------------------------------------------------------------


def test_null_organization_names_the_slug(rsps, client):
    """A null organization is a NOT_FOUND FlyAPIError naming the slug."""
    rsps.post(GRAPHQL, json={"data": {"organization": None}})
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("no-such-org")
    assert "'no-such-org'" in str(caught.value)
    assert caught.value.code == "NOT_FOUND"
    assert not caught.value.transient


def test_null_app_is_not_found(rsps, client):
    """A null app (without errors) is a NOT_FOUND FlyAPIError naming the app."""
    rsps.post(GRAPHQL, json={"data": {"app": None}})
    with pytest.raises(FlyAPIError, match="'gone-app'") as caught:
        client.get_app_current_release_machines("gone-app")
    assert caught.value.code == "NOT_FOUND"


@pytest.mark.parametrize(
    ("code", "transient"),
    [("NOT_FOUND", False), ("UNAUTHORIZED", False), ("SERVICE_UNAVAILABLE", True)],
)
def test_graphql_errors(rsps, client, code, transient):
    """errors[] becomes a FlyAPIError with the first error's code and message."""
    rsps.post(
        GRAPHQL,
        json={
            "data": {"app": None},
            "errors": [
                {"message": "Could not find App", "extensions": {"code": code}},
                {"message": "second", "extensions": {"code": "OTHER"}},
            ],
        },
        headers={"fly-request-id": "req-9"},
    )
    with pytest.raises(FlyAPIError) as caught:
        client.get_app_current_release_machines("my-app")
    error = caught.value
    assert error.code == code
    assert error.message == "Could not find App"
    assert error.status == 200
    assert error.operation == "GetAppCurrentReleaseMachines"
    assert error.request_id == "req-9"
    assert error.transient is transient
    assert str(error).startswith(f"GetAppCurrentReleaseMachines: {code}: Could not")
    assert len(rsps.calls) == 1


def test_error_without_code(rsps, client):
    """An error with no extensions has an empty code."""
    rsps.post(GRAPHQL, json={"errors": [{"message": "bad query"}]})
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("acme")
    assert caught.value.code == ""
    assert caught.value.message == "bad query"


@pytest.mark.parametrize(("status", "transient"), [(400, False), (500, True)])
def test_non_200_status(rsps, client, fake_time, status, transient):
    """A non-200 status is a FlyAPIError; 400 and 500 are not retried."""
    rsps.post(GRAPHQL, status=status, json={"errors": [{"message": "nope"}]})
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("acme")
    assert caught.value.status == status
    assert caught.value.message == "nope"
    assert caught.value.transient is transient
    assert len(rsps.calls) == 1
    assert fake_time.sleeps == []


def test_non_200_success_status(rsps, client):
    """A 2xx other than 200 is an error too, as in fly-go's GraphQL client."""
    rsps.post(GRAPHQL, status=202, json={"data": {"organization": ORG}})
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("acme")
    assert caught.value.status == 202


@pytest.mark.parametrize("body", ["<html>oops</html>", "[1]", '{"data": 5}'])
def test_malformed_answer(rsps, client, body):
    """A 200 that is not a GraphQL answer is a transient FlyAPIError."""
    rsps.post(GRAPHQL, body=body)
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("acme")
    assert caught.value.transient


# --- retries ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retried_statuses(rsps, client, fake_time, status):
    """Queries are reads: 429, 502, 503 and 504 are retried."""
    rsps.post(GRAPHQL, status=status)
    rsps.post(GRAPHQL, json={"data": {"organization": ORG}})
    assert client.get_organization_by_slug("acme").id == "O1abc"
    assert len(rsps.calls) == 2
    assert len(fake_time.sleeps) == 1


def test_connection_errors_retried_then_raised(rsps, client, fake_time):
    """Connection failures are retried within the policy, then raised."""
    rsps.post(GRAPHQL, body=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("acme")
    assert caught.value.status is None
    assert caught.value.transient
    assert len(rsps.calls) == 4
    assert len(fake_time.sleeps) == 3


def test_retry_is_logged(rsps, client, caplog):
    """A GraphQL retry logs graphql.retry with the operation."""
    rsps.post(GRAPHQL, status=503)
    rsps.post(GRAPHQL, json={"data": {"organization": ORG}})
    client.get_organization_by_slug("acme")
    [record] = [r for r in caplog.records if r.msg == "graphql.retry"]
    assert vars(record)["operation"] == "GetOrganizationBySlug"
    assert vars(record)["status"] == 503
    assert TOKEN not in caplog.text


def test_retry_budget_is_configurable(rsps, fake_time):
    """max_attempts bounds the attempts of a query."""
    rsps.post(GRAPHQL, status=503)
    with (
        FlyGraphQLClient(
            TOKEN,
            base_url=BASE,
            retry=RetryPolicy(max_attempts=2),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        ) as fly,
        pytest.raises(FlyAPIError),
    ):
        fly.get_organization_by_slug("acme")
    assert len(rsps.calls) == 2


# --- secrets ------------------------------------------------------------------


def test_token_never_shown(rsps, client):
    """The token is not in the client's repr, nor in an error that echoes it."""
    rsps.post(GRAPHQL, status=401, json={"errors": [{"message": f"bad {TOKEN}"}]})
    with pytest.raises(FlyAPIError) as caught:
        client.get_organization_by_slug("acme")
    assert TOKEN not in repr(client)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)
    assert "bad [REDACTED]" in str(caught.value)


def test_satisfies_fly_client():
    """FlyGraphQLClient is a FlyClient."""
    with FlyGraphQLClient(TOKEN, base_url=BASE) as fly:
        client: fas.FlyClient = fly
        assert client is fly
