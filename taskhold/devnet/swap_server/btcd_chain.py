"""The swap server's :class:`~.chain.SwapChain` on the devnet: btcd for the chain, the swap node's
lnd wallet for its own coins.

btcd has no address index and no ZMQ, so outputs and spends are found by scanning: blocks at or
above ``since_height`` (``getblock`` with verbosity 2, transactions decoded) and the mempool
(``getrawmempool``, then ``getrawtransaction`` verbose for each new entry). Scanned blocks and
mempool entries are cached, so the watcher's repeated polls cost three small calls each; the
cache is dropped if the highest cached block is no longer on the chain (a reorg).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from taskhold.devnet.btcd import BtcdRpc, BtcdRpcRefused
from taskhold.devnet.layout import Layout, State
from taskhold.devnet.swap_server.chain import ChainOutput, ChainRefused
from taskhold.lightning.lnd_rest import LndRest

__all__ = ["BtcdSwapChain"]

SWAP_NODE = "swap"
_SAT_PER_BTC = Decimal(100_000_000)


@dataclass(frozen=True, slots=True)
class _Tx:
    txid: str
    hex: str
    outputs: tuple[tuple[bytes, int], ...]  # (script_pubkey, amount_sat) by vout
    inputs: tuple[tuple[str, int], ...]  # (txid, vout) spent; none for a coinbase


@dataclass(frozen=True, slots=True)
class _Block:
    height: int
    hash: str
    txs: tuple[_Tx, ...]


def _tx(verbose: dict[str, Any]) -> _Tx:
    """A transaction from btcd's verbose JSON (``getrawtransaction 1`` or ``getblock 2``)."""
    outputs = tuple(
        (
            bytes.fromhex(output["scriptPubKey"]["hex"]),
            int(Decimal(str(output["value"])) * _SAT_PER_BTC),
        )
        for output in sorted(verbose.get("vout") or (), key=lambda output: int(output["n"]))
    )
    inputs = tuple(
        (str(spent["txid"]), int(spent["vout"]))
        for spent in verbose.get("vin") or ()
        if "txid" in spent
    )
    return _Tx(txid=str(verbose["txid"]), hex=str(verbose["hex"]), outputs=outputs, inputs=inputs)


class BtcdSwapChain:
    """SwapChain over btcd's JSON-RPC and the swap node's lnd wallet (REST)."""

    def __init__(self, btcd: BtcdRpc, wallet: LndRest) -> None:
        self._btcd = btcd
        self._wallet = wallet
        self._blocks: dict[int, _Block] = {}
        self._mempool: dict[str, _Tx] = {}
        self._scan_lock = asyncio.Lock()

    @classmethod
    def for_devnet(cls, layout: Layout, state: State) -> BtcdSwapChain:
        """btcd of ``layout`` and the wallet of its swap node."""
        node = layout.node(SWAP_NODE)
        return cls(
            BtcdRpc(layout, state),
            LndRest(node.rest_url, node.tls_cert_path, node.macaroon_path),
        )

    async def aclose(self) -> None:
        await self._wallet.aclose()

    # -- the chain ---------------------------------------------------------------------------

    async def height(self) -> int:
        return await self._btcd.block_count()

    async def find_output(self, script_pubkey: bytes, *, since_height: int) -> ChainOutput | None:
        """An output paying exactly script_pubkey, in the mempool or in a block at or above
        since_height; the first found (lowest height, mempool last). None if none."""
        tip, blocks, mempool = await self._scan(since_height)
        for block in blocks:
            for tx in block.txs:
                found = _paying(tx, script_pubkey, confirmations=tip - block.height + 1)
                if found is not None:
                    return found
        for tx in mempool:
            found = _paying(tx, script_pubkey, confirmations=0)
            if found is not None:
                return found
        return None

    async def find_spend(self, txid: str, vout: int, *, since_height: int) -> str | None:
        """Hex of the transaction spending txid:vout (mempool or a block >= since_height), or
        None."""
        _, blocks, mempool = await self._scan(since_height)
        spent = (txid, vout)
        for tx in (*(tx for block in blocks for tx in block.txs), *mempool):
            if spent in tx.inputs:
                return tx.hex
        return None

    async def broadcast(self, tx_hex: str) -> str:
        """Send to the network; return the txid. ChainRefused if the node rejects it."""
        try:
            return str(await self._btcd.call("sendrawtransaction", tx_hex))
        except BtcdRpcRefused as refused:
            raise ChainRefused(refused.reason) from None

    # -- the server's wallet -----------------------------------------------------------------

    async def send_to_address(self, address: str, amount_sat: int) -> str:
        """Pay from the server's own wallet (reverse-swap lockups); return the txid.

        Unconfirmed change may be spent, so lockups in a row need no block in between."""
        answer = await self._wallet.call(
            "POST",
            "/v1/transactions",
            body={"addr": address, "amount": str(amount_sat), "spend_unconfirmed": True},
        )
        return str(answer["txid"])

    async def new_address(self) -> str:
        """A fresh taproot address of the server's own wallet."""
        answer = await self._wallet.call("GET", "/v1/newaddress", params={"type": "TAPROOT_PUBKEY"})
        return str(answer["address"])

    # -- scanning ----------------------------------------------------------------------------

    async def _scan(self, since_height: int) -> tuple[int, list[_Block], list[_Tx]]:
        """btcd's tip height, the blocks from ``since_height`` to it (ascending), the mempool."""
        async with self._scan_lock:
            tip = await self._btcd.block_count()
            await self._drop_reorged(tip)
            blocks = []
            for height in range(max(since_height, 0), tip + 1):
                if height not in self._blocks:
                    self._blocks[height] = await self._block(height)
                blocks.append(self._blocks[height])
            mempool = await self._mempool_txs()
        return tip, blocks, mempool

    async def _drop_reorged(self, tip: int) -> None:
        if not self._blocks:
            return
        highest = max(self._blocks)
        if highest > tip or await self._btcd.call("getblockhash", highest) != (
            self._blocks[highest].hash
        ):
            self._blocks.clear()

    async def _block(self, height: int) -> _Block:
        block_hash = str(await self._btcd.call("getblockhash", height))
        block = await self._btcd.call("getblock", block_hash, 2)
        # btcd puts the decoded transactions under "rawtx" (Bitcoin Core: objects under "tx").
        decoded = block.get("rawtx") or [tx for tx in block.get("tx") or () if isinstance(tx, dict)]
        return _Block(height=height, hash=block_hash, txs=tuple(_tx(tx) for tx in decoded))

    async def _mempool_txs(self) -> list[_Tx]:
        txids = [str(txid) for txid in await self._btcd.call("getrawmempool")]
        for txid in txids:
            if txid not in self._mempool:
                try:
                    self._mempool[txid] = _tx(await self._btcd.call("getrawtransaction", txid, 1))
                except BtcdRpcRefused:
                    continue  # gone from the mempool since getrawmempool (mined or replaced)
        current = set(txids)
        for txid in [txid for txid in self._mempool if txid not in current]:
            del self._mempool[txid]
        return [self._mempool[txid] for txid in txids if txid in self._mempool]


def _paying(tx: _Tx, script_pubkey: bytes, *, confirmations: int) -> ChainOutput | None:
    for vout, (script, amount_sat) in enumerate(tx.outputs):
        if script == script_pubkey:
            return ChainOutput(
                txid=tx.txid,
                vout=vout,
                amount_sat=amount_sat,
                tx_hex=tx.hex,
                confirmations=confirmations,
            )
    return None
