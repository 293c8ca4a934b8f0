"""The HTTP listener of ``flyautoscaler serve``: ``/metrics`` and ``/healthz``.

:func:`metrics_app` is a WSGI application: ``/metrics`` is ``prometheus_client``'s
own app (content negotiation, OpenMetrics, gzip), ``/healthz`` answers what a health
callable returns, anything else is 404.

:class:`MetricsServer` serves it with the standard library (``socketserver`` and
``http.server``), made safe to face a network:

- An empty host listens on every interface, IPv4 and IPv6 (one ``::`` socket with
  ``IPV6_V6ONLY`` off, as Go's ``:9090`` does); without IPv6 it falls back to
  ``0.0.0.0`` and logs ``serve.ipv6_unavailable``. A named host binds just that.
- A fixed pool of ``max_connections`` worker threads, one connection each. A
  connection is accepted only when a worker is free: the others wait in the
  kernel's listen backlog, so idle or slow clients cost neither threads nor file
  descriptors in the process.
- Each request must arrive whole (request line and headers) within ``timeout``
  seconds of the server starting to wait for it, idle keep-alive time included;
  each write of the answer gets ``timeout`` seconds too. A late client is
  disconnected.
- Keep-alive (HTTP/1.1), ``TCP_NODELAY`` on every connection.
- A client that goes away is logged at DEBUG (``serve.http_client_gone``); any
  other failure is a log record (``serve.http_error``), never a traceback on
  stderr.
- :meth:`MetricsServer.close` stops accepting, ends idle connections at once, lets
  answers in progress finish and waits a bounded time for the workers (daemon
  threads, so a stuck one never holds the process).
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import queue
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, make_wsgi_app

from flyautoscaler._log import get_logger

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo, ReadableBuffer, WriteableBuffer

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "HealthCheck",
    "MetricsServer",
    "metrics_app",
]

logger = get_logger("flyautoscaler.cli")

#: Connections served at once; more wait in the listen backlog.
DEFAULT_MAX_CONNECTIONS: Final = 16
#: Seconds a client has to send a whole request (idle keep-alive time included),
#: and to take each write of the answer.
DEFAULT_TIMEOUT: Final = 5.0

#: How often the accepting thread checks whether it should stop.
_POLL_INTERVAL: Final = 0.2
#: How long to wait before accepting again after accept() failed (EMFILE, ...).
_ACCEPT_BACKOFF: Final = 1.0
#: Errors that mean IPv6 cannot be used on this machine.
_NO_IPV6: Final = frozenset(
    {errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT, errno.ENOPROTOOPT}
)
#: The client closed or reset the connection.
_CLIENT_GONE: Final = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
#: Response headers the server sets itself.
_SERVER_HEADERS: Final = frozenset(
    {"connection", "content-length", "transfer-encoding"}
)

#: The health callable: the HTTP status and the JSON body.
HealthCheck = Callable[[], tuple[int, bytes]]


# --- the application ------------------------------------------------------------------


def metrics_app(registry: CollectorRegistry, health: HealthCheck) -> WSGIApplication:
    """Return the WSGI app serving ``/metrics``, ``/healthz`` and 404 otherwise.

    Args:
        registry: The registry ``/metrics`` exposes, through
            ``prometheus_client.make_wsgi_app`` (text or OpenMetrics by the
            ``Accept`` header, gzip by ``Accept-Encoding``; GET only).
        health: Called for each ``GET /healthz``; returns the status and the
            JSON body to send.
    """
    metrics: WSGIApplication = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            if environ["REQUEST_METHOD"] not in {"GET", "HEAD"}:
                return _plain(start_response, HTTPStatus.METHOD_NOT_ALLOWED)
            status, body = health()
            start_response(
                _status_line(status),
                [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            )
            return [body]
        return _plain(start_response, HTTPStatus.NOT_FOUND)

    return app


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _plain(start_response: StartResponse, status: HTTPStatus) -> list[bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        headers.append(("Allow", "GET, HEAD"))
    start_response(_status_line(status), headers)
    return [f"{status.phrase.lower()}\n".encode()]


# --- the server -----------------------------------------------------------------------


class MetricsServer(socketserver.TCPServer):
    """Serve a WSGI app on a bounded pool of threads; see the module docstring.

    The socket is bound and listening once the constructor returns (so
    ``server_address`` has the port picked for port 0); :meth:`start` starts
    serving, :meth:`close` stops. ``with MetricsServer(...) as server:`` closes
    on exit.

    Args:
        host: The address to bind; empty for every interface (dual-stack).
        port: The port; 0 picks a free one.
        app: The WSGI application to serve.
        max_connections: Connections served at once (the number of worker
            threads); others wait in the listen backlog.
        timeout: Seconds a client has to send each request (idle time
            included) and to take each write of an answer.

    Raises:
        ValueError: *max_connections* is below 1 or *timeout* is not positive.
        OSError: The address cannot be bound.
    """

    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApplication,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if max_connections < 1:
            raise ValueError(
                f"max_connections must be at least 1, got {max_connections}"
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.app = app
        self.max_connections = max_connections
        self.connection_timeout = float(timeout)
        # Connections waiting for a worker queue in the kernel, not here.
        self.request_queue_size = max_connections
        self.dual_stack = False
        self._lock = threading.Lock()
        self._worker_free = threading.Condition(self._lock)
        self._free_workers = max_connections
        self._connections: set[socket.socket] = set()
        self._handoff: queue.SimpleQueue[tuple[socket.socket, Any] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._state = "new"  # -> "running" -> "closed"
        self._stopping = threading.Event()
        if host:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._bind(family, host, port)
            return
        try:
            self.dual_stack = True
            self._bind(socket.AF_INET6, "::", port)
        except OSError as exc:
            self.dual_stack = False
            if exc.errno not in _NO_IPV6:
                raise
            self._bind(socket.AF_INET, "0.0.0.0", port)  # noqa: S104 - asked for
            logger.warning(
                "serve.ipv6_unavailable",
                extra={
                    "error": str(exc),
                    "address": f"0.0.0.0:{self.server_address[1]}",
                },
            )

    def _bind(self, family: socket.AddressFamily, host: str, port: int) -> None:
        self.address_family = family
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind the socket; a dual-stack one accepts IPv4 too."""
        if self.dual_stack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def server_activate(self) -> None:
        """Listen; accept() never blocks (another thread may have taken the client)."""
        super().server_activate()
        self.socket.setblocking(False)  # noqa: FBT003 - the stdlib's signature

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._stopping.is_set()

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads and the accepting thread.

        Raises:
            RuntimeError: The server was already started or closed.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"cannot start a {self._state} MetricsServer")
            self._state = "running"
        for index in range(self.max_connections):
            self._threads.append(
                threading.Thread(
                    target=self._work, name=f"flyautoscaler-http-{index}", daemon=True
                )
            )
        self._threads.append(
            threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name="flyautoscaler-http",
                daemon=True,
            )
        )
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop serving and close the socket; safe to call more than once.

        Connections waiting for a request are closed at once; answers being
        written may finish.

        Args:
            timeout: Seconds to wait for the threads (default: the connection
                timeout). Threads still running then are left behind (they are
                daemon threads) and ``serve.http_close_timeout`` is logged.
        """
        with self._worker_free:
            if self._state == "closed":
                return
            started = self._state == "running"
            self._state = "closed"
            self._stopping.set()
            self._worker_free.notify_all()
            connections = list(self._connections)
        if started:
            self.shutdown()  # the accepting thread: at most one poll interval
        for connection in connections:
            # Wakes a worker waiting for the next request; an answer being
            # written is not affected.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)
        for _ in range(self.max_connections):
            self._handoff.put(None)
        deadline = time.monotonic() + (
            self.connection_timeout if timeout is None else timeout
        )
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        if stuck:
            logger.warning("serve.http_close_timeout", extra={"threads": stuck})
        self.server_close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- socketserver hooks -----------------------------------------------------------

    def get_request(self) -> tuple[socket.socket, Any]:
        """Wait for a free worker, then accept a connection.

        Raises:
            OSError: Nothing to accept or closing; ``serve_forever`` tries again.
        """
        with self._worker_free:
            while not self._free_workers and not self._stopping.is_set():
                self._worker_free.wait()
            if self._stopping.is_set():
                raise OSError("the server is closing")
            self._free_workers -= 1
        try:
            connection, address = self.socket.accept()
        except OSError as exc:
            self._release_worker()
            if not isinstance(exc, BlockingIOError | InterruptedError):
                logger.warning(
                    "serve.http_accept_failed",
                    extra={"error": str(exc), "retry_in": _ACCEPT_BACKOFF},
                )
                self._stopping.wait(_ACCEPT_BACKOFF)
            raise
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - socketserver's signature
        """Hand the accepted connection to a free worker."""
        self._handoff.put((request, client_address))

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ANN401, ARG002 - socketserver's signature
        """Log the exception being handled (never print it)."""
        exc = sys.exc_info()[1]
        client = _client(client_address)
        if isinstance(exc, _CLIENT_GONE):
            logger.debug(
                "serve.http_client_gone", extra={"client": client, "error": str(exc)}
            )
        else:
            logger.error(
                "serve.http_error",
                exc_info=exc,
                extra={"client": client, "error": repr(exc)},
            )

    # --- workers ----------------------------------------------------------------------

    def _release_worker(self) -> None:
        with self._worker_free:
            self._free_workers += 1
            self._worker_free.notify()

    def _work(self) -> None:
        while (item := self._handoff.get()) is not None:
            connection, address = item
            try:
                with self._lock:
                    serve = not self._stopping.is_set()
                    if serve:
                        self._connections.add(connection)
                if serve:
                    self.finish_request(connection, address)
            except Exception:  # noqa: BLE001 - logged by handle_error
                self.handle_error(connection, address)
            finally:
                with self._lock:
                    self._connections.discard(connection)
                self.shutdown_request(connection)
                self._release_worker()


def _client(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


# --- one connection -------------------------------------------------------------------


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, raising ``TimeoutError`` once :attr:`deadline` has passed.

    A per-read socket timeout alone would let a client keep a worker forever by
    sending a byte now and then.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = math.inf
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(remaining)
        count = self._sock.recv_into(buffer)
        self.received += count
        return count


class _SocketWriter(io.BufferedIOBase):
    """Writes all of each buffer, taking at most *timeout* seconds per write."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self._timeout = timeout

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        self._sock.settimeout(self._timeout)
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class _ErrorStream(io.TextIOBase):
    """``wsgi.errors``: what the app writes becomes a warning log record."""

    def write(self, text: str) -> int:
        if text.strip():
            logger.warning("serve.http_app_message", extra={"text": text.strip()})
        return len(text)


