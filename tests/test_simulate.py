"""``flyautoscaler simulate``: the run, its files, its errors, and its pure parts.

Runs call :func:`flyautoscaler.cli.simulate.run` in-process with the options
:func:`~flyautoscaler.cli.simulate.add_arguments` defines (one test runs the CLI
as a subprocess). Each run starts a FakeMachinesServer and a real pool; ticks
are driven one by one, so nothing here sleeps or measures time.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import flyautoscaler as fas
from flyautoscaler._extras import install_hint
from flyautoscaler.cli.simulate import (
    SimulationSummary,
    add_arguments,
    run,
    run_simulation,
)
from flyautoscaler.cli.simulate._profile import (
    MetricsFileError,
    load_metrics_csv,
    parse_seconds,
    synthetic_series,
)
from flyautoscaler.cli.simulate._report import (
    CSV_COLUMNS,
    TickRow,
    direction_changes,
    format_band,
    format_clock,
    format_seconds,
    target_changes,
)
from flyautoscaler.cli.simulate._summary import SUMMARY_KEYS, machines_needed

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WAIT = 120.0  # generous: a loaded 2-core machine starts Python slowly
TICK_LINE = re.compile(r"^\s*\d+:\d\d:\d\d\s+\d")  # a tick, not a summary line


def parse(*argv: str) -> argparse.Namespace:
    """Parse *argv* with simulate's options."""
    parser = argparse.ArgumentParser(prog="flyautoscaler simulate")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def simulate(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run simulate in-process; return (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(parse(*argv), environ=environ or {}, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Return the CSV's header and rows."""
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def number(cell: str) -> int:
    """Return a target cell as an int (it must not be empty)."""
    assert cell, "a target is missing"
    return int(cell)


def check_png(path: Path) -> None:
    """Check *path* is a PNG; without matplotlib skip this (fail in full CI)."""
    if importlib.util.find_spec("matplotlib") is None:
        if os.environ.get("CI") and not os.environ.get("FAS_MINIMAL_TESTS"):
            pytest.fail("matplotlib is not installed: install flyautoscaler[plot]")
        assert not path.exists()
        return
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def write(path: Path, text: str) -> str:
    """Write *text* to *path*; return the path as a string."""
    path.write_text(text, encoding="utf-8")
    return str(path)


def wrote(stdout: str) -> set[str]:
    """The files simulate's closing line says it wrote (the chart needs an extra)."""
    [line] = [x for x in stdout.splitlines() if x.startswith("Wrote ")]
    files = line.removeprefix("Wrote ").split(" in ")[0]
    return {f.strip() for f in files.replace(" and ", ", ").split(",")}


def read_summary(out: Path) -> dict[str, object]:
    """Return summary.json of a run."""
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --- a run ------------------------------------------------------------------------


def test_default_run_writes_csv_summary_and_chart(tmp_path: Path) -> None:
    """The built-in policy runs, writes the three files and says where."""
    out = tmp_path / "out"
    code, stdout, stderr = simulate("--duration", "10m", "--out", str(out))
    assert (code, stderr) == (0, "")
    header, rows = read_rows(out / "timeseries.csv")
    assert header == ["time", "queue_depth", *CSV_COLUMNS]
    assert len(rows) == 40  # 10 minutes of 15 s ticks
    assert [float(r["time"]) for r in rows] == [15.0 * i for i in range(40)]
    check_png(out / "chart.png")
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    for text in (
        "new started target",
        "Machine-seconds",
        "The autoscaler created",
        "changed direction",
        "flaps per hour",
    ):
        assert text in stdout
        assert text in summary
    assert read_summary(out)["ticks"] == 40
    assert wrote(stdout) >= {"timeseries.csv", "summary.txt", "summary.json"}
    assert f" in {out}{os.sep}." in stdout


def test_started_machines_follow_the_targets_within_bounds(tmp_path: Path) -> None:
    """After each pass the fleet is inside both targets and never overcounts."""
    out = tmp_path / "out"
    code, _, _ = simulate("--duration", "20m", "--out", str(out), "--quiet")
    assert code == 0
    _, rows = read_rows(out / "timeseries.csv")
    for row in rows:
        machines, started, starting = (
            int(row[k]) for k in ("machines", "started", "starting")
        )
        running = started + starting
        assert running <= machines
        assert number(row["min_started"]) <= running <= number(row["max_started"])
        assert number(row["min_created"]) <= machines <= number(row["max_created"])
        assert row["failures"] == row["errors"] == "0"
    assert max(int(r["machines"]) for r in rows) > 10  # the spike created some
    assert sum(int(r["creates"]) for r in rows) > 0
    assert sum(int(r["stops"]) for r in rows) > 0


def test_live_view_prints_one_line_per_tick_with_verbose(tmp_path: Path) -> None:
    """--verbose: one plain-text line per tick; --quiet: none."""
    _, stdout, _ = simulate(
        "--duration", "2m", "--out", str(tmp_path / "a"), "--verbose"
    )
    assert "\x1b" not in stdout  # no terminal control codes
    assert "\r" not in stdout  # not a terminal: no progress line rewritten
    lines = [line for line in stdout.splitlines() if TICK_LINE.match(line)]
    assert len(lines) == 8
    assert lines[0].split()[:2] == ["0:00:00", "7"]
    _, quiet, _ = simulate("--duration", "2m", "--out", str(tmp_path / "b"), "--quiet")
    assert not any(TICK_LINE.match(line) for line in quiet.splitlines())
    assert "Machine-seconds" in quiet


def test_same_seed_same_run(tmp_path: Path) -> None:
    """A run is repeatable: the same options give the same time series."""
    for name in ("a", "b"):
        assert simulate("--duration", "5m", "--out", str(tmp_path / name))[0] == 0
    first = (tmp_path / "a" / "timeseries.csv").read_text(encoding="utf-8")
    assert first == (tmp_path / "b" / "timeseries.csv").read_text(encoding="utf-8")


def test_default_out_is_a_new_dated_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --out, a new flyautoscaler-sim-* folder is made, git-ignored, printed."""
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = simulate("--duration", "1m", "--quiet")
    assert code == 0
    (folder,) = tmp_path.glob("flyautoscaler-sim-*")
    assert re.fullmatch(r"flyautoscaler-sim-\d{8}-\d{6}", folder.name)
    assert f" in {folder.name}{os.sep}." in stdout
    assert f"Git ignores {folder.name}{os.sep}" in stdout
    assert (folder / "timeseries.csv").is_file()
    assert (folder / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"


def test_without_matplotlib_the_csv_is_written_and_the_extra_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No matplotlib: no chart, exit 0, and how to get it."""
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "out"
    code, stdout, _ = simulate("--duration", "1m", "--out", str(out), "--quiet")
    assert code == 0
    assert (out / "timeseries.csv").is_file()
    assert not (out / "chart.png").exists()
    assert install_hint("plot") in stdout


# --- replaying a recording --------------------------------------------------------


def test_metrics_file_is_replayed_tick_by_tick(tmp_path: Path) -> None:
    """Each tick takes the value recorded last at or before it, to the end."""
    path = write(tmp_path / "m.csv", "time,queue_depth,other\n0,5,x\n30,95,y\n60,5,z\n")
    out = tmp_path / "out"
    code, stdout, stderr = simulate("--metrics", path, "--out", str(out))
    assert (code, stderr) == (0, "")
    _, rows = read_rows(out / "timeseries.csv")
    assert [r["time"] for r in rows] == ["0", "15", "30", "45", "60"]
    assert [r["queue_depth"] for r in rows] == ["5", "5", "95", "95", "5"]
    assert [int(r["min_started"]) for r in rows] == [1, 1, 10, 10, 1]
    assert f"replayed from {path} (3 rows)" in stdout


def test_a_run_replays_its_own_timeseries(tmp_path: Path) -> None:
    """timeseries.csv is a valid --metrics file: the replay sees the same load."""
    assert simulate("--duration", "5m", "--out", str(tmp_path / "a"))[0] == 0
    first = tmp_path / "a" / "timeseries.csv"
    code, _, _ = simulate(
        "--metrics", str(first), "--duration", "5m", "--out", str(tmp_path / "b")
    )
    assert code == 0
    _, original = read_rows(first)
    _, replayed = read_rows(tmp_path / "b" / "timeseries.csv")
    assert [r["queue_depth"] for r in replayed] == [r["queue_depth"] for r in original]
    assert [r["started"] for r in replayed] == [r["started"] for r in original]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file"),
        ("t,queue_depth\n0,1\n", "line 1: no 'time' column"),
        ("time,load\n0,1\n", "line 1: no column for the metric 'queue_depth'"),
        ("time,queue_depth,time\n0,1,2\n", "line 1: column 'time' appears twice"),
        ("time,queue_depth\n", "no data rows"),
        ("time,queue_depth\n0,1\n15,abc\n", "line 3, column 'queue_depth': not a"),
        ("time,queue_depth\n0,1\n\n15,nan\n", "line 4, column 'queue_depth': not fin"),
        ("time,queue_depth\n0,1\n15,\n", "line 3, column 'queue_depth': empty"),
        ("time,queue_depth\n0,1\n0,2\n", "line 3, column 'time': 0 is not after"),
        ("time,queue_depth\n-5,1\n", "line 2, column 'time': negative"),
        ("time,queue_depth\n0,1\n15\n", "line 3: 1 fields, the header has at least 2"),
        ('time,queue_depth\n0,"1\n', "invalid CSV"),
    ],
)
def test_bad_metrics_file_exits_1_naming_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A bad --metrics file: one error line naming the place; nothing written."""
    path = write(tmp_path / "bad.csv", text)
    out = tmp_path / "out"
    code, stdout, stderr = simulate("--metrics", path, "--out", str(out))
    assert code == 1
    assert stderr.startswith(f"error: {path}")
    assert expected in stderr
    assert stderr.count("\n") == 1
    assert stdout == ""
    assert not out.exists()


def test_missing_metrics_file_exits_1(tmp_path: Path) -> None:
    """An unreadable --metrics file is an error, not a traceback."""
    code, _, stderr = simulate("--metrics", str(tmp_path / "nope.csv"))
    assert code == 1
    assert stderr.startswith("error: ")
    assert "nope.csv" in stderr


# --- the configuration ------------------------------------------------------------

CONFIG = """\
app-name: my-app
process-group: worker
regions: [ord, ams]
interval: 30s
min-started-machine-count: "ceil(jobs / 20)"
max-started-machine-count: "ceil(jobs / 20) + 1"
min-created-machine-count: "max(4, ceil(jobs / 20))"
max-created-machine-count: "max(4, ceil(jobs / 20))"
metric-collectors:
  - type: prometheus
    metric-name: jobs
    address: http://127.0.0.1:1
    query: sum(queue_jobs{app="${APP_NAME}"})
"""


def test_config_file_policy_is_simulated(tmp_path: Path) -> None:
    """--config: its app, group, interval, metric and expressions are used."""
    config = write(tmp_path / "fas.yml", CONFIG)
    out = tmp_path / "out"
    code, stdout, stderr = simulate(
        "--config", config, "--duration", "10m", "--peak", "100", "--out", str(out)
    )
    assert (code, stderr) == (0, "")
    assert f"app my-app, policy from {config}" in stdout
    assert "started Machines: ceil(jobs / 20) .. ceil(jobs / 20) + 1" in stdout
    assert "group 'worker'" in stdout
    header, rows = read_rows(out / "timeseries.csv")
    assert header[:2] == ["time", "jobs"]
    assert len(rows) == 20  # 30 s ticks
    for row in rows:
        assert int(row["min_started"]) == -(-int(row["jobs"]) // 20)
        assert int(row["machines"]) == max(4, int(row["min_started"]))
    assert max(int(r["machines"]) for r in rows) >= 5  # the spike created one


def test_config_with_unknown_metric_exits_1_naming_it(tmp_path: Path) -> None:
    """A typo in an expression fails before anything runs."""
    config = write(tmp_path / "fas.yml", CONFIG.replace("ceil(jobs / 20) + 1", "jbs"))
    code, stdout, stderr = simulate("--config", config, "--out", str(tmp_path / "o"))
    assert code == 1
    assert stderr.startswith("error: ")
    assert "jbs" in stderr
    assert stdout == ""
    assert not (tmp_path / "o").exists()


def test_wildcard_app_is_simulated_as_one_app(tmp_path: Path) -> None:
    """A wildcard app name: one app, sim-app, stands for the matching apps."""
    config = write(
        tmp_path / "fas.yml",
        CONFIG.replace("app-name: my-app", "app-name: my-app-*\norg: acme"),
    )
    code, stdout, _ = simulate(
        "--config", config, "--duration", "1m", "--out", str(tmp_path / "o")
    )
    assert code == 0
    assert "app sim-app" in stdout


def test_fas_variables_are_the_policy_without_a_file(tmp_path: Path) -> None:
    """FAS_* variables alone configure the run; no metric is needed."""
    environ = {"FAS_APP_NAME": "env-app", "FAS_STARTED_MACHINE_COUNT": "3"}
    out = tmp_path / "out"
    code, stdout, _ = simulate("--duration", "1m", "--out", str(out), environ=environ)
    assert code == 0
    assert (
        "app env-app, policy from FAS_* variables: FAS_APP_NAME, "
        "FAS_STARTED_MACHINE_COUNT (no --config, and FAS_STARTED_MACHINE_COUNT "
        "sets a count)"
    ) in stdout
    header, rows = read_rows(out / "timeseries.csv")
    assert header == ["time", *CSV_COLUMNS]
    assert [int(r["started"]) + int(r["starting"]) for r in rows] == [3, 3, 3, 3]
    check_png(out / "chart.png")


def test_invalid_fas_variables_say_why_they_were_read() -> None:
    """A count variable makes simulate read the environment, and the error says so."""
    environ = {"FAS_STARTED_MACHINE_COUNT": "2", "FAS_API_TOKEN": "fo1_secret-token"}
    code, _, stderr = simulate(environ=environ)
    assert code == 1
    assert stderr.startswith("error: app name required")
    assert "because FAS_STARTED_MACHINE_COUNT sets a count" in stderr
    assert "fo1_secret-token" not in stderr
    assert stderr.count("\n") == 1


def test_fas_variables_the_configuration_ignores_keep_the_built_in_policy(
    tmp_path: Path,
) -> None:
    """A FAS_* variable that configures nothing does not switch to the environment."""
    environ = {"FAS_MINIMAL_TESTS": "1"}
    code, stdout, _ = simulate(
        "--duration", "30s", "--out", str(tmp_path / "o"), environ=environ
    )
    assert code == 0
    assert (
        "app sim-app, the built-in policy (no --config and no FAS_* count "
        "expression set; FAS_MINIMAL_TESTS is ignored)"
    ) in stdout


def test_metric_named_like_a_csv_column_is_refused(tmp_path: Path) -> None:
    """A metric called like a column of the CSV would be ambiguous: exit 1."""
    config = write(tmp_path / "fas.yml", CONFIG.replace("jobs", "started"))
    code, _, stderr = simulate("--config", config)
    assert code == 1
    assert "metric name 'started' is a column of simulate's CSV" in stderr


def test_not_enough_machines_is_a_note_in_the_csv(tmp_path: Path) -> None:
    """A target the fleet cannot meet shows as a note, not an error."""
    environ = {
        "FAS_APP_NAME": "small",
        "FAS_CREATED_MACHINE_COUNT": "2",
        "FAS_STARTED_MACHINE_COUNT": "5",
    }
    out = tmp_path / "out"
    code, stdout, _ = simulate(
        "--duration", "30s", "--machines", "3", "--started", "0", "--out", str(out),
        environ=environ,
    )  # fmt: skip
    assert code == 0
    _, rows = read_rows(out / "timeseries.csv")
    assert [r["machines"] for r in rows] == ["2", "2"]
    assert [r["destroys"] for r in rows] == ["1", "0"]
    assert "only 2 of 5 can start" in rows[0]["notes"]
    assert rows[0]["rules"] == "not_enough_to_start"
    assert "only 2 of 5 can start" in stdout


def test_failing_passes_are_counted_and_explained(tmp_path: Path) -> None:
    """A pass whose expression fails: no target, a note, a failed pass counted."""
    environ = {"FAS_APP_NAME": "inf", "FAS_STARTED_MACHINE_COUNT": "1 / 0"}
    out = tmp_path / "out"
    code, stdout, _ = simulate("--duration", "30s", "--out", str(out), environ=environ)
    assert code == 0  # the run finished; the summary tells what failed
    _, rows = read_rows(out / "timeseries.csv")
    assert [(r["min_started"], r["errors"]) for r in rows] == [("", "1"), ("", "1")]
    assert "ExprInfError" in rows[0]["notes"]
    assert "no action failed and 2 passes failed before acting" in stdout


# --- rules and capacity -----------------------------------------------------------

JOBS = {
    "FAS_APP_NAME": "jobs-app",
    "FAS_STARTED_MACHINE_COUNT": "ceil(jobs / 5)",
    "FAS_PROMETHEUS_METRIC_NAME": "jobs",
    "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:1",
    "FAS_PROMETHEUS_QUERY": "unused",
}
# 4 minutes of 15 s ticks: 5 jobs for a minute, then 15, 5 and 15 again.
SQUARE_WAVE = "time,jobs\n0,5\n60,15\n120,5\n180,15\n"


def test_rules_column_names_the_rules_each_pass_applied(tmp_path: Path) -> None:
    """Min above max: every row names min_above_max; the first also the create rule."""
    environ = {
        "FAS_APP_NAME": "ruled",
        "FAS_MIN_STARTED_MACHINE_COUNT": "3",
        "FAS_MAX_STARTED_MACHINE_COUNT": "1",
        "FAS_CREATED_MACHINE_COUNT": "12",
    }
    out = tmp_path / "out"
    code, _, stderr = simulate("--duration", "45s", "--out", str(out), environ=environ)
    assert (code, stderr) == (0, "")
    header, rows = read_rows(out / "timeseries.csv")
    assert header[-1] == "rules"
    assert [r["rules"].split() for r in rows] == [
        ["min_above_max", "create_stopped_beyond_max_started"],
        ["min_above_max"],
        ["min_above_max"],
    ]
    assert [r["machines"] for r in rows] == ["12", "12", "12"]
    assert "max started raised to 3 (min wins)" in rows[1]["notes"]


def test_rules_column_is_empty_when_no_rule_acted(tmp_path: Path) -> None:
    """A policy the fleet can follow changes no target: the rules cells are empty."""
    load = write(tmp_path / "load.csv", SQUARE_WAVE)
    out = tmp_path / "out"
    code, _, _ = simulate(
        "--metrics", load, "--duration", "1m", "--out", str(out), environ=JOBS
    )
    assert code == 0
    _, rows = read_rows(out / "timeseries.csv")
    assert [r["rules"] for r in rows] == ["", "", "", ""]


def test_capacity_constant_load_meets_the_ideal(tmp_path: Path) -> None:
    """12 jobs, 5 per Machine: 3 Machines a tick; only the first tick is short."""
    load = write(tmp_path / "load.csv", "time,jobs\n0,12\n")
    out = tmp_path / "out"
    code, stdout, stderr = simulate(
        "--metrics", load, "--duration", "2m", "--capacity", "5", "--quiet",
        "--out", str(out), environ=JOBS,
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    summary = read_summary(out)
    assert list(summary) == list(SUMMARY_KEYS)
    assert summary["ticks"] == 8
    assert summary["capacity"] == 5
    assert summary["capacity_metric"] == "jobs"
    # 3 Machines x 8 ticks x 15 s; the run starts a third one at the first tick.
    assert summary["ideal_machine_seconds"] == 360
    assert summary["machine_seconds"] == 360
    assert summary["machine_seconds_ratio"] == 1
    # The third Machine is still starting after the first pass: one tick short.
    assert summary["under_provisioned_machine_seconds"] == 15
    assert summary["flaps"] == summary["flaps_per_hour"] == 0
    assert (
        "One started Machine serves 5 jobs (the capacity), so the ideal fleet is "
        "ceil(jobs / 5) Machines at every tick."
    ) in stdout
    assert (
        "The run used 360 Machine-seconds against an ideal of 360: 1.00 times "
        "the ideal."
    ) in stdout
    assert "The fleet was under-provisioned for 15 Machine-seconds:" in stdout
    text = (out / "summary.txt").read_text(encoding="utf-8")
    assert "The run used 360 Machine-seconds against an ideal of 360" in text


def test_capacity_below_the_policy_is_under_provisioned(tmp_path: Path) -> None:
    """A policy sized for 5 jobs per Machine, capacity 2: 6 needed, 3 started."""
    load = write(tmp_path / "load.csv", "time,jobs\n0,12\n")
    out = tmp_path / "out"
    code, stdout, _ = simulate(
        "--metrics", load, "--duration", "2m", "--capacity", "2", "--quiet",
        "--out", str(out), environ=JOBS,
    )  # fmt: skip
    assert code == 0
    summary = read_summary(out)
    assert summary["ideal_machine_seconds"] == 6 * 8 * 15
    assert summary["machine_seconds"] == 360
    assert summary["machine_seconds_ratio"] == 0.5
    # First tick: 2 started (a third starting), then 3, each 15 s.
    assert (
        summary["under_provisioned_machine_seconds"] == (6 - 2) * 15 + (6 - 3) * 7 * 15
    )
    assert "against an ideal of 720: 0.50 times the ideal." in stdout


@pytest.mark.parametrize(("delay", "short"), [("5s", 2 * 2 * 15), ("0", 0)])
def test_capacity_square_wave_counts_starts_as_under_provisioned(
    tmp_path: Path, delay: str, short: int
) -> None:
    """Each rise to 3 leaves 2 Machines starting a tick, unless starts are instant."""
    load = write(tmp_path / "load.csv", SQUARE_WAVE)
    out = tmp_path / "out"
    code, stdout, _ = simulate(
        "--metrics", load, "--duration", "4m", "--capacity", "5", "--quiet",
        "--transition-delay", delay, "--out", str(out), environ=JOBS,
    )  # fmt: skip
    assert code == 0
    _, rows = read_rows(out / "timeseries.csv")
    running = [int(r["started"]) + int(r["starting"]) for r in rows]
    assert running == [1] * 4 + [3] * 4 + [1] * 4 + [3] * 4
    summary = read_summary(out)
    # 16 ticks of 15 s needing 1, 3, 1, 3 Machines, 4 ticks each.
    assert summary["ideal_machine_seconds"] == (1 + 3 + 1 + 3) * 4 * 15
    assert summary["machine_seconds"] == 480
    assert summary["under_provisioned_machine_seconds"] == short
    # Down at 0:00, up at 1:00, down at 2:00, up at 3:00: three reversals,
    # each a minute after the move before: 3 flaps in 4 minutes.
    assert summary["flaps"] == 3
    assert summary["flaps_per_hour"] == 45
    assert "The started Machines flapped 3 times in 4m: 45.0 flaps per hour." in stdout


def test_without_capacity_flaps_per_hour_only(tmp_path: Path) -> None:
    """Without --capacity: flaps per hour, and no capacity lines; JSON nulls."""
    load = write(tmp_path / "load.csv", SQUARE_WAVE)
    out = tmp_path / "out"
    code, stdout, _ = simulate(
        "--metrics", load, "--duration", "4m", "--quiet", "--out", str(out),
        environ=JOBS,
    )  # fmt: skip
    assert code == 0
    assert "45.0 flaps per hour" in stdout
    assert "(the capacity)" not in stdout
    assert "under-provisioned" not in stdout
    assert wrote(stdout) >= {"timeseries.csv", "summary.txt", "summary.json"}
    summary = read_summary(out)
    assert summary["flaps"] == 3
    assert summary["machine_seconds"] == 480
    for key in (
        "capacity",
        "capacity_metric",
        "ideal_machine_seconds",
        "machine_seconds_ratio",
        "under_provisioned_machine_seconds",
    ):
        assert summary[key] is None


def test_capacity_applies_to_the_first_metric(tmp_path: Path) -> None:
    """With two metrics, the ideal follows the first one the policy names."""
    config = write(
        tmp_path / "fas.yml",
        """\
app-name: two
started-machine-count: "ceil(a / 10)"
metric-collectors:
  - {type: prometheus, metric-name: a, address: "http://127.0.0.1:1", query: x}
  - {type: prometheus, metric-name: b, address: "http://127.0.0.1:1", query: y}
""",
    )
    load = write(tmp_path / "load.csv", "time,a,b\n0,40,1000\n")
    out = tmp_path / "out"
    code, _, stderr = simulate(
        "--config", config, "--metrics", load, "--duration", "30s",
        "--capacity", "10", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    summary = read_summary(out)
    assert summary["capacity_metric"] == "a"
    assert summary["ideal_machine_seconds"] == 4 * 2 * 15


def test_capacity_without_a_metric_exits_1() -> None:
    """--capacity with a policy that uses no metric says so, naming the option."""
    environ = {"FAS_APP_NAME": "fixed", "FAS_STARTED_MACHINE_COUNT": "3"}
    code, stdout, stderr = simulate("--capacity", "5", environ=environ)
    assert code == 1
    assert stderr.startswith("error: --capacity needs a metric")
    assert "the FAS_* variables uses none" in stderr
    assert stdout == ""


@pytest.mark.parametrize("value", ["0", "-2", "many", "inf", "nan"])
def test_capacity_must_be_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--capacity 0, negative, not a number or not finite: a usage error naming it."""
    with pytest.raises(SystemExit) as info:
        parse("--capacity", value)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --capacity:" in err
    assert "finite number > 0" in err or "not a number" in err


def test_capacity_accepts_fractions() -> None:
    """--capacity takes any positive number, 0.5 included."""
    assert parse("--capacity", "0.5").capacity == 0.5
    assert parse().capacity is None


# --- in-process --------------------------------------------------------------------


def jobs_policy(collectors: list[fas.MetricCollector]) -> fas.Reconciler:
    """The JOBS policy as a reconciler: ceil(jobs / 5) started."""
    return fas.Reconciler(
        min_started_machine_n="ceil(jobs / 5)",
        max_started_machine_n="ceil(jobs / 5)",
        collectors=collectors,
    )


def square_wave() -> list[float]:
    """SQUARE_WAVE at 15 s ticks."""
    return [5.0] * 4 + [15.0] * 4 + [5.0] * 4 + [15.0] * 4


def test_run_simulation_returns_the_commands_numbers(tmp_path: Path) -> None:
    """In-process, the same load and policy give the summary.json of the command."""
    summary = run_simulation(jobs_policy, {"jobs": square_wave()}, capacity=5)
    assert isinstance(summary, SimulationSummary)
    load = write(tmp_path / "load.csv", SQUARE_WAVE)
    out = tmp_path / "out"
    code, _, _ = simulate(
        "--metrics", load, "--duration", "4m", "--capacity", "5", "--quiet",
        "--out", str(out), environ=JOBS,
    )  # fmt: skip
    assert code == 0
    assert summary.to_dict() == read_summary(out)
    assert summary.machine_seconds == 480
    assert summary.ideal_machine_seconds == 480
    assert summary.under_provisioned_machine_seconds == 60
    assert summary.flaps_per_hour == 45


def test_run_simulation_without_capacity_and_with_its_own_fleet() -> None:
    """Fleet options apply; without capacity the capacity numbers are None."""
    summary = run_simulation(
        jobs_policy, {"jobs": [15.0] * 4}, tick=30, machines=3, started=0,
        transition_delay=0,
    )  # fmt: skip
    assert (summary.ticks, summary.tick_seconds, summary.simulated_seconds) == (
        4,
        30,
        120,
    )
    assert summary.starts == 3
    assert summary.machine_seconds == 3 * 4 * 30
    assert summary.ideal_machine_seconds is None
    assert summary.under_provisioned_machine_seconds is None
    assert summary.lines() == [
        "  The started Machines never flapped in 2m: 0.0 flaps per hour."
    ]


@pytest.mark.parametrize(
    ("values", "options", "message"),
    [
        ({}, {}, "at least one metric"),
        ({"jobs": []}, {}, "same length, at least 1"),
        ({"jobs": [1.0], "b": [1.0, 2.0]}, {}, "jobs: 1, b: 2"),
        ({"jobs": [float("nan")]}, {}, "values['jobs'][0] is not finite"),
        ({"jobs": [1.0]}, {"tick": 0}, "tick must be"),
        ({"jobs": [1.0]}, {"capacity": 0}, "capacity must be a finite number > 0"),
        ({"jobs": [1.0]}, {"machines": 0}, "machines must be at least 1"),
        ({"jobs": [1.0]}, {"started": 11}, "started must be from 0 to machines"),
        ({"jobs": [1.0]}, {"transition_delay": -1}, "transition_delay must be"),
        ({"_simulate_tick": [1.0]}, {}, "are the simulator's"),
    ],
)
def test_run_simulation_rejects_bad_arguments(
    values: dict[str, list[float]], options: dict[str, float], message: str
) -> None:
    """Out-of-range arguments raise ValueError before anything runs."""
    with pytest.raises(ValueError, match=re.escape(message)):
        run_simulation(jobs_policy, values, **options)  # type: ignore[arg-type]


# --- options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--started", "11"], "--started (11) cannot exceed --machines (10)"),
        (["--machines", "0", "--started", "0"], "--machines must be at least 1"),
        (["--duration", "100h", "--tick", "1s"], "at most 50000"),
    ],
)
def test_out_of_range_options_exit_1(argv: list[str], expected: str) -> None:
    """Options that cannot run together: exit 1 with the reason."""
    code, _, stderr = simulate(*argv)
    assert code == 1
    assert expected in stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--duration", "0"],
        ["--duration", "soon"],
        ["--tick", "-1s"],
        ["--machines", "-1"],
        ["--peak", "0"],
        ["--peak", "inf"],
        ["--transition-delay", "x"],
    ],
)
def test_invalid_option_values_are_usage_errors(argv: list[str]) -> None:
    """argparse rejects a bad value (exit 2)."""
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2


