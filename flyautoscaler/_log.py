"""Log lines that read well under any handler, and keep their fields for JSON.

Every module logs an *event* (``machine.start_failed``) with its fields as
``extra`` (``app``, ``machine_id``, ``error``, ...). Through :func:`get_logger`
the record's message becomes the event followed by its fields, so a plain
``logging.basicConfig()`` prints what happened to which app and Machine, and
why::

    ERROR:flyautoscaler.reconciler:machine.start_failed app=my-app
    machine_id=3d8d9e1b error="conflict: machine is leased"

while the record keeps ``event`` and each field as attributes, for
:class:`flyautoscaler.logging.JSONFormatter` and for tests. The message
compares equal to the bare event name (``record.msg == "machine.start"``).
Credentials are redacted from the line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Self

from flyautoscaler._errors import redact

__all__ = ["EventLogger", "event_line", "get_logger"]

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter

# Characters that make a value need quotes to read as one.
_NEEDS_QUOTES: Final = frozenset(' "=\n\t')


def _value(value: object) -> str:
    """Return one field's value as it appears in a line."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if value and not _NEEDS_QUOTES.intersection(value):
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def event_line(event: str, fields: Mapping[str, object]) -> str:
    """Return *event* and its *fields* as one line: ``event key=value ...``."""
    parts = [event, *(f"{key}={_value(value)}" for key, value in fields.items())]
    return redact(" ".join(parts))


class _Message(str):  # noqa: SLOT000 - it carries its fields
    """An event name that prints as the whole line (name and fields).

    It is the name as a string, so ``record.msg == "reconcile.pass"`` holds;
    ``str()`` of it, which is what ``LogRecord.getMessage()`` uses, is the
    line.
    """

    fields: Mapping[str, object]

    def __new__(cls, event: str, fields: Mapping[str, object]) -> Self:
        message = super().__new__(cls, event)
        message.fields = fields
        return message

    def __str__(self) -> str:
        return event_line(str.__str__(self), self.fields)


class EventLogger(_Adapter):
    """A logger whose messages are events with fields (see the module's doc).

    Use it as a :class:`logging.Logger`: ``logger.info("pool.open",
    extra={"app": name})``.
    """

    def process(
        self,
        msg: Any,  # noqa: ANN401 - the base class's signature
        kwargs: MutableMapping[str, Any],
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Turn *msg* (an event name) and ``extra`` into a line and fields."""
        fields = dict(kwargs.get("extra") or {})
        event = str(msg)
        kwargs["extra"] = {**fields, "event": event}
        return _Message(event, fields), kwargs


def get_logger(name: str) -> EventLogger:
    """Return the event logger of *name* (a ``flyautoscaler.*`` logger)."""
    return EventLogger(logging.getLogger(name), {})
