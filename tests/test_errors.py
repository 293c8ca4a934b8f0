"""Tests for the error tree (``flyautoscaler._errors``)."""

from __future__ import annotations

import pytest

import flyautoscaler as fas
from flyautoscaler._errors import MAX_SERVER_MESSAGE, REDACTED, Scrubber, redact

_FLAPS_FAMILY = [
    fas.FlapsNotFoundError,
    fas.FlapsConflictError,
    fas.FlapsRateLimitedError,
    fas.FlapsServerError,
    fas.FlapsTransportError,
]

_ALL_ERRORS = [
    fas.ConfigError,
    fas.ExpressionError,
    fas.ExprRequiredError,
    fas.ExprNaNError,
    fas.ExprInfError,
    fas.MetricCollectionError,
    fas.ReconcileError,
    fas.NoMachineToCloneError,
    fas.FlapsError,
    *_FLAPS_FAMILY,
]


# --- the tree -----------------------------------------------------------------


@pytest.mark.parametrize("cls", _ALL_ERRORS)
def test_every_error_has_the_root(cls):
    """Every error derives from FlyAutoscalerError."""
    assert issubclass(cls, fas.FlyAutoscalerError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", [fas.ConfigError, fas.ExpressionError])
def test_value_errors(cls):
    """ConfigError and ExpressionError are also ValueErrors."""
    assert issubclass(cls, ValueError)


@pytest.mark.parametrize(
    "cls", [fas.ExprRequiredError, fas.ExprNaNError, fas.ExprInfError]
)
def test_expression_family(cls):
    """The required/NaN/Inf errors subclass ExpressionError."""
    assert issubclass(cls, fas.ExpressionError)
    assert issubclass(cls, ValueError)


@pytest.mark.parametrize("cls", _FLAPS_FAMILY)
def test_flaps_family(cls):
    """Each Machines API error subclasses FlapsError."""
    assert issubclass(cls, fas.FlapsError)


def test_no_machine_to_clone_is_reconcile_error():
    """NoMachineToCloneError is a ReconcileError."""
    assert issubclass(fas.NoMachineToCloneError, fas.ReconcileError)


@pytest.mark.parametrize(
    "cls",
    [fas.MetricCollectionError, fas.ReconcileError, fas.FlapsError, *_FLAPS_FAMILY],
)
def test_runtime_errors_are_not_value_errors(cls):
    """Runtime failures are not ValueErrors."""
    assert not issubclass(cls, ValueError)


# --- transient ----------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        fas.FlapsRateLimitedError("slow down"),
        fas.FlapsServerError("boom", status=502),
        fas.FlapsTransportError("connection refused"),
        fas.MetricCollectionError("queue_depth", "timeout"),
    ],
)
def test_transient_errors(error):
    """Rate limits, server errors, transport errors and collection errors retry."""
    assert error.transient is True


@pytest.mark.parametrize(
    "error",
    [
        fas.FlapsNotFoundError("no such machine", status=404),
        fas.FlapsConflictError("lease held", status=409),
        fas.FlapsError("bad request", status=400),
        fas.ConfigError("bad value"),
        fas.ExpressionError("bad expression"),
        fas.ExprNaNError(),
        fas.ExprInfError(),
        fas.ExprRequiredError(),
        fas.ReconcileError("stuck"),
        fas.NoMachineToCloneError(),
    ],
)
def test_permanent_errors(error):
    """Not found, conflicts, config and expression errors do not retry."""
    assert error.transient is False


def test_metric_collection_error_can_be_permanent():
    """A collector may mark its error permanent."""
    error = fas.MetricCollectionError("q", "bad query", transient=False)
    assert error.transient is False
    assert fas.MetricCollectionError.transient is False


def test_transient_is_per_instance_for_collection_errors():
    """Marking one collection error permanent leaves the others transient."""
    fas.MetricCollectionError("a", "x", transient=False)
    assert fas.MetricCollectionError("b", "y").transient is True


# --- FlapsError ---------------------------------------------------------------


