"""PrometheusCollector and PrometheusMachineCollector against a real Prometheus.

The first half starts the Debian ``prometheus`` binary on 127.0.0.1 with a
temporary configuration that scrapes a ``prometheus_client`` exporter run by the
test. The second half uses ``responses`` for what a real server cannot be made
to say (auth header forms, 405 fallback, warnings, error bodies).
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from prometheus_client import CollectorRegistry, Gauge, start_http_server

import flyautoscaler as fas
from flyautoscaler.collectors import (
    DEFAULT_PROMETHEUS_TIMEOUT,
    PrometheusCollector,
    PrometheusMachineCollector,
    PrometheusQueryError,
)
from servers import free_port, run_prometheus

# Generous: other test runs share this machine's two cores.
STARTUP_DEADLINE = 90.0
APPS = {"app-a": 3.0, "app-b": 7.0}
# machine_load{app, instance, process}, the instance label as Fly sets it: the
# Machine's id. app-c has a Machine in two series, and NaN and +Inf values.
MACHINE_LOAD = {
    ("app-a", "3d8d9e1a", "web"): 4.0,
    ("app-a", "9080e6f1", "web"): 0.0,
    ("app-a", "e784079b", "web"): 2.5,
    ("app-b", "1781973f", "web"): 7.0,
    ("app-c", "5683d5e3", "web"): 1.0,
    ("app-c", "5683d5e3", "worker"): 6.0,
    ("app-c", "d8dd1e9c", "web"): math.nan,
    ("app-c", "91852e1b", "web"): math.inf,
}


@pytest.fixture(scope="module")
def exporter() -> Iterator[int]:
    """Serve ``queue_depth{app}`` and ``machine_load{app,instance,process}``."""
    registry = CollectorRegistry()
    gauge = Gauge("queue_depth", "Jobs waiting", ["app"], registry=registry)
    for app, value in APPS.items():
        gauge.labels(app=app).set(value)
    load = Gauge(
        "machine_load", "Load", ["app", "instance", "process"], registry=registry
    )
    for (app, instance, process), value in MACHINE_LOAD.items():
        load.labels(app=app, instance=instance, process=process).set(value)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=15)


def _scraped(address: str) -> bool:
    """Return True once Prometheus answers and has both apps' series."""
    try:
        response = requests.get(
            f"{address}/api/v1/query",
            params={"query": "count(queue_depth)"},
            timeout=(2, 5),
        )
        with response:
            [sample] = response.json()["data"]["result"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False
    return bool(sample["value"][1] == str(len(APPS)))


@pytest.fixture(scope="module")
def prometheus(
    exporter: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Run a real Prometheus on 127.0.0.1 that has scraped the exporter."""
    yield from run_prometheus(
        tmp_path_factory,
        config="global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        "    honor_labels: true\n"  # machine_load's instance, not the target's
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter}']\n",
        ready=_scraped,
        deadline=STARTUP_DEADLINE,
    )


def collector(address: str, query: str, **kwargs: Any) -> PrometheusCollector:
    """A collector named ``queue_depth`` for *query*."""
    return PrometheusCollector("queue_depth", address, query, **kwargs)


# --- against a real Prometheus -----------------------------------------------------


@pytest.mark.parametrize(("app", "expected"), sorted(APPS.items()))
def test_value_per_app(prometheus, app, expected):
    """$APP_NAME selects each app's series."""
    c = collector(prometheus, 'queue_depth{app="$APP_NAME"}')
    assert c.collect_metric(app) == expected


def test_braced_app_name_and_promql_dollar_groups(prometheus):
    """${APP_NAME} expands while label_replace's $1 reaches the server intact."""
    c = collector(
        prometheus,
        'sum(label_replace(queue_depth{app="${APP_NAME}"},'
        ' "copy", "$1", "app", "(.*)"))',
    )
    assert c.collect_metric("app-b") == 7.0


def test_listed_variables_only(prometheus, monkeypatch):
    """A listed variable expands; one only set in the environment is sent as is."""
    monkeypatch.setenv("OTHER_APP", "app-b")
    # Sent as written, "$OTHER_APP" is a regexp alternative that matches nothing.
    query = 'count(queue_depth{app=~"$APP_NAME|$OTHER_APP"})'
    assert collector(prometheus, query).collect_metric("app-a") == 1.0
    listed = collector(prometheus, query, variables={"OTHER_APP": "app-b"})
    assert listed.collect_metric("app-a") == 2.0


def test_scalar_result(prometheus):
    """A scalar result is accepted."""
    assert collector(prometheus, "scalar(sum(queue_depth))").collect_metric("x") == 10.0
    assert collector(prometheus, "42").collect_metric("x") == 42.0


def test_nan_value(prometheus):
    """A NaN value is returned as NaN, not an error."""
    assert math.isnan(collector(prometheus, "0 / 0").collect_metric("app-a"))


def test_time_parameter_sets_evaluation_time(prometheus):
    """The query is evaluated at the clock's time, sent as ``time``."""
    c = collector(prometheus, "time()", clock=lambda: 1_700_000_000.25)
    assert c.collect_metric("app-a") == 1_700_000_000.25


def test_several_series_take_the_first_and_warn(prometheus, caplog):
    """A vector with several series gives the first value and logs a warning."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler.collectors")
    value = collector(prometheus, "sort(queue_depth)").collect_metric("app-a")
    assert value == 3.0
    [record] = [
        r for r in caplog.records if r.msg == "collector.prometheus.multiple_series"
    ]
    extra = vars(record)
    assert (extra["app"], extra["collector"]) == ("app-a", "queue_depth")
    assert extra["series"] == 2


def test_empty_result_is_an_error(prometheus):
    """An empty vector raises a transient error by default."""
    with pytest.raises(PrometheusQueryError, match="empty prometheus result") as info:
        collector(prometheus, 'queue_depth{app="$APP_NAME"}').collect_metric("nope")
    assert info.value.error_type == "empty_result"
    assert info.value.transient
    assert isinstance(info.value, fas.MetricCollectionError)
    assert info.value.collector == "queue_depth"


def test_empty_result_with_default(prometheus):
    """With a default, an empty vector gives the default."""
    c = collector(prometheus, 'queue_depth{app="$APP_NAME"}', default=0.0)
    assert c.collect_metric("nope") == 0.0
    assert c.collect_metric("app-a") == 3.0


def test_bad_query(prometheus):
    """A query that does not parse gives errorType bad_data, not transient."""
    with pytest.raises(PrometheusQueryError, match="bad_data") as info:
        collector(prometheus, "sum(queue_depth").collect_metric("app-a")
    assert info.value.error_type == "bad_data"
    assert info.value.status_code == 400
    assert info.value.error
    assert not info.value.transient


@pytest.mark.parametrize("query", ["queue_depth[1m]", '"some text"'])
def test_matrix_and_string_results_are_rejected(prometheus, query):
    """Range vectors and strings are not a metric value."""
    with pytest.raises(PrometheusQueryError, match="unexpected prometheus result"):
        collector(prometheus, query).collect_metric("app-a")


def test_reconciler_collects_through_it(prometheus):
    """A Reconciler stores the collector's value under its name."""
    reconciler = fas.Reconciler(
        app_name="app-b",
        collectors=[collector(prometheus, 'queue_depth{app="$APP_NAME"}')],
    )
    reconciler.collect_metrics()
    assert reconciler.value("queue_depth") == 7.0


def test_unreachable_server_fails_fast():
    """A closed port fails at once with a transient connection error."""
    c = collector(f"http://127.0.0.1:{free_port()}", "up")
    started = time.monotonic()
    with pytest.raises(PrometheusQueryError, match="cannot reach") as info:
        c.collect_metric("app-a")
    assert time.monotonic() - started < 5
    assert info.value.error_type == "connection"
    assert info.value.transient


def test_silent_server_times_out():
    """A server that accepts but never answers hits the read timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the kernel completes the handshake
        port = listener.getsockname()[1]
        c = collector(f"http://127.0.0.1:{port}", "up", timeout=(2.0, 0.3))
        started = time.monotonic()
        with pytest.raises(PrometheusQueryError, match="no answer") as info:
            c.collect_metric("app-a")
    assert time.monotonic() - started < 10
    assert info.value.error_type == "timeout"
    assert info.value.transient


# --- PrometheusMachineCollector, against a real Prometheus --------------------------


def machines(address: str, query: str, **kwargs: Any) -> PrometheusMachineCollector:
    """A per-Machine collector named ``load`` for *query*."""
    return PrometheusMachineCollector("load", address, query, **kwargs)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("app-a", {"3d8d9e1a": 4.0, "9080e6f1": 0.0, "e784079b": 2.5}),
        ("app-b", {"1781973f": 7.0}),
    ],
)
def test_machine_values_by_instance(prometheus, app, expected):
    """Each sample's instance label names its Machine; $APP_NAME selects the app."""
    c = machines(prometheus, 'machine_load{app="$APP_NAME"}')
    assert c.collect_machine_metrics(app) == expected


def test_machine_values_nan_inf_dropped_and_duplicates_keep_the_max(prometheus, caplog):
    """NaN and +Inf Machines have no value; a Machine in two series gets the max."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler.collectors")
    c = machines(prometheus, 'machine_load{app="$APP_NAME"}')
    assert c.collect_machine_metrics("app-c") == {"5683d5e3": 6.0}
    [record] = [
        r for r in caplog.records if r.msg == "collector.prometheus.duplicate_instances"
    ]
    extra = vars(record)
    assert (extra["app"], extra["collector"]) == ("app-c", "load")
    assert extra["instances"] == ["5683d5e3"]


def test_machine_values_with_query_variables(prometheus):
    """Listed variables expand in the per-Machine query too."""
    c = machines(
        prometheus,
        'machine_load{app="$APP_NAME", process="$PROCESS"}',
        variables={"PROCESS": "worker"},
    )
    assert c.collect_machine_metrics("app-c") == {"5683d5e3": 6.0}


def test_machine_values_ignore_series_without_instance(prometheus, caplog):
    """Series without an instance label are left out, and counted in a warning."""
    caplog.set_level(logging.WARNING, logger="flyautoscaler.collectors")
    c = machines(
        prometheus, 'machine_load{app="$APP_NAME"} or sum by (app) (queue_depth)'
    )
    assert c.collect_machine_metrics("app-b") == {"1781973f": 7.0}
    [record] = [
        r for r in caplog.records if r.msg == "collector.prometheus.unlabelled_series"
    ]
    assert (vars(record)["series"], vars(record)["label"]) == (2, "instance")


def test_machine_values_empty_vector(prometheus):
    """No series: no Machine has a value (not an error)."""
    c = machines(prometheus, 'machine_load{app="$APP_NAME"}')
    assert c.collect_machine_metrics("nope") == {}


@pytest.mark.parametrize(
    ("query", "result_type"),
    [
        ('scalar(sum(machine_load{app="app-a"}))', "scalar"),
        ("42", "scalar"),
        ("machine_load[1m]", "matrix"),
        ('"some text"', "string"),
    ],
)
def test_machine_values_need_a_vector(prometheus, query, result_type):
    """A scalar, matrix or string result is a permanent error naming the type."""
    with pytest.raises(PrometheusQueryError) as info:
        machines(prometheus, query).collect_machine_metrics("app-a")
    assert str(info.value).endswith(
        f"unexpected prometheus result type '{result_type}' "
        "(want a vector, one sample per Machine)"
    )
    assert info.value.error_type == "unexpected_result_type"
    assert not info.value.transient
    assert info.value.collector == "load"


def test_machine_values_bad_query(prometheus):
    """A query that does not parse is the server's bad_data error."""
    with pytest.raises(PrometheusQueryError) as info:
        machines(prometheus, "sum(machine_load").collect_machine_metrics("app-a")
    assert (info.value.error_type, info.value.status_code) == ("bad_data", 400)


# --- wire details, with responses --------------------------------------------------

ADDRESS = "https://prom.example.test/prometheus/my-org"
URL = f"{ADDRESS}/api/v1/query"


def vector(*values: str, warnings: list[str] | None = None) -> dict[str, object]:
    """A Prometheus vector answer with one series per value."""
    body: dict[str, object] = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"n": str(i)}, "value": [1.5, v]}
                for i, v in enumerate(values)
            ],
        },
    }
    if warnings is not None:
        body["warnings"] = warnings
    return body


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("FlyV1 fm2_abc,fm2_def", "FlyV1 fm2_abc,fm2_def"),
        ("plain-token", "Bearer plain-token"),
        ("", None),
    ],
)
def test_authorization_header_forms(token, header):
    """A Fly token goes verbatim, any other as Bearer, none without a token."""
    with responses.RequestsMock() as mock:
        mock.post(URL, json=vector("1"))
        collector(ADDRESS, "up", token=token).collect_metric("a")
        sent = mock.calls[0].request.headers
    assert sent.get("Authorization") == header


