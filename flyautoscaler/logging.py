"""Logging for applications that embed flyautoscaler: a JSON formatter.

flyautoscaler configures no logging; it logs *events* under the
``flyautoscaler`` logger (``flyautoscaler.reconciler``, ``flyautoscaler.pool``,
``flyautoscaler.fly``, ...), each with its fields. With plain
``logging.basicConfig()`` a line reads::

    INFO:flyautoscaler.reconciler:machine.start app=my-app machine_id=3d8d region=iad

Each record also carries ``event`` and every field as attributes.
:class:`JSONFormatter` writes them as one JSON object per line, credentials
removed, as ``flyautoscaler serve`` does::

    import logging
    from flyautoscaler.logging import JSONFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter(secrets=[fly_api_token]))
    logging.getLogger("flyautoscaler").addHandler(handler)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Final

from flyautoscaler._errors import Scrubber

__all__ = ["JSONFormatter"]

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
            "event": getattr(record, "event", None) or record.getMessage(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(self._clean(entry), ensure_ascii=False, default=str)
