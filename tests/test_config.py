"""flyautoscaler.config: the environment, the YAML file, validation, building."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import flyautoscaler as fas
from flyautoscaler.collectors import PrometheusCollector, PrometheusMachineCollector
from flyautoscaler.config import (
    DEFAULT_METRICS_ADDRESS,
    CollectorConfig,
    Config,
    load_config,
    parse_duration,
)
from flyautoscaler.fly import (
    DEFAULT_API_BASE_URL,
    DEFAULT_FLAPS_BASE_URL,
    DEFAULT_TIMEOUT,
)

DATA = Path(__file__).parent / "data"
SECRET = "s3cret-value-that-must-not-leak"  # noqa: S105 - a test value


def write(tmp_path: Path, text: str) -> Path:
    """Write *text* to a YAML file under *tmp_path* and return its path."""
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def valid(**fields: object) -> Config:
    """A valid Config (app 'myapp', started count 1), with *fields* changed."""
    config = Config(app_name="myapp", started_machine_count="1")
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def prometheus(**fields: str) -> CollectorConfig:
    """A valid Prometheus collector entry, with *fields* changed."""
    entry = CollectorConfig(
        type="prometheus",
        metric_name="queue_depth",
        address="http://127.0.0.1:9",
        query="sum(queue_depth)",
    )
    for name, value in fields.items():
        setattr(entry, name, value)
    return entry


# --- the Go original's tests (cmd/fly-autoscaler/main_test.go) ------------------


def test_parse_reference_file():
    """The Go original's reference file parses to the values its test expects."""
    config = load_config(DATA / "fly-autoscaler.yml", environ={})
    assert config.app_name == "TARGET_APP_NAME"
    assert config.started_machine_count == "ceil(queue_depth / 10)"
    assert config.interval == 15.0
    assert config.api_token == "FlyV1 ..."  # noqa: S105 - the file's placeholder
    assert config.verbose is False
    assert config.process_group == "app"
    assert config.regions == ["iad", "ord", "sjc"]
    mc = config.metric_collectors[0]
    assert mc.type == "prometheus"
    assert mc.metric_name == "queue_depth"
    assert mc.address == "https://api.fly.io/prometheus/MY_ORG"
    assert mc.query == "sum(queue_depth)"
    assert mc.token == "FlyV1 ..."  # noqa: S105 - the file's placeholder
    temporal = config.metric_collectors[1]
    assert temporal.type == "temporal"
    assert temporal.query == 'WorkflowType="my_workflow_type"'
    assert temporal.cert_data.startswith("-----BEGIN CERTIFICATE-----")


def test_reference_file_validates():
    """The reference file passes validation once its placeholder app is named."""
    config = load_config(DATA / "fly-autoscaler.yml", environ={})
    with pytest.raises(fas.ConfigError, match='got "TARGET_APP_NAME"'):
        config.validate(require_token=True)  # not a name Fly allows
    config.app_name = "target-app-name"
    config.validate(require_token=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "must define either created machine count or started machine count"),
        (
            {"created_machine_count": "1", "min_created_machine_count": "1"},
            "cannot define created machine count and min/max created machine count",
        ),
        (
            {"min_created_machine_count": "1"},
            (
                "max created machine count required if min created machine count "
                "is defined"
            ),
        ),
        (
            {"max_created_machine_count": "1"},
            (
                "min created machine count required if max created machine count "
                "is defined"
            ),
        ),
        (
            {"started_machine_count": "1", "min_started_machine_count": "1"},
            "cannot define started machine count and min/max started machine count",
        ),
        (
            {"min_started_machine_count": "1"},
            (
                "max started machine count required if min started machine count "
                "is defined"
            ),
        ),
        (
            {"max_started_machine_count": "1"},
            (
                "min started machine count required if max started machine count "
                "is defined"
            ),
        ),
    ],
)
def test_validate_go_messages(fields, message):
    """Config.validate raises the Go original's messages, word for word."""
    config = Config(app_name="myapp", **fields)
    with pytest.raises(fas.ConfigError) as info:
        config.validate()
    assert str(info.value) == message


# --- more validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (Config(started_machine_count="1"), "app name required"),
        (
            valid(initial_machine_state="running"),
            "initial machine state must be either 'started' or 'stopped'",
        ),
        (
            valid(metric_collectors=[CollectorConfig(type="prometheus")]),
            "metric-collectors[0]: metric name required",
        ),
        (
            valid(metric_collectors=[CollectorConfig(metric_name="x")]),
            "metric-collectors[0]: type required",
        ),
        (
            valid(metric_collectors=[CollectorConfig(type="nats", metric_name="x")]),
            'metric-collectors[0]: invalid type: "nats"',
        ),
        (
            valid(metric_collectors=[prometheus(), prometheus(address="")]),
            "metric-collectors[1]: prometheus address required",
        ),
        (
            valid(metric_collectors=[prometheus(query="")]),
            "metric-collectors[0]: prometheus query required",
        ),
        (
            valid(
                metric_collectors=[CollectorConfig(type="temporal", metric_name="w")]
            ),
            "metric-collectors[0]: temporal address required",
        ),
        (
            valid(
                metric_collectors=[
                    CollectorConfig(
                        type="temporal",
                        metric_name="w",
                        address="h:7233",
                        cert_data="c",
                    )
                ]
            ),
            (
                "metric-collectors[0]: temporal cert data and key data go together: "
                "give both or neither"
            ),
        ),
        (
            valid(metric_collectors=[CollectorConfig(type="redis", metric_name="q")]),
            "metric-collectors[0]: redis url required",
        ),
        (
            valid(
                metric_collectors=[
                    CollectorConfig(type="redis", metric_name="q", url="redis://h")
                ]
            ),
            "metric-collectors[0]: redis keys required",
        ),
        (
            valid(app_name="my-app-*"),
            "organization required if app name uses a wildcard",
        ),
        (valid(concurrency=0), "concurrency must be at least 1, got 0"),
        (valid(interval=0.0), "interval must be a positive duration, got 0s"),
        (valid(timeout=-1.5), "timeout must be a positive duration, got -1.5s"),
        (
            valid(metric_collectors=[prometheus(), prometheus()]),
            'metric-collectors[1]: duplicate metric name "queue_depth"',
        ),
    ],
)
def test_validate_messages(config, message):
    """Each problem is reported with its message, word for word."""
    with pytest.raises(fas.ConfigError) as info:
        config.validate()
    assert str(info.value) == message


def test_validate_requires_token_only_when_asked():
    """'api token required' only with require_token (serve, not eval)."""
    config = valid()
    config.validate()
    with pytest.raises(fas.ConfigError, match=r"^api token required$"):
        config.validate(require_token=True)
    config.api_token = SECRET
    config.validate(require_token=True)


def test_validate_names_an_unknown_metric():
    """A misspelled metric in an expression fails at validation, naming it."""
    config = valid(
        started_machine_count="ceil(queue_dept / 10)",
        metric_collectors=[prometheus()],
    )
    with pytest.raises(fas.ConfigError) as info:
        config.validate()
    message = str(info.value)
    assert message.startswith("invalid started machine count: ")
    assert "'queue_dept'" in message
    assert "queue_depth" in message
    assert isinstance(info.value.__cause__, fas.ExpressionError)


def test_validate_reports_a_syntax_error():
    """An expression that does not compile fails at validation."""
    config = valid(min_created_machine_count="1 +", max_created_machine_count="2")
    with pytest.raises(fas.ConfigError, match=r"^invalid min created machine count"):
        config.validate()


def test_config_error_is_a_value_error():
    """ConfigError is also a ValueError."""
    with pytest.raises(ValueError, match="app name required"):
        Config().validate()


# --- the expressions as Go's GetMin/Max*MachineN -------------------------------