def test_post_form_with_query_time_and_timeout():
    """The query goes as a form POST with the expanded query, time and timeouts."""
    with responses.RequestsMock() as mock:
        mock.post(URL, json=vector("5"))
        c = collector(
            ADDRESS + "/",
            'jobs{app="$APP_NAME"}',
            clock=lambda: 1718900000.123,
            headers={"X-Scope-OrgID": "tenant-1"},
        )
        assert c.collect_metric("my-app") == 5.0
        request = mock.calls[0].request
    assert request.url == URL
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["X-Scope-OrgID"] == "tenant-1"
    assert urllib.parse.parse_qs(request.body) == {
        "query": ['jobs{app="my-app"}'],
        "time": ["1718900000.123"],
    }
    assert request.req_kwargs["timeout"] == DEFAULT_PROMETHEUS_TIMEOUT


def test_query_variables_on_the_wire(monkeypatch):
    """Listed variables expand; unlisted ones, set or not, are sent as written."""
    monkeypatch.setenv("FAS_REDIS_URL", "redis://:hunter2-secret@db:6379")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:hunter2-secret@db/x")
    with responses.RequestsMock() as mock:
        mock.post(URL, json=vector("5"))
        c = collector(
            ADDRESS,
            'jobs{app="$APP_NAME", r="$REGION", a="$FAS_REDIS_URL",'
            ' b="${DATABASE_URL}", x="$1", d="$$"}',
            variables={"REGION": "iad"},
        )
        c.collect_metric("my-app")
        request = mock.calls[0].request
    sent = 'jobs{app="my-app", r="iad", a="$FAS_REDIS_URL", b="${DATABASE_URL}"'
    assert urllib.parse.parse_qs(request.body)["query"] == [sent + ', x="$1", d="$"}']


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("abc\ndef", "character 4 is a control character (U+000A)"),
        ("abc\x00", "character 4 is a control character (U+0000)"),
        ("t\u00f6ken\u20ac", "character 6 is not a Latin-1 character"),
    ],
)
def test_token_a_header_cannot_carry(token, problem):
    """A token no HTTP header can carry is refused at once, without its value."""
    with pytest.raises(fas.ConfigError) as info:
        collector(ADDRESS, "up", token=token)
    message = str(info.value)
    assert message.startswith(
        f"prometheus token cannot be sent in an HTTP header: {problem}"
    )
    assert token not in message
    assert info.value.field == "token"


