"""Machinery shared by the HTTP clients: the Fly API clients and Prometheus.

Auth headers, per-thread sessions, timeouts, retries, and reading error bodies.
Private: :mod:`flyautoscaler.fly` re-exports what users need.

Every request goes through :meth:`Sender.send`: a ``(connect, read)`` timeout
always, the session of the calling thread (:class:`SessionPool`) or one the
caller owns (:class:`GivenSession`), and the failures mapped to the caller's
exceptions.

Why the retry loop is written by hand here rather than left to urllib3's
``Retry``: a retry must take its token from the client-side rate limiter
(:mod:`flyautoscaler._ratelimit`) and a 429 must hold its bucket for as long
as the retry waits, so other threads wait too; no wait may outlast the pass's
deadline or survive its cancellation (:mod:`flyautoscaler._scope`); and a
non-idempotent create is resent only when it certainly never reached Fly.
urllib3 knows none of these. Callers that need no retry (the Prometheus
collector) send with ``RetryPolicy(max_attempts=1)``.
"""

from __future__ import annotations

import email.utils
import functools
import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import requests
import urllib3.exceptions
from attrs import define, field, frozen

from flyautoscaler._closing import Closing
from flyautoscaler._errors import ConfigError, Scrubber
from flyautoscaler._log import get_logger
from flyautoscaler._ratelimit import RateLimiter
from flyautoscaler._scope import Scope, current_scope, pause
from flyautoscaler._validation import check_header_value, header_value_problem

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "RETRY_STATUSES",
    "GivenSession",
    "Lifecycle",
    "RetryPolicy",
    "Sender",
    "SessionPool",
    "check_base_url",
    "check_timeout",
    "decode_json",
    "default_user_agent",
    "encode_json",
    "env_base_url",
    "flaps_authorization",
    "graphql_authorization",
    "make_sender",
    "parse_retry_after",
    "parse_token",
    "replica_user_agent",
    "request_headers",
    "request_id",
    "request_timeouts",
    "scrub",
    "server_message",
    "token_header_problem",
]

logger = get_logger("flyautoscaler.fly")

#: Seconds allowed to open a TCP (and TLS) connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds allowed between bytes of the response.
DEFAULT_READ_TIMEOUT = 30.0
#: The ``(connect, read)`` timeout every request carries by default.
DEFAULT_TIMEOUT = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)

#: Statuses worth another try: rate limited, bad gateway, unavailable, gateway timeout.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# What requests raises when no usable answer came back.
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
# Failures that prove the request never left this process: the connection was
# never established (refused, DNS failure, connect timeout).
_NOT_SENT = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
)


def request_timeouts(total: float) -> tuple[float, float]:
    """Return the ``(connect, read)`` timeouts of requests that may take *total* s.

    The connect timeout is the smaller of :data:`DEFAULT_CONNECT_TIMEOUT` and
    half of *total*, the read timeout the rest: 35 s gives the defaults.
    """
    connect = min(DEFAULT_CONNECT_TIMEOUT, total / 2)
    return connect, total - connect


@functools.cache
def default_user_agent() -> str:
    """Return ``flyautoscaler/<version>``, the default ``User-Agent``."""
    try:
        return f"flyautoscaler/{version('flyautoscaler')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "flyautoscaler/unknown"


# What a comment in a header may not carry (RFC 9110 section 5.6.5): parentheses,
# backslashes, controls and anything outside visible ASCII.
_NOT_CTEXT = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e]")


def replica_user_agent(replica_id: str) -> str:
    """Return the ``User-Agent`` of a replica: ``flyautoscaler/<version> (replica ID)``.

    So that the API's side (a request log, the fake server's) tells replicas
    apart. Characters a header comment cannot carry become ``_``.
    """
    return f"{default_user_agent()} (replica {_NOT_CTEXT.sub('_', replica_id)})"


