"""``simulate --compare``: several policies on one load, side by side.

The first policy is the one ``simulate`` would run alone (``--config``, the
``FAS_*`` variables or the built-in one); each ``--compare FILE`` adds one,
read as ``--config FILE`` would be. :func:`compared_plans` gives each the
first one's plan (the same ticks, metric values, fleet and seed), and refuses
a policy whose metrics differ. :func:`compare_lines` is the table printed and
:func:`compare_data` the content of ``compare.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from attrs import evolve, frozen

from flyautoscaler._errors import ConfigError
from flyautoscaler.cli.simulate._policy import PolicyChoice, choose_policy
from flyautoscaler.cli.simulate._report import TargetReach, format_seconds
from flyautoscaler.cli.simulate._run import Outcome, Plan
from flyautoscaler.cli.simulate._summary import SimulationSummary

__all__ = [
    "CompareEntry",
    "compare_data",
    "compare_lines",
    "compared_plans",
    "first_label",
]

_BUILT_IN: Final = "built-in"
_ENVIRONMENT: Final = "environment"


@frozen
class CompareEntry:
    """One policy of a comparison.

    Attributes:
        label: Its name: the file's stem (``a`` for ``conf/a.yml``),
            ``environment`` or ``built-in``; unique in the comparison.
        plan: Its run: its policy on the first policy's load and fleet.
        why: Where the policy comes from (:attr:`PolicyChoice.why`).
        note: What of the policy does not apply, in words (``""``: nothing).
    """

    label: str
    plan: Plan
    why: str
    note: str = ""

    @property
    def csv_name(self) -> str:
        """The file its time series goes to."""
        return f"timeseries-{self.label}.csv"


def _stem(path: str) -> str:
    stem = Path(path).stem or "policy"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def first_label(path: str | None, choice: PolicyChoice) -> str:
    """Return the label of the first policy (the one ``simulate`` runs alone)."""
    if path is not None:
        return _stem(path)
    return _BUILT_IN if choice.why.startswith("the built-in") else _ENVIRONMENT


def _unique(label: str, taken: set[str]) -> str:
    if label not in taken:
        return label
    n = 2
    while f"{label}-{n}" in taken:
        n += 1
    return f"{label}-{n}"


def _check_metrics(
    path: str, source: str, first: Sequence[str], other: Sequence[str]
) -> None:
    """Refuse a policy from *path* whose metrics are not those of *source*.

    Raises:
        ConfigError: Naming the file and the first metric one of the two
            policies uses and the other does not.
    """
    why = "the policies compared run on one load, so they must use the same metrics"
    for name in other:
        if name not in first:
            raise ConfigError(
                f"{path} (--compare) uses the metric {name!r}, which {source} "
                f"does not: {why}",
                field="metric_name",
            )
    for name in first:
        if name not in other:
            raise ConfigError(
                f"{path} (--compare) does not use the metric {name!r}, which "
                f"{source} uses: {why}",
                field="metric_name",
            )


def compared_plans(
    first: CompareEntry,
    paths: Sequence[str],
    environ: Mapping[str, str],
    *,
    tick_given: bool,
) -> list[CompareEntry]:
    """Return the first entry and one per ``--compare`` file, all on its load.

    Each compared policy runs the first one's plan (ticks, values, fleet,
    seed, capacity) with its own expressions and behaviour; its metrics are
    put in the first one's order, so that the capacity applies to the same
    one.

    Args:
        first: The first policy and its plan.
        paths: The ``--compare`` files.
        environ: The environment.
        tick_given: Whether ``--tick`` was given (then no interval applies).

    Raises:
        ConfigError: A file is invalid, or its metrics are not the first
            policy's (naming the file and the metric).
        OSError: A file cannot be read.
    """
    entries = [first]
    taken = {first.label}
    policy = first.plan.policy
    for path in paths:
        choice = choose_policy(path, environ, option="--compare")
        other = choice.policy
        _check_metrics(path, policy.source, policy.metric_names, other.metric_names)
        label = _unique(_stem(path), taken)
        taken.add(label)
        note = ""
        if not tick_given and not math.isclose(other.interval, policy.interval):
            note = (
                f"its interval ({format_seconds(other.interval)}) does not apply: "
                f"every policy runs a pass every {format_seconds(first.plan.tick)}, "
                "on the same ticks"
            )
        plan = evolve(
            first.plan, policy=evolve(other, metric_names=policy.metric_names)
        )
        entries.append(CompareEntry(label, plan, choice.why, note))
    return entries


# --- the table ----------------------------------------------------------------------


def _reach(reach: TargetReach) -> tuple[str, str]:
    reached = f"{reach.reached} of {len(reach.changes)}"
    if reach.median is None or reach.slowest is None:
        return reached, "-"
    return reached, f"{format_seconds(reach.median)}, {format_seconds(reach.slowest)}"


def _reaches(entry: CompareEntry, outcome: Outcome) -> dict[str, TargetReach]:
    plan = entry.plan
    return {
        "started": TargetReach.of(outcome.rows, "started", plan.started),
        "created": TargetReach.of(outcome.rows, "created", plan.machines),
    }


def _hours(seconds: float | None, digits: int) -> str:
    return "-" if seconds is None else f"{seconds / 3600:,.{digits}f}"


def _best(
    entries: Sequence[CompareEntry],
    summaries: Sequence[SimulationSummary],
    value: Callable[[SimulationSummary], float | None],
) -> str:
    values = [value(s) for s in summaries]
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low = min(known)
    names = [e.label for e, v in zip(entries, values, strict=True) if v == low]
    if len(names) == len(entries):
        return "all alike"
    return " and ".join(names)


def compare_lines(
    entries: Sequence[CompareEntry], outcomes: Sequence[Outcome]
) -> list[str]:
    """Return the comparison: a column per policy, a row per measure, then sentences."""
    summaries = [o.summary for o in outcomes]
    reaches = [_reaches(e, o) for e, o in zip(entries, outcomes, strict=True)]
    capacity = summaries[0].capacity is not None
    rows: list[tuple[str, list[str]]] = [
        ("Machine-hours", [_hours(s.machine_seconds, 2) for s in summaries]),
    ]
    if capacity:
        rows.append(
            (
                "under-provisioned Machine-hours",
                [_hours(s.under_provisioned_machine_seconds, 2) for s in summaries],
            )
        )
        rows.append(
            (
                "times the ideal",
                [
                    "-"
                    if s.machine_seconds_ratio is None
                    else f"{s.machine_seconds_ratio:.2f}"
                    for s in summaries
                ],
            )
        )
    rows += [
        ("flaps per hour", [f"{s.flaps_per_hour:.1f}" for s in summaries]),
        ("creates, destroys", [f"{s.creates}, {s.destroys}" for s in summaries]),
        ("starts, stops", [f"{s.starts}, {s.stops}" for s in summaries]),
        (
            "failed actions, passes",
            [f"{s.failed_actions}, {s.failed_passes}" for s in summaries],
        ),
    ]
    for kind in ("started", "created"):
        pairs = [_reach(r[kind]) for r in reaches]
        rows.append((f"{kind} targets reached", [p[0] for p in pairs]))
        rows.append(("  in (median, slowest)", [p[1] for p in pairs]))
    first = max(len(name) for name, _ in rows)
    widths = [
        max(len(e.label), *(len(cells[i]) for _, cells in rows))
        for i, e in enumerate(entries)
    ]
    head = "".join(f"  {e.label:>{w}}" for e, w in zip(entries, widths, strict=True))
    lines = [f"  {'':<{first}}{head}"]
    for name, cells in rows:
        body = "".join(f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True))
        lines.append(f"  {name:<{first}}{body}")
    best = [
        ("Fewest Machine-hours", _best(entries, summaries, lambda s: s.machine_seconds))
    ]
    if capacity:
        best.append(
            (
                "least under-provisioning",
                _best(
                    entries,
                    summaries,
                    lambda s: s.under_provisioned_machine_seconds,
                ),
            )
        )
    best.append(
        ("fewest flaps per hour", _best(entries, summaries, lambda s: s.flaps_per_hour))
    )
    lines.append("  " + "; ".join(f"{what}: {who}" for what, who in best) + ".")
    return lines


def compare_data(
    entries: Sequence[CompareEntry], outcomes: Sequence[Outcome]
) -> dict[str, object]:
    """Return ``compare.json``: the load, and each policy's numbers and files."""
    plan = entries[0].plan
    policies: list[dict[str, object]] = []
    for entry, outcome in zip(entries, outcomes, strict=True):
        reaches = _reaches(entry, outcome)
        policies.append(
            {
                "label": entry.label,
                "source": entry.plan.policy.source,
                "policy": entry.why,
                "timeseries": entry.csv_name,
                "summary": outcome.summary.to_dict(),
                "targets": {
                    kind: {
                        "changes": len(reach.changes),
                        "reached": reach.reached,
                        "median_seconds": reach.median,
                        "slowest_seconds": reach.slowest,
                    }
                    for kind, reach in reaches.items()
                },
            }
        )
    return {
        "load": plan.load,
        "metrics": list(plan.policy.metric_names),
        "ticks": len(plan.times),
        "tick_seconds": plan.tick,
        "machines": plan.machines,
        "started": plan.started,
        "seed": plan.seed,
        "capacity": plan.capacity,
        "policies": policies,
    }
