"""Every exception flyautoscaler raises.

The tree::

    FlyAutoscalerError                    root; ``transient``: may a retry help?
    ├── ConfigError (also ValueError)     bad configuration: which field and value
    ├── ExpressionError (also ValueError) a count expression does not compile or run
    │   ├── ExprRequiredError             an expression was required but is empty
    │   ├── ExprNaNError                  the result is NaN
    │   └── ExprInfError                  the result is +Inf or -Inf
    ├── MetricCollectionError             a collector failed; names the collector
    ├── ReconcileError                    a pass could not act at all
    │   └── NoMachineToCloneError         scale-up with no Machine to clone
    ├── CoordinationError                 the coordination store (Redis) failed
    ├── FlapsError                        the Machines API answered with an error
    │   ├── FlapsNotFoundError            404
    │   ├── FlapsConflictError            409 and 412 (leases, state, versions)
    │   ├── FlapsRateLimitedError         429, with ``retry_after`` seconds
    │   ├── FlapsServerError              5xx
    │   ├── FlapsTransportError           no answer: connection refused, reset, timeout
    │   └── FlapsNotSentError             not sent: its pass was cancelled or too late
    └── FlyAPIError                       the GraphQL API failed; carries ``code``

No exception message, ``repr`` or log line made from these carries a token:
server messages pass through :func:`redact` and are truncated.

This module also owns redaction for the whole package: :func:`redact` finds
credentials by their shape, :class:`Scrubber` removes the secrets a caller
knows (then redacts), and :data:`REDACTED` is what both leave in their place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "REDACTED",
    "ConfigError",
    "CoordinationError",
    "ExprInfError",
    "ExprNaNError",
    "ExprRequiredError",
    "ExpressionError",
    "FlapsConflictError",
    "FlapsError",
    "FlapsNotFoundError",
    "FlapsNotSentError",
    "FlapsRateLimitedError",
    "FlapsServerError",
    "FlapsTransportError",
    "FlyAPIError",
    "FlyAutoscalerError",
    "MetricCollectionError",
    "NoMachineToCloneError",
    "ReconcileError",
    "Scrubber",
    "describe",
    "error_kind",
    "redact",
]

#: Longest server message kept in a :class:`FlapsError`, in characters.
MAX_SERVER_MESSAGE = 500

# Authorization schemes followed by a credential, and bare Fly macaroons.
_SCHEME_TOKEN = re.compile(
    r"(?i)\b(bearer|flyv1)(\s+|(?:%20)+|\++)[^\s,;&\"']+(?:,[^\s,;&\"']+)*"
)
_MACAROON = re.compile(r"\b(fm1[ra]|fm2)_[A-Za-z0-9+/=_\-]+")
#: What every removed credential is replaced with.
REDACTED: Final = "[REDACTED]"


def redact(text: str) -> str:
    """Return *text* with credentials replaced by ``[REDACTED]``.

    Removes what follows a ``Bearer`` or ``FlyV1`` scheme and any Fly macaroon
    (``fm1r_``, ``fm1a_``, ``fm2_`` prefixes), wherever they appear.

    Args:
        text: Any text that may have come from a server or a user.

    Returns:
        The text with every credential replaced.
    """
    text = _SCHEME_TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _MACAROON.sub(REDACTED, text)


class Scrubber:
    """Removes known secrets from text, then what :func:`redact` finds.

    Every place that keeps a credential out of a message, a log line or a
    record uses one: the Fly API clients, the collectors, the command's log
    formatter and the fake Machines API.

    Args:
        secrets: The exact strings to remove (tokens, passwords, keys). They
            are removed longest first, so a secret that contains another goes
            whole; those shorter than *min_length* are kept, since they would
            match ordinary text by chance.
        min_length: The shortest secret removed (at least 1).
        patterns: Also apply :func:`redact` (``Bearer``/``FlyV1`` credentials,
            Fly macaroons) to text.
    """

    __slots__ = ("_patterns", "_secrets")

    def __init__(
        self, secrets: Iterable[str], *, min_length: int = 1, patterns: bool = True
    ) -> None:
        shortest = max(min_length, 1)
        kept = {secret for secret in secrets if len(secret) >= shortest}
        self._secrets = tuple(sorted(kept, key=len, reverse=True))
        self._patterns = patterns

    def __call__(self, text: str) -> str:
        """Return *text* with every secret, and every credential found, replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return redact(text) if self._patterns else text

    def scrub_bytes(self, data: bytes) -> bytes:
        """Return *data* with every secret (UTF-8 encoded) replaced; no patterns."""
        for secret in self._secrets:
            data = data.replace(secret.encode(), REDACTED.encode())
        return data

    def __repr__(self) -> str:
        count = len(self._secrets)
        return f"Scrubber(<{count} secret{'' if count == 1 else 's'}>)"


def error_kind(exc: BaseException) -> str:
    """Return the kind a pool counts *exc* as (``AppStatus.errors``).

    Each error class of this module says its ``kind``; an :class:`OSError` is
    an ``api`` failure (the network); anything else is ``internal``.
    """
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    return "api" if isinstance(exc, OSError) else "internal"


