"""PLACEHOLDER (replaced at merge by the swap server's own ``app.py``): ``build_app`` with the
interface's signature, serving only ``GET /v2/chain/BTC/height``, so the devnet's process
management of the swap server can be built and tested. No swap logic belongs here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from fastapi import FastAPI

from taskhold.devnet.swap_server.chain import SwapChain
from taskhold.lightning.base import LightningBackend
from taskhold.swaps.tree import Network

__all__ = ["SwapServerConfig", "build_app"]


@dataclass(frozen=True)
class SwapServerConfig:
    network: Network
    submarine_fee_percent: Decimal = Decimal("0.1")
    reverse_fee_percent: Decimal = Decimal("0.5")
    submarine_miner_fee_sat: int = 300
    reverse_lockup_fee_sat: int = 300
    reverse_claim_fee_sat: int = 200
    minimal_sat: int = 10_000
    maximal_sat: int = 5_000_000
    submarine_timeout_blocks: int = 144
    reverse_timeout_blocks: int = 72
    poll_seconds: float = 0.5
    cooperative: bool = True


def build_app(
    *, lightning: LightningBackend, chain: SwapChain, state_dir: Path, config: SwapServerConfig
) -> FastAPI:
    """Only the chain height (placeholder)."""
    app = FastAPI()

    @app.get("/v2/chain/BTC/height")
    async def height() -> int:
        return await chain.height()

    return app
