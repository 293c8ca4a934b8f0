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
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import yaml
from attrs import define, field

from flyautoscaler._durations import parse_duration
from flyautoscaler._errors import ConfigError, FlyAutoscalerError
from flyautoscaler._expr import compile_expression
from flyautoscaler._http import parse_token, token_header_problem
from flyautoscaler._models import DEFAULT_PROCESS_GROUP, MachineState
from flyautoscaler._names import check_variable_name, expand_variables
from flyautoscaler._pool import (
    DEFAULT_APP_LIST_REFRESH_INTERVAL,
    DEFAULT_RECONCILE_INTERVAL,
    DEFAULT_RECONCILE_TIMEOUT,
    DEFAULT_UNHEALTHY_AFTER,
)
from flyautoscaler._protocols import MetricCollector
from flyautoscaler._reconciler import Reconciler
from flyautoscaler._validation import (
    MAX_CONCURRENCY,
    check_app_name,
    check_duration,
    check_header_value,
    check_initial_machine_state,
    check_range,
    check_wildcard_org,
    require,
)
from flyautoscaler.fly import api_base_url, flaps_base_url

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

#: Where ``serve`` answers ``/metrics`` and ``/healthz`` unless told otherwise.
DEFAULT_METRICS_ADDRESS: Final = ":9090"
#: The most failed passes in a row ``unhealthy-after`` may wait for.
MAX_UNHEALTHY_AFTER: Final = 1000
#: The ``type`` values of a ``metric-collectors`` entry.
COLLECTOR_TYPES: Final = ("prometheus", "temporal", "redis")

# --- helpers ---------------------------------------------------------------------


def _quote(value: str) -> str:
    """Quote *value* the way Go's ``%q`` does (close enough: JSON's quoting)."""
    return json.dumps(value, ensure_ascii=False)


