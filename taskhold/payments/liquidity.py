"""Payouts waiting for the escrow node's own outbound liquidity: the operator's alert.

A verified task whose payout cannot go out because the escrow node lacks outbound liquidity is
not the worker's fault, so it is not counted as a failed attempt (which would ask the worker for
a new invoice, and end in a refund of work done): the payment waits and is retried, and the
operator is told, in the log (``payout_short_of_liquidity``, an error) and on the metrics. The
guard margin still decides the hold as it nears expiry, by the declared policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LiquidityWatch"]


@dataclass
class LiquidityWatch:
    """What waits for outbound liquidity now, and how often a payout found it short."""

    waiting: dict[str, int] = field(default_factory=dict)
    """Payout owner (``task/<id>`` …) → the amount it waits to pay (msat)."""
    behind: dict[str, bytes] = field(default_factory=dict)
    """Payout owner → the hold invoice it stands behind: in a pool, its node is the short one."""
    shortages_total: int = 0
    """Attempts that found the node short, since the process started."""

    def short(self, owner: str, amount_msat: int, behind: bytes | None = None) -> None:
        self.waiting[owner] = amount_msat
        if behind is not None:
            self.behind[owner] = behind
        self.shortages_total += 1

    def cleared(self, owner: str) -> None:
        self.waiting.pop(owner, None)
        self.behind.pop(owner, None)

    @property
    def waiting_msat(self) -> int:
        return sum(self.waiting.values())
