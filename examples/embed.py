"""Embed a Reconciler in your own code, against the in-memory fakes.

Four stopped Machines, one metric (``queue_depth``) and one rule: keep
``ceil(queue_depth / 10)`` Machines started. Run it with ``python examples/embed.py``.
"""

from __future__ import annotations

import flyautoscaler as fas
from flyautoscaler.testing import FakeFlapsClient, StaticCollector

IMAGE = "registry.fly.io/my-app:deployment-1"


def make_machine(n: int) -> fas.Machine:
    """Return a stopped Machine of the ``app`` process group."""
    return fas.Machine(
        id=f"m{n}",
        state=fas.MachineState.STOPPED,
        region="iad",
        host_status="ok",
        image_ref=fas.ImageRef("registry.fly.io", "my-app", "deployment-1"),
        config=fas.MachineConfig(image=IMAGE, metadata={"fly_process_group": "app"}),
    )


def main() -> int:
    """Scale the fake app through a few queue depths and print each pass."""
    client = FakeFlapsClient([make_machine(n) for n in range(1, 5)], app_name="my-app")
    queue = StaticCollector("queue_depth")
    reconciler = fas.Reconciler(
        client=client,
        app_name="my-app",
        collectors=[queue],
        min_started_machine_n="ceil(queue_depth / 10)",
        max_started_machine_n="ceil(queue_depth / 10)",
    )
    reconciler.validate()  # a typo in an expression fails here, not on a tick

    for depth in (0.0, 25.0, 40.0, 5.0):
        queue.value = depth
        reconciler.collect_metrics()
        result = reconciler.reconcile()
        started = sorted(
            m.id for m in client.machines if m.state == fas.MachineState.STARTED
        )
        states = " ".join(f"{m.id}={m.state}" for m in client.machines)
        print(
            f"queue_depth={depth:g} target={result.min_started} "
            f"started={','.join(started) or '-'} fleet: {states}"
        )
        if not result.ok:
            print(f"  failures: {', '.join(str(f) for f in result.failures)}")
    print(f"stats: {reconciler.stats!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
