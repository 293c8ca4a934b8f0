"""Go durations (``15s``, ``1m30s``, ``500ms``): read and written here only.

Readers:

- :func:`parse_duration`: Go's ``time.ParseDuration`` syntax, strictly (the
  configuration: ``interval``, ``FAS_TIMEOUT``, ...).
- :func:`parse_seconds`: a plain number of seconds, or a Go duration; never
  negative (``simulate``'s options and recordings, the fake Machines API).

Writers, one per audience:

- :func:`format_duration`: Go's ``Duration.String`` (``24h0m0s``), for
  messages about settings written in Go's syntax.
- :func:`format_brief`: the shortest form (``1h``, ``2m15s``), for reports.
- :func:`format_api_duration`: what the Machines API is sent (``10s``,
  ``1500ms``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Final

__all__ = [
    "format_api_duration",
    "format_brief",
    "format_duration",
    "parse_duration",
    "parse_seconds",
]

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART: Final = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
)


def _quote(value: str) -> str:
    """Quote *value* the way Go's ``%q`` does (close enough: JSON's quoting)."""
    return json.dumps(value, ensure_ascii=False)


def parse_duration(text: str) -> float:
    """Parse a duration in Go's syntax and return it in seconds.

    A duration is an optional sign and a sequence of decimal numbers, each with
    a unit: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``; for example
    ``"15s"``, ``"1m30s"``, ``"500ms"``, ``"1.5h"``, ``"-2s"``. ``"0"`` is the
    only number allowed without a unit.

    Args:
        text: The duration.

    Returns:
        Seconds (negative for a negative duration).

    Raises:
        ValueError: *text* is not a duration.
    """
    body = text
    sign = 1.0
    if body[:1] in {"+", "-"}:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {_quote(text)}")
    total = 0.0
    position = 0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            detail = (
                "missing unit"
                if re.fullmatch(r"[\d.]+", body[position:])
                else "unknown unit or syntax"
            )
            raise ValueError(f"invalid duration {_quote(text)}: {detail}")
        total += float(match.group("number")) * _UNITS[match.group("unit")]
        position = match.end()
    if not math.isfinite(total):
        raise ValueError(f"invalid duration {_quote(text)}: out of range")
    return sign * total


def parse_seconds(text: str) -> float:
    """Parse ``"90"`` or ``"1.5"`` (seconds), or a Go duration (``"1m30s"``).

    Surrounding whitespace is ignored.

    Raises:
        ValueError: Not a duration (see :func:`parse_duration`), or negative,
            or not finite.
    """
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = parse_duration(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {text!r}: must be finite and >= 0")
    return seconds


def format_duration(seconds: float) -> str:
    """Return *seconds* as Go's ``Duration.String`` does (``1m30s``, ``24h0m0s``).

    Under a second it is given in milliseconds (``500ms``); NaN and the
    infinities, which Go has no duration for, as ``nan``, ``inf``, ``-inf``.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    rest = abs(seconds)
    if rest < 1:
        return f"{sign}{rest * 1000:g}ms"
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    text = ""
    if hours:
        text += f"{hours:.0f}h"
    if hours or minutes:
        text += f"{minutes:.0f}m"
    return f"{sign}{text}{rest:g}s"


def format_brief(seconds: float) -> str:
    """Return ``45s``, ``2m15s``, ``1h`` or ``1h0m5s``: no zero unit at the end."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours:.0f}h" if hours else ""
    if minutes or (hours and secs):
        text += f"{minutes:.0f}m"
    return text + (f"{secs:g}s" if secs else "")


def format_api_duration(seconds: float) -> str:
    """Return *seconds* as the Machines API takes them (``"10s"``, ``"1500ms"``).

    Raises:
        ValueError: *seconds* is negative or not finite.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {seconds!r}")
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"
