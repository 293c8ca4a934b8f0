"""How long flyautoscaler takes to reject hostile expressions, and to evaluate.

Run: ``python benchmarks/expressions.py`` (or ``nox -s bench``). Each input is
compiled (with the cache cleared) and, when it compiles, evaluated; the best of
``--repeat`` runs is printed in milliseconds. The docs quote a run of this script.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import flyautoscaler as fas
from flyautoscaler import _expr

HOSTILE: dict[str, str] = {
    "attribute access": "x.__class__.__mro__",
    "dunder name": "__import__",
    "call outside the list": "open(1)",
    "comprehension": "[x for x in y]",
    "lambda": "lambda: 1",
    "assignment": "x = 1",
    "huge power": "999999 ** 999999",
    "power tower": "9 ** 9 ** 9 ** 9",
    "huge string": '"a" * 1000000000',
    "500 nested parentheses": "(" * 500 + "1" + ")" * 500,
    "over-long expression": "1 + " * 1000 + "1",
    "long flat chain": "+".join(["x"] * 99),
}
ORDINARY: dict[str, str] = {
    "typical": "ceil(queue_depth / 10)",
    "ternary": "queue_depth > 100 ? max(10, queue_depth / 20) : 1",
}


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    """Return the fastest of *repeat* runs of *fn*, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def run_one(source: str) -> str:
    """Compile (uncached) and evaluate *source*; return how it ended."""
    _expr._compile.cache_clear()  # noqa: SLF001 - measure the full compile
    try:
        value = fas.compile_expression(source).evaluate_int(
            {"x": 1.0, "y": 2.0, "queue_depth": 250.0}
        )
    except fas.ExpressionError as exc:
        return type(exc).__name__
    return f"= {value}"


def main() -> int:
    """Print one line per input: time to compile and evaluate, and the outcome."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"# {platform.python_implementation()} {platform.python_version()}")
    print(f"# {platform.machine()}, {time.strftime('%Y-%m-%d')}")
    print(f"{'input':28} {'best ms':>9}  outcome")
    for label, source in {**HOSTILE, **ORDINARY}.items():
        outcome = run_one(source)
        ms = best_ms(lambda s=source: run_one(s), args.repeat)
        print(f"{label:28} {ms:9.3f}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
