"""The command's logging: JSON lines on stderr, credentials scrubbed.

This is the only place that configures logging: the library never does.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Final, TextIO

from flyautoscaler._errors import Scrubber
from flyautoscaler.config import Config
from flyautoscaler.config._model import secrets as configured_secrets

__all__ = ["JSONFormatter", "configure_logging", "secrets_of"]

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


def secrets_of(config: Config) -> list[str]:
    # The collector types declare which of their settings are credentials.
    return configured_secrets(config)
