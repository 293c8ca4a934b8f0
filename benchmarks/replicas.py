"""How one round over many apps scales with replicas, against one fake Fly API.

Run: ``python benchmarks/replicas.py`` (or ``nox -s bench``); it needs
``redis-server`` on the PATH and the ``redis`` extra. For 1, 2 and 4 replicas,
each a separate process running a :class:`~flyautoscaler.ReconcilerPool` with a
:class:`~flyautoscaler.coordination.RedisCoordinator` (what ``serve`` runs),
against ONE :class:`~flyautoscaler.testing.FakeMachinesServer` in this process
with 2,000 apps (each with one started and one stopped Machine; the target is
two started, so each app's first pass lists and starts one Machine), an
injected latency per request and Fly's rate limits on, it prints a Markdown
table of:

- the time of one full round: from the first request any replica sent (the
  app list included) to the answer of the last app's start;
- the requests per pass (release check, list, start) and the 429s;
- the coordination round trips per pass: the commands the replicas sent
  Redis during the round, over the passes (acquire, each proof before a
  Machine request, release; a new connection's HELLO and a script's first
  load; the heartbeats are two more per replica every 5 s);
- the CPU seconds the fake server (this process) and the replicas used.

The replicas wait for each other (a barrier through Redis) before they open
their pools, so that each acts on its own share from the first pass. The
docs quote a run of this script (docs/performance.md, "Scaling out").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from scaling import TOKEN, machine

import flyautoscaler as fas
from flyautoscaler._http import replica_user_agent
from flyautoscaler.coordination import RedisCoordinator
from flyautoscaler.fly import FlyGraphQLClient, new_flaps_client_func
from flyautoscaler.testing import FakeMachinesServer

ORG = "bench-org"
#: The commands a coordinator sends itself (the rest run inside its scripts).
_SENT = ("evalsha", "eval", "script|load", "hello", "zrem")
#: Seconds anything may take before the run is called failed.
DEADLINE = 600.0


# --- a replica (a child process) ---------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    """Run one replica until stdin closes; print its pool's figures as JSON."""
    logging.getLogger("flyautoscaler").addHandler(logging.NullHandler())
    agent = replica_user_agent(args.replica_id)
    coordinator = (
        None if args.alone else RedisCoordinator(args.redis, replica_id=args.replica_id)
    )
    fly = FlyGraphQLClient(TOKEN, base_url=args.api, user_agent=agent)
    factory = new_flaps_client_func(TOKEN, base_url=args.api, user_agent=agent)
    pool = fas.ReconcilerPool(
        fly,
        concurrency=args.concurrency,
        app_name="bench-*",
        organization_slug=ORG,
        reconcile_interval=DEADLINE,  # one round only
        new_flaps_client=factory,
        new_reconciler=lambda: fas.Reconciler(min_started_machine_n="2"),
        coordinator=coordinator,
    )
    if coordinator is not None and not _barrier(coordinator, args.replicas):
        return 1
    print("ready", flush=True)
    try:
        with pool:
            sys.stdin.read()  # until the parent closes it
            status = pool.app_status()
    finally:
        factory.close()
        fly.close()
        if coordinator is not None:
            coordinator.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "acted": sum(s.passes - s.skipped for s in status.values()),
        "cpu": usage.ru_utime + usage.ru_stime,
    }
    print(json.dumps(figures), flush=True)
    return 0


def _barrier(coordinator: RedisCoordinator, replicas: int) -> bool:
    """Heartbeat until *replicas* replicas are listed; whether they were in time."""
    end = time.monotonic() + DEADLINE
    pause = threading.Event()
    coordinator.heartbeat()
    while len(coordinator.replicas()) < replicas:
        if time.monotonic() > end:
            return False
        pause.wait(0.05)
        coordinator.heartbeat()
    return True


# --- the run (the parent) -----------------------------------------------------------


