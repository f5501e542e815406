"""Intake: while the operator has paused it (``taskhold admin pause``), no new task comes in.

Paused means ``create`` (a task or a milestone series) and ``fund`` (a DRAFT task's first hold
invoice: the only state ``fund`` takes) are refused with ``503 intake_paused`` and
``Retry-After``. Everything that moves money already held goes on: claims, proofs, approvals,
disputes, releases, refunds, cancels, payouts and the engine's guardian, so a pause never
strands an escrow. Invoices issued before the pause may still be paid, and the engine funds
their tasks as usual; deposits and renewals of tasks already in flight go on too.

The switch is read in the write's own transaction from the database (``store.controls``), so
every replica refuses from the moment the pause commits, and a restart keeps it. A retried
write that was accepted before the pause still gets its first answer (the pipeline answers
retries before any handler runs).
"""

from __future__ import annotations

from types import MappingProxyType

from taskhold.errors import Refusal, RefusalCode
from taskhold.store import Tx
from taskhold.store.controls import INTAKE_PAUSED, read_control

from .pipeline import WriteContext

__all__ = ["IntakePaused", "check_intake"]


class IntakePaused(Refusal):
    """The operator paused intake; retry later."""

    status = 503
    code = RefusalCode.INTAKE_PAUSED

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "the operator has paused intake: no new task is created or funded now; tasks"
            " already funded go on as usual (claims, proofs, approvals, releases, refunds);"
            " retry later"
        )
        self.headers = MappingProxyType({"Retry-After": str(retry_after_s)})
        self.extra = MappingProxyType({"retry_after_s": retry_after_s})


async def check_intake(ctx: WriteContext, tx: Tx) -> None:
    """Refuse with :class:`IntakePaused` while intake is paused."""
    paused = await read_control(tx, INTAKE_PAUSED)
    if paused is not None and paused.value:
        raise IntakePaused(ctx.escrow.settings.intake_paused_retry_after_s)
