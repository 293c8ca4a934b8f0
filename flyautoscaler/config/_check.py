"""The configuration's own checks: what only a whole configuration can get wrong.

The count expressions as pairs (the Go original's messages), the variables
``metric-query-variables`` lists, distinct metric names that are not the
current Machine counts' names, and every expression compiled against them
(and those two names). Checks of single settings (durations,
ranges, app names, headers) are in :mod:`flyautoscaler._validation`;
:meth:`~flyautoscaler.config.Config.validate` calls both, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flyautoscaler._errors import ConfigError, FlyAutoscalerError
from flyautoscaler._expr import compile_expression
from flyautoscaler._names import check_variable_name
from flyautoscaler._reconciler import FLEET_NAMES
from flyautoscaler._validation import quote

__all__ = [
    "check_counts",
    "check_expressions",
    "check_metric_names",
    "check_query_variable_names",
]


def _check_pair(kind: str, both: str, low: str, high: str) -> None:
    """Check the *kind* count expressions (``created`` or ``started``)."""
    if both and (low or high):
        raise ConfigError(
            f"cannot define {kind} machine count and min/max {kind} machine count"
        )
    if low and not high:
        raise ConfigError(
            f"max {kind} machine count required if min {kind} machine count is defined"
        )
    if high and not low:
        raise ConfigError(
            f"min {kind} machine count required if max {kind} machine count is defined"
        )


def check_counts(created: tuple[str, str, str], started: tuple[str, str, str]) -> None:
    """Check the count expressions, with the Go original's messages.

    Args:
        created: The created count: (both bounds, min, max).
        started: The started count: (both bounds, min, max).

    Raises:
        ConfigError: Neither count is set, or a count is set both ways, or
            only one of its bounds is.
    """
    if not any(created) and not any(started):
        raise ConfigError(
            "must define either created machine count or started machine count"
        )
    _check_pair("created", *created)
    _check_pair("started", *started)


def check_query_variable_names(
    names: Iterable[str], setting: str, *, secret_variables: frozenset[str]
) -> None:
    """Check the names ``metric-query-variables`` lists.

    Raises:
        ConfigError: A name is not a variable name, is ``APP_NAME``, or is
            one of *secret_variables* (the autoscaler's own credentials).
    """
    for name in names:
        check_variable_name(name, setting, field="metric_query_variables")
        if name in secret_variables:
            raise ConfigError(
                f"{setting}: {name} holds a credential and cannot be used in a query",
                field="metric_query_variables",
            )


def check_metric_names(names: Iterable[str]) -> None:
    """Check the collectors' metric names.

    Raises:
        ConfigError: Two collectors give the same metric name, or one is
            named ``created_machine_count`` or ``started_machine_count``,
            which expressions use for the current Machine counts.
    """
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in FLEET_NAMES:
            raise ConfigError(
                f"metric-collectors[{i}]: metric name {quote(name)} is reserved: "
                f"expressions use {' and '.join(FLEET_NAMES)} for the current "
                "Machine counts; choose another metric-name",
                field="metric_name",
            )
        if name in seen:
            raise ConfigError(
                f"metric-collectors[{i}]: duplicate metric name {quote(name)}",
                field="metric_name",
            )
        seen.add(name)


def check_expressions(sources: Mapping[str, str], known: list[str]) -> None:
    """Compile every expression against the *known* metric names.

    The current Machine counts, ``created_machine_count`` and
    ``started_machine_count``, are known too.

    Args:
        sources: The expressions, by attribute (``started_machine_count``);
            an empty one is skipped.
        known: The metric names the collectors give.

    Raises:
        ConfigError: ``invalid started machine count: ...``, naming what is
            wrong and where.
    """
    for attr, source in sources.items():
        if not source:
            continue
        try:
            compile_expression(source, [*known, *FLEET_NAMES])
        except FlyAutoscalerError as exc:
            label = attr.replace("_", " ")
            raise ConfigError(f"invalid {label}: {exc}", field=attr) from exc
