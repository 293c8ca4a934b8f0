"""The flyautoscaler command, end to end: a subprocess per test, 127.0.0.1 only.

``eval`` and ``serve`` talk to a stub Prometheus started here (it records the
queries it receives) and ``serve`` to FakeMachinesServer, over real sockets.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

import flyautoscaler as fas
from factories import machine
from flyautoscaler.cli import JSONFormatter, main, parse_listen_address
from flyautoscaler.testing import FakeMachinesServer
from servers import ipv6_loopback
from serving import WAIT, Process, base_env, http_get, run_cli

TOKEN = "fo1_cli-e2e-secret-fly-token"  # noqa: S105 - a fake server's token
PROM_TOKEN = "prom-e2e-secret-bearer-token"  # noqa: S105 - the stub's token


# --- a stub Prometheus ----------------------------------------------------------


class StubPrometheus:
    """An HTTP server answering /api/v1/query with a one-sample vector."""

    def __init__(self, value: float = 25.0) -> None:
        self.value = value
        self.queries: list[str] = []
        self.authorizations: list[str] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                self.answer(form)

            def do_GET(self) -> None:
                self.answer(parse_qs(urlsplit(self.path).query))

            def answer(self, form: dict[str, list[str]]) -> None:
                with stub._lock:
                    stub.queries.append(form.get("query", [""])[0])
                    stub.authorizations.append(self.headers.get("Authorization", ""))
                    value = stub.value
                body = json.dumps(
                    {
                        "status": "success",
                        "data": {
                            "resultType": "vector",
                            "result": [
                                {"metric": {}, "value": [time.time(), str(value)]}
                            ],
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def received(self) -> list[str]:
        """The queries received so far."""
        with self._lock:
            return list(self.queries)

    def close(self) -> None:
        """Stop serving and join the thread."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def prom() -> Iterator[StubPrometheus]:
    """A running stub Prometheus whose query value is 25."""
    stub = StubPrometheus()
    yield stub
    stub.close()


# --- running the command --------------------------------------------------------


def eval_env(prom: StubPrometheus, **extra: str) -> dict[str, str]:
    """Environment for ``eval`` of 'my-app' over the stub (queue_depth)."""
    settings = {
        "FAS_APP_NAME": "my-app",
        "FAS_STARTED_MACHINE_COUNT": "ceil(queue_depth / 10)",
        "FAS_PROMETHEUS_ADDRESS": prom.url,
        "FAS_PROMETHEUS_METRIC_NAME": "queue_depth",
        "FAS_PROMETHEUS_QUERY": 'sum(queue_depth{app="$APP_NAME"})',
        "FAS_PROMETHEUS_TOKEN": PROM_TOKEN,
    }
    return base_env(**(settings | extra))


# --- help, version, usage -------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], ["serve"], ["eval"], ["version"], ["simulate"]]
)
def test_help(command):
    """--help of the program and of each command exits 0 with a usage text."""
    done = run_cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: flyautoscaler")


def test_version():
    """'version' prints the program and its version."""
    done = run_cli("version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"flyautoscaler {fas.__version__}"


@pytest.mark.parametrize("args", [["bogus"], [], ["eval", "extra"], ["serve", "-x"]])
def test_usage_errors_exit_2(args):
    """An unknown command or option, or none, is a usage error: exit 2."""
    done = run_cli(*args)
    assert done.returncode == 2
    assert "usage: flyautoscaler" in done.stderr


# --- eval -----------------------------------------------------------------------


def test_eval_with_environment(prom):
    """eval collects once and prints the Go original's JSON, null for unset."""
    done = run_cli("eval", env=eval_env(prom))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "created": {"min": None, "max": None},
        "started": {"min": 3, "max": 3},
    }
    assert done.stdout == (
        '{\n  "created": {\n    "min": null,\n    "max": null\n  },\n'
        '  "started": {\n    "min": 3,\n    "max": 3\n  }\n}\n'
    )
    assert prom.received() == ['sum(queue_depth{app="my-app"})']
    assert prom.authorizations == [f"Bearer {PROM_TOKEN}"]
    assert done.stderr == ""


