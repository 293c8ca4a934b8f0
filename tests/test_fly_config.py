"""Auth headers, environment overrides, Retry-After and the retry policy."""

from __future__ import annotations

import random

import pytest

import flyautoscaler as fas
from flyautoscaler._errors import FlyAPIError
from flyautoscaler._http import parse_token
from flyautoscaler.fly import (
    DEFAULT_TIMEOUT,
    FlyGraphQLClient,
    RetryPolicy,
    api_base_url,
    flaps_authorization,
    flaps_base_url,
    graphql_authorization,
    new_flaps_client_func,
    parse_retry_after,
)

# --- auth ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "flaps", "graphql"),
    [
        ("fo1_user", "Bearer fo1_user", "Bearer fo1_user"),
        ("Bearer fo1_user", "Bearer fo1_user", "Bearer fo1_user"),
        ("FlyV1 fm2_a,fm2_b", "FlyV1 fm2_a,fm2_b", "FlyV1 fm2_a,fm2_b"),
        ("Bearer FlyV1 fm2_x", "FlyV1 fm2_x", "FlyV1 fm2_x"),
        ("bearer  flyv1   fm2_x", "FlyV1 fm2_x", "FlyV1 fm2_x"),
        ("FLYV1 Bearer fm1r_x", "FlyV1 fm1r_x", "FlyV1 fm1r_x"),
        ("fo1_u, fm2_m", "FlyV1 fm2_m", "FlyV1 fm2_m,fo1_u"),
        (" fm1a_a ,fo1_u,fm2_b, ", "FlyV1 fm1a_a,fm2_b", "FlyV1 fm1a_a,fm2_b,fo1_u"),
        ("u1,u2", "Bearer u1,u2", "Bearer u1,u2"),
        ("fm3_notamacaroon", "Bearer fm3_notamacaroon", "Bearer fm3_notamacaroon"),
        ("fm2", "FlyV1 fm2", "FlyV1 fm2"),  # no "_": the prefix is all of it
    ],
)
def test_authorization_forms(token, flaps, graphql):
    """Headers follow fly-go's FlapsHeader and GraphQLHeader (fly-api.md §1.2)."""
    assert flaps_authorization(token) == flaps
    assert graphql_authorization(token) == graphql


def test_parse_token_sorts_pieces():
    """Pieces are macaroons when their prefix before _ is fm1r, fm1a or fm2."""
    assert parse_token("FlyV1 fm2_a, x_fm2, fm1r_b,fm1a_c , plain") == (
        ["fm2_a", "fm1r_b", "fm1a_c"],
        ["x_fm2", "plain"],
    )


@pytest.mark.parametrize("token", ["", "  ", "Bearer", "FlyV1 ", "Bearer FlyV1 , "])
def test_empty_token(token):
    """A token with no credential in it is a ConfigError."""
    with pytest.raises(fas.ConfigError):
        flaps_authorization(token)
    with pytest.raises(fas.ConfigError):
        graphql_authorization(token)
    with pytest.raises(fas.ConfigError):
        FlyGraphQLClient(token)
    with pytest.raises(fas.ConfigError):
        new_flaps_client_func(token)


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("fm2_abc\ndef", "character 8 is a control character (U+000A)"),
        ("FlyV1 fm2_a,fm2_b\x7f", "character 18 is a control character (U+007F)"),
        ("Bearer fo1_t\u00f6k\u20acn", "character 15 is not a Latin-1 character"),
    ],
)
def test_token_a_header_cannot_carry(token, problem):
    """A token with a character no header can carry is refused, by position only."""
    for build in (flaps_authorization, graphql_authorization, FlyGraphQLClient):
        with pytest.raises(fas.ConfigError) as info:
            build(token)
        assert str(info.value) == (
            f"the Fly API token cannot be sent in an HTTP header: {problem}; "
            "only printable Latin-1 characters, spaces and tabs are allowed"
        )
        assert info.value.field == "token"
        assert token not in str(info.value)


@pytest.mark.parametrize(
    "token", ["fm2_a\n", "\tFlyV1 fm2_a ,\r\nfm2_b\n", "Bearer\nfo1_x"]
)
def test_whitespace_around_pieces_is_dropped(token):
    """Whitespace the header never carries (around pieces, after the scheme) is fine."""
    assert flaps_authorization(token).startswith(("FlyV1 fm2_a", "Bearer fo1_x"))