def test_rate_limited_retry_after():
    """FlapsRateLimitedError carries retry_after and defaults to status 429."""
    error = fas.FlapsRateLimitedError("rate limited", retry_after=2.5)
    assert error.retry_after == 2.5
    assert error.status == 429
    assert fas.FlapsRateLimitedError("rate limited").retry_after is None


def test_flaps_error_str_and_repr():
    """str and repr name status, method, URL, request id and the message."""
    error = fas.FlapsConflictError(
        "machine is leased",
        status=409,
        method="POST",
        url="https://api.machines.dev/v1/apps/my-app/machines/m1/start",
        request_id="01HREQ",
    )
    for text in (str(error), repr(error)):
        assert "409" in text
        assert "POST" in text
        assert "https://api.machines.dev/v1/apps/my-app/machines/m1/start" in text
        assert "01HREQ" in text
        assert "machine is leased" in text
    assert repr(error).startswith("FlapsConflictError(")
    assert error.message == "machine is leased"
    assert error.method == "POST"


def test_flaps_error_without_response():
    """A FlapsError with no status says there was no response."""
    error = fas.FlapsTransportError(
        "connection refused", method="GET", url="http://127.0.0.1:1/v1/apps/a"
    )
    assert error.status is None
    assert "no response" in str(error)
    assert "connection refused" in str(error)


def test_flaps_error_message_only():
    """A FlapsError built from a message alone still reads well."""
    assert str(fas.FlapsError("oops", status=400)) == "400: oops"


def test_flaps_error_long_message_truncated():
    """A server message over the limit is cut and says how much was dropped."""
    body = "x" * (MAX_SERVER_MESSAGE + 250)
    error = fas.FlapsServerError(body, status=500)
    assert "x" * (MAX_SERVER_MESSAGE + 1) not in str(error)
    assert "250 more characters" in str(error)
    assert "more characters" in repr(error)
    assert len(str(error)) < MAX_SERVER_MESSAGE + 100


def test_flaps_error_short_message_kept():
    """A message at the limit is kept whole."""
    body = "y" * MAX_SERVER_MESSAGE
    error = fas.FlapsServerError(body, status=500)
    assert body in str(error)
    assert "more characters" not in str(error)


# --- secrets never shown ------------------------------------------------------

_SECRETS = [
    ("Bearer abc123secret", ["abc123secret"]),
    (
        "FlyV1 fm2_lJPECAAAAAAAAAAA,fm2_lJPEsecondtoken",
        ["lJPECAAAAAAAAAAA", "lJPEsecondtoken"],
    ),
    ("fm1r_xyzsecret", ["xyzsecret"]),
    ("fm1a_xyzsecret", ["xyzsecret"]),
    ("bearer abc123secret", ["abc123secret"]),
]


def _errors_from(text: str) -> list[fas.FlyAutoscalerError]:
    url = f"https://api.machines.dev/v1/apps/a/machines?x={text}"
    return [
        fas.FlapsError(f"auth failed: {text}", status=401, method="GET", url=url),
        fas.FlapsNotFoundError(text, status=404, url=url),
        fas.FlapsConflictError(f"lease {text}", status=409),
        fas.FlapsRateLimitedError(text, retry_after=1.0, url=url),
        fas.FlapsServerError(f'{{"error": "{text}"}}', status=500, url=url),
        fas.FlapsTransportError(f"reset by peer ({text})", url=url),
        fas.FlapsError("x" * 600 + text, status=500),
        fas.FlapsError(text + " " + "x" * 600, status=500),
        fas.MetricCollectionError("queue_depth", f"401 from prometheus: {text}"),
        fas.ConfigError(f"invalid token {text}", field="api_token"),
        fas.ExpressionError(f"cannot parse {text}", expression=text),
        fas.ExprNaNError(f"NaN {text}"),
        fas.ReconcileError(f"failed with {text}"),
        fas.NoMachineToCloneError(f"none, {text}"),
        fas.FlyAutoscalerError(f"root {text}"),
    ]