@pytest.mark.parametrize("status", [405, 501])
def test_get_fallback(status):
    """On 405 or 501 the same query is sent again as a GET."""
    with responses.RequestsMock() as mock:
        mock.post(URL, status=status)
        mock.get(URL, json=vector("9"))
        token = "t0ken-value"  # noqa: S105 - a test value
        c = collector(ADDRESS, "up", token=token, clock=lambda: 12.0)
        assert c.collect_metric("a") == 9.0
        get = mock.calls[1].request
    assert get.method == "GET"
    assert get.headers["Authorization"] == "Bearer t0ken-value"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(get.url).query)
    assert query == {"query": ["up"], "time": ["12.000"]}
    assert get.req_kwargs["timeout"] == DEFAULT_PROMETHEUS_TIMEOUT


def test_server_warnings_are_logged(caplog):
    """The answer's warnings are logged with the app and the collector."""
    caplog.set_level(logging.INFO, logger="flyautoscaler.collectors")
    with responses.RequestsMock() as mock:
        mock.post(URL, json=vector("2", warnings=["partial response"]))
        assert collector(ADDRESS, "up").collect_metric("app-a") == 2.0
    [record] = [r for r in caplog.records if r.msg == "collector.prometheus.warnings"]
    assert record.levelno == logging.WARNING
    extra = vars(record)
    assert extra["warnings"] == ["partial response"]
    assert (extra["app"], extra["collector"]) == ("app-a", "queue_depth")


