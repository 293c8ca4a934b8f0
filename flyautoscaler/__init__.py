"""flyautoscaler: autoscale Fly.io Machines from metrics.

A typed Python port of ``superfly/fly-autoscaler`` that embeds in your service.
The public API is what this module exports; everything in ``_modules`` is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flyautoscaler._errors import (
    ConfigError,
    CoordinationError,
    ExpressionError,
    ExprInfError,
    ExprNaNError,
    ExprRequiredError,
    FlapsConflictError,
    FlapsError,
    FlapsNotFoundError,
    FlapsNotSentError,
    FlapsRateLimitedError,
    FlapsServerError,
    FlapsTransportError,
    FlyAPIError,
    FlyAutoscalerError,
    MetricCollectionError,
    NoMachineToCloneError,
    ReconcileError,
)
from flyautoscaler._expr import (
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    Expression,
    compile_expression,
)
from flyautoscaler._models import (
    App,
    ImageRef,
    LaunchMachineInput,
    Machine,
    MachineConfig,
    MachineLease,
    MachineStartResponse,
    MachineState,
    Organization,
    Release,
    RemoveMachineInput,
    StopMachineInput,
)
from flyautoscaler._names import expand_metric_query, format_wildcard_as_regexp
from flyautoscaler._plan import Reason, Targets
from flyautoscaler._pool import ReconcilerPool
from flyautoscaler._protocols import (
    FlapsClient,
    FlyClient,
    LeasingClient,
    MachineMetricCollector,
    MetricCollector,
    NewFlapsClientFunc,
)
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._results import ActionFailure, ReconcileResult
from flyautoscaler._stats import ReconcilerStats
from flyautoscaler._status import AppStatus, PassReport, PoolHealth, PoolState

if TYPE_CHECKING:
    __version__: str

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "ActionFailure",
    "App",
    "AppStatus",
    "ConfigError",
    "CoordinationError",
    "ExprInfError",
    "ExprNaNError",
    "ExprRequiredError",
    "Expression",
    "ExpressionError",
    "FlapsClient",
    "FlapsConflictError",
    "FlapsError",
    "FlapsNotFoundError",
    "FlapsNotSentError",
    "FlapsRateLimitedError",
    "FlapsServerError",
    "FlapsTransportError",
    "FlyAPIError",
    "FlyAutoscalerError",
    "FlyClient",
    "ImageRef",
    "LaunchMachineInput",
    "LeasingClient",
    "Machine",
    "MachineConfig",
    "MachineLease",
    "MachineMetricCollector",
    "MachineStartResponse",
    "MachineState",
    "MetricCollectionError",
    "MetricCollector",
    "NewFlapsClientFunc",
    "NoMachineToCloneError",
    "Organization",
    "PassReport",
    "PoolHealth",
    "PoolState",
    "Reason",
    "ReconcileError",
    "ReconcileResult",
    "Reconciler",
    "ReconcilerPool",
    "ReconcilerStats",
    "Release",
    "RemoveMachineInput",
    "StopMachineInput",
    "Targets",
    "compile_expression",
    "expand_metric_query",
    "format_wildcard_as_regexp",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - only when asked

        return version("flyautoscaler")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