def _split_list(text: str) -> list[str]:
    """Split a comma list, dropping blanks around and between items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _pieces(value: str) -> list[str]:
    """Return *value* and, when it is a token list, each token in it."""
    macaroons, others = parse_token(value)
    return [p for p in (value.strip(), *macaroons, *others) if p]


_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


# --- metric query variables ----------------------------------------------------

#: Variables that hold the autoscaler's own credentials (and Fly's usual token
#: variables): ``metric-query-variables`` may not list them.
_SECRET_VARIABLES: Final = frozenset(
    {
        "FAS_API_TOKEN",
        "FAS_PROMETHEUS_TOKEN",
        "FAS_REDIS_URL",
        "FAS_TEMPORAL_API_KEY",
        "FAS_TEMPORAL_KEY_DATA",
        "TEMPORAL_TLS_KEY_DATA",
        "FLY_API_TOKEN",
        "FLY_ACCESS_TOKEN",
    }
)
# Shortest credential value looked for in a listed variable's value.
_MIN_CREDENTIAL_LENGTH: Final = 8


# --- collectors ------------------------------------------------------------------

# Settings each collector type requires: (attribute, message if missing).
_REQUIRED: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "prometheus": (
        ("address", "prometheus address required"),
        ("query", "prometheus query required"),
    ),
    "temporal": (("address", "temporal address required"),),
    "redis": (("url", "redis url required"), ("keys", "redis keys required")),
}


@define
class CollectorConfig:
    """One entry of ``metric-collectors``: which collector, and its settings.

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

    def setting(self, attribute: str) -> str:
        """Return the name of *attribute*'s setting as the user wrote it.

        The ``FAS_*`` variable or YAML key it came from (see :attr:`origins`),
        else its YAML key.
        """
        return self.origins.get(attribute) or _COLLECTOR_KEY_OF[attribute]

    def validate(self) -> None:
        """Check the entry, with the Go original's messages where it has them.

        Raises:
            ConfigError: ``metric name required``, ``type required``,
                ``invalid type: "x"``, ``prometheus address required``,
                ``prometheus query required``, ``temporal address required``,
                ``redis url required`` or ``redis keys required``; or a token
                or API key has a character no HTTP header can carry.
        """
        require(self.metric_name, "metric name required", field="metric_name")
        require(self.type, "type required", field="type")
        if self.type not in COLLECTOR_TYPES:
            raise ConfigError(f"invalid type: {_quote(self.type)}", field="type")
        for attribute, message in _REQUIRED[self.type]:
            require(any(getattr(self, attribute)), message, field=attribute)
        if self.type == "temporal" and bool(self.cert_data) != bool(self.key_data):
            raise ConfigError(
                "temporal cert data and key data go together: give both or neither",
                field="cert_data",
            )
        # Sent as a header (Prometheus) or as gRPC metadata (Temporal).
        for attribute in ("token", "api_key"):
            check_header_value(
                getattr(self, attribute), self.setting(attribute), field=attribute
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
        # Imported here: the collectors module is light, but the CLI's eval and
        # serve are the only users, and tests build configs without them.
        from flyautoscaler.collectors import (  # noqa: PLC0415
            PrometheusCollector,
            RedisListLengthCollector,
            TemporalCollector,
        )

        self.validate()
        listed = dict(variables or {})
        if self.type == "prometheus":
            return PrometheusCollector(
                self.metric_name,
                self.address,
                self.query,
                self.token,
                variables=listed,
            )
        if self.type == "temporal":
            return TemporalCollector(
                self.metric_name,
                self.address,
                self.namespace or "default",
                self.query,
                api_key=self.api_key,
                tls_cert=self.cert_data.encode(),
                tls_key=self.key_data.encode(),
                variables=listed,
            )
        return RedisListLengthCollector(
            self.metric_name, self.url, [k for k in self.keys if k], variables=listed
        )


# --- the configuration -----------------------------------------------------------


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
        app_list_refresh_interval: Seconds between two refreshes of a
            wildcard's app list (at most a day).
        api_token: The Fly API token; never shown.
        verbose: Log at debug level.
        unhealthy_after: Failed passes in a row after which ``serve``'s
            ``/healthz`` reports an app unhealthy (503).
        metric_collectors: Where the metrics come from.
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

    app_name: str = ""
    org: str = ""
    regions: list[str] = field(factory=list)
    process_group: str = DEFAULT_PROCESS_GROUP
    created_machine_count: str = ""
    min_created_machine_count: str = ""
    max_created_machine_count: str = ""
    initial_machine_state: str = MachineState.STARTED
    started_machine_count: str = ""
    min_started_machine_count: str = ""
    max_started_machine_count: str = ""
    concurrency: int = 1
    interval: float = DEFAULT_RECONCILE_INTERVAL
    timeout: float = DEFAULT_RECONCILE_TIMEOUT
    app_list_refresh_interval: float = DEFAULT_APP_LIST_REFRESH_INTERVAL
    api_token: str = field(default="", repr=False)
    verbose: bool = False
    unhealthy_after: int = DEFAULT_UNHEALTHY_AFTER
    metric_collectors: list[CollectorConfig] = field(factory=list)
    metric_query_variables: list[str] = field(factory=list)
    metrics_address: str = DEFAULT_METRICS_ADDRESS
    flaps_base_url: str = field(factory=lambda: flaps_base_url({}))
    api_base_url: str = field(factory=lambda: api_base_url({}))
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

    # --- validation ---

    def validate(self, *, require_token: bool = False) -> None:
        """Check the configuration; the first problem found is raised.

        First the Go original's checks, with its messages: ``app name
        required``, ``must define either created machine count or started
        machine count``, the created and started count pairs, ``initial machine
        state must be either 'started' or 'stopped'``, and each collector
        (``metric-collectors[0]: metric name required``, ...). Then: ``api token
        required`` when *require_token*; an organization for a wildcard; an
        app name Fly allows; positive durations up to 24 h and a concurrency
        from 1 to 256; tokens an HTTP header can carry; the names
        ``metric-query-variables`` lists; distinct metric names; and every
        expression compiled and checked against :meth:`metric_names`, so a
        misspelled metric or a function given the wrong arguments fails
        here, naming it.

        Args:
            require_token: Whether an API token is needed (``serve``; not
                ``eval``).

        Raises:
            ConfigError: What is wrong.
        """
        require(self.app_name, "app name required", field="app_name")
        created = (
            self.created_machine_count,
            self.min_created_machine_count,
            self.max_created_machine_count,
        )
        started = (
            self.started_machine_count,
            self.min_started_machine_count,
            self.max_started_machine_count,
        )
        if not any(created) and not any(started):
            raise ConfigError(
                "must define either created machine count or started machine count"
            )
        _check_pair("created", *created)
        _check_pair("started", *started)
        check_initial_machine_state(self.initial_machine_state)
        for i, collector in enumerate(self.metric_collectors):
            try:
                collector.validate()
            except ConfigError as exc:
                raise ConfigError(
                    f"metric-collectors[{i}]: {exc}", field=exc.field
                ) from None
        if require_token and not self.api_token:
            raise ConfigError("api token required", field="api_token")
        self._validate_extras()
        self._validate_expressions()

    def _validate_extras(self) -> None:
        check_wildcard_org(self.app_name, self.org, field="org")
        check_app_name(self.app_name, self.setting("app_name"), field="app_name")
        check_range(
            self.concurrency,
            self.setting("concurrency"),
            field="concurrency",
            low=1,
            high=MAX_CONCURRENCY,
        )
        for name in ("interval", "timeout", "app_list_refresh_interval"):
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
        self._validate_query_variables()
        seen: set[str] = set()
        for i, name in enumerate(self.metric_names()):
            if name in seen:
                raise ConfigError(
                    f"metric-collectors[{i}]: duplicate metric name {_quote(name)}",
                    field="metric_name",
                )
            seen.add(name)

    def _validate_query_variables(self) -> None:
        setting = self.setting("metric_query_variables")
        for name in self.metric_query_variables:
            check_variable_name(name, setting, field="metric_query_variables")
            if name in _SECRET_VARIABLES:
                raise ConfigError(
                    f"{setting}: {name} holds a credential and cannot be used in "
                    "a query",
                    field="metric_query_variables",
                )

    def _validate_expressions(self) -> None:
        known = self.metric_names()
        for attr in _EXPRESSION_FIELDS:
            source: str = getattr(self, attr)
            if not source:
                continue
            try:
                compile_expression(source, known)
            except FlyAutoscalerError as exc:
                label = attr.replace("_", " ")
                raise ConfigError(f"invalid {label}: {exc}", field=attr) from exc

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
        env = os.environ if environ is None else environ
        setting = self.setting("metric_query_variables")
        credentials = self._credentials()
        values: dict[str, str] = {}
        for name in self.metric_query_variables:
            if name not in env:
                raise ConfigError(
                    f"{setting} lists {name}, which is not set in the environment",
                    field="metric_query_variables",
                )
            value = env[name]
            for holder, secret in credentials:
                if secret in value:
                    raise ConfigError(
                        f"{setting}: {name} contains the credential of {holder}, "
                        "so it cannot be used in a query",
                        field="metric_query_variables",
                    )
            values[name] = value
        return values

    def _credentials(self) -> list[tuple[str, str]]:
        """Return (setting, value) for every configured credential."""
        found = [(self.setting("api_token"), p) for p in _pieces(self.api_token)]
        for i, entry in enumerate(self.metric_collectors):
            for attribute in ("token", "api_key", "key_data", "url"):
                value: str = getattr(entry, attribute)
                holder = f"metric-collectors[{i}] {entry.setting(attribute)}"
                found += [(holder, p) for p in _pieces(value)]
                if attribute == "url" and value:
                    password = urlsplit(value).password or ""
                    found.append((holder, password))
        # Short values would match by chance; no real credential is that short.
        return [(h, v) for h, v in found if len(v) >= _MIN_CREDENTIAL_LENGTH]

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

    def new_reconciler(
        self, collectors: list[MetricCollector] | None = None
    ) -> Reconciler:
        """Return a :class:`~flyautoscaler.Reconciler` with this configuration.

        Sets the four expressions, the regions, the process group and the
        initial Machine state. A pool sets the app name and client.

        Args:
            collectors: The collectors to use (the list is copied); ``None``
                builds new ones with :meth:`build_collectors`.
        """
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
        )


