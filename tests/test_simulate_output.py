"""``flyautoscaler simulate``'s output: the policy header, --compare, the chart,
the tick table, the progress line and the output folder.

Runs go through the command in-process, as in ``test_simulate.py`` (whose
helpers these are); the progress line gets a fake stdout (``isatty()``) and a
fake clock, so nothing sleeps.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from flyautoscaler import ConfigError
from flyautoscaler.cli.simulate import run
from flyautoscaler.cli.simulate._chart import _spans
from flyautoscaler.cli.simulate._policy import COUNT_VARIABLES, choose_policy
from flyautoscaler.cli.simulate._report import TargetChange, TargetReach, TickRow
from test_simulate import (
    PNG_SIGNATURE,
    SQUARE_WAVE,
    TICK_LINE,
    check_png,
    parse,
    read_rows,
    read_summary,
    simulate,
    write,
)

POLICY = """\
app-name: jobs-app
started-machine-count: "ceil(jobs / 5)"
metric-collectors:
  - {type: prometheus, metric-name: jobs, address: "http://127.0.0.1:1", query: q}
"""
WINDOW = POLICY + "scale-down-stabilization: 2m\n"
# A policy on the built-in policy's metric.
QUEUE = """\
app-name: other
started-machine-count: "ceil(queue_depth / 20)"
metric-collectors:
  - {type: prometheus, metric-name: queue_depth, address: "http://x:1", query: q}
"""


def png_size(path: Path) -> tuple[int, int]:
    """Return a PNG's width and height, from its IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def has_matplotlib() -> bool:
    """Whether charts are drawn here."""
    return importlib.util.find_spec("matplotlib") is not None


# --- which policy, and why ------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        ({}, "the built-in policy (no --config and no FAS_* count expression set)"),
        (
            {"FAS_API_TOKEN": "fo1_secret"},
            (
                "the built-in policy (no --config and no FAS_* count expression set; "
                "FAS_API_TOKEN is ignored)"
            ),
        ),
        (
            {
                "FAS_APP_NAME": "my-app",
                "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:1",
                "FAS_SCALE_DOWN_STABILIZATION": "5m",
            },
            (
                "the built-in policy (no --config and no FAS_* count expression set; "
                "FAS_APP_NAME, FAS_PROMETHEUS_ADDRESS and FAS_SCALE_DOWN_STABILIZATION "
                "are ignored)"
            ),
        ),
        (
            {"FAS_APP_NAME": "my-app", "FAS_STARTED_MACHINE_COUNT": "4"},
            (
                "policy from FAS_* variables: FAS_APP_NAME, FAS_STARTED_MACHINE_COUNT "
                "(no --config, and FAS_STARTED_MACHINE_COUNT sets a count)"
            ),
        ),
        (
            {
                "FAS_APP_NAME": "my-app",
                "FAS_MIN_CREATED_MACHINE_COUNT": "2",
                "FAS_MAX_CREATED_MACHINE_COUNT": "3",
                "FAS_API_TOKEN": "fo1_secret",
                "FAS_MINIMAL_TESTS": "1",
            },
            (
                "policy from FAS_* variables: FAS_APP_NAME, "
                "FAS_MAX_CREATED_MACHINE_COUNT, FAS_MIN_CREATED_MACHINE_COUNT (no "
                "--config, and FAS_MIN_CREATED_MACHINE_COUNT and "
                "FAS_MAX_CREATED_MACHINE_COUNT set counts; FAS_API_TOKEN and "
                "FAS_MINIMAL_TESTS are ignored)"
            ),
        ),
        (
            {"FAS_APP_NAME": "my-app", "FAS_STARTED_MACHINE_COUNT": ""},
            (
                "the built-in policy (no --config and no FAS_* count expression set; "
                "FAS_APP_NAME is ignored)"
            ),
        ),
    ],
)
def test_without_config_only_a_count_variable_selects_the_environment(
    environ: dict[str, str], why: str
) -> None:
    """A token, an app name, an address or a window alone keep the built-in policy."""
    assert choose_policy(None, environ).why == why


