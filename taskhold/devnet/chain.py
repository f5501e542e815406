"""Mining on the devnet, and waiting until every lnd node has seen the new tip.

lnd counts itself synced only when the tip is less than two hours old, so a reused chain needs a
fresh block before the nodes will open channels or route; tests that mine toward an HTLC's
expiry need every node to have processed each block before they look at invoice states.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from taskhold.devnet.btcd import BtcdRpc
from taskhold.devnet.lnd_node import LndAdmin
from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd_rest import json_int

__all__ = ["mine_and_sync", "wait_synced"]


async def wait_synced(
    btcd: BtcdRpc, nodes: Iterable[LndAdmin], *, within_seconds: float = 60.0
) -> int:
    """Wait until every node is ``synced_to_chain`` at btcd's height; return that height."""
    nodes = list(nodes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        height = await btcd.block_count()
        lagging = []
        for node in nodes:
            info = await node.getinfo()
            if not info.get("synced_to_chain") or json_int(info.get("block_height")) < height:
                lagging.append(f"{node.node.name}@{json_int(info.get('block_height'))}")
        if not lagging:
            return height
        if loop.time() > deadline:
            raise LightningError(
                f"lnd nodes not synced to height {height} within {within_seconds:.0f} s: "
                + ", ".join(lagging)
            )
        await asyncio.sleep(0.2)


async def mine_and_sync(
    btcd: BtcdRpc, nodes: Iterable[LndAdmin], blocks: int, *, step: int = 1
) -> list[str]:
    """Mine ``blocks`` blocks, ``step`` at a time, waiting for every node after each step.

    Small steps matter near an HTLC's expiry: lnd cancels a hold invoice 12 blocks before it,
    and a burst of blocks can race that cancel against the payer's force close.
    """
    nodes = list(nodes)
    hashes: list[str] = []
    remaining = blocks
    while remaining > 0:
        batch = min(step, remaining)
        hashes += await btcd.generate(batch)
        remaining -= batch
        if nodes:
            await wait_synced(btcd, nodes)
    return hashes