@frozen
class RetryPolicy:
    """How often and how long a client retries a failed request.

    The delay before retry *n* (1-based) is drawn uniformly from
    ``[0, min(max_delay, base_delay * 2 ** (n - 1))]`` ("full jitter"), unless the
    server sent ``Retry-After``: then it is exactly that many seconds. A
    ``Retry-After`` longer than ``max_retry_after`` is never cut short: the
    client gives up at once, and the error says how long the server asked to
    wait. No retry starts if it would end later than ``max_elapsed`` seconds
    after the first attempt began, or after the current pass's deadline.

    Args:
        max_attempts: Attempts in all, the first one included (1 = never retry).
        base_delay: Seconds; the upper bound of the first backoff.
        max_delay: Seconds; the largest backoff bound.
        max_retry_after: Seconds; the longest ``Retry-After`` the client waits
            for; a longer one fails the request at once.
        max_elapsed: Seconds; the budget for all attempts and waits together.
    """

    max_attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 2.0
    max_retry_after: float = 10.0
    max_elapsed: float = 20.0

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "max_retry_after", "max_elapsed"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Return the seconds to wait before retry number *retry* (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        bound = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return rng.uniform(0.0, bound)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or ``None``.

    Args:
        value: The header: delay-seconds (``"1"``, ``"2.5"``) or an HTTP-date.
        now: The current Unix time, for HTTP-dates (default :func:`time.time`).

    Returns:
        Seconds (0 for a date in the past), or ``None`` when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _never_sent(error: BaseException) -> bool:
    """Tell whether *error* proves the request never reached the server."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo and len(seen) < 50:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _NOT_SENT):
            return True
        todo.extend((current.__cause__, current.__context__, *current.args))
        todo.append(getattr(current, "reason", None))  # urllib3's MaxRetryError
    return False


class _Lease:
    """Kept in a thread's local storage: freed, and so finalized, when it ends."""

    __slots__ = ("__weakref__",)


@define
class SessionPool:
    """One :class:`requests.Session` per thread, all closed by :meth:`close`.

    A thread's session is closed when the thread ends, so short-lived threads
    (such as a reconciler's action pool) do not pile up sessions.

    Args:
        trust_env: The sessions' ``trust_env``: read proxies and ``.netrc``
            from the environment on every request (the default, as
            :mod:`requests` does). ``False`` skips that, which costs about
            half a millisecond a request: for a client of a server on
            127.0.0.1, such as the simulator's.
    """

    trust_env: bool = field(default=True, kw_only=True)
    _local: threading.local = field(factory=threading.local, init=False)
    _lock: threading.Lock = field(factory=threading.Lock, init=False)
    _sessions: list[requests.Session] = field(factory=list, init=False)
    _closed: bool = field(default=False, init=False)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def get(self) -> requests.Session:
        """Return the calling thread's session, creating it on first use.

        Raises:
            RuntimeError: The pool is closed.
        """
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None and not self._closed:
            return session
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            session = requests.Session()
            session.trust_env = self.trust_env
            self._sessions.append(session)
        lease = _Lease()
        weakref.finalize(lease, self._thread_ended, session)
        self._local.session = session
        self._local.lease = lease
        return session

    def _thread_ended(self, session: requests.Session) -> None:
        """Close the session of a thread that ended (runs on any thread)."""
        with self._lock:
            if session not in self._sessions:
                return  # closed by close() already
            self._sessions.remove(session)
        session.close()

    def close(self) -> None:
        """Close every session; idempotent."""
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


@frozen
class GivenSession:
    """One :class:`requests.Session` the caller owns, used on every thread.

    Its :meth:`close` does nothing: the caller closes the session.
    """

    session: requests.Session

    def get(self) -> requests.Session:
        """Return the session."""
        return self.session

    def close(self) -> None:
        """Leave the session open: it is not ours to close."""


#: Turns a non-2xx response into the exception to raise.
ResponseError = Callable[[requests.Response], Exception]
#: Turns a ``requests`` failure (no response) into the exception to raise; the
#: flag says whether the request may have reached the server.
TransportError = Callable[[requests.RequestException, bool], Exception]
#: Makes the exception raised when the rate limiter would wait *seconds*, too long.
LimitedError = Callable[[float], Exception]
#: Makes the exception raised when a request is not sent because the current
#: pass was cancelled (``"cancelled"``) or would end first (``"deadline"``);
#: the second argument says it in words.
NotSentError = Callable[[str, str], Exception]


@frozen
class _Request:
    """One request as :meth:`Sender.send` sends it, attempt after attempt."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | str | None
    idempotent: bool
    follow_redirects: bool
    response_error: ResponseError
    transport_error: TransportError


@frozen
class _Failed:
    """What one failed attempt left: the error, and whether to try again."""

    error: Exception
    retryable: bool
    maybe_acted: bool
    cause: BaseException | None = None
    status: int | None = None
    retry_after: float | None = None


@define
class Sender:
    """Sends one request with timeouts and the retry policy.

    Args:
        sessions: Where the calling thread's session comes from: a pool, or
            one session the caller owns.
        timeout: ``(connect, read)`` seconds, on every request.
        retry: The retry policy.
        sleep: Waits between attempts (injected in tests).
        clock: A monotonic clock in seconds (injected in tests).
        rng: Draws the backoff jitter.
        limiter: Client-side rate limits, for requests sent with a ``rate_key``.
    """

    sessions: SessionPool | GivenSession
    timeout: tuple[float, float]
    retry: RetryPolicy
    sleep: Callable[[float], object]
    clock: Callable[[], float]
    rng: random.Random = field(factory=random.Random)
    limiter: RateLimiter | None = None

    def send(  # noqa: PLR0913 - one request, described in full
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | str | None = None,
        idempotent: bool,
        response_error: ResponseError,
        transport_error: TransportError,
        log_event: str = "http.retry",
        log_extra: Mapping[str, object] | None = None,
        follow_redirects: bool = False,
        rate_key: tuple[str, str] | None = None,
        limited_error: LimitedError | None = None,
        not_sent_error: NotSentError | None = None,
    ) -> requests.Response:
        """Send the request, retrying what the policy allows; return a 2xx response.

        A retry happens on a status in :data:`RETRY_STATUSES` or a connection
        failure or timeout. A non-idempotent request (*idempotent* false) is
        retried only when it certainly did not reach the server: on 429 or when
        the connection was never established. A ``DELETE`` answered 404 after
        an earlier attempt that may have reached the server succeeded: that
        attempt did the deleting. Redirects are followed only with
        *follow_redirects* (the Fly APIs never redirect).

        With a :attr:`limiter` and a *rate_key* ``(action, Machine id or app)``,
        the first attempt first waits for a token of that bucket; retries,
        already backed off, take one without waiting; a 429 holds the bucket
        for as long as the retry waits, so other threads wait too.

        Inside a pass (:func:`~flyautoscaler._scope.current_scope`), with a
        *not_sent_error*: nothing is sent once the pass is cancelled, waits end
        as soon as it is, and no wait that would outlast the pass's deadline
        begins; the request fails at once instead.

        Raises:
            Exception: What *response_error* or *transport_error* made of the last
                failure, what *limited_error* made of a wait for a token longer
                than the limiter's ``max_wait``, or what *not_sent_error* made
                of a cancelled pass or a wait past its deadline (nothing was
                sent in those two cases).
        """
        log_extra = {} if log_extra is None else log_extra
        key = rate_key if self.limiter is not None else None
        scope = current_scope() if not_sent_error is not None else None
        what = f"{method} {url} not sent"
        if scope is not None and scope.cancelled:
            raise self._not_sent(
                not_sent_error, "cancelled", f"{what}: the pass was cancelled"
            )
        self._wait_for_token(
            key, what, limited_error, log_extra, (scope, not_sent_error)
        )
        request = _Request(
            method,
            url,
            dict(headers),
            body,
            idempotent,
            follow_redirects,
            response_error,
            transport_error,
        )
        start = self.clock()
        attempt = 0
        maybe_acted = False  # an earlier attempt may have reached the server
        error: Exception | None = None
        cause: BaseException | None = None
        while True:  # bounded: at most retry.max_attempts turns
            attempt += 1
            if attempt > 1:
                self._count_retry(key)
            self._check_permit(scope, method, (what, not_sent_error), (error, cause))
            outcome = self._attempt(request, maybe_acted=maybe_acted)
            if isinstance(outcome, requests.Response):
                if outcome.status_code == 404:
                    logger.debug(
                        "http.already_deleted",
                        extra={**log_extra, "method": method, "url": url},
                    )
                return outcome
            maybe_acted = maybe_acted or outcome.maybe_acted
            error, cause = outcome.error, outcome.cause
            if not outcome.retryable or attempt >= self.retry.max_attempts:
                raise error from cause
            delay = self._retry_delay(attempt, outcome.retry_after, start, scope, error)
            if outcome.status == 429:
                self._hold_bucket(key, delay)
            logger.warning(
                log_event,
                extra={
                    **log_extra,
                    "method": method,
                    "url": url,
                    "attempt": attempt,
                    "delay": delay,
                    "status": outcome.status,
                    "error": str(error),
                },
            )
            if not pause(delay, self.sleep):
                error.add_note("not retried: the pass was cancelled")
                raise error from cause

    def _check_permit(
        self,
        scope: Scope | None,
        method: str,
        request: tuple[str, NotSentError | None],
        last: tuple[Exception | None, BaseException | None],
    ) -> None:
        """Raise unless the pass may send this attempt.

        Reads are always allowed. A write needs the scope's permit (the app's
        lease, when replicas coordinate) to hold for as long as the request
        can take: its connect and read timeouts. A first attempt refused is
        not sent (*request*: what it is, and its not-sent error); a retry
        refused raises the *last* failure, with a note.
        """
        if scope is None or method in {"GET", "HEAD"}:
            return
        if scope.permitted(sum(self.timeout)):
            return
        reason = "the pass cannot prove it still holds the app's lease"
        error, cause = last
        if error is None:
            what, not_sent_error = request
            raise self._not_sent(not_sent_error, "not permitted", f"{what}: {reason}")
        error.add_note(f"not retried: {reason}")
        raise error from cause

    def _attempt(
        self, request: _Request, *, maybe_acted: bool
    ) -> requests.Response | _Failed:
        """Send *request* once; return the success, or what went wrong.

        A ``DELETE`` answered 404 counts as a success when an earlier attempt
        (*maybe_acted*) may have reached the server: that attempt deleted it.
        """
        try:
            response = self.sessions.get().request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=self.timeout,
                allow_redirects=request.follow_redirects,
            )
        except requests.RequestException as exc:
            sent = not _never_sent(exc)
            return _Failed(
                error=request.transport_error(exc, sent),
                cause=exc,
                retryable=isinstance(exc, _TRANSPORT_ERRORS)
                and (request.idempotent or not sent),
                maybe_acted=sent,
            )
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 404 and request.method == "DELETE" and maybe_acted:
            return response
        retryable = status == 429 or (request.idempotent and status in RETRY_STATUSES)
        failed = _Failed(
            error=request.response_error(response),
            status=status,
            retryable=retryable,
            retry_after=parse_retry_after(response.headers.get("Retry-After"))
            if retryable
            else None,
            maybe_acted=status >= 500,
        )
        response.close()
        return failed

    def _retry_delay(
        self,
        attempt: int,
        retry_after: float | None,
        start: float,
        scope: Scope | None,
        error: Exception,
    ) -> float:
        """Return the wait before the next attempt, or raise *error* if too long.

        A ``Retry-After`` is waited in full or not at all: a resend before the
        server allows it would only be refused again.
        """
        if retry_after is not None and retry_after > self.retry.max_retry_after:
            error.add_note(
                f"not retried: the server asked to wait {retry_after:g} s "
                f"(Retry-After), longer than this client waits "
                f"({self.retry.max_retry_after:g} s)"
            )
            raise error
        delay = self.retry.delay(attempt, retry_after, self.rng)
        elapsed = self.clock() - start
        if elapsed + delay > self.retry.max_elapsed:
            error.add_note(
                f"not retried: waiting {delay:.3g} s more would exceed the retry "
                f"budget of {self.retry.max_elapsed:g} s"
            )
            raise error
        if scope is not None and delay > scope.remaining():
            error.add_note(
                f"not retried: waiting {delay:.3g} s would pass the deadline "
                f"of this pass ({scope.remaining():.3g} s left)"
            )
            raise error
        return delay

    @staticmethod
    def _not_sent(
        not_sent_error: NotSentError | None, reason: str, text: str
    ) -> Exception:
        return (
            RuntimeError(text)
            if not_sent_error is None
            else not_sent_error(reason, text)
        )

    def _wait_for_token(
        self,
        rate_key: tuple[str, str] | None,
        what: str,
        limited_error: LimitedError | None,
        log_extra: Mapping[str, object],
        within: tuple[Scope | None, NotSentError | None] = (None, None),
    ) -> None:
        """Wait for a token of *rate_key*'s bucket, or raise if it is too far off.

        *what* names the request in errors. Inside a scope (*within*: the scope
        and the error to raise), a wait that would outlast the pass's deadline
        is not begun, and a cancel ends the wait; both raise that error.
        """
        scope, not_sent_error = within
        if self.limiter is None or rate_key is None:
            return
        now = self.clock()
        left = scope.remaining() if scope is not None else math.inf
        wait = self.limiter.reserve(*rate_key, now, max_wait=left)
        if wait is None:
            seconds = self.limiter.wait_time(*rate_key, now)
            if seconds <= self.limiter.max_wait and scope is not None:
                raise self._not_sent(
                    not_sent_error,
                    "deadline",
                    f"{what}: its rate-limit token is {seconds:.3g} s away, "
                    f"after the pass's deadline ({left:.3g} s left)",
                )
            if limited_error is None:
                message = f"rate limit: {rate_key[0]} would wait {seconds:.1f} s"
                raise RuntimeError(message)
            raise limited_error(seconds)
        if wait > 0:
            logger.debug(
                "flaps.rate_limit_wait",
                extra={
                    **log_extra,
                    "action": rate_key[0],
                    "key": rate_key[1],
                    "delay": wait,
                },
            )
            if not pause(wait, self.sleep):
                raise self._not_sent(
                    not_sent_error,
                    "cancelled",
                    f"{what}: the pass was cancelled while it waited for a "
                    "rate-limit token",
                )

    def _count_retry(self, rate_key: tuple[str, str] | None) -> None:
        """Count a retry in its bucket; it does not wait (it backed off already)."""
        if self.limiter is not None and rate_key is not None:
            self.limiter.take(*rate_key, self.clock())

    def _hold_bucket(self, rate_key: tuple[str, str] | None, delay: float) -> None:
        """After a 429, hold *rate_key*'s bucket for the *delay* the retry waits."""
        if self.limiter is not None and rate_key is not None:
            self.limiter.rate_limited(*rate_key, self.clock(), delay)


