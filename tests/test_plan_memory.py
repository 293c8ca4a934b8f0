"""The planner's rules with memory: windows, step limits, fallback, ranking, suspend.

Every test drives :func:`plan` pass after pass with an explicit time, as the
reconciler does with its clock, carrying the memory each plan returns.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flyautoscaler as fas
from factories import machine
from flyautoscaler._plan import (
    MAX_REMEMBERED,
    Behaviour,
    Create,
    Destroy,
    Fleet,
    Memory,
    Plan,
    Ranking,
    Reason,
    Start,
    StepLimit,
    Stop,
    Targets,
    fallback_targets,
    plan,
    plan_started,
)
from flyautoscaler._validation import parse_step


def fleet(*machines: fas.Machine) -> Fleet:
    """The watched fleet of group 'app' among *machines*."""
    return Fleet.watched(machines, "app")


def started(n: int) -> Fleet:
    """A fleet of *n* started Machines, ids 01, 02, ..."""
    return fleet(*(machine(f"{i:02d}", "started") for i in range(1, n + 1)))


def ids(machines: tuple[fas.Machine, ...]) -> list[str]:
    """The ids of *machines*, in order."""
    return [m.id for m in machines]


def both(n: int) -> Targets:
    """min = max started = *n*: the docs' ``ceil(jobs / 5)`` rule."""
    return Targets(min_started=n, max_started=n)


