"""The terms every create fixes the same way, for a task on its own and for each milestone."""

from __future__ import annotations

from taskhold.errors import Invalid, RefusalCode
from taskhold.settings import Settings

__all__ = ["check_amount", "claim_timeout_for", "fee_for", "windows"]


def check_amount(settings: Settings, amount_msat: int) -> None:
    if not settings.min_amount_msat <= amount_msat <= settings.max_amount_msat:
        raise Invalid(
            f"amount_msat must be between {settings.min_amount_msat} and"
            f" {settings.max_amount_msat}",
            code=RefusalCode.AMOUNT_OUT_OF_RANGE,
        )


def windows(
    settings: Settings, review_window_s: int | None, dispute_window_s: int | None
) -> tuple[int, int, bool]:
    """The review and dispute windows, and whether taskhold picked the review window (left
    out, the default, shortened at claim for parties with a record)."""
    by_policy = review_window_s is None
    review = settings.default_review_window_s if review_window_s is None else review_window_s
    dispute = settings.default_dispute_window_s if dispute_window_s is None else dispute_window_s
    return review, dispute, by_policy


def claim_timeout_for(settings: Settings, given: int | None, deadline_at: int, now: int) -> int:
    if given is not None:
        return given
    return max(1, min(settings.default_claim_timeout_s, (deadline_at - now) // 2))


def fee_for(settings: Settings, amount_msat: int) -> int:
    return settings.fee_base_msat + amount_msat * settings.fee_ppm // 1_000_000