class Redis:
    """A throwaway redis-server on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(  # noqa: S603 - fixed arguments
            [
                binary,
                *("--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis  # noqa: PLC0415 - the extra, checked by main()

        self.client = redis.Redis("127.0.0.1", self.port)
        end = time.monotonic() + 30
        while True:
            try:
                self.client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > end:
                    raise
                threading.Event().wait(0.05)

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def round_trips(self) -> int:
        """Commands clients have sent so far, our own look-ups aside.

        INFO commandstats also counts the commands the scripts run inside
        Redis (GET, SET, PTTL, ...), which cost no round trip: only the
        commands a client sends are counted (a script call, a script load
        after NOSCRIPT, a new connection's HELLO, the leave's ZREM).
        """
        stats = self.client.info("commandstats")
        return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in _SENT)

    def cpu(self) -> float:
        """CPU seconds the server has used so far."""
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def fresh(self) -> None:
        """Empty it, and mark it first seen long ago: leases granted at once."""
        self.client.flushall()
        self.client.config_resetstat()
        self.client.set("fas:epoch", 0)

    def close(self) -> None:
        """Stop the server."""
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Row:
    """One run's figures."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.requests: Counter[str] = Counter()
        self.throttled = 0
        self.redis_commands = 0
        self.redis_cpu = 0.0
        self.server_cpu = 0.0
        self.replica_cpu = 0.0
        self.acted: list[int] = []
        self.done = 0