def test_durations_accept_seconds_and_go_syntax() -> None:
    """--duration 90, 1.5, 1m30s and 2h all parse."""
    assert parse("--duration", "90").duration == 90.0
    assert parse("--duration", "1m30s").duration == 90.0
    assert parse("--tick", "1.5").tick == 1.5
    assert parse("--duration", "2h").duration == 7200.0
    assert parse_seconds("0") == 0.0


# --- pure parts -------------------------------------------------------------------


def test_synthetic_load_has_a_ramp_a_spike_and_a_decay() -> None:
    """The default load is quiet, ramps, spikes to the peak and decays."""
    times = [float(t) for t in range(0, 3600, 15)]
    values = synthetic_series(["q"], times, duration=3600, peak=150, seed=7)["q"]
    at = dict(zip(times, values, strict=True))
    assert at[0] < 15
    assert 45 <= at[1500] <= 75  # the plateau, 40 % of the peak
    assert max(values) >= 140
    assert 1860 <= times[values.index(max(values))] <= 2160  # the spike
    assert at[3585] < 20  # decayed
    assert all(v == int(v) >= 0 for v in values)
    again = synthetic_series(["q"], times, duration=3600, peak=150, seed=7)["q"]
    assert again == values


def test_each_metric_gets_its_own_noise() -> None:
    """Two metrics share the shape, not the noise."""
    times = [float(t) for t in range(0, 600, 15)]
    series = synthetic_series(["a", "b"], times, duration=600, peak=1000, seed=1)
    assert series["a"] != series["b"]