def test_error_status_on_a_2xx():
    """``status: error`` is an error even with HTTP 200, carrying errorType."""
    body = {"status": "error", "errorType": "execution", "error": "too many samples"}
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body)
        with pytest.raises(PrometheusQueryError, match="too many samples") as info:
            collector(ADDRESS, "up").collect_metric("a")
    assert (info.value.error_type, info.value.error) == (
        "execution",
        "too many samples",
    )
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    ("status", "error_type", "transient"),
    [(422, "execution", False), (503, "unavailable", True), (400, "bad_data", False)],
)
def test_api_error_bodies(status, error_type, transient):
    """API error bodies keep the server's errorType and error."""
    body = {"status": "error", "errorType": error_type, "error": "it failed"}
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body, status=status)
        with pytest.raises(PrometheusQueryError) as info:
            collector(ADDRESS, "up").collect_metric("a")
    assert info.value.error_type == error_type
    assert info.value.error == "it failed"
    assert info.value.status_code == status
    assert info.value.transient is transient


@pytest.mark.parametrize(
    ("status", "error_type", "transient"),
    [(502, "server_error", True), (401, "client_error", False)],
)
def test_non_json_http_errors(status, error_type, transient):
    """An HTTP error without a Prometheus body is typed from its status."""
    with responses.RequestsMock() as mock:
        mock.post(URL, body="<html>Bad Gateway</html>", status=status)
        with pytest.raises(PrometheusQueryError, match=f"HTTP {status}") as info:
            collector(ADDRESS, "up").collect_metric("a")
    assert (info.value.error_type, info.value.transient) == (error_type, transient)


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        json.dumps({"status": "success", "data": {"resultType": "vector"}}),
        json.dumps(vector("not-a-number")),
        json.dumps({"status": "success", "data": {"resultType": "scalar"}}),
    ],
)
def test_malformed_answers(body):
    """A 2xx body that is not a usable Prometheus answer is bad_response."""
    with responses.RequestsMock() as mock:
        mock.post(URL, body=body)
        with pytest.raises(PrometheusQueryError) as info:
            collector(ADDRESS, "up").collect_metric("a")
    assert info.value.error_type == "bad_response"


