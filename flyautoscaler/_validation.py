"""Checks of input shared by the configuration, the pool and the HTTP clients.

Each bound here exists so that a bad value fails at start-up, in one line that
names the setting, instead of failing every pass (or killing a worker) later.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Final

from flyautoscaler._errors import ConfigError

__all__ = [
    "APP_NAME_RULE",
    "HEADER_VALUE_RULE",
    "MAX_APP_NAME_LENGTH",
    "MAX_CONCURRENCY",
    "MAX_DURATION",
    "check_app_name",
    "header_value_problem",
]

#: Longest interval, timeout or refresh interval accepted, in seconds (24 h).
#: An autoscaler that looks less often than once a day does not autoscale, and
#: every wait stays far below :data:`threading.TIMEOUT_MAX`.
MAX_DURATION: Final = 24 * 3600.0
#: Most worker threads a pool runs. Each holds its own HTTP connections, so
#: 256 workers stay inside the usual 1024 open files; at a 15 s interval and
#: one second a pass they keep up with about 4,000 apps.
MAX_CONCURRENCY: Final = 256
#: Longest Fly app name: each app is a DNS label (``<app>.fly.dev``).
MAX_APP_NAME_LENGTH: Final = 63

#: What an app name may hold, for error messages.
APP_NAME_RULE: Final = (
    f"lowercase letters, digits and dashes, at most {MAX_APP_NAME_LENGTH} characters"
)
#: What an HTTP header value may hold, for error messages.
HEADER_VALUE_RULE: Final = (
    "only printable Latin-1 characters, spaces and tabs are allowed"
)

# flyctl's validateAppName (internal/command/launch/plan_builder.go) refuses
# anything but [a-z0-9-]; the DNS label bounds the length.
_APP_NAME: Final = re.compile(rf"[a-z0-9-]{{1,{MAX_APP_NAME_LENGTH}}}")
_APP_WILDCARD: Final = re.compile(rf"[a-z0-9*-]{{1,{MAX_APP_NAME_LENGTH}}}")


def check_app_name(
    name: str, setting: str, *, field: str, wildcard: bool = True
) -> None:
    """Raise :class:`ConfigError` unless *name* can be a Fly app name.

    Args:
        name: The app name, or with *wildcard* a pattern such as ``tenant-*``.
        setting: The setting's name as the user wrote it, for the message.
        field: The :attr:`ConfigError.field`.
        wildcard: Whether ``*`` is allowed.

    Raises:
        ConfigError: *name* holds anything but lowercase letters, digits and
            dashes (and ``*`` for a wildcard), or is longer than 63 characters.
    """
    pattern = _APP_WILDCARD if wildcard else _APP_NAME
    if pattern.fullmatch(name):
        return
    extra = "; a wildcard may add *" if wildcard else ""
    raise ConfigError(
        f"{setting} must be a Fly app name ({APP_NAME_RULE}{extra}), "
        f"got {json.dumps(name, ensure_ascii=False)}",
        field=field,
    )


def header_value_problem(value: str, *, offset: int = 0) -> str | None:
    """Say which character of *value* an HTTP header cannot carry, if any.

    A header value holds visible characters, spaces and tabs (RFC 9110,
    section 5.5) and is sent as Latin-1; control characters such as a newline
    would end the header. The answer names the character's position (1-based,
    plus *offset*), never the value.

    Args:
        value: The header value (a token).
        offset: Characters of the setting before *value*, for the position.

    Returns:
        ``None`` when every character can be sent, else a phrase such as
        ``"character 12 is a control character (U+000A)"``.
    """
    for index, char in enumerate(value, start=offset + 1):
        if char == "\t":
            continue
        if ord(char) > 0xFF:
            return f"character {index} is not a Latin-1 character"
        if unicodedata.category(char) == "Cc":
            return f"character {index} is a control character (U+{ord(char):04X})"
    return None