def test_recording_holds_each_value_until_the_next_row(tmp_path: Path) -> None:
    """value_at() is the last value at or before t; the first one before it."""
    path = write(tmp_path / "m.csv", "\ufefftime_s, a \n10,1\n20,2.5\n")
    recording = load_metrics_csv(path, ["a"])
    assert [recording.value_at("a", t) for t in (0, 10, 19.9, 20, 99)] == [
        1,
        1,
        1,
        2.5,
        2.5,
    ]
    assert recording.end == 20
    with pytest.raises(MetricsFileError, match="line 1"):
        load_metrics_csv(path, ["b"])


def row(t: float, started: int, band: tuple[int, int], starting: int = 0) -> TickRow:
    """A TickRow with a started target and counts, and 10 Machines."""
    low, high = band
    return TickRow(t, {}, 10, 10, low, high, 10, started, starting)


def test_target_changes_fold_moves_and_time_the_catch_up() -> None:
    """A target the fleet is outside opens a change until the fleet is inside."""
    rows = [
        row(0, 2, (2, 2)),
        row(15, 2, (4, 4), starting=2),
        row(30, 4, (5, 6), starting=1),  # moved again while catching up
        row(45, 5, (5, 6)),
        row(60, 5, (5, 7)),  # moved, but the fleet is inside already
        row(75, 5, (9, 9), starting=4),  # never reached
    ]
    changes = target_changes(rows, "started", initial=2)
    assert [(c.time, c.before, c.after, c.moves, c.reached) for c in changes] == [
        (15, (2, 2), (5, 6), 2, 30),
        (75, (5, 7), (9, 9), 1, None),
    ]
    assert changes[0].describe("started") == (
        "At 0:00:15 the started target went from 2 to 5..6 (after 2 moves); "
        "the fleet was inside it 30s later."
    )
    assert (
        changes[1]
        .describe("started")
        .endswith("the fleet had not reached it by the end.")
    )


