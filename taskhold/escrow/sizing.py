"""How long a hold invoice must be able to hold, in blocks (DESIGN.md section 4).

A task whose windows need more than ``max_cltv_expiry_delta`` blocks is still taken when its
hold can be renewed (``max_task_duration_s``): each hold is then sized to the cap, and the
renewal opens the next round before the current one nears its end (``escrow.renewal``).
"""

from __future__ import annotations

import math

from taskhold.errors import Invalid, RefusalCode
from taskhold.settings import Settings

__all__ = ["blocks_needed", "cltv_expiry_delta_for", "hold_window_blocks", "needs_renewal"]


def _seconds(now: int, deadline_at: int, review_window_s: int, dispute_window_s: int) -> int:
    return max(0, deadline_at - now) + review_window_s + dispute_window_s


def blocks_needed(
    *, now: int, deadline_at: int, review_window_s: int, dispute_window_s: int, settings: Settings
) -> int:
    """The ``cltv_expiry`` the task's windows ask for, uncapped: with a safety factor, plus the
    blocks the node and the guardian keep in reserve and the time lock of the payout at the
    end (a payout's HTLC must expire inside the hold that funds it)."""
    seconds = _seconds(now, deadline_at, review_window_s, dispute_window_s)
    blocks = math.ceil(seconds * settings.cltv_safety_factor / settings.block_time_s)
    return max(settings.min_cltv_expiry_delta, blocks + settings.hold_reserve_blocks)


def needs_renewal(
    *, now: int, deadline_at: int, review_window_s: int, dispute_window_s: int, settings: Settings
) -> bool:
    """Whether the task outlasts one hold; refuses it when even renewal cannot cover it."""
    delta = blocks_needed(
        now=now,
        deadline_at=deadline_at,
        review_window_s=review_window_s,
        dispute_window_s=dispute_window_s,
        settings=settings,
    )
    if delta <= settings.max_cltv_expiry_delta:
        return False
    seconds = _seconds(now, deadline_at, review_window_s, dispute_window_s)
    if not settings.max_task_duration_s:
        longest_s = int(
            (settings.max_cltv_expiry_delta - settings.hold_reserve_blocks)
            * settings.block_time_s
            / settings.cltv_safety_factor
        )
        raise Invalid(
            f"the task would need a hold of {delta} blocks but the cap is"
            f" {settings.max_cltv_expiry_delta}: deadline plus review and dispute windows must"
            f" stay under {longest_s} s; shorten the deadline or the windows",
            code=RefusalCode.HOLD_TOO_LONG,
        )
    if seconds > settings.max_task_duration_s:
        raise Invalid(
            f"deadline plus review and dispute windows make {seconds} s, past the longest task"
            f" this taskhold takes even with hold renewal ({settings.max_task_duration_s} s);"
            " shorten the deadline or the windows",
            code=RefusalCode.TASK_TOO_LONG,
        )
    return True


def cltv_expiry_delta_for(
    *, now: int, deadline_at: int, review_window_s: int, dispute_window_s: int, settings: Settings
) -> int:
    """The ``cltv_expiry`` to ask for: what the task's windows need, capped for a task that is
    renewed (:func:`needs_renewal`). Refuses tasks no hold, renewed or not, can cover."""
    if needs_renewal(
        now=now,
        deadline_at=deadline_at,
        review_window_s=review_window_s,
        dispute_window_s=dispute_window_s,
        settings=settings,
    ):
        return settings.max_cltv_expiry_delta
    return blocks_needed(
        now=now,
        deadline_at=deadline_at,
        review_window_s=review_window_s,
        dispute_window_s=dispute_window_s,
        settings=settings,
    )


def hold_window_blocks(settings: Settings) -> int:
    """The longest a hold may hold before the node itself cancels it (lnd's
    ``holdexpirydelta``): what a published term promises an employer's HTLC at most."""
    return settings.max_cltv_expiry_delta - settings.hold_expiry_delta