@pytest.mark.parametrize(
    ("make", "ask"),
    [
        (collector, lambda c: c.collect_metric("a")),
        (machines, lambda c: c.collect_machine_metrics("a")),
    ],
    ids=["one-value", "per-machine"],
)
def test_token_never_shown(caplog, make, ask):
    """The token stays out of errors, log records and the collector's repr."""
    caplog.set_level(logging.DEBUG)
    token = "s3cr3t-token-value"  # noqa: S105 - a test value
    body = {
        "status": "error",
        "errorType": "bad_data",
        "error": f"token {token} and header Bearer {token} rejected",
        "warnings": [f"seen {token}"],
    }
    c = make(ADDRESS, "up", token=token)
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body, status=400)
        with pytest.raises(PrometheusQueryError) as info:
            ask(c)
    shown = [str(info.value), repr(info.value), info.value.error, repr(c)]
    shown += [repr(r.__dict__) for r in caplog.records]
    assert not [text for text in shown if token in text]
    assert "[REDACTED]" in info.value.error


def test_credentials_in_the_address_are_not_shown():
    """A user:password in the address never reaches an error message."""
    c = collector("http://user:hunter22@127.0.0.1:1/prom", "up")
    with pytest.raises(PrometheusQueryError) as info:
        c.collect_metric("a")
    assert "hunter22" not in str(info.value)
    assert "hunter22" not in repr(c)
    assert "http://127.0.0.1:1/prom/api/v1/query" in str(info.value)