_EXPRESSION_FIELDS: Final = (
    "created_machine_count",
    "min_created_machine_count",
    "max_created_machine_count",
    "started_machine_count",
    "min_started_machine_count",
    "max_started_machine_count",
)


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


# --- environment -----------------------------------------------------------------


def _env_duration(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "")
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError:
        raise ConfigError(
            f"cannot parse {name} as duration: {_quote(text)}", field=name
        ) from None


# The variable of each Config attribute (Go's names, and the new ones).
_ENV_NAMES: Final = {
    "app_name": "FAS_APP_NAME",
    "org": "FAS_ORG",
    "created_machine_count": "FAS_CREATED_MACHINE_COUNT",
    "min_created_machine_count": "FAS_MIN_CREATED_MACHINE_COUNT",
    "max_created_machine_count": "FAS_MAX_CREATED_MACHINE_COUNT",
    "initial_machine_state": "FAS_INITIAL_MACHINE_STATE",
    "started_machine_count": "FAS_STARTED_MACHINE_COUNT",
    "min_started_machine_count": "FAS_MIN_STARTED_MACHINE_COUNT",
    "max_started_machine_count": "FAS_MAX_STARTED_MACHINE_COUNT",
    "api_token": "FAS_API_TOKEN",
    "process_group": "FAS_PROCESS_GROUP",
    "regions": "FAS_REGIONS",
    "metric_query_variables": "FAS_METRIC_QUERY_VARIABLES",
    "metrics_address": "FAS_METRICS_ADDRESS",
    "flaps_base_url": "FLY_FLAPS_BASE_URL",
    "api_base_url": "FLY_API_BASE_URL",
    "concurrency": "FAS_CONCURRENCY",
    "interval": "FAS_INTERVAL",
    "timeout": "FAS_TIMEOUT",
    "app_list_refresh_interval": "FAS_APP_LIST_REFRESH_INTERVAL",
    "verbose": "FAS_VERBOSE",
    "unhealthy_after": "FAS_UNHEALTHY_AFTER",
}


