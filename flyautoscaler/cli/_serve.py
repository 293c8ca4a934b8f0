"""``flyautoscaler serve``: the pool, ``/metrics`` and ``/healthz``, until a signal."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import select
import signal
import socket
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from types import FrameType
from typing import Final

from attrs import define, field
from prometheus_client import PLATFORM_COLLECTOR, CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from flyautoscaler._http import (
    default_user_agent,
    replica_user_agent,
    request_timeouts,
)
from flyautoscaler._log import get_logger
from flyautoscaler._pool import PoolState, ReconcilerPool
from flyautoscaler._protocols import MetricCollector
from flyautoscaler.cli._common import EXIT_OK, close_quietly, load
from flyautoscaler.cli._httpserver import MetricsServer, metrics_app
from flyautoscaler.cli._logging import configure_logging, secrets_of

__all__ = ["parse_listen_address", "serve"]

logger = get_logger("flyautoscaler.cli")


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``:9090``, ``127.0.0.1:0``, ``[::1]:9090``).

    An empty host means every interface, IPv4 and IPv6.

    Raises:
        ConfigError: The address has no valid port.
    """
    from flyautoscaler._errors import ConfigError  # noqa: PLC0415 - one use

    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"metrics address must be host:port (such as :9090), got {address!r}",
            field="metrics_address",
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _health(pool: ReconcilerPool) -> tuple[int, bytes]:
    """Return ``/healthz``'s status and JSON body for *pool*.

    200 with each app's last pass while the pool is healthy; 503 with a small
    body naming each unhealthy app (and dead thread) and why otherwise.
    """
    health = pool.health()
    if not health.healthy:
        problem: dict[str, object] = {
            "status": "unavailable"
            if health.state is not PoolState.RUNNING
            else "unhealthy",
            "state": health.state.value,
        }
        if health.apps:
            problem["unhealthy_apps"] = health.apps
        if health.threads:
            problem["dead_threads"] = health.threads
        return HTTPStatus.SERVICE_UNAVAILABLE, _json_line(problem)
    apps = {
        name: {
            "passes": status.passes,
            "skipped": status.skipped,
            "errors": {k: v for k, v in status.errors.items() if v},
            "last_duration": round(status.last_duration, 3),
            "last_lag": round(status.last_lag, 3),
            "metrics": status.metrics,
            "ok": status.last_ok,
            "error": status.last_error or None,
            "consecutive_failures": status.consecutive_failures,
            **(
                {}
                if pool.coordinator is None
                else {"owner": status.owner, "owned": status.owned}
            ),
        }
        for name, status in pool.app_status().items()
    }
    body: dict[str, object] = {
        "status": "ok",
        "state": health.state.value,
        "passes": pool.pass_count,
        "apps": apps,
    }
    if pool.coordinator is not None:
        body["replica"] = pool.replica_id
        body["replicas"] = pool.replicas
    return HTTPStatus.OK, _json_line(body)


def _json_line(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, default=str).encode() + b"\n"


#: Longest one wait for a signal lasts before it looks again (a safety net: a
#: signal wakes the wait at once through the wakeup socket).
_SIGNAL_POLL: Final = 1.0


@define
class _Signals:
    """SIGINT and SIGTERM as they arrive, and a wait for the first one.

    The handler only records the signal. It must not take a lock: a handler
    that set a :class:`threading.Event` would deadlock when the signal came
    while the main thread, waiting on that same event, held its lock (seen:
    ``serve`` hung after SIGTERM). The wait is woken by the byte Python's own
    signal handling writes to a wakeup socket (:func:`signal.set_wakeup_fd`).
    """

    _wakeup: socket.socket
    received: list[str] = field(factory=list)

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        """Record *signum* (a signal handler: no lock, no I/O)."""
        self.received.append(signal.Signals(signum).name)

    def wait(self) -> None:
        """Return once a signal was received."""
        while not self.received:  # bounded: ends with the first signal
            select.select([self._wakeup], [], [], _SIGNAL_POLL)
            with contextlib.suppress(OSError):
                self._wakeup.recv(4096)


