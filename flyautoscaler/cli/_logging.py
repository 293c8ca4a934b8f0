"""The command's logging: JSON lines on stderr, credentials scrubbed.

This is the only place that configures logging: the library never does.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Final, TextIO

from flyautoscaler.config import Config
from flyautoscaler.config._model import secrets as configured_secrets
from flyautoscaler.logging import JSONFormatter

__all__ = ["LOG_LEVELS", "JSONFormatter", "configure_logging", "secrets_of"]

#: What ``--log-level`` accepts, by name.
LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(
    *,
    verbose: bool,
    secrets: Sequence[str] = (),
    quiet: bool = False,
    level: str | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send log records to *stream* (stderr) as JSON lines; return the handler.

    flyautoscaler's loggers log at DEBUG with *verbose*; otherwise every logger
    logs at INFO, or at ERROR when *quiet* (``eval``, whose errors are reported
    on their own line). A *level* (``--log-level``: a key of
    :data:`LOG_LEVELS`) overrides both for flyautoscaler's loggers. Other
    libraries never log below INFO.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    default = logging.ERROR if quiet else logging.INFO
    ours = logging.DEBUG if verbose else default
    if level is not None:
        ours = LOG_LEVELS[level]
        default = max(ours, logging.INFO)
    root.setLevel(default)
    logging.getLogger("flyautoscaler").setLevel(ours)
    return handler


def secrets_of(config: Config) -> list[str]:
    # The collector types declare which of their settings are credentials.
    return configured_secrets(config)
