"""Declarations of settings: what a setting of the command is, and a collector type.

A :class:`Setting` says how one value is configured: its YAML key, its
``FAS_*`` variables, how it is read (its :data:`Kind`) and whether it is a
credential. :mod:`flyautoscaler.config` declares the top-level settings this
way; each collector module declares its type with a :class:`CollectorType`
(its settings, the variable that turns it on, its checks and how it is
built). The configuration derives everything per setting from these: the
YAML keys it accepts, the variables it reads, the names messages use, the
variables queries may not use and the secrets the command keeps out of its
logs.

Declarations only: reading, checking and building live in
:mod:`flyautoscaler.config`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, Protocol

from attrs import frozen

from flyautoscaler._protocols import MachineMetricCollector, MetricCollector

__all__ = ["CollectorType", "Entry", "Kind", "Setting"]

#: How a value is read. ``string``: text, ``$VAR`` expanded in the file;
#: ``url``: text, stripped in the environment (a blank variable is unset);
#: ``secret``: text never shown in a message; ``query``: text never expanded
#: when read (it is expanded per app when collected); ``integer``,
#: ``boolean``, ``duration`` (Go's syntax); ``seconds``: a Go duration or a
#: number of seconds, never negative (``5m``, ``300``); ``string_list``,
#: ``query_list`` and ``name_list``: a YAML list, or a comma list in the
#: environment.
Kind = Literal[
    "string",
    "url",
    "secret",
    "query",
    "integer",
    "boolean",
    "duration",
    "seconds",
    "string_list",
    "query_list",
    "name_list",
]
#: The kinds whose value is a list.
LIST_KINDS: frozenset[Kind] = frozenset({"string_list", "query_list", "name_list"})


@frozen
class Setting:
    """One setting: where it is read from and how.

    Attributes:
        key: The YAML key, kebab-case (``api-key``).
        attribute: The attribute it sets (``api_key``).
        kind: How it is read; see :data:`Kind`.
        env: The variables it is read from; the first one set wins.
        credential: Whether it holds a credential: the command keeps its
            value out of its logs, and ``metric-query-variables`` may not
            list its variables.
        header: Whether it is sent in an HTTP header (or gRPC metadata), so
            that a character a header cannot carry is refused at start-up.
        required: For a collector's setting, the message when it is missing
            (the Go original's, such as ``prometheus address required``);
            ``""`` when it is optional.
    """

    key: str
    attribute: str
    kind: Kind = "string"
    env: tuple[str, ...] = ()
    credential: bool = False
    header: bool = False
    required: str = ""


class Entry(Protocol):
    """One ``metric-collectors`` entry, as a collector type's functions read it.

    :class:`flyautoscaler.config.CollectorConfig` is one.
    """

    def text(self, attribute: str) -> str:
        """Return a text setting (``""`` when unset)."""
        ...  # pragma: no cover - a Protocol

    def strings(self, attribute: str) -> list[str]:
        """Return a list setting (``[]`` when unset)."""
        ...  # pragma: no cover - a Protocol


def _no_check(entry: Entry) -> None:
    """A collector type without checks of its own."""


@frozen
class CollectorType:
    """A collector the command can configure: declared once, in its module.

    Adding a collector means one of these in its module, listed in
    :data:`flyautoscaler.collectors.TYPES`; the configuration derives the
    rest.

    Attributes:
        name: The ``type`` value of its ``metric-collectors`` entries.
        enabled_by: The variable whose presence adds one from the
            environment (``FAS_PROMETHEUS_ADDRESS``).
        settings: Its settings, ``metric-name`` included (``type`` is
            common to every entry).
        build: Builds the collector from a checked entry and the values of
            the variables its query may use.
        check: Checks beyond the required settings (raises
            :class:`~flyautoscaler.ConfigError`).
        build_machine: Builds the type's per-Machine collector (a
            ``stop-metric-collector``) the same way, or ``None`` when the
            type has none.
    """

    name: str
    enabled_by: str
    settings: tuple[Setting, ...]
    build: Callable[[Entry, Mapping[str, str]], MetricCollector]
    check: Callable[[Entry], None] = _no_check
    build_machine: (
        Callable[[Entry, Mapping[str, str]], MachineMetricCollector] | None
    ) = None
