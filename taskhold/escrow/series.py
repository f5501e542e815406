"""Milestone series: opening a milestone's funding, cancelling the waiting ones after a milestone
ended unpaid, and giving later milestones the series' worker (``taskhold.tasks.milestones``).

Each step reads its work from the database (tasks whose ``pending_action`` is ``series``) and is
idempotent, so the engine pass that runs it is also its crash recovery: a crash between
"milestone k PAID" and "milestone k+1 opened" leaves k+1 waiting in DRAFT with k PAID, and the
next pass opens it. A crash after the node made k+1's invoice but before it was recorded is
harmless too: the payment hash is derived from the task id and round, so the retry gets the
node's ``AlreadyExists`` and reuses that invoice.
"""

from __future__ import annotations

from taskhold.errors import Invalid, RefusalCode
from taskhold.lightning.base import HoldInvoice
from taskhold.store import Tx
from taskhold.tasks import SYSTEM_ACTOR, Task, TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks.milestones import milestone_task_id

from .context import EscrowContext, log
from .funding import ensure_hold_invoice, invoice_row

__all__ = ["advance_milestone", "open_milestone_funding"]

_ENDED_UNPAID = frozenset({TaskState.REFUNDED, TaskState.CANCELLED, TaskState.EXPIRED})


async def open_milestone_funding(ctx: EscrowContext, tx: Tx, task: Task) -> Task:
    """Issue the milestone's hold invoice (or reuse the one a crashed attempt made) and record
    it in ``tx``. The node call happens with the task row locked, as for ``fund``."""
    invoice = await ensure_hold_invoice(ctx, task, task.funding_round + 1)
    return await _record_opening(ctx, tx, task, invoice)


async def _record_opening(ctx: EscrowContext, tx: Tx, task: Task, invoice: HoldInvoice) -> Task:
    funding_round = task.funding_round + 1
    now = ctx.now()
    command = c.OpenMilestone(
        actor=SYSTEM_ACTOR,
        at=now,
        funding_round=funding_round,
        payment_hash_hex=invoice.payment_hash.hex(),
        payment_request=invoice.payment_request,
        cltv_expiry_delta=invoice.cltv_expiry_delta,
        invoice_expires_at=now + ctx.settings.invoice_expiry_s,
    )
    opened = await tx.append(task, decide(task, command, frozenset(ctx.settings.arbiters)))
    await tx.put_invoice(invoice_row(task, invoice, funding_round, now))
    return opened


async def advance_milestone(ctx: EscrowContext, task_id: str) -> Task | None:
    """One step for a milestone the series owes something; the task after it."""
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id, for_update=True)
        if task is None or task.series_id is None or task.milestone_index is None:
            return task
        if task.waits_for_previous_milestone:
            before_id = milestone_task_id(task.series_id, task.milestone_index - 1)
            before = await tx.load_task(before_id)
            if before is None:
                return task
            late = ctx.now() >= task.deadline_at
            if before.state is TaskState.PAID and not late:
                return await _open_when_it_fits(ctx, tx, task)
            if before.state in _ENDED_UNPAID or late:
                reason = (
                    "its deadline passed while it waited"
                    if late
                    else f"milestone {task.milestone_index} ended {before.state.value}"
                )
                command: c.Command = c.CancelMilestone(
                    actor=SYSTEM_ACTOR, at=ctx.now(), reason=reason
                )
                return await tx.append(task, decide(task, command, frozenset()))
            return task
        if task.awaits_series_worker:
            first = await tx.load_task(task.series_id)
            worker = None if first is None else first.worker_pubkey
            if worker is None or worker in task.barred_workers or ctx.now() >= task.deadline_at:
                return task
            command = c.AssignSeriesWorker(actor=SYSTEM_ACTOR, at=ctx.now(), worker_pubkey=worker)
            return await tx.append(task, decide(task, command, frozenset()))
        return task


async def _open_when_it_fits(ctx: EscrowContext, tx: Tx, task: Task) -> Task:
    """Open the milestone's funding, unless its hold would still be longer than the cap: the
    create checked it fits from the previous milestone's deadline on, so it opens by then."""
    try:
        invoice = await ensure_hold_invoice(ctx, task, task.funding_round + 1)
    except Invalid as refused:
        if refused.code != RefusalCode.HOLD_TOO_LONG:
            raise
        log.info("milestone_waits_for_its_hold_window", task_id=task.task_id)
        return task
    await ctx.fault_hook("after_milestone_invoice")
    return await _record_opening(ctx, tx, task, invoice)
