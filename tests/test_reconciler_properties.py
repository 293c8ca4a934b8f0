"""Property tests: for any fleet, groups, targets and failures, a pass is safe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flyautoscaler as fas
from factories import RUNNING, STARTABLE, fleets
from flyautoscaler.testing import FakeFlapsClient

METHODS = ["launch", "destroy", "start", "stop"]


# The max_parallel_actions the module's tests run with (None: the default).
PARALLELISM: list[int | None] = [None]


@pytest.fixture(
    autouse=True, scope="module", params=[None, 1], ids=["default", "sequential"]
)
def parallelism(request: pytest.FixtureRequest) -> Iterator[int | None]:
    """Run every property with the default parallel actions, and one at a time."""
    PARALLELISM[0] = request.param
    yield request.param
    PARALLELISM[0] = None


def parallel() -> dict[str, int]:
    """Return the Reconciler field setting the parallelism, if not the default."""
    value = PARALLELISM[0]
    return {} if value is None else {"max_parallel_actions": value}


targets = st.one_of(st.none(), st.integers(min_value=-2, max_value=16))


def watched(machines: list[fas.Machine]) -> list[fas.Machine]:
    """The Machines a reconciler of group 'app' counts."""
    return [
        m
        for m in machines
        if m.host_status == "ok"
        and m.process_group() == "app"
        and m.state not in {"destroying", "destroyed"}
    ]


def expr(value: int | None) -> str:
    """Return *value* as an expression ('' when unset)."""
    return "" if value is None else str(value)


@given(
    fleet=fleets(),
    min_created=targets,
    max_created=targets,
    min_started=targets,
    max_started=targets,
    failing=st.lists(st.sampled_from(METHODS), max_size=4),
    always_failing=st.booleans(),
)
def test_pass_is_safe(
    fleet: list[fas.Machine],
    min_created: int | None,
    max_created: int | None,
    min_started: int | None,
    max_started: int | None,
    failing: list[str],
    always_failing: bool,
) -> None:
    """A pass ends, keeps a Machine, stays in its group, starts only what exists."""
    client = FakeFlapsClient(fleet)
    for method in failing:
        client.fail(method, times=None if always_failing else 2)
    r = fas.Reconciler(
        client=client,
        app_name="app",
        min_created_machine_n=expr(min_created),
        max_created_machine_n=expr(max_created),
        min_started_machine_n=expr(min_started),
        max_started_machine_n=expr(max_started),
        **parallel(),
    )
    before = {m.id: m for m in fleet}
    mine = {m.id for m in watched(fleet)}
    try:
        result = r.reconcile()
    except fas.NoMachineToCloneError:
        assert not any(m.config for m in watched(fleet))
        assert client.call_count("launch") == 0
        return

    # Bounded: each missing Machine costs at most max_create_attempts launches.
    assert client.call_count("launch") <= 16 * r.max_create_attempts
    # Never touches a Machine outside the watched group.
    touched = {
        c.args[0] if isinstance(c.args[0], str) else c.args[0].id  # type: ignore[attr-defined]
        for c in client.calls
        if c.method in {"start", "stop", "destroy"}
    }
    assert touched <= mine | set(result.created)
    for machine_id, original in before.items():
        if machine_id not in mine:
            assert client.machine(machine_id) == original
    # Never destroys the last Machine of the group.
    if mine:
        assert watched(client.machines)
    # Never starts more than there are, nor the same Machine twice.
    assert len(result.started) == len(set(result.started))
    startable_before = {m.id for m in watched(fleet) if m.state in STARTABLE} | set(
        result.created
    )
    assert set(result.started) <= startable_before
    assert r.stats.machine_started == len(result.started)


@given(
    fleet=fleets(),
    min_created=targets,
    max_created=targets,
    min_started=targets,
    max_started=targets,
)
def test_pass_reaches_targets_when_actions_succeed(
    fleet: list[fas.Machine],
    min_created: int | None,
    max_created: int | None,
    min_started: int | None,
    max_started: int | None,
) -> None:
    """With every action succeeding, one pass ends inside [min, max]."""
    client = FakeFlapsClient(fleet)
    r = fas.Reconciler(
        client=client,
        min_created_machine_n=expr(min_created),
        max_created_machine_n=expr(max_created),
        min_started_machine_n=expr(min_started),
        max_started_machine_n=expr(max_started),
        **parallel(),
    )
    try:
        result = r.reconcile()
    except fas.NoMachineToCloneError:
        return
    assert result.ok
    after = watched(client.machines)
    # An inverted band (min > max) behaves as [min, min]: min wins.
    lo_c = None if min_created is None else max(1, min_created)
    hi_c = None if max_created is None else max(1, max_created, lo_c or 1)
    if lo_c is not None:
        assert len(after) >= lo_c
    if hi_c is not None and watched(fleet):
        assert len(after) <= hi_c
    lo_s = None if min_started is None else max(0, min_started)
    hi_s = None if max_started is None else max(0, max_started, lo_s or 0)
    running = [m for m in after if m.state in RUNNING]
    if lo_s is not None and len(running) < lo_s:
        # Only when nothing is left to start.
        assert not [m for m in after if m.state in STARTABLE]
    if hi_s is not None and len(running) > hi_s:
        # Only Machines that are not plainly 'started' (cannot be stopped) remain.
        assert not [m for m in after if m.state == "started"]


@given(fleet=fleets(), target=st.integers(min_value=0, max_value=16))
def test_pass_converges(fleet: list[fas.Machine], target: int) -> None:
    """Repeated passes settle: the second pass after convergence does nothing."""
    client = FakeFlapsClient(fleet)
    r = fas.Reconciler(
        client=client,
        min_created_machine_n=str(target),
        max_created_machine_n=str(target),
        min_started_machine_n=str(target),
        max_started_machine_n=str(target),
        **parallel(),
    )
    try:
        r.reconcile()
    except fas.NoMachineToCloneError:
        return
    second = r.reconcile()
    assert not second.scaled