def test_eval_with_yaml(prom, tmp_path):
    """eval reads --config; ${APP_NAME} survives the file into the query."""
    config = tmp_path / "fas.yml"
    config.write_text(
        "app-name: ${TARGET}\n"
        "min-created-machine-count: 2\n"
        "max-created-machine-count: queue_depth + 1\n"
        "min-started-machine-count: floor(queue_depth / 10)\n"
        "max-started-machine-count: ceil(queue_depth / 10)\n"
        "metric-collectors:\n"
        "  - type: prometheus\n"
        "    metric-name: queue_depth\n"
        "    address: ${PROM_ADDRESS}\n"
        '    query: sum(queue_depth{app="${APP_NAME}"})\n'
        "    token: ${PROM_TOKEN}\n",
        encoding="utf-8",
    )
    env = base_env(TARGET="tenant-1", PROM_ADDRESS=prom.url, PROM_TOKEN=PROM_TOKEN)
    done = run_cli("eval", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "created": {"min": 2, "max": 26},
        "started": {"min": 2, "max": 3},
    }
    assert prom.received() == ['sum(queue_depth{app="tenant-1"})']
    assert prom.authorizations == [f"Bearer {PROM_TOKEN}"]


def test_eval_app_option(prom):
    """eval --app picks the app of $APP_NAME (for a wildcard, say)."""
    env = eval_env(prom, FAS_APP_NAME="tenant-*", FAS_ORG="acme")
    done = run_cli("eval", "--app", "tenant-7", env=env)
    assert done.returncode == 0, done.stderr
    assert prom.received() == ['sum(queue_depth{app="tenant-7"})']


def test_eval_collection_failure(prom):
    """A collector that cannot reach its server: exit 1, one line, no token."""
    url = prom.url
    prom.close()
    prom.close = lambda: None  # type: ignore[method-assign]
    done = run_cli("eval", env=eval_env(prom, FAS_PROMETHEUS_ADDRESS=url))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: metrics collection failed: ")
    assert done.stderr.count("\n") == 1
    assert PROM_TOKEN not in done.stderr


GO_MESSAGES = [
    ({}, "app name required"),
    (
        {"FAS_APP_NAME": "a"},
        "must define either created machine count or started machine count",
    ),
    (
        {
            "FAS_APP_NAME": "a",
            "FAS_CREATED_MACHINE_COUNT": "1",
            "FAS_MIN_CREATED_MACHINE_COUNT": "1",
        },
        "cannot define created machine count and min/max created machine count",
    ),
    (
        {"FAS_APP_NAME": "a", "FAS_MIN_CREATED_MACHINE_COUNT": "1"},
        "max created machine count required if min created machine count is defined",
    ),
    (
        {"FAS_APP_NAME": "a", "FAS_MAX_CREATED_MACHINE_COUNT": "1"},
        "min created machine count required if max created machine count is defined",
    ),
    (
        {
            "FAS_APP_NAME": "a",
            "FAS_STARTED_MACHINE_COUNT": "1",
            "FAS_MAX_STARTED_MACHINE_COUNT": "1",
        },
        "cannot define started machine count and min/max started machine count",
    ),
    (
        {"FAS_APP_NAME": "a", "FAS_MIN_STARTED_MACHINE_COUNT": "1"},
        "max started machine count required if min started machine count is defined",
    ),
    (
        {"FAS_APP_NAME": "a", "FAS_MAX_STARTED_MACHINE_COUNT": "1"},
        "min started machine count required if max started machine count is defined",
    ),
    (
        {
            "FAS_APP_NAME": "a",
            "FAS_STARTED_MACHINE_COUNT": "1",
            "FAS_INITIAL_MACHINE_STATE": "suspended",
        },
        "initial machine state must be either 'started' or 'stopped'",
    ),
    (
        {
            "FAS_APP_NAME": "a",
            "FAS_STARTED_MACHINE_COUNT": "1",
            "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9",
        },
        "metric-collectors[0]: metric name required",
    ),
    (
        {
            "FAS_APP_NAME": "a",
            "FAS_STARTED_MACHINE_COUNT": "1",
            "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9",
            "FAS_PROMETHEUS_METRIC_NAME": "q",
        },
        "metric-collectors[0]: prometheus query required",
    ),
    ({"FAS_CONCURRENCY": "x"}, 'cannot parse FAS_CONCURRENCY as integer: "x"'),
    ({"FAS_INTERVAL": "15"}, 'cannot parse FAS_INTERVAL as duration: "15"'),
    ({"FAS_TIMEOUT": "x"}, 'cannot parse FAS_TIMEOUT as duration: "x"'),
    (
        {"FAS_APP_LIST_REFRESH_INTERVAL": "1d"},
        'cannot parse FAS_APP_LIST_REFRESH_INTERVAL as duration: "1d"',
    ),
]


@pytest.mark.parametrize(("env", "message"), GO_MESSAGES)
def test_eval_validation_messages(env, message):
    """Each validation message reaches stderr word for word, exit 1."""
    done = run_cli("eval", env=base_env(**env))
    assert done.returncode == 1
    assert done.stderr == f"error: {message}\n"
    assert done.stdout == ""


