"""taskhold and the devnet swap server side by side, in process: the participants' on-chain
flows (``taskhold.onchain``) run against both without a devnet.

One simulator network carries taskhold's escrow node, the employer's and worker's nodes and
the swap server's node; an in-memory chain (:class:`FakeChain`, which checks every spend)
carries the swaps' outputs. A background driver runs taskhold's engine and the swap server's
watcher; the test decides when blocks are mined on the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey
from fastapi import FastAPI

from support.fake_swap_chain import FakeChain
from support.stacks import Stack, close_stack, open_stack, stack_settings
from taskhold.boltz.api import BoltzApi
from taskhold.boltz.records import SwapRecords
from taskhold.client import TaskholdClient
from taskhold.devnet.swap_server.app import SwapServerConfig, build_app
from taskhold.devnet.swap_server.watcher import Watcher
from taskhold.lightning.sim import SimNode
from taskhold.lightning.simworld import SimWorld
from taskhold.swaps.tree import Network, segwit_address

__all__ = ["AMOUNT_MSAT", "ChainWallet", "OnChainWorld", "onchain_world"]

AMOUNT_MSAT = 150_000_000
SWAP_URL = "http://127.0.0.1:9/v2"
"""Loopback, as the settings ask of plain http; the ASGI transport answers, never a socket."""


class ChainWallet:
    """A participant's on-chain wallet on the fake chain: what it sent, where it receives."""

    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain
        self.sent: list[tuple[str, int, str]] = []
        self.addresses: list[str] = []

    async def send_to_address(self, address: str, amount_sat: int) -> str:
        txid = self.chain.fund(address, amount_sat)
        self.sent.append((address, amount_sat, txid))
        return txid

    async def new_address(self) -> str:
        address = segwit_address(Network.REGTEST, 1, PrivateKey().public_key.format()[1:])
        self.addresses.append(address)
        return address

    def received_sat(self) -> int:
        """What the chain holds for this wallet's addresses (mempool included)."""
        from embit.script import address_to_scriptpubkey

        scripts = {address_to_scriptpubkey(a).data for a in self.addresses}
        return sum(
            out.value
            for entry in self.chain.txs
            for out in entry.tx.vout
            if out.script_pubkey.data in scripts
        )


@dataclass
class OnChainWorld:
    stack: Stack
    chain: FakeChain
    swap_node: SimNode
    swap_app: FastAPI
    api: BoltzApi
    employer_wallet: ChainWallet
    worker_wallet: ChainWallet
    tmp_path: Path

    @property
    def watcher(self) -> Watcher:
        watcher: Watcher = self.swap_app.state.watcher
        return watcher

    @property
    def world(self) -> SimWorld:
        return self.stack.world

    def client(self) -> TaskholdClient:
        return self.stack.client()

    def records(self, who: str) -> SwapRecords:
        return SwapRecords(self.tmp_path / f"{who}-swaps")

    def boltz(self) -> BoltzApi:
        """Another client of the swap server (the fallback opens its own)."""
        return BoltzApi(SWAP_URL, transport=httpx.ASGITransport(app=self.swap_app))

    async def until(
        self, check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def state_is(self, task_id: str, *states: str) -> None:
        client = self.client()

        async def reached() -> bool:
            return (await client.get_task(task_id))["state"] in states

        await self.until(reached, f"task {task_id[:8]} in {states}")

    async def new_task(self, employer: TaskholdClient, **terms: Any) -> str:
        task = await employer.create_task(
            "Translate the README",
            "",
            AMOUNT_MSAT,
            int(time.time()) + 3600,
            acceptance={"required_fields": ["url"], "url_fields": ["url"]},
            **terms,
        )
        return str(task["task_id"])

    async def funded_by_lightning(self, employer: TaskholdClient) -> str:
        task_id = await self.new_task(employer)
        funding = (await employer.request_funding(task_id))["funding"]
        await self.world.employer.send_payment(funding["payment_request"])
        await self.state_is(task_id, "FUNDED")
        return task_id


async def _drive(world: OnChainWorld) -> None:
    """taskhold's engine passes and the swap server's watcher ticks, until cancelled."""
    while True:
        await world.stack.settle_engine(passes=1)
        await world.watcher.tick()
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def onchain_world(
    tmp_path: Path, database_url: str, **settings: Any
) -> AsyncIterator[OnChainWorld]:
    config = SwapServerConfig(
        network=Network.REGTEST,
        submarine_timeout_blocks=432,
        reverse_timeout_blocks=72,
        poll_seconds=0.02,
    )
    values = {"swap_api_url": SWAP_URL, "payout_timeout_s": 1, **settings}
    stack = await open_stack(stack_settings(tmp_path, database_url, **values))
    # One chain in the real world: the fake one starts at the simulator's height
    chain = FakeChain(tip=stack.world.network.height)
    swap_node = SimNode(stack.world.network, "swap", balance_msat=50_000_000_000)
    swap_app = build_app(
        lightning=swap_node, chain=chain, state_dir=tmp_path / "swap-server", config=config
    )
    api = BoltzApi(SWAP_URL, transport=httpx.ASGITransport(app=swap_app))
    world = OnChainWorld(
        stack, chain, swap_node, swap_app, api, ChainWallet(chain), ChainWallet(chain), tmp_path
    )
    driver = asyncio.create_task(_drive(world))
    try:
        yield world
    finally:
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
        await world.watcher.close()
        await api.aclose()
        await close_stack(stack)
