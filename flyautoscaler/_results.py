"""What a reconcile pass reports: its result and each failed action."""

from __future__ import annotations

from typing import Literal

from attrs import field, frozen

from flyautoscaler._errors import redact
from flyautoscaler._plan import Reason

__all__ = ["Action", "ActionFailure", "ReconcileResult"]

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

    @property
    def ok(self) -> bool:
        """True when every planned action was made and none failed."""
        return not (self.failures or self.gave_up_creating or self.timed_out)

    @property
    def scaled(self) -> bool:
        """True when at least one Machine was created, destroyed, started or stopped."""
        return bool(self.created or self.destroyed or self.started or self.stopped)
