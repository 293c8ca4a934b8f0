"""How fast a pass reaches its target, against the fake Machines API over HTTP.

Run: ``python benchmarks/scaling.py`` (or ``nox -s bench``). Every row runs the
real HTTP client (with its default rate limiter) against
:class:`~flyautoscaler.testing.FakeMachinesServer` with Fly's documented rate
limits on (``rate_limits=True``) and an injected latency per request, and prints:

- the time of one pass from 0 to N started Machines (N stopped ones seeded) and
  of one pass creating N Machines, with the default ``max_parallel_actions``
  and with 1 (the Go original's one-after-another algorithm), next to the
  floors: one list plus one round trip (2 x latency), and for creates the
  floor of Fly's per-app create limit (a burst of 3, then 1 per second);
- the requests each pass made, and how many were answered 429;
- one round of a pool over 1,000 apps against one reconcile interval.

It then checks the targets docs/performance.md sets and exits 1 if one is
missed. Creating 200 Machines at Fly's create limit takes over three minutes
per run, so those rows are skipped unless ``--full`` is given. The docs quote a
run of this script.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable

import flyautoscaler as fas
from flyautoscaler.fly import FlapsHTTPClient, FlyGraphQLClient, new_flaps_client_func
from flyautoscaler.testing import FakeMachinesServer

TOKEN = "fo1_benchmark-token"  # noqa: S105 - the fake server's token
IMAGE_REF = fas.ImageRef("registry.fly.io", "bench", "deployment-01", "sha256:abc")
# Fly's per-app create limit (fly-api.md section 4): a burst of 3, then 1/s.
CREATE_BURST = 3
CREATE_RATE = 1.0


def machine(machine_id: str, state: str) -> fas.Machine:
    """Return a Machine of the default group with a config to clone."""
    return fas.Machine(
        id=machine_id,
        state=state,
        region="iad",
        host_status="ok",
        config=fas.MachineConfig(
            image="registry.fly.io/bench:old",
            metadata={"fly_process_group": "app"},
        ),
        image_ref=IMAGE_REF,
    )


class Row:
    """One measured pass."""

    def __init__(
        self, seconds: float, requests: Counter[str], throttled: int, done: int
    ) -> None:
        self.seconds = seconds
        self.requests = requests
        self.throttled = throttled
        self.done = done

    @property
    def total(self) -> int:
        """Requests of every kind."""
        return sum(self.requests.values())


def one_pass(
    latency: float,
    seed: list[fas.Machine],
    parallel: int,
    configure: Callable[[fas.Reconciler], None],
    count: Callable[[fas.ReconcileResult], int],
) -> Row:
    """Time one reconcile pass of a fresh app on a fresh server."""
    with FakeMachinesServer(token=TOKEN, rate_limits=True, latency=latency) as server:
        server.add_app("bench", machines=seed)
        with FlapsHTTPClient("bench", TOKEN, base_url=server.url) as client:
            reconciler = fas.Reconciler(
                client=client, app_name="bench", max_parallel_actions=parallel
            )
            configure(reconciler)
            start = time.perf_counter()
            result = reconciler.reconcile()
            seconds = time.perf_counter() - start
        records = server.requests
    requests = Counter(r.action for r in records)
    throttled = sum(1 for r in records if r.status == 429)
    return Row(seconds, requests, throttled, count(result))


def start_row(latency: float, n: int, parallel: int) -> Row:
    """From 0 to *n* started Machines, *n* stopped ones seeded."""
    seed = [machine(f"m{i:04d}", "stopped") for i in range(n)]

    def configure(r: fas.Reconciler) -> None:
        r.min_started_machine_n = str(n)

    return one_pass(latency, seed, parallel, configure, lambda r: len(r.started))


def create_row(latency: float, n: int, parallel: int) -> Row:
    """Create *n* Machines next to the one seeded."""

    def configure(r: fas.Reconciler) -> None:
        r.min_created_machine_n = str(n + 1)

    seed = [machine("m0000", "started")]
    return one_pass(latency, seed, parallel, configure, lambda r: len(r.created))


def round_trip(latency: float) -> float:
    """Measure one request's time on the fake server: latency plus overheads."""
    with FakeMachinesServer(token=TOKEN, rate_limits=True, latency=latency) as server:
        server.add_app("bench", machines=[machine("m0000", "started")])
        with FlapsHTTPClient("bench", TOKEN, base_url=server.url) as client:
            client.list()  # connect
            start = time.perf_counter()
            client.list()
            client.list()  # the third list uses up the bucket's burst
            return (time.perf_counter() - start) / 2


def create_floor(n: int) -> float:
    """Seconds Fly's create limit alone needs for *n* creates (burst, then rate)."""
    return max(0, n - CREATE_BURST) / CREATE_RATE