def run(  # noqa: PLR0913 - one run's parameters
    replicas: int,
    apps: int,
    latency: float,
    concurrency: int,
    redis: Redis,
    *,
    alone: bool = False,
) -> Row:
    """Time one round of *replicas* over *apps* apps on a fresh fake server.

    *alone*: one replica without a coordinator, as before replicas existed.
    """
    redis.fresh()
    row = Row()
    names = [f"bench-{i:04d}" for i in range(apps)]
    with FakeMachinesServer(token=TOKEN, rate_limits=True, latency=latency) as server:
        server.add_organization(ORG)
        for i, name in enumerate(names):
            server.add_app(
                name,
                ORG,
                # Machine ids are unique across apps, as on Fly.
                machines=[machine(f"a{i}m1", "started"), machine(f"a{i}m2", "stopped")],
                release_status="complete",
            )
        children = [
            subprocess.Popen(  # noqa: S603 - this script, our arguments
                [
                    *(sys.executable, __file__, "worker", "--api", server.url),
                    *("--redis", redis.url, "--replica-id", f"replica-{n}"),
                    *("--replicas", str(replicas), "--concurrency", str(concurrency)),
                    *(("--alone",) if alone else ()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(replicas)
        ]
        try:
            for child in children:
                assert child.stdout is not None  # noqa: S101 - piped
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError("a replica did not start")
            commands, redis_cpu = redis.round_trips(), redis.cpu()
            cpu = time.process_time()
            end = time.monotonic() + DEADLINE
            pause = threading.Event()
            while server.count("start") < apps and time.monotonic() < end:
                pause.wait(0.2)
            while not _all_started(server, names) and time.monotonic() < end:
                pause.wait(0.2)
            row.server_cpu = time.process_time() - cpu
            row.redis_commands = redis.round_trips() - commands
            row.redis_cpu = redis.cpu() - redis_cpu
        finally:
            for child in children:
                assert child.stdin is not None  # noqa: S101 - piped
                child.stdin.close()
            outputs = []
            for child in children:
                assert child.stdout is not None  # noqa: S101 - piped
                outputs.append(child.stdout.read())
                child.wait(timeout=60)
        for output in outputs:
            figures = json.loads(output.strip().splitlines()[-1])
            row.acted.append(int(figures["acted"]))
            row.replica_cpu += float(figures["cpu"])
        records = server.requests
        row.done = sum(_started(server, name) == 2 for name in names)
    started = [r for r in records if r.action == "start" and r.status == 200]
    row.seconds = max(r.answered for r in started) - min(r.received for r in records)
    row.requests = Counter(r.action for r in records)
    row.throttled = sum(r.status == 429 for r in records)
    return row


#: Short names of the requests, by the fake server's action names.
_SHORT = {
    "get_app_current_release_machines": "release",
    "get_organization_by_slug": "app list",
    "get_apps_for_organization": "app list",
}


def _per_pass(requests: Counter[str], passes: int) -> str:
    """Requests per pass by kind: ``release 1 + list 1 + start 1 + app list 0.005``."""
    kinds: Counter[str] = Counter()
    for action, count in requests.items():
        kinds[_SHORT.get(action, action)] += count
    order = sorted(kinds, key=lambda k: (k == "app list", k))
    return " + ".join(f"{k} {kinds[k] / passes:.3g}" for k in order)


def _started(server: FakeMachinesServer, app: str) -> int:
    return sum(m.state == "started" for m in server.machines(app))


def _all_started(server: FakeMachinesServer, names: list[str]) -> bool:
    return all(_started(server, name) == 2 for name in names)


#: The runs: name, apps, latency (s), workers per replica.
SCENARIOS = {
    "shared-cpu": (2000, 0.02, 32),
    "latency-bound": (1000, 0.1, 8),
}


def main() -> int:
    """Print one table per scenario."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("worker", help="run one replica (used by the benchmark)")
    child.add_argument("--api", required=True)
    child.add_argument("--redis", required=True)
    child.add_argument("--replica-id", required=True)
    child.add_argument("--replicas", type=int, required=True)
    child.add_argument("--concurrency", type=int, required=True)
    child.add_argument("--alone", action="store_true", help="no coordinator")
    parser.add_argument(
        "--scenarios", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS)
    )
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    if args.command == "worker":
        return worker(args)
    try:
        import redis  # noqa: F401, PLC0415 - present?
    except ImportError:
        print("# replicas: skipped, the redis extra is not installed")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="fas-bench-"))
    try:
        server = Redis(workdir)
    except FileNotFoundError:
        print("# replicas: skipped, redis-server is not on the PATH")
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    cpu = platform.processor() or platform.machine()
    print(
        f"# replicas: {platform.python_implementation()} {platform.python_version()}"
        f", {cpu}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; Fly's rate "
        "limits on; the fake API, Redis and every replica share this machine"
    )
    failures = 0
    try:
        for name in args.scenarios:
            failures += _table(name, args.replicas, server)
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def _table(name: str, counts: list[int], server: Redis) -> int:
    """Print one scenario's table; return how many runs missed the target."""
    apps, latency, concurrency = SCENARIOS[name]
    print()
    print(
        f"{name}: {apps} apps, {latency * 1000:.0f} ms latency, "
        f"concurrency {concurrency} per replica"
    )
    print()
    print(
        "| replicas | one round (s) | apps/s | passes per replica | requests per pass "
        "| 429s | Redis round trips per pass | CPU s: fake API / replicas / Redis |"
    )
    print("|---|---:|---:|---|---|---:|---:|---|")
    failures = 0
    runs = [(1, True)] + [(count, False) for count in counts]
    for count, alone in runs:
        row = run(count, apps, latency, concurrency, server, alone=alone)
        label = "1, no coordinator" if alone else str(count)
        print(
            f"| {label} | {row.seconds:.2f} | {apps / row.seconds:.0f} "
            f"| {' / '.join(map(str, row.acted))} | {_per_pass(row.requests, apps)} "
            f"| {row.throttled} | {row.redis_commands / apps:.2f} "
            f"| {row.server_cpu:.1f} / {row.replica_cpu:.1f} / {row.redis_cpu:.1f} |",
            flush=True,
        )
        if row.done != apps:
            failures += 1
            print(f"# {label}: {row.done} of {apps} apps at target")
    return failures


if __name__ == "__main__":
    sys.exit(main())
