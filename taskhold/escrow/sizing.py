"""How long a hold invoice must be able to hold, in blocks (DESIGN.md section 4)."""

from __future__ import annotations

import math

from taskhold.errors import Invalid, RefusalCode
from taskhold.settings import Settings

__all__ = ["cltv_expiry_delta_for"]


def cltv_expiry_delta_for(
    *, now: int, deadline_at: int, review_window_s: int, dispute_window_s: int, settings: Settings
) -> int:
    """The ``cltv_expiry`` to ask for: the task's windows with a safety factor, plus the blocks
    the node and the guardian keep in reserve and the time lock of the payout at the end (a
    payout's HTLC must expire inside the hold that funds it). Refuses tasks over the cap.
    """
    seconds = max(0, deadline_at - now) + review_window_s + dispute_window_s
    blocks = math.ceil(seconds * settings.cltv_safety_factor / settings.block_time_s)
    delta = max(settings.min_cltv_expiry_delta, blocks + settings.hold_reserve_blocks)
    if delta > settings.max_cltv_expiry_delta:
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
    return delta