def test_expression_getters():
    """The single count wins over min/max; otherwise each bound is its own."""
    config = Config(
        created_machine_count="a",
        min_created_machine_count="b",
        max_created_machine_count="c",
        min_started_machine_count="d",
        max_started_machine_count="e",
    )
    assert (config.min_created_expr(), config.max_created_expr()) == ("a", "a")
    assert (config.min_started_expr(), config.max_started_expr()) == ("d", "e")


# --- the environment ------------------------------------------------------------


def test_defaults():
    """An empty environment gives the Go original's defaults."""
    config = load_config(environ={})
    assert config == Config()
    assert config.process_group == "app"
    assert config.initial_machine_state == "started"
    assert config.concurrency == 1
    assert (config.interval, config.timeout) == (15.0, 30.0)
    assert config.request_timeout == sum(DEFAULT_TIMEOUT) == 35.0
    assert config.app_list_refresh_interval == 60.0
    assert config.metrics_address == DEFAULT_METRICS_ADDRESS == ":9090"
    assert config.flaps_base_url == DEFAULT_FLAPS_BASE_URL
    assert config.api_base_url == DEFAULT_API_BASE_URL
    assert config.metric_collectors == []


def test_every_environment_variable():
    """Every FAS_* variable of the Go original, and the new ones, are read."""
    env = {
        "FAS_APP_NAME": "my-app-*",
        "FAS_ORG": "my-org",
        "FAS_REGIONS": "iad, ord,,sjc",
        "FAS_PROCESS_GROUP": "worker",
        "FAS_CREATED_MACHINE_COUNT": "c",
        "FAS_MIN_CREATED_MACHINE_COUNT": "c1",
        "FAS_MAX_CREATED_MACHINE_COUNT": "c2",
        "FAS_INITIAL_MACHINE_STATE": "stopped",
        "FAS_STARTED_MACHINE_COUNT": "s",
        "FAS_MIN_STARTED_MACHINE_COUNT": "s1",
        "FAS_MAX_STARTED_MACHINE_COUNT": "s2",
        "FAS_CONCURRENCY": "4",
        "FAS_INTERVAL": "1m30s",
        "FAS_TIMEOUT": "500ms",
        "FAS_REQUEST_TIMEOUT": "2s",
        "FAS_APP_LIST_REFRESH_INTERVAL": "2h",
        "FAS_API_TOKEN": SECRET,
        "FAS_VERBOSE": "true",
        "FAS_UNHEALTHY_AFTER": "5",
        "FAS_METRICS_ADDRESS": "127.0.0.1:0",
        "FLY_FLAPS_BASE_URL": "http://127.0.0.1:1",
        "FLY_API_BASE_URL": "http://127.0.0.1:2",
    }
    config = load_config(environ=env)
    assert config.app_name == "my-app-*"
    assert config.org == "my-org"
    assert config.regions == ["iad", "ord", "sjc"]
    assert config.process_group == "worker"
    assert config.created_machine_count == "c"
    assert config.min_created_machine_count == "c1"
    assert config.max_created_machine_count == "c2"
    assert config.initial_machine_state == "stopped"
    assert config.started_machine_count == "s"
    assert config.min_started_machine_count == "s1"
    assert config.max_started_machine_count == "s2"
    assert config.concurrency == 4
    assert config.interval == 90.0
    assert config.timeout == 0.5
    assert config.request_timeout == 2.0
    assert config.app_list_refresh_interval == 7200.0
    assert config.api_token == SECRET
    assert config.verbose is True
    assert config.unhealthy_after == 5
    assert config.metrics_address == "127.0.0.1:0"
    assert config.flaps_base_url == "http://127.0.0.1:1"
    assert config.api_base_url == "http://127.0.0.1:2"


def test_collectors_from_environment():
    """FAS_PROMETHEUS_*, FAS_TEMPORAL_* and FAS_REDIS_* each add a collector."""
    env = {
        "FAS_PROMETHEUS_ADDRESS": "https://api.fly.io/prometheus/my-org",
        "FAS_PROMETHEUS_METRIC_NAME": "queue_depth",
        "FAS_PROMETHEUS_QUERY": 'sum(queue_depth{app="$APP_NAME"})',
        "FAS_PROMETHEUS_TOKEN": SECRET,
        "FAS_TEMPORAL_ADDRESS": "localhost:7233",
        "FAS_TEMPORAL_NAMESPACE": "ns",
        "FAS_TEMPORAL_METRIC_NAME": "workflows",
        "FAS_TEMPORAL_QUERY": 'WorkflowType="x"',
        "FAS_TEMPORAL_CERT_DATA": "fas-cert",
        "FAS_TEMPORAL_KEY_DATA": "fas-key",
        "TEMPORAL_TLS_CERT_DATA": "tls-cert",
        "FAS_TEMPORAL_API_KEY": "api-key",
        "FAS_REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
        "FAS_REDIS_KEYS": "rq:queue:default, celery",
        "FAS_REDIS_METRIC_NAME": "jobs",
    }
    prom, temporal, redis = load_config(environ=env).metric_collectors
    assert prom == CollectorConfig(
        type="prometheus",
        metric_name="queue_depth",
        address="https://api.fly.io/prometheus/my-org",
        query='sum(queue_depth{app="$APP_NAME"})',
        token=SECRET,
    )
    assert temporal.type == "temporal"
    assert (temporal.address, temporal.namespace) == ("localhost:7233", "ns")
    assert (temporal.metric_name, temporal.query) == ("workflows", 'WorkflowType="x"')
    # TEMPORAL_TLS_* first, then FAS_TEMPORAL_*, as in Go.
    assert (temporal.cert_data, temporal.key_data) == ("tls-cert", "fas-key")
    assert temporal.api_key == "api-key"
    assert redis == CollectorConfig(
        type="redis",
        metric_name="jobs",
        url="redis://:pw@127.0.0.1:6379/0",
        keys=["rq:queue:default", "celery"],
    )


def test_no_collector_without_its_address():
    """A collector's other variables alone add nothing (as in Go)."""
    env = {"FAS_PROMETHEUS_QUERY": "q", "FAS_REDIS_KEYS": "k"}
    assert load_config(environ=env).metric_collectors == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FAS_CONCURRENCY", "x", 'cannot parse FAS_CONCURRENCY as integer: "x"'),
        ("FAS_CONCURRENCY", "1.5", 'cannot parse FAS_CONCURRENCY as integer: "1.5"'),
        ("FAS_INTERVAL", "15", 'cannot parse FAS_INTERVAL as duration: "15"'),
        ("FAS_INTERVAL", "x", 'cannot parse FAS_INTERVAL as duration: "x"'),
        ("FAS_TIMEOUT", "1d", 'cannot parse FAS_TIMEOUT as duration: "1d"'),
        (
            "FAS_APP_LIST_REFRESH_INTERVAL",
            "soon",
            'cannot parse FAS_APP_LIST_REFRESH_INTERVAL as duration: "soon"',
        ),
        ("FAS_VERBOSE", "maybe", 'cannot parse FAS_VERBOSE as boolean: "maybe"'),
        (
            "FAS_UNHEALTHY_AFTER",
            "three",
            'cannot parse FAS_UNHEALTHY_AFTER as integer: "three"',
        ),
        # The scaling behaviour's: what a seconds setting takes is said.
        (
            "FAS_SCALE_DOWN_STABILIZATION",
            "soon",
            (
                'cannot parse FAS_SCALE_DOWN_STABILIZATION as duration: "soon" (a Go '
                'duration such as "5m" or "90s", or a number of seconds such as "300"; '
                "not negative)"
            ),
        ),
        (
            "FAS_SCALE_UP_STABILIZATION",
            "-1s",
            (
                'cannot parse FAS_SCALE_UP_STABILIZATION as duration: "-1s" (a Go '
                'duration such as "5m" or "90s", or a number of seconds such as "300"; '
                "not negative)"
            ),
        ),
        (
            "FAS_RELEASE_TIMEOUT",
            "nan",
            (
                'cannot parse FAS_RELEASE_TIMEOUT as duration: "nan" (a Go duration '
                'such as "5m" or "90s", or a number of seconds such as "300"; not '
                "negative)"
            ),
        ),
        (
            "FAS_FALLBACK_AFTER",
            "three",
            'cannot parse FAS_FALLBACK_AFTER as integer: "three"',
        ),
        (
            "FAS_FALLBACK_STARTED_MACHINE_COUNT",
            "1.5",
            'cannot parse FAS_FALLBACK_STARTED_MACHINE_COUNT as integer: "1.5"',
        ),
    ],
)
def test_environment_parse_errors(name, value, message):
    """A variable that does not parse is reported with the Go message."""
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ={name: value})
    assert str(info.value) == message