class Passes:
    """Plans pass after pass, carrying the memory, at the times given."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.memory = Memory()

    def at(self, now: float, raw: Targets, current: Fleet) -> Plan:
        """Plan a pass at *now* on *current*; keep the memory it leaves."""
        p = plan(raw, current, behaviour=self.behaviour, memory=self.memory, now=now)
        self.memory = p.memory
        return p


# --- stabilization ---------------------------------------------------------------


def test_scale_down_window_holds_the_highest_max_within_it():
    """A drop is not acted on until the window has passed since the high target."""
    passes = Passes(Behaviour(scale_down_window=300))
    assert passes.at(0, both(10), started(10)).started_step is None
    held = passes.at(60, both(4), started(10))
    assert held.targets.max_started == 10
    assert held.started_step is None
    assert held.reasons == (
        Reason(
            "scale_down_stabilization",
            "scale-down stabilization held max started at 10 (raw 4, 5m window)",
        ),
    )
    assert passes.at(299, both(4), started(10)).started_step is None
    # At 301 s the 10 computed at 0 s is out of the window; the 4s are not.
    after = passes.at(301, both(4), started(10))
    assert after.targets.max_started == 4
    assert isinstance(after.started_step, Stop)
    assert after.started_step.n == 6
    assert after.reasons == ()


def test_scale_down_window_never_delays_a_scale_up():
    """A rise is acted on at once; only the max is held."""
    passes = Passes(Behaviour(scale_down_window=300))
    passes.at(0, both(2), started(2))
    up = passes.at(15, both(6), started(2))
    assert up.targets == both(6)
    assert isinstance(up.started_step, Start)
    assert up.started_step.n == 4


def test_scale_up_window_holds_the_lowest_min_within_it():
    """A spike shorter than the scale-up window starts nothing."""
    passes = Passes(Behaviour(scale_up_window=60))
    passes.at(0, both(2), started(2))
    spike = passes.at(30, both(8), started(2))
    assert spike.targets.min_started == 2
    assert spike.started_step is None
    assert [r.text for r in spike.reasons] == [
        "scale-up stabilization held min started at 2 (raw 8, 1m window)"
    ]
    # The 2 computed at 0 s leaves the window at 61 s: the rise is acted on.
    later = passes.at(61, both(8), started(2))
    assert later.targets.min_started == 8
    assert isinstance(later.started_step, Start)


def test_scale_up_window_never_delays_a_scale_down():
    """The scale-up window leaves the max alone: a drop is acted on at once."""
    passes = Passes(Behaviour(scale_up_window=600))
    passes.at(0, both(8), started(8))
    down = passes.at(15, both(3), started(8))
    assert down.targets.max_started == 3
    assert isinstance(down.started_step, Stop)
    assert down.started_step.n == 5


def test_windows_are_per_dimension():
    """Created and started targets are held each on their own history."""
    passes = Passes(Behaviour(scale_down_window=120))
    current = started(6)
    passes.at(0, Targets(max_created=6, max_started=6), current)
    p = passes.at(30, Targets(max_created=6, max_started=2), current)
    assert (p.targets.max_created, p.targets.max_started) == (6, 6)
    assert [r.rule for r in p.reasons] == ["scale_down_stabilization"]
    assert "max started at 6 (raw 2, 2m window)" in p.reasons[0].text


def test_zero_windows_are_the_go_behaviour():
    """With no window every pass acts on its own targets, as the Go original."""
    passes = Passes(Behaviour())
    passes.at(0, both(10), started(10))
    p = passes.at(15, both(4), started(10))
    assert p == plan(both(4), started(10), now=15)
    assert isinstance(p.started_step, Stop)
    assert p.memory.computed == ((15, both(4)),)  # nothing kept beyond the pass


def test_memory_keeps_only_the_longest_window():
    """Targets older than the longest window are dropped from the memory."""
    passes = Passes(Behaviour(scale_down_window=100, scale_up_window=30))
    for t in range(0, 1000, 10):
        passes.at(t, both(3), started(3))
    times = [t for t, _ in passes.memory.computed]
    assert times == list(range(890, 1000, 10))


def test_memory_is_bounded_whatever_the_pass_rate():
    """A window far longer than the passes keeps at most MAX_REMEMBERED targets."""
    memory = Memory()
    for i in range(MAX_REMEMBERED + 50):
        memory = memory.remember(i * 0.001, both(1), 3600)
    assert len(memory.computed) == MAX_REMEMBERED
    assert memory.computed[-1][0] == pytest.approx((MAX_REMEMBERED + 49) * 0.001)


def test_a_clock_going_back_forgets_the_future():
    """Targets stamped after *now* (a reset clock) are not held against it."""
    memory = Memory().remember(1000, both(9), 300)
    p = plan(
        both(2),
        started(9),
        behaviour=Behaviour(scale_down_window=300),
        memory=memory,
        now=10,
    )
    assert p.targets.max_started == 2


# Targets where every bound is set and min <= max, as bound_targets leaves them.
@st.composite
def target_runs(draw: st.DrawFn) -> list[tuple[float, Targets]]:
    """A run of (time, targets), times increasing."""
    n = draw(st.integers(1, 30))
    out = []
    t = 0.0
    for _ in range(n):
        t += draw(st.floats(0, 120))
        low_c = draw(st.integers(1, 20))
        low_s = draw(st.integers(0, 20))
        out.append(
            (
                t,
                Targets(
                    low_c,
                    low_c + draw(st.integers(0, 5)),
                    low_s,
                    low_s + draw(st.integers(0, 5)),
                ),
            )
        )
    return out


@given(
    run=target_runs(),
    down=st.sampled_from([0, 30, 300]),
    up=st.sampled_from([0, 30, 300]),
)
def test_windows_only_widen_the_range(
    run: list[tuple[float, Targets]], down: float, up: float
):
    """Stabilized min <= raw min <= raw max <= stabilized max, every pass."""
    passes = Passes(Behaviour(scale_down_window=down, scale_up_window=up))
    for t, raw in run:
        applied = passes.at(t, raw, started(3)).targets
        assert applied.min_started is not None
        assert applied.max_started is not None
        assert applied.min_created is not None
        assert applied.max_created is not None
        assert applied.min_started <= (raw.min_started or 0)
        assert (raw.max_started or 0) <= applied.max_started
        assert applied.min_created <= (raw.min_created or 0)
        assert (raw.max_created or 0) <= applied.max_created


# --- step limits -----------------------------------------------------------------


def limits(up: object = None, down: object = None, **more: object) -> Behaviour:
    """A behaviour with step limits parsed as the reconciler parses them."""
    return Behaviour(
        max_up_step=parse_step(up, "max_scale_up_step", field="x"),
        max_down_step=parse_step(down, "max_scale_down_step", field="x"),
        **more,  # type: ignore[arg-type]
    )


def test_step_limit_caps_creates_and_says_so():
    """10 missing Machines and a step of 4: 4 are created this pass."""
    p = plan(Targets(min_created=12), started(2), behaviour=limits(up=4))
    assert isinstance(p.created_step, Create)
    assert p.created_step.n == 4
    assert [r.text for r in p.reasons] == [
        "creates 4 of 10 Machines this pass: max-scale-up-step is 4"
    ]


def test_percent_step_is_of_the_current_count_rounded_up():
    """50% of 5 created is 3 (rounded up); 50% of 0 started is still 1."""
    p = plan(Targets(min_created=20), started(5), behaviour=limits(up="50%"))
    assert isinstance(p.created_step, Create)
    assert p.created_step.n == 3
    assert "max-scale-up-step is 50% of 5" in p.reasons[0].text
    none_started = fleet(*(machine(f"{i}", "stopped") for i in range(5)))
    step, _ = plan_started(
        Targets(min_started=5), none_started, behaviour=limits(up="50%")
    )
    assert isinstance(step, Start)
    assert step.n == 1


def test_step_limit_caps_destroys_stops_and_starts():
    """Each direction has its own limit; each action kind is capped by it."""
    destroy = plan(Targets(max_created=2), started(10), behaviour=limits(down=3))
    assert isinstance(destroy.created_step, Destroy)
    assert destroy.created_step.n == 3
    stop = plan(both(2), started(10), behaviour=limits(down="20%"))
    assert isinstance(stop.started_step, Stop)
    assert stop.started_step.n == 2
    assert stop.reasons[-1].rule == "max_scale_down_step"
    stopped = fleet(*(machine(f"{i}", "stopped") for i in range(10)))
    start = plan(both(10), stopped, behaviour=limits(up=2, down=1))
    assert isinstance(start.started_step, Start)
    assert start.started_step.n == 2


def test_up_limit_does_not_cap_scale_down():
    """A scale-up step limit leaves stops alone, and the reverse."""
    stop = plan(both(1), started(9), behaviour=limits(up=1))
    assert isinstance(stop.started_step, Stop)
    assert stop.started_step.n == 8
    create = plan(Targets(min_created=9), started(1), behaviour=limits(down=1))
    assert isinstance(create.created_step, Create)
    assert create.created_step.n == 8


def test_capped_creates_still_launch_stopped_beyond_max_started():
    """The limit applies first; the started/stopped split is of what is created."""
    p = plan(Targets(min_created=10, max_started=3), started(2), behaviour=limits(up=4))
    assert isinstance(p.created_step, Create)
    assert (p.created_step.n, p.created_step.started) == (4, 1)


def test_step_limit_reasons_survive_replanning_the_started_step():
    """The created step's reasons stay when the started step is planned again."""
    p = plan(Targets(min_created=12, min_started=12), started(2), behaviour=limits(4))
    created_reasons = [r.text for r in p.reasons if "creates" in r.text]
    again = p.with_started_step(*plan_started(p.targets, started(6)))
    assert [r.text for r in again.reasons if "creates" in r.text] == created_reasons