# --- auth ---------------------------------------------------------------------

_MACAROON_PREFIXES = frozenset({"fm1r", "fm1a", "fm2"})
# A leading authorization scheme, alone or followed by whitespace.
_SCHEME = re.compile(r"(?i)^(?:bearer|flyv1)(?:\s+|$)")


def _token_pieces(token: str) -> list[tuple[int, str]]:
    """Return *token*'s pieces, each with its offset in *token*."""
    text = token.strip()
    start = len(token) - len(token.lstrip())
    while match := _SCHEME.match(text):
        start += match.end()
        text = text[match.end() :]
    pieces: list[tuple[int, str]] = []
    for raw in text.split(","):
        piece = raw.strip()
        if piece:
            pieces.append((start + len(raw) - len(raw.lstrip()), piece))
        start += len(raw) + 1
    return pieces


def parse_token(token: str) -> tuple[list[str], list[str]]:
    """Split *token* into (macaroons, other tokens), as fly-go's ``tokens.Parse``."""
    macaroons: list[str] = []
    others: list[str] = []
    for _, piece in _token_pieces(token):
        prefix = piece.partition("_")[0]
        (macaroons if prefix in _MACAROON_PREFIXES else others).append(piece)
    return macaroons, others


def token_header_problem(token: str) -> str | None:
    """Say which character of *token* an ``Authorization`` header cannot carry.

    Only the pieces that are sent are checked (surrounding whitespace and the
    scheme are dropped, as :func:`parse_token` does); the position counts from
    the start of *token*. See :func:`header_value_problem`.
    """
    for offset, piece in _token_pieces(token):
        problem = header_value_problem(piece, offset=offset)
        if problem is not None:
            return problem
    return None