def test_every_count_expression_variable_selects_the_environment() -> None:
    """Each of the six count variables alone makes simulate read the FAS_* policy."""
    assert len(COUNT_VARIABLES) == 6
    for name in COUNT_VARIABLES:
        with pytest.raises(ConfigError, match="app name required") as info:
            choose_policy(None, {name: "2"})
        assert info.value.__notes__ == [
            (
                f"simulate reads its policy from the FAS_* variables because {name} "
                "sets a count; unset it (or give --config) to simulate another policy"
            )
        ]


def test_config_names_the_variables_it_takes_from_the_environment(
    tmp_path: Path,
) -> None:
    """--config: the header names FAS_* variables it used, and those ignored."""
    config = write(tmp_path / "a.yml", POLICY)
    environ = {
        "FAS_SCALE_DOWN_STABILIZATION": "5m",
        "FAS_STARTED_MACHINE_COUNT": "99",  # the file's value wins
        "FAS_API_TOKEN": "fo1_secret",
    }
    assert choose_policy(config, environ).why == (
        f"policy from {config} (--config), with FAS_SCALE_DOWN_STABILIZATION from "
        "the environment; FAS_API_TOKEN and FAS_STARTED_MACHINE_COUNT are ignored"
    )
    assert choose_policy(config, {}).why == f"policy from {config} (--config)"


