"""Policies derived from a score: how long the review window is, how much proof of work to ask.

Pure functions of a score (0-1000, see ``score``) and the configured thresholds, so the same
record always gets the same treatment and ``GET /v1/info`` can state the rules exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from taskhold.settings import Settings

__all__ = ["ReputationPolicy"]


@dataclass(frozen=True, slots=True)
class ReputationPolicy:
    pow_max_bits: int = 0
    pow_free_score: int = 500
    review_window_good_score: int = 600
    review_window_good_pct: int = 50
    review_window_top_score: int = 800
    review_window_top_pct: int = 25
    review_window_min_s: int = 3600
    deposit_pct: int = 10
    deposit_min_msat: int = 10_000
    deposit_max_msat: int = 100_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ReputationPolicy:
        return cls(
            pow_max_bits=settings.pow_max_bits,
            pow_free_score=settings.pow_free_score,
            review_window_good_score=settings.review_window_good_score,
            review_window_good_pct=settings.review_window_good_pct,
            review_window_top_score=settings.review_window_top_score,
            review_window_top_pct=settings.review_window_top_pct,
            review_window_min_s=settings.review_window_min_s,
            deposit_pct=settings.deposit_pct,
            deposit_min_msat=settings.deposit_min_msat,
            deposit_max_msat=settings.deposit_max_msat,
        )

    def pow_bits_for(self, score: int) -> int:
        """NIP-13 difficulty asked of a pubkey with ``score``: ``pow_max_bits`` at 0, falling
        linearly (rounded up) to none at ``pow_free_score``."""
        if self.pow_max_bits <= 0 or score >= self.pow_free_score:
            return 0
        if self.pow_free_score <= 0:
            return 0
        missing = self.pow_free_score - max(0, score)
        return -(-self.pow_max_bits * missing // self.pow_free_score)

    def deposit_msat_for(self, score: int, task_amount_msat: int) -> int:
        """The deposit that stands in for proof of work on a task of ``task_amount_msat``: none
        when no proof of work is asked, else ``deposit_pct`` of the amount at score 0, falling
        linearly (rounded up) with the score, kept within ``deposit_min_msat``..``_max_msat``."""
        if self.pow_bits_for(score) == 0:
            return 0
        missing = self.pow_free_score - max(0, score)
        scaled = -(-task_amount_msat * self.deposit_pct * missing // (100 * self.pow_free_score))
        return min(self.deposit_max_msat, max(self.deposit_min_msat, scaled))

    def review_window_for(
        self, employer_score: int | None, worker_score: int | None, default: int
    ) -> int:
        """The review window before auto-release, shrunk for parties with a good record.

        The lower known score decides (a window protects both sides); unknown scores (``None``,
        e.g. no worker yet at creation) are left out. Never longer than ``default``, and never
        shrunk below ``review_window_min_s``.
        """
        known = [score for score in (employer_score, worker_score) if score is not None]
        if not known:
            return default
        score = min(known)
        if score >= self.review_window_top_score:
            pct = self.review_window_top_pct
        elif score >= self.review_window_good_score:
            pct = self.review_window_good_pct
        else:
            return default
        return min(default, max(self.review_window_min_s, default * pct // 100))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