def test_step_limit_values():
    """StepLimit.of: a count is itself; a percent rounds up and is at least 1."""
    assert StepLimit(count=4).of(100) == 4
    assert StepLimit(percent=50).of(5) == 3
    assert StepLimit(percent=10).of(10) == 1
    assert StepLimit(percent=10).of(0) == 1
    assert StepLimit(percent=200).of(3) == 6
    assert str(StepLimit(percent=12.5)) == "12.5%"


# --- fallback --------------------------------------------------------------------


def test_fallback_applies_after_that_many_failed_passes():
    """fallback_after=2: passes 1 and 2 hold, pass 3 falls back."""
    behaviour = Behaviour(fallback_after=2, fallback_started=3)
    memory = Memory()
    seen = []
    for _ in range(4):
        memory = memory.failed()
        seen.append(fallback_targets(behaviour, memory))
    expected = Targets(min_created=3, min_started=3, max_started=3)
    assert seen == [None, None, expected, expected]


def test_no_fallback_configured_always_holds():
    """Without a fallback count a failing pass holds, however many fail."""
    memory = Memory()
    for _ in range(50):
        memory = memory.failed()
    assert fallback_targets(Behaviour(), memory) is None
    assert fallback_targets(Behaviour(fallback_after=3), memory) is None


def test_a_fallback_pass_scales_to_the_count_and_destroys_nothing():
    """Fallback: started min = max = the count; created at least it; no destroy."""
    behaviour = Behaviour(fallback_after=1, fallback_started=2)
    memory = Memory().failed().failed()
    targets = fallback_targets(behaviour, memory)
    assert targets is not None
    why = Reason("fallback", "metrics failed")
    p = plan(targets, started(6), behaviour=behaviour, memory=memory, fallback=why)
    assert p.fallback
    assert p.memory.fallback
    assert p.raw == Targets()
    assert p.created_step is None
    assert isinstance(p.started_step, Stop)
    assert p.started_step.n == 4
    assert p.reasons[0] == why
    zero = fallback_targets(Behaviour(fallback_after=1, fallback_started=0), memory)
    assert zero == Targets(min_created=1, min_started=0, max_started=0)


