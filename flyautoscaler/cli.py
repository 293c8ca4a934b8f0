"""The ``flyautoscaler`` command: ``serve``, ``eval``, ``version``, ``simulate``.

Exit status: 0 on success, 1 on an error (one line on stderr, ``error: ...``,
without a traceback for configuration, expression, collection and API errors),
2 on a usage error. This is the only place that configures logging.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from types import FrameType, ModuleType
from typing import Final, TextIO

from prometheus_client import PLATFORM_COLLECTOR, CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from flyautoscaler._errors import ExpressionError, FlyAutoscalerError, Scrubber, redact
from flyautoscaler._httpserver import MetricsServer, metrics_app
from flyautoscaler._pool import PoolState, ReconcilerPool
from flyautoscaler._protocols import MetricCollector
from flyautoscaler._validation import check_app_name
from flyautoscaler.config import Config, load_config
from flyautoscaler.config._model import secrets as configured_secrets

__all__ = ["JSONFormatter", "build_parser", "main", "parse_listen_address"]

logger = logging.getLogger("flyautoscaler.cli")

PROG: Final = "flyautoscaler"
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2

_DESCRIPTION: Final = """\
flyautoscaler scales the Machines of a Fly.io app (or of every app matching a
wildcard) from metrics: it collects them, evaluates the count expressions and
creates, destroys, starts or stops Machines to match. It reads the same FAS_*
environment variables and YAML file as the Go fly-autoscaler.
"""

# --- logging -------------------------------------------------------------------

# Attributes every LogRecord has; anything else came from ``extra``.
_RECORD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, logger, and the extras.

    Every string passes through :func:`~flyautoscaler._errors.redact`
    (``Bearer``/``FlyV1`` credentials, Fly macaroons), and each of *secrets*
    is replaced wherever it appears.

    Args:
        secrets: Exact strings never to write (the configured tokens).
    """

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self._scrubber = Scrubber(secrets, min_length=4)

    def scrub(self, text: str) -> str:
        """Return *text* without credentials."""
        return self._scrubber(text)

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        return self.scrub(str(value))

    def format(self, record: logging.LogRecord) -> str:
        """Return *record* as one line of JSON."""
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(self._clean(entry), ensure_ascii=False, default=str)


def configure_logging(
    *,
    verbose: bool,
    secrets: Sequence[str] = (),
    quiet: bool = False,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send log records to *stream* (stderr) as JSON lines; return the handler.

    flyautoscaler's loggers log at DEBUG with *verbose*; otherwise every logger
    logs at INFO, or at ERROR when *quiet* (``eval``, whose errors are reported
    on their own line). Other libraries never log below INFO.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    default = logging.ERROR if quiet else logging.INFO
    root.setLevel(default)
    logging.getLogger("flyautoscaler").setLevel(logging.DEBUG if verbose else default)
    return handler


def _secrets(config: Config) -> list[str]:
    # The collector types declare which of their settings are credentials.
    return configured_secrets(config)


# --- the metrics and health server ----------------------------------------------


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
        }
        for name, status in pool.app_status().items()
    }
    body = {
        "status": "ok",
        "state": health.state.value,
        "passes": pool.pass_count,
        "apps": apps,
    }
    return HTTPStatus.OK, _json_line(body)


def _json_line(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, default=str).encode() + b"\n"


# --- commands ------------------------------------------------------------------


def _load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    return load_config(args.config, environ)


