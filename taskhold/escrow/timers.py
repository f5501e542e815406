"""Wall-clock timers and the block-height guardian.

The guardian acts on the accepted HTLC's real ``expiry_height`` as the node reported it, against
the node's current height: it must decide (release or refund) before lnd's own auto-cancel at
``expiry - holdexpirydelta``, which would otherwise unwind the employer's payment on its own.
"""

from __future__ import annotations

from taskhold.tasks import Task, TaskState
from taskhold.tasks import commands as c
from taskhold.tasks.model import FUNDED_STATES

from .context import EscrowContext, apply_system
from .paying import may_land

__all__ = ["TIMED_STATES", "guard", "run_timers"]

TIMED_STATES = (TaskState.FUNDED, TaskState.CLAIMED, TaskState.SUBMITTED, TaskState.DISPUTED)


async def run_timers(ctx: EscrowContext, task_id: str) -> Task | None:
    """Review window, submission deadline and dispute window for one task."""
    return await apply_system(ctx, task_id, lambda task, now: c.Tick(actor="system", at=now))


async def guard(ctx: EscrowContext, task_id: str, height: int) -> Task | None:
    """Apply the deadline policy when the held HTLC is within the guard margin of expiry.

    A verified task whose payout succeeded or is still in flight is left to the release step:
    refunding it could pay the worker and return the employer's money both.
    """
    if await _payout_may_land(ctx, task_id):
        return None

    def check(task: Task, now: int) -> c.Command | None:
        if task.state not in FUNDED_STATES or task.accepted_htlc_expiry_height is None:
            return None
        blocks_left = task.accepted_htlc_expiry_height - height
        if blocks_left > ctx.settings.guard_blocks:
            return None
        return c.HoldExpiring(actor="system", at=now, blocks_left=blocks_left)

    return await apply_system(ctx, task_id, check)


async def _payout_may_land(ctx: EscrowContext, task_id: str) -> bool:
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
        if task is None or task.state is not TaskState.VERIFIED:
            return False
        row = await tx.get_payout(task_id, task.funding_round)
    return row is not None and await may_land(ctx, row)