def test_given_session_is_used_and_left_open():
    """A session passed in sends the query and stays usable afterwards."""
    with requests.Session() as session, responses.RequestsMock() as mock:
        session.headers["X-From-Session"] = "yes"
        mock.post(URL, json=vector("4"))
        mock.post(URL, json=vector("6"))
        c = collector(ADDRESS, "up", session=session)
        assert c.collect_metric("a") == 4.0
        assert c.collect_metric("a") == 6.0
        assert mock.calls[0].request.headers["X-From-Session"] == "yes"


def test_redirects_are_followed():
    """A server that redirects the query is followed there, as requests does."""
    moved = "https://prom.example.test/elsewhere/api/v1/query"
    with responses.RequestsMock() as mock:
        mock.post(URL, status=307, headers={"Location": moved})
        mock.post(moved, json=vector("3"))
        assert collector(ADDRESS, "up").collect_metric("a") == 3.0
        assert mock.calls[1].request.url == moved


def test_transport_errors_are_not_chained():
    """A failed query's error carries no requests exception (nor its text)."""
    c = collector(f"http://127.0.0.1:{free_port()}", "up")
    with pytest.raises(PrometheusQueryError) as info:
        c.collect_metric("app-a")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("m", "prom.example:9090", "up"), "address"),
        (("m", "ftp://prom.example", "up"), "address"),
        (("m", ADDRESS, "  "), "query"),
        (("", ADDRESS, "up"), "name"),
    ],
)
def test_configuration_errors(args, field):
    """A bad address, query or name is refused when the collector is built."""
    with pytest.raises(fas.ConfigError) as info:
        PrometheusCollector(*args)
    assert info.value.field == field


def test_timeout_forms():
    """One number sets both timeouts; a non-positive one is refused."""
    assert PrometheusCollector("m", ADDRESS, "up", timeout=3).timeout == (3.0, 3.0)
    with pytest.raises(fas.ConfigError):
        PrometheusCollector("m", ADDRESS, "up", timeout=(1.0, 0.0))


def test_satisfies_the_protocol():
    """The collector is a MetricCollector, named by its first argument."""
    c: fas.MetricCollector = collector(ADDRESS, "up")
    assert c.name == "queue_depth"


# --- PrometheusMachineCollector, wire details with responses ------------------------


def by_instance(*samples: tuple[dict[str, str] | None, str]) -> dict[str, object]:
    """A vector answer with one series per (labels, value); None: no metric."""
    result = [
        {"value": [1.5, value]}
        if labels is None
        else {"metric": labels, "value": [1.5, value]}
        for labels, value in samples
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_machine_collector_sends_as_the_collector_does():
    """Same request: form POST, expanded query, time, token, timeout."""
    token = "FlyV1 fm2_machine"  # noqa: S105 - a test value
    with responses.RequestsMock() as mock:
        mock.post(URL, json=by_instance(({"instance": "m1"}, "3")))
        c = PrometheusMachineCollector(
            "load",
            ADDRESS,
            'sum by (instance) (load{app="$APP_NAME", r="$REGION"})',
            token,
            clock=lambda: 12.0,
            variables={"REGION": "iad"},
        )
        assert c.collect_machine_metrics("my-app") == {"m1": 3.0}
        request = mock.calls[0].request
    assert request.headers["Authorization"] == token
    assert urllib.parse.parse_qs(request.body) == {
        "query": ['sum by (instance) (load{app="my-app", r="iad"})'],
        "time": ["12.000"],
    }
    assert request.req_kwargs["timeout"] == DEFAULT_PROMETHEUS_TIMEOUT


@pytest.mark.parametrize(
    "values", [("5", "2"), ("2", "5"), ("5", "NaN"), ("NaN", "5"), ("-Inf", "5")]
)
def test_machine_duplicates_keep_the_highest_finite_value(values):
    """Whatever the order, a Machine in several series gets its highest value."""
    first, second = values
    body = by_instance(({"instance": "m1"}, first), ({"instance": "m1"}, second))
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body)
        assert machines(ADDRESS, "up").collect_machine_metrics("a") == {"m1": 5.0}