def _env_integer(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "")
    if not text:
        return default
    try:
        return int(text, 10)
    except ValueError:
        raise ConfigError(
            f"cannot parse {name} as integer: {_quote(text)}", field=name
        ) from None


def _from_env(env: Mapping[str, str]) -> Config:
    """Return the configuration the environment gives (Go's NewConfigFromEnv)."""
    config = Config(
        app_name=env.get("FAS_APP_NAME", ""),
        org=env.get("FAS_ORG", ""),
        created_machine_count=env.get("FAS_CREATED_MACHINE_COUNT", ""),
        min_created_machine_count=env.get("FAS_MIN_CREATED_MACHINE_COUNT", ""),
        max_created_machine_count=env.get("FAS_MAX_CREATED_MACHINE_COUNT", ""),
        initial_machine_state=env.get("FAS_INITIAL_MACHINE_STATE", "")
        or MachineState.STARTED,
        started_machine_count=env.get("FAS_STARTED_MACHINE_COUNT", ""),
        min_started_machine_count=env.get("FAS_MIN_STARTED_MACHINE_COUNT", ""),
        max_started_machine_count=env.get("FAS_MAX_STARTED_MACHINE_COUNT", ""),
        api_token=env.get("FAS_API_TOKEN", ""),
        process_group=env.get("FAS_PROCESS_GROUP", "") or DEFAULT_PROCESS_GROUP,
        regions=_split_list(env.get("FAS_REGIONS", "")),
        metric_query_variables=_split_list(env.get("FAS_METRIC_QUERY_VARIABLES", "")),
        metrics_address=env.get("FAS_METRICS_ADDRESS", "") or DEFAULT_METRICS_ADDRESS,
        flaps_base_url=flaps_base_url(env),
        api_base_url=api_base_url(env),
    )
    config.origins.update(
        {attr: name for attr, name in _ENV_NAMES.items() if env.get(name, "")}
    )
    config.concurrency = _env_integer(env, "FAS_CONCURRENCY", config.concurrency)
    config.unhealthy_after = _env_integer(
        env, "FAS_UNHEALTHY_AFTER", config.unhealthy_after
    )
    config.interval = _env_duration(env, "FAS_INTERVAL", config.interval)
    config.timeout = _env_duration(env, "FAS_TIMEOUT", config.timeout)
    config.app_list_refresh_interval = _env_duration(
        env, "FAS_APP_LIST_REFRESH_INTERVAL", config.app_list_refresh_interval
    )
    if text := env.get("FAS_VERBOSE", ""):
        if text not in _TRUE | _FALSE:
            raise ConfigError(
                f"cannot parse FAS_VERBOSE as boolean: {_quote(text)}",
                field="FAS_VERBOSE",
            )
        config.verbose = text in _TRUE
    config.metric_collectors = _collectors_from_env(env)
    return config