def _require_pieces(token: str) -> tuple[list[str], list[str]]:
    macaroons, others = parse_token(token)
    if not macaroons and not others:
        raise ConfigError("the Fly API token is empty", field="token")
    check_header_value(
        token, "the Fly API token", field="token", problem_of=token_header_problem
    )
    return macaroons, others


def flaps_authorization(token: str) -> str:
    """Return the ``Authorization`` header for the Machines API.

    ``FlyV1`` and the macaroons when there is any (user tokens are then left
    out), else ``Bearer`` and the user tokens; fly-go's ``FlapsHeader``.

    Args:
        token: A token as ``fly tokens create`` or ``fly auth token`` print it,
            with or without a ``Bearer``/``FlyV1`` scheme, possibly several
            comma-separated.

    Raises:
        ConfigError: The token is empty, or has a character no HTTP header
            can carry (a newline, say).
    """
    macaroons, others = _require_pieces(token)
    if macaroons:
        return "FlyV1 " + ",".join(macaroons)
    return "Bearer " + ",".join(others)


def graphql_authorization(token: str) -> str:
    """Return the ``Authorization`` header for the GraphQL API.

    ``FlyV1`` when there is a macaroon, else ``Bearer``, followed by the
    macaroons and the user tokens; fly-go's ``GraphQLHeader``.

    Args:
        token: See :func:`flaps_authorization`.

    Raises:
        ConfigError: The token is empty, or has a character no HTTP header
            can carry (a newline, say).
    """
    macaroons, others = _require_pieces(token)
    scheme = "FlyV1 " if macaroons else "Bearer "
    return scheme + ",".join(macaroons + others)


