"""``simulate --from-prometheus``: the configured queries replayed from Prometheus.

A module fixture writes a known history (OpenMetrics text), backfills it with
``promtool tsdb create-blocks-from openmetrics`` and starts the ``prometheus``
binary on it, on 127.0.0.1. The runs replay it through the command (in-process,
and once as a subprocess) and the replayed values are checked against the
history point by point. The pure parts (times, the span, the gaps) are tested
without a server.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from flyautoscaler.cli.simulate import add_arguments, run
from flyautoscaler.cli.simulate._backtest import (
    MAX_POINTS,
    Gap,
    History,
    Span,
    fetch_history,
    format_instant,
    parse_time,
)
from flyautoscaler.cli.simulate._run import NoValue
from flyautoscaler.collectors import PrometheusCollector, PrometheusQueryError
from servers import free_port, require_binary, run_prometheus

WAIT = 120.0  # generous: a loaded 2-core machine starts Python slowly
T0 = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp())
HOURS = 6
LOOKBACK = 300  # Prometheus' default lookback: a point is at most 5 minutes old
QUEUE_GAP = range(700, 780)  # queue_depth samples left out: 20 minutes


def queue_value(j: int) -> float:
    """queue_depth's sample j: exact in binary and in 10 significant digits."""
    return (j * 7) % 113 + (j % 4) * 0.25


# Each series: its samples' times (Unix seconds) and values. queue_depth every
# 15 s, 5.5 s after each tick, with a gap; jobs_running every 30 s; a second
# app's queue_depth, so that a query without the app label has two series. At
# half a second past a whole second, no sample is ever exactly the lookback
# before a tick, where Prometheus versions differ.
QUEUE = {
    T0 + 15 * j + 5.5: queue_value(j)
    for j in range(-4, HOURS * 240)
    if j not in QUEUE_GAP
}
JOBS = {T0 + 30 * j + 5.5: float(j % 9) for j in range(-2, HOURS * 120)}
OTHER = {T0 + 15 * j + 5.5: 1.0 for j in range(HOURS * 240)}


def expected(samples: Mapping[float, float], t: float) -> float | None:
    """What a query evaluated at *t* gives: the last sample within the lookback."""
    times = sorted(samples)
    i = bisect.bisect_right(times, t) - 1
    if i < 0 or t - times[i] >= LOOKBACK:
        return None
    return samples[times[i]]


def openmetrics() -> str:
    """The history as OpenMetrics text, as promtool reads it."""
    lines = ["# HELP queue_depth Jobs waiting.", "# TYPE queue_depth gauge"]
    for app, samples in (("my-app", QUEUE), ("other-app", OTHER)):
        lines += [f'queue_depth{{app="{app}"}} {v} {t}' for t, v in samples.items()]
    lines += ["# HELP jobs_running Jobs running.", "# TYPE jobs_running gauge"]
    lines += [f'jobs_running{{app="my-app"}} {v} {t}' for t, v in JOBS.items()]
    return "\n".join([*lines, "# EOF", ""])


def _backfill(data: Path) -> None:
    """Write the history into *data* as TSDB blocks."""
    promtool = require_binary("promtool", "prometheus")
    source = data.parent / "history.om"
    source.write_text(openmetrics(), encoding="utf-8")
    subprocess.run(  # noqa: S603 - fixed arguments
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", source, data],
        check=True,
        capture_output=True,
        timeout=WAIT,
    )


