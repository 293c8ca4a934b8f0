"""What a reconcile pass reports: its result and each failed action."""

from __future__ import annotations

from typing import Literal

from attrs import field, frozen

from flyautoscaler._errors import redact
from flyautoscaler._plan import Reason, Targets

__all__ = ["Action", "ActionFailure", "ReconcileResult", "explain_decision"]

Action = Literal["create", "destroy", "start", "stop"]


@frozen
class ActionFailure:
    """One Machine action that failed during a pass.

    Attributes:
        action: ``"create"``, ``"destroy"``, ``"start"`` or ``"stop"``.
        machine_id: The Machine acted on (``""`` for a create).
        error: What the client raised.
    """

    action: Action
    machine_id: str
    error: BaseException = field(repr=lambda e: redact(repr(e)))

    def __str__(self) -> str:
        target = f" {self.machine_id}" if self.machine_id else ""
        return f"{self.action}{target}: {redact(str(self.error))}"


@frozen
class ReconcileResult:
    """What one :meth:`Reconciler.reconcile` pass saw and did.

    Attributes:
        app_name: The app reconciled.
        min_created: The evaluated min created count (``None``: unset).
        max_created: The evaluated max created count (``None``: unset).
        min_started: The evaluated min started count (``None``: unset).
        max_started: The evaluated max started count (``None``: unset).
        created_count: The watched group's created count when listed.
        started_count: The watched group's started count when listed.
        created: Ids of the Machines created, in the order the launches were
            issued (not the order they finished in, which parallel actions
            make vary); likewise the three below.
        destroyed: Ids of the Machines destroyed, in candidate order.
        started: Ids of the Machines started, in candidate order.
        stopped: Ids of the Machines stopped, in candidate order.
        failures: Every failed action, in the order the actions were issued.
        gave_up_creating: Launch failed for one missing Machine every time it
            was tried, so the pass stopped creating.
        timed_out: The deadline passed before every planned action started.
        reasons: Each rule that changed a target or limited a step: its name
            (``rule``) and what it did in words (``text``, also its ``str()``).
        skipped: Ids of the Machines left alone because someone else held a
            lease on them (with ``machine_leases`` on), in the order tried.
        raw_targets: The four counts straight from the expressions, before
            any rule (all ``None`` on a fallback pass); the applied ones are
            :attr:`targets`.
        fallback_error: Why the pass used the fallback count (the metrics or
            expression failure), or ``None`` when it did not.
    """

    app_name: str
    min_created: int | None
    max_created: int | None
    min_started: int | None
    max_started: int | None
    created_count: int
    started_count: int
    created: tuple[str, ...] = ()
    destroyed: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    failures: tuple[ActionFailure, ...] = ()
    gave_up_creating: bool = False
    timed_out: bool = False
    reasons: tuple[Reason, ...] = ()
    skipped: tuple[str, ...] = ()
    raw_targets: Targets = field(factory=Targets)
    fallback_error: Exception | None = field(
        default=None, repr=lambda e: redact(repr(e))
    )

    @property
    def targets(self) -> Targets:
        """The four counts the pass aimed for, after every rule."""
        return Targets(
            self.min_created, self.max_created, self.min_started, self.max_started
        )

    @property
    def fallback(self) -> bool:
        """True when the pass used the fallback count."""
        return self.fallback_error is not None

    @property
    def rules(self) -> tuple[str, ...]:
        """The names of the rules that acted, in order, each once."""
        return tuple(dict.fromkeys(r.rule for r in self.reasons))

    def explain(self) -> str:
        """Return what the pass saw, decided and did, and why, in a few lines."""
        lines = explain_decision(
            self.app_name,
            (self.created_count, self.started_count),
            raw=self.raw_targets,
            targets=self.targets,
            reasons=self.reasons,
            fallback_error=self.fallback_error,
        )
        done = [
            f"{verb} {len(ids)} ({', '.join(ids)})"
            for verb, ids in (
                ("created", self.created),
                ("destroyed", self.destroyed),
                ("started", self.started),
                ("stopped", self.stopped),
            )
            if ids
        ]
        lines.append("actions: " + ("; ".join(done) if done else "none"))
        lines += [f"failed: {failure}" for failure in self.failures]
        if self.skipped:
            lines.append(f"skipped (leased by someone else): {', '.join(self.skipped)}")
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        """True when every planned action was made and none failed."""
        return not (self.failures or self.gave_up_creating or self.timed_out)

    @property
    def scaled(self) -> bool:
        """True when at least one Machine was created, destroyed, started or stopped."""
        return bool(self.created or self.destroyed or self.started or self.stopped)


def explain_decision(  # noqa: PLR0913 - what a decision is made of
    app_name: str,
    counts: tuple[int, int],
    *,
    raw: Targets,
    targets: Targets,
    reasons: tuple[Reason, ...],
    fallback_error: BaseException | None,
) -> list[str]:
    """Return the lines that say what a pass saw and decided, and why.

    Args:
        app_name: The app.
        counts: Its created and started counts when listed.
        raw: The targets from the expressions.
        targets: The targets after every rule.
        reasons: The rules that acted.
        fallback_error: What the pass fell back from, if it did.
    """
    lines = [
        f"{app_name}: {counts[0]} created, {counts[1]} started when listed",
        (
            f"targets: created {_span(targets.min_created, targets.max_created)}, "
            f"started {_span(targets.min_started, targets.max_started)}"
        ),
    ]
    if fallback_error is not None:
        lines.append(f"fallback: {redact(str(fallback_error))}")
    elif raw != targets:
        lines.append(
            f"from the expressions: created {_span(raw.min_created, raw.max_created)}"
            f", started {_span(raw.min_started, raw.max_started)}"
        )
    lines += [f"- {reason.text}" for reason in reasons]
    return lines


def _span(low: int | None, high: int | None) -> str:
    """Return a [min, max] pair in words: ``2..5``, ``at least 2``, ``any``."""
    if low is None and high is None:
        return "any"
    if high is None:
        return f"at least {low}"
    if low is None:
        return f"at most {high}"
    return str(low) if low == high else f"{low}..{high}"
