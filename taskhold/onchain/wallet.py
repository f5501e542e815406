"""The participant's own on-chain wallet, as the swap flows use it.

The employer pays a submarine swap's lockup from it; a claim or refund goes to one of its
addresses. ``LndWallet`` (an lnd node's wallet) has these methods; any wallet with them will do.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["OnChainWallet"]


class OnChainWallet(Protocol):
    async def send_to_address(self, address: str, amount_sat: int) -> str:
        """Pay ``amount_sat`` to ``address``; return the txid."""
        ...

    async def new_address(self) -> str:
        """A fresh receiving address of this wallet."""
        ...
