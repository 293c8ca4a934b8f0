"""The metrics listener (MetricsServer, metrics_app) over real HTTP on loopback."""

from __future__ import annotations

import errno
import gzip
import http.client
import json
import logging
import select
import socket
import struct
import threading
import time
import wsgiref.util
import wsgiref.validate
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from flyautoscaler.cli._httpserver import MetricsServer, metrics_app
from servers import ipv6_loopback

WAIT = 30.0  # a bound for what must happen, never a measure of speed
HEALTH_BODY = b'{"status": "ok"}\n'


# --- helpers --------------------------------------------------------------------------


class Records(logging.Handler):
    """Collects the listener's log records; lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def named(self, event: str) -> list[logging.LogRecord]:
        """The records whose event is *event*."""
        with self._changed:
            return [r for r in self.records if r.msg == event]

    def wait_for(self, event: str, count: int = 1) -> list[logging.LogRecord]:
        """Wait until *count* records of *event* arrived; return them."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: len([r for r in self.records if r.msg == event]) >= count,
                timeout=WAIT,
            ):
                pytest.fail(f"no {event} record; got {[r.msg for r in self.records]}")
        return self.named(event)


@pytest.fixture
def records() -> Iterator[Records]:
    """The records of the 'flyautoscaler.cli' logger, DEBUG and up."""
    handler = Records()
    log = logging.getLogger("flyautoscaler.cli")
    level = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll *predicate* until it holds; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        pause.wait(0.005)


def make_registry() -> CollectorRegistry:
    """A registry with one counter at 3."""
    registry = CollectorRegistry()
    Counter("fas_test_events", "Test events.", registry=registry).inc(3)
    return registry


def ok_health() -> tuple[int, bytes]:
    """A healthy answer."""
    return 200, HEALTH_BODY


@pytest.fixture
def start() -> Iterator[Callable[..., MetricsServer]]:
    """Start a MetricsServer on 127.0.0.1 (by default); close it afterwards."""
    servers: list[MetricsServer] = []

    def start(
        host: str = "127.0.0.1",
        health: Callable[[], tuple[int, bytes]] = ok_health,
        **options: float,
    ) -> MetricsServer:
        app = metrics_app(make_registry(), health)
        server = MetricsServer(host, 0, app, **options)  # type: ignore[arg-type]
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


def port_of(server: MetricsServer) -> int:
    """The port the server is bound to."""
    return int(server.server_address[1])


def connect(
    server: MetricsServer, host: str = "127.0.0.1"
) -> http.client.HTTPConnection:
    """A keep-alive HTTP connection to *server*."""
    return http.client.HTTPConnection(host, port_of(server), timeout=WAIT)


