"""A fake Fly.io API over real HTTP: the Machines API and the GraphQL queries.

:class:`FakeMachinesServer` listens on 127.0.0.1 (a random port) and answers
``/v1/apps/{app}/machines...`` and ``POST /graphql`` from one in-memory state: one
:class:`~flyautoscaler.testing.FakeFlapsClient` per app (the Machine table and its
transitions, leases and waits) and one :class:`~flyautoscaler.testing.FakeFlyClient`
(organizations, apps, releases). Errors the fakes raise become the HTTP statuses
and bodies the real API sends (see ``fly-api.md``).

Each request goes through, in order: latency, injected faults, the token check,
rate limits, then the endpoint. Every answer carries ``fly-request-id``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Self, cast
from urllib.parse import parse_qs, urlsplit

from attrs import define, frozen

from flyautoscaler._durations import parse_seconds
from flyautoscaler._errors import (
    REDACTED,
    FlapsError,
    FlapsRateLimitedError,
    FlapsTransportError,
    Scrubber,
)
from flyautoscaler._log import get_logger
from flyautoscaler._models import (
    LaunchMachineInput,
    Machine,
    MachineState,
    Organization,
    RemoveMachineInput,
    StopMachineInput,
)
from flyautoscaler.testing._fakes import (
    FakeFlapsClient,
    FakeFlyClient,
    Lease,
    check_transition_delays,
)

__all__ = ["FakeMachinesServer", "RequestRecord"]

_log = get_logger("flyautoscaler.testing")

_WAIT_CAP: Final = 60.0
_DEFAULT_LEASE_TTL: Final = 30.0
_PATH: Final = re.compile(
    r"^/v1/apps/(?P<app>[^/]+)/machines"
    r"(?:/(?P<id>[^/]+)(?:/(?P<verb>start|stop|suspend|wait|lease))?)?/?$"
)
_ROUTES: Final = {
    ("GET", False, None): "list",
    ("POST", False, None): "launch",
    ("GET", True, None): "get",
    ("DELETE", True, None): "destroy",
    ("POST", True, "start"): "start",
    ("POST", True, "stop"): "stop",
    ("POST", True, "suspend"): "suspend",
    ("GET", True, "wait"): "wait",
    ("POST", True, "lease"): "acquire_lease",
    ("GET", True, "lease"): "get_lease",
    ("DELETE", True, "lease"): "release_lease",
}
#: Token buckets (rate per second, burst) of Fly's documented limits, per action.
_RATE_LIMITS: Final = {"get": (5.0, 10.0)}
_DEFAULT_RATE_LIMIT: Final = (1.0, 3.0)
_WAIT_STATES: Final = frozenset(
    {"created", "started", "stopped", "suspended", "destroyed", "failed", "settled"}
)
_SUMMARY_OMITS: Final = (
    "config",
    "incomplete_config",
    "checks",
    "events",
    "host_status",
    "nonce",
)
_MALFORMED: Final = b'{"id": "malformed", "state": '
_TRUE: Final = frozenset({"1", "t", "true", "yes"})


@frozen
class RequestRecord:
    """One request the server answered (or dropped), as logged.

    The token never appears: the ``Authorization`` header keeps only its
    scheme (``"Bearer [REDACTED]"``) and the token is removed from every other
    field too.

    Attributes:
        method: HTTP method.
        path: URL path, without the query.
        query: Raw query string (``""`` when none).
        headers: Request headers, names in lower case.
        body: Request body.
        status: Status answered, or ``None`` when the connection was dropped.
        action: What was asked: ``list``, ``get``, ``launch``, ``start``,
            ``stop``, ``suspend``, ``destroy``, ``wait``, ``acquire_lease``,
            ``get_lease``, ``release_lease``, one of the
            :class:`~flyautoscaler.FlyClient` method names for GraphQL, or
            ``graphql``/``unknown``/``unsupported``.
        latency: Seconds of injected latency applied before answering.
        received: When the server began handling the request (on its
            ``clock``), before the latency.
        answered: When the server had its answer (on its ``clock``): between
            these two the request was acted on. Requests from several clients
            (replicas of the autoscaler) are ordered by these times.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    action: str
    latency: float = 0.0
    received: float = 0.0
    answered: float = 0.0

    @property
    def params(self) -> dict[str, list[str]]:
        """The query string parsed (blank values kept)."""
        return parse_qs(self.query, keep_blank_values=True)

    def json(self) -> Any:  # noqa: ANN401 - any JSON value
        """Return the body decoded as JSON.

        Raises:
            ValueError: The body is not JSON.
        """
        return json.loads(self.body)


