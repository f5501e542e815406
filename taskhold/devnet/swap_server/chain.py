"""PLACEHOLDER (replaced at merge by the swap server's own ``chain.py``): the SwapChain protocol
exactly as the interface fixes it, so ``btcd_chain`` and ``__main__`` can be built and tested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ChainOutput", "ChainRefused", "SwapChain"]


@dataclass(frozen=True)
class ChainOutput:
    txid: str  # hex, display order
    vout: int
    amount_sat: int
    tx_hex: str  # the whole transaction
    confirmations: int  # 0 = in mempool


class ChainRefused(Exception):
    """The node refused a transaction (message says why)."""


@runtime_checkable
class SwapChain(Protocol):
    async def height(self) -> int: ...

    async def find_output(self, script_pubkey: bytes, *, since_height: int) -> ChainOutput | None:
        """An output paying exactly script_pubkey, in the mempool or in a block at or above
        since_height; the first found (lowest height, mempool last). None if none."""
        ...

    async def find_spend(self, txid: str, vout: int, *, since_height: int) -> str | None:
        """Hex of the transaction spending txid:vout (mempool or a block >= since_height), or
        None."""
        ...

    async def broadcast(self, tx_hex: str) -> str:
        """Send to the network; return the txid. ChainRefused if the node rejects it."""
        ...

    async def send_to_address(self, address: str, amount_sat: int) -> str:
        """Pay from the server's own wallet (reverse-swap lockups); return the txid."""
        ...

    async def new_address(self) -> str:
        """A fresh address of the server's own wallet (where its claims and refunds sweep)."""
        ...
