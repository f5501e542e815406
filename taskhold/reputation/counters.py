"""What the indexer counts per pubkey and role: plain integers, never floats.

Pure standard library, like ``metrics`` and ``score`` (the auditor recomputes through them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["DEAL_COUNTERS", "Outcome", "RoleMetrics"]

DEAL_COUNTERS = (
    "rejections",
    "rejections_overturned",
    "refunds_after_proof",
    "revocations",
    "unclaims",
)
"""Published from score version 2 on; a version-1 card leaves them out, as it always did."""


class Outcome(NamedTuple):
    """One closed task (or one review of it) as it counts toward a subject's score."""

    counterparty: str
    at: int
    """``created_at`` of the task's final log entry."""
    amount_msat: int
    success_quarters: int
    """4 = success, 0 = failure; a review of rating r gives r - 1."""
    review: bool
    divisor: int = 1
    """The outcome weighs ``1/divisor`` of a task (an unclaim weighs half); version 1 has none."""


@dataclass(slots=True)
class RoleMetrics:
    """Counters for one pubkey in one role. Sums, never floats: every machine gets the same."""

    tasks: int = 0
    funded: int = 0
    completed: int = 0
    refunded: int = 0
    cancelled: int = 0
    expired: int = 0
    disputes_opened: int = 0
    disputes_won: int = 0
    disputes_lost: int = 0
    proofs_refused: int = 0
    volume_msat: int = 0
    fund_s_total: int = 0
    fund_n: int = 0
    proof_s_total: int = 0
    proof_n: int = 0
    paid_s_total: int = 0
    paid_n: int = 0
    reviews: int = 0
    rating_total: int = 0
    rejections: int = 0
    """Employer: submissions it rejected (its own signed ``SubmissionRejected``)."""
    rejections_overturned: int = 0
    """Employer: rejections an arbiter ruled against, or that lapsed unbacked to the worker."""
    refunds_after_proof: int = 0
    """Employer: tasks refunded after a proof, cooperative cancels left out."""
    revocations: int = 0
    """Worker: claims the task's employer revoked after the claim timeout."""
    unclaims: int = 0
    """Worker: claims it released itself."""
    counterparties: dict[str, int] = field(default_factory=dict)
    """Counterparty pubkey -> tasks shared with it (claimed tasks)."""
    outcomes: list[Outcome] = field(default_factory=list)

    def as_dict(self, *, deal_counters: bool = True) -> dict[str, int | None]:
        """The published metrics; means are whole seconds, shares in parts per million.
        ``deal_counters``: include ``DEAL_COUNTERS`` (score version 2 and later)."""
        shared = sum(self.counterparties.values())
        squares = sum(n * n for n in self.counterparties.values())
        deal = {name: getattr(self, name) for name in DEAL_COUNTERS} if deal_counters else {}
        return {
            "tasks": self.tasks,
            "funded": self.funded,
            "completed": self.completed,
            "refunded": self.refunded,
            "cancelled": self.cancelled,
            "expired": self.expired,
            "disputes_opened": self.disputes_opened,
            "disputes_won": self.disputes_won,
            "disputes_lost": self.disputes_lost,
            "proofs_refused": self.proofs_refused,
            "volume_msat": self.volume_msat,
            "time_to_fund_s": _mean(self.fund_s_total, self.fund_n),
            "time_to_first_proof_s": _mean(self.proof_s_total, self.proof_n),
            "verified_to_paid_s": _mean(self.paid_s_total, self.paid_n),
            "reviews": self.reviews,
            "rating_avg_milli": _mean(1000 * self.rating_total, self.reviews),
            "counterparties": len(self.counterparties),
            "top_counterparty_ppm": (
                None if not shared else 1_000_000 * max(self.counterparties.values()) // shared
            ),
            "effective_counterparties_milli": (
                None if not squares else 1000 * shared * shared // squares
            ),
            **deal,
        }


def _mean(total: int, count: int) -> int | None:
    return None if count == 0 else total // count