def _loaded(address: str) -> bool:
    """Return True once Prometheus answers with the backfilled series."""
    try:
        response = requests.get(
            f"{address}/api/v1/query",
            params={"query": "count(queue_depth)", "time": str(T0 + 3600)},
            timeout=(2, 5),
        )
        with response:
            [sample] = response.json()["data"]["result"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return False
    return bool(sample["value"][1] == "2")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 holding the history (backfilled blocks)."""
    yield from run_prometheus(
        tmp_path_factory,
        config="global:\n  scrape_interval: 1m\n",
        ready=_loaded,
        prepare=_backfill,
        # The history is older than the default 15 days' retention would keep
        # once this test is a few weeks old.
        args=["--storage.tsdb.retention.time=100y"],
    )


def at(hour: int, minute: int = 0) -> str:
    """The history's day at *hour*:*minute*, in RFC 3339."""
    return format_instant((T0 + hour * 3600 + minute * 60) * 1000)


def config_file(
    tmp_path: Path, address: str, *collectors: tuple[str, str], extra: str = ""
) -> str:
    """Write a policy on queue_depth with (metric, query) Prometheus collectors."""
    entries = "".join(
        f"  - type: prometheus\n    metric-name: {name}\n"
        f"    address: {address}\n    query: '{query}'\n"
        for name, query in collectors
    )
    path = tmp_path / "policy.yml"
    path.write_text(
        "app-name: my-app\n"
        'min-started-machine-count: "ceil(queue_depth / 10)"\n'
        'max-started-machine-count: "ceil(queue_depth / 8)"\n'
        f"{extra}metric-collectors:\n{entries}",
        encoding="utf-8",
    )
    return str(path)


QUEUE_QUERY = ("queue_depth", 'queue_depth{app="$APP_NAME"}')
JOBS_QUERY = ("jobs_running", 'max(jobs_running{app="${APP_NAME}"})')


def simulate(
    *argv: str, now: float | None = None, environ: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run simulate in-process, relative times from *now*; return (code, out, err)."""
    parser = argparse.ArgumentParser(prog="flyautoscaler simulate")
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.now = now
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(args, environ=environ or {}, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def replay(
    tmp_path: Path,
    *argv: str,
    now: float | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[str, Path, list[dict[str, str]]]:
    """Replay with *argv*, check it succeeded; return stdout, the folder, the rows."""
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "out"
    code, stdout, stderr = simulate(
        "--from-prometheus", *argv, "--out", str(out), "--quiet",
        now=now, environ=environ,
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    return stdout, out, read_rows(out / "timeseries.csv")


def read_rows(path: Path) -> list[dict[str, str]]:
    """Return the CSV's rows."""
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def check_values(
    rows: list[dict[str, str]], first: int, samples: Mapping[float, float], name: str
) -> int:
    """Check each row's *name* against the history exactly; return the gaps."""
    gaps = 0
    for k, row in enumerate(rows):
        t = first + 15 * k
        assert float(row["time"]) == 15.0 * k
        want = expected(samples, t)
        if want is None:
            gaps += 1
            assert row[name] == "", f"{name} at {t} was invented: {row[name]}"
        else:
            assert float(row[name]) == want, f"{name} at {t}"
    return gaps


# --- replays through the command -------------------------------------------------


def test_replay_matches_the_history_point_by_point(
    prometheus: str, tmp_path: Path
) -> None:
    """Each metric's column holds the history's value at each tick, exactly."""
    config = config_file(tmp_path, prometheus, QUEUE_QUERY, JOBS_QUERY)
    stdout, out, rows = replay(
        tmp_path, "--config", config, "--start", at(2, 50), "--end", at(3, 30)
    )
    assert len(rows) == 160  # 40 minutes of 15 s ticks, the end excluded
    first = T0 + 2 * 3600 + 50 * 60
    assert check_values(rows, first, JOBS, "jobs_running") == 0
    assert check_values(rows, first, QUEUE, "queue_depth") == 61
    header = stdout.split("\n\n")[0]
    assert (
        f"  metrics: queue_depth, jobs_running; replayed from Prometheus at "
        f"{prometheus} for app my-app\n"
        "    span: 2026-11-23T02:50:00Z to 2026-11-23T03:29:45Z, a point every 15s "
        "(160 per metric); time 0:00:00 is 2026-11-23T02:50:00Z\n"
        "    fetched in 2 range queries ("
    ) in header
    assert '    query queue_depth: queue_depth{app="my-app"}\n' in header
    assert '    query jobs_running: max(jobs_running{app="my-app"})\n' in header
    assert (
        "    gaps: 61 of 160 ticks have no data in 1 span (queue_depth from "
        "2026-11-23T03:00:00Z to 2026-11-23T03:15:00Z (61 ticks)): their passes "
        "fail for lack of the metric, as in a metrics outage\n"
    ) in header
    assert "  time: 40m simulated, a pass every 15s (160 ticks)" in header
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert header.split("\n", 1)[1] in summary  # the header, gaps included


def test_gap_ticks_fail_their_pass_and_hold_the_fleet(
    prometheus: str, tmp_path: Path
) -> None:
    """A tick without data fails its pass (no value invented): the fleet holds."""
    config = config_file(tmp_path, prometheus, QUEUE_QUERY)
    _, out, rows = replay(
        tmp_path, "--config", config, "--start", at(2, 55), "--end", at(3, 20)
    )
    gap = [r for r in rows if r["queue_depth"] == ""]
    assert len(gap) == 61
    before = rows[rows.index(gap[0]) - 1]
    for k, row in enumerate(gap):
        when = format_instant((T0 + 3 * 3600 + 15 * k) * 1000)
        assert row["errors"] == "1"
        assert row["min_started"] == row["max_started"] == ""
        assert f"collect metric ('queue_depth'): no data at {when}" in row["notes"]
        assert (row["started"], row["machines"]) == (before["started"], "10")
    summary = (out / "summary.json").read_text(encoding="utf-8")
    assert '"failed_passes": 61' in summary


def test_gap_falls_back_like_a_metrics_outage(prometheus: str, tmp_path: Path) -> None:
    """With fallback-after, the passes of a gap fall back as in an outage."""
    config = config_file(
        tmp_path,
        prometheus,
        QUEUE_QUERY,
        extra="fallback-after: 2\nfallback-started-machine-count: 6\n",
    )
    _, _, rows = replay(
        tmp_path, "--config", config, "--start", at(2, 55), "--end", at(3, 20)
    )
    gap = [r for r in rows if r["queue_depth"] == ""]
    assert len(gap) == 61
    assert all(r["errors"] == "1" for r in gap)
    assert gap[0]["min_started"] == ""  # the first failed pass holds the fleet
    assert {r["min_started"] for r in gap[3:]} == {"6"}  # then the fallback count
    assert {r["started"] for r in gap[4:]} == {"6"}
    after = rows[rows.index(gap[-1]) + 1]
    assert after["queue_depth"] != ""
    assert after["errors"] == "0"


def test_relative_times_count_from_now(prometheus: str, tmp_path: Path) -> None:
    """-3h10m and -2h30m from 06:00 replay 02:50 to 03:30, as the RFC 3339 times do."""
    config = config_file(tmp_path, prometheus, QUEUE_QUERY)
    runs = []
    for start, end in ((at(2, 50), at(3, 30)), ("-3h10m", "-2h30m")):
        stdout, _, rows = replay(
            tmp_path, "--config", config, "--start", start, "--end", end,
            now=T0 + 6 * 3600,
        )  # fmt: skip
        assert "span: 2026-11-23T02:50:00Z to 2026-11-23T03:29:45Z" in stdout
        runs.append([r["queue_depth"] for r in rows])
    assert runs[0] == runs[1]


def test_end_defaults_to_now_and_step_to_the_interval(
    prometheus: str, tmp_path: Path
) -> None:
    """Without --end the replay ends now; without --step it steps by the interval."""
    config = config_file(tmp_path, prometheus, QUEUE_QUERY, extra="interval: 1m\n")
    stdout, _, rows = replay(
        tmp_path, "--config", config, "--start", "-1h", now=T0 + 2 * 3600 + 30
    )
    assert (
        "span: 2026-11-23T01:01:00Z to 2026-11-23T02:00:00Z, a point every 1m "
        "(60 per metric)"
    ) in stdout
    first = T0 + 3600 + 60
    for k, row in enumerate(rows):
        assert float(row["queue_depth"]) == expected(QUEUE, first + 60 * k)


def test_the_command_as_a_subprocess(prometheus: str, tmp_path: Path) -> None:
    """python -m flyautoscaler simulate --from-prometheus replays the history."""
    config = config_file(tmp_path, prometheus, QUEUE_QUERY)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAS_")}
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable, "-m", "flyautoscaler", "simulate", "--config", config,
            "--from-prometheus", "--start", at(4), "--end", at(4, 30),
            "--step", "30s", "--out", str(out), "--quiet",
        ],
        capture_output=True, text=True, timeout=WAIT, env=env, check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "fetched in 1 range query" in done.stdout
    assert "gaps: none, every tick has a value of every metric" in done.stdout
    rows = read_rows(out / "timeseries.csv")
    assert len(rows) == 60
    for k, row in enumerate(rows):
        assert float(row["time"]) == 30.0 * k
        assert float(row["queue_depth"]) == expected(QUEUE, T0 + 4 * 3600 + 30 * k)


# --- chunks -----------------------------------------------------------------------


class _Recorder(requests.Session):
    """A session that remembers the form of each request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []

    def send(
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        """Remember the request's form, then send it."""
        body = request.body if isinstance(request.body, str) else ""
        self.forms.append(dict(urllib.parse.parse_qsl(body)))
        return super().send(request, **kwargs)


@pytest.mark.parametrize("max_points", [MAX_POINTS, 4_000])
def test_long_spans_come_in_chunks_with_the_same_values(
    prometheus: str, max_points: int
) -> None:
    """21,600 points at 1 s come in chunks that join without a gap or an overlap."""
    span = Span.between(T0, T0 + HOURS * 3600, 1.0)
    assert span.count == 21_600
    with _Recorder() as session:
        collector = PrometheusCollector(
            "queue_depth", prometheus, 'queue_depth{app="$APP_NAME"}', session=session
        )
        history = fetch_history([collector], "my-app", span, max_points=max_points)
    chunks = -(-span.count // max_points)
    assert history.requests == len(session.forms) == chunks
    starts = [float(f["start"]) for f in session.forms]
    ends = [float(f["end"]) for f in session.forms]
    assert starts[0] == T0
    assert ends[-1] == T0 + span.count - 1
    assert [s - e for s, e in zip(starts[1:], ends, strict=False)] == [1.0] * (
        chunks - 1
    )
    assert all(e - s + 1 <= max_points for s, e in zip(starts, ends, strict=True))
    values = history.values["queue_depth"]
    for k, value in enumerate(values):
        want = expected(QUEUE, T0 + k)
        if want is None:
            assert isinstance(value, NoValue)
        else:
            assert value == want, k
    missing = [k for k in range(span.count) if expected(QUEUE, T0 + k) is None]
    [gap] = history.gaps
    assert (gap.first, gap.last, gap.ticks) == (missing[0], missing[-1], len(missing))
    assert (gap.first, gap.last) == (10_791, 11_705)  # 03:00:00 - 5 min, 03:15:05


def test_prometheus_refuses_more_than_11000_points_in_one_query(
    prometheus: str,
) -> None:
    """Why chunks: asked in one query, the same span is refused by the server."""
    span = Span.between(T0, T0 + HOURS * 3600, 1.0)
    collector = PrometheusCollector("queue_depth", prometheus, "queue_depth")
    with pytest.raises(PrometheusQueryError, match="11,000 points") as info:
        fetch_history([collector], "my-app", span, max_points=span.count)
    assert info.value.error_type == "bad_data"


# --- errors -----------------------------------------------------------------------


def test_unreachable_address_is_a_clear_error(tmp_path: Path) -> None:
    """A server that does not answer stops the run, naming the address."""
    address = f"http://127.0.0.1:{free_port()}"
    config = config_file(tmp_path, address, QUEUE_QUERY)
    code, stdout, stderr = simulate(
        "--config", config, "--from-prometheus", "--start", at(1),
        "--end", at(2), "--out", str(tmp_path / "out"), now=T0 + 86400,
    )  # fmt: skip
    assert (code, stdout) == (1, "")
    assert stderr.startswith(
        f"error: collect metric ('queue_depth'): prometheus query at "
        f"{address}/api/v1/query_range: cannot reach {address}: ConnectionError"
    )
    assert not (tmp_path / "out").exists()


def test_silent_server_times_out() -> None:
    """A server that accepts but never answers fails the query at its timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"http://127.0.0.1:{server.getsockname()[1]}"
        collector = PrometheusCollector("queue_depth", address, "up")
        span = Span.between(T0, T0 + 60, 15)
        with pytest.raises(PrometheusQueryError, match="no answer") as info:
            fetch_history([collector], "my-app", span, timeout=(1.0, 0.2))
    assert info.value.error_type == "timeout"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(queue_depth", "HTTP 400: bad_data: 1:16: parse error: unclosed"),
        ("queue_depth", 'the query returned 2 series ({__name__="queue_depth",'),
        (
            'queue_depth{app="nope"}',
            (
                "the query has no data from 2026-11-23T01:00:00Z to "
                "2026-11-23T01:59:45Z for app my-app"
            ),
        ),
    ],
    ids=["bad-query", "several-series", "no-data"],
)
def test_query_errors_show_what_prometheus_said(
    prometheus: str, tmp_path: Path, query: str, message: str
) -> None:
    """A bad query, several series or no data at all stop the run, saying why."""
    config = config_file(tmp_path, prometheus, ("queue_depth", query))
    code, stdout, stderr = simulate(
        "--config", config, "--from-prometheus", "--start", at(1),
        "--end", at(2), "--out", str(tmp_path / "out"), now=T0 + 86400,
    )  # fmt: skip
    assert (code, stdout) == (1, "")
    assert stderr.startswith("error: collect metric ('queue_depth'): ")
    assert message in stderr


def test_other_collector_types_cannot_be_replayed(tmp_path: Path) -> None:
    """A redis collector in the configuration is refused, by name and place."""
    path = tmp_path / "policy.yml"
    path.write_text(
        "app-name: my-app\n"
        'started-machine-count: "ceil(queue_depth / 10)"\n'
        "metric-collectors:\n"
        "  - type: prometheus\n    metric-name: queue_depth\n"
        "    address: http://127.0.0.1:9\n    query: up\n"
        "  - type: redis\n    metric-name: backlog\n"
        "    url: redis://127.0.0.1:9\n    keys: [jobs]\n",
        encoding="utf-8",
    )
    code, _, stderr = simulate(
        "--config", str(path), "--from-prometheus", "--start", at(1),
        now=T0 + 86400,
    )  # fmt: skip
    assert code == 1
    assert stderr == (
        "error: --from-prometheus replays Prometheus queries only, and "
        "metric-collectors[1] ('backlog') is a redis collector\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--from-prometheus needs --start: RFC 3339 such as"),
        (("--start", "yesterday"), "--start 'yesterday' is not a time: use RFC 3339"),
        (
            ("--start", "2026-11-23T01:00:00"),
            "--start '2026-11-23T01:00:00' has no time zone: end it with Z",
        ),
        (("--start", "-7x"), "--start '-7x' is not a time"),
        (
            ("--start", at(2), "--end", at(1)),
            (
                "the start must come before the end: --start '2026-11-23T02:00:00Z' "
                "(2026-11-23T02:00:00Z), --end '2026-11-23T01:00:00Z' "
                "(2026-11-23T01:00:00Z)"
            ),
        ),
        (
            ("--start", "-1h", "--end", "+1h"),
            "--end '+1h' is not a time",
        ),
        (
            ("--start", at(1), "--end", "2026-11-25T00:00:00Z"),
            "the end is after now (2026-11-24T00:00:00Z)",
        ),
        (
            ("--start", "2026-11-23T01:00:01Z", "--end", "2026-11-23T01:00:10Z"),
            "no tick: no multiple of --step 15s since the Unix epoch falls between",
        ),
        (
            ("--start", "-30d", "--step", "15s"),
            (
                "172800 ticks of 15s from 2026-10-25T00:00:00Z to "
                "2026-11-24T00:00:00Z: at most 50000; lengthen --step or shorten "
                "the span"
            ),
        ),
        (
            ("--start", "-1h", "--metrics", "load.csv"),
            (
                "--from-prometheus takes no --metrics (a replay's values come from "
                "Prometheus)"
            ),
        ),
        (("--start", "-1h", "--duration", "1h"), "takes no --duration"),
        (("--start", "-1h", "--tick", "30s"), "takes no --tick (a replay's tick is"),
        (
            ("--start", "-1h", "--app", "other"),
            "--app 'other': the configuration scales the app 'my-app'",
        ),
    ],
)
def test_option_errors_name_the_option(
    tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    """Bad times, spans and conflicting options stop the run before any query."""
    address = f"http://127.0.0.1:{free_port()}"  # never asked: errors come first
    config = config_file(tmp_path, address, QUEUE_QUERY)
    code, stdout, stderr = simulate(
        "--config", config, "--from-prometheus", *argv, now=T0 + 86400
    )
    assert (code, stdout) == (1, "")
    assert stderr.startswith("error: ")
    assert message in stderr
    assert "cannot reach" not in stderr


@pytest.mark.parametrize("option", ["--start", "--end", "--step", "--app"])
def test_replay_options_need_from_prometheus(option: str) -> None:
    """--start, --end, --step and --app mean nothing without --from-prometheus."""
    value = "1m" if option == "--step" else "x"
    code, _, stderr = simulate(option, value)
    assert code == 1
    assert stderr == f"error: {option} needs --from-prometheus\n"


def test_the_built_in_policy_has_nothing_to_replay() -> None:
    """Without a configuration there is no query to replay."""
    code, _, stderr = simulate("--from-prometheus", "--start", "-1h")
    assert code == 1
    assert stderr == (
        "error: --from-prometheus replays the configured Prometheus queries, and "
        "the built-in policy has none: give --config FILE, or the "
        "FAS_PROMETHEUS_* variables\n"
    )


def test_wildcard_app_needs_app(prometheus: str, tmp_path: Path) -> None:
    """A wildcard app-name needs --app, which must match it; then it is replayed."""
    environ = {
        "FAS_APP_NAME": "my-*",
        "FAS_ORG": "my-org",
        "FAS_STARTED_MACHINE_COUNT": "ceil(queue_depth / 10)",
        "FAS_PROMETHEUS_ADDRESS": prometheus,
        "FAS_PROMETHEUS_METRIC_NAME": "queue_depth",
        "FAS_PROMETHEUS_QUERY": 'queue_depth{app="$APP_NAME"}',
    }
    argv = ("--from-prometheus", "--start", at(4), "--end", at(4, 5))
    code, _, stderr = simulate(*argv, environ=environ, now=T0 + 86400)
    assert (code, stderr) == (
        1,
        (
            "error: the configured app-name 'my-*' is a wildcard: name the app whose "
            "history to replay with --app NAME\n"
        ),
    )
    code, _, stderr = simulate(*argv, "--app", "other-app", environ=environ)
    assert (code, stderr) == (
        1,
        "error: --app 'other-app' does not match the configured app-name 'my-*'\n",
    )
    stdout, _, rows = replay(
        tmp_path, *argv[1:], "--app", "my-app", environ=environ, now=T0 + 86400
    )
    assert "flyautoscaler simulate: app my-app, policy from FAS_* variables" in (stdout)
    assert 'query queue_depth: queue_depth{app="my-app"}' in stdout
    assert [float(r["queue_depth"]) for r in rows] == [
        expected(QUEUE, T0 + 4 * 3600 + 15 * k) for k in range(20)
    ]


def test_capacity_needs_a_value_at_every_tick(prometheus: str, tmp_path: Path) -> None:
    """--capacity over a gap is refused: the ideal fleet there is unknown."""
    config = config_file(tmp_path, prometheus, QUEUE_QUERY)
    code, _, stderr = simulate(
        "--config", config, "--from-prometheus", "--start", at(2, 55),
        "--end", at(3, 20), "--capacity", "10", now=T0 + 86400,
    )  # fmt: skip
    assert code == 1
    assert stderr == (
        "error: --capacity needs a value of queue_depth at every tick, and 61 "
        "ticks have none (first: queue_depth from 2026-11-23T03:00:00Z to "
        "2026-11-23T03:15:00Z (61 ticks)): shorten the span around the gaps, or "
        "leave out --capacity\n"
    )


# --- the pure parts ---------------------------------------------------------------

NOW = T0 + 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("now", NOW),
        ("-7d", NOW - 7 * 86400),
        ("-2h", NOW - 7200),
        ("-30m", NOW - 1800),
        ("-1d12h", NOW - 1.5 * 86400),
        ("-1.5d", NOW - 1.5 * 86400),
        ("-90s", NOW - 90),
        ("2026-11-23T00:00:00Z", T0),
        ("2026-11-23T01:00:00+01:00", T0),
        ("2026-11-23T00:00:00.250Z", T0 + 0.25),
        (" 2026-11-23T00:00:00Z ", T0),
    ],
)
def test_parse_time(text: str, seconds: float) -> None:
    """RFC 3339 with a zone, now, and - with days or a Go duration."""
    assert parse_time(text, option="--start", now=NOW) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "-d",
        "--2h",
        "-2h-1m",
        "-7",
        "-7days",
        "+2h",
        "2026-11-23",
        "1700000000",
    ],
)
def test_parse_time_refuses(text: str) -> None:
    """Anything else is refused, naming the option and the text."""
    with pytest.raises(ValueError, match=f"^--end {re.escape(repr(text))} ") as info:
        parse_time(text, option="--end", now=NOW)
    assert "not a time" in str(info.value) or "no time zone" in str(info.value)


def test_span_ticks_are_multiples_of_the_step() -> None:
    """The ticks are the step's multiples from the start (in) to the end (out)."""
    assert Span.between(T0, T0 + 60, 15) == Span(T0 * 1000, 15_000, 4)
    assert Span.between(T0 + 1, T0 + 61, 15) == Span((T0 + 15) * 1000, 15_000, 4)
    assert Span.between(T0 + 1, T0 + 61.001, 15).count == 4
    assert Span.between(T0 + 1, T0 + 14, 15).count == 0
    span = Span.between(T0 + 0.5, T0 + 2, 0.25)
    assert (span.first_ms, span.step, span.count) == (T0 * 1000 + 500, 0.25, 6)
    assert span.times == (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)
    with pytest.raises(ValueError, match=r"--step must be at least 1ms, got 0\.0001s"):
        Span.between(T0, T0 + 1, 0.0001)


def test_seven_days_at_15s_are_four_chunks() -> None:
    """A week at 15 s is 40,320 ticks in 4 queries that join exactly."""
    span = Span.between(T0, T0 + 7 * 86400, 15)
    assert span.count == 40_320
    chunks = span.chunks(MAX_POINTS)
    assert chunks == [(0, 10_999), (11_000, 21_999), (22_000, 32_999), (33_000, 40_319)]
    assert span.chunks(40_320) == [(0, 40_319)]
    assert Span(0, 1, 0).chunks(MAX_POINTS) == []


def test_history_describes_its_gaps() -> None:
    """The header names the gaps, the first three of them, and counts the rest."""
    span = Span.between(T0, T0 + 3600, 15)
    gaps = (
        Gap("a", 0, 0),
        Gap("b", 0, 3),
        Gap("a", 10, 11),
        Gap("a", 20, 29),
    )
    history = History(
        app_name="my-app",
        address="http://prom:9090",
        queries={"a": "up", "b": "down"},
        span=span,
        values={},
        gaps=gaps,
        requests=2,
        seconds=0.5,
    )
    assert history.gap_ticks == 16
    assert history.describe().splitlines() == [
        "replayed from Prometheus at http://prom:9090 for app my-app",
        (
            "    span: 2026-11-23T00:00:00Z to 2026-11-23T00:59:45Z, a point every 15s "
            "(240 per metric); time 0:00:00 is 2026-11-23T00:00:00Z"
        ),
        "    fetched in 2 range queries (0.50 s)",
        "    query a: up",
        "    query b: down",
        (
            "    gaps: 16 of 240 ticks have no data in 4 spans (a at "
            "2026-11-23T00:00:00Z (1 tick); b from 2026-11-23T00:00:00Z to "
            "2026-11-23T00:00:45Z (4 ticks); a from 2026-11-23T00:02:30Z to "
            "2026-11-23T00:02:45Z (2 ticks); 1 more): their passes fail for lack of "
            "the metric, as in a metrics outage"
        ),
    ]


def test_format_instant() -> None:
    """Unix milliseconds in RFC 3339, UTC; milliseconds only when there are any."""
    assert format_instant(T0 * 1000) == "2026-11-23T00:00:00Z"
    assert format_instant(T0 * 1000 + 5) == "2026-11-23T00:00:00.005Z"