def test_eval_unknown_yaml_key(tmp_path):
    """An unknown key in the file: exit 1, naming the key."""
    config = tmp_path / "fas.yml"
    config.write_text("app-name: a\nstarted-machine-count: 1\nbogus: 1\n")
    done = run_cli("eval", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr == f'error: {config}: unknown key "bogus"\n'


def test_eval_unknown_collector_key(tmp_path):
    """An unknown key in a collector entry: exit 1, naming the entry and key."""
    config = tmp_path / "fas.yml"
    config.write_text(
        "app-name: a\nstarted-machine-count: 1\n"
        "metric-collectors:\n  - type: prometheus\n    metric-name: q\n    tokn: x\n"
    )
    done = run_cli("eval", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr == f'error: {config}: metric-collectors[0]: unknown key "tokn"\n'


def test_eval_unknown_metric(prom):
    """A misspelled metric fails before anything is collected, naming it."""
    env = eval_env(prom, FAS_STARTED_MACHINE_COUNT="ceil(queue_dpeth / 10)")
    done = run_cli("eval", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("error: invalid started machine count: ")
    assert "'queue_dpeth'" in done.stderr
    assert done.stderr.count("\n") == 1
    assert prom.received() == []


def test_eval_missing_config_file(tmp_path):
    """A config file that cannot be read: exit 1, one line, no traceback."""
    done = run_cli("eval", "--config", str(tmp_path / "nope.yml"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "nope.yml" in done.stderr
    assert "Traceback" not in done.stderr


# --- serve ----------------------------------------------------------------------


@pytest.fixture
def fly() -> Iterator[FakeMachinesServer]:
    """A fake Fly API with app 'my-app' of four stopped Machines."""
    with FakeMachinesServer(token=TOKEN) as server:
        server.add_app("my-app", machines=[machine(str(i)) for i in range(1, 5)])
        yield server


def serve_env(fly: FakeMachinesServer, prom: StubPrometheus, **extra: str):
    """Environment for ``serve`` of 'my-app' against the fakes."""
    settings = {
        "FAS_API_TOKEN": TOKEN,
        "FLY_FLAPS_BASE_URL": fly.url,
        "FLY_API_BASE_URL": fly.url,
        "FAS_METRICS_ADDRESS": "127.0.0.1:0",
        "FAS_INTERVAL": "100ms",
        "FAS_TIMEOUT": "10s",
        "FAS_VERBOSE": "true",
    }
    return eval_env(prom, **(settings | extra))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve(fly, prom, sig):
    """serve scales the fleet, answers /metrics and /healthz, stops on a signal."""
    process = Process(serve_env(fly, prom))
    try:
        process.wait_for(lambda: bool(process.events("serve.listening")))
        address = process.events("serve.listening")[0]["address"]
        assert isinstance(address, str)
        assert address.startswith("127.0.0.1:")
        base = f"http://{address}"

        def started() -> int:
            return sum(m.state == "started" for m in fly.machines("my-app"))

        process.wait_for(lambda: started() == 3)

        status, metrics = http_get(f"{base}/metrics")
        assert status == 200
        assert "fas_reconcile_count" in metrics
        assert 'fas_reconcile_count{status="start"}' in metrics
        status, body = http_get(f"{base}/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["state"] == "running"
        assert health["apps"]["my-app"]["metrics"] == {"queue_depth": 25.0}
        assert http_get(f"{base}/nope")[0] == 404

        stopping = time.monotonic()
        code = process.stop(sig)
        assert code == 0, "".join(process.lines)
        assert time.monotonic() - stopping < 20
    finally:
        process.kill()
    output = process.stdout + "".join(process.lines)
    assert TOKEN not in output
    assert PROM_TOKEN not in output
    entries = [json.loads(line) for line in process.lines]
    assert all({"time", "level", "event", "logger"} <= e.keys() for e in entries)
    assert process.events("serve.stopped")
    assert started() == 3


def test_serve_listens_on_ipv4_and_ipv6(fly, prom):
    """An empty metrics host (':PORT') answers on 127.0.0.1 and on ::1."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    process = Process(serve_env(fly, prom, FAS_METRICS_ADDRESS=":0"))
    try:
        process.wait_for(lambda: bool(process.events("serve.listening")))
        address = process.events("serve.listening")[0]["address"]
        assert isinstance(address, str)
        assert address.startswith("[::]:")
        port = address.rpartition(":")[2]
        for host in ("127.0.0.1", "[::1]"):
            status, body = http_get(f"http://{host}:{port}/healthz")
            assert status in {200, 503}
            assert json.loads(body)["state"] in {"new", "running"}
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.kill()
    assert not process.events("serve.ipv6_unavailable")


def test_serve_client_gone_is_no_traceback(fly, prom):
    """Clients resetting their connection mid-answer leave only JSON on stderr."""
    process = Process(serve_env(fly, prom))
    try:
        process.wait_for(lambda: bool(process.events("serve.listening")))
        address = process.events("serve.listening")[0]["address"]
        assert isinstance(address, str)
        host, _, port = address.rpartition(":")
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(16).startswith(b"HTTP/1.1 200")
                # Close with a reset, before reading the rest of the answer.
                linger = struct.pack("ii", 1, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        process.wait_for(lambda: len(process.events("serve.http_client_gone")) == 3)
        assert http_get(f"http://{address}/metrics")[0] == 200
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.kill()
    entries = [json.loads(line) for line in process.lines]  # no traceback lines
    assert all({"time", "level", "event", "logger"} <= e.keys() for e in entries)
    assert all(e["level"] == "DEBUG" for e in process.events("serve.http_client_gone"))
    assert not process.events("serve.http_error")


def test_serve_requires_a_token(prom):
    """serve without FAS_API_TOKEN: exit 1, 'api token required'."""
    done = run_cli("serve", env=eval_env(prom))
    assert done.returncode == 1
    assert done.stderr == "error: api token required\n"


def test_serve_bad_metrics_address(fly, prom):
    """An unusable metrics address: exit 1 with a one-line message."""
    done = run_cli("serve", env=serve_env(fly, prom, FAS_METRICS_ADDRESS="nowhere"))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("error: metrics address must be")


# --- input refused at start-up, in one line ------------------------------------------


def refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    """Assert exit 1 with exactly one line, `error: <message>...`, and no traceback."""
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {message}"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"FAS_INTERVAL": "99999999999h"},
            "FAS_INTERVAL must be at most 24h0m0s, got 99999999999h0m0s",
        ),
        ({"FAS_TIMEOUT": "48h"}, "FAS_TIMEOUT must be at most 24h0m0s, got 48h0m0s"),
        (
            {"FAS_CONCURRENCY": "2000"},
            "FAS_CONCURRENCY must be at most 256, got 2000",
        ),
    ],
)
def test_serve_refuses_out_of_bounds(fly, prom, setting, message):
    """serve exits 1 at once, naming the setting, instead of failing after start."""
    done = run_cli("serve", env=serve_env(fly, prom, **setting))
    refused(done, message)


def test_serve_refuses_an_app_name_fly_cannot_have(fly, prom):
    """serve refuses an app name Fly cannot have before calling any API."""
    done = run_cli("serve", env=serve_env(fly, prom, FAS_APP_NAME="My_App"))
    refused(done, "FAS_APP_NAME must be a Fly app name (lowercase letters, digits and")
    assert done.stderr.endswith(', got "My_App"\n')


def test_eval_refuses_a_bad_app_option(prom):
    """eval --app takes a Fly app name only."""
    done = run_cli("eval", "--app", "Tenant 7", env=eval_env(prom))
    refused(done, "--app must be a Fly app name (lowercase letters, digits and dashes")
    assert prom.received() == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"FAS_API_TOKEN": TOKEN[:6] + "\n" + TOKEN[6:]},
            (
                "FAS_API_TOKEN cannot be sent in an HTTP header: character 7 is a "
                "control character (U+000A)"
            ),
        ),
        (
            {"FAS_PROMETHEUS_TOKEN": PROM_TOKEN + "\u2028"},
            (
                "metric-collectors[0]: FAS_PROMETHEUS_TOKEN cannot be sent in an HTTP "
                f"header: character {len(PROM_TOKEN) + 1} is not a Latin-1 character"
            ),
        ),
    ],
)
def test_serve_refuses_tokens_a_header_cannot_carry(fly, prom, setting, message):
    """A token with a newline or beyond Latin-1: one line at start-up, no token."""
    done = run_cli("serve", env=serve_env(fly, prom, **setting))
    refused(done, message)
    assert TOKEN[6:] not in done.stderr
    assert PROM_TOKEN not in done.stderr


def test_serve_refuses_deeply_nested_yaml(fly, prom, tmp_path):
    """A YAML file nested 3,000 deep: one line, not a 3,000-line traceback."""
    config = tmp_path / "fas.yml"
    config.write_text("regions: " + "[" * 3000 + "]" * 3000 + "\n")
    done = run_cli("serve", "--config", str(config), env=serve_env(fly, prom))
    refused(done, f"{config}: YAML nested deeper than 50 levels at line 1")


EXPRESSION_ERRORS = [
    ("max()", "max() takes at least 1 argument, got 0 at column 1"),
    ("round(1,2,3)", "round() takes exactly 1 argument, got 3 at column 1"),
    ("ceil(true)", "ceil() argument 1 must be a number, got bool at column 6"),
]


@pytest.mark.parametrize(("source", "message"), EXPRESSION_ERRORS)
@pytest.mark.parametrize("command", ["eval", "serve"])
def test_wrong_function_arguments_refused(fly, prom, command, source, message):
    """eval and serve both refuse max(), round(1,2,3), ceil(true) before starting."""
    env = serve_env(fly, prom, FAS_STARTED_MACHINE_COUNT=source)
    done = run_cli(command, env=env)
    refused(
        done,
        f"invalid started machine count: {message} in expression {source!r}",
    )
    assert prom.received() == []
    assert fly.machines("my-app")[0].state == "stopped"


# --- metric query variables -----------------------------------------------------------


def test_eval_expands_only_listed_variables(prom, tmp_path):
    """$FAS_REDIS_URL and $DATABASE_URL stay as written; a listed $REGION expands."""
    config = tmp_path / "fas.yml"
    config.write_text(
        "app-name: my-app\n"
        "started-machine-count: queue_depth\n"
        "metric-query-variables: [REGION]\n"
        "metric-collectors:\n"
        "  - type: prometheus\n"
        "    metric-name: queue_depth\n"
        "    address: ${PROM_ADDRESS}\n"
        "    query: >-\n"
        '      q{app="$APP_NAME", r="$REGION", a="$FAS_REDIS_URL",\n'
        '      b="${DATABASE_URL}", x="$1"}\n',
        encoding="utf-8",
    )
    env = base_env(
        PROM_ADDRESS=prom.url,
        REGION="iad",
        FAS_REDIS_URL="redis://:redis-secret-password@db:6379",
        DATABASE_URL="postgres://u:db-secret-password@db/x",
    )
    done = run_cli("eval", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert prom.received() == [
        'q{app="my-app", r="iad", a="$FAS_REDIS_URL", b="${DATABASE_URL}", x="$1"}'
    ]


def test_eval_refuses_an_unset_listed_variable(prom):
    """A listed variable that is not set fails before anything is collected."""
    env = eval_env(prom, FAS_METRIC_QUERY_VARIABLES="REGION")
    done = run_cli("eval", env=env)
    refused(
        done,
        "FAS_METRIC_QUERY_VARIABLES lists REGION, which is not set in the environment",
    )
    assert prom.received() == []


def test_serve_refuses_a_listed_secret(fly, prom):
    """Listing the autoscaler's own credential is refused at start-up."""
    env = serve_env(fly, prom, FAS_METRIC_QUERY_VARIABLES="FAS_API_TOKEN")
    done = run_cli("serve", env=env)
    refused(
        done,
        "FAS_METRIC_QUERY_VARIABLES: FAS_API_TOKEN holds a credential and cannot "
        "be used in a query",
    )
    assert TOKEN not in done.stderr


# --- in-process pieces ----------------------------------------------------------


def test_main_returns_exit_codes(capsys):
    """main() returns the status instead of exiting."""
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("flyautoscaler ")
    assert main(["nope"]) == 2
    assert main(["--help"]) == 0


def test_json_formatter_redacts():
    """Log lines carry the extras and never a configured secret or Fly token."""
    formatter = JSONFormatter([PROM_TOKEN])
    record = logging.LogRecord(
        "flyautoscaler.x", logging.INFO, __file__, 1, "some.event", None, None
    )
    record.app = "my-app"
    record.error = f"401 for Bearer {PROM_TOKEN} and FlyV1 fm2_abc"
    record.values = {"k": [PROM_TOKEN, 1.5]}
    entry = json.loads(formatter.format(record))
    assert entry["event"] == "some.event"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "flyautoscaler.x"
    assert entry["app"] == "my-app"
    assert entry["time"].endswith("Z")
    text = json.dumps(entry)
    assert PROM_TOKEN not in text
    assert "fm2_abc" not in text
    assert entry["values"] == {"k": ["[REDACTED]", 1.5]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9090", ("", 9090)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9090", ("::1", 9090)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),  # noqa: S104 - parsing only
    ],
)
def test_parse_listen_address(text, expected):
    """host:port splits; an empty host is every interface."""
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9090", "host:", "host:http", ":70000"])
def test_parse_listen_address_rejects(text):
    """An address without a valid port is a ConfigError."""
    with pytest.raises(fas.ConfigError, match="metrics address must be host:port"):
        parse_listen_address(text)


# --- serve: health, shutdown ------------------------------------------------------


def test_serve_healthz_is_503_while_passes_fail(fly, prom):
    """/healthz answers 503 naming the app once its passes fail, 200 when they work."""
    fly.fail_next(100_000, 500, method="GET", path="/machines")
    process = Process(serve_env(fly, prom, FAS_UNHEALTHY_AFTER="2"))
    try:
        process.wait_for(lambda: bool(process.events("serve.listening")))
        base = f"http://{process.events('serve.listening')[0]['address']}"

        def health() -> tuple[int, dict[str, object]]:
            status, body = http_get(f"{base}/healthz")
            return status, json.loads(body)

        # 503 comes first while the pool opens ("unavailable"): wait for the
        # passes' verdict.
        process.wait_for(lambda: health()[1]["status"] == "unhealthy")
        status, body = health()
        assert status == 503
        reasons = body["unhealthy_apps"]
        assert isinstance(reasons, dict)
        assert "passes failed" in reasons["my-app"]
        assert "500" in reasons["my-app"]
        fly.clear_faults()
        process.wait_for(lambda: health()[0] == 200)
        _, body = health()
        apps = body["apps"]
        assert isinstance(apps, dict)
        assert apps["my-app"]["ok"] is True
        assert apps["my-app"]["consecutive_failures"] == 0
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.kill()


def test_serve_exits_within_flys_kill_timeout_with_a_request_in_flight(fly, prom):
    """SIGTERM while a Machines API call hangs: serve still exits within 5 s."""
    fly.delay_next(1, 120.0, method="POST", path="/start")
    process = Process(serve_env(fly, prom))
    try:
        process.wait_for(lambda: fly.in_flight >= 1)
        signalled = time.monotonic()
        code = process.stop(signal.SIGTERM)
        took = time.monotonic() - signalled
    finally:
        process.kill()
    assert code == 0, "".join(process.lines)
    assert took < 5.0, f"serve took {took:.1f} s to exit"
    assert process.events("serve.stopped")


def test_serve_sends_no_action_after_sigterm(fly, prom):
    """Creates queued in the rate limiter when SIGTERM comes are never sent."""
    fly.add_app("grow-app", machines=[machine("1", "started")])
    env = serve_env(
        fly,
        prom,
        FAS_APP_NAME="grow-app",
        FAS_STARTED_MACHINE_COUNT="",
        FAS_CREATED_MACHINE_COUNT="20",
    )
    process = Process(env)
    try:
        process.wait_for(lambda: fly.count("launch") >= 4)
        at_signal = fly.count("launch")
        code = process.stop(signal.SIGTERM)
    finally:
        process.kill()
    assert code == 0, "".join(process.lines)
    # A launch already on the wire when the signal came may still land.
    assert fly.count("launch") <= at_signal + 1
    assert len(fly.machines("grow-app")) <= 1 + at_signal + 1


def test_signal_wait_survives_a_storm_of_signals():
    """Waiting for SIGTERM never deadlocks, however the signals fall (they once did)."""
    script = (
        "import signal\n"
        "from flyautoscaler.cli._serve import _signals_set\n"
        "with _signals_set() as signals:\n"
        "    print('ready', flush=True)\n"
        "    for _ in range(500):\n"
        "        signals.received.clear()\n"
        "        signals.wait()\n"
        "    # The storm goes on until this process ends: keep it out from here.\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
        "print('done', flush=True)\n"
    )
    child = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", script],
        env=base_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        deadline = time.monotonic() + WAIT
        while child.poll() is None and time.monotonic() < deadline:
            child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=WAIT) == 0
        assert child.stdout.read() == "done\n"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=WAIT)
        if child.stdout is not None:
            child.stdout.close()


# --- eval --explain ---------------------------------------------------------------


def test_eval_explain_lists_the_machines_and_says_the_steps(fly, prom):
    """With a token: the counts, the targets, and the steps, in words; nothing acts."""
    env = serve_env(fly, prom, FAS_CREATED_MACHINE_COUNT="queue_depth / 5")
    done = run_cli("eval", "--explain", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "my-app: 4 created, 0 started when listed",
        "targets: created 5, started 3",
        "would: create 1 (cloning 1); start 2 (1, 2)",
    ]
    assert [r.action for r in fly.requests] == ["list"]
    assert TOKEN not in done.stdout + done.stderr


def test_eval_explain_without_a_token_explains_the_targets(prom):
    """Without a token no Machine is listed; the targets are still explained."""
    env = eval_env(prom, FAS_MAX_STARTED_MACHINE_COUNT="1")
    env.pop("FAS_STARTED_MACHINE_COUNT")
    env["FAS_MIN_STARTED_MACHINE_COUNT"] = "ceil(queue_depth / 10)"
    done = run_cli("eval", "--explain", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        (
            "my-app: Machines not listed (no API token): set FAS_API_TOKEN to "
            "see the steps a pass would take"
        ),
        "targets: created any, started 3",
        "from the expressions: created any, started 3..1",
        (
            "- min started count 3 is above max started count 1: max started "
            "raised to 3 (min wins)"
        ),
    ]


# --- scaling behaviour ----------------------------------------------------------------

BEHAVIOUR = {
    "FAS_SCALE_DOWN_STABILIZATION": "5m",
    "FAS_SCALE_UP_STABILIZATION": "0",
    "FAS_MAX_SCALE_UP_STEP": "50%",
    "FAS_MAX_SCALE_DOWN_STEP": "2",
    "FAS_FALLBACK_AFTER": "3",
    "FAS_FALLBACK_STARTED_MACHINE_COUNT": "1",
    "FAS_STOP_MODE": "suspend",
    "FAS_MACHINE_LEASES": "scale-down",
    "FAS_RELEASE_TIMEOUT": "90",
    "FAS_STOP_METRIC_PROMETHEUS_QUERY": 'sum by (instance) (c{app="$APP_NAME"})',
}


def started_line(env: dict[str, str]) -> tuple[dict[str, object], str]:
    """Run serve until it has started; return its serve.started line and stderr."""
    process = Process(env)
    try:
        process.wait_for(lambda: bool(process.events("serve.started")))
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.kill()
    [started] = process.events("serve.started")
    return started, "".join(process.lines)


def test_serve_runs_with_the_scaling_behaviour(fly, prom):
    """serve gives every setting to the reconcilers and the pool, and says so."""
    started, output = started_line(serve_env(fly, prom, **BEHAVIOUR))
    assert started["behaviour"] == {
        "scale_down_stabilization": 300.0,
        "scale_up_stabilization": 0.0,
        "max_scale_up_step": "50%",
        "max_scale_down_step": 2,
        "fallback_after": 3,
        "fallback_started_machine_n": 1,
        "stop_mode": "suspend",
        "machine_leases": "scale-down",
        "stop_metric": "stop_metric",
        "release_timeout": 90.0,
    }
    # The stop metric reuses FAS_PROMETHEUS_TOKEN: a secret in the logs too.
    assert PROM_TOKEN not in output


def test_serve_default_behaviour_is_the_go_originals(fly, prom):
    """Without the new settings, serve runs as the Go original does.

    But for one choice: scale-downs are taken under a Fly lease (a deploy's
    Machines are left alone), which costs a scale-down a round trip a Machine.
    """
    started, _ = started_line(serve_env(fly, prom))
    assert started["behaviour"] == {
        "scale_down_stabilization": 0.0,
        "scale_up_stabilization": 0.0,
        "max_scale_up_step": None,
        "max_scale_down_step": None,
        "fallback_after": 0,
        "fallback_started_machine_n": None,
        "stop_mode": "stop",
        "machine_leases": "scale-down",
        "stop_metric": None,
        "release_timeout": 0.0,
    }


def test_eval_reads_the_scaling_behaviour(prom, tmp_path):
    """eval accepts every new key of the file and prints the same counts."""
    config = tmp_path / "fas.yml"
    config.write_text(
        "app-name: my-app\n"
        "started-machine-count: ceil(queue_depth / 10)\n"
        "scale-down-stabilization: 5m\n"
        "scale-up-stabilization: 30\n"
        "max-scale-up-step: 4\n"
        'max-scale-down-step: "50%"\n'
        "fallback-after: 2\n"
        "fallback-started-machine-count: 1\n"
        "stop-mode: suspend\n"
        "release-timeout: 10m\n"
        "stop-metric-collector:\n"
        "  type: prometheus\n"
        "  address: ${PROM_ADDRESS}\n"
        '  query: sum by (instance) (c{app="$APP_NAME"})\n'
        "  token: ${PROM_TOKEN}\n"
        "metric-collectors:\n"
        "  - type: prometheus\n"
        "    metric-name: queue_depth\n"
        "    address: ${PROM_ADDRESS}\n"
        '    query: sum(queue_depth{app="$APP_NAME"})\n',
        encoding="utf-8",
    )
    env = base_env(PROM_ADDRESS=prom.url, PROM_TOKEN=PROM_TOKEN)
    done = run_cli("eval", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "created": {"min": None, "max": None},
        "started": {"min": 3, "max": 3},
    }
    assert prom.received() == ['sum(queue_depth{app="my-app"})']


BEHAVIOUR_REFUSED = [
    (
        {"FAS_SCALE_DOWN_STABILIZATION": "25h"},
        (
            "FAS_SCALE_DOWN_STABILIZATION must be a duration from 0s to 24h0m0s, got "
            "25h0m0s"
        ),
    ),
    (
        {"FAS_RELEASE_TIMEOUT": "-1s"},
        (
            'cannot parse FAS_RELEASE_TIMEOUT as duration: "-1s" (a Go duration such '
            'as "5m" or "90s", or a number of seconds such as "300"; not negative)'
        ),
    ),
    (
        {"FAS_MAX_SCALE_UP_STEP": "0"},
        (
            "FAS_MAX_SCALE_UP_STEP must be a count of at least 1 (4) or a percent of "
            "the current count (50%), got '0'"
        ),
    ),
    (
        {"FAS_FALLBACK_AFTER": "3"},
        (
            "FAS_FALLBACK_AFTER is 3 but fallback-started-machine-count is not set: "
            "set the started count to fall back to, or FAS_FALLBACK_AFTER to 0 to hold "
            "the fleet"
        ),
    ),
    (
        {"FAS_STOP_MODE": "pause"},
        "FAS_STOP_MODE must be 'stop' or 'suspend', got 'pause'",
    ),
    (
        {
            "FAS_PROMETHEUS_ADDRESS": "",
            "FAS_STOP_METRIC_PROMETHEUS_QUERY": "sum by (instance) (c)",
        },
        (
            "FAS_STOP_METRIC_PROMETHEUS_QUERY is set but FAS_PROMETHEUS_ADDRESS is "
            "not: the stop metric is queried on the metric collector's Prometheus "
            "server (FAS_PROMETHEUS_ADDRESS and FAS_PROMETHEUS_TOKEN)"
        ),
    ),
    (
        {"FAS_PROMETHEUS_METRIC_NAME": "started_machine_count"},
        (
            'metric-collectors[0]: metric name "started_machine_count" is reserved: '
            "expressions use created_machine_count and started_machine_count for the "
            "current Machine counts; choose another metric-name"
        ),
    ),
]


@pytest.mark.parametrize(("setting", "message"), BEHAVIOUR_REFUSED)
@pytest.mark.parametrize("command", ["eval", "serve"])
def test_bad_behaviour_refused_at_start(fly, prom, command, setting, message):
    """eval and serve refuse each bad value in one line, before any query or action."""
    done = run_cli(command, env=serve_env(fly, prom, **setting))
    refused(done, message)
    assert done.stderr == f"error: {message}\n"
    assert prom.received() == []
    assert fly.machines("my-app")[0].state == "stopped"


def test_eval_with_machine_counts_lists_the_machines(fly, prom):
    """An expression of the current counts: eval lists the Machines (read only)."""
    env = serve_env(
        fly, prom, FAS_STARTED_MACHINE_COUNT="created_machine_count + queue_depth / 25"
    )
    done = run_cli("eval", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["started"] == {"min": 5, "max": 5}
    assert [r.action for r in fly.requests] == ["list"]


def test_eval_with_machine_counts_needs_a_token(prom):
    """Without a token eval cannot count the Machines, and says so."""
    env = eval_env(prom, FAS_STARTED_MACHINE_COUNT="started_machine_count + 1")
    done = run_cli("eval", env=env)
    assert done.returncode == 1
    assert "set FAS_API_TOKEN so eval can list" in done.stderr


# --- command-line conventions -----------------------------------------------------


def test_version_option():
    """--version prints the program and its version, as 'version' does."""
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"flyautoscaler {fas.__version__}"


@pytest.mark.parametrize(
    ("args", "verbose", "debug_logged", "info_logged"),
    [
        (("--log-level", "debug"), "false", True, True),
        (("--log-level", "ERROR"), "true", False, False),
        ((), "true", True, True),
        ((), "false", False, True),
    ],
)
def test_log_level_overrides_fas_verbose(
    fly, prom, args, verbose, debug_logged, info_logged
):
    """serve --log-level sets flyautoscaler's level, whatever FAS_VERBOSE says."""
    process = Process(serve_env(fly, prom, FAS_VERBOSE=verbose), *args)
    try:
        fly_started = lambda: sum(  # noqa: E731 - a one-line predicate
            m.state == "started" for m in fly.machines("my-app")
        )
        process.wait_for(lambda: fly_started() == 3)
        process.wait_for(
            lambda: bool(process.events("reconcile.pass")) or not info_logged
        )
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.kill()
    levels = {json.loads(line)["level"] for line in process.lines}
    assert ("DEBUG" in levels) is debug_logged
    assert ("INFO" in levels) is info_logged


def test_log_level_refuses_an_unknown_level():
    """A level that is not one of the four is a usage error naming them."""
    done = run_cli("serve", "--log-level", "loud")
    assert done.returncode == 2
    assert "must be one of debug, info, warning, error, got 'loud'" in done.stderr