# Collectors the environment describes: type, the variable that turns it on,
# and the variables of each attribute (the first one set wins).
_ENV_COLLECTORS: Final[tuple[tuple[str, str, dict[str, tuple[str, ...]]], ...]] = (
    (
        "prometheus",
        "FAS_PROMETHEUS_ADDRESS",
        {
            "address": ("FAS_PROMETHEUS_ADDRESS",),
            "metric_name": ("FAS_PROMETHEUS_METRIC_NAME",),
            "query": ("FAS_PROMETHEUS_QUERY",),
            "token": ("FAS_PROMETHEUS_TOKEN",),
        },
    ),
    (
        "temporal",
        "FAS_TEMPORAL_ADDRESS",
        {
            "address": ("FAS_TEMPORAL_ADDRESS",),
            "namespace": ("FAS_TEMPORAL_NAMESPACE",),
            "metric_name": ("FAS_TEMPORAL_METRIC_NAME",),
            "cert_data": ("TEMPORAL_TLS_CERT_DATA", "FAS_TEMPORAL_CERT_DATA"),
            "key_data": ("TEMPORAL_TLS_KEY_DATA", "FAS_TEMPORAL_KEY_DATA"),
            "api_key": ("FAS_TEMPORAL_API_KEY",),
            "query": ("FAS_TEMPORAL_QUERY",),
        },
    ),
    (
        "redis",
        "FAS_REDIS_URL",
        {
            "url": ("FAS_REDIS_URL",),
            "metric_name": ("FAS_REDIS_METRIC_NAME",),
            "keys": ("FAS_REDIS_KEYS",),
        },
    ),
)


def _collectors_from_env(env: Mapping[str, str]) -> list[CollectorConfig]:
    collectors: list[CollectorConfig] = []
    for kind, switch, variables in _ENV_COLLECTORS:
        if not env.get(switch, ""):
            continue
        entry = CollectorConfig(type=kind)
        for attribute, names in variables.items():
            name = next((n for n in names if env.get(n, "")), "")
            if not name:
                continue
            text = env[name]
            value = _split_list(text) if attribute == "keys" else text
            setattr(entry, attribute, value)
            entry.origins[attribute] = name
        collectors.append(entry)
    return collectors