def describe(exc: BaseException) -> str:
    """Return ``Type: message`` for a log line, with the exception's notes.

    The notes (:meth:`BaseException.add_note`) say where the error happened
    ("while computing the max started machine count") or why it was not
    retried; :func:`str` leaves them out. Credentials are redacted.
    """
    text = f"{type(exc).__name__}: {exc}"
    notes = [str(note) for note in getattr(exc, "__notes__", ())]
    if notes:
        text += " (" + "; ".join(notes) + ")"
    return redact(text)


def _truncate(text: str, limit: int = MAX_SERVER_MESSAGE) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} more characters)"


class FlyAutoscalerError(Exception):
    """Root of every error raised by flyautoscaler."""

    #: Whether retrying the same call later may succeed.
    transient: bool = False
    #: What a pool counts the error as, by kind (``AppStatus.errors``).
    kind: str = "api"

    def __init__(self, *args: object) -> None:
        # Every message passes through redact(), whatever subclass builds it.
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ConfigError(FlyAutoscalerError, ValueError):
    """The configuration is invalid.

    Args:
        message: What is wrong: which field, which value, what is allowed.
        field: The offending field, when there is one.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ExpressionError(FlyAutoscalerError, ValueError):
    """A count expression cannot be compiled or evaluated.

    Args:
        message: What is wrong, naming the offending name or position.
        expression: The expression's source text.
        position: Zero-based character offset of the problem, when known.

    Attributes:
        count: Which Machine count the expression computes, in words (``"max
            started machine count"``), once a reconciler has said so; ``""``
            before.
    """

    kind = "expression"

    count: str = ""

    def __init__(
        self, message: str, *, expression: str = "", position: int | None = None
    ) -> None:
        super().__init__(message)
        self.expression = expression
        self.position = position


class ExprRequiredError(ExpressionError):
    """An expression is required here but is empty."""

    def __init__(
        self,
        message: str = "expression required",
        *,
        expression: str = "",
        position: int | None = None,
    ) -> None:
        super().__init__(message, expression=expression, position=position)


class ExprNaNError(ExpressionError):
    """The expression evaluated to NaN."""

    def __init__(
        self,
        message: str = "expression returned NaN",
        *,
        expression: str = "",
        position: int | None = None,
    ) -> None:
        super().__init__(message, expression=expression, position=position)


class ExprInfError(ExpressionError):
    """The expression evaluated to +Inf or -Inf."""

    def __init__(
        self,
        message: str = "expression returned Inf",
        *,
        expression: str = "",
        position: int | None = None,
    ) -> None:
        super().__init__(message, expression=expression, position=position)


class MetricCollectionError(FlyAutoscalerError):
    """A metric collector failed.

    Args:
        collector: The collector's ``name`` (the metric it provides).
        message: What went wrong.
        transient: Whether a later collection may succeed (default true).
    """

    kind = "collect"

    def __init__(self, collector: str, message: str, *, transient: bool = True) -> None:
        super().__init__(f"collect metric ({collector!r}): {redact(message)}")
        self.collector = collector
        self.transient = transient


class ReconcileError(FlyAutoscalerError):
    """A reconcile pass could not act at all."""

    kind = "reconcile"


class NoMachineToCloneError(ReconcileError):
    """Scale-up needs a Machine of the watched group to clone, and there is none."""

    def __init__(
        self, message: str = "no machine available to clone for scale up"
    ) -> None:
        super().__init__(message)


class CoordinationError(FlyAutoscalerError):
    """The store that coordinates replicas (Redis) failed, or could not be reached.

    Args:
        store: Which store, as its URL shows without credentials
            (``redis://10.0.0.5:6379/0``).
        message: What failed (``acquire the lease of app 'my-app'``) and why.
        transient: Whether a later call may succeed: true unless the store
            refused the credentials or the command.
    """

    transient = True

    def __init__(self, store: str, message: str, *, transient: bool = True) -> None:
        super().__init__(f"coordination store {store}: {message}")
        self.store = store
        self.transient = transient


class FlapsError(FlyAutoscalerError):
    """The Machines API ("flaps") answered with an error, or did not answer.

    Args:
        message: The server's ``message`` or ``error`` field, or a description
            of the failure; redacted and truncated here.
        status: HTTP status code, or ``None`` when there was no answer.
        method: HTTP method of the request.
        url: URL of the request (never carries credentials).
        request_id: The ``fly-request-id`` response header, when present.
        error_status: The error body's ``status`` field, when it has one:
            ``insufficient_capacity`` means the region is out of capacity
            (try another), ``name_taken``, ``unknown``.
        sent: ``False`` when the request certainly never reached Fly (the
            connection was never established, or it was not sent at all).
    """

    def __init__(  # noqa: PLR0913 - the fields of one HTTP error
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        url: str = "",
        request_id: str = "",
        error_status: str = "",
        sent: bool = True,
    ) -> None:
        self.message = _truncate(redact(message))
        self.status = status
        self.method = method
        self.url = redact(url)
        self.request_id = request_id
        self.error_status = error_status
        self.sent = sent
        super().__init__(self._describe())

    @property
    def refused(self) -> bool:
        """Whether Fly certainly did not act on the request.

        True for a 4xx answer and for a request that never reached Fly; false
        for a 5xx or a lost answer, after which the action may have happened.
        """
        return not self.sent or (self.status is not None and 400 <= self.status < 500)

    def _describe(self) -> str:
        where = " ".join(part for part in (self.method, self.url) if part)
        status = f"{self.status}" if self.status is not None else "no response"
        text = f"{where}: {status}" if where else status
        if self.message:
            text += f": {self.message}"
        if self.error_status:
            text += f" [{self.error_status}]"
        if self.request_id:
            text += f" (fly-request-id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"method={self.method!r}, url={self.url!r}, "
            f"request_id={self.request_id!r}, error_status={self.error_status!r})"
        )


class FlapsNotFoundError(FlapsError):
    """404: the app or Machine does not exist."""


class FlapsConflictError(FlapsError):
    """409 or 412: a lease is held, or the Machine is in the wrong state or version."""


class FlapsRateLimitedError(FlapsError):
    """429: too many requests.

    Args:
        message: See :class:`FlapsError`.
        retry_after: Seconds the server asked to wait (``Retry-After``), if it said.
        status: See :class:`FlapsError` (default 429).
        method: See :class:`FlapsError`.
        url: See :class:`FlapsError`.
        request_id: See :class:`FlapsError`.
        error_status: See :class:`FlapsError`.
    """

    transient = True

    def __init__(  # noqa: PLR0913 - FlapsError's fields plus retry_after
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        method: str = "",
        url: str = "",
        request_id: str = "",
        error_status: str = "",
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message,
            status=status,
            method=method,
            url=url,
            request_id=request_id,
            error_status=error_status,
            sent=status is not None,
        )

    def _describe(self) -> str:
        text = super()._describe()
        if self.retry_after is not None and self.status is not None:
            text += f" (Fly asked to wait {self.retry_after:g} s)"
        return text


class FlapsServerError(FlapsError):
    """5xx: the server failed."""

    transient = True


class FlapsTransportError(FlapsError):
    """No usable answer: connection refused or reset, DNS failure, timeout.

    ``sent`` tells the cases apart: ``False`` when the connection was never
    established (refused, DNS failure, connect timeout), so Fly never saw the
    request; ``True`` when it may have (a read timeout or a reset after sending).
    """

    transient = True


class FlapsNotSentError(FlapsError):
    """The request was not sent: its pass was cancelled, or it would end too late.

    Raised before anything goes on the wire, so Fly did nothing (``sent`` is
    ``False``): the pool was closed (``reason`` ``"cancelled"``), or the pass's
    deadline would pass before the request could go (``"deadline"``).

    Args:
        message: What was not sent, and why.
        reason: ``"cancelled"`` or ``"deadline"``.
        method: See :class:`FlapsError`.
        url: See :class:`FlapsError`.
    """

    transient = True

    def __init__(
        self, message: str, *, reason: str, method: str = "", url: str = ""
    ) -> None:
        self.reason = reason
        super().__init__(message, method=method, url=url, sent=False)


class FlyAPIError(FlyAutoscalerError):
    """Fly's GraphQL API answered with an error, or did not answer.

    Args:
        message: The first GraphQL error's ``message``, or a description of the
            failure; redacted and truncated here.
        code: The first GraphQL error's ``extensions.code`` (``NOT_FOUND``,
            ``UNAUTHORIZED``, ...), or ``""``.
        status: HTTP status code, or ``None`` when there was no answer.
        operation: The query that failed (``GetOrganizationBySlug``, ...).
        url: URL of the request (never carries credentials).
        request_id: The ``fly-request-id`` response header, when present.
        transient: Whether a retry may help; by default true for the codes in
            :attr:`TRANSIENT_CODES`, for HTTP 429 and 5xx, and when there was
            no answer at all.
    """

    #: GraphQL error codes that say "try again later".
    TRANSIENT_CODES = frozenset(
        {"SERVER_ERROR", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "MAINTENANCE"}
    )

    def __init__(  # noqa: PLR0913 - the fields of the failure
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        operation: str = "",
        url: str = "",
        request_id: str = "",
        transient: bool | None = None,
    ) -> None:
        self.message = _truncate(redact(message))
        self.code = code
        self.status = status
        self.operation = operation
        self.url = redact(url)
        self.request_id = request_id
        if transient is None:
            transient = (
                code in self.TRANSIENT_CODES
                or status is None
                or status == 429
                or status >= 500
            )
        self.transient = transient
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [part for part in (self.operation, self.code) if part]
        if self.status is None:
            parts.append("no response")
        elif self.status != 200:
            parts.append(str(self.status))
        if self.message:
            parts.append(self.message)
        text = ": ".join(parts)
        if self.request_id:
            text += f" (fly-request-id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, "
            f"status={self.status!r}, operation={self.operation!r}, "
            f"url={self.url!r}, request_id={self.request_id!r})"
        )