# --- the YAML file --------------------------------------------------------------


def test_file_overrides_environment(tmp_path):
    """The file's values win; the environment fills in what the file lacks."""
    path = write(
        tmp_path,
        "app-name: from-file\ninterval: 1m\nconcurrency: 3\napi-token:\n",
    )
    env = {
        "FAS_APP_NAME": "from-env",
        "FAS_STARTED_MACHINE_COUNT": "2",
        "FAS_INTERVAL": "5s",
        "FAS_API_TOKEN": SECRET,
    }
    config = load_config(path, env)
    assert config.app_name == "from-file"
    assert config.interval == 60.0
    assert config.concurrency == 3
    assert config.started_machine_count == "2"
    assert config.api_token == SECRET  # `key:` with no value keeps the default


def test_file_collectors_replace_environment_ones(tmp_path):
    """A metric-collectors list in the file replaces FAS_PROMETHEUS_* (as Go)."""
    path = write(
        tmp_path,
        "metric-collectors:\n"
        "  - type: redis\n    metric-name: jobs\n    url: redis://127.0.0.1\n"
        "    keys: [a, b]\n",
    )
    env = {"FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9", "FAS_APP_NAME": "x"}
    config = load_config(path, env)
    assert config.metric_names() == ["jobs"]
    assert config.metric_collectors[0].keys == ["a", "b"]


def test_every_new_key(tmp_path):
    """The keys beyond the Go original's are read too."""
    path = write(
        tmp_path,
        "metrics-address: 127.0.0.1:9999\n"
        "flaps-base-url: http://127.0.0.1:1\n"
        "api-base-url: http://127.0.0.1:2\n"
        "org: my-org\n"
        "initial-machine-state: stopped\n"
        "timeout: 10s\n"
        "request-timeout: 12s\n"
        "app-list-refresh-interval: 1h30m\n"
        "verbose: yes\n"
        "unhealthy-after: 2\n"
        "metric-collectors:\n"
        "  - type: temporal\n    metric-name: w\n    address: h:7233\n"
        "    namespace: ns\n    api-key: k\n",
    )
    config = load_config(path, {})
    assert config.metrics_address == "127.0.0.1:9999"
    assert config.flaps_base_url == "http://127.0.0.1:1"
    assert config.api_base_url == "http://127.0.0.1:2"
    assert config.org == "my-org"
    assert config.initial_machine_state == "stopped"
    assert config.timeout == 10.0
    assert config.request_timeout == 12.0
    assert config.app_list_refresh_interval == 5400.0
    assert config.verbose is True
    assert config.unhealthy_after == 2
    assert config.metric_collectors[0].namespace == "ns"
    assert config.metric_collectors[0].api_key == "k"


def test_numbers_are_expressions(tmp_path):
    """A bare number is read as expression text, as Go's YAML decoder does."""
    path = write(
        tmp_path, "min-started-machine-count: 1\nmax-started-machine-count: 2.50\n"
    )
    config = load_config(path, {})
    assert config.min_started_machine_count == "1"
    assert config.max_started_machine_count == "2.50"


def test_variables_are_expanded(tmp_path):
    """${VAR} and $VAR come from the environment; unset ones become empty."""
    path = write(
        tmp_path,
        "app-name: ${TARGET}\n"
        "org: $ORG-x\n"
        "api-token: ${FAS_API_TOKEN}\n"
        "process-group: a${UNSET}b\n"
        "regions: [$REGION, cost$$]\n",
    )
    env = {"TARGET": "my-app", "ORG": "acme", "FAS_API_TOKEN": SECRET, "REGION": "iad"}
    config = load_config(path, env)
    assert config.app_name == "my-app"
    assert config.org == "acme-x"
    assert config.api_token == SECRET  # secrets do expand outside queries
    assert config.process_group == "ab"
    assert config.regions == ["iad", "cost$"]


def test_app_name_and_queries_are_left_for_collection(tmp_path):
    """${APP_NAME} survives, and queries and keys are not expanded at load."""
    path = write(
        tmp_path,
        "metric-collectors:\n"
        "  - type: prometheus\n"
        "    metric-name: q\n"
        "    address: https://prom.example/${APP_NAME}\n"
        '    query: sum(q{app="${APP_NAME}", t="${FAS_API_TOKEN}", r="$1", x="$X"})\n'
        "  - type: redis\n"
        "    metric-name: jobs\n"
        "    url: redis://127.0.0.1\n"
        '    keys: ["$APP_NAME:jobs", "${X}"]\n',
    )
    env = {"FAS_API_TOKEN": SECRET, "X": "ex"}
    prom, redis = load_config(path, env).metric_collectors
    assert prom.address == "https://prom.example/${APP_NAME}"
    assert prom.query == (
        'sum(q{app="${APP_NAME}", t="${FAS_API_TOKEN}", r="$1", x="$X"})'
    )
    assert redis.keys == ["$APP_NAME:jobs", "${X}"]
    # At collection time the query is expanded per app; other variables only
    # when passed in (metric-query-variables), never from the environment.
    assert fas.expand_metric_query(prom.query, "my-app") == (
        'sum(q{app="my-app", t="${FAS_API_TOKEN}", r="$1", x="$X"})'
    )
    assert fas.expand_metric_query(prom.query, "my-app", variables={"X": "ex"}) == (
        'sum(q{app="my-app", t="${FAS_API_TOKEN}", r="$1", x="ex"})'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", 'unknown key "bogus"'),
        (
            "metric-collectors:\n  - type: prometheus\n    x: 1\n",
            'metric-collectors[0]: unknown key "x"',
        ),
        (
            "concurrency: many\n",
            'concurrency: expected an integer, got the value "many"',
        ),
        (
            "concurrency: true\n",
            'concurrency: expected an integer, got the value "true"',
        ),
        (
            "interval: 15\n",
            (
                'interval: expected a duration such as "15s", "1m30s" or "500ms", '
                'got the value "15"'
            ),
        ),
        ("regions: iad\n", 'regions: expected a list of strings, got the value "iad"'),
        ("verbose: maybe\n", 'verbose: expected true or false, got the value "maybe"'),
        ("app-name: [a]\n", "app-name: expected a string, got a list"),
        (
            "metric-collectors:\n  - type: redis\n    keys: a\n",
            'metric-collectors[0].keys: expected a list of strings, got the value "a"',
        ),
        (
            "metric-collectors: {}\n",
            "metric-collectors: expected a list, got a mapping",
        ),
        (
            "metric-collectors: [x]\n",
            'metric-collectors[0]: expected a mapping, got the value "x"',
        ),
        ("- a\n", "expected a mapping, got a list"),
        ("app-name: a\napp-name: b\n", 'duplicate key "app-name"'),
        # The scaling behaviour's keys.
        (
            "scale-down-stabilization: soon\n",
            (
                'scale-down-stabilization: expected a duration such as "5m" or "90s", '
                "or a number of seconds such as 300, not negative; got the value "
                '"soon"'
            ),
        ),
        (
            "release-timeout: -5\n",
            (
                'release-timeout: expected a duration such as "5m" or "90s", or a '
                'number of seconds such as 300, not negative; got the value "-5"'
            ),
        ),
        (
            "fallback-after: [1]\n",
            "fallback-after: expected an integer, got a list",
        ),
        (
            "fallback-started-machine-count: two\n",
            'fallback-started-machine-count: expected an integer, got the value "two"',
        ),
        (
            "max-scale-up-step: {a: 1}\n",
            "max-scale-up-step: expected a string, got a mapping",
        ),
        ("stop-mode: [stop]\n", "stop-mode: expected a string, got a list"),
        (
            "stop-metric-collector: [x]\n",
            "stop-metric-collector: expected a mapping, got a list",
        ),
        (
            "stop-metric-collector: {tokn: x}\n",
            'stop-metric-collector: unknown key "tokn"',
        ),
        (
            "stop-metric-collector: {keys: a}\n",
            'stop-metric-collector.keys: expected a list of strings, got the value "a"',
        ),
    ],
)
def test_file_errors(tmp_path, text, message):
    """Unknown keys and wrong types are rejected, naming the key and value."""
    path = write(tmp_path, text)
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: {message}"