def test_machine_non_finite_values_and_unlabelled_samples_are_left_out():
    """NaN, +Inf and -Inf values, and samples without an instance, give no entry."""
    body = by_instance(
        ({"instance": "nan"}, "NaN"),
        ({"instance": "inf"}, "+Inf"),
        ({"instance": "-inf"}, "-Inf"),
        ({"instance": ""}, "1"),
        ({"job": "x"}, "1"),
        (None, "1"),
        ({"instance": "m2"}, "-0.5"),
        ({"instance": "m1"}, "1e3"),
    )
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body)
        values = machines(ADDRESS, "up").collect_machine_metrics("a")
    assert values == {"m2": -0.5, "m1": 1000.0}


@pytest.mark.parametrize(
    "sample",
    [
        {"metric": {"instance": "m1"}, "value": [1.5, "busy"]},
        {"metric": {"instance": "m1"}, "value": [1.5]},
        {"metric": {"instance": "m1"}},
        "m1",
    ],
)
def test_machine_malformed_samples(sample):
    """A labelled sample whose value is not a number is a bad_response."""
    body = {"status": "success", "data": {"resultType": "vector", "result": [sample]}}
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body)
        with pytest.raises(PrometheusQueryError, match="malformed sample") as info:
            machines(ADDRESS, "up").collect_machine_metrics("a")
    assert info.value.error_type == "bad_response"


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"status": "success", "data": {"resultType": "vector"}}, "bad_response"),
        ({"status": "success"}, "bad_response"),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}},
            "unexpected_result_type",
        ),
    ],
)
def test_machine_answers_that_are_not_a_vector(body, error_type):
    """No data, no list of samples, or a scalar: an error, never a guess."""
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body)
        with pytest.raises(PrometheusQueryError) as info:
            machines(ADDRESS, "up").collect_machine_metrics("a")
    assert info.value.error_type == error_type


@pytest.mark.parametrize(
    ("status", "body", "error_type", "transient"),
    [
        (
            503,
            {"status": "error", "errorType": "unavailable", "error": "x"},
            "unavailable",
            True,
        ),
        (
            422,
            {"status": "error", "errorType": "execution", "error": "x"},
            "execution",
            False,
        ),
        (502, "<html>Bad Gateway</html>", "server_error", True),
        (401, "unauthorized", "client_error", False),
    ],
)
def test_machine_error_answers(status, body, error_type, transient):
    """Error answers give the same PrometheusQueryError as the collector's."""
    with responses.RequestsMock() as mock:
        if isinstance(body, dict):
            mock.post(URL, json=body, status=status)
        else:
            mock.post(URL, body=body, status=status)
        with pytest.raises(PrometheusQueryError) as info:
            machines(ADDRESS, "up").collect_machine_metrics("a")
    assert (info.value.error_type, info.value.transient) == (error_type, transient)
    assert info.value.status_code == status
    assert info.value.collector == "load"
    assert isinstance(info.value, fas.MetricCollectionError)


def test_machine_unreachable_server():
    """A closed port is a transient connection error, not chained."""
    c = machines(f"http://127.0.0.1:{free_port()}", "up")
    with pytest.raises(PrometheusQueryError, match="cannot reach") as info:
        c.collect_machine_metrics("a")
    assert info.value.error_type == "connection"
    assert info.value.transient
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("m", "prom.example:9090", "up"), "address"),
        (("m", ADDRESS, " "), "query"),
        (("", ADDRESS, "up"), "name"),
        (("m", ADDRESS, "up", "a\nb"), "token"),
    ],
)
def test_machine_configuration_errors(args, field):
    """A bad address, query, name or token is refused when it is built."""
    with pytest.raises(fas.ConfigError) as info:
        PrometheusMachineCollector(*args)
    assert info.value.field == field


def test_machine_collector_satisfies_the_protocol():
    """It is a MachineMetricCollector, named by its first argument."""
    c: fas.MachineMetricCollector = machines(ADDRESS, "up")
    assert c.name == "load"
    assert "PrometheusMachineCollector(name='load'" in repr(c)


# --- range queries, on the wire -----------------------------------------------------

RANGE_URL = f"{ADDRESS}/api/v1/query_range"


def matrix(*series: list[list[object]]) -> dict[str, object]:
    """A Prometheus matrix answer with one series per list of points."""
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"app": f"app-{i}"}, "values": values}
                for i, values in enumerate(series)
            ],
        },
    }