def test_direction_changes_count_reversals_and_quick_ones_as_flaps() -> None:
    """Up then down is a change; within 2 minutes of the last move, a flap."""
    times = [0.0, 15, 30, 45, 60, 600, 615]
    assert direction_changes([2, 3, 3, 2, 3, 3, 3], times, initial=2) == (2, 2)
    assert direction_changes([2, 3, 4, 4, 4, 2, 2], times, initial=2) == (1, 0)
    assert direction_changes([2, 2, 2, 2, 2, 2, 2], times, initial=2) == (0, 0)


@pytest.mark.parametrize(
    ("load", "capacity", "needed"),
    [(12, 5, 3), (10, 5, 2), (0, 5, 0), (-3, 5, 0), (0.7, 0.1, 7), (1.1, 0.1, 11),
     (10.5, 5, 3), (1, 1000, 1)],
)  # fmt: skip
def test_machines_needed_is_ceil_of_load_over_capacity(
    load: float, capacity: float, needed: int
) -> None:
    """ceil(load / capacity), never negative, exact despite float rounding."""
    assert machines_needed(load, capacity) == needed


def test_formatting_of_times_and_targets() -> None:
    """Clock times, durations and target bands read naturally."""
    assert format_clock(3725) == "1:02:05"
    assert format_clock(1.5) == "0:00:01.5"
    assert [format_seconds(s) for s in (45, 90, 3600, 3605)] == [
        "45s",
        "1m30s",
        "1h",
        "1h0m5s",
    ]
    assert [format_band(b) for b in [(2, 2), (1, 3), (2, None), (None, 3)]] == [
        "2",
        "1..3",
        ">=2",
        "<=3",
    ]
    assert format_band((None, None)) == "-"


