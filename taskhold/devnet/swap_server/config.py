"""The swap server's settings: network, fees, limits, timeouts (re-exported by :mod:`.app`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from taskhold.swaps.tree import Network

__all__ = ["SwapServerConfig"]


@dataclass(frozen=True)
class SwapServerConfig:
    network: Network  # taskhold.swaps.tree.Network (regtest on the devnet)
    submarine_fee_percent: Decimal = Decimal("0.1")
    reverse_fee_percent: Decimal = Decimal("0.5")
    submarine_miner_fee_sat: int = 300
    reverse_lockup_fee_sat: int = 300
    reverse_claim_fee_sat: int = 200
    minimal_sat: int = 10_000
    maximal_sat: int = 5_000_000
    submarine_timeout_blocks: int = 432
    """Three days. A taskhold hold invoice keeps at least ~170 blocks (the guard, the payout
    margin and reserve), and Boltz pays it only under ``timeout - 20``; Boltz's own taproot
    default is about a week, shorter here so a script-path refund test mines fewer blocks."""
    reverse_timeout_blocks: int = 72
    poll_seconds: float = 0.5
    cooperative: bool = True  # False: refuses every cooperative signature (hostile tests)