def _call_app(
    app: WSGIApplication, environ: WSGIEnvironment
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run *app*; return its status line, headers and whole body.

    Nothing is sent before the app returns, so a start_response() call with
    ``exc_info`` simply replaces the status and headers.

    Raises:
        RuntimeError: The app never called start_response().
    """
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,  # noqa: ARG001 - nothing is sent yet
    ) -> Callable[[bytes], object]:
        started[:] = [(status, list(headers))]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if callable(close):
            close()
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response()")
    status, headers = started[0]
    return status, headers, b"".join(chunks)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, running the server's WSGI app for every method."""

    server: MetricsServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = _SocketWriter(self.connection, self.server.connection_timeout)

    def handle_one_request(self) -> None:
        """Read one request and answer it, or close the connection."""
        self._reader.deadline = time.monotonic() + self.server.connection_timeout
        self._reader.received = 0
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:  # the client (or close()) ended it
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.parse_request():  # it answered 400, 431, 505, ...
                return
            self._answer()
        except TimeoutError:
            self.close_connection = True
            logger.debug(
                "serve.http_timeout",
                extra={
                    "client": _client(self.client_address),
                    "idle": not self._reader.received,
                    "timeout": self.server.connection_timeout,
                },
            )
        except _CLIENT_GONE as exc:
            self.close_connection = True
            logger.debug(
                "serve.http_client_gone",
                extra={"client": _client(self.client_address), "error": str(exc)},
            )

    def _answer(self) -> None:
        status, headers, body = self._run_app()
        code, _, reason = status.partition(" ")
        if self.headers.get("Content-Length", "0") != "0" or self.headers.get(
            "Transfer-Encoding"
        ):
            # The app did not read the body: the connection is out of step.
            self.close_connection = True
        if self.server.closing:
            self.close_connection = True
        self.send_response(int(code), reason or None)
        for name, value in headers:
            if name.lower() not in _SERVER_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _run_app(self) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            return _call_app(self.server.app, self._environ())
        except Exception as exc:
            logger.exception(
                "serve.http_error",
                extra={
                    "client": _client(self.client_address),
                    "method": self.command,
                    "path": self.path,
                    "error": repr(exc),
                },
            )
            return (
                _status_line(HTTPStatus.INTERNAL_SERVER_ERROR),
                [("Content-Type", "text/plain; charset=utf-8")],
                b"internal server error\n",
            )

    def _environ(self) -> WSGIEnvironment:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: WSGIEnvironment = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": str(self.client_address[0]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": self.rfile,
            "wsgi.errors": _ErrorStream(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key not in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
                key = f"HTTP_{key}"
            if key in environ:
                environ[key] += f",{value.strip()}"
            else:
                environ[key] = value.strip()
        return environ

    def version_string(self) -> str:
        return "flyautoscaler"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # noqa: ARG002
        logger.debug(
            "serve.http_request",
            extra={
                "request": self.requestline,
                "status": int(code) if str(code).isdigit() else code,
                "client": _client(self.client_address),
            },
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401
        logger.debug(
            "serve.http_refused",
            extra={"detail": format % args, "client": _client(self.client_address)},
        )