def test_an_exported_token_does_not_switch_policy_and_the_header_says_so(
    tmp_path: Path,
) -> None:
    """FAS_API_TOKEN alone: the built-in policy runs; its value is never printed."""
    out = tmp_path / "out"
    code, stdout, stderr = simulate(
        "--duration", "1m", "--quiet", "--out", str(out),
        environ={"FAS_API_TOKEN": "fo1_secret-token"},
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    assert stdout.splitlines()[0] == (
        "flyautoscaler simulate: app sim-app, the built-in policy (no --config and "
        "no FAS_* count expression set; FAS_API_TOKEN is ignored)"
    )
    assert "fo1_secret-token" not in stdout
    assert read_rows(out / "timeseries.csv")[0][1] == "queue_depth"


# --- compare -----------------------------------------------------------------------


def run_alone(tmp_path: Path, config: str, load: str, name: str) -> Path:
    """Run one policy alone on *load* with capacity 5; return its folder."""
    out = tmp_path / name
    code, _, stderr = simulate(
        "--config", config, "--metrics", load, "--duration", "4m",
        "--capacity", "5", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    return out


def test_compare_runs_each_policy_as_it_runs_alone(tmp_path: Path) -> None:
    """Two policies on one load: the same numbers, CSVs and table as alone."""
    a = write(tmp_path / "a.yml", POLICY)
    b = write(tmp_path / "b.yml", WINDOW)
    load = write(tmp_path / "load.csv", SQUARE_WAVE)
    alone = {
        name: run_alone(tmp_path, c, load, name) for name, c in [("a", a), ("b", b)]
    }
    out = tmp_path / "both"
    code, stdout, stderr = simulate(
        "--config", a, "--compare", b, "--metrics", load, "--duration", "4m",
        "--capacity", "5", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert (code, stderr) == (0, "")
    data = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert [p["label"] for p in data["policies"]] == ["a", "b"]
    assert [p["timeseries"] for p in data["policies"]] == [
        "timeseries-a.csv",
        "timeseries-b.csv",
    ]
    assert (data["ticks"], data["tick_seconds"], data["capacity"]) == (16, 15, 5)
    summaries = {p["label"]: p["summary"] for p in data["policies"]}
    for name, folder in alone.items():
        assert summaries[name] == read_summary(folder)
        own = (folder / "timeseries.csv").read_text(encoding="utf-8")
        assert (out / f"timeseries-{name}.csv").read_text(encoding="utf-8") == own
    # The window holds the Machines through the dips: fewer flaps, more hours.
    assert summaries["b"]["flaps"] < summaries["a"]["flaps"]
    assert summaries["b"]["machine_seconds"] > summaries["a"]["machine_seconds"]
    table = {
        line[:34].strip(): line[34:].split()
        for line in stdout.splitlines()
        if line.startswith("  ") and line[34:].strip()
    }
    assert table[""] == ["a", "b"]
    assert table["Machine-hours"] == [
        f"{summaries[n]['machine_seconds'] / 3600:.2f}" for n in "ab"
    ]
    assert table["under-provisioned Machine-hours"] == [
        f"{summaries[n]['under_provisioned_machine_seconds'] / 3600:.2f}" for n in "ab"
    ]
    assert table["flaps per hour"] == [
        f"{summaries[n]['flaps_per_hour']:.1f}" for n in "ab"
    ]
    assert table["creates, destroys"] == ["0,", "0", "0,", "0"]
    assert "Fewest Machine-hours: a;" in stdout
    assert "fewest flaps per hour: b." in stdout
    assert "a: policy from" in stdout
    assert f"b: policy from {b} (--compare)" in stdout
    assert (out / "summary.txt").is_file()
    assert not (out / "summary.json").exists()
    if has_matplotlib():
        assert png_size(out / "chart.png") == (1100, 700)
    check_png(out / "chart.png")


def test_compare_refuses_policies_with_other_metrics(tmp_path: Path) -> None:
    """A compared policy on another metric: one error naming the file and metric."""
    a = write(tmp_path / "a.yml", POLICY)
    b = write(tmp_path / "b.yml", POLICY.replace("jobs", "tasks"))
    out = tmp_path / "out"
    code, stdout, stderr = simulate("--config", a, "--compare", b, "--out", str(out))
    assert code == 1
    assert stdout == ""
    assert stderr == (
        f"error: {b} (--compare) uses the metric 'tasks', which {a} does not: the "
        "policies compared run on one load, so they must use the same metrics\n"
    )
    assert not out.exists()
    extra = write(
        tmp_path / "c.yml",
        POLICY + "  - {type: prometheus, metric-name: other, "
        'address: "http://127.0.0.1:1", query: q}\n',
    )
    code, _, stderr = simulate("--config", extra, "--compare", a, "--out", str(out))
    assert code == 1
    assert f"{a} (--compare) does not use the metric 'other', which {extra}" in stderr


def test_compare_with_the_built_in_policy_first(tmp_path: Path) -> None:
    """Without --config the first policy is the built-in one, labelled so."""
    b = write(tmp_path / "b.yml", QUEUE + "interval: 30s\n")
    out = tmp_path / "out"
    code, stdout, _ = simulate(
        "--compare", b, "--compare", b, "--duration", "2m", "--quiet", "--out", str(out)
    )
    assert code == 0
    assert stdout.startswith("flyautoscaler simulate: 3 policies on the same load\n")
    assert "  built-in: the built-in policy (no --config" in stdout
    # The second policy's interval does not apply: the load's ticks are shared.
    assert (
        "its interval (30s) does not apply: every policy runs a pass every 15s"
    ) in stdout
    data = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert [p["label"] for p in data["policies"]] == ["built-in", "b", "b-2"]
    for label in ("built-in", "b", "b-2"):
        assert len(read_rows(out / f"timeseries-{label}.csv")[1]) == 8


# --- the chart ----------------------------------------------------------------------


def test_chart_is_a_png_of_the_documented_size(tmp_path: Path) -> None:
    """chart.png: a readable PNG, 1100 x 700, with a capacity and a window too."""
    if not has_matplotlib():
        pytest.skip("matplotlib is not installed")
    config = write(tmp_path / "w.yml", WINDOW)
    load = write(tmp_path / "load.csv", SQUARE_WAVE)
    out = run_alone(tmp_path, config, load, "w")
    assert png_size(out / "chart.png") == (1100, 700)
    assert (out / "chart.png").stat().st_size > 20_000


def test_shaded_spans_join_consecutive_ticks_of_a_rule() -> None:
    """Ticks whose pass applied a rule become spans, consecutive ones joined."""

    def row(t: float, *rules: str) -> TickRow:
        return TickRow(t, {}, 1, 1, 1, 1, 1, 1, 0, rules=rules)

    rows = [
        row(0),
        row(15, "scale_down_stabilization"),
        row(30, "scale_down_stabilization", "fallback"),
        row(45),
        row(60, "scale_down_stabilization"),
    ]
    assert _spans(rows, 15, "scale_down_stabilization") == [(15, 45), (60, 75)]
    assert _spans(rows, 15, "fallback") == [(30, 45)]
    assert _spans(rows, 15, "scale_up_stabilization") == []


# --- the tick table -----------------------------------------------------------------


def test_table_shows_only_passes_that_acted_unless_verbose(tmp_path: Path) -> None:
    """Default: the rows of passes that acted or failed, and a sentence saying so."""
    out = tmp_path / "out"
    code, stdout, _ = simulate("--duration", "20m", "--out", str(out))
    assert code == 0
    _, rows = read_rows(out / "timeseries.csv")
    acted = [
        r
        for r in rows
        if any(int(r[k]) for k in ("creates", "destroys", "starts", "stops"))
        or int(r["failures"]) + int(r["errors"])
    ]
    shown = [line for line in stdout.splitlines() if TICK_LINE.match(line)]
    assert 0 < len(shown) == len(acted) < len(rows)
    assert [line.split()[1] for line in shown] == [r["queue_depth"] for r in acted]
    assert (
        f"These are the {len(acted)} of {len(rows)} passes that created, destroyed, "
        "started or stopped Machines or failed; --verbose shows every pass."
    ) in stdout
    _, verbose, _ = simulate(
        "--duration", "20m", "--verbose", "--out", str(tmp_path / "v")
    )
    assert len([ln for ln in verbose.splitlines() if TICK_LINE.match(ln)]) == len(rows)
    assert "--verbose shows every pass" not in verbose


def test_a_run_that_never_acts_says_so(tmp_path: Path) -> None:
    """No pass acted: no table header, one sentence instead."""
    environ = {"FAS_APP_NAME": "calm", "FAS_STARTED_MACHINE_COUNT": "2"}
    code, stdout, _ = simulate(
        "--duration", "1m", "--out", str(tmp_path / "o"), environ=environ
    )
    assert code == 0
    assert "  No pass created, destroyed, started or stopped a Machine" in stdout
    assert "actions" not in stdout  # the table's header


def test_quiet_and_verbose_exclude_each_other() -> None:
    """--quiet --verbose is a usage error."""
    with pytest.raises(SystemExit) as info:
        parse("--quiet", "--verbose")
    assert info.value.code == 2


# --- the progress line ----------------------------------------------------------------


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        """Yes."""
        return True


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves *step* seconds each time it is read."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def run_with(
    stdout: io.StringIO, clock: Callable[[], float], tmp_path: Path, *argv: str
) -> str:
    """Run simulate writing to *stdout* with *clock*; return what it printed."""
    args = parse("--duration", "10m", "--out", str(tmp_path / "o"), *argv)
    code = run(args, environ={}, stdout=stdout, stderr=io.StringIO(), clock=clock)
    assert code == 0
    return stdout.getvalue()


def screen(text: str) -> list[str]:
    """Return the lines a terminal shows after printing *text* (\r returns)."""
    lines = []
    for raw in text.split("\n"):
        shown: list[str] = []
        for part in raw.split("\r"):  # each part overwrites from the first column
            shown[: len(part)] = part
        lines.append("".join(shown).rstrip())
    return lines


def test_progress_is_rewritten_in_place_on_a_terminal(tmp_path: Path) -> None:
    """A terminal: one line redrawn with \\r, gone from the screen at the end."""
    text = run_with(Terminal(), ticking(1.0), tmp_path)
    assert "\r  simulating: " in text
    assert "passes (97%)" in text  # drawn until the pass before the last
    assert "\x1b" not in text  # no escape codes, only \r and spaces
    assert "\r" not in text.partition("Summary: ")[2]
    seen = screen(text)
    assert not any("simulating" in line for line in seen)
    # What stays on the screen is what a pipe gets, less its progress lines.
    piped = run_with(io.StringIO(), ticking(0.001), tmp_path)
    assert [ln for ln in seen if "It ran" not in ln] == [
        ln.rstrip() for ln in piped.split("\n") if "It ran" not in ln
    ]


def test_progress_in_a_pipe_is_a_line_each_tenth(tmp_path: Path) -> None:
    """A pipe: whole lines, at most one per tenth of the run, no \\r."""
    text = run_with(io.StringIO(), ticking(1.0), tmp_path)
    assert "\r" not in text
    lines = [ln for ln in text.splitlines() if "simulating:" in ln]
    percents = [int(ln.split("(")[1].split("%")[0]) for ln in lines]
    assert 5 <= len(lines) <= 9
    assert percents == sorted(percents)
    assert len({p // 10 for p in percents}) == len(percents)
    assert lines[0].startswith("  simulating: ")
    assert "of 0:10:00 simulated" in lines[0]


def test_no_progress_for_a_quick_run_or_when_quiet(tmp_path: Path) -> None:
    """Under two seconds of real time, or with --quiet, no progress line."""
    assert "simulating:" not in run_with(Terminal(), ticking(0.001), tmp_path)
    quiet = run_with(Terminal(), ticking(1.0), tmp_path, "--quiet")
    assert "simulating:" not in quiet
    assert "\r" not in quiet


def test_compare_progress_names_the_policy(tmp_path: Path) -> None:
    """With several policies, the progress line says whose run it is."""
    b = write(tmp_path / "b.yml", QUEUE)
    text = run_with(io.StringIO(), ticking(1.0), tmp_path, "--compare", b)
    assert "  built-in: simulating: " in text
    assert "  b: simulating: " in text


# --- the output folder ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_default_output_folder_leaves_git_status_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in a checkout without --out: git status shows nothing new."""

    def git(*argv: str) -> str:
        done = subprocess.run(  # noqa: S603 - git, on a temporary repository
            ["git", *argv],  # noqa: S607 - git from PATH
            cwd=tmp_path, capture_output=True, text=True, check=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)},
        )  # fmt: skip
        return done.stdout

    git("init", "-q")
    monkeypatch.chdir(tmp_path)
    code, _, _ = simulate("--duration", "1m", "--quiet")
    assert code == 0
    (folder,) = tmp_path.glob("flyautoscaler-sim-*")
    assert (folder / "timeseries.csv").is_file()
    assert git("status", "--porcelain", "--untracked-files=all") == ""
    (tmp_path / "mine.txt").write_text("x", encoding="utf-8")  # git does see files
    assert git("status", "--porcelain") == "?? mine.txt\n"


def test_an_out_folder_given_gets_no_gitignore(tmp_path: Path) -> None:
    """--out DIR is the user's choice: nothing is added to it but the results."""
    out = tmp_path / "results"
    code, stdout, _ = simulate("--duration", "1m", "--quiet", "--out", str(out))
    assert code == 0
    assert not (out / ".gitignore").exists()
    assert "Git ignores" not in stdout


# --- the summary's sentences ----------------------------------------------------------


def test_each_target_change_is_a_sentence() -> None:
    """A first target, a change, a move there and back, one never reached."""
    assert TargetChange(0, (None, None), (3, 3), 1, 0).describe("created") == (
        "At 0:00:00 the first created target was 3; the fleet was inside it after "
        "that pass."
    )
    assert TargetChange(15, (2, 2), (2, 2), 2, 15).describe("started") == (
        "At 0:00:15 the started target moved away from 2 and back (after 2 moves); "
        "the fleet was inside it 15s later."
    )
    assert TargetChange(60, (2, 4), (5, 9), 1, None).describe("started") == (
        "At 0:01:00 the started target went from 2..4 to 5..9; the fleet had not "
        "reached it by the end."
    )


@pytest.mark.parametrize(
    ("reached", "sentence"),
    [
        ([], "No new started target asked the fleet to change."),
        (
            [None],
            (
                "The fleet was outside 1 new started target and did not reach it "
                "by the end."
            ),
        ),
        ([30], "The fleet was outside 1 new started target and reached it in 30s."),
        (
            [0, 0],
            (
                "The fleet was outside 2 new started targets and reached all of them "
                "within the pass that set them."
            ),
        ),
        (
            [0, 15, 45, None],
            (
                "The fleet was outside 4 new started targets and reached 3 of them: "
                "half within 15s, the slowest in 45s."
            ),
        ),
    ],
)
def test_how_fast_targets_were_reached_is_one_sentence(
    reached: list[float | None], sentence: str
) -> None:
    """The reach of a run's targets: how many, how many reached, how fast."""
    changes = tuple(
        TargetChange(15.0 * i, (1, 1), (2, 2), 1, r) for i, r in enumerate(reached)
    )
    times = sorted(r for r in reached if r is not None)
    reach = TargetReach(
        changes,
        times[len(times) // 2] if times else None,
        times[-1] if times else None,
    )
    assert reach.sentence("started") == sentence