# --- the YAML file ---------------------------------------------------------------


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$VAR`` and ``${VAR}`` in a file value (not in queries).

    ``$APP_NAME`` stays for the per-app expansion; ``$$`` is a literal ``$``;
    an unset variable becomes ``""`` (as Go's ``os.ExpandEnv``); a ``$`` not
    followed by a name (``$1``) stays as written.
    """
    return expand_variables(text, env, keep_unknown=False)


_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_STR_TAG: Final = "tag:yaml.org,2002:str"
_YAML_BOOLS: Final = {
    **dict.fromkeys(("true", "yes", "on", "y"), True),
    **dict.fromkeys(("false", "no", "off", "n"), False),
}


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {_quote(str(node.value))}"


@define
class _Reader:
    """Turns the YAML nodes of one file into values, naming what is wrong."""

    env: Mapping[str, str]

    def string(self, node: yaml.Node, path: str) -> str:
        # Plain scalars (numbers too: `min-started-machine-count: 1`) are read
        # as their text, as Go's yaml.v3 does for a string field.
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{path}: expected a string, got {_kind(node)}")
        return _expand(node.value, self.env)

    def query(self, node: yaml.Node, path: str) -> str:
        # Queries are expanded per app when collected (expand_metric_query):
        # never here, so $APP_NAME survives and no secret leaks into them.
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{path}: expected a string, got {_kind(node)}")
        return str(node.value)

    def secret(self, node: yaml.Node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{path}: expected a string")
        return _expand(node.value, self.env)

    def integer(self, node: yaml.Node, path: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag != _BOOL_TAG:
            text = _expand(node.value, self.env).strip()
            if re.fullmatch(r"[+-]?\d+", text):
                return int(text)
        raise ConfigError(f"{path}: expected an integer, got {_kind(node)}")

    def boolean(self, node: yaml.Node, path: str) -> bool:
        if isinstance(node, yaml.ScalarNode):
            value = _YAML_BOOLS.get(_expand(node.value, self.env).strip().lower())
            if value is not None:
                return value
        raise ConfigError(f"{path}: expected true or false, got {_kind(node)}")

    def duration(self, node: yaml.Node, path: str) -> float:
        if isinstance(node, yaml.ScalarNode):
            text = _expand(node.value, self.env).strip()
            try:
                return parse_duration(text)
            except ValueError:
                pass
        raise ConfigError(
            f'{path}: expected a duration such as "15s", "1m30s" or '
            f'"500ms", got {_kind(node)}'
        )

    def string_list(
        self, node: yaml.Node, path: str, *, query: bool = False
    ) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            raise ConfigError(f"{path}: expected a list of strings, got {_kind(node)}")
        read = self.query if query else self.string
        return [read(item, f"{path}[{i}]") for i, item in enumerate(node.value)]

    def name_list(self, node: yaml.Node, path: str) -> list[str]:
        # Variable names, read as written: no $ expansion.
        if not isinstance(node, yaml.SequenceNode):
            raise ConfigError(f"{path}: expected a list of names, got {_kind(node)}")
        names: list[str] = []
        for i, item in enumerate(node.value):
            if not isinstance(item, yaml.ScalarNode):
                raise ConfigError(f"{path}[{i}]: expected a name, got {_kind(item)}")
            names.append(str(item.value))
        return names

    def read(self, kind: str, node: yaml.Node, path: str) -> object:
        """Read *node* as a value of *kind* (a key's reader in the key tables)."""
        readers: dict[str, Callable[[yaml.Node, str], object]] = {
            "string": self.string,
            "query": self.query,
            "secret": self.secret,
            "integer": self.integer,
            "boolean": self.boolean,
            "duration": self.duration,
            "string_list": self.string_list,
            "query_list": lambda n, p: self.string_list(n, p, query=True),
            "name_list": self.name_list,
        }
        return readers[kind](node, path)

    def mapping(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            where = f"{path}: " if path else ""
            raise ConfigError(f"{where}expected a mapping, got {_kind(node)}")
        pairs: list[tuple[str, yaml.Node]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            where = f"{path}: " if path else ""
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{where}keys must be strings")
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(f"{where}duplicate key {_quote(key)}")
            seen.add(key)
            pairs.append((key, value_node))
        return pairs


# key -> (attribute, reader method name)
_TOP_KEYS: Final[dict[str, tuple[str, str]]] = {
    "app-name": ("app_name", "string"),
    "org": ("org", "string"),
    "regions": ("regions", "string_list"),
    "process-group": ("process_group", "string"),
    "created-machine-count": ("created_machine_count", "string"),
    "min-created-machine-count": ("min_created_machine_count", "string"),
    "max-created-machine-count": ("max_created_machine_count", "string"),
    "initial-machine-state": ("initial_machine_state", "string"),
    "started-machine-count": ("started_machine_count", "string"),
    "min-started-machine-count": ("min_started_machine_count", "string"),
    "max-started-machine-count": ("max_started_machine_count", "string"),
    "concurrency": ("concurrency", "integer"),
    "interval": ("interval", "duration"),
    "timeout": ("timeout", "duration"),
    "app-list-refresh-interval": ("app_list_refresh_interval", "duration"),
    "api-token": ("api_token", "secret"),
    "verbose": ("verbose", "boolean"),
    "unhealthy-after": ("unhealthy_after", "integer"),
    "metric-query-variables": ("metric_query_variables", "name_list"),
    "metrics-address": ("metrics_address", "string"),
    "flaps-base-url": ("flaps_base_url", "string"),
    "api-base-url": ("api_base_url", "string"),
}
_COLLECTOR_KEYS: Final[dict[str, tuple[str, str]]] = {
    "type": ("type", "string"),
    "metric-name": ("metric_name", "string"),
    "address": ("address", "string"),
    "query": ("query", "query"),
    "token": ("token", "secret"),
    "namespace": ("namespace", "string"),
    "cert-data": ("cert_data", "secret"),
    "key-data": ("key_data", "secret"),
    "api-key": ("api_key", "secret"),
    "url": ("url", "secret"),
    "keys": ("keys", "query_list"),
}
# The YAML key of each attribute, for messages.
_TOP_KEY_OF: Final = {attr: key for key, (attr, _) in _TOP_KEYS.items()}
_COLLECTOR_KEY_OF: Final = {attr: key for key, (attr, _) in _COLLECTOR_KEYS.items()}


def _apply(
    target: Config | CollectorConfig,
    pairs: list[tuple[str, yaml.Node]],
    keys: Mapping[str, tuple[str, str]],
    reader: _Reader,
    path: str,
) -> None:
    for key, node in pairs:
        where = f"{path}." if path else ""
        if key not in keys:
            prefix = f"{path}: " if path else ""
            raise ConfigError(f"{prefix}unknown key {_quote(key)}", field=key)
        if node.tag == _NULL_TAG:
            continue  # `key:` with no value keeps the default (the environment's)
        attribute, kind = keys[key]
        setattr(target, attribute, reader.read(kind, node, where + key))
        target.origins[attribute] = key


#: Deepest nesting of lists and mappings a configuration file may have.
MAX_YAML_DEPTH: Final = 50
#: Most nodes a configuration file may hold, each alias counted as the nodes
#: it stands for (so an "alias bomb" is refused before it is read).
MAX_YAML_NODES: Final = 100_000


def _check_yaml_shape(text: str, name: str) -> None:
    """Refuse a document nested too deep or too big, before composing it.

    PyYAML composes nodes recursively, so thousands of nested ``[`` end in a
    RecursionError; its parser, walked here, does not recurse.

    Raises:
        ConfigError: Nested deeper than :data:`MAX_YAML_DEPTH`, or more than
            :data:`MAX_YAML_NODES` nodes with aliases expanded.
        yaml.YAMLError: The text is not YAML.
    """
    depth = 0
    nodes = 0
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    # Open collections: (anchor, node count when it opened).
    open_: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = 0 if event.start_mark is None else event.start_mark.line + 1
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{name}: YAML nested deeper than {MAX_YAML_DEPTH} levels "
                    f"at line {line}"
                )
            nodes += 1
            open_.append((event.anchor, nodes - 1))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, start = open_.pop()
            if anchor is not None:
                sizes[anchor] = nodes - start
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            # An alias of a collection still open (a recursive one) counts 1;
            # the reader refuses what it finds there anyway.
            nodes += sizes.get(event.anchor or "", 1)
        if nodes > MAX_YAML_NODES:
            raise ConfigError(
                f"{name}: YAML has more than {MAX_YAML_NODES} values (aliases "
                f"expanded) at line {line}"
            )


def _parse_yaml(text: str, name: str, env: Mapping[str, str], config: Config) -> None:
    """Apply the YAML document *text* over *config*."""
    try:
        _check_yaml_shape(text, name)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = (
            ""
            if mark is None
            else f" at line {mark.line + 1}, column {mark.column + 1}"
        )
        raise ConfigError(f"{name}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None
    if root is None:
        return
    reader = _Reader(env)
    pairs = reader.mapping(root, "")
    collectors_node: yaml.Node | None = None
    top: list[tuple[str, yaml.Node]] = []
    for key, node in pairs:
        if key == "metric-collectors":
            collectors_node = node
        else:
            top.append((key, node))
    _apply(config, top, _TOP_KEYS, reader, "")
    if collectors_node is None or collectors_node.tag == _NULL_TAG:
        return
    if not isinstance(collectors_node, yaml.SequenceNode):
        raise ConfigError(
            f"metric-collectors: expected a list, got {_kind(collectors_node)}"
        )
    # As in Go, the file's list replaces the one the environment made.
    collectors: list[CollectorConfig] = []
    for i, entry_node in enumerate(collectors_node.value):
        path = f"metric-collectors[{i}]"
        entry = CollectorConfig()
        _apply(entry, reader.mapping(entry_node, path), _COLLECTOR_KEYS, reader, path)
        collectors.append(entry)
    config.metric_collectors = collectors


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read the configuration: the environment, then the YAML file over it.

    Args:
        path: A YAML file with the Go original's keys (and the new ones), or
            ``None`` for the environment alone.
        environ: The environment (default :data:`os.environ`): ``FAS_*``,
            ``FLY_FLAPS_BASE_URL``, ``FLY_API_BASE_URL``, and the variables
            ``${VAR}`` in the file refers to.

    Returns:
        The configuration, not yet validated (see :meth:`Config.validate`).

    Raises:
        ConfigError: An environment variable or a file value cannot be
            parsed, or the file has an unknown key; the message names it.
        OSError: The file cannot be read.
    """
    env = os.environ if environ is None else environ
    config = _from_env(env)
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            _parse_yaml(text, os.fspath(path), env, config)
        except ConfigError as exc:
            message = str(exc)
            if not message.startswith(f"{os.fspath(path)}: "):
                message = f"{os.fspath(path)}: {message}"
            raise ConfigError(message, field=exc.field) from None
    return config
