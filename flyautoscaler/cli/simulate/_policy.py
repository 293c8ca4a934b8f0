"""Which policy ``flyautoscaler simulate`` runs, and why.

The rule, in order (docs/simulate.md, "Which policy runs"):

1. ``--config FILE`` (and each ``--compare FILE``): the file, over the
   ``FAS_*`` variables it does not override, as ``serve`` reads it;
2. else the ``FAS_*`` variables, when at least one of the six count
   expression variables (:data:`COUNT_VARIABLES`) is set: only a count says
   how to scale. An API token, an app name, a collector's address or a
   window alone makes no policy;
3. else the built-in policy (:func:`builtin_policy`).

:func:`choose_policy` applies it and returns the :class:`Policy` with the
words the header prints, which name every ``FAS_*`` variable that shaped the
policy and every one that was set and ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Final

from attrs import frozen

from flyautoscaler._errors import ConfigError, FlyAutoscalerError
from flyautoscaler._models import DEFAULT_PROCESS_GROUP
from flyautoscaler._protocols import MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler.cli.simulate._report import CSV_COLUMNS
from flyautoscaler.cli.simulate._run import DEFAULT_TICK, GATE_METRIC, Policy
from flyautoscaler.config import Config, load_config
from flyautoscaler.config._model import (
    _EXPRESSION_FIELDS,  # the six count expressions' settings
    SECRET_VARIABLES,
    TOP_SETTINGS,
)

__all__ = [
    "COUNT_VARIABLES",
    "DEFAULT_MAX_CREATED",
    "DEFAULT_MAX_STARTED",
    "DEFAULT_METRIC",
    "DEFAULT_MIN_CREATED",
    "DEFAULT_MIN_STARTED",
    "WILDCARD_APP",
    "PolicyChoice",
    "builtin_policy",
    "choose_policy",
]

#: The built-in policy's metric and expressions (see docs/simulate.md).
DEFAULT_METRIC: Final = "queue_depth"
DEFAULT_MIN_STARTED: Final = "ceil(queue_depth / 10)"
DEFAULT_MAX_STARTED: Final = "ceil(queue_depth / 8)"
DEFAULT_MIN_CREATED: Final = "ceil(queue_depth / 10)"
DEFAULT_MAX_CREATED: Final = "max(10, ceil(queue_depth / 10) + 5)"
#: The name of the seeded app when the configured one is a wildcard.
WILDCARD_APP: Final = "sim-app"

#: The variables that make the ``FAS_*`` variables a policy (without ``--config``).
COUNT_VARIABLES: Final = tuple(
    variable
    for setting in TOP_SETTINGS
    if setting.attribute in _EXPRESSION_FIELDS
    for variable in setting.env
)
_PREFIX: Final = "FAS_"
# Names a metric cannot have: the CSV's other columns.
_RESERVED: Final = frozenset({"time", "time_s", *CSV_COLUMNS})


@frozen
class PolicyChoice:
    """A policy and why it runs.

    Attributes:
        policy: What to simulate.
        why: The header's words: where the policy comes from, why, and
            which ``FAS_*`` variables are ignored (``"policy from a.yml
            (--config)"``).
    """

    policy: Policy
    why: str


def builtin_policy(source: str = "the built-in policy") -> Policy:
    """Return the built-in policy on ``queue_depth`` (see docs/simulate.md)."""

    def new_reconciler(collectors: list[MetricCollector]) -> Reconciler:
        return Reconciler(
            process_group=DEFAULT_PROCESS_GROUP,
            min_created_machine_n=DEFAULT_MIN_CREATED,
            max_created_machine_n=DEFAULT_MAX_CREATED,
            min_started_machine_n=DEFAULT_MIN_STARTED,
            max_started_machine_n=DEFAULT_MAX_STARTED,
            collectors=list(collectors),
        )

    return Policy(
        source=source,
        app_name=WILDCARD_APP,
        org="personal",
        process_group=DEFAULT_PROCESS_GROUP,
        regions=(),
        metric_names=(DEFAULT_METRIC,),
        started=(DEFAULT_MIN_STARTED, DEFAULT_MAX_STARTED),
        created=(DEFAULT_MIN_CREATED, DEFAULT_MAX_CREATED),
        interval=DEFAULT_TICK,
        new_reconciler=new_reconciler,
    )


def _names(names: Sequence[str]) -> str:
    """Return ``"A"``, ``"A and B"`` or ``"A, B and C"``."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _ignored(names: Sequence[str]) -> str:
    if not names:
        return ""
    return f"{_names(names)} {'is' if len(names) == 1 else 'are'} ignored"


def _set_variables(environ: Mapping[str, str]) -> list[str]:
    """Return the ``FAS_*`` variables set to something (empty is unset)."""
    return sorted(k for k, v in environ.items() if k.startswith(_PREFIX) and v)


def _variables_read(config: Config) -> list[str]:
    """Return the ``FAS_*`` variables *config* took a value from, credentials aside.

    A credential never changes what a simulation does (it calls no API).
    """
    origins = [*config.origins.values()]
    for _, entry in config.collector_entries():
        origins.extend(entry.origins.values())
    return sorted(
        {name for name in origins if name.startswith(_PREFIX)} - SECRET_VARIABLES
    )


def _simulated_reconciler(
    config: Config, collectors: list[MetricCollector]
) -> Reconciler:
    """Return the configured reconciler, without its stop metric or leases.

    A simulated fleet has no per-Machine metric to rank by: the Machines to
    stop are chosen in the default order (lowest id first). Nobody else leases
    its Machines, so leasing them would only cost requests.
    """
    reconciler = config.new_reconciler(collectors)
    reconciler.stop_metric_collector = None
    reconciler.machine_leases = "off"
    return reconciler


def _configured(config: Config, source: str) -> Policy:
    """Return the policy *config* describes.

    Raises:
        ConfigError: A metric is named like a column of simulate's CSV.
    """
    for name in config.metric_names():
        if name in _RESERVED or name.startswith(GATE_METRIC):
            raise ConfigError(
                f"metric name {name!r} is a column of simulate's CSV; rename it",
                field="metric_name",
            )
    return Policy(
        source=source,
        app_name=WILDCARD_APP if "*" in config.app_name else config.app_name,
        org=config.org or "personal",
        process_group=config.process_group,
        regions=tuple(config.regions),
        metric_names=tuple(config.metric_names()),
        started=(config.min_started_expr(), config.max_started_expr()),
        created=(config.min_created_expr(), config.max_created_expr()),
        interval=config.interval,
        reconcile_timeout=config.timeout,
        new_reconciler=functools.partial(_simulated_reconciler, config),
    )


def _from_file(path: str, option: str, environ: Mapping[str, str]) -> PolicyChoice:
    config = load_config(path, environ)
    config.validate(require_token=False)
    used = _variables_read(config)
    ignored = [n for n in _set_variables(environ) if n not in used]
    why = f"policy from {path} ({option})"
    if used:
        why += f", with {_names(used)} from the environment"
    if ignored:
        why += f"; {_ignored(ignored)}"
    return PolicyChoice(_configured(config, path), why)


def _from_environment(
    environ: Mapping[str, str], counts: Sequence[str]
) -> PolicyChoice:
    verb = "sets a count" if len(counts) == 1 else "set counts"
    try:
        config = load_config(None, environ)
        config.validate(require_token=False)
    except FlyAutoscalerError as exc:
        exc.add_note(
            f"simulate reads its policy from the FAS_* variables because "
            f"{_names(counts)} {verb}; unset "
            f"{'it' if len(counts) == 1 else 'them'} (or give --config) to "
            "simulate another policy"
        )
        raise
    used = _variables_read(config)
    ignored = [n for n in _set_variables(environ) if n not in used]
    why = (
        f"policy from FAS_* variables: {', '.join(used)} "
        f"(no --config, and {_names(counts)} {verb}"
        f"{'; ' + _ignored(ignored) if ignored else ''})"
    )
    return PolicyChoice(_configured(config, "the FAS_* variables"), why)


def choose_policy(
    path: str | None, environ: Mapping[str, str], *, option: str = "--config"
) -> PolicyChoice:
    """Return the policy to simulate and why (see the module's rule).

    Args:
        path: The YAML file (``--config`` or ``--compare``), or ``None``.
        environ: The environment.
        option: The option that named *path*, for the header.

    Raises:
        ConfigError: The configuration is invalid; without *path*, a note
            names the count variables that made simulate read it.
        OSError: The file cannot be read.
    """
    if path is not None:
        return _from_file(path, option, environ)
    counts = [name for name in COUNT_VARIABLES if environ.get(name)]
    if counts:
        return _from_environment(environ, counts)
    ignored = _set_variables(environ)
    why = "the built-in policy (no --config and no FAS_* count expression set"
    why += f"; {_ignored(ignored)})" if ignored else ")"
    return PolicyChoice(builtin_policy(), why)