def test_file_error_never_shows_a_secret(tmp_path):
    """A wrong type in a secret field is reported without its value."""
    path = write(tmp_path, f"api-token: {{value: {SECRET}}}\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: api-token: expected a string"
    path = write(tmp_path, "concurrency: FlyV1 fm2_abcdef\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert "fm2_abcdef" not in str(info.value)


def test_invalid_yaml(tmp_path):
    """A file that is not YAML is a ConfigError naming the file."""
    path = write(tmp_path, "app-name: [unclosed\n")
    with pytest.raises(fas.ConfigError, match="invalid YAML") as info:
        load_config(path, {})
    assert str(info.value).startswith(f"{path}: ")


def test_empty_file(tmp_path):
    """An empty file changes nothing."""
    assert load_config(write(tmp_path, "# nothing\n"), {}) == Config()


def test_missing_file():
    """A file that cannot be read raises OSError."""
    with pytest.raises(OSError, match="No such file"):
        load_config(DATA / "missing.yml", {})


# --- durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("300us", 300e-6),
        ("300µs", 300e-6),
        ("10ns", 10e-9),
        (".5m", 30.0),
        ("1.s", 1.0),
        ("-2s", -2.0),
        ("+2s", 2.0),
        ("0", 0.0),
        ("1h2m3.5s", 3723.5),
    ],
)
def test_parse_duration(text, seconds):
    """Go's duration syntax gives seconds."""
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize(
    "text", ["", "15", "s", "1d", "1 s", "1s ", "-", ".s", "1.2.3s", "15S", "1e3s"]
)
def test_parse_duration_rejects(text):
    """Anything else is a ValueError."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


# --- repr and building ----------------------------------------------------------


def test_repr_never_shows_a_secret():
    """Tokens, keys and URLs with passwords stay out of repr()."""
    entry = CollectorConfig(
        type="redis",
        token=SECRET,
        cert_data=SECRET,
        key_data=SECRET,
        api_key=SECRET,
        url=f"redis://:{SECRET}@h",
    )
    config = Config(api_token=SECRET, metric_collectors=[entry])
    assert SECRET not in repr(config)


def test_new_reconciler():
    """new_reconciler sets the expressions, regions, group, state, collectors."""
    config = valid(
        started_machine_count="",
        created_machine_count="2",
        min_started_machine_count="ceil(queue_depth / 10)",
        max_started_machine_count="5",
        regions=["iad", "ord"],
        process_group="worker",
        initial_machine_state="stopped",
        metric_collectors=[prometheus()],
    )
    config.validate()
    reconciler = config.new_reconciler()
    assert reconciler.min_created_machine_n == "2"
    assert reconciler.max_created_machine_n == "2"
    assert reconciler.min_started_machine_n == "ceil(queue_depth / 10)"
    assert reconciler.max_started_machine_n == "5"
    assert reconciler.regions == ["iad", "ord"]
    assert reconciler.process_group == "worker"
    assert reconciler.initial_machine_state == "stopped"
    (collector,) = reconciler.collectors
    assert isinstance(collector, PrometheusCollector)
    assert collector.name == "queue_depth"
    reconciler.validate()


def test_new_reconciler_shares_given_collectors():
    """Collectors passed in are used as they are, in a list of its own."""
    config = valid(metric_collectors=[prometheus()])
    collectors = config.build_collectors()
    first, second = config.new_reconciler(collectors), config.new_reconciler(collectors)
    assert first.collectors == second.collectors == collectors
    assert first.collectors is not collectors
    assert first.collectors[0] is collectors[0]


def test_build_collectors_reports_which():
    """A collector that refuses its settings is named by index, as Go does."""
    config = valid(metric_collectors=[prometheus(address="ftp://x")])
    with pytest.raises(fas.ConfigError, match=r"^metric collector\[0\]: prometheus"):
        config.build_collectors()


# --- where each setting came from -------------------------------------------------


def test_origins_name_each_setting_as_written(tmp_path):
    """Messages name a setting by the FAS_ variable or YAML key it came from."""
    path = write(tmp_path, "interval: 0s\nmetric-collectors:\n  - token: t\n")
    env = {
        "FAS_INTERVAL": "5s",
        "FAS_TIMEOUT": "5s",
        "FAS_PROMETHEUS_ADDRESS": "http://h",
        "FAS_PROMETHEUS_TOKEN": "x",
    }
    config = load_config(path, env)
    assert config.setting("interval") == "interval"
    assert config.setting("timeout") == "FAS_TIMEOUT"
    assert config.setting("app_list_refresh_interval") == "app-list-refresh-interval"
    assert config.metric_collectors[0].setting("token") == "token"
    (entry,) = load_config(environ=env).metric_collectors
    assert entry.setting("token") == "FAS_PROMETHEUS_TOKEN"
    assert entry.setting("query") == "query"
    valid_env = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=valid_env | {"FAS_TIMEOUT": "-1s"}).validate()
    assert str(info.value) == "FAS_TIMEOUT must be a positive duration, got -1s"


# --- bounds: durations and concurrency ------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FAS_INTERVAL": "99999999999h"},
            "FAS_INTERVAL must be at most 24h0m0s, got 99999999999h0m0s",
        ),
        ({"FAS_TIMEOUT": "24h0m0.001s"}, "FAS_TIMEOUT must be at most 24h0m0s"),
        (
            {"FAS_REQUEST_TIMEOUT": "0s"},
            "FAS_REQUEST_TIMEOUT must be a positive duration, got 0s",
        ),
        (
            {"FAS_APP_LIST_REFRESH_INTERVAL": "1000h"},
            "FAS_APP_LIST_REFRESH_INTERVAL must be at most 24h0m0s, got 1000h0m0s",
        ),
        ({"FAS_INTERVAL": "0s"}, "FAS_INTERVAL must be a positive duration, got 0s"),
        (
            {"FAS_CONCURRENCY": "2000"},
            "FAS_CONCURRENCY must be at most 256, got 2000",
        ),
        ({"FAS_CONCURRENCY": "0"}, "FAS_CONCURRENCY must be at least 1, got 0"),
        (
            {"FAS_UNHEALTHY_AFTER": "0"},
            "FAS_UNHEALTHY_AFTER must be at least 1, got 0",
        ),
    ],
)
def test_bounds_name_the_variable(env, message):
    """A value out of bounds is refused, naming the FAS_ variable it came from."""
    base = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=base | env).validate()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interval: 25h\n", "interval must be at most 24h0m0s, got 25h0m0s"),
        ("concurrency: 257\n", "concurrency must be at most 256, got 257"),
        ("unhealthy-after: 1001\n", "unhealthy-after must be at most 1000, got 1001"),
    ],
)
def test_bounds_name_the_yaml_key(tmp_path, text, message):
    """A value out of bounds from the file is refused, naming its key."""
    path = write(tmp_path, text)
    env = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, env).validate()
    assert str(info.value).startswith(message)


def test_bounds_are_inclusive():
    """24 hours and 256 workers are allowed."""
    valid(
        interval=86400.0,
        timeout=86400.0,
        app_list_refresh_interval=86400.0,
        concurrency=256,
    ).validate()


# --- app names ------------------------------------------------------------------

APP_RULE = (
    "(lowercase letters, digits and dashes, at most 63 characters; "
    "a wildcard may add *)"
)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("My_App", "My_App"),
        ("a" * 64, "a" * 64),
        ("my app/../x", "my app/../x"),
        ("caf\u00e9", "caf\u00e9"),
        ("", None),
    ],
)
def test_app_names_fly_cannot_have(name, shown):
    """An app name Fly cannot have is refused, naming FAS_APP_NAME and the rule."""
    env = {"FAS_APP_NAME": name, "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=env).validate()
    if shown is None:
        assert str(info.value) == "app name required"  # Go's message first
    else:
        assert str(info.value) == (
            f'FAS_APP_NAME must be a Fly app name {APP_RULE}, got "{shown}"'
        )
        assert info.value.field == "app_name"


def test_app_name_from_the_file_is_named_by_its_key(tmp_path):
    """A bad app-name in the file names the key."""
    path = write(tmp_path, "org: o\napp-name: Tenant-*\nstarted-machine-count: 1\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {}).validate()
    assert str(info.value) == (
        f'app-name must be a Fly app name {APP_RULE}, got "Tenant-*"'
    )


@pytest.mark.parametrize("name", ["a", "a" * 63, "my-app-2", "0x", "-"])
def test_app_names_fly_can_have(name):
    """Lowercase letters, digits and dashes, up to 63 of them, are fine."""
    valid(app_name=name).validate()


@pytest.mark.parametrize("name", ["tenant-*", "*", "*-worker", "a*b"])
def test_wildcards(name):
    """A wildcard may add * to the same alphabet."""
    valid(app_name=name, org="o").validate()


# --- tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FAS_API_TOKEN": "FlyV1 fm2_abc\ndef"},
            (
                "FAS_API_TOKEN cannot be sent in an HTTP header: character 14 is a "
                "control character (U+000A); only printable Latin-1 characters, "
                "spaces and tabs are allowed"
            ),
        ),
        (
            {"FAS_API_TOKEN": "fm2_t\u00f6k\u20acn"},
            (
                "FAS_API_TOKEN cannot be sent in an HTTP header: character 8 is not a "
                "Latin-1 character"
            ),
        ),
        (
            {
                "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9",
                "FAS_PROMETHEUS_METRIC_NAME": "q",
                "FAS_PROMETHEUS_QUERY": "up",
                "FAS_PROMETHEUS_TOKEN": "abc\r\nX-Injected: 1",
            },
            (
                "metric-collectors[0]: FAS_PROMETHEUS_TOKEN cannot be sent in an HTTP "
                "header: character 4 is a control character (U+000D)"
            ),
        ),
        (
            {
                "FAS_TEMPORAL_ADDRESS": "h:7233",
                "FAS_TEMPORAL_METRIC_NAME": "w",
                "FAS_TEMPORAL_API_KEY": "key\x00",
            },
            (
                "metric-collectors[0]: FAS_TEMPORAL_API_KEY cannot be sent in an HTTP "
                "header: character 4 is a control character (U+0000)"
            ),
        ),
    ],
)
def test_tokens_a_header_cannot_carry(env, message):
    """A token with a newline (or beyond Latin-1) is refused, its value unshown."""
    base = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=base | env).validate(require_token=True)
    text = str(info.value)
    assert text.startswith(message)
    for value in env.values():
        if "\n" in value or "\x00" in value or "\u20ac" in value:
            assert value not in text
    assert "abc" not in text
    assert "fm2_" not in text


def test_token_from_file_is_named_by_its_key(tmp_path):
    """A bad token from the file names its key, not the value."""
    path = write(
        tmp_path,
        "metric-collectors:\n"
        "  - type: prometheus\n    metric-name: q\n    address: http://h\n"
        '    query: up\n    token: "s3cret\\u0007x"\n',
    )
    env = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, env).validate()
    assert str(info.value).startswith(
        "metric-collectors[0]: token cannot be sent in an HTTP header: character 7 "
        "is a control character (U+0007)"
    )
    assert "s3cret" not in str(info.value)


def test_token_surrounding_whitespace_is_fine(tmp_path):
    """A Fly token's trailing newline (a YAML block, a file) is dropped, as before."""
    path = write(tmp_path, "api-token: |\n  FlyV1 fm2_abc,fm2_def\n")
    env = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    config = load_config(path, env)
    assert config.api_token.endswith("\n")
    config.validate(require_token=True)


