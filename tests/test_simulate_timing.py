"""Fly's real timing in the fakes and in ``flyautoscaler simulate``.

The fakes give each transition its own delay (a new Machine's boot, a cold
start, a resume, a stop, a suspend). Through the command: creates pace through
Fly's per-app create limit (a burst of 3, then 1 per second) and show in the
time series; new Machines boot before they are ``started``; a resume is
faster than a cold start; the documented defaults are the ones used. Nothing
here sleeps or measures real time: every run is on the simulated clock.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import threading
import time
from pathlib import Path

import pytest

import flyautoscaler as fas
from clock import FakeTime
from factories import machine
from flyautoscaler._collect import Gatherer, InstantCollector
from flyautoscaler.cli.simulate import add_arguments, run, run_simulation
from flyautoscaler.cli.simulate._report import format_seconds
from flyautoscaler.cli.simulate._run import (
    DEFAULT_BOOT_TIME,
    DEFAULT_RESUME_TIME,
    DEFAULT_START_TIME,
    DEFAULT_TRANSITION_DELAY,
    Timing,
)
from flyautoscaler.fly import FlapsHTTPClient, SessionPool
from flyautoscaler.testing import TRANSITIONS, FakeFlapsClient, FakeMachinesServer

TOKEN = "fo1_timing-token"  # noqa: S105 - the fake server's token


def launch_input() -> fas.LaunchMachineInput:
    """Return a launch input of the default group."""
    config = fas.MachineConfig(
        image="registry.fly.io/my-app:deployment-02",
        metadata={"fly_process_group": "app"},
    )
    return fas.LaunchMachineInput(config)


# --- the fakes' per-transition delays ---------------------------------------------


def test_each_transition_takes_its_own_delay(fake_time: FakeTime) -> None:
    """create, start, resume, stop and suspend each wait their own delay."""
    delays = {"create": 10.0, "start": 2.0, "resume": 0.3, "stop": 5.0, "suspend": 4.0}
    client = FakeFlapsClient(
        [machine("s", "stopped"), machine("p", "suspended"), machine("r", "started")],
        transition_delays=delays,
        clock=fake_time.clock,
    )
    new = client.launch(launch_input())
    client.start("s")
    client.start("p")
    client.stop(fas.StopMachineInput("r"))
    began = fake_time.now

    def states() -> dict[str, str]:
        return {m.id: m.state for m in client.machines}

    assert states() == {
        "s": "starting",
        "p": "starting",
        "r": "stopping",
        new.id: "starting",
    }
    fake_time.now = began + 0.3
    assert states()["p"] == "started"
    assert states()["s"] == "starting"
    fake_time.now = began + 2.0
    assert states()["s"] == "started"
    fake_time.now = began + 5.0
    assert states()["r"] == "stopped"
    assert states()[new.id] == "starting"
    fake_time.now = began + 10.0
    assert states()[new.id] == "started"
    client.suspend("s")
    assert states()["s"] == "suspending"
    fake_time.now += 4.0
    assert states()["s"] == "suspended"


def test_transition_delay_is_the_default_of_the_others(fake_time: FakeTime) -> None:
    """A transition without its own delay takes transition_delay."""
    client = FakeFlapsClient(
        [machine("s", "stopped")],
        transition_delay=7.0,
        transition_delays={"create": 1.0},
        clock=fake_time.clock,
    )
    assert client.transition_delays == {
        "create": 1.0,
        "start": 7.0,
        "resume": 7.0,
        "stop": 7.0,
        "suspend": 7.0,
    }
    assert client.delay("start") == 7.0
    client.start("s")
    fake_time.now += 6.9
    assert client.machine("s").state == "starting"
    fake_time.now += 0.1
    assert client.machine("s").state == "started"


@pytest.mark.parametrize(
    ("delays", "message"),
    [
        ({"boot": 1.0}, "unknown transitions ['boot']"),
        ({"start": -1.0}, "transition_delays['start'] must be >= 0"),
        ({"resume": float("nan")}, "transition_delays['resume'] must be >= 0"),
    ],
)
def test_bad_transition_delays_are_refused(
    delays: dict[str, float], message: str
) -> None:
    """An unknown transition or a negative delay is a ValueError naming it."""
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        FakeFlapsClient(transition_delays=delays)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        FakeMachinesServer(token=TOKEN, transition_delays=delays)


def test_server_apps_get_the_delays(fake_time: FakeTime) -> None:
    """FakeMachinesServer hands its transition_delays to every app's table."""
    server = FakeMachinesServer(
        token=TOKEN,
        transition_delay=3.0,
        transition_delays={"resume": 0.5},
        clock=fake_time.clock,
    )
    table = server.add_app("my-app", machines=[machine("p", "suspended")])
    assert table.transition_delays == dict.fromkeys(TRANSITIONS, 3.0) | {"resume": 0.5}
    table.start("p")
    fake_time.now += 0.5
    assert server.machines("my-app")[0].state == "started"


