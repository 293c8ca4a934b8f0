"""What the command's configuration is: :class:`Config`, its checks and what it builds.

Each top-level setting is declared once, on its :class:`Config` field: its
default, its YAML key, its ``FAS_*`` variable and its kind (see
:func:`_setting`). The tables the readers of the environment and of the
file, the checks and the messages use are derived from those fields (and,
for the collectors, from their types' declarations: see
:mod:`~flyautoscaler.config._entry`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from attrs import define, evolve, field, fields

from flyautoscaler._errors import ConfigError
from flyautoscaler._http import token_header_problem
from flyautoscaler._models import DEFAULT_PROCESS_GROUP, MachineState
from flyautoscaler._pool import (
    DEFAULT_APP_LIST_REFRESH_INTERVAL,
    DEFAULT_RECONCILE_INTERVAL,
    DEFAULT_RECONCILE_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_UNHEALTHY_AFTER,
)
from flyautoscaler._protocols import MachineMetricCollector, MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._redis import check_redis_url
from flyautoscaler._settings import Kind, Setting
from flyautoscaler._validation import (
    MAX_CONCURRENCY,
    check_app_name,
    check_duration,
    check_fallback,
    check_header_value,
    check_initial_machine_state,
    check_machine_leases,
    check_range,
    check_stop_mode,
    check_wildcard_org,
    check_window,
    parse_step,
    require,
)
from flyautoscaler.collectors import TYPES
from flyautoscaler.collectors._prometheus import PROMETHEUS
from flyautoscaler.config._build import credential_pieces, query_variable_values
from flyautoscaler.config._check import (
    check_counts,
    check_expressions,
    check_metric_names,
    check_query_variable_names,
)
from flyautoscaler.config._entry import CREDENTIALS, CollectorConfig
from flyautoscaler.coordination import Coordinator
from flyautoscaler.fly import DEFAULT_API_BASE_URL, DEFAULT_FLAPS_BASE_URL

__all__ = [
    "DEFAULT_METRICS_ADDRESS",
    "MAX_UNHEALTHY_AFTER",
    "SECRET_VARIABLES",
    "STOP_METRIC_QUERY_VARIABLE",
    "STOP_METRIC_REUSED",
    "TOP_KEYS",
    "TOP_SETTINGS",
    "Config",
    "secrets",
]

#: Where ``serve`` answers ``/metrics`` and ``/healthz`` unless told otherwise.
DEFAULT_METRICS_ADDRESS: Final = ":9090"
#: ``machine-leases`` of the command: scale-down actions under a lease. It
#: costs scale-downs about one round trip each and scale-ups nothing
#: (``benchmarks/leases.py``), and keeps a deploy's Machines from being
#: stopped under it. (The library's default is off: a client of the user's own
#: need not lease.)
COMMAND_MACHINE_LEASES: Final = "scale-down"
#: The most failed passes in a row ``unhealthy-after`` may wait for.
MAX_UNHEALTHY_AFTER: Final = 1000
#: The variable that sets the stop metric's query; the rest of the
#: ``stop-metric-collector`` comes from the Prometheus collector's variables.
STOP_METRIC_QUERY_VARIABLE: Final = "FAS_STOP_METRIC_PROMETHEUS_QUERY"

# Fly's usual token variables: metric-query-variables may not list them either.
_FLY_TOKEN_VARIABLES: Final = frozenset({"FLY_API_TOKEN", "FLY_ACCESS_TOKEN"})
# The attrs metadata key of a top-level setting's declaration.
_SETTING: Final = "flyautoscaler.setting"
_WINDOW_FIELDS: Final = (
    "scale_down_stabilization",
    "scale_up_stabilization",
    "release_timeout",
)
_STEP_FIELDS: Final = ("max_scale_up_step", "max_scale_down_step")
_EXPRESSION_FIELDS: Final = (
    "created_machine_count",
    "min_created_machine_count",
    "max_created_machine_count",
    "started_machine_count",
    "min_started_machine_count",
    "max_started_machine_count",
)


def secrets(config: Config) -> list[str]:
    """Return every configured credential that is set: what logs must not show.

    The API token and each collector's credentials (tokens, keys, Redis
    URLs), as the collector types declare them.
    """
    values = [config.api_token, config.coordination_url]
    for _, entry in config.collector_entries():
        values += [entry.text(attribute) for attribute in CREDENTIALS]
    return [value for value in values if value]


# --- the configuration -----------------------------------------------------------


def _setting(
    key: str, variable: str, kind: Kind = "string", *, credential: bool = False
) -> dict[str, Setting]:
    """Declare a top-level setting, as the metadata of its :class:`Config` field."""
    return {_SETTING: Setting(key, "", kind, env=(variable,), credential=credential)}


@define
class Config:
    """Everything ``flyautoscaler serve`` and ``eval`` need.

    Build it with :func:`load_config`; every field has the Go original's
    default. Durations are float seconds.

    Attributes:
        app_name: The app to scale, or a wildcard such as ``my-app-*``.
        org: The organization slug of a wildcard's apps.
        regions: Regions to create Machines in, round-robin.
        process_group: The process group to scale.
        created_machine_count: Expression for both bounds of created Machines.
        min_created_machine_count: Expression for the least created Machines.
        max_created_machine_count: Expression for the most created Machines.
        initial_machine_state: ``"started"`` or ``"stopped"``: the state of
            created Machines.
        started_machine_count: Expression for both bounds of started Machines.
        min_started_machine_count: Expression for the least started Machines.
        max_started_machine_count: Expression for the most started Machines.
        concurrency: Worker threads (for a wildcard), 1 to 256.
        interval: Seconds between two passes of an app (at most a day).
        timeout: Seconds one pass may take (at most a day).
        request_timeout: Seconds one Machines API request may take, connect
            and read timeouts together (at most a day); with
            :attr:`coordination_url`, it sets how long an app's lease lasts.
        app_list_refresh_interval: Seconds between two refreshes of a
            wildcard's app list (at most a day).
        api_token: The Fly API token; never shown.
        coordination_url: ``redis://...`` (or ``rediss://``, ``unix://``) of
            the Redis that replicas of ``serve`` coordinate through; empty
            (the default): this process reconciles every app alone. Never
            shown.
        verbose: Log at debug level.
        unhealthy_after: Failed passes in a row after which ``serve``'s
            ``/healthz`` reports an app unhealthy (503).
        scale_down_stabilization: Seconds; scale down only to the highest
            max target of this window (0: off). See
            :attr:`Reconciler.scale_down_stabilization
            <flyautoscaler.Reconciler.scale_down_stabilization>`.
        scale_up_stabilization: Seconds; scale up only to the lowest min
            target of this window (0: off).
        max_scale_up_step: Most creates, and most starts, in one pass: a
            count (``"4"``) or a percent of the current count (``"50%"``);
            ``""``: no limit.
        max_scale_down_step: Most destroys, and most stops, in one pass; as
            :attr:`max_scale_up_step`.
        fallback_after: Failed passes in a row after which the fallback
            count applies; 0 holds the fleet.
        fallback_started_machine_count: The started count during fallback;
            ``None``: unset.
        stop_mode: ``"stop"`` or ``"suspend"``: how started Machines are
            brought down.
        machine_leases: ``"off"``, ``"scale-down"`` (the default) or
            ``"all"``: which Machine actions are taken under a Fly lease on
            the Machine.
        release_timeout: Seconds a release may stay ``running`` and still
            hold its app's passes; 0 waits however long it runs.
        metric_collectors: Where the metrics come from.
        stop_metric_collector: Where the per-Machine metric that ranks the
            Machines to stop comes from; ``None``: the default order.
        metric_query_variables: Environment variables that queries and Redis
            keys may use besides ``$APP_NAME``; no other is ever expanded.
        metrics_address: ``host:port`` where ``serve`` answers ``/metrics``
            and ``/healthz``; ``:9090`` is every interface.
        flaps_base_url: The Machines API.
        api_base_url: The GraphQL API host.
        origins: Where each attribute was read from, by attribute: the
            ``FAS_*`` variable or the YAML key, so that messages name the
            setting as the user wrote it. :func:`load_config` fills it in.
    """

    app_name: str = field(default="", metadata=_setting("app-name", "FAS_APP_NAME"))
    org: str = field(default="", metadata=_setting("org", "FAS_ORG"))
    regions: list[str] = field(
        factory=list, metadata=_setting("regions", "FAS_REGIONS", "string_list")
    )
    process_group: str = field(
        default=DEFAULT_PROCESS_GROUP,
        metadata=_setting("process-group", "FAS_PROCESS_GROUP"),
    )
    created_machine_count: str = field(
        default="",
        metadata=_setting("created-machine-count", "FAS_CREATED_MACHINE_COUNT"),
    )
    min_created_machine_count: str = field(
        default="",
        metadata=_setting("min-created-machine-count", "FAS_MIN_CREATED_MACHINE_COUNT"),
    )
    max_created_machine_count: str = field(
        default="",
        metadata=_setting("max-created-machine-count", "FAS_MAX_CREATED_MACHINE_COUNT"),
    )
    initial_machine_state: str = field(
        default=MachineState.STARTED,
        metadata=_setting("initial-machine-state", "FAS_INITIAL_MACHINE_STATE"),
    )
    started_machine_count: str = field(
        default="",
        metadata=_setting("started-machine-count", "FAS_STARTED_MACHINE_COUNT"),
    )
    min_started_machine_count: str = field(
        default="",
        metadata=_setting("min-started-machine-count", "FAS_MIN_STARTED_MACHINE_COUNT"),
    )
    max_started_machine_count: str = field(
        default="",
        metadata=_setting("max-started-machine-count", "FAS_MAX_STARTED_MACHINE_COUNT"),
    )
    concurrency: int = field(
        default=1, metadata=_setting("concurrency", "FAS_CONCURRENCY", "integer")
    )
    interval: float = field(
        default=DEFAULT_RECONCILE_INTERVAL,
        metadata=_setting("interval", "FAS_INTERVAL", "duration"),
    )
    timeout: float = field(
        default=DEFAULT_RECONCILE_TIMEOUT,
        metadata=_setting("timeout", "FAS_TIMEOUT", "duration"),
    )
    request_timeout: float = field(
        default=DEFAULT_REQUEST_TIMEOUT,
        metadata=_setting("request-timeout", "FAS_REQUEST_TIMEOUT", "duration"),
    )
    app_list_refresh_interval: float = field(
        default=DEFAULT_APP_LIST_REFRESH_INTERVAL,
        metadata=_setting(
            "app-list-refresh-interval", "FAS_APP_LIST_REFRESH_INTERVAL", "duration"
        ),
    )
    api_token: str = field(
        default="",
        repr=False,
        metadata=_setting("api-token", "FAS_API_TOKEN", "secret", credential=True),
    )
    coordination_url: str = field(
        default="",
        repr=False,
        metadata=_setting(
            "coordination-url", "FAS_COORDINATION_URL", "secret", credential=True
        ),
    )
    verbose: bool = field(
        default=False, metadata=_setting("verbose", "FAS_VERBOSE", "boolean")
    )
    unhealthy_after: int = field(
        default=DEFAULT_UNHEALTHY_AFTER,
        metadata=_setting("unhealthy-after", "FAS_UNHEALTHY_AFTER", "integer"),
    )
    scale_down_stabilization: float = field(
        default=0.0,
        metadata=_setting(
            "scale-down-stabilization", "FAS_SCALE_DOWN_STABILIZATION", "seconds"
        ),
    )
    scale_up_stabilization: float = field(
        default=0.0,
        metadata=_setting(
            "scale-up-stabilization", "FAS_SCALE_UP_STABILIZATION", "seconds"
        ),
    )
    max_scale_up_step: str = field(
        default="", metadata=_setting("max-scale-up-step", "FAS_MAX_SCALE_UP_STEP")
    )
    max_scale_down_step: str = field(
        default="",
        metadata=_setting("max-scale-down-step", "FAS_MAX_SCALE_DOWN_STEP"),
    )
    fallback_after: int = field(
        default=0,
        metadata=_setting("fallback-after", "FAS_FALLBACK_AFTER", "integer"),
    )
    fallback_started_machine_count: int | None = field(
        default=None,
        metadata=_setting(
            "fallback-started-machine-count",
            "FAS_FALLBACK_STARTED_MACHINE_COUNT",
            "integer",
        ),
    )
    stop_mode: str = field(
        default="stop", metadata=_setting("stop-mode", "FAS_STOP_MODE")
    )
    machine_leases: str = field(
        default=COMMAND_MACHINE_LEASES,
        metadata=_setting("machine-leases", "FAS_MACHINE_LEASES"),
    )
    release_timeout: float = field(
        default=0.0,
        metadata=_setting("release-timeout", "FAS_RELEASE_TIMEOUT", "seconds"),
    )
    metric_collectors: list[CollectorConfig] = field(factory=list)
    stop_metric_collector: CollectorConfig | None = None
    metric_query_variables: list[str] = field(
        factory=list,
        metadata=_setting(
            "metric-query-variables", "FAS_METRIC_QUERY_VARIABLES", "name_list"
        ),
    )
    metrics_address: str = field(
        default=DEFAULT_METRICS_ADDRESS,
        metadata=_setting("metrics-address", "FAS_METRICS_ADDRESS"),
    )
    flaps_base_url: str = field(
        default=DEFAULT_FLAPS_BASE_URL,
        metadata=_setting("flaps-base-url", "FLY_FLAPS_BASE_URL", "url"),
    )
    api_base_url: str = field(
        default=DEFAULT_API_BASE_URL,
        metadata=_setting("api-base-url", "FLY_API_BASE_URL", "url"),
    )
    origins: dict[str, str] = field(factory=dict, repr=False, eq=False)

    def setting(self, attribute: str) -> str:
        """Return the name of *attribute*'s setting as the user wrote it.

        The ``FAS_*`` variable or YAML key it came from (see :attr:`origins`),
        else its YAML key.
        """
        return self.origins.get(attribute) or _TOP_KEY_OF[attribute]

    # --- expressions (Go's GetMin/MaxCreated/StartedMachineN) ---

    def min_created_expr(self) -> str:
        """``created_machine_count`` if set, else ``min_created_machine_count``."""
        return self.created_machine_count or self.min_created_machine_count

    def max_created_expr(self) -> str:
        """``created_machine_count`` if set, else ``max_created_machine_count``."""
        return self.created_machine_count or self.max_created_machine_count

    def min_started_expr(self) -> str:
        """``started_machine_count`` if set, else ``min_started_machine_count``."""
        return self.started_machine_count or self.min_started_machine_count

    def max_started_expr(self) -> str:
        """``started_machine_count`` if set, else ``max_started_machine_count``."""
        return self.started_machine_count or self.max_started_machine_count

    def metric_names(self) -> list[str]:
        """Return the configured collectors' metric names, in order."""
        return [c.metric_name for c in self.metric_collectors]

    def collector_entries(self) -> list[tuple[str, CollectorConfig]]:
        """Return every collector entry, with where it is in the file.

        The ``metric-collectors`` entries (``metric-collectors[0]``, ...),
        then the ``stop-metric-collector``, if any.
        """
        entries = [
            (f"metric-collectors[{i}]", entry)
            for i, entry in enumerate(self.metric_collectors)
        ]
        if self.stop_metric_collector is not None:
            entries.append(("stop-metric-collector", self.stop_metric_collector))
        return entries

    # --- validation ---

    def validate(self, *, require_token: bool = False) -> None:
        """Check the configuration; the first problem found is raised.

        First the Go original's checks, with its messages: ``app name
        required``, ``must define either created machine count or started
        machine count``, the created and started count pairs, ``initial machine
        state must be either 'started' or 'stopped'``, and each collector
        (``metric-collectors[0]: metric name required``, ...), then the
        ``stop-metric-collector``. Then: ``api token required`` when
        *require_token*; an organization for a wildcard; an app name Fly
        allows; positive durations up to 24 h and a concurrency from 1 to
        256; tokens an HTTP header can carry; the scaling behaviour (windows
        and the release timeout from 0 to 24 h, steps, the fallback pair,
        the stop mode); the names ``metric-query-variables`` lists; distinct
        metric names, none of them ``created_machine_count`` or
        ``started_machine_count``; and every expression compiled and checked
        against :meth:`metric_names` and those two names, so a misspelled
        metric or a function given the wrong arguments fails here, naming it.

        Args:
            require_token: Whether an API token is needed (``serve``; not
                ``eval``).

        Raises:
            ConfigError: What is wrong.
        """
        require(self.app_name, "app name required", field="app_name")
        check_counts(
            (
                self.created_machine_count,
                self.min_created_machine_count,
                self.max_created_machine_count,
            ),
            (
                self.started_machine_count,
                self.min_started_machine_count,
                self.max_started_machine_count,
            ),
        )
        check_initial_machine_state(self.initial_machine_state)
        for i, collector in enumerate(self.metric_collectors):
            try:
                collector.validate()
            except ConfigError as exc:
                raise ConfigError(
                    f"metric-collectors[{i}]: {exc}", field=exc.field
                ) from None
        self._check_stop_metric()
        if require_token:
            require(self.api_token, "api token required", field="api_token")
        self._validate_settings()
        self._validate_behaviour()
        check_query_variable_names(
            self.metric_query_variables,
            self.setting("metric_query_variables"),
            secret_variables=SECRET_VARIABLES,
        )
        check_metric_names(self.metric_names())
        check_expressions(
            {attr: getattr(self, attr) for attr in _EXPRESSION_FIELDS},
            self.metric_names(),
        )

    def _validate_settings(self) -> None:
        """Check the settings the Go original leaves unchecked, one by one."""
        check_wildcard_org(self.app_name, self.org, field="org")
        if self.coordination_url:
            check_redis_url(
                self.coordination_url,
                self.setting("coordination_url"),
                field="coordination_url",
            )
        check_app_name(self.app_name, self.setting("app_name"), field="app_name")
        check_range(
            self.concurrency,
            self.setting("concurrency"),
            field="concurrency",
            low=1,
            high=MAX_CONCURRENCY,
        )
        for name in (
            "interval",
            "timeout",
            "request_timeout",
            "app_list_refresh_interval",
        ):
            check_duration(getattr(self, name), self.setting(name), field=name)
        check_range(
            self.unhealthy_after,
            self.setting("unhealthy_after"),
            field="unhealthy_after",
            low=1,
            high=MAX_UNHEALTHY_AFTER,
        )
        check_header_value(
            self.api_token,
            self.setting("api_token"),
            field="api_token",
            problem_of=token_header_problem,
        )

    def _validate_behaviour(self) -> None:
        """Check the settings of scaling decisions with memory, as the library does."""
        for name in _WINDOW_FIELDS:
            check_window(getattr(self, name), self.setting(name), field=name)
        for name in _STEP_FIELDS:
            parse_step(getattr(self, name), self.setting(name), field=name)
        count = self.fallback_started_machine_count
        for name, value in (
            ("fallback_after", self.fallback_after),
            ("fallback_started_machine_count", count),
        ):
            if value is not None:
                check_range(value, self.setting(name), field=name, low=0)
        check_fallback(
            self.fallback_after,
            count,
            after_setting=self.setting("fallback_after"),
            count_setting=self.setting("fallback_started_machine_count"),
            count_field="fallback_started_machine_count",
        )
        check_stop_mode(self.stop_mode, self.setting("stop_mode"))
        check_machine_leases(self.machine_leases, self.setting("machine_leases"))

    def _check_stop_metric(self) -> CollectorConfig | None:
        """Check the ``stop-metric-collector`` entry; return it (``None``: unset).

        Raises:
            ConfigError: The entry is invalid (``stop-metric-collector:
                prometheus query required``), or its query is set by
                ``FAS_STOP_METRIC_PROMETHEUS_QUERY`` while no
                ``FAS_PROMETHEUS_ADDRESS`` is.
        """
        entry = self.stop_metric_collector
        if entry is None:
            return None
        if (
            entry.origins.get("query") == STOP_METRIC_QUERY_VARIABLE
            and not entry.address
        ):
            raise ConfigError(
                f"{STOP_METRIC_QUERY_VARIABLE} is set but {PROMETHEUS.enabled_by} "
                "is not: the stop metric is queried on the metric collector's "
                f"Prometheus server ({_reused_variables()})",
                field="address",
            )
        try:
            entry.validate(per_machine=True)
        except ConfigError as exc:
            raise ConfigError(
                f"stop-metric-collector: {exc}", field=exc.field
            ) from None
        return entry

    # --- building ---

    def query_variables(
        self, environ: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Return the values of the variables :attr:`metric_query_variables` lists.

        Args:
            environ: Where to read them (default :data:`os.environ`).

        Raises:
            ConfigError: A listed variable is not set, or its value contains
                a configured credential (the API token, a collector's token,
                key, or Redis URL or password).
        """
        return query_variable_values(
            self.metric_query_variables,
            self.setting("metric_query_variables"),
            os.environ if environ is None else environ,
            self._credentials(),
        )

    def _credentials(self) -> list[tuple[str, str]]:
        """Return (setting, piece) for every configured credential."""
        found = credential_pieces(self.setting("api_token"), self.api_token)
        found += credential_pieces(
            self.setting("coordination_url"), self.coordination_url, in_url=True
        )
        for where, entry in self.collector_entries():
            for attribute in CREDENTIALS:
                holder = f"{where} {entry.setting(attribute)}"
                found += credential_pieces(holder, entry.text(attribute), in_url=True)
        return found

    def build_coordinator(self) -> Coordinator | None:
        """Return the coordinator of :attr:`coordination_url` (``None``: unset).

        Raises:
            ImportError: redis-py (the ``redis`` extra) is not installed.
        """
        if not self.coordination_url:
            return None
        from flyautoscaler.coordination import RedisCoordinator  # noqa: PLC0415

        return RedisCoordinator(self.coordination_url)

    def build_collectors(
        self, environ: Mapping[str, str] | None = None
    ) -> list[MetricCollector]:
        """Build every configured collector, in order.

        Each gets the values of :attr:`metric_query_variables`, read once.

        Args:
            environ: Where to read the listed variables (default
                :data:`os.environ`).

        Raises:
            ConfigError: An entry is invalid, or its collector's extra is not
                installed (``metric collector[0]: ...``, as Go words it), or a
                listed variable is unusable (see :meth:`query_variables`).
        """
        variables = self.query_variables(environ)
        collectors: list[MetricCollector] = []
        for i, entry in enumerate(self.metric_collectors):
            try:
                collectors.append(entry.build(variables))
            except (ConfigError, ImportError) as exc:
                raise ConfigError(f"metric collector[{i}]: {exc}") from exc
        return collectors

    def build_stop_metric_collector(
        self, environ: Mapping[str, str] | None = None
    ) -> MachineMetricCollector | None:
        """Build the ``stop-metric-collector``, if one is configured.

        It gets the values of :attr:`metric_query_variables`, as the metric
        collectors do.

        Args:
            environ: Where to read the listed variables (default
                :data:`os.environ`).

        Returns:
            The collector, or ``None`` when none is configured.

        Raises:
            ConfigError: The entry is invalid (``stop-metric-collector:
                ...``), or a listed variable is unusable (see
                :meth:`query_variables`).
        """
        entry = self._check_stop_metric()
        if entry is None:
            return None
        variables = self.query_variables(environ)
        try:
            return entry.build_machine(variables)
        except ConfigError as exc:
            raise ConfigError(f"stop-metric-collector: {exc}") from exc

    def new_reconciler(
        self,
        collectors: list[MetricCollector] | None = None,
        stop_metric_collector: MachineMetricCollector | None = None,
    ) -> Reconciler:
        """Return a :class:`~flyautoscaler.Reconciler` with this configuration.

        Sets the four expressions, the regions, the process group, the
        initial Machine state and the scaling behaviour (windows, steps,
        fallback, stop mode, stop metric). A pool sets the app name and
        client; the release timeout is the pool's (``serve`` passes it).

        Args:
            collectors: The collectors to use (the list is copied); ``None``
                builds new ones with :meth:`build_collectors`.
            stop_metric_collector: The stop metric's collector; ``None``
                builds one with :meth:`build_stop_metric_collector` (still
                ``None`` when none is configured).

        Raises:
            ConfigError: A collector cannot be built, or a step is invalid.
        """
        if stop_metric_collector is None:
            stop_metric_collector = self.build_stop_metric_collector()
        return Reconciler(
            regions=list(self.regions),
            process_group=self.process_group,
            min_created_machine_n=self.min_created_expr(),
            max_created_machine_n=self.max_created_expr(),
            min_started_machine_n=self.min_started_expr(),
            max_started_machine_n=self.max_started_expr(),
            initial_machine_state=self.initial_machine_state,
            collectors=list(
                self.build_collectors() if collectors is None else collectors
            ),
            scale_down_stabilization=self.scale_down_stabilization,
            scale_up_stabilization=self.scale_up_stabilization,
            max_scale_up_step=self._step("max_scale_up_step"),
            max_scale_down_step=self._step("max_scale_down_step"),
            fallback_after=self.fallback_after,
            fallback_started_machine_n=self.fallback_started_machine_count,
            stop_mode=self.stop_mode,
            machine_leases=self.machine_leases,
            stop_metric_collector=stop_metric_collector,
        )

    def _step(self, attribute: str) -> int | str | None:
        """Return a step setting as the Reconciler takes it: 4, "50%" or None."""
        limit = parse_step(
            getattr(self, attribute), self.setting(attribute), field=attribute
        )
        if limit is None:
            return None
        return limit.count if limit.count is not None else str(limit)


# --- the top-level settings, from their fields ----------------------------------

#: The top-level settings, in the order of :class:`Config`'s fields.
TOP_SETTINGS: Final = tuple(
    evolve(a.metadata[_SETTING], attribute=a.name)
    for a in fields(Config)
    if _SETTING in a.metadata
)
#: The top-level keys of the file (``metric-collectors`` aside):
#: key -> (attribute, kind).
TOP_KEYS: Final[dict[str, tuple[str, Kind]]] = {
    s.key: (s.attribute, s.kind) for s in TOP_SETTINGS
}
_TOP_KEY_OF: Final = {s.attribute: s.key for s in TOP_SETTINGS}
#: The Prometheus collector's settings (address, token) that the stop metric
#: set by :data:`STOP_METRIC_QUERY_VARIABLE` reuses.
STOP_METRIC_REUSED: Final = tuple(
    s for s in PROMETHEUS.settings if s.attribute in {"address", "token"}
)


def _reused_variables() -> str:
    """Name the variables an environment's stop metric reuses, for messages."""
    return " and ".join(v for s in STOP_METRIC_REUSED for v in s.env)


#: Variables that hold the autoscaler's own credentials (and Fly's usual
#: token variables): ``metric-query-variables`` may not list them.
SECRET_VARIABLES: Final = _FLY_TOKEN_VARIABLES | frozenset(
    variable
    for setting in (*TOP_SETTINGS, *(s for t in TYPES for s in t.settings))
    if setting.credential
    for variable in setting.env
)
