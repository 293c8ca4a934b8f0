"""What the commands share: exit codes, the configuration, closing things."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Final

from flyautoscaler._log import get_logger
from flyautoscaler.config import Config, load_config

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CommandError",
    "close_quietly",
    "load",
]

logger = get_logger("flyautoscaler.cli")

PROG: Final = "flyautoscaler"
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2


class CommandError(Exception):
    """A command failed; the message is shown as is."""


def load(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Return the configuration of ``--config`` (if given) over *environ*."""
    return load_config(args.config, environ)


def close_quietly(thing: object) -> None:
    """Call *thing*'s ``close()``, if it has one; log a failure and go on."""
    close = getattr(thing, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - shutting down: log, go on
            logger.warning(
                "serve.close_failed",
                extra={"what": type(thing).__name__, "error": str(exc)},
            )