def test_server_without_a_request_log_keeps_counts(fake_time: FakeTime) -> None:
    """record_requests=False: no request log (a long run's memory), counts kept."""
    with FakeMachinesServer(
        token=TOKEN, clock=fake_time.clock, record_requests=False
    ) as server:
        server.add_app("my-app", machines=[machine("m", "stopped")])
        client = FlapsHTTPClient(
            "my-app", TOKEN, base_url=server.url, rate_limiter=None
        )
        with client:
            assert [m.id for m in client.list()] == ["m"]
            assert [m.id for m in client.list()] == ["m"]  # the cached JSON
            client.start("m")
            assert client.list()[0].state == "started"
        assert server.requests == []
        assert server.count("list") == 3
        assert server.count("start") == 1


def test_session_pool_can_ignore_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SessionPool(trust_env=False) makes sessions that read no proxy settings."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    default, loopback = SessionPool(), SessionPool(trust_env=False)
    try:
        assert default.get().trust_env is True
        assert loopback.get().trust_env is False
    finally:
        default.close()
        loopback.close()


def test_an_instant_collector_is_asked_on_the_calling_thread() -> None:
    """With a deadline, an InstantCollector runs inline; the others on threads."""
    seen: dict[str, threading.Thread] = {}

    class Instant(InstantCollector):
        name = "instant"

        def collect_metric(self, app_name: str) -> float:
            seen[self.name] = threading.current_thread()
            return 1.0

    class Threaded:
        name = "threaded"

        def collect_metric(self, app_name: str) -> float:
            seen[self.name] = threading.current_thread()
            return 2.0

    collection = Gatherer().collect(
        [Threaded(), Instant()], "app", deadline=time.monotonic() + 60
    )
    assert dict(collection.values) == {"threaded": 2.0, "instant": 1.0}
    assert list(collection.values) == ["threaded", "instant"]
    assert seen["instant"] is threading.current_thread()
    assert seen["threaded"] is not threading.current_thread()


# --- through the command -------------------------------------------------------------

JOBS = {
    "FAS_APP_NAME": "timed",
    "FAS_STARTED_MACHINE_COUNT": "ceil(jobs / 5)",
    "FAS_PROMETHEUS_METRIC_NAME": "jobs",
    "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:1",
    "FAS_PROMETHEUS_QUERY": "unused",
}
#: A policy that creates what it starts: ceil(jobs / 5) Machines, at least 10.
CREATING = JOBS | {"FAS_CREATED_MACHINE_COUNT": "max(10, ceil(jobs / 5))"}


def parse(*argv: str) -> argparse.Namespace:
    """Parse *argv* with simulate's options."""
    parser = argparse.ArgumentParser(prog="flyautoscaler simulate")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def run_rows(
    tmp_path: Path, load: str, *argv: str, environ: dict[str, str]
) -> list[dict[str, str]]:
    """Run simulate on the *load* CSV; return timeseries.csv's rows."""
    metrics = tmp_path / "load.csv"
    metrics.write_text(load, encoding="utf-8")
    out = tmp_path / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    args = parse("--metrics", str(metrics), "--out", str(out), "--quiet", *argv)
    code = run(args, environ=environ, stdout=stdout, stderr=stderr)
    assert (code, stderr.getvalue()) == (0, "")
    with (out / "timeseries.csv").open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def ints(rows: list[dict[str, str]], column: str) -> list[int]:
    """Return a column of whole numbers."""
    return [int(row[column]) for row in rows]