# --- the YAML file's shape ----------------------------------------------------------


def test_yaml_nested_thousands_deep(tmp_path):
    """A file nested 3,000 deep is refused in one line, not a RecursionError."""
    path = write(tmp_path, "regions: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: YAML nested deeper than 50 levels at line 1"


def test_yaml_depth_names_the_line(tmp_path):
    """The message names the line where the limit is crossed (block style)."""
    text = "".join(f"{' ' * i}k{i}:\n" for i in range(60))
    path = write(tmp_path, text)
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: YAML nested deeper than 50 levels at line 51"


def test_yaml_at_the_depth_limit_is_read(tmp_path):
    """Fifty levels pass the depth check (and fail later, on their meaning)."""
    path = write(tmp_path, "regions: " + "[" * 49 + "]" * 49 + "\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert "regions[0]: expected a string, got a list" in str(info.value)


def test_yaml_alias_bomb(tmp_path):
    """Aliases that expand to billions of values are refused before reading."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)
    ]
    path = write(tmp_path, "\n".join(lines) + "\nregions: *a9\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert str(info.value).startswith(
        f"{path}: YAML has more than 100000 values (aliases expanded) at line "
    )


def test_yaml_recursive_alias(tmp_path):
    """An alias inside its own anchor is read as an error, not followed forever."""
    path = write(tmp_path, "regions: &r [*r]\n")
    with pytest.raises(fas.ConfigError, match=r"regions\[0\]: expected a string"):
        load_config(path, {})


def test_yaml_aliases_within_bounds(tmp_path):
    """Ordinary anchors and aliases still work."""
    path = write(
        tmp_path,
        "regions: &r [iad, ord]\n"
        "metric-collectors:\n"
        "  - &p {type: prometheus, metric-name: a, address: http://h, query: up}\n",
    )
    config = load_config(path, {})
    assert config.regions == ["iad", "ord"]
    assert config.metric_names() == ["a"]


# --- expressions given the wrong arguments ----------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("max()", "max() takes at least 1 argument, got 0 at column 1"),
        ("round(1,2,3)", "round() takes exactly 1 argument, got 3 at column 1"),
        ("ceil(true)", "ceil() argument 1 must be a number, got bool at column 6"),
    ],
)
def test_validate_refuses_wrong_function_arguments(source, message):
    """A function given the wrong number or type of arguments fails validation."""
    with pytest.raises(fas.ConfigError) as info:
        valid(started_machine_count=source).validate()
    assert str(info.value) == (
        f"invalid started machine count: {message} in expression {source!r}"
    )
    assert isinstance(info.value.__cause__, fas.ExpressionError)


# --- metric-query-variables -------------------------------------------------------


def test_query_variables_from_environment():
    """FAS_METRIC_QUERY_VARIABLES is a comma list of names."""
    config = load_config(environ={"FAS_METRIC_QUERY_VARIABLES": " REGION, TIER ,"})
    assert config.metric_query_variables == ["REGION", "TIER"]
    assert config.setting("metric_query_variables") == "FAS_METRIC_QUERY_VARIABLES"


def test_query_variables_from_file(tmp_path):
    """metric-query-variables is a list of names, read without $ expansion."""
    path = write(tmp_path, "metric-query-variables: [REGION, $TIER]\n")
    config = load_config(path, {"TIER": "x"})
    assert config.metric_query_variables == ["REGION", "$TIER"]
    assert config.setting("metric_query_variables") == "metric-query-variables"


def test_query_variables_file_errors(tmp_path):
    """A value that is not a list of names is refused, naming the key."""
    path = write(tmp_path, "metric-query-variables: REGION\n")
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == (
        f"{path}: metric-query-variables: expected a list of names, got the value "
        '"REGION"'
    )


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            "REGION,MY-VAR",
            (
                'FAS_METRIC_QUERY_VARIABLES: "MY-VAR" is not a variable name '
                "(letters, digits and _, not starting with a digit)"
            ),
        ),
        (
            "APP_NAME",
            (
                "FAS_METRIC_QUERY_VARIABLES: APP_NAME always becomes the app's name; "
                "do not list it"
            ),
        ),
        (
            "FAS_REDIS_URL",
            (
                "FAS_METRIC_QUERY_VARIABLES: FAS_REDIS_URL holds a credential and "
                "cannot be used in a query"
            ),
        ),
        (
            "REGION,FAS_API_TOKEN",
            (
                "FAS_METRIC_QUERY_VARIABLES: FAS_API_TOKEN holds a credential and "
                "cannot be used in a query"
            ),
        ),
    ],
)
def test_query_variables_validation(names, message):
    """Listed names must be names, not APP_NAME, not the autoscaler's secrets."""
    env = {
        "FAS_APP_NAME": "a",
        "FAS_STARTED_MACHINE_COUNT": "1",
        "FAS_METRIC_QUERY_VARIABLES": names,
    }
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=env).validate()
    assert str(info.value) == message
    assert info.value.field == "metric_query_variables"


def test_query_variables_values():
    """The listed variables' values are read from the environment given."""
    config = valid(metric_query_variables=["REGION", "EMPTY"])
    env = {"REGION": "iad", "EMPTY": "", "DATABASE_URL": "postgres://u:p@h/db"}
    assert config.query_variables(env) == {"REGION": "iad", "EMPTY": ""}


def test_query_variables_must_be_set():
    """A listed variable that is not set is an error, naming it."""
    config = valid(metric_query_variables=["REGION"])
    with pytest.raises(fas.ConfigError) as info:
        config.query_variables({})
    assert str(info.value) == (
        "metric-query-variables lists REGION, which is not set in the environment"
    )


@pytest.mark.parametrize(
    ("fields", "value", "holder"),
    [
        ({"api_token": f"FlyV1 fm2_{SECRET}"}, f"fm2_{SECRET}", "api-token"),
        (
            {"metric_collectors": [prometheus(token=SECRET)]},
            f"x{SECRET}x",
            "metric-collectors[0] token",
        ),
        (
            {
                "metric_collectors": [
                    CollectorConfig(
                        type="redis",
                        metric_name="q",
                        url=f"redis://:{SECRET}@h",
                        keys=["k"],
                    )
                ]
            },
            f"postgres://u:{SECRET}@db/x",
            "metric-collectors[0] url",
        ),
    ],
)
def test_query_variables_never_carry_a_credential(fields, value, holder):
    """A listed variable holding a configured credential is refused, unshown."""
    config = valid(metric_query_variables=["COPY"], **fields)
    with pytest.raises(fas.ConfigError) as info:
        config.query_variables({"COPY": value})
    assert str(info.value) == (
        f"metric-query-variables: COPY contains the credential of {holder}, "
        "so it cannot be used in a query"
    )
    assert SECRET not in str(info.value)


def test_build_collectors_passes_the_variables():
    """Every collector gets the listed variables' values, read once."""
    config = valid(
        metric_query_variables=["REGION"],
        metric_collectors=[prometheus(), prometheus(metric_name="other")],
    )
    first, second = config.build_collectors({"REGION": "iad", "OTHER": "no"})
    assert isinstance(first, PrometheusCollector)
    assert isinstance(second, PrometheusCollector)
    assert first.variables == second.variables == {"REGION": "iad"}


def test_build_collectors_without_variables_reads_nothing(monkeypatch):
    """With no metric-query-variables, no environment value reaches a collector."""
    monkeypatch.setenv("REGION", "iad")
    (collector,) = valid(metric_collectors=[prometheus()]).build_collectors()
    assert isinstance(collector, PrometheusCollector)
    assert collector.variables == {}


# --- scaling behaviour ----------------------------------------------------------

BEHAVIOUR_ENV = {
    "FAS_SCALE_DOWN_STABILIZATION": "5m",
    "FAS_SCALE_UP_STABILIZATION": "30",
    "FAS_MAX_SCALE_UP_STEP": "50%",
    "FAS_MAX_SCALE_DOWN_STEP": "2",
    "FAS_FALLBACK_AFTER": "3",
    "FAS_FALLBACK_STARTED_MACHINE_COUNT": "4",
    "FAS_STOP_MODE": "suspend",
    "FAS_RELEASE_TIMEOUT": "1h30m",
}


SETTINGS = (
    "scale_down_stabilization",
    "scale_up_stabilization",
    "max_scale_up_step",
    "max_scale_down_step",
    "fallback_after",
    "fallback_started_machine_count",
    "stop_mode",
    "release_timeout",
)
FIELDS = (
    *SETTINGS[:5],
    "fallback_started_machine_n",
    "stop_mode",
    "stop_metric_collector",
)


def behaviour(config: Config) -> dict[str, object]:
    """The scaling behaviour settings of *config*."""
    return {name: getattr(config, name) for name in SETTINGS}


def reconciler_behaviour(reconciler: fas.Reconciler) -> dict[str, object]:
    """The scaling behaviour fields of *reconciler*."""
    return {name: getattr(reconciler, name) for name in FIELDS}


def test_behaviour_defaults_are_unchanged():
    """Without the new settings, the reconciler keeps the Go original's behaviour."""
    config = load_config(
        environ={"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    )
    assert behaviour(config) == {
        "scale_down_stabilization": 0.0,
        "scale_up_stabilization": 0.0,
        "max_scale_up_step": "",
        "max_scale_down_step": "",
        "fallback_after": 0,
        "fallback_started_machine_count": None,
        "stop_mode": "stop",
        "release_timeout": 0.0,
    }
    assert config.stop_metric_collector is None
    config.validate()
    assert reconciler_behaviour(config.new_reconciler()) == reconciler_behaviour(
        fas.Reconciler()
    )
    assert config.build_stop_metric_collector() is None


def test_behaviour_from_environment():
    """Each scaling behaviour variable is read and reaches the Reconciler."""
    config = load_config(
        environ=BEHAVIOUR_ENV | {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    )
    assert behaviour(config) == {
        "scale_down_stabilization": 300.0,
        "scale_up_stabilization": 30.0,
        "max_scale_up_step": "50%",
        "max_scale_down_step": "2",
        "fallback_after": 3,
        "fallback_started_machine_count": 4,
        "stop_mode": "suspend",
        "release_timeout": 5400.0,
    }
    assert config.setting("release_timeout") == "FAS_RELEASE_TIMEOUT"
    config.validate()
    reconciler = config.new_reconciler()
    assert reconciler_behaviour(reconciler) == {
        "scale_down_stabilization": 300.0,
        "scale_up_stabilization": 30.0,
        "max_scale_up_step": "50%",
        "max_scale_down_step": 2,
        "fallback_after": 3,
        "fallback_started_machine_n": 4,
        "stop_mode": "suspend",
        "stop_metric_collector": None,
    }
    reconciler.validate()


def test_behaviour_from_yaml(tmp_path):
    """Every key of the scaling behaviour is read; steps may be YAML numbers."""
    path = write(
        tmp_path,
        "scale-down-stabilization: 300\n"
        "scale-up-stabilization: 1m30s\n"
        "max-scale-up-step: 4\n"
        'max-scale-down-step: "25%"\n'
        "fallback-after: 2\n"
        "fallback-started-machine-count: 0\n"
        "stop-mode: suspend\n"
        "release-timeout: 0\n",
    )
    config = load_config(path, BEHAVIOUR_ENV)  # the file wins, key by key
    assert behaviour(config) == {
        "scale_down_stabilization": 300.0,
        "scale_up_stabilization": 90.0,
        "max_scale_up_step": "4",
        "max_scale_down_step": "25%",
        "fallback_after": 2,
        "fallback_started_machine_count": 0,
        "stop_mode": "suspend",
        "release_timeout": 0.0,
    }
    assert config.setting("max_scale_up_step") == "max-scale-up-step"
    reconciler = valid(**behaviour(config)).new_reconciler()
    assert (reconciler.max_scale_up_step, reconciler.max_scale_down_step) == (4, "25%")
    assert reconciler.fallback_started_machine_n == 0


def test_behaviour_yaml_keys_without_value_keep_the_environment(tmp_path):
    """`key:` with no value leaves the environment's value (or the default)."""
    path = write(tmp_path, "fallback-started-machine-count:\nstop-mode:\n")
    config = load_config(path, {"FAS_STOP_MODE": "suspend"})
    assert config.fallback_started_machine_count is None
    assert config.stop_mode == "suspend"


STEP_RULE = "a count of at least 1 (4) or a percent of the current count (50%)"


@pytest.mark.parametrize(
    ("env", "message", "field"),
    [
        (
            {"FAS_SCALE_DOWN_STABILIZATION": "25h"},
            (
                "FAS_SCALE_DOWN_STABILIZATION must be a duration from 0s to 24h0m0s, "
                "got 25h0m0s"
            ),
            "scale_down_stabilization",
        ),
        (
            {"FAS_SCALE_UP_STABILIZATION": "86401"},
            (
                "FAS_SCALE_UP_STABILIZATION must be a duration from 0s to 24h0m0s, "
                "got 24h0m1s"
            ),
            "scale_up_stabilization",
        ),
        (
            {"FAS_RELEASE_TIMEOUT": "48h"},
            "FAS_RELEASE_TIMEOUT must be a duration from 0s to 24h0m0s, got 48h0m0s",
            "release_timeout",
        ),
        (
            {"FAS_MAX_SCALE_UP_STEP": "0"},
            f"FAS_MAX_SCALE_UP_STEP must be {STEP_RULE}, got '0'",
            "max_scale_up_step",
        ),
        (
            {"FAS_MAX_SCALE_DOWN_STEP": "-50%"},
            f"FAS_MAX_SCALE_DOWN_STEP must be {STEP_RULE}, got '-50%'",
            "max_scale_down_step",
        ),
        (
            {"FAS_MAX_SCALE_DOWN_STEP": "two"},
            f"FAS_MAX_SCALE_DOWN_STEP must be {STEP_RULE}, got 'two'",
            "max_scale_down_step",
        ),
        (
            {"FAS_FALLBACK_AFTER": "-1"},
            "FAS_FALLBACK_AFTER must be at least 0, got -1",
            "fallback_after",
        ),
        (
            {"FAS_FALLBACK_AFTER": "3", "FAS_FALLBACK_STARTED_MACHINE_COUNT": "-2"},
            "FAS_FALLBACK_STARTED_MACHINE_COUNT must be at least 0, got -2",
            "fallback_started_machine_count",
        ),
        (
            {"FAS_FALLBACK_AFTER": "3"},
            (
                "FAS_FALLBACK_AFTER is 3 but fallback-started-machine-count is not "
                "set: set the started count to fall back to, or FAS_FALLBACK_AFTER to "
                "0 to hold the fleet"
            ),
            "fallback_started_machine_count",
        ),
        (
            {"FAS_FALLBACK_STARTED_MACHINE_COUNT": "2"},
            (
                "FAS_FALLBACK_STARTED_MACHINE_COUNT is set but fallback-after is 0 "
                "(hold the fleet): set fallback-after to the failed passes in a row "
                "after which the fallback applies"
            ),
            "fallback_after",
        ),
        (
            {"FAS_FALLBACK_AFTER": "0", "FAS_FALLBACK_STARTED_MACHINE_COUNT": "2"},
            (
                "FAS_FALLBACK_STARTED_MACHINE_COUNT is set but FAS_FALLBACK_AFTER is 0 "
                "(hold the fleet): set FAS_FALLBACK_AFTER to the failed passes in a "
                "row after which the fallback applies"
            ),
            "fallback_after",
        ),
        (
            {"FAS_STOP_MODE": "pause"},
            "FAS_STOP_MODE must be 'stop' or 'suspend', got 'pause'",
            "stop_mode",
        ),
    ],
)
def test_behaviour_bad_values_name_the_variable(env, message, field):
    """Each bad value is refused, naming the variable, the value and what is allowed."""
    base = {"FAS_APP_NAME": "a", "FAS_STARTED_MACHINE_COUNT": "1"}
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=base | env).validate()
    assert str(info.value) == message
    assert info.value.field == field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "scale-down-stabilization: 25h\n",
            (
                "scale-down-stabilization must be a duration from 0s to 24h0m0s, got "
                "25h0m0s"
            ),
        ),
        (
            "max-scale-up-step: 0\n",
            f"max-scale-up-step must be {STEP_RULE}, got '0'",
        ),
        (
            "fallback-after: 2\n",
            (
                "fallback-after is 2 but fallback-started-machine-count is not set: "
                "set the started count to fall back to, or fallback-after to 0 to hold "
                "the fleet"
            ),
        ),
        (
            "fallback-started-machine-count: 1\n",
            (
                "fallback-started-machine-count is set but fallback-after is 0 (hold "
                "the fleet): set fallback-after to the failed passes in a row after "
                "which the fallback applies"
            ),
        ),
        (
            "stop-mode: Suspend\n",
            "stop-mode must be 'stop' or 'suspend', got 'Suspend'",
        ),
    ],
)
def test_behaviour_bad_values_name_the_yaml_key(tmp_path, text, message):
    """A bad value from the file is refused, naming its key."""
    path = write(tmp_path, "app-name: a\nstarted-machine-count: 1\n" + text)
    with pytest.raises(fas.ConfigError) as info:
        load_config(path, {}).validate()
    assert str(info.value) == message


