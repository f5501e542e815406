"""The worker's client takes an on-chain payout by itself once taskhold offers one.

When a Lightning payout keeps failing for want of a route, taskhold says so in the task view
(``payout_fallback``) and in a notification. A client run with an :class:`OnChainFallback`
(an address and a fee cap) answers without a person: it creates the reverse swap at the offered
swap API (or its own choice), hands Boltz's invoice to taskhold as the new payout invoice, and
claims the lockup when it appears. It never starts a second swap for the same task while one is
open in its records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.records import SwapRecords
from taskhold.client import TaskholdClient
from taskhold.swaps.tree import Network

from .payout import claim_payout, start_payout_swap
from .spending import Spend

__all__ = ["OnChainFallback", "await_payout"]


@dataclass(frozen=True, slots=True)
class OnChainFallback:
    """What the worker's client needs to take a payout on chain without asking anyone."""

    address: str
    records: SwapRecords
    network: Network
    max_fee_sat: int
    swap_api: str | None = None
    """A Boltz API the worker trusts; None: the one taskhold offers in ``payout_fallback``."""
    claim_timeout_s: float = 3600.0
    zero_conf: bool = False
    transport: httpx.AsyncBaseTransport | None = None
    """Replaces the network to the swap API (tests answer in process)."""


def _open_payout_swap(fallback: OnChainFallback, task_id: str) -> str | None:
    for record in fallback.records.open_swaps():
        if record.task_id == task_id and record.preimage_hex is not None:
            return record.swap_id
    return None


async def await_payout(
    client: TaskholdClient,
    task_id: str,
    *,
    on_chain_fallback: OnChainFallback | None = None,
    timeout_s: float = 3600.0,
    poll_s: float = 2.0,
) -> Spend | None:
    """Wait until ``task_id`` is PAID; with ``on_chain_fallback``, answer an on-chain offer on
    the way. Returns the on-chain claim if the payout went that way."""
    claimed: Spend | None = None
    async with asyncio.timeout(timeout_s):
        while True:
            task = await client.get_task(task_id)
            if task["state"] == "PAID":
                return claimed
            offer = task.get("payout_fallback") or {}
            if on_chain_fallback is not None and claimed is None and offer.get("on_chain"):
                claimed = await _take_on_chain(client, task, on_chain_fallback, offer)
            await asyncio.sleep(poll_s)


async def _take_on_chain(
    client: TaskholdClient,
    task: dict[str, object],
    fallback: OnChainFallback,
    offer: dict[str, object],
) -> Spend:
    url = fallback.swap_api or str(offer.get("swap_api") or "")
    if not url:
        raise ValueError("taskhold offers an on-chain payout but names no swap API; set one")
    async with BoltzApi(url, transport=fallback.transport) as api:
        task_id = str(task["task_id"])
        swap_id = _open_payout_swap(fallback, task_id)
        if swap_id is None:
            swap = await start_payout_swap(
                client,
                api,
                fallback.records,
                task_id,
                network=fallback.network,
                max_fee_sat=fallback.max_fee_sat,
            )
            swap_id, invoice = swap.swap_id, swap.invoice
        else:  # resumed: the invoice may never have reached taskhold before the client stopped
            invoice = fallback.records.get(swap_id).invoice
        if task.get("payout_invoice") != invoice:
            await client.update_payout_invoice(task_id, invoice)
        return await claim_payout(
            client,
            api,
            fallback.records,
            swap_id,
            fallback.address,
            timeout_s=fallback.claim_timeout_s,
            zero_conf=fallback.zero_conf,
        )
