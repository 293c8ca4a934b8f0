"""Reading the environment: the ``FAS_*`` variables, as the Go original reads them.

Every setting is read from its declared variables (see
:mod:`flyautoscaler.config._model`): an unset or empty variable keeps the
default, and a value that does not parse is reported with the Go original's
message (``cannot parse FAS_INTERVAL as duration: "15"``). Each collector
type adds one entry when its switch variable (``FAS_PROMETHEUS_ADDRESS``) is
set; ``FAS_STOP_METRIC_PROMETHEUS_QUERY`` adds the ``stop-metric-collector``,
on the Prometheus collector's address and token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flyautoscaler._durations import parse_duration, parse_seconds
from flyautoscaler._errors import ConfigError
from flyautoscaler._settings import LIST_KINDS, Setting
from flyautoscaler._validation import quote
from flyautoscaler.collectors import TYPES
from flyautoscaler.collectors._prometheus import PROMETHEUS
from flyautoscaler.config._entry import CollectorConfig, put
from flyautoscaler.config._model import (
    STOP_METRIC_QUERY_VARIABLE,
    STOP_METRIC_REUSED,
    TOP_SETTINGS,
    Config,
)

__all__ = ["from_env"]

# Go's strconv.ParseBool.
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})
#: What a ``seconds`` setting takes, for messages.
_SECONDS_RULE: Final = (
    'a Go duration such as "5m" or "90s", or a number of seconds such as "300"; '
    "not negative"
)


def _split_list(text: str) -> list[str]:
    """Split a comma list, dropping blanks around and between items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse(setting: Setting, name: str, text: str) -> object:
    """Return the value of variable *name* (set to *text*) for *setting*.

    Raises:
        ConfigError: *text* is not a value of the setting's kind.
    """
    kind = setting.kind
    if kind in LIST_KINDS:
        return _split_list(text)
    if kind == "integer":
        try:
            return int(text, 10)
        except ValueError:
            raise ConfigError(
                f"cannot parse {name} as integer: {quote(text)}", field=name
            ) from None
    if kind == "duration":
        try:
            return parse_duration(text)
        except ValueError:
            raise ConfigError(
                f"cannot parse {name} as duration: {quote(text)}", field=name
            ) from None
    if kind == "seconds":
        try:
            return parse_seconds(text)
        except ValueError:
            raise ConfigError(
                f"cannot parse {name} as duration: {quote(text)} ({_SECONDS_RULE})",
                field=name,
            ) from None
    if kind == "boolean":
        if text not in _TRUE | _FALSE:
            raise ConfigError(
                f"cannot parse {name} as boolean: {quote(text)}", field=name
            )
        return text in _TRUE
    return text


def _first_set(env: Mapping[str, str], setting: Setting) -> str:
    """Return the first of *setting*'s variables set to a non-empty value, or ``""``."""
    return next((name for name in setting.env if env.get(name, "")), "")


def _collectors_from_env(env: Mapping[str, str]) -> list[CollectorConfig]:
    collectors: list[CollectorConfig] = []
    for declared in TYPES:
        if not env.get(declared.enabled_by, ""):
            continue
        entry = CollectorConfig(type=declared.name)
        for setting in declared.settings:
            if name := _first_set(env, setting):
                # A collector's settings are text or lists of text.
                text = env[name]
                listed = setting.kind in LIST_KINDS
                put(entry, setting.attribute, _split_list(text) if listed else text)
                entry.origins[setting.attribute] = name
        collectors.append(entry)
    return collectors


def _stop_metric_from_env(env: Mapping[str, str]) -> CollectorConfig | None:
    """Return the stop metric's entry: its query, the Prometheus address and token."""
    query = env.get(STOP_METRIC_QUERY_VARIABLE, "")
    if not query:
        return None
    entry = CollectorConfig(type=PROMETHEUS.name, query=query)
    entry.origins["query"] = STOP_METRIC_QUERY_VARIABLE
    for setting in STOP_METRIC_REUSED:
        if name := _first_set(env, setting):
            put(entry, setting.attribute, env[name])
            entry.origins[setting.attribute] = name
    return entry


def from_env(env: Mapping[str, str]) -> Config:
    """Return the configuration the environment gives (Go's NewConfigFromEnv).

    Raises:
        ConfigError: A variable does not parse; the message names it.
    """
    config = Config()
    for setting in TOP_SETTINGS:
        name = _first_set(env, setting)
        if not name:
            continue
        config.origins[setting.attribute] = name
        text = env[name]
        if setting.kind == "url":
            text = text.strip()  # a blank URL keeps the default
            if not text:
                continue
        setattr(config, setting.attribute, _parse(setting, name, text))
    config.metric_collectors = _collectors_from_env(env)
    config.stop_metric_collector = _stop_metric_from_env(env)
    return config