def test_behaviour_bounds_are_inclusive():
    """0 and 24 hours, a step of 1 or 100%, a fallback count of 0 are allowed."""
    for window in (0.0, 86400.0):
        valid(
            scale_down_stabilization=window,
            scale_up_stabilization=window,
            release_timeout=window,
        ).validate()
    valid(max_scale_up_step="1", max_scale_down_step="100%").validate()
    valid(max_scale_up_step=" 0.5% ", max_scale_down_step="").validate()
    valid(fallback_after=1, fallback_started_machine_count=0).validate()


# --- the current Machine counts in expressions ----------------------------------


def test_expressions_may_use_the_machine_counts(tmp_path):
    """created_machine_count and started_machine_count are known to every count."""
    path = write(
        tmp_path,
        "app-name: a\n"
        "min-started-machine-count: ceil(started_machine_count * cpu / 0.6)\n"
        "max-started-machine-count: ceil(started_machine_count * cpu / 0.4)\n"
        "min-created-machine-count: created_machine_count\n"
        "max-created-machine-count: created_machine_count + 2\n"
        "metric-collectors:\n"
        "  - type: prometheus\n    metric-name: cpu\n    address: http://h\n"
        "    query: avg(cpu)\n",
    )
    config = load_config(path, {})
    config.validate()
    config.new_reconciler().validate()


