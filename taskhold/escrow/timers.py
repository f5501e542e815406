"""Wall-clock timers and the block-height guardian.

The guardian acts on the accepted HTLC's real ``expiry_height`` as the node reported it, against
the node's current height: it must decide (release or refund) before lnd's own auto-cancel at
``expiry - holdexpirydelta``, which would otherwise unwind the employer's payment on its own.
"""

from __future__ import annotations

from taskhold.tasks import SYSTEM_ACTOR, Task, TaskState
from taskhold.tasks import commands as c
from taskhold.tasks.due import may_release_at_guard
from taskhold.tasks.model import FUNDED_STATES

from .context import EscrowContext, apply_system
from .release import reward_owner, settle_under_live_payout
from .split import payout_may_land

__all__ = ["TIMED_STATES", "guard", "run_timers"]

TIMED_STATES = (TaskState.FUNDED, TaskState.CLAIMED, TaskState.SUBMITTED, TaskState.DISPUTED)


async def run_timers(ctx: EscrowContext, task_id: str) -> Task | None:
    """Review window, submission deadline and dispute window for one task."""
    return await apply_system(ctx, task_id, lambda task, now: c.Tick(actor=SYSTEM_ACTOR, at=now))


async def guard(ctx: EscrowContext, task_id: str, height: int) -> Task | None:
    """Apply the deadline policy when the held HTLC is within the guard margin of expiry.

    A verified task whose payout succeeded or is still in flight is never refunded (the
    worker could be paid and the employer refunded both) nor left to the node's own cancel:
    its hold is settled under the declared fallback and the payout is followed on.
    """
    async with ctx.store.transaction() as tx:
        task = await tx.load_task(task_id)
    if task is None or task.accepted_htlc_expiry_height is None:
        return task
    blocks_left = task.accepted_htlc_expiry_height - height
    # A submission left unanswered, or rejected and not ruled on, may be released: it is
    # decided early enough for its payout to still fit in the hold (the reserve); everything
    # else is decided at the guard margin. So is a disputed one (the dispute's default
    # releases it), which a renewal the employer did not pay would otherwise leave refunded.
    due = (
        ctx.settings.hold_reserve_blocks
        if may_release_at_guard(task)
        else ctx.settings.guard_blocks
    )
    if blocks_left > due:
        return task
    if await payout_may_land(ctx, task):
        await settle_under_live_payout(ctx, task_id, blocks_left)
        return None

    def check(task: Task, now: int) -> c.Command | None:
        if task.state not in FUNDED_STATES or task.accepted_htlc_expiry_height is None:
            return None
        return c.HoldExpiring(
            actor=SYSTEM_ACTOR,
            at=now,
            blocks_left=blocks_left,
            payout_short=reward_owner(task_id) in ctx.liquidity.waiting,
        )

    return await apply_system(ctx, task_id, check)
