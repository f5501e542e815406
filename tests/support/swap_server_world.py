"""The devnet swap server in process, with everything around it: the Lightning simulator (the
server's node and taskhold's escrow node on one network), an in-memory chain, and a client that
speaks the Boltz API over httpx and signs with :mod:`taskhold.swaps.cooperative`.

The watcher is stepped by hand (:meth:`ServerWorld.tick`), never by the app's lifespan, so
every test sees the exact sequence of statuses with no timing involved.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey
from embit.transaction import Transaction
from fastapi import FastAPI

from support.fake_swap_chain import FakeChain
from support.swap_parties import CLIENT_SK
from taskhold.devnet.swap_server.app import SwapServerConfig, build_app
from taskhold.devnet.swap_server.watcher import Watcher
from taskhold.lightning.sim import SimNetwork, SimNode
from taskhold.swaps.tree import Network, SwapTree, SwapType, swap_tree
from taskhold.swaps.tx import SwapUtxo

__all__ = ["CLIENT_PUB", "Reverse", "ServerWorld", "Submarine", "new_world"]

CLIENT_PUB = PrivateKey(CLIENT_SK).public_key.format()
INVOICE_SAT = 100_000


@dataclass
class Submarine:
    """A submarine swap from the client's side: the escrow's hold invoice and Boltz's answer."""

    preimage: bytes
    payment_hash: bytes
    response: dict[str, Any]
    tree: SwapTree

    @property
    def id(self) -> str:
        return str(self.response["id"])


@dataclass
class Reverse:
    preimage: bytes
    payment_hash: bytes
    response: dict[str, Any]
    tree: SwapTree

    @property
    def id(self) -> str:
        return str(self.response["id"])


@dataclass
class ServerWorld:
    net: SimNetwork
    server_node: SimNode
    escrow: SimNode
    chain: FakeChain
    state_dir: Path
    config: SwapServerConfig
    app: FastAPI = field(init=False)
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        """Build the app (again) over the same state directory, node and chain."""
        self.app = build_app(
            lightning=self.server_node,
            chain=self.chain,
            state_dir=self.state_dir,
            config=self.config,
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://swap.test/v2"
        )

    async def restart(self) -> None:
        await self.close()
        self.start()

    async def close(self) -> None:
        await self.watcher.close()
        await self.http.aclose()

    @property
    def watcher(self) -> Watcher:
        watcher: Watcher = self.app.state.watcher
        return watcher

    async def tick(self, times: int = 1) -> None:
        """Step the watcher, letting a payment it started run between steps."""
        for _ in range(times):
            await self.watcher.tick()
            assert self.watcher.errors == [], self.watcher.errors
            for _ in range(5):
                await asyncio.sleep(0)

    async def status(self, swap_id: str) -> str:
        response = await self.http.get(f"/swap/{swap_id}")
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.http.post(path, json=body)

    # -- the client's side ---------------------------------------------------------------------

    async def create_submarine(self, amount_sat: int = INVOICE_SAT, **extra: Any) -> Submarine:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        hold = await self.escrow.create_hold_invoice(
            payment_hash, amount_sat * 1000, memo="task", expiry_seconds=3600, cltv_expiry_delta=40
        )
        body = {"from": "BTC", "to": "BTC", "invoice": hold.payment_request}
        body["refundPublicKey"] = CLIENT_PUB.hex()
        response = await self.post("/swap/submarine", {**body, **extra})
        assert response.status_code == 201, response.text
        data = response.json()
        tree = swap_tree(
            SwapType.SUBMARINE,
            boltz_pubkey=bytes.fromhex(data["claimPublicKey"]),
            client_pubkey=CLIENT_PUB,
            preimage_hash=payment_hash,
            timeout_block_height=data["timeoutBlockHeight"],
        )
        assert tree.address(Network.REGTEST) == data["address"]  # the client's own check
        return Submarine(preimage, payment_hash, data, tree)

    async def create_reverse(self, invoice_sat: int = INVOICE_SAT) -> Reverse:
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        response = await self.post(
            "/swap/reverse",
            {
                "from": "BTC",
                "to": "BTC",
                "preimageHash": payment_hash.hex(),
                "claimPublicKey": CLIENT_PUB.hex(),
                "invoiceAmount": invoice_sat,
            },
        )
        assert response.status_code == 201, response.text
        data = response.json()
        tree = swap_tree(
            SwapType.REVERSE,
            boltz_pubkey=bytes.fromhex(data["refundPublicKey"]),
            client_pubkey=CLIENT_PUB,
            preimage_hash=payment_hash,
            timeout_block_height=data["timeoutBlockHeight"],
        )
        assert tree.address(Network.REGTEST) == data["lockupAddress"]
        return Reverse(preimage, payment_hash, data, tree)

    async def lockup_utxo(self, swap_id: str, tree: SwapTree) -> SwapUtxo:
        """Find the swap output in the lockup transaction the status reports."""
        response = await self.http.get(f"/swap/{swap_id}")
        return self._output_of(response.json()["transaction"]["hex"], tree)

    async def lockup_utxo_of(self, swap_id: str, tree: SwapTree) -> SwapUtxo:
        """The reverse lockup as /swap/reverse/{id}/transaction reports it (any status)."""
        response = await self.http.get(f"/swap/reverse/{swap_id}/transaction")
        assert response.status_code == 200, response.text
        return self._output_of(response.json()["hex"], tree)

    @staticmethod
    def _output_of(tx_hex: str, tree: SwapTree) -> SwapUtxo:
        tx = Transaction.parse(bytes.fromhex(tx_hex))
        for vout, out in enumerate(tx.vout):
            if out.script_pubkey.data == tree.script_pubkey:
                return SwapUtxo(tx.txid().hex(), vout, out.value, tree)
        raise AssertionError("no output pays the swap tree")

    async def lockup_utxo_from_chain(self, swap: Submarine) -> SwapUtxo:
        """The client's own lockup, as the server reports it at /swap/submarine/{id}/transaction."""
        response = await self.http.get(f"/swap/submarine/{swap.id}/transaction")
        assert response.status_code == 200, response.text
        tx = Transaction.parse(bytes.fromhex(response.json()["hex"]))
        for vout, out in enumerate(tx.vout):
            if out.script_pubkey.data == swap.tree.script_pubkey:
                return SwapUtxo(tx.txid().hex(), vout, out.value, swap.tree)
        raise AssertionError("no output pays the swap tree")

    async def fund_submarine(self, swap: Submarine, amount_sat: int | None = None) -> str:
        amount = swap.response["expectedAmount"] if amount_sat is None else amount_sat
        return self.chain.fund(swap.response["address"], amount)


def new_world(
    tmp_path: Path, *, clock: Callable[[], float] = time.time, **config: Any
) -> ServerWorld:
    """``clock`` is the Lightning network's wall clock (invoice expiry)."""
    net = SimNetwork(clock=clock)
    return ServerWorld(
        net=net,
        server_node=SimNode(net, "swap"),
        escrow=SimNode(net, "escrow"),
        chain=FakeChain(),
        state_dir=tmp_path / "swap-server",
        # the tests' figures (a 130-block CLTV refused, timeouts mined past) are for 144 blocks
        config=SwapServerConfig(
            network=Network.REGTEST, **{"submarine_timeout_blocks": 144, **config}
        ),
    )