def test_unknown_names_are_still_refused_beside_the_machine_counts():
    """A misspelled count name fails as any unknown name does."""
    with pytest.raises(fas.ConfigError, match="'started_machine_cnt'"):
        valid(started_machine_count="started_machine_cnt").validate()


@pytest.mark.parametrize("name", ["created_machine_count", "started_machine_count"])
def test_collectors_may_not_take_the_machine_counts_names(name):
    """A collector named like a current Machine count is refused, saying why."""
    env = {
        "FAS_APP_NAME": "a",
        "FAS_STARTED_MACHINE_COUNT": "1",
        "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9",
        "FAS_PROMETHEUS_METRIC_NAME": name,
        "FAS_PROMETHEUS_QUERY": "up",
    }
    with pytest.raises(fas.ConfigError) as info:
        load_config(environ=env).validate()
    assert str(info.value) == (
        f'metric-collectors[0]: metric name "{name}" is reserved: expressions use '
        "created_machine_count and started_machine_count for the current Machine "
        "counts; choose another metric-name"
    )
    assert info.value.field == "metric_name"


# --- stop-metric-collector ------------------------------------------------------

PROM_ENV = {
    "FAS_APP_NAME": "a",
    "FAS_STARTED_MACHINE_COUNT": "1",
    "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9",
    "FAS_PROMETHEUS_METRIC_NAME": "queue_depth",
    "FAS_PROMETHEUS_QUERY": "sum(queue_depth)",
    "FAS_PROMETHEUS_TOKEN": SECRET,
}
STOP_QUERY = 'sum by (instance) (fly_app_concurrency{app="$APP_NAME"})'