def scrub(text: str, token: str) -> str:
    """Remove every piece of *token*, then any credential, from *text*.

    :func:`~flyautoscaler._errors.redact` alone misses user tokens.
    """
    macaroons, others = parse_token(token)
    return Scrubber((token.strip(), *macaroons, *others))(text)


# --- requests and responses ----------------------------------------------------


def check_base_url(value: str) -> str:
    """Return *value* without a trailing slash, or raise ConfigError."""
    url = value.strip().rstrip("/")
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"} or "//" not in url:
        raise ConfigError(
            f"base URL must be http(s)://host, got {url!r}", field="base_url"
        )
    return url


def env_base_url(name: str, default: str, environ: Mapping[str, str] | None) -> str:
    """Return the environment variable *name* if set and non-blank, else *default*.

    Args:
        name: ``FLY_FLAPS_BASE_URL`` or ``FLY_API_BASE_URL``.
        default: The public API.
        environ: Where to look (``None``: :data:`os.environ`).
    """
    env = os.environ if environ is None else environ
    return env.get(name, "").strip() or default


def check_timeout(value: tuple[float, float]) -> tuple[float, float]:
    """Return *value* as floats, or raise ConfigError unless both are > 0."""
    connect, read = value
    if not (connect > 0 and read > 0):
        raise ConfigError(
            f"timeout must be (connect, read) seconds > 0, got {value!r}",
            field="timeout",
        )
    return (float(connect), float(read))


