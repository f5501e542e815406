"""Escrows the operator should look at now, each with its reason.

- ``near_margin``: a held HTLC is within ``within_blocks`` of the margin at which the guardian
  decides it (``guard``, the release ``reserve`` or the ``renewal`` lead;
  ``taskhold.tasks.due``), or past it;
- ``payout_failing``: a verified task's payout failed at least once (``payout_failures``);
- ``deposit_near_margin``: a held deposit is within ``within_blocks`` of the guard margin;
- ``deposit_payout_failing``: a forfeited deposit's payout failed at least once.

The block height is the one the running engines last saw (``chain_height`` in the operator's
switches), so the console needs no connection to the node; an operator may give another.
Every candidate comes from the indexed due-time columns the engine's tick uses, widened by
``within_blocks``, then each task is checked: the cost grows with what is near, not with the
open tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from taskhold.escrow.engine import hold_margins
from taskhold.settings import Settings
from taskhold.store import Store
from taskhold.store.controls import CHAIN_HEIGHT, read_control
from taskhold.tasks import Task
from taskhold.tasks.due import deposit_guarded, hold_margin

__all__ = ["DEFAULT_WITHIN_BLOCKS", "Stuck", "StuckReport", "find_stuck"]

DEFAULT_WITHIN_BLOCKS = 36
"""About six hours of blocks: time for an operator to act before the guardian must."""


@dataclass(frozen=True, slots=True)
class Stuck:
    task_id: str
    state: str
    reason: str
    detail: str
    blocks_left: int | None = None
    """Blocks until the hold's expiry, at the report's height (None for payouts)."""
    margin_blocks: int | None = None
    payout_failures: int = 0


@dataclass(frozen=True, slots=True)
class StuckReport:
    height: int | None
    """None: no engine has seen the node yet and none was given; margins were not checked."""
    height_seen_at: int | None
    within_blocks: int
    escrows: list[Stuck]

    def as_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "height_seen_at": self.height_seen_at,
            "within_blocks": self.within_blocks,
            "escrows": [asdict(item) for item in self.escrows],
        }


async def find_stuck(
    store: Store,
    settings: Settings,
    *,
    within_blocks: int = DEFAULT_WITHIN_BLOCKS,
    height: int | None = None,
) -> StuckReport:
    margins = hold_margins(settings)
    async with store.transaction() as tx:
        seen = await read_control(tx, CHAIN_HEIGHT)
        seen_at = None
        if height is None and seen is not None:
            height, seen_at = seen.value, seen.changed_at
        ids: set[str] = set(await tx.task_ids_pending("release"))
        ids |= set(await tx.task_ids_deposits_due(height, settings.guard_blocks + within_blocks))
        if height is not None:
            wide = {name: blocks + within_blocks for name, blocks in margins.items()}
            ids |= set(await tx.task_ids_hold_due(height, wide))
        tasks = [await tx.load_task(task_id) for task_id in sorted(ids)]
    found: list[Stuck] = []
    for task in tasks:
        if task is not None:
            found.extend(_reasons(task, height, margins, settings.guard_blocks, within_blocks))
    found.sort(key=lambda s: (s.blocks_left is None, s.blocks_left or 0, s.task_id, s.reason))
    return StuckReport(height, seen_at, within_blocks, found)


def _reasons(
    task: Task, height: int | None, margins: dict[str, int], guard_blocks: int, within: int
) -> list[Stuck]:
    state = task.state.value
    out: list[Stuck] = []
    margin_name = hold_margin(task)
    expiry = task.accepted_htlc_expiry_height
    if height is not None and margin_name is not None and expiry is not None:
        margin, left = margins[margin_name], expiry - height
        if left <= margin + within:
            out.append(
                Stuck(
                    task.task_id,
                    state,
                    "near_margin",
                    f"{left} blocks to the hold's expiry; the {margin_name} margin is {margin}",
                    blocks_left=left,
                    margin_blocks=margin,
                )
            )
    if task.release_pending and task.payout_failures > 0:
        out.append(
            Stuck(
                task.task_id,
                state,
                "payout_failing",
                f"payout failed {task.payout_failures}x: {task.last_payout_failure}",
                payout_failures=task.payout_failures,
            )
        )
    for deposit in task.deposits:
        d_expiry = deposit.expiry_height
        if height is not None and deposit_guarded(deposit) and d_expiry is not None:
            left = d_expiry - height
            if left <= guard_blocks + within:
                out.append(
                    Stuck(
                        task.task_id,
                        state,
                        "deposit_near_margin",
                        f"a {deposit.role}'s deposit: {left} blocks to its expiry; the guard"
                        f" margin is {guard_blocks}",
                        blocks_left=left,
                        margin_blocks=guard_blocks,
                    )
                )
        if deposit.pending_action == "payout" and deposit.payout_failures > 0:
            out.append(
                Stuck(
                    task.task_id,
                    state,
                    "deposit_payout_failing",
                    f"a forfeited deposit's payout failed {deposit.payout_failures}x:"
                    f" {deposit.last_payout_failure}",
                    payout_failures=deposit.payout_failures,
                )
            )
    return out