def get(
    server: MetricsServer,
    path: str,
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """GET *path* on a new connection; return the response and its body."""
    conn = connect(server, host)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def http_threads() -> list[threading.Thread]:
    """The live threads of the listener."""
    return [t for t in threading.enumerate() if t.name.startswith("flyautoscaler-http")]


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes *sock* (EOF or reset); False on our timeout."""
    sock.settimeout(WAIT)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


# --- routes ---------------------------------------------------------------------------


def test_routes(start):
    """/metrics is the registry, /healthz the health callable, the rest 404."""
    server = start(health=lambda: (503, b'{"status": "unavailable"}\n'))
    response, body = get(server, "/metrics")
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/plain; version=")
    assert b"fas_test_events_total 3.0" in body
    response, body = get(server, "/healthz")
    assert response.status == 503
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"status": "unavailable"}
    response, body = get(server, "/nope")
    assert response.status == 404
    assert body == b"not found\n"


def test_app_is_valid_wsgi():
    """The app passes wsgiref's WSGI validator on each route."""
    app = wsgiref.validate.validator(metrics_app(make_registry(), ok_health))
    for path, status in [("/metrics", "200"), ("/healthz", "200"), ("/x", "404")]:
        environ: dict[str, object] = {
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
        }
        wsgiref.util.setup_testing_defaults(environ)
        seen: list[str] = []

        def start_response(status_line, headers, exc_info=None, seen=seen):
            seen.append(status_line)
            return lambda data: None

        result = app(environ, start_response)
        b"".join(result)
        result.close()
        assert seen[0].startswith(status)


def test_health_methods(start):
    """HEAD /healthz has the length and no body; POST is 405 and closes."""
    server = start()
    conn = connect(server)
    try:
        conn.request("HEAD", "/healthz")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(len(HEALTH_BODY))
        assert response.read() == b""
        conn.request("POST", "/healthz", body=b"x=1")
        response = conn.getresponse()
        assert response.status == 405
        assert response.getheader("Allow") == "GET, HEAD"
        assert response.getheader("Connection") == "close"  # its body was not read
        response.read()
    finally:
        conn.close()


def test_keep_alive(start):
    """Two requests on one connection are both answered on that connection."""
    server = start()
    conn = connect(server)
    try:
        conn.request("GET", "/metrics")
        first = conn.getresponse()
        assert first.status == 200
        first.read()
        sock = conn.sock
        assert sock is not None
        conn.request("GET", "/healthz")
        second = conn.getresponse()
        assert second.status == 200
        assert second.read() == HEALTH_BODY
        assert conn.sock is sock
        assert not second.will_close
    finally:
        conn.close()


def test_metrics_gzip(start):
    """/metrics asked with Accept-Encoding: gzip is gzip-encoded."""
    server = start()
    response, body = get(server, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert b"fas_test_events_total 3.0" in gzip.decompress(body)
    assert response.getheader("Content-Length") == str(len(body))


def test_metrics_openmetrics(start):
    """/metrics negotiates OpenMetrics from the Accept header."""
    server = start()
    accept = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    response, body = get(server, "/metrics", headers={"Accept": accept})
    assert response.status == 200
    content_type = response.getheader("Content-Type", "")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"fas_test_events_total 3.0" in body


# --- addresses ------------------------------------------------------------------------


def test_empty_host_is_dual_stack(start):
    """An empty host answers on both 127.0.0.1 and ::1."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    server = start(host="")
    assert server.dual_stack
    assert server.server_address[0] == "::"
    for host in ("127.0.0.1", "::1"):
        response, body = get(server, "/healthz", host=host)
        assert response.status == 200
        assert body == HEALTH_BODY


def test_ipv4_host_binds_ipv4_only(start):
    """An explicit IPv4 host binds only that address."""
    server = start(host="127.0.0.1")
    assert not server.dual_stack
    assert get(server, "/healthz")[0].status == 200
    if ipv6_loopback():
        with pytest.raises(ConnectionRefusedError):
            get(server, "/healthz", host="::1")


def test_ipv6_host_binds_ipv6_only(start):
    """An explicit IPv6 host binds only that address."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    server = start(host="::1")
    assert get(server, "/healthz", host="::1")[0].status == 200
    with pytest.raises(ConnectionRefusedError):
        get(server, "/healthz", host="127.0.0.1")


class NoIPv6Server(MetricsServer):
    """A MetricsServer on a machine whose kernel has no IPv6."""

    def server_bind(self) -> None:
        """Fail as an IPv6-less kernel does for an AF_INET6 socket."""
        if self.address_family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported")
        super().server_bind()


def test_empty_host_falls_back_to_ipv4(records):
    """Without IPv6, an empty host binds 0.0.0.0 and says so in the log."""
    server = NoIPv6Server("", 0, metrics_app(make_registry(), ok_health))
    try:
        server.start()
        assert not server.dual_stack
        assert server.server_address[0] == "0.0.0.0"  # noqa: S104 - the fallback
        assert get(server, "/healthz")[0].status == 200
    finally:
        server.close()
    (warning,) = records.named("serve.ipv6_unavailable")
    assert warning.levelno == logging.WARNING
    assert warning.address == f"0.0.0.0:{port_of(server)}"  # type: ignore[attr-defined]


def test_address_in_use_is_not_a_fallback(start):
    """A port already taken is an error, not a reason to fall back to IPv4."""
    server = start()
    with pytest.raises(OSError, match="in use") as info:
        MetricsServer(
            "127.0.0.1", port_of(server), metrics_app(make_registry(), ok_health)
        )
    assert info.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize(
    ("options", "message"),
    [({"max_connections": 0}, "max_connections"), ({"timeout": 0}, "timeout")],
)
def test_invalid_options(options, message):
    """A zero bound or timeout is refused."""
    with pytest.raises(ValueError, match=message):
        MetricsServer(
            "127.0.0.1", 0, metrics_app(make_registry(), ok_health), **options
        )


# --- timeouts and the bound -----------------------------------------------------------


def test_idle_connection_is_closed_after_the_timeout(start, records):
    """A connection that never sends a request is closed after the timeout."""
    server = start(timeout=0.3)
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        assert closed_by_server(sock)
    (record,) = records.wait_for("serve.http_timeout")
    assert record.idle is True  # type: ignore[attr-defined]


def test_idle_keep_alive_connection_is_closed(start):
    """After an answer, a keep-alive connection left idle is closed."""
    server = start(timeout=0.3)
    conn = connect(server)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        assert conn.sock is not None
        assert closed_by_server(conn.sock)
    finally:
        conn.close()


def test_trickled_headers_are_cut_off(start, records):
    """A client sending a header line now and then is cut off at the timeout."""
    server = start(timeout=0.5)
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        deadline = time.monotonic() + WAIT
        closed = False
        while not closed and time.monotonic() < deadline:
            # Each line comes well within the timeout of the one before.
            readable, _, _ = select.select([sock], [], [], 0.05)
            try:
                if readable:
                    closed = sock.recv(65536) == b""
                    assert closed, "the server answered a request never finished"
                else:
                    sock.sendall(b"X-Slow: 1\r\n")
            except (ConnectionResetError, BrokenPipeError):
                closed = True
        assert closed
    (record,) = records.wait_for("serve.http_timeout")
    assert record.idle is False  # type: ignore[attr-defined]


def test_idle_connections_beyond_the_bound(start):
    """Idle connections beyond the bound hold no thread; /metrics answers later."""
    server = start(max_connections=2, timeout=0.5)
    assert len(http_threads()) == 3  # two workers and the accepting thread
    idle = []
    try:
        for _ in range(4):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port_of(server)))
            idle.append(sock)
        # Both workers busy with idle clients, the other two in the backlog.
        wait_until(lambda: len(server._connections) == 2 and not server._free_workers)
        assert len(http_threads()) == 3
        response, body = get(server, "/metrics")  # waits for the idle ones to go
        assert response.status == 200
        assert b"fas_test_events_total" in body
        assert len(http_threads()) == 3
        for sock in idle:
            sock.setblocking(True)
            assert closed_by_server(sock)
    finally:
        for sock in idle:
            sock.close()


