"""What Fly Machine leases cost in time to target, against the fake Machines API.

Run: ``python benchmarks/leases.py`` (or ``nox -s bench``). Each row times one
reconcile pass of the real HTTP client against
:class:`~flyautoscaler.testing.FakeMachinesServer` with Fly's documented rate
limits on and an injected latency per request (as ``benchmarks/scaling.py``
does), with ``machine_leases`` off, ``scale-down`` and ``all``:

- stopping N of N started Machines (stops are leased under ``scale-down``);
- destroying N stopped Machines next to a started one;
- starting N stopped Machines (leased only under ``all``).

A leased action is three requests (acquire, act, release) instead of one; a
destroy is two (a destroyed Machine's lease goes with it). The docs quote a run
of this script, and choose the default from it.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys

from scaling import Row, fmt_requests, machine, one_pass

import flyautoscaler as fas

MODES = ("off", "scale-down", "all")


def stop_row(latency: float, n: int, leases: str) -> Row:
    """Stop every one of *n* started Machines (max started 0)."""
    seed = [machine(f"m{i:04d}", "started") for i in range(n)]

    def configure(r: fas.Reconciler) -> None:
        r.max_started_machine_n = "0"
        r.machine_leases = leases

    return one_pass(latency, seed, 8, configure, lambda r: len(r.stopped))


def destroy_row(latency: float, n: int, leases: str) -> Row:
    """Destroy *n* stopped Machines, keeping the started one."""
    seed = [machine("m0000", "started")]
    seed += [machine(f"m{i:04d}", "stopped") for i in range(1, n + 1)]

    def configure(r: fas.Reconciler) -> None:
        r.max_created_machine_n = "1"
        r.machine_leases = leases

    return one_pass(latency, seed, 8, configure, lambda r: len(r.destroyed))


def start_row(latency: float, n: int, leases: str) -> Row:
    """Start *n* stopped Machines."""
    seed = [machine(f"m{i:04d}", "stopped") for i in range(n)]

    def configure(r: fas.Reconciler) -> None:
        r.min_started_machine_n = str(n)
        r.machine_leases = leases

    return one_pass(latency, seed, 8, configure, lambda r: len(r.started))


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40])
    args = parser.parse_args()
    logging.getLogger("flyautoscaler").addHandler(logging.NullHandler())
    print(
        f"# leases, latency {args.latency * 1000:.0f} ms, rate limits on, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print()
    print("| pass | N | machine_leases | seconds | done | requests | 429s |")
    print("|---|---:|---|---:|---:|---|---:|")
    for label, row_of in (
        ("stop", stop_row),
        ("destroy", destroy_row),
        ("start", start_row),
    ):
        for n in args.sizes:
            for mode in MODES:
                row = row_of(args.latency, n, mode)
                print(
                    f"| {label} | {n} | {mode} | {row.seconds:.2f} | {row.done} "
                    f"| {fmt_requests(row)} | {row.throttled} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
