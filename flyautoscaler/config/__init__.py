"""Configuration of the ``flyautoscaler`` command, compatible with the Go original.

:func:`load_config` reads the ``FAS_*`` environment variables of
``superfly/fly-autoscaler`` (same names, same meaning), then, when given, a YAML
file with the same kebab-case keys, whose values override the environment's.
:meth:`Config.validate` checks it with the Go original's messages, word for word,
and then compiles every count expression against the configured metric names.

This module serves the command line; a service embedding the library builds
:class:`~flyautoscaler.ReconcilerPool` and :class:`~flyautoscaler.Reconciler`
directly, though it may use :class:`Config` too. Every error is a
:class:`~flyautoscaler.ConfigError`; no message or ``repr`` carries a token.

Inside, one job a module: ``_model`` (the settings and :class:`Config`),
``_entry`` (:class:`CollectorConfig`, from the collector types'
declarations), ``_env`` (the environment), ``_yaml`` (the file),
``_load`` (both, in order), ``_check`` (what only a whole configuration can
get wrong) and ``_build`` (the variables queries may use). A new top-level
setting is one field of :class:`Config`; a new collector is declared in its
own module of :mod:`flyautoscaler.collectors`.
"""

from __future__ import annotations

from typing import Final

from flyautoscaler._durations import format_duration as format_duration
from flyautoscaler._durations import parse_duration
from flyautoscaler.config._entry import COLLECTOR_TYPES as _COLLECTOR_TYPES
from flyautoscaler.config._entry import CollectorConfig
from flyautoscaler.config._load import load_config
from flyautoscaler.config._model import DEFAULT_METRICS_ADDRESS as _DEFAULT_ADDRESS
from flyautoscaler.config._model import MAX_UNHEALTHY_AFTER as MAX_UNHEALTHY_AFTER
from flyautoscaler.config._model import Config
from flyautoscaler.config._yaml import MAX_YAML_DEPTH, MAX_YAML_NODES

__all__ = [
    "COLLECTOR_TYPES",
    "DEFAULT_METRICS_ADDRESS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "CollectorConfig",
    "Config",
    "load_config",
    "parse_duration",
]

# Named here too, so that the reference documents them in this module.
#: The ``type`` values of a ``metric-collectors`` entry.
COLLECTOR_TYPES: Final = _COLLECTOR_TYPES
#: Where ``serve`` answers ``/metrics`` and ``/healthz`` unless told otherwise.
DEFAULT_METRICS_ADDRESS: Final = _DEFAULT_ADDRESS