@contextlib.contextmanager
def _signals_set() -> Iterator[_Signals]:
    """Record SIGINT and SIGTERM while inside; yield what waits for them."""
    reader, writer = socket.socketpair()
    reader.settimeout(0)  # non-blocking, as set_wakeup_fd requires
    writer.settimeout(0)
    signals = _Signals(reader)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {
        sig: signal.signal(sig, signals.handle)
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()


def serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from flyautoscaler.fly import (  # noqa: PLC0415 - only serve needs them
        FlyGraphQLClient,
        new_flaps_client_func,
    )

    config = load(args, environ)
    configure_logging(
        verbose=config.verbose,
        secrets=secrets_of(config),
        level=getattr(args, "log_level", None),
    )
    config.validate(require_token=True)
    host, port = parse_listen_address(config.metrics_address)
    collectors: list[MetricCollector] = config.build_collectors(environ)
    stop_metric = config.build_stop_metric_collector(environ)
    coordinator = config.build_coordinator()
    # Each replica's requests say which replica sent them.
    user_agent = (
        default_user_agent()
        if coordinator is None
        else replica_user_agent(coordinator.replica_id)
    )
    fly_client = FlyGraphQLClient(
        config.api_token, base_url=config.api_base_url, user_agent=user_agent
    )
    flaps = new_flaps_client_func(
        config.api_token,
        base_url=config.flaps_base_url,
        timeout=request_timeouts(config.request_timeout),
        user_agent=user_agent,
    )
    pool = ReconcilerPool(
        fly_client,
        concurrency=config.concurrency,
        reconcile_timeout=config.timeout,
        reconcile_interval=config.interval,
        app_list_refresh_interval=config.app_list_refresh_interval,
        app_name=config.app_name,
        organization_slug=config.org,
        new_flaps_client=flaps,
        # One set of collectors, shared by every app (as in the Go original).
        new_reconciler=functools.partial(
            config.new_reconciler, collectors, stop_metric
        ),
        unhealthy_after=config.unhealthy_after,
        release_timeout=config.release_timeout,
        coordinator=coordinator,
        request_timeout=sum(flaps.timeout),
    )
    registry = CollectorRegistry()
    pool.register_prom_metrics(registry)
    ProcessCollector(registry=registry)
    registry.register(PLATFORM_COLLECTOR)
    server: MetricsServer | None = None
    try:
        with _signals_set() as signals:
            app = metrics_app(registry, functools.partial(_health, pool))
            server = MetricsServer(host, port, app)
            bound_host, bound_port = server.server_address[:2]
            logger.info(
                "serve.listening",
                extra={
                    "address": _format_address(str(bound_host), int(bound_port)),
                    "paths": ["/metrics", "/healthz"],
                    "max_connections": server.max_connections,
                    "timeout": server.connection_timeout,
                },
            )
            server.start()
            pool.open()
            logger.info(
                "serve.started",
                extra={
                    "app": config.app_name,
                    "org": config.org,
                    "interval": config.interval,
                    "timeout": config.timeout,
                    "request_timeout": config.request_timeout,
                    "concurrency": config.concurrency,
                    "collectors": config.metric_names(),
                    "regions": config.regions,
                    "process_group": config.process_group,
                    "created_count": {
                        "min": config.min_created_expr() or None,
                        "max": config.max_created_expr() or None,
                    },
                    "started_count": {
                        "min": config.min_started_expr() or None,
                        "max": config.max_started_expr() or None,
                    },
                    "behaviour": _behaviour(pool),
                    "replica": pool.replica_id,
                },
            )
            signals.wait()
            logger.info("serve.stopping", extra={"signals": signals.received})
            pool.close()
    finally:
        pool.close()
        if server is not None:
            server.close()
        for thing in (flaps, fly_client, *collectors, stop_metric, coordinator):
            close_quietly(thing)
    logger.info("serve.stopped")
    return EXIT_OK


# The Reconciler's scaling behaviour fields the start-up line shows.
_BEHAVIOUR_FIELDS: Final = (
    "scale_down_stabilization",
    "scale_up_stabilization",
    "max_scale_up_step",
    "max_scale_down_step",
    "fallback_after",
    "fallback_started_machine_n",
    "stop_mode",
    "machine_leases",
)


def _behaviour(pool: ReconcilerPool) -> dict[str, object]:
    """Return the scaling behaviour *pool* runs with, for the start-up line.

    As its reconcilers are built (and the pool holds it): what runs, not
    what was read.
    """
    reconciler = pool.new_reconciler()
    stop_metric = reconciler.stop_metric_collector
    behaviour = {name: getattr(reconciler, name) for name in _BEHAVIOUR_FIELDS}
    behaviour["stop_metric"] = None if stop_metric is None else stop_metric.name
    behaviour["release_timeout"] = pool.release_timeout
    return behaviour


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