def test_a_good_pass_resets_the_failure_count_and_leaves_fallback():
    """Memory after a computed pass: no failures, not in fallback."""
    memory = Memory(failed_passes=5, fallback=True)
    p = plan(both(1), started(1), memory=memory, now=1)
    assert (p.memory.failed_passes, p.memory.fallback) == (0, False)


def test_a_fallback_pass_keeps_the_windows_history():
    """Fallback targets are not remembered as computed; earlier ones stay."""
    memory = Memory().remember(0, both(8), 300).failed().failed()
    behaviour = Behaviour(scale_down_window=300, fallback_after=1, fallback_started=1)
    targets = fallback_targets(behaviour, memory)
    assert targets is not None
    p = plan(
        targets,
        started(8),
        behaviour=behaviour,
        memory=memory,
        now=30,
        fallback=Reason("fallback", "x"),
    )
    assert p.memory.computed == ((0, both(8)),)
    assert p.targets.max_started == 1  # the fallback is not stabilized


# --- ranking and suspend ---------------------------------------------------------


def test_stop_candidates_follow_the_ranking_lowest_first():
    """Lowest value first; Machines without a value last, by id."""
    ranking = Ranking("inflight", {"03": 0.0, "01": 5.0, "04": 2.0})
    p = plan(both(1), started(4), ranking=ranking)
    assert isinstance(p.started_step, Stop)
    assert ids(p.started_step.candidates) == ["03", "04", "01", "02"]
    assert p.reasons[-1] == Reason(
        "stop_metric", "Machines to stop chosen by inflight, lowest first"
    )
    assert p.needs_ranking()


def test_a_failed_ranking_keeps_the_default_order_and_says_why():
    """Collection failed: lowest id first, and the reason names the error."""
    ranking = Ranking("inflight", None, "connection refused")
    step, reasons = plan_started(both(1), started(3), ranking=ranking)
    assert isinstance(step, Stop)
    assert ids(step.candidates) == ["01", "02", "03"]
    assert reasons[-1].rule == "stop_metric_unavailable"
    assert "connection refused" in reasons[-1].text


def test_ranking_orders_started_destroy_candidates_after_idle_ones():
    """Idle Machines still go first; among started ones the ranking decides."""
    current = fleet(
        machine("1", "started"),
        machine("2", "started"),
        machine("3", "stopped"),
        machine("4", "started"),
    )
    ranking = Ranking("inflight", {"1": 9.0, "2": 1.0, "4": 3.0})
    p = plan(Targets(max_created=1), current, ranking=ranking)
    assert isinstance(p.created_step, Destroy)
    assert ids(p.created_step.candidates[:3]) == ["3", "2", "4"]
    assert p.needs_ranking()
    # Only idle Machines go: the ranking is not needed, nor mentioned.
    idle_only = plan(Targets(max_created=3), current, ranking=ranking)
    assert not idle_only.needs_ranking()
    assert idle_only.reasons == ()


def test_no_stop_no_ranking_needed():
    """A plan that stops and destroys no started Machine needs no ranking."""
    assert not plan(both(4), started(2)).needs_ranking()


def test_suspend_mode_makes_suspend_steps():
    """stop_mode suspend: the stop step suspends, and its reasons say so."""
    behaviour = limits(down=1, suspend=True)
    p = plan(both(1), started(3), behaviour=behaviour)
    assert isinstance(p.started_step, Stop)
    assert p.started_step.suspend
    assert p.reasons[-1].text.startswith("suspends 1 of 2 Machines")


def test_suspended_machines_are_started_first():
    """Suspended Machines resume before stopped ones start."""
    current = fleet(machine("1", "stopped"), machine("2", "suspended"))
    step, _ = plan_started(Targets(min_started=1), current)
    assert isinstance(step, Start)
    assert ids(step.candidates) == ["2", "1"]
