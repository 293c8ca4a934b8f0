"""Builders of test Machines, shared by the test modules."""

from __future__ import annotations

from hypothesis import strategies as st

import flyautoscaler as fas

IMAGE_REF = fas.ImageRef("registry.fly.io", "my-app", "deployment-01", "sha256:abc")


def machine(
    machine_id: str,
    state: str = fas.MachineState.STOPPED,
    *,
    group: str | None = "app",
    region: str = "iad",
    host_status: str = "ok",
    metadata: dict[str, str] | None = None,
    with_config: bool = True,
) -> fas.Machine:
    """Return a Machine of *group* (``None``: no group metadata at all)."""
    meta = dict(metadata or {})
    if group is not None:
        meta.setdefault("fly_process_group", group)
    config = (
        fas.MachineConfig(
            image="registry.fly.io/my-app:old",
            metadata=meta or None,
            extra={"guest": {"cpus": 1, "memory_mb": 256}, "env": {"A": "1"}},
        )
        if with_config
        else None
    )
    return fas.Machine(
        id=machine_id,
        state=state,
        region=region,
        host_status=host_status,
        config=config,
        image_ref=IMAGE_REF,
    )


#: Machine states the property tests draw from.
STATES = [
    "started",
    "starting",
    "stopped",
    "suspended",
    "created",
    "failed",
    "destroying",
    "stopping",
]
#: States that count as started.
RUNNING = {"started", "starting", "restarting"}
#: States a start may act on.
STARTABLE = {"stopped", "suspended", "created"}


@st.composite
def fleets(draw: st.DrawFn) -> list[fas.Machine]:
    """Draw a fleet of Machines in several groups, states and host statuses."""
    n = draw(st.integers(min_value=0, max_value=12))
    return [
        machine(
            f"m{i:02d}",
            draw(st.sampled_from(STATES)),
            group=draw(st.sampled_from(["app", "app", "worker", None])),
            host_status=draw(st.sampled_from(["ok", "ok", "ok", "unreachable"])),
            with_config=draw(st.booleans()) or i % 2 == 0,
        )
        for i in range(n)
    ]