# --- environment --------------------------------------------------------------


def test_base_url_defaults():
    """Without overrides the public endpoints are used."""
    assert flaps_base_url({}) == "https://api.machines.dev"
    assert api_base_url({}) == "https://api.fly.io"


def test_base_url_overrides():
    """FLY_FLAPS_BASE_URL and FLY_API_BASE_URL override the endpoints."""
    env = {
        "FLY_FLAPS_BASE_URL": "http://_api.internal:4280",
        "FLY_API_BASE_URL": " http://127.0.0.1:9000 ",
    }
    assert flaps_base_url(env) == "http://_api.internal:4280"
    assert api_base_url(env) == "http://127.0.0.1:9000"


def test_empty_override_is_ignored():
    """An empty variable means the default."""
    env = {"FLY_FLAPS_BASE_URL": "", "FLY_API_BASE_URL": "  "}
    assert flaps_base_url(env) == "https://api.machines.dev"
    assert api_base_url(env) == "https://api.fly.io"


def test_process_environment(monkeypatch):
    """Without an argument the helpers read os.environ."""
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("FLY_API_BASE_URL", "http://127.0.0.1:2")
    assert flaps_base_url() == "http://127.0.0.1:1"
    assert api_base_url() == "http://127.0.0.1:2"


def test_factory_reads_environment(monkeypatch):
    """new_flaps_client_func without base_url honours FLY_FLAPS_BASE_URL."""
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "http://127.0.0.1:4280/")
    with new_flaps_client_func("fo1_user") as factory:
        assert factory("my-app").base_url == "http://127.0.0.1:4280"
    with new_flaps_client_func("fo1_user", base_url="http://127.0.0.1:5") as factory:
        assert factory("my-app").base_url == "http://127.0.0.1:5"


def test_factory_default_base_url(monkeypatch):
    """Without the variable the factory uses the public Machines API."""
    monkeypatch.delenv("FLY_FLAPS_BASE_URL", raising=False)
    with new_flaps_client_func("fo1_user") as factory:
        client = factory("my-app")
    assert client.base_url == "https://api.machines.dev"
    assert client.timeout == DEFAULT_TIMEOUT


# --- Retry-After and the policy -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    """Retry-After is delay-seconds or an HTTP-date; garbage gives None."""
    assert parse_retry_after(value, now=40.0) == expected


def test_backoff_is_full_jitter_under_a_cap():
    """Backoff delays are drawn from [0, min(max_delay, base * 2**(n-1))]."""
    policy = RetryPolicy(base_delay=0.1, max_delay=2.0)
    rng = random.Random(7)  # noqa: S311 - jitter, not secrets
    for retry, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (6, 2.0), (30, 2.0)]:
        delays = [policy.delay(retry, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2


def test_retry_after_wins_and_is_capped():
    """A server's Retry-After replaces the backoff, up to max_retry_after."""
    policy = RetryPolicy(max_retry_after=10.0)
    rng = random.Random(0)  # noqa: S311 - jitter, not secrets
    assert policy.delay(1, 1.0, rng) == 1.0
    assert policy.delay(3, 0.0, rng) == 0.0
    assert policy.delay(1, 3600.0, rng) == 10.0


@pytest.mark.parametrize(
    "fields",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"max_delay": float("nan")},
        {"max_elapsed": float("inf")},
    ],
)
def test_policy_validation(fields):
    """A policy that could retry forever or wait negatively is refused."""
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**fields)


def test_fly_api_error_fields():
    """FlyAPIError carries code, status and transient, and redacts its text."""
    error = FlyAPIError("bad FlyV1 fm2_secret", code="UNAUTHORIZED", status=200)
    assert error.code == "UNAUTHORIZED"
    assert not error.transient
    assert "fm2_secret" not in str(error)
    assert "fm2_secret" not in repr(error)
    assert FlyAPIError("down", code="MAINTENANCE", status=200).transient
    assert FlyAPIError("gateway", status=502).transient
    assert FlyAPIError("no answer").transient
    assert not FlyAPIError("x", status=503, transient=False).transient
    assert isinstance(error, fas.FlyAutoscalerError)