@frozen
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def param(self, name: str) -> str:
        values = self.params.get(name)
        return values[-1] if values else ""

    def flag(self, name: str) -> bool:
        return self.param(name).lower() in _TRUE


@frozen
class _Response:
    status: int | None  # None: drop the connection
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@frozen
class _Route:
    action: str
    app: str = ""
    machine_id: str = ""

    @property
    def bucket(self) -> str:
        return self.machine_id or self.app


class _AnswerError(Exception):
    """Raised to answer at once with *response*."""

    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(status: int, payload: object, *headers: tuple[str, str]) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers)


def _error(status: int, message: str) -> _AnswerError:
    return _AnswerError(_json(status, {"error": message}))


def _gql_error(message: str, code: str, status: int = 200) -> _AnswerError:
    errors = [{"message": message, "extensions": {"code": code}}]
    return _AnswerError(_json(status, {"data": None, "errors": errors}))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token_pieces(value: str) -> set[str]:
    """Split an Authorization value like fly-go's ``tokens.Parse`` (fly-api §1.2)."""
    value = value.strip()
    while True:
        head, _, rest = value.partition(" ")
        if head.lower() not in {"bearer", "flyv1"} or not rest:
            break
        value = rest.strip()
    return {piece.strip() for piece in value.split(",") if piece.strip()}


def _parse_seconds(text: str) -> float:
    """Parse ``"10"``, ``"2.5"`` or a Go duration (``"1m30s"``, ``"500ms"``).

    Raises:
        ValueError: Not a duration, or negative; the message quotes *text* only.
    """
    try:
        return parse_seconds(text)
    except ValueError:
        raise ValueError(f"invalid duration {text.strip()!r}") from None


@define
class _Fault:
    kind: str  # "fail" | "drop" | "malformed" | "delay"
    remaining: int
    status: int
    method: str | None
    path: str | None
    act: bool = False  # act on the request first: only the answer is lost
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0

    def matches(self, request: _Request) -> bool:
        if self.method is not None and self.method.upper() != request.method:
            return False
        return self.path is None or self.path in request.path


@define
class _Bucket:
    tokens: float
    updated: float