def _close_quietly(thing: object) -> None:
    close = getattr(thing, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - shutting down: log, go on
            logger.warning(
                "serve.close_failed",
                extra={"what": type(thing).__name__, "error": str(exc)},
            )


@contextlib.contextmanager
def _signals_set(stop: threading.Event) -> Iterator[list[str]]:
    """Set *stop* on SIGINT or SIGTERM while inside; yield the signals received."""
    received: list[str] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from flyautoscaler.fly import (  # noqa: PLC0415 - only serve needs them
        FlyGraphQLClient,
        new_flaps_client_func,
    )

    config = _load(args, environ)
    configure_logging(verbose=config.verbose, secrets=_secrets(config))
    config.validate(require_token=True)
    host, port = parse_listen_address(config.metrics_address)
    collectors: list[MetricCollector] = config.build_collectors(environ)
    fly_client = FlyGraphQLClient(config.api_token, base_url=config.api_base_url)
    flaps = new_flaps_client_func(config.api_token, base_url=config.flaps_base_url)
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
        new_reconciler=functools.partial(config.new_reconciler, collectors),
        unhealthy_after=config.unhealthy_after,
    )
    registry = CollectorRegistry()
    pool.register_prom_metrics(registry)
    ProcessCollector(registry=registry)
    registry.register(PLATFORM_COLLECTOR)
    stop = threading.Event()
    server: MetricsServer | None = None
    try:
        with _signals_set(stop) as received:
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
                },
            )
            stop.wait()
            logger.info("serve.stopping", extra={"signals": received})
            pool.close()
    finally:
        pool.close()
        if server is not None:
            server.close()
        for thing in (flaps, fly_client, *collectors):
            _close_quietly(thing)
    logger.info("serve.stopped")
    return EXIT_OK


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _eval(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = _load(args, environ)
    configure_logging(verbose=config.verbose, secrets=_secrets(config), quiet=True)
    config.validate()
    if args.app:
        check_app_name(args.app, "--app", field="app_name", wildcard=False)
    collectors = config.build_collectors(environ)
    try:
        reconciler = config.new_reconciler(collectors)
        reconciler.app_name = args.app or config.app_name
        collection = reconciler.collect()
        if collection.errors:
            error = collection.errors[0]
            raise _CommandError(f"metrics collection failed: {error}") from error
        try:
            result = reconciler.targets(collection.values).as_dict()
        except ExpressionError as exc:
            raise _CommandError(f"cannot calculate {exc.count}: {exc}") from exc
    finally:
        for collector in collectors:
            _close_quietly(collector)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return EXIT_OK


def _version(_args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
    sys.stdout.write(f"{PROG} {_package_version()}\n")
    return EXIT_OK


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("flyautoscaler")
    except PackageNotFoundError:
        return "(not installed)"


#: A command: parsed arguments and the environment in, exit status out.
_Command = Callable[[argparse.Namespace, Mapping[str, str]], int]


class _CommandError(Exception):
    """A command failed; the message is shown as is."""


# --- simulate (its own module, written separately) --------------------------------


def _import_simulate() -> tuple[ModuleType | None, str]:
    """Return the simulator module, or None and why it cannot be loaded."""
    try:
        return importlib.import_module("flyautoscaler._simulate"), ""
    except ImportError as exc:
        return None, str(exc)


def _simulate_unavailable(reason: str) -> _Command:
    def run(_args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
        detail = f" ({reason})" if reason else ""
        sys.stderr.write(f"error: simulate is not available{detail}\n")
        return EXIT_ERROR

    return run


def _simulate_command(module: ModuleType) -> _Command:
    def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        code: int = module.run(
            args, environ=environ, stdout=sys.stdout, stderr=sys.stderr
        )
        return code

    return run


# --- the parser -----------------------------------------------------------------


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (its values override FAS_* variables)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog="Run 'flyautoscaler COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the autoscaler until SIGINT or SIGTERM",
        description="Run the autoscaler: reconcile the app(s) every interval, "
        "serve /metrics and /healthz on the metrics address, log JSON lines on "
        "stderr. SIGINT or SIGTERM stops it gracefully.",
    )
    _add_config_option(serve)
    serve.set_defaults(handler=_serve)

    evaluate = commands.add_parser(
        "eval",
        help="collect metrics once and print the Machine counts",
        description="Collect the metrics once and print the Machine counts the "
        "expressions give, as JSON. Scales nothing; needs no API token.",
    )
    _add_config_option(evaluate)
    evaluate.add_argument(
        "--app",
        metavar="NAME",
        help="app name for $APP_NAME in queries (default: the configured one)",
    )
    evaluate.set_defaults(handler=_eval)

    version = commands.add_parser(
        "version",
        help="print the version",
        description="Print the version.",
    )
    version.set_defaults(handler=_version)

    module, reason = _import_simulate()
    simulate = commands.add_parser(
        "simulate",
        help="try a policy on a simulated fleet (no Fly account needed)",
        description="Run the autoscaler against a simulated fleet and a "
        "synthetic metric, then summarise what it did.",
    )
    if module is None:
        simulate.set_defaults(handler=_simulate_unavailable(reason))
    else:
        module.add_arguments(simulate)
        simulate.set_defaults(handler=_simulate_command(module))
    return parser


# --- main -----------------------------------------------------------------------

_USER_ERRORS: Final = (FlyAutoscalerError, OSError, _CommandError)


def _one_line(exc: BaseException) -> str:
    return redact(" ".join(str(exc).split())) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        0 on success, 1 on an error, 2 on a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.handler(args, os.environ)
    except _USER_ERRORS as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    return code
