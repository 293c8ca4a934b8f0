"""The ``flyautoscaler`` command: ``serve``, ``eval``, ``version``, ``simulate``.

Exit status: 0 on success, 1 on an error (one line on stderr, ``error: ...``,
without a traceback for configuration, expression, collection and API errors),
2 on a usage error. Each command lives in its own module (``_serve``,
``_eval``, and the ``simulate`` package); this one parses the arguments and
runs the command. The command's logging (``_logging``) is the only place that
configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Final

from flyautoscaler._errors import FlyAutoscalerError, redact
from flyautoscaler.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CommandError,
)
from flyautoscaler.cli._eval import evaluate
from flyautoscaler.cli._logging import LOG_LEVELS, JSONFormatter, configure_logging
from flyautoscaler.cli._serve import parse_listen_address, serve

__all__ = ["JSONFormatter", "build_parser", "main", "parse_listen_address"]

_DESCRIPTION: Final = """\
flyautoscaler scales the Machines of a Fly.io app (or of every app matching a
wildcard) from metrics: it collects them, evaluates the count expressions and
creates, destroys, starts or stops Machines to match. It reads the same FAS_*
environment variables and YAML file as the Go fly-autoscaler.
"""


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


# --- simulate (its own module, written separately) --------------------------------


def _import_simulate() -> tuple[ModuleType | None, str]:
    """Return the simulator module, or None and why it cannot be loaded."""
    try:
        return importlib.import_module("flyautoscaler.cli.simulate"), ""
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
        # The summary and the CSV say what each pass did; only errors are logged
        # (as JSON lines on stderr), not each pass's warnings.
        configure_logging(
            verbose=False, quiet=True, level=getattr(args, "log_level", None)
        )
        code: int = module.run(
            args, environ=environ, stdout=sys.stdout, stderr=sys.stderr
        )
        return code

    return run


# --- the parser -----------------------------------------------------------------


def _log_level(text: str) -> str:
    level = text.lower()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}"
        )
    return level


def _add_log_level_option(
    parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS
) -> None:
    parser.add_argument(
        "--log-level",
        type=_log_level,
        metavar="LEVEL",
        default=default,
        help="flyautoscaler's log level: debug, info, warning or error "
        "(overrides FAS_VERBOSE)",
    )


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
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {_package_version()}"
    )
    _add_log_level_option(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve_parser = commands.add_parser(
        "serve",
        help="run the autoscaler until SIGINT or SIGTERM",
        description="Run the autoscaler: reconcile the app(s) every interval, "
        "serve /metrics and /healthz on the metrics address, log JSON lines on "
        "stderr. SIGINT or SIGTERM stops it gracefully.",
    )
    _add_config_option(serve_parser)
    _add_log_level_option(serve_parser)
    serve_parser.set_defaults(handler=serve)

    eval_parser = commands.add_parser(
        "eval",
        help="collect metrics once and print the Machine counts",
        description="Collect the metrics once and print the Machine counts the "
        "expressions give, as JSON. Scales nothing; needs no API token. With "
        "--explain, print instead what one pass would decide and why: with an "
        "API token it lists the app's Machines (read only) and says which steps "
        "a pass would take.",
    )
    _add_config_option(eval_parser)
    _add_log_level_option(eval_parser)
    eval_parser.add_argument(
        "--app",
        metavar="NAME",
        help="app name for $APP_NAME in queries (default: the configured one)",
    )
    eval_parser.add_argument(
        "--explain",
        action="store_true",
        help="print the decision of one pass in words: targets, the rules that "
        "changed them, and (with an API token) the steps it would take",
    )
    eval_parser.set_defaults(handler=evaluate)

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
        _add_log_level_option(simulate)
        simulate.set_defaults(handler=_simulate_command(module))
    return parser


# --- main -----------------------------------------------------------------------

_USER_ERRORS: Final = (FlyAutoscalerError, OSError, CommandError)


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