# --- the command ------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("flyautoscaler.cli") is None,
    reason="the flyautoscaler CLI (flyautoscaler.cli) does not exist yet",
)
def test_python_m_flyautoscaler_simulate_end_to_end(tmp_path: Path) -> None:
    """python -m flyautoscaler simulate --out DIR writes the chart and the CSV."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAS_")}
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable, "-m", "flyautoscaler", "simulate",
            "--out", str(out), "--duration", "5m",
        ],
        capture_output=True, text=True, timeout=WAIT, env=env, check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(read_rows(out / "timeseries.csv")[1]) == 20
    check_png(out / "chart.png")
    assert f" in {out}{os.sep}." in done.stdout


# --- the scaling behaviour, on the simulated clock ------------------------------------

FLAPPY = {
    "FAS_APP_NAME": "my-app",
    "FAS_STARTED_MACHINE_COUNT": "ceil(jobs / 5)",
    "FAS_PROMETHEUS_METRIC_NAME": "jobs",
    "FAS_PROMETHEUS_ADDRESS": "http://unused",
    "FAS_PROMETHEUS_QUERY": "unused",
}


def test_scale_down_window_runs_on_the_simulated_clock(tmp_path: Path) -> None:
    """A 5m window removes the docs example's flaps, and the CSV names the rule."""
    runs = {}
    for label, extra in (
        ("go", {}),
        ("window", {"FAS_SCALE_DOWN_STABILIZATION": "5m"}),
    ):
        out = tmp_path / label
        code, _, stderr = simulate(
            "--peak",
            "40",
            "--capacity",
            "5",
            "--quiet",
            "--out",
            str(out),
            environ=FLAPPY | extra,
        )
        assert (code, stderr) == (0, "")
        runs[label] = (read_summary(out), read_rows(out / "timeseries.csv")[1])
    go, window = runs["go"][0], runs["window"][0]
    assert go["flaps_per_hour"] == 26.0
    assert window["flaps_per_hour"] <= 0.2 * go["flaps_per_hour"]
    assert (
        window["under_provisioned_machine_seconds"]
        <= go["under_provisioned_machine_seconds"]
    )
    held = [r for r in runs["window"][1] if "scale_down_stabilization" in r["rules"]]
    # Held for five simulated minutes after the peak: 20 ticks of 15 s at least.
    assert len(held) >= 20
    assert all(r["rules"] == "" for r in runs["go"][1])
    # The held max shows in the targets: max started above min started.
    assert all(int(r["max_started"]) > int(r["min_started"]) for r in held)


def test_step_limit_is_simulated(tmp_path: Path) -> None:
    """A scale-up step limit of 1: never more than one start a tick, and said so."""
    jump = tmp_path / "jump.csv"  # 1 Machine wanted, then 8 at once
    jump.write_text(
        "time,jobs\n"
        + "".join(f"{t},{5 if t < 60 else 40}\n" for t in range(0, 300, 15)),
        encoding="utf-8",
    )
    most = {}
    for label, extra in (("go", {}), ("step", {"FAS_MAX_SCALE_UP_STEP": "1"})):
        out = tmp_path / label
        code, _, stderr = simulate(
            "--metrics", str(jump), "--quiet", "--out", str(out), environ=FLAPPY | extra
        )
        assert (code, stderr) == (0, "")
        rows = read_rows(out / "timeseries.csv")[1]
        most[label] = max(int(r["starts"]) for r in rows)
        if label == "step":
            assert any("max_scale_up_step" in r["rules"] for r in rows)
    assert most == {"go": 7, "step": 1}