def test_stop_metric_from_environment():
    """FAS_STOP_METRIC_PROMETHEUS_QUERY adds it on the Prometheus address and token."""
    config = load_config(
        environ=PROM_ENV | {"FAS_STOP_METRIC_PROMETHEUS_QUERY": STOP_QUERY}
    )
    entry = config.stop_metric_collector
    assert entry == CollectorConfig(
        type="prometheus", address="http://127.0.0.1:9", query=STOP_QUERY, token=SECRET
    )
    assert entry is not None
    assert entry.setting("query") == "FAS_STOP_METRIC_PROMETHEUS_QUERY"
    assert entry.setting("token") == "FAS_PROMETHEUS_TOKEN"
    config.validate()
    collector = config.new_reconciler().stop_metric_collector
    assert isinstance(collector, PrometheusMachineCollector)
    assert collector.name == "stop_metric"
    assert (collector.address, collector.query) == ("http://127.0.0.1:9", STOP_QUERY)
    assert collector.token == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in repr(collector)


def test_no_stop_metric_without_its_query():
    """The Prometheus variables alone add no stop metric."""
    assert load_config(environ=PROM_ENV).stop_metric_collector is None


def test_stop_metric_from_environment_needs_the_prometheus_address():
    """The query without FAS_PROMETHEUS_ADDRESS is refused, saying what it needs."""
    env = {
        "FAS_APP_NAME": "a",
        "FAS_STARTED_MACHINE_COUNT": "1",
        "FAS_PROMETHEUS_TOKEN": SECRET,
        "FAS_STOP_METRIC_PROMETHEUS_QUERY": STOP_QUERY,
    }
    config = load_config(environ=env)
    message = (
        "FAS_STOP_METRIC_PROMETHEUS_QUERY is set but FAS_PROMETHEUS_ADDRESS is not: "
        "the stop metric is queried on the metric collector's Prometheus server "
        "(FAS_PROMETHEUS_ADDRESS and FAS_PROMETHEUS_TOKEN)"
    )
    for check in (config.validate, config.build_stop_metric_collector):
        with pytest.raises(fas.ConfigError) as info:
            check()
        assert str(info.value) == message
        assert info.value.field == "address"


def test_stop_metric_from_yaml(tmp_path):
    """A stop-metric-collector block replaces the environment's, with its own name."""
    path = write(
        tmp_path,
        "metric-query-variables: [REGION]\n"
        "stop-metric-collector:\n"
        "  type: prometheus\n"
        "  metric-name: concurrency\n"
        "  address: http://prom.example:9090\n"
        '  query: sum by (instance) (c{app="$APP_NAME", r="$REGION"})\n'
        "  token: ${STOP_TOKEN}\n",
    )
    env = PROM_ENV | {
        "FAS_STOP_METRIC_PROMETHEUS_QUERY": STOP_QUERY,
        "STOP_TOKEN": "stop-token-value",
        "REGION": "iad",
    }
    config = load_config(path, env)
    assert config.stop_metric_collector == CollectorConfig(
        type="prometheus",
        metric_name="concurrency",
        address="http://prom.example:9090",
        query='sum by (instance) (c{app="$APP_NAME", r="$REGION"})',
        token="stop-token-value",  # noqa: S106 - a test value
    )
    config.validate()
    collector = config.build_stop_metric_collector(env)
    assert isinstance(collector, PrometheusMachineCollector)
    assert collector.name == "concurrency"
    assert collector.variables == {"REGION": "iad"}
    # The metric collectors are the environment's still.
    assert config.metric_names() == ["queue_depth"]


def test_stop_metric_yaml_without_value_keeps_the_environment(tmp_path):
    """`stop-metric-collector:` with no value leaves the environment's."""
    path = write(tmp_path, "stop-metric-collector:\n")
    env = PROM_ENV | {"FAS_STOP_METRIC_PROMETHEUS_QUERY": STOP_QUERY}
    entry = load_config(path, env).stop_metric_collector
    assert entry is not None
    assert entry.query == STOP_QUERY


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"address": "http://h", "query": "q"}, "stop-metric-collector: type required"),
        (
            {"type": "redis", "url": "redis://h", "keys": ["k"]},
            (
                'stop-metric-collector: type "redis" has no per-Machine collector: the '
                'type must be "prometheus"'
            ),
        ),
        ({"type": "nats"}, 'stop-metric-collector: invalid type: "nats"'),
        (
            {"type": "prometheus", "query": "q"},
            "stop-metric-collector: prometheus address required",
        ),
        (
            {"type": "prometheus", "address": "http://h"},
            "stop-metric-collector: prometheus query required",
        ),
        (
            {
                "type": "prometheus",
                "address": "http://h",
                "query": "q",
                "token": "a\nb",
            },
            (
                "stop-metric-collector: token cannot be sent in an HTTP header: "
                "character 2 is a control character (U+000A); only printable Latin-1 "
                "characters, spaces and tabs are allowed"
            ),
        ),
    ],
)
def test_stop_metric_validation(block, message):
    """The block is checked like a metric-collectors entry, its metric-name optional."""
    config = valid(stop_metric_collector=CollectorConfig(**block))
    with pytest.raises(fas.ConfigError) as info:
        config.validate()
    assert str(info.value) == message


def test_stop_metric_collector_refuses_what_the_collector_refuses():
    """An address that is not a URL fails when it is built, named as the block."""
    entry = CollectorConfig(type="prometheus", address="prom.example:9090", query="q")
    config = valid(stop_metric_collector=entry)
    config.validate()
    with pytest.raises(fas.ConfigError) as info:
        config.new_reconciler([])
    assert str(info.value) == (
        "stop-metric-collector: prometheus address must be an http(s) URL, got "
        "'prom.example:9090'"
    )


def test_query_variables_never_carry_the_stop_metric_token():
    """A listed variable holding the stop metric's token is refused, unshown."""
    entry = CollectorConfig(
        type="prometheus", address="http://h", query="q", token=SECRET
    )
    config = valid(metric_query_variables=["COPY"], stop_metric_collector=entry)
    with pytest.raises(fas.ConfigError) as info:
        config.query_variables({"COPY": f"x{SECRET}"})
    assert str(info.value) == (
        "metric-query-variables: COPY contains the credential of "
        "stop-metric-collector token, so it cannot be used in a query"
    )


def test_new_reconciler_uses_the_stop_metric_collector_given():
    """A collector passed in is used as is (serve shares one between apps)."""
    entry = CollectorConfig(type="prometheus", address="http://h", query="q")
    given = PrometheusMachineCollector("mine", "http://other", "q")
    reconciler = valid(stop_metric_collector=entry).new_reconciler([], given)
    assert reconciler.stop_metric_collector is given