def test_range_query_form_and_points():
    """A range query POSTs query, start, end and step; its one series' points return."""
    with responses.RequestsMock() as mock:
        mock.post(RANGE_URL, json=matrix([[1700000000, "1"], [1700000015.5, "2.5"]]))
        token = "plain-token"  # noqa: S105 - a test value
        c = collector(ADDRESS, 'jobs{app="$APP_NAME"}', token=token)
        points = c.query_range("my-app", 1700000000, 1700000030.25, 15.5, timeout=9)
        request = mock.calls[0].request
    assert points == [(1700000000.0, 1.0), (1700000015.5, 2.5)]
    assert urllib.parse.parse_qs(request.body) == {
        "query": ['jobs{app="my-app"}'],
        "start": ["1700000000.000"],
        "end": ["1700000030.250"],
        "step": ["15.500"],
    }
    assert request.headers["Authorization"] == "Bearer plain-token"
    assert request.req_kwargs["timeout"] == (9.0, 9.0)


def test_range_query_get_fallback_and_empty_result():
    """A 405 is asked again as a GET; a matrix without series has no points."""
    with responses.RequestsMock() as mock:
        mock.post(RANGE_URL, status=405)
        mock.get(RANGE_URL, json=matrix())
        assert collector(ADDRESS, "up").query_range("a", 0, 60, 15) == []
        assert mock.calls[1].request.url.startswith(RANGE_URL + "?query=up&start=0.000")


def test_range_query_several_series_is_an_error():
    """Several series are refused, naming them and how to aggregate."""
    points = [[1700000000, "1"]]
    with responses.RequestsMock() as mock:
        mock.post(RANGE_URL, json=matrix(points, points, points, points))
        with pytest.raises(PrometheusQueryError) as info:
            collector(ADDRESS, "jobs").query_range("a", 1700000000, 1700000060, 15)
    assert info.value.error_type == "multiple_series"
    assert not info.value.transient
    assert str(info.value) == (
        f"collect metric ('queue_depth'): prometheus query at {RANGE_URL}: the "
        "query returned 4 series "
        '({app="app-0"}, {app="app-1"}, {app="app-2"} and 1 more), want at most '
        "one: aggregate it, for example with sum(...) or max(...) (an instant "
        "query would take the first one and log collector.prometheus.multiple_series)"
    )


@pytest.mark.parametrize(
    "body",
    [
        vector("1"),
        {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}},
    ],
    ids=["vector", "scalar"],
)
def test_range_query_needs_a_matrix(body):
    """A result that is not a matrix is refused, and names the range endpoint."""
    with responses.RequestsMock() as mock:
        mock.post(RANGE_URL, json=body)
        with pytest.raises(PrometheusQueryError, match="want a matrix") as info:
            collector(ADDRESS, "up").query_range("a", 0, 60, 15)
    assert info.value.error_type == "unexpected_result_type"
    assert RANGE_URL in str(info.value)


@pytest.mark.parametrize(
    "values",
    [None, [[1, 2]], [["1", "2"]], [[1, "x"]], [[1, "2", 3]], ["1"]],
    ids=["no-values", "number-value", "text-time", "not-a-number", "triple", "flat"],
)
def test_range_query_malformed_points(values):
    """A series whose points are not [time, "value"] pairs is bad_response."""
    body = matrix([])
    body["data"]["result"][0]["values"] = values  # type: ignore[index]
    with responses.RequestsMock() as mock:
        mock.post(RANGE_URL, json=body)
        with pytest.raises(PrometheusQueryError, match="malformed sample") as info:
            collector(ADDRESS, "up").query_range("a", 0, 60, 15)
    assert info.value.error_type == "bad_response"


def test_range_query_api_error_names_the_endpoint():
    """Prometheus' own error reaches the message, with the range endpoint."""
    body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    with responses.RequestsMock() as mock:
        mock.post(RANGE_URL, json=body, status=400)
        with pytest.raises(PrometheusQueryError) as info:
            collector(ADDRESS, "up(").query_range("a", 0, 60, 15)
    assert str(info.value) == (
        f"collect metric ('queue_depth'): prometheus query at {RANGE_URL}: "
        "HTTP 400: bad_data: parse error"
    )