def request_id(response: requests.Response) -> str:
    """Return the ``fly-request-id`` response header, or ``""``."""
    return response.headers.get("fly-request-id", "")


def server_message(response: requests.Response) -> str:
    """Return the error body's ``message``, else ``error``, else the raw text."""
    text = response.content.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if isinstance(payload, Mapping):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            payload = errors[0]  # a GraphQL error body
        for key in ("message", "error"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
    return text


def server_error_status(response: requests.Response) -> str:
    """Return the error body's ``status`` field (``insufficient_capacity``, ...).

    The lease envelope's ``"error"``/``"success"`` say nothing more than the
    HTTP status, so they give ``""``.
    """
    try:
        payload = json.loads(response.content)
    except ValueError:
        return ""
    status = payload.get("status") if isinstance(payload, Mapping) else None
    if not isinstance(status, str) or status in {"error", "success"}:
        return ""
    return status


def decode_json(response: requests.Response) -> object:
    """Return the body's JSON, ``None`` for an empty body.

    Raises:
        ValueError: The body is not JSON.
    """
    return json.loads(response.content) if response.content.strip() else None


def request_headers(
    authorization: str, user_agent: str, *, body: bool, nonce: str = ""
) -> dict[str, str]:
    """Return the headers of a request: JSON content type only with a body."""
    headers = {
        "Authorization": authorization,
        "User-Agent": user_agent,
        "Accept": "application/json",
    }
    if body:
        headers["Content-Type"] = "application/json"
    if nonce:
        headers["fly-machine-lease-nonce"] = nonce
    return headers


def encode_json(body: object) -> bytes:
    """Return *body* as compact JSON; dicts keep their key order."""
    return json.dumps(
        body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@frozen(eq=False)
class HTTPOptions:
    """The keyword-only options every HTTP client of this package shares.

    Attributes:
        timeout: ``(connect, read)`` seconds on every request.
        retry: When and how to retry; see :class:`RetryPolicy`.
        user_agent: The ``User-Agent`` header.
        sleep: Waits between retries (tests inject a recorder).
        clock: Monotonic seconds, for the retry budget.
    """

    timeout: tuple[float, float] = field(
        default=DEFAULT_TIMEOUT, kw_only=True, converter=check_timeout
    )
    retry: RetryPolicy = field(factory=RetryPolicy, kw_only=True)
    user_agent: str = field(factory=default_user_agent, kw_only=True)
    sleep: Callable[[float], object] = field(
        default=time.sleep, kw_only=True, repr=False
    )
    clock: Callable[[], float] = field(default=time.monotonic, kw_only=True, repr=False)


class Lifecycle(Closing):
    """``close()`` and ``with`` for a client holding a :class:`Sender`."""

    __slots__ = ()

    sessions: SessionPool | None
    _sender: Sender

    def _session(self) -> requests.Session:
        """Return the calling thread's session."""
        return self._sender.sessions.get()

    def close(self) -> None:
        """Close the HTTP sessions this client created; idempotent.

        A client given a shared ``sessions`` pool leaves it open. Using a
        client after its sessions are closed raises :class:`RuntimeError`.
        """
        if self.sessions is None:
            self._sender.sessions.close()


class _ClientOptions(Protocol):
    @property
    def sessions(self) -> SessionPool | None: ...
    @property
    def timeout(self) -> tuple[float, float]: ...
    @property
    def retry(self) -> RetryPolicy: ...
    @property
    def sleep(self) -> Callable[[float], object]: ...
    @property
    def clock(self) -> Callable[[], float]: ...


def make_sender(
    client: _ClientOptions, *, limiter: RateLimiter | None = None
) -> Sender:
    """Return the :class:`Sender` for a client's options (and rate limiter)."""
    return Sender(
        sessions=client.sessions if client.sessions is not None else SessionPool(),
        timeout=client.timeout,
        retry=client.retry,
        sleep=client.sleep,
        clock=client.clock,
        limiter=limiter,
    )