def test_excess_connection_waits_for_a_worker(start):
    """With every worker busy, a new connection waits and is served once one frees."""
    server = start(max_connections=1, timeout=60)
    with socket.create_connection(("127.0.0.1", port_of(server))):
        wait_until(lambda: len(server._connections) == 1)
        waiting = socket.create_connection(("127.0.0.1", port_of(server)))
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server._free_workers == 0
    with waiting:  # the busy client left: its worker takes the waiting one
        waiting.settimeout(WAIT)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    assert len(http_threads()) == 2


# --- errors are log records -----------------------------------------------------------


def test_client_gone_mid_response(start, records, capfd):
    """A client resetting mid-answer is a DEBUG record, not a traceback."""
    big = b"x" * (16 << 20)  # far more than the socket buffers hold
    server = start(health=lambda: (200, big))
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", port_of(server)))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    (record,) = records.wait_for("serve.http_client_gone")
    assert record.levelno == logging.DEBUG
    assert get(server, "/metrics")[0].status == 200  # still serving
    assert capfd.readouterr().err == ""


def test_app_error_is_a_500_and_a_record(start, records, capfd):
    """An exception in the app is a 500 and an ERROR record; the connection lives."""
    calls = []

    def health() -> tuple[int, bytes]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("health exploded")
        return 200, HEALTH_BODY

    server = start(health=health)
    conn = connect(server)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 500
        assert response.read() == b"internal server error\n"
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == HEALTH_BODY
    finally:
        conn.close()
    (record,) = records.named("serve.http_error")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "health exploded" in record.error  # type: ignore[attr-defined]
    assert capfd.readouterr().err == ""


def test_bad_request_is_logged_not_printed(start, records, capfd):
    """A request refused by the parser is a DEBUG record, nothing on stderr."""
    server = start()
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n")
        sock.settimeout(WAIT)
        assert sock.recv(65536).startswith(b"HTTP/1.1 431 ")
    records.wait_for("serve.http_refused")
    assert capfd.readouterr().err == ""


def test_requests_are_debug_records(start, records):
    """Each answered request is a DEBUG serve.http_request record."""
    server = start()
    get(server, "/healthz")
    (record,) = records.wait_for("serve.http_request")
    assert record.levelno == logging.DEBUG
    assert record.request == "GET /healthz HTTP/1.1"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]


# --- lifecycle ------------------------------------------------------------------------


def test_close_ends_idle_connections_at_once(start):
    """close() does not wait for an idle client's timeout; no thread is left."""
    server = start(timeout=600)
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        wait_until(lambda: len(server._connections) == 1)
        server.close(timeout=WAIT)  # far below the 600 s connection timeout
        assert not any(t.is_alive() for t in server._threads)
        assert closed_by_server(sock)
    assert http_threads() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port_of(server))).close()


def test_lifecycle():
    """start() once; close() is idempotent and also works before start()."""
    app = metrics_app(make_registry(), ok_health)
    never_started = MetricsServer("127.0.0.1", 0, app)
    never_started.close()
    never_started.close()
    with pytest.raises(RuntimeError, match="closed"):
        never_started.start()
    with MetricsServer("127.0.0.1", 0, app) as server:
        server.start()
        with pytest.raises(RuntimeError, match="running"):
            server.start()
        assert get(server, "/healthz")[0].status == 200
    assert server.closing
    assert http_threads() == []
