"""The planner: every scaling rule, on values alone (no client, no fake)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flyautoscaler as fas
from factories import RUNNING, fleets, machine
from flyautoscaler._plan import (
    Create,
    Destroy,
    Fleet,
    Start,
    Stop,
    Targets,
    bound_targets,
    plan,
    plan_started,
)


def fleet(*machines: fas.Machine) -> Fleet:
    """The watched fleet of group 'app' among *machines*."""
    return Fleet.watched(machines, "app")


def ids(machines: tuple[fas.Machine, ...]) -> list[str]:
    """The ids of *machines*, in order."""
    return [m.id for m in machines]


# --- the module is pure ----------------------------------------------------------


def test_planner_imports_no_io():
    """_plan.py imports neither threading, requests, logging nor time."""
    source = Path(fas.__file__).with_name("_plan.py").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    forbidden = {"threading", "requests", "logging", "time", "socket", "urllib3"}
    assert not imported & forbidden


# --- targets ----------------------------------------------------------------------


def test_created_targets_are_at_least_one():
    """A created target of 0 becomes 1, and the plan says why."""
    targets, reasons = bound_targets(Targets(min_created=0, max_created=0))
    assert (targets.min_created, targets.max_created) == (1, 1)
    assert [r.rule for r in reasons] == ["created_at_least_one"] * 2


def test_min_above_max_wins():
    """An inverted band raises the max to the min, with a reason."""
    targets, reasons = bound_targets(Targets(min_started=5, max_started=3))
    assert targets.max_started == 5
    assert [r.rule for r in reasons] == ["min_above_max"]
    assert "min started count 5 is above max started count 3" in reasons[0].text


def test_unset_targets_stay_unset():
    """None means no bound, and no rule acts on it."""
    targets, reasons = bound_targets(Targets())
    assert targets == Targets()
    assert reasons == []


# --- the created step ------------------------------------------------------------


def test_nothing_to_do():
    """Counts inside every band: no step."""
    p = plan(
        Targets(1, 3, 1, 2),
        fleet(machine("1", "started"), machine("2", "stopped")),
    )
    assert p.steps == ()
    assert p.reasons == ()


def test_create_clones_a_started_machine():
    """Below min created: create the difference, cloning the first started one."""
    p = plan(Targets(min_created=3), fleet(machine("1"), machine("2", "started")))
    step = p.created_step
    assert isinstance(step, Create)
    assert (step.n, step.started, step.source.id) == (1, 1, "2")
    assert step.config.image == "registry.fly.io/my-app:deployment-01@sha256:abc"


def test_create_without_a_config_raises():
    """No Machine with a config to clone: NoMachineToCloneError."""
    with pytest.raises(fas.NoMachineToCloneError):
        plan(Targets(min_created=2), fleet(machine("1", with_config=False)))


def test_creates_beyond_max_started_launch_stopped():
    """Room for started Machines is max started minus the started count."""
    p = plan(
        Targets(min_created=3, max_started=2),
        fleet(machine("1", "started")),
    )
    step = p.created_step
    assert isinstance(step, Create)
    assert (step.n, step.started) == (2, 1)
    assert [r.rule for r in p.reasons] == ["create_stopped_beyond_max_started"]
    assert p.started_step is None  # nothing to stop: no serving Machine stops


def test_initial_state_stopped_launches_every_create_stopped():
    """initial_state 'stopped': every create has skip_launch; starts follow."""
    p = plan(
        Targets(min_created=4, min_started=3),
        fleet(machine("1", "stopped")),
        initial_state="stopped",
    )
    assert isinstance(p.created_step, Create)
    assert p.created_step.started == 0
    step = p.started_step
    assert isinstance(step, Start)
    assert (step.n, ids(step.candidates), step.new) == (3, ["1"], 3)


def test_destroy_order_and_the_last_machine():
    """Destroy idle states first, lowest id first; never the last Machine."""
    machines = (
        machine("5", "started"),
        machine("4", "created"),
        machine("3", "stopped"),
        machine("2", "failed"),
        machine("1", "stopped"),
    )
    p = plan(Targets(max_created=0), fleet(*machines))
    step = p.created_step
    assert isinstance(step, Destroy)
    assert step.n == 4
    assert ids(step.candidates) == ["2", "1", "3", "4", "5"]
    assert [r.rule for r in p.reasons] == ["created_at_least_one"]


def test_destroy_of_one_machine_plans_nothing():
    """One Machine left and a max of 0: nothing is destroyed."""
    p = plan(Targets(max_created=0), fleet(machine("1", "started")))
    assert p.created_step is None


# --- the started step ------------------------------------------------------------


def test_start_order():
    """Suspended (they resume fastest), then stopped, then created; by id in each."""
    f = fleet(
        machine("4", "created"),
        machine("3", "suspended"),
        machine("2", "stopped"),
        machine("1", "started"),
    )
    step, reasons = plan_started(Targets(min_started=4), f)
    assert isinstance(step, Start)
    assert step.n == 3
    assert ids(step.candidates) == ["3", "2", "4"]
    assert reasons == []


def test_not_enough_to_start_is_a_reason():
    """Fewer candidates than needed: the plan says so."""
    step, reasons = plan_started(Targets(min_started=3), fleet(machine("1", "started")))
    assert isinstance(step, Start)
    assert step.candidates == ()
    assert [r.rule for r in reasons] == ["not_enough_to_start"]


def test_stop_only_started_machines():
    """Stop candidates are started Machines; starting ones count but stay."""
    f = fleet(
        machine("3", "starting"),
        machine("2", "started"),
        machine("1", "started"),
    )
    step, _ = plan_started(Targets(max_started=1), f)
    assert isinstance(step, Stop)
    assert step.n == 2
    assert ids(step.candidates) == ["1", "2"]


def test_destroying_a_running_machine_counts_for_the_started_step():
    """The started step is planned on the fleet the destroys leave."""
    f = fleet(machine("1", "started"), machine("2", "started"))
    p = plan(Targets(max_created=1, min_started=1, max_started=1), f)
    assert isinstance(p.created_step, Destroy)
    assert p.started_step is None  # one started Machine is left: in range


# --- properties ------------------------------------------------------------------


counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10**12))


@given(
    listed=fleets(),
    targets=st.builds(Targets, counts, counts, counts, counts),
    initial=st.sampled_from(["started", "stopped"]),
)
def test_plan_properties(listed, targets, initial):
    """Any fleet and targets: the plan is safe, in its group, never too large."""
    f = fleet(*listed)
    watched = {m.id for m in f.machines}
    try:
        p = plan(targets, f, initial_state=initial)
    except fas.NoMachineToCloneError:
        assert all(m.config is None for m in f.machines)
        return
    bounded = p.targets
    step = p.created_step
    if isinstance(step, Destroy):
        # Never below one Machine, never more than the excess, only watched ones.
        assert 1 <= step.n <= f.created_count - 1
        assert bounded.max_created is not None
        assert step.n <= f.created_count - bounded.max_created
        assert {m.id for m in step.candidates} == watched
    if isinstance(step, Create):
        assert bounded.min_created is not None
        assert step.n == bounded.min_created - f.created_count
        assert 0 <= step.started <= step.n
        assert step.source.id in watched
        if bounded.max_started is not None:
            assert f.started_count + step.started <= max(
                bounded.max_started, f.started_count
            )
    started = p.started_step
    if isinstance(started, Start):
        assert {m.id for m in started.candidates} <= watched
        assert all(m.state not in RUNNING for m in started.candidates)
    if isinstance(started, Stop):
        assert {m.id for m in started.candidates} <= watched
        assert all(m.state == "started" for m in started.candidates)
        assert started.n <= sum(1 for m in f.machines if m.state in RUNNING)
    for s in p.steps:
        assert s.n >= 1