def test_a_spike_of_30_creates_is_paced_by_the_create_limit(tmp_path: Path) -> None:
    """30 new Machines: 3 at once, then 1 per 1.05 s, across three ticks."""
    rows = run_rows(
        tmp_path, "time,jobs\n0,5\n30,200\n", "--duration", "2m", environ=CREATING
    )
    times = [float(row["time"]) for row in rows]
    machines = ints(rows, "machines")
    creates = ints(rows, "creates")
    assert times[:6] == [0, 15, 30, 45, 60, 75]
    # 3 at 0:30 (the burst), 14 more by 0:45 (one every 1.05 s), all 30 by 1:00.
    assert machines[:6] == [10, 10, 13, 27, 40, 40]
    assert creates[:6] == [0, 0, 3, 14, 13, 0]
    for t, count, made in zip(
        times, machines, itertools.accumulate(creates), strict=True
    ):
        assert count == 10 + made  # each row: the last one's plus its creates
        assert made <= 3 + max(0.0, t - 30)  # Fly: a burst of 3, then 1/s
    assert rows[3]["notes"].startswith("no pass of its own: the pass of 0:00:30")
    assert rows[3]["min_started"] == "40"  # the running pass's targets
    assert sum(ints(rows, "failures")) == sum(ints(rows, "errors")) == 0


def test_a_pass_that_runs_out_of_time_leaves_the_rest_to_the_next(
    tmp_path: Path,
) -> None:
    """40 new Machines: the 30 s pass timeout stops at 31; the next pass ends it."""
    rows = run_rows(
        tmp_path, "time,jobs\n0,5\n30,250\n", "--duration", "3m", environ=CREATING
    )
    machines = ints(rows, "machines")
    # 0:30 (burst 3), 0:45 (+14); the pass ends at 0:59.4 out of time, 31 made;
    # the next pass, at 1:00, makes the last 9 as the limit allows.
    assert machines[2:4] == [13, 27]
    assert machines[4] == 10 + 31
    assert max(machines) == 50
    assert rows[2]["errors"] == "1"
    assert "timed out" in rows[2]["notes"]
    made = 0
    for row in rows:
        made += int(row["creates"])
        assert made <= 3 + max(0.0, float(row["time"]) - 30)


@pytest.mark.parametrize(
    ("load", "argv"),
    [
        # --boot-time 20s, 15 s ticks: created at 0:15, starting at 0:30, up at 0:45.
        ("time,jobs\n0,50\n15,65\n", ["--duration", "1m", "--boot-time", "20s"]),
        # The default, 10 s, at 5 s ticks: created at 0:05, up at 0:15.
        ("time,jobs\n0,50\n5,65\n", ["--duration", "20s", "--tick", "5s"]),
    ],
)
def test_new_machines_boot_before_they_are_started(
    tmp_path: Path, load: str, argv: list[str]
) -> None:
    """New Machines are starting for the boot time, then started."""
    rows = run_rows(tmp_path, load, *argv, "--started", "10", environ=CREATING)
    assert ints(rows, "machines") == [10, 13, 13, 13]
    assert ints(rows, "creates") == [0, 3, 0, 0]
    assert ints(rows, "starting") == [0, 3, 3, 0]
    assert ints(rows, "started") == [10, 10, 10, 13]


SUSPEND_LOAD = "time,jobs\n0,25\n10,5\n30,25\n"


@pytest.mark.parametrize(
    ("mode", "after_rise"),
    [
        # A cold start takes 8 s here: the 4 Machines are starting at 0:35.
        ("stop", [1, 1, 5, 5]),
        # A resume takes 0.3 s: all 5 are started at 0:35.
        ("suspend", [1, 5, 5, 5]),
    ],
)
def test_a_resume_is_faster_than_a_cold_start(
    tmp_path: Path, mode: str, after_rise: list[int]
) -> None:
    """Suspended Machines resume in 0.3 s; stopped ones take --start-time."""
    rows = run_rows(
        tmp_path, SUSPEND_LOAD,
        "--duration", "50s", "--tick", "5s", "--start-time", "8s",
        "--started", "5",
        environ=JOBS | {"FAS_STOP_MODE": mode},
    )  # fmt: skip
    assert [float(r["time"]) for r in rows] == [5.0 * k for k in range(10)]
    # 4 of 5 stopped or suspended at 0:10 (5 s each), 4 started again at 0:30.
    assert ints(rows, "stops") == [0, 0, 4, 0, 0, 0, 0, 0, 0, 0]
    assert ints(rows, "starts") == [0, 0, 0, 0, 0, 0, 4, 0, 0, 0]
    assert ints(rows, "started")[:6] == [5, 5, 1, 1, 1, 1]
    running = [int(r["started"]) + int(r["starting"]) for r in rows]
    assert running[6:] == [5, 5, 5, 5]
    assert ints(rows, "started")[6:] == after_rise