class FakeMachinesServer:
    """A fake Machines API and Fly GraphQL API over HTTP on 127.0.0.1.

    Use it as a context manager, or call :meth:`start` and :meth:`close`::

        with FakeMachinesServer(token="secret") as server:
            server.add_app("my-app", machines=[...])
            client = FlapsHTTPClient("my-app", "secret", base_url=server.url)

    Machines endpoints live under ``server.url`` (``/v1/apps/{app}/machines...``),
    GraphQL at ``server.url + "/graphql"``. Apps, their Machines and releases
    are one state, seeded with :meth:`add_app` and read with :meth:`machines`;
    each app's Machine table is a :class:`~flyautoscaler.testing.FakeFlapsClient`
    (:meth:`flaps_client`) and the organizations are a
    :class:`~flyautoscaler.testing.FakeFlyClient` (:attr:`fly_client`), so the
    in-memory and the HTTP fake share one implementation, and failures injected
    with their ``fail()`` come out as HTTP errors.

    Args:
        token: The token every request must carry in ``Authorization``
            (``Bearer X``, ``FlyV1 X``, ``Bearer FlyV1 X``, or a comma-separated
            list containing X); anything else gets 401.
        transition_delay: Seconds (on ``clock``) Machines spend in ``starting``,
            ``stopping`` and ``suspending``; 0 moves them at once. Read when
            an app is added.
        transition_delays: Seconds of some transitions, by name (``create``,
            ``start``, ``resume``, ``stop``, ``suspend``: see
            :data:`~flyautoscaler.testing.TRANSITIONS`); the others take
            ``transition_delay``. Read when an app is added.
        clock: The time source of transitions, lease expiry and rate limits
            (default ``time.monotonic``); inject one so tests need not sleep.
        rate_limits: Enforce Fly's documented rate limits (429 on overflow):
            token buckets of 1 request/s, burst 3, per action and Machine
            (start, stop, destroy, wait, and the three lease calls together)
            or per action and app (create, list); 5/s, burst 10, for get.
        latency: Seconds to wait before answering each request.
        graphql_page_size: Most apps per page of the ``apps`` query (at most
            the query's ``first``).
        record_requests: Keep every request in :attr:`requests` (the default).
            ``False`` keeps only the counts (:meth:`count`,
            :attr:`action_counts`): for long runs, such as the simulator's,
            where the log would grow without end.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options of a test server
        self,
        *,
        token: str,
        transition_delay: float = 0.0,
        transition_delays: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rate_limits: bool = False,
        latency: float = 0.0,
        graphql_page_size: int = 200,
        record_requests: bool = True,
    ) -> None:
        if not _token_pieces(token):
            raise ValueError("token must not be empty")
        if graphql_page_size < 1:
            raise ValueError(f"graphql_page_size must be >= 1: {graphql_page_size}")
        self._tokens = frozenset(_token_pieces(token))
        self._scrub = Scrubber(self._tokens, patterns=False)
        self.transition_delays = check_transition_delays(
            transition_delays, transition_delay
        )
        self.transition_delay = transition_delay
        self.rate_limits = rate_limits
        self.graphql_page_size = graphql_page_size
        self.record_requests = record_requests
        self._clock = clock
        self._latency = 0.0
        self.latency = latency
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fly: FakeFlyClient = FakeFlyClient()
        self._apps: dict[str, FakeFlapsClient] = {}
        self._faults: list[_Fault] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        # app -> Machine id -> (the Machine, its JSON): see _list().
        self._json_cache: dict[str, dict[str, tuple[Machine, str]]] = {}
        self._requests: list[RequestRecord] = []
        self._counts: dict[str, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._created_at = _rfc3339(datetime.now(UTC))
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- lifecycle ---

    def start(self) -> Self:
        """Start listening (a second call does nothing) and return the server.

        Raises:
            RuntimeError: The server was closed; make a new one.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("FakeMachinesServer is closed; make a new one")
            if self._httpd is not None:
                return self
            httpd = _HTTPServer(self)
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeMachinesServer:{httpd.server_address[1]}",
                daemon=True,
            )
            self._httpd, self._thread = httpd, thread
        thread.start()
        _log.debug("fake_server.started", extra={"url": self.url})
        return self

    def close(self) -> None:
        """Stop serving, end pending requests and join every thread (idempotent).

        Waits and latency end at once; open connections are shut down.
        """
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
            self._closed = True
            self._stop.set()
        if httpd is None or thread is None:
            return
        self.tick()  # wake waits, which see the stop event
        httpd.shutdown()
        httpd.stop_connections()
        httpd.server_close()  # joins the request threads
        thread.join()
        _log.debug("fake_server.closed")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:<port>``.

        Raises:
            RuntimeError: The server is not running.
        """
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("FakeMachinesServer is not running; call start()")
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    # --- state ---

    @property
    def fly_client(self) -> FakeFlyClient:
        """The organizations, apps and releases the GraphQL endpoint serves."""
        return self._fly

    def add_organization(
        self, slug: str, *, org_id: str = "", name: str = ""
    ) -> Organization:
        """Add an organization (apps add theirs on demand) and return it."""
        return self._fly.add_organization(slug, org_id, name)

    def add_app(
        self,
        name: str,
        org_slug: str = "personal",
        *,
        machines: Iterable[Machine] = (),
        release_status: str | None = None,
        region: str = "iad",
    ) -> FakeFlapsClient:
        """Add an app with its Machines and, optionally, a current release.

        Args:
            name: The app's name.
            org_slug: Its organization (created if new).
            machines: Its Machines to begin with.
            release_status: Status of its current release; ``None``: no release.
            region: Region of Machines created without one.

        Returns:
            The app's Machine table.

        Raises:
            ValueError: An app of that name exists.
        """
        client = FakeFlapsClient(
            machines,
            app_name=name,
            region=region,
            transition_delay=self.transition_delay,
            transition_delays=self.transition_delays,
            clock=self._clock,
        )
        with self._lock:
            if name in self._apps:
                raise ValueError(f"app {name!r} exists")
            self._apps[name] = client
        self._fly.add_app(name, org_slug, release_status=release_status)
        return client

    def flaps_client(self, app: str) -> FakeFlapsClient:
        """Return the app's Machine table (to read it, add Machines or ``fail()``).

        Raises:
            KeyError: No such app.
        """
        with self._lock:
            return self._apps[app]

    def machines(self, app: str) -> list[Machine]:
        """Return the app's Machines now, in creation order.

        Raises:
            KeyError: No such app.
        """
        return self.flaps_client(app).machines

    def set_release(self, app: str, status: str | None) -> None:
        """Set the app's current release status; ``None`` removes the release."""
        self._fly.set_release(app, status)

    def tick(self) -> None:
        """Apply the transitions due by the clock and wake pending waits.

        Every request does this first; call it after advancing an injected
        clock while a ``wait`` request is pending.
        """
        with self._lock:
            clients = list(self._apps.values())
        for client in clients:
            client.wake()

    # --- faults and latency ---

    @property
    def latency(self) -> float:
        """Seconds to wait before answering each request (change at any time)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"latency must be >= 0, got {seconds}")
        self._latency = seconds

    def fail_next(  # noqa: PLR0913 - keyword-only options of one fault
        self,
        n: int = 1,
        status: int = 503,
        *,
        method: str | None = None,
        path: str | None = None,
        act: bool = False,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next *n* matching requests with *status*.

        Args:
            n: How many requests fail.
            status: Status to answer, with ``{"error": "injected failure"}``.
            method: Only requests with this method.
            path: Only requests whose path contains this.
            act: Do what the request asks first, then answer *status*: a
                server that fails after acting (by default nothing is done).
            retry_after: A ``Retry-After`` header to send with the answer.
        """
        headers = () if retry_after is None else (("Retry-After", retry_after),)
        self._add_fault("fail", n, status, method, path, act=act, headers=headers)

    def drop_next(
        self,
        n: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        act: bool = False,
    ) -> None:
        """Close the connection of the next *n* matching requests, unanswered.

        The request is read but, unless *act*, not acted on; with *act* it is
        carried out and only the answer is lost, as when a connection breaks
        after the server acted. *method* and *path* filter as in
        :meth:`fail_next`.
        """
        self._add_fault("drop", n, 0, method, path, act=act)

    def delay_next(
        self,
        n: int = 1,
        seconds: float = 1.0,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Carry out the next *n* matching requests at once, answer *seconds* later.

        A client whose read timeout is shorter gives up although the server
        acted: the answer of a create is lost, its Machine exists. *method*
        and *path* filter as in :meth:`fail_next`.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._add_fault("delay", n, 0, method, path, act=True, delay=seconds)

    def malformed_next(
        self, n: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next *n* matching requests with 200 and invalid JSON.

        The request is not acted on. *method* and *path* filter as in
        :meth:`fail_next`.
        """
        self._add_fault("malformed", n, 200, method, path)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    def _add_fault(  # noqa: PLR0913 - one fault, described in full
        self,
        kind: str,
        n: int,
        status: int,
        method: str | None,
        path: str | None,
        *,
        act: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
        delay: float = 0.0,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        fault = _Fault(
            kind, n, status, method, path, act=act, headers=headers, delay=delay
        )
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, request: _Request) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(request):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- observation ---

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered or dropped so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Empty the request log and the per-action counts."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()

    def count(self, action: str) -> int:
        """Return how many requests asked for *action* (see :class:`RequestRecord`)."""
        with self._lock:
            return self._counts.get(action, 0)

    @property
    def action_counts(self) -> dict[str, int]:
        """Requests per action so far (a copy)."""
        with self._lock:
            return dict(self._counts)

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests ever handled at the same time."""
        with self._lock:
            return self._max_in_flight

    # --- handling ---

    def _handle(self, request: _Request) -> _Response:
        """Answer one request: latency, faults, auth, rate limits, endpoint."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        received = self._clock()
        latency = self._latency
        route = _Route("unknown")
        try:
            if latency > 0:
                self._stop.wait(latency)
            self.tick()
            route = self._route(request)
            response = self._answer(request, route)
        except _AnswerError as answer:
            response = answer.response
        except Exception:  # noqa: BLE001 - a bug in the fake answers 500
            _log.exception("fake_server.error", extra={"action": route.action})
            response = _json(500, {"error": "internal error in the fake server"})
        record = None
        if self.record_requests:
            record = RequestRecord(
                method=request.method,
                path=self._scrub(request.path),
                query=self._scrub(request.query),
                headers={
                    k: self._scrub_header(k, v) for k, v in request.headers.items()
                },
                body=self._scrub.scrub_bytes(request.body),
                status=response.status,
                action=route.action,
                latency=latency,
                received=received,
                answered=self._clock(),
            )
        with self._lock:
            self._in_flight -= 1
            if record is not None:
                self._requests.append(record)
            self._counts[route.action] = self._counts.get(route.action, 0) + 1
        return response

    def _scrub_header(self, name: str, value: str) -> str:
        if name != "authorization":
            return self._scrub(value)
        schemes = []
        for word in value.split():
            if word.lower() not in {"bearer", "flyv1"}:
                break
            schemes.append(word)
        return " ".join([*schemes, REDACTED])

    def _route(self, request: _Request) -> _Route:
        if request.path == "/graphql":
            if request.method != "POST":
                return _Route("unsupported")
            return _Route(self._graphql_action(request.body))
        match = _PATH.match(request.path)
        if match is None:
            return _Route("unknown")
        machine_id = match.group("id") or ""
        key = (request.method, bool(machine_id), match.group("verb"))
        action = _ROUTES.get(key, "unsupported")
        return _Route(action, match.group("app"), machine_id)

    def _answer(self, request: _Request, route: _Route) -> _Response:
        fault = self._take_fault(request)
        if fault is None:
            return self._serve(request, route)
        _log.debug("fake_server.fault", extra={"kind": fault.kind, "act": fault.act})
        if fault.kind == "delay":
            try:
                response = self._serve(request, route)
            except _AnswerError as answer:
                response = answer.response
            self._stop.wait(fault.delay)
            return response
        if fault.act:
            with contextlib.suppress(_AnswerError):
                self._serve(request, route)
        if fault.kind == "drop":
            return _Response(None)
        if fault.kind == "malformed":
            return _Response(200, _MALFORMED)
        raise _AnswerError(
            _json(fault.status, {"error": "injected failure"}, *fault.headers)
        )

    def _serve(self, request: _Request, route: _Route) -> _Response:
        if not self._tokens & _token_pieces(request.headers.get("authorization", "")):
            if request.path == "/graphql":
                message = "You must be authenticated to view this."
                raise _gql_error(message, "UNAUTHORIZED", 401)
            raise _error(401, "Authenticate: token validation error")
        if route.action == "unknown":
            raise _error(404, f"not found: {request.path}")
        if route.action == "unsupported":
            raise _error(405, f"method {request.method} not allowed")
        if request.path == "/graphql":
            return self._graphql(request, route.action)
        self._rate_limit(route)
        return self._machines_endpoint(request, route)

    def _rate_limit(self, route: _Route) -> None:
        if not self.rate_limits:
            return
        rate, burst = _RATE_LIMITS.get(route.action, _DEFAULT_RATE_LIMIT)
        action = "lease" if route.action.endswith("_lease") else route.action
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(
                (action, route.bucket), _Bucket(burst, now)
            )
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            retry_after = max(1, math.ceil((1 - bucket.tokens) / rate))
        response = _json(
            429, {"error": "rate limited"}, ("Retry-After", str(retry_after))
        )
        raise _AnswerError(response)

    # --- Machines API ---

    def _machines_endpoint(self, request: _Request, route: _Route) -> _Response:
        with self._lock:
            client = self._apps.get(route.app)
        if client is None:
            raise _error(404, f'Could not find App "{route.app}"')
        nonce = request.headers.get("fly-machine-lease-nonce", "")
        handlers: dict[str, Callable[[], _Response]] = {
            "list": lambda: self._list(client, request),
            "get": lambda: self._get(client, request, route.machine_id),
            "launch": lambda: self._launch(client, request),
            "start": lambda: _json(200, client.start(route.machine_id, nonce).to_api()),
            "stop": lambda: self._stop_machine(client, request, route.machine_id),
            "suspend": lambda: self._suspend(client, nonce, route.machine_id),
            "destroy": lambda: self._destroy(client, request, route.machine_id),
            "wait": lambda: self._wait(client, request, route.machine_id),
            "acquire_lease": lambda: self._acquire(client, request, route.machine_id),
            "get_lease": lambda: self._get_lease(client, route.machine_id),
            "release_lease": lambda: self._release(client, nonce, route.machine_id),
        }
        try:
            return handlers[route.action]()
        except FlapsError as exc:
            raise _flaps_error(exc, lease=route.action.endswith("_lease")) from exc

    def _list(self, client: FakeFlapsClient, request: _Request) -> _Response:
        states = [s for v in request.params.get("state", []) for s in v.split(",") if s]
        # fly-go's List(state) sends "?started": accept a bare state name too.
        states += [
            k for k, v in request.params.items() if not v[-1] and k in _WAIT_STATES
        ]
        machines = client.list(
            ",".join(states), include_deleted=request.flag("include_deleted")
        )
        if request.flag("summary"):
            return _json(200, [_machine_json(m, summary=True) for m in machines])
        # Each Machine's JSON is made once per version of it (a Machine object
        # is replaced whenever it changes): a list re-sends the same text.
        cache = self._json_cache.setdefault(client.app_name, {})
        parts = []
        for machine in machines:
            cached = cache.get(machine.id)
            if cached is None or cached[0] is not machine:
                cached = cache[machine.id] = (machine, json.dumps(machine.to_api()))
            parts.append(cached[1])
        if len(cache) > 2 * len(machines) + 16:  # forget the destroyed ones
            ids = {m.id for m in machines}
            for machine_id in [i for i in cache if i not in ids]:
                cache.pop(machine_id, None)
        return _Response(200, f"[{', '.join(parts)}]".encode())

    def _get(
        self, client: FakeFlapsClient, request: _Request, machine_id: str
    ) -> _Response:
        machine = client.machine(machine_id)
        return _json(200, _machine_json(machine, summary=request.flag("summary")))

    def _launch(self, client: FakeFlapsClient, request: _Request) -> _Response:
        body = _body(request) or {}
        config = body.get("config")
        if not isinstance(config, Mapping) or not config.get("image"):
            raise _error(400, "invalid config: config.image is required")
        if not isinstance(body.get("region", ""), str):
            raise _error(400, "invalid region")
        lease_ttl = body.get("lease_ttl")
        machine = client.launch(LaunchMachineInput.from_api(body))
        payload = _machine_json(machine)
        if isinstance(lease_ttl, int | float) and lease_ttl > 0:
            payload["nonce"] = client.acquire_lease(machine.id, float(lease_ttl)).nonce
        return _json(200, payload)

    def _stop_machine(
        self, client: FakeFlapsClient, request: _Request, machine_id: str
    ) -> _Response:
        body = _body(request) or {}
        signal = body.get("signal") or ""
        timeout = body.get("timeout")
        if not isinstance(signal, str):
            raise _error(400, "invalid signal")
        seconds = None
        if timeout is not None:
            try:
                seconds = _parse_seconds(str(timeout))
            except ValueError as exc:
                raise _error(400, str(exc)) from None
        nonce = request.headers.get("fly-machine-lease-nonce", "")
        client.stop(StopMachineInput(machine_id, signal, seconds), nonce)
        return _json(200, {"ok": True})

    def _suspend(
        self, client: FakeFlapsClient, nonce: str, machine_id: str
    ) -> _Response:
        client.suspend(machine_id, nonce)
        return _json(200, {"ok": True})

    def _destroy(
        self, client: FakeFlapsClient, request: _Request, machine_id: str
    ) -> _Response:
        kill = request.flag("kill") or request.flag("force")
        nonce = request.headers.get("fly-machine-lease-nonce", "")
        client.destroy(RemoveMachineInput(machine_id, kill=kill), nonce)
        return _json(200, {"ok": True})

    def _wait(
        self, client: FakeFlapsClient, request: _Request, machine_id: str
    ) -> _Response:
        states = {
            s for v in request.params.get("state", []) for s in v.split(",") if s
        } or {MachineState.STARTED}
        if not states <= _WAIT_STATES:
            raise _error(400, f"invalid state: {sorted(states - _WAIT_STATES)}")
        try:
            timeout = _parse_seconds(request.param("timeout") or str(_WAIT_CAP))
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        timeout = min(timeout, _WAIT_CAP)
        machine = client.wait(machine_id, states, timeout, cancel=self._stop)
        if machine is not None:
            return _json(
                200,
                {
                    "ok": True,
                    "state": machine.state,
                    "version": machine.version or machine.instance_id,
                    "event_id": "",
                },
            )
        if self._stop.is_set():
            raise _error(503, "server is shutting down")
        wanted = ",".join(sorted(states))
        raise _error(408, f"deadline_exceeded: machine did not reach {wanted}")

    def _acquire(
        self, client: FakeFlapsClient, request: _Request, machine_id: str
    ) -> _Response:
        body = _body(request) or {}
        raw_ttl = request.param("ttl") or body.get("ttl")
        description = body.get("description") or ""
        try:
            ttl = _parse_seconds(str(raw_ttl)) if raw_ttl else _DEFAULT_LEASE_TTL
        except ValueError as exc:
            raise _error(400, str(exc)) from None
        nonce = request.headers.get("fly-machine-lease-nonce", "")
        lease = client.acquire_lease(
            machine_id, ttl, description=str(description), nonce=nonce
        )
        return _json(201, _lease_json(lease))

    def _get_lease(self, client: FakeFlapsClient, machine_id: str) -> _Response:
        lease = client.get_lease(machine_id)
        if lease is None:
            raise _error(404, "lease not found")
        return _json(200, _lease_json(lease))

    def _release(
        self, client: FakeFlapsClient, nonce: str, machine_id: str
    ) -> _Response:
        client.release_lease(machine_id, nonce)
        return _json(200, {"status": "success", "data": {"ok": True}})

    # --- GraphQL ---

    @staticmethod
    def _graphql_action(body: bytes) -> str:
        try:
            payload = json.loads(body)
        except ValueError:
            return "graphql"
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, str):
            return "graphql"
        compact = re.sub(r"\s+", "", query)
        if "currentReleaseUnprocessed" in compact:
            return "get_app_current_release_machines"
        if "apps(" in compact:
            return "get_apps_for_organization"
        if "organization(slug:" in compact:
            return "get_organization_by_slug"
        return "graphql"

    def _graphql(self, request: _Request, action: str) -> _Response:
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise _gql_error("invalid JSON body", "INVALID", 400) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise _gql_error("the body needs a query string", "INVALID", 400)
        variables = payload.get("variables") or {}
        if not isinstance(variables, dict):
            raise _gql_error("variables must be an object", "INVALID", 400)
        query: str = payload["query"]
        if action == "graphql":
            raise _gql_error("unsupported query", "INVALID")
        try:
            if action == "get_organization_by_slug":
                slug = _gql_arg(query, "organization", "slug", variables)
                data: object = {"organization": self._gql_org(slug)}
            elif action == "get_apps_for_organization":
                data = {"apps": self._gql_apps(query, variables)}
            else:
                app = _gql_arg(query, "app", "name", variables)
                data = {"app": {"currentRelease": self._gql_release(app)}}
        except FlapsError as exc:
            status = exc.status if exc.status and exc.status >= 400 else 500
            raise _gql_error(exc.message, "SERVER_ERROR", status) from exc
        except _AnswerError:
            raise
        except Exception as exc:  # an error injected into the FakeFlyClient
            raise _gql_error(str(exc), "SERVER_ERROR") from exc
        return _json(200, {"data": data})

    def _gql_org(self, slug: str) -> dict[str, Any] | None:
        if self._fly.organization(slug) is None:
            return None
        org = self._fly.get_organization_by_slug(slug)
        return {
            "id": org.id,
            "internalNumericId": str(zlib.crc32(org.id.encode())),
            "slug": org.slug,
            "name": org.name,
            "type": org.type or ("PERSONAL" if org.slug == "personal" else "SHARED"),
            "billable": True,
            "limitedAccessTokens": {"nodes": []},
        }

    def _gql_apps(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        org_id = _gql_arg(query, "apps", "organizationId", variables)
        after = _gql_arg(query, "apps", "after", variables)
        first = _gql_arg(query, "apps", "first", variables)
        size = self.graphql_page_size
        if first.isdigit() and int(first) > 0:
            size = min(size, int(first))
        try:
            start = int(base64.b64decode(after, validate=True)) + 1 if after else 0
        except (ValueError, binascii.Error):
            raise _gql_error(f"invalid cursor {after!r}", "INVALID_ARGUMENTS") from None
        apps = self._fly.get_apps_for_organization(org_id)
        page = apps[start : start + size]
        nodes = []
        for app in page:
            node = app.to_api()
            node["hostname"] = node["hostname"] or f"{app.name}.fly.dev"
            node["platformVersion"] = node["platformVersion"] or "machines"
            node["status"] = node["status"] or "deployed"
            org = self._fly.organization(app.organization_slug)
            node["organization"]["name"] = org.name if org else app.organization_slug
            release = self._fly.get_app_current_release_machines(app.name)
            node["currentRelease"] = (
                None
                if release is None
                else {
                    "createdAt": release.created_at or self._created_at,
                    "status": release.status,
                }
            )
            nodes.append(node)
        end = start + len(page) - 1
        return {
            "pageInfo": {
                "hasNextPage": start + len(page) < len(apps),
                "endCursor": base64.b64encode(str(end).encode()).decode()
                if page
                else None,
            },
            "nodes": nodes,
        }

    def _gql_release(self, app: str) -> dict[str, Any] | None:
        with self._lock:
            known = app in self._apps
        if not known:
            errors = [
                {
                    "message": f'Could not find App "{app}"',
                    "path": ["app"],
                    "extensions": {"code": "NOT_FOUND"},
                }
            ]
            raise _AnswerError(_json(200, {"data": {"app": None}, "errors": errors}))
        release = self._fly.get_app_current_release_machines(app)
        if release is None:
            return None
        out = release.to_api()
        out["createdAt"] = out["createdAt"] or self._created_at
        out["user"] = {"id": "user-fake", "email": "fake@fly.io", "name": "Fake"}
        return out


def _gql_arg(
    query: str, field_name: str, arg: str, variables: Mapping[str, Any]
) -> str:
    """Return *arg* of *field_name* in *query*: a ``$variable`` or a literal."""
    compact = re.sub(r"\s+", "", query)
    call = re.search(rf"\b{field_name}\(([^)]*)\)", compact)
    if call is None:
        return ""
    found = re.search(rf'(?:^|,){arg}:(\$(\w+)|"((?:[^"\\]|\\.)*)"|(\w+))', call[1])
    if found is None:
        return ""
    if found[2] is not None:
        value = variables.get(found[2])
        return "" if value is None else str(value)
    return found[3] if found[3] is not None else found[4]


def _body(request: _Request) -> dict[str, Any] | None:
    """Return the JSON object in the body, ``None`` when empty.

    Raises:
        _AnswerError: 400 when the body is not a JSON object.
    """
    if not request.body.strip():
        return None
    try:
        payload = json.loads(request.body)
    except ValueError as exc:
        raise _error(400, f"invalid JSON body: {exc}") from None
    if not isinstance(payload, dict):
        raise _error(400, "the body must be a JSON object")
    return payload


def _machine_json(machine: Machine, *, summary: bool = False) -> dict[str, Any]:
    out = machine.to_api()
    if summary:
        for key in _SUMMARY_OMITS:
            out.pop(key, None)
    return out


def _lease_json(lease: Lease) -> dict[str, Any]:
    return {"status": "success", "data": lease.to_api()}


def _flaps_error(exc: FlapsError, *, lease: bool) -> _AnswerError:
    """Return the HTTP answer for an error a fake raised."""
    if isinstance(exc, FlapsTransportError):
        return _AnswerError(_Response(None))
    status = exc.status if exc.status is not None and exc.status >= 400 else 500
    if isinstance(exc, FlapsRateLimitedError):
        retry_after = max(1, math.ceil(exc.retry_after or 1))
        return _AnswerError(
            _json(429, {"error": exc.message}, ("Retry-After", str(retry_after)))
        )
    if lease and status == 409:
        return _AnswerError(
            _json(409, {"status": "error", "message": exc.message, "code": "invalid"})
        )
    if exc.error_status:
        body = {"error": exc.message, "status": exc.error_status}
        return _AnswerError(_json(status, body))
    return _error(status, exc.message)


class _HTTPServer(ThreadingHTTPServer):
    """The socket side: one thread per connection, all joined on close."""

    def __init__(self, fake: FakeMachinesServer) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._stopping = False
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: object,
    ) -> None:
        """Serve the connection in a daemon thread that server_close() joins.

        Daemon, so that a forgotten close() never keeps a process alive; the
        stdlib joins only non-daemon threads, hence this override.
        """
        port = self.server_address[1]
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"FakeMachinesServer:{port}:connection",
            daemon=True,
        )
        with self._conns_lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(worker)
        worker.start()

    def server_close(self) -> None:
        """Close the listening socket and join every connection's thread."""
        super().server_close()
        with self._conns_lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.join()

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)
            if self._stopping:
                _shutdown_read(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def stop_connections(self) -> None:
        """End every connection's wait for a next request (answers still go out)."""
        with self._conns_lock:
            self._stopping = True
            for conn in self._conns:
                _shutdown_read(conn)

    def handle_error(self, request: object, client_address: object) -> None:
        """Log a broken connection at DEBUG instead of printing a traceback."""
        del request, client_address
        _log.debug("fake_server.connection_error", exc_info=True)


def _shutdown_read(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer is buffered and goes out in one write when the handler returns
    # (handle_one_request flushes): one system call on each side instead of
    # two. Should headers and body ever go out in separate writes, TCP_NODELAY
    # keeps the body from waiting for the client's delayed ACK (about 40 ms).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    timeout = 300  # a forgotten idle connection ends eventually

    def setup(self) -> None:
        super().setup()
        cast("_HTTPServer", self.server).track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast("_HTTPServer", self.server).untrack(self.connection)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = cast("_HTTPServer", self.server).fake
        split = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        body = self.rfile.read(length) if length > 0 else b""
        request = _Request(
            method=self.command,
            path=split.path,
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if length < 0:
            response = _json(400, {"error": "invalid Content-Length"})
        else:
            response = fake._handle(request)  # noqa: SLF001 - the server's own half
        if response.status is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("fly-request-id", f"{uuid.uuid4().hex[:26]}-fake")
        self.send_header("Content-Type", "application/json")
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if _log.isEnabledFor(logging.DEBUG):  # formatting costs, at every request
            _log.debug("fake_server.http", extra={"line": format % args})
