"""One ``metric-collectors`` entry (:class:`CollectorConfig`), as collectors declare it.

Which keys an entry accepts, which are required, which are credentials or
sent in a header, and how each type is built all come from the collector
types (:data:`flyautoscaler.collectors.TYPES`); an entry checks and builds
itself through its type's declaration. The ``stop-metric-collector`` block
is an entry too, built as its type's per-Machine collector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from attrs import define, evolve, field, fields

from flyautoscaler._errors import ConfigError
from flyautoscaler._protocols import MachineMetricCollector, MetricCollector
from flyautoscaler._settings import LIST_KINDS, CollectorType, Kind, Setting
from flyautoscaler._validation import check_header_value, quote, require
from flyautoscaler.collectors import TYPES

__all__ = [
    "COLLECTOR_KEYS",
    "COLLECTOR_TYPES",
    "CREDENTIALS",
    "DEFAULT_STOP_METRIC_NAME",
    "MACHINE_COLLECTOR_TYPES",
    "CollectorConfig",
    "put",
]

#: The ``type`` values of a ``metric-collectors`` entry.
COLLECTOR_TYPES: Final = tuple(declared.name for declared in TYPES)
#: The ``type`` values of a ``stop-metric-collector``: those with a
#: per-Machine collector.
MACHINE_COLLECTOR_TYPES: Final = tuple(
    declared.name for declared in TYPES if declared.build_machine is not None
)
#: The name of a ``stop-metric-collector`` without a ``metric-name``.
DEFAULT_STOP_METRIC_NAME: Final = "stop_metric"


def _collector_settings() -> dict[str, Setting]:
    """Return every collector setting by attribute, ``type`` first.

    Types may share a setting (``address``, ``query``): they must then agree
    on its key and kind. Its ``credential`` and ``header`` flags hold when
    any type declares them.

    Raises:
        TypeError: Two declarations disagree (a programming error).
    """
    found: dict[str, Setting] = {"type": Setting("type", "type")}
    keys = {"type": "type"}
    for declared in TYPES:
        for setting in declared.settings:
            seen = found.get(setting.attribute)
            owner = keys.setdefault(setting.key, setting.attribute)
            if owner != setting.attribute or (
                seen is not None
                and (seen.key, seen.kind) != (setting.key, setting.kind)
            ):
                raise TypeError(
                    f"collector type {declared.name!r} declares {setting.key!r} "
                    "unlike another type"
                )
            if seen is None:
                found[setting.attribute] = evolve(setting, env=(), required="")
            else:
                found[setting.attribute] = evolve(
                    seen,
                    credential=seen.credential or setting.credential,
                    header=seen.header or setting.header,
                )
    return found


_COLLECTOR_SETTINGS: Final = _collector_settings()
#: The keys of a ``metric-collectors`` entry: key -> (attribute, kind).
COLLECTOR_KEYS: Final[dict[str, tuple[str, Kind]]] = {
    s.key: (s.attribute, s.kind) for s in _COLLECTOR_SETTINGS.values()
}
_TYPE_OF: Final[dict[str, CollectorType]] = {t.name: t for t in TYPES}
#: The attributes that hold a credential, in the order of the declarations.
CREDENTIALS: Final = tuple(a for a, s in _COLLECTOR_SETTINGS.items() if s.credential)
_HEADERS: Final = tuple(a for a, s in _COLLECTOR_SETTINGS.items() if s.header)


@define
class CollectorConfig:
    """One entry of ``metric-collectors``: which collector, and its settings.

    Each collector type declares which settings it reads (see
    :mod:`flyautoscaler.collectors`); any entry may hold any of them.

    Attributes:
        type: ``"prometheus"``, ``"temporal"`` or ``"redis"``.
        metric_name: The name count expressions use for its value.
        address: Prometheus: the server's base URL; Temporal: ``host:port``.
        query: Prometheus: the PromQL query; Temporal: an extra visibility
            filter. Expanded per app (``$APP_NAME``) when collected.
        token: Prometheus: the credential (``FlyV1 ...`` or a bearer token).
        namespace: Temporal: the namespace (default ``"default"``).
        cert_data: Temporal: PEM client certificate for mTLS.
        key_data: Temporal: PEM private key of *cert_data*.
        api_key: Temporal: a Temporal Cloud API key.
        url: Redis: ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://...`` or ``unix:///path``.
        keys: Redis: the lists whose lengths are summed (``$APP_NAME`` allowed).
        origins: Where each attribute was read from, by attribute: the
            ``FAS_*`` variable or the YAML key, so that messages name the
            setting as the user wrote it. :func:`load_config` fills it in.
        options: The settings of a collector type that have no attribute
            above, by attribute name; never shown.
    """

    type: str = ""
    metric_name: str = ""
    address: str = ""
    query: str = ""
    token: str = field(default="", repr=False)
    namespace: str = ""
    cert_data: str = field(default="", repr=False)
    key_data: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    url: str = field(default="", repr=False)
    keys: list[str] = field(factory=list)
    origins: dict[str, str] = field(factory=dict, repr=False, eq=False)
    options: dict[str, str | list[str]] = field(factory=dict, repr=False)

    def setting(self, attribute: str) -> str:
        """Return the name of *attribute*'s setting as the user wrote it.

        The ``FAS_*`` variable or YAML key it came from (see :attr:`origins`),
        else its YAML key.
        """
        return self.origins.get(attribute) or _COLLECTOR_SETTINGS[attribute].key

    def text(self, attribute: str) -> str:
        """Return the text setting *attribute* (``""`` when unset)."""
        value = _value(self, attribute)
        return value if isinstance(value, str) else ""

    def strings(self, attribute: str) -> list[str]:
        """Return the list setting *attribute* (``[]`` when unset)."""
        value = _value(self, attribute)
        return value if isinstance(value, list) else []

    def validate(self, *, per_machine: bool = False) -> None:
        """Check the entry, with the Go original's messages where it has them.

        Args:
            per_machine: Check it as a ``stop-metric-collector``: its
                ``metric-name`` is optional, and its type must have a
                per-Machine collector.

        Raises:
            ConfigError: ``metric name required``, ``type required``,
                ``invalid type: "x"``, ``prometheus address required``,
                ``prometheus query required``, ``temporal address required``,
                ``redis url required`` or ``redis keys required``; or a token
                or API key has a character no HTTP header can carry.
        """
        if not per_machine:
            require(self.metric_name, "metric name required", field="metric_name")
        require(self.type, "type required", field="type")
        declared = _TYPE_OF.get(self.type)
        if declared is None:
            raise ConfigError(f"invalid type: {quote(self.type)}", field="type")
        if per_machine and declared.build_machine is None:
            allowed = " or ".join(quote(name) for name in MACHINE_COLLECTOR_TYPES)
            raise ConfigError(
                f"type {quote(self.type)} has no per-Machine collector: the type "
                f"must be {allowed}",
                field="type",
            )
        for setting in declared.settings:
            if setting.required:
                value = _value(self, setting.attribute)
                require(any(value), setting.required, field=setting.attribute)
        declared.check(self)
        # Sent as a header (Prometheus) or as gRPC metadata (Temporal).
        for attribute in _HEADERS:
            check_header_value(
                self.text(attribute), self.setting(attribute), field=attribute
            )

    def build(self, variables: Mapping[str, str] | None = None) -> MetricCollector:
        """Build the collector this entry describes.

        Args:
            variables: The variables its query or keys may use besides
                ``$APP_NAME``, with their values (see
                :meth:`Config.query_variables`).

        Raises:
            ConfigError: The entry is invalid, or the collector refused a
                setting (for example an address that is not an http(s) URL).
            ImportError: The collector's extra (``redis``, ``temporal``) is
                not installed; the message names the ``pip install`` command.
        """
        self.validate()
        return _TYPE_OF[self.type].build(self, dict(variables or {}))

    def build_machine(
        self, variables: Mapping[str, str] | None = None
    ) -> MachineMetricCollector:
        """Build the per-Machine collector this entry describes.

        Named by its ``metric-name``, else :data:`DEFAULT_STOP_METRIC_NAME`.

        Args:
            variables: As for :meth:`build`.

        Raises:
            ConfigError: The entry is invalid (see :meth:`validate` with
                *per_machine*), or the collector refused a setting.
        """
        self.validate(per_machine=True)
        build = _TYPE_OF[self.type].build_machine
        assert build is not None  # noqa: S101 - validate() checked it
        named = (
            self
            if self.metric_name
            else evolve(self, metric_name=DEFAULT_STOP_METRIC_NAME)
        )
        return build(named, dict(variables or {}))


_FIELD_NAMES: Final = frozenset(a.name for a in fields(CollectorConfig))


def _value(entry: CollectorConfig, attribute: str) -> str | list[str]:
    """Return the value of *entry*'s setting *attribute* (a field or an option)."""
    if attribute in _FIELD_NAMES:
        value: str | list[str] = getattr(entry, attribute)
        return value
    kind = _COLLECTOR_SETTINGS[attribute].kind
    return entry.options.get(attribute, [] if kind in LIST_KINDS else "")


def put(entry: CollectorConfig, attribute: str, value: str | list[str]) -> None:
    """Set *entry*'s setting *attribute* (a field, else an option)."""
    if attribute in _FIELD_NAMES:
        setattr(entry, attribute, value)
    else:
        entry.options[attribute] = value