DOCS = Path(__file__).resolve().parent.parent / "docs" / "simulate.md"
DEFAULTS = {
    "--boot-time": DEFAULT_BOOT_TIME,
    "--start-time": DEFAULT_START_TIME,
    "--resume-time": DEFAULT_RESUME_TIME,
    "--transition-delay": DEFAULT_TRANSITION_DELAY,
}


def test_the_documented_defaults_are_the_defaults_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/simulate.md's two tables, --help and Timing() give the same times."""
    text = DOCS.read_text(encoding="utf-8")
    for option, seconds in DEFAULTS.items():
        cells = [
            [cell.strip() for cell in line.split("|")[1:3]]
            for line in text.splitlines()
            if line.startswith(f"| `{option}")
        ]
        assert len(cells) == 2, option  # the options table and "Fly's timing"
        for _, default in cells:
            assert default == f"`{format_seconds(seconds)}`", option
    with pytest.raises(SystemExit):
        parse("--help")
    help_text = " ".join(capsys.readouterr().out.split())
    for option, seconds in DEFAULTS.items():
        assert f"{option} DURATION" in help_text
        assert f"(default: {format_seconds(seconds)}" in help_text
    args = parse()
    assert (args.boot_time, args.start_time, args.resume_time) == (None, None, None)
    assert args.transition_delay is None
    assert (
        Timing.resolve()
        == Timing()
        == Timing(
            boot=DEFAULT_BOOT_TIME,
            start=DEFAULT_START_TIME,
            resume=DEFAULT_RESUME_TIME,
            stop=DEFAULT_TRANSITION_DELAY,
            suspend=DEFAULT_TRANSITION_DELAY,
        )
    )


def test_transition_delay_alone_times_every_transition() -> None:
    """--transition-delay given: it is every time not given on its own."""
    assert Timing.resolve(transition_delay=0) == Timing.uniform(0)
    assert Timing.resolve(transition_delay=7, resume=1) == Timing(7, 7, 1, 7, 7)
    assert Timing.resolve(boot=20) == Timing(boot=20)
    with pytest.raises(ValueError, match="boot must be a finite number"):
        Timing(boot=-1)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("boot_time", "boot_time must be"),
        ("start_time", "start_time must be"),
        ("resume_time", "resume_time must be"),
        ("transition_delay", "transition_delay must be"),
    ],
)
def test_run_simulation_refuses_a_negative_time(option: str, message: str) -> None:
    """run_simulation names the time that is negative."""
    with pytest.raises(ValueError, match=message):
        run_simulation(jobs_policy, {"jobs": [1.0]}, **{option: -1.0})  # type: ignore[arg-type]


def jobs_policy(collectors: list[fas.MetricCollector]) -> fas.Reconciler:
    """ceil(jobs / 5) started Machines."""
    return fas.Reconciler(
        min_started_machine_n="ceil(jobs / 5)",
        max_started_machine_n="ceil(jobs / 5)",
        collectors=collectors,
    )


def test_the_configured_timeout_is_the_simulated_passes(tmp_path):
    """FAS_TIMEOUT becomes the timeout of the simulated passes (was 30 s always)."""
    from flyautoscaler.cli.simulate._policy import choose_policy  # noqa: PLC0415

    env = {
        "FAS_APP_NAME": "my-app",
        "FAS_STARTED_MACHINE_COUNT": "jobs",
        "FAS_TIMEOUT": "7s",
        "FAS_PROMETHEUS_METRIC_NAME": "jobs",
        "FAS_PROMETHEUS_ADDRESS": "http://unused",
        "FAS_PROMETHEUS_QUERY": "unused",
    }
    assert choose_policy(None, env).policy.reconcile_timeout == 7.0