@pytest.mark.parametrize(("text", "secrets"), _SECRETS)
def test_no_token_in_str_or_repr(text, secrets):
    """No credential appears in str() or repr() of any error."""
    for error in _errors_from(text):
        for shown in (str(error), repr(error)):
            for secret in secrets:
                assert secret not in shown, (type(error).__name__, shown)


def test_redacted_flaps_error_keeps_context():
    """Redaction removes the token but keeps the rest of the message."""
    error = fas.FlapsError(
        "invalid Authorization: Bearer abc123secret", status=401, method="GET"
    )
    assert "invalid Authorization: Bearer [REDACTED]" in str(error)
    assert "401" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123secret", "Authorization: Bearer [REDACTED]"),
        (
            "Authorization: FlyV1 fm2_lJPECAAAAAAAAAAA,fm2_lJPEsecondtoken",
            "Authorization: FlyV1 [REDACTED]",
        ),
        ("token fm1r_xyzsecret here", "token [REDACTED] here"),
        ("?access_token=fm1r_xyzsecret&a=1", "?access_token=[REDACTED]&a=1"),
        ('{"token": "fm2_abc"}', '{"token": "[REDACTED]"}'),
        ("?auth=Bearer%20abc123secret&a=1", "?auth=Bearer%20[REDACTED]&a=1"),
        ("nothing secret here", "nothing secret here"),
        ("", ""),
    ],
)
def test_redact(text, expected):
    """redact() replaces credentials and leaves other text alone."""
    assert redact(text) == expected


# --- other errors -------------------------------------------------------------


def test_metric_collection_error_names_collector():
    """MetricCollectionError keeps and shows the collector name."""
    error = fas.MetricCollectionError("queue_depth", "boom")
    assert error.collector == "queue_depth"
    assert "queue_depth" in str(error)
    assert "boom" in str(error)


def test_no_machine_to_clone_message():
    """NoMachineToCloneError says there is no machine to clone."""
    with pytest.raises(fas.ReconcileError, match="no machine available to clone"):
        raise fas.NoMachineToCloneError


def test_config_error_field():
    """ConfigError keeps the offending field."""
    error = fas.ConfigError("must be positive", field="reconcile_interval")
    assert error.field == "reconcile_interval"
    assert str(error) == "must be positive"


def test_expression_error_attributes():
    """ExpressionError keeps the expression and position."""
    error = fas.ExpressionError("bad", expression="1 +", position=3)
    assert error.expression == "1 +"
    assert error.position == 3
    assert fas.ExpressionError("bad").position is None


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (fas.ExprRequiredError, "expression required"),
        (fas.ExprNaNError, "NaN"),
        (fas.ExprInfError, "Inf"),
    ],
)
def test_expression_error_default_messages(cls, text):
    """The NaN, Inf and required errors have default messages."""
    assert text in str(cls())


def test_errors_catchable_by_root():
    """Catching FlyAutoscalerError catches a Machines API error."""
    with pytest.raises(fas.FlyAutoscalerError):
        raise fas.FlapsNotFoundError("gone", status=404)


def test_scrubber_removes_longest_secrets_first():
    """A secret containing another is removed whole, then patterns are redacted."""
    scrub = Scrubber(["abcd", "abcd-efgh", ""])
    text = scrub("x abcd-efgh y abcd z Bearer tok")
    assert text == f"x {REDACTED} y {REDACTED} z Bearer {REDACTED}"


def test_scrubber_minimum_length_and_patterns():
    """Short secrets stay (they match by chance); patterns=False skips redact()."""
    assert Scrubber(["abc"], min_length=4)("abc") == "abc"
    assert Scrubber(["abc"])("abc") == REDACTED
    plain = Scrubber(["s3cret"], patterns=False)
    assert plain("s3cret Bearer tok") == f"{REDACTED} Bearer tok"
    assert plain.scrub_bytes(b"a s3cret b") == f"a {REDACTED} b".encode()


def test_scrubber_repr_hides_the_secrets():
    """A Scrubber's repr counts its secrets and never shows them."""
    shown = repr(Scrubber(["s3cret-value"]))
    assert "s3cret" not in shown
    assert shown == "Scrubber(<1 secret>)"
