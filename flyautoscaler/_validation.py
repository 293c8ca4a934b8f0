"""The one validator: every check of a setting, with its one wording.

The configuration, the pool, the reconciler, the collectors and the HTTP
clients check their settings with these functions. Each takes the setting's
name as the user knows it (``FAS_INTERVAL`` or ``interval`` from the
configuration, ``reconcile_interval`` from the pool) and raises
:class:`~flyautoscaler.ConfigError` naming it; where the Go original has a
message, it is kept word for word.

Each bound here exists so that a bad value fails at start-up, in one line that
names the setting, instead of failing every pass (or killing a worker) later.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Final

from flyautoscaler._durations import format_duration
from flyautoscaler._errors import ConfigError
from flyautoscaler._models import MachineState
from flyautoscaler._plan import StepLimit

__all__ = [
    "APP_NAME_RULE",
    "HEADER_VALUE_RULE",
    "MACHINE_LEASE_VALUES",
    "MAX_APP_NAME_LENGTH",
    "MAX_CONCURRENCY",
    "MAX_DURATION",
    "STOP_MODES",
    "check_app_name",
    "check_duration",
    "check_fallback",
    "check_header_value",
    "check_initial_machine_state",
    "check_machine_leases",
    "check_range",
    "check_stop_mode",
    "check_wildcard_org",
    "check_window",
    "header_value_problem",
    "parse_step",
    "positive_seconds",
    "quote",
    "require",
    "timeout_pair",
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


def quote(value: str) -> str:
    """Quote *value* for a message as Go's ``%q`` does (close enough: JSON's)."""
    return json.dumps(value, ensure_ascii=False)


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
        f"{setting} must be a Fly app name ({APP_NAME_RULE}{extra}), got {quote(name)}",
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


def require(value: object, message: str, *, field: str) -> None:
    """Raise :class:`ConfigError` with *message* unless *value* is set (truthy).

    *message* is the Go original's, such as ``app name required``.
    """
    if not value:
        raise ConfigError(message, field=field)


def check_wildcard_org(app_name: str, org: str, *, field: str) -> None:
    """Raise :class:`ConfigError` when *app_name* is a wildcard and *org* is empty."""
    if "*" in app_name and not org:
        raise ConfigError(
            "organization required if app name uses a wildcard", field=field
        )


def check_duration(
    value: float, setting: str, *, field: str, maximum: float = MAX_DURATION
) -> None:
    """Raise :class:`ConfigError` unless *value* seconds is in (0, *maximum*].

    The message shows durations as Go writes them: ``FAS_INTERVAL must be at
    most 24h0m0s, got 25h0m0s``; ``interval must be a positive duration, got
    0s``. NaN and infinities are refused.
    """
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"{setting} must be a positive duration, got {format_duration(value)}",
            field=field,
        )
    if value > maximum:
        raise ConfigError(
            f"{setting} must be at most {format_duration(maximum)}, "
            f"got {format_duration(value)}",
            field=field,
        )


def check_range(
    value: int, setting: str, *, field: str, low: int, high: int | None = None
) -> None:
    """Raise :class:`ConfigError` unless *low* <= *value* (<= *high*, if given).

    ``concurrency must be at least 1, got 0``; ``FAS_CONCURRENCY must be at
    most 256, got 2000``.
    """
    if value < low:
        raise ConfigError(f"{setting} must be at least {low}, got {value}", field=field)
    if high is not None and value > high:
        raise ConfigError(f"{setting} must be at most {high}, got {value}", field=field)


def check_window(
    value: float, setting: str, *, field: str, maximum: float = MAX_DURATION
) -> None:
    """Raise :class:`ConfigError` unless *value* seconds is in [0, *maximum*].

    For durations where 0 means "off", such as a stabilization window:
    ``scale_down_stabilization must be a duration from 0s to 24h0m0s, got -1s``.
    """
    if not (math.isfinite(value) and 0 <= value <= maximum):
        raise ConfigError(
            f"{setting} must be a duration from 0s to {format_duration(maximum)}, "
            f"got {format_duration(value) if math.isfinite(value) else value}",
            field=field,
        )


_STEP_RULE: Final = "a count of at least 1 (4) or a percent of the current count (50%)"


def parse_step(value: object, setting: str, *, field: str) -> StepLimit | None:
    """Return the step limit *value* says (``None``: no limit).

    *value* is a count (``4`` or ``"4"``) or a percent of the current count
    (``"50%"``); anything else raises :class:`ConfigError`:
    ``max_scale_up_step must be a count of at least 1 (4) or a percent of the
    current count (50%), got '0'``.
    """
    if value is None or value == "":
        return None
    problem = f"{setting} must be {_STEP_RULE}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(problem, field=field)
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(problem, field=field)
        return StepLimit(count=value)
    if not isinstance(value, str):
        raise ConfigError(problem, field=field)
    text = value.strip()
    if re.fullmatch(r"[0-9]+", text) and int(text) >= 1:
        return StepLimit(count=int(text))
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*%", text)
    if match and float(match[1]) > 0 and math.isfinite(float(match[1])):
        return StepLimit(percent=float(match[1]))
    raise ConfigError(problem, field=field)


def check_fallback(  # noqa: PLR0913 - the pair, and how each is named
    after: int,
    count: int | None,
    *,
    after_setting: str = "fallback_after",
    count_setting: str = "fallback_started_machine_n",
    after_field: str = "fallback_after",
    count_field: str = "fallback_started_machine_n",
) -> None:
    """Raise :class:`ConfigError` unless the fallback pair is set together.

    *after* (passes; 0 holds the fleet) and *count* (the started count to
    fall back to; ``None``: unset) mean something only together:
    ``fallback_after is 3 but fallback_started_machine_n is not set: ...``.
    Each range is checked apart (:func:`check_range`).
    """
    if after and count is None:
        raise ConfigError(
            f"{after_setting} is {after} but {count_setting} is not set: set the "
            f"started count to fall back to, or {after_setting} to 0 to hold the "
            "fleet",
            field=count_field,
        )
    if count is not None and not after:
        raise ConfigError(
            f"{count_setting} is set but {after_setting} is 0 (hold the fleet): "
            f"set {after_setting} to the failed passes in a row after which the "
            "fallback applies",
            field=after_field,
        )


#: What ``stop_mode`` may be: how a pass scales the started count down.
STOP_MODES: Final = ("stop", "suspend")


#: What ``machine_leases`` may be: which Machine actions are taken under a lease.
MACHINE_LEASE_VALUES: Final = ("off", "scale-down", "all")


def check_machine_leases(value: str, setting: str = "machine_leases") -> None:
    """Raise :class:`ConfigError` unless *value* is off, scale-down or all."""
    if value not in MACHINE_LEASE_VALUES:
        raise ConfigError(
            f"{setting} must be 'off', 'scale-down' or 'all', got {value!r}",
            field="machine_leases",
        )


def check_stop_mode(value: str, setting: str = "stop_mode") -> None:
    """Raise :class:`ConfigError` unless *value* is ``stop`` or ``suspend``."""
    if value not in STOP_MODES:
        raise ConfigError(
            f"{setting} must be 'stop' or 'suspend', got {value!r}", field="stop_mode"
        )


def check_initial_machine_state(
    value: str, *, field: str = "initial_machine_state"
) -> None:
    """Raise :class:`ConfigError` unless *value* is ``started`` or ``stopped``.

    The message is the Go original's, word for word.
    """
    if value not in {MachineState.STARTED, MachineState.STOPPED}:
        raise ConfigError(
            "initial machine state must be either 'started' or 'stopped'",
            field=field,
        )


def check_header_value(
    value: str,
    setting: str,
    *,
    field: str,
    problem_of: Callable[[str], str | None] = header_value_problem,
) -> None:
    """Raise :class:`ConfigError` if an HTTP header cannot carry *value*.

    The message names the setting and the character's position, never the
    value: ``FAS_API_TOKEN cannot be sent in an HTTP header: character 14 is a
    control character (U+000A); ...``.

    Args:
        value: What is sent in the header (a token, an API key).
        setting: The setting's name, for the message.
        field: The :attr:`ConfigError.field`.
        problem_of: Finds the problem; :func:`header_value_problem`, or one
            that checks only the parts of a token that are sent.
    """
    problem = problem_of(value)
    if problem is not None:
        raise ConfigError(
            f"{setting} cannot be sent in an HTTP header: {problem}; "
            f"{HEADER_VALUE_RULE}",
            field=field,
        )


def positive_seconds(value: float) -> float:
    """Return *value* as a float, or raise :class:`ConfigError` unless > 0 and finite.

    The converter of the collectors' timeouts.
    """
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"timeout must be positive seconds, got {value!r}")
    return value


def timeout_pair(value: float | tuple[float, float]) -> tuple[float, float]:
    """Return a (connect, read) timeout; one number sets both.

    Raises:
        ConfigError: A timeout is not positive seconds (see
            :func:`positive_seconds`).
    """
    pair = (
        (float(value), float(value))
        if isinstance(value, int | float)
        else (float(value[0]), float(value[1]))
    )
    if not all(math.isfinite(t) and t > 0 for t in pair):
        raise ConfigError(f"timeout must be positive seconds, got {value!r}")
    return pair