def pool_round(apps: int, latency: float, concurrency: int, interval: float) -> float:
    """Seconds a pool takes for one pass over every app (each starts a Machine)."""
    with FakeMachinesServer(token=TOKEN, rate_limits=True, latency=latency) as server:
        server.add_organization("bench-org")
        for i in range(apps):
            server.add_app(
                f"bench-{i:04d}",
                "bench-org",
                # Machine ids are unique across apps, as on Fly.
                machines=[machine(f"a{i}m1", "started"), machine(f"a{i}m2", "stopped")],
                release_status="complete",
            )
        fly = FlyGraphQLClient(TOKEN, base_url=server.url)
        factory = new_flaps_client_func(TOKEN, base_url=server.url)
        pool = fas.ReconcilerPool(fly, concurrency=concurrency)
        pool.app_name = "bench-*"
        pool.organization_slug = "bench-org"
        pool.reconcile_interval = interval
        pool.new_flaps_client = factory
        pool.new_reconciler = lambda: fas.Reconciler(min_started_machine_n="2")
        try:
            start = time.perf_counter()
            with pool:
                if not pool.wait_for_passes(apps, timeout=10 * interval):
                    return float("inf")
                seconds = time.perf_counter() - start
                failed = sum(sum(s.errors.values()) for s in pool.app_status().values())
        finally:
            factory.close()
            fly.close()
        started = sum(
            server.flaps_client(a).count("started") for a in server_apps(apps)
        )
        if failed or started != 2 * apps:
            print(f"# pool: {failed} errors, {started} started of {2 * apps}")
        return seconds


def server_apps(apps: int) -> list[str]:
    """The pool benchmark's app names."""
    return [f"bench-{i:04d}" for i in range(apps)]


def fmt_requests(row: Row) -> str:
    """Requests by kind, e.g. ``list 1 + start 40``."""
    return " + ".join(f"{k} {v}" for k, v in sorted(row.requests.items()))


def main() -> int:
    """Print the table, then check the targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40, 200])
    parser.add_argument("--full", action="store_true", help="also create 200")
    parser.add_argument("--pool-apps", type=int, default=1000)
    parser.add_argument("--pool-latency", type=float, default=0.02)
    parser.add_argument("--pool-concurrency", type=int, default=32)
    parser.add_argument("--pool-interval", type=float, default=15.0)
    args = parser.parse_args()
    # Retries and failures would be logged by logging's last resort: the table
    # counts the 429s, and a failed action shows as a shortfall.
    logging.getLogger("flyautoscaler").addHandler(logging.NullHandler())
    latency = args.latency
    parallel = fas.Reconciler().max_parallel_actions
    cpu = platform.processor() or platform.machine()
    print(f"# {platform.python_implementation()} {platform.python_version()}")
    print(f"# {cpu}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    rtt = round_trip(latency)
    print(
        f"# latency {latency * 1000:.0f} ms per request, Fly's rate limits on; "
        f"one request measured at {rtt * 1000:.0f} ms"
    )
    print(
        f"{'pass':16} {'mode':14} {'seconds':>8} {'floor':>7}  "
        f"{'requests':28} {'429s':>4}"
    )
    floor = 2 * latency
    rows: dict[tuple[str, int, int], Row] = {}
    for n in args.sizes:
        for mode in (parallel, 1):
            row = start_row(latency, n, mode)
            rows["start", n, mode] = row
            label = f"parallel {mode}" if mode > 1 else "sequential"
            print(
                f"{f'start {n}':16} {label:14} {row.seconds:8.2f} {floor:7.2f}  "
                f"{fmt_requests(row):28} {row.throttled:>4}",
                flush=True,
            )
    for n in args.sizes:
        if n > 40 and not args.full:
            print(
                f"{f'create {n}':16} {'(skipped)':14} {'':>8} "
                f"{create_floor(n) + floor:7.2f}  bound by Fly's create limit;"
                " --full runs it"
            )
            continue
        for mode in (parallel, 1):
            row = create_row(latency, n, mode)
            rows["create", n, mode] = row
            label = f"parallel {mode}" if mode > 1 else "sequential"
            print(
                f"{f'create {n}':16} {label:14} {row.seconds:8.2f} "
                f"{create_floor(n) + floor:7.2f}  "
                f"{fmt_requests(row):28} {row.throttled:>4}",
                flush=True,
            )
    pool_seconds = pool_round(
        args.pool_apps, args.pool_latency, args.pool_concurrency, args.pool_interval
    )
    fits = "fits" if pool_seconds <= args.pool_interval else "does NOT fit"
    print(
        f"pool: {args.pool_apps} apps, {args.pool_latency * 1000:.0f} ms latency, "
        f"concurrency {args.pool_concurrency}: one round in {pool_seconds:.2f} s, "
        f"{fits} in a {args.pool_interval:.0f} s interval"
    )

    failures = 0
    if ("start", 40, parallel) in rows:
        par, seq = rows["start", 40, parallel], rows["start", 40, 1]
        budget = (1 + 40) * latency / 4
        ok = par.seconds <= budget and par.total <= seq.total and par.done == 40
        failures += not ok
        print(
            f"target start 40: {par.seconds:.2f} s <= {budget:.3f} s, "
            f"{par.total} requests <= {seq.total} sequential: "
            f"{'met' if ok else 'MISSED'}"
        )
    if ("create", 10, parallel) in rows:
        row = rows["create", 10, parallel]
        budget = 1.25 * create_floor(10)
        ok = row.seconds <= budget and row.throttled <= 2 and row.done == 10
        failures += not ok
        print(
            f"target create 10: {row.seconds:.2f} s <= {budget:.2f} s, "
            f"{row.throttled} 429s <= 2: {'met' if ok else 'MISSED'}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
