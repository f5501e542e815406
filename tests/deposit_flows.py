"""Deposit flows over the API on the simulator, shared by the reputation and audit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import Stack

from taskhold.client import TaskholdClient


async def give_worker_wallet_money(stack: Stack, amount_msat: int = 1_000_000_000) -> None:
    """The simulated worker node starts empty; deposits are paid before any reward came in."""
    invoice = await stack.world.worker.create_invoice(amount_msat)
    await stack.world.employer.send_payment(invoice)


def stranger(stack: Stack) -> TaskholdClient:
    """A client that never mines: every write it makes must be excused by a deposit."""
    client = stack.client()
    client._auto_pow = False
    return client


def deposit_of(task: dict[str, Any], pubkey: str) -> dict[str, Any]:
    deposit: dict[str, Any] = [d for d in task["deposits"] if d["depositor"] == pubkey][-1]
    return deposit


async def locked_deposit(stack: Stack, client: TaskholdClient, task_id: str, wallet: Any) -> int:
    """Lock ``client``'s deposit on the task, paid from ``wallet``; returns the amount."""
    deposit = (await client.lock_deposit(task_id))["deposit"]
    assert deposit["state"] == "OPEN"
    await wallet.send_payment(deposit["payment_request"])
    await stack.settle_engine(1)
    held = deposit_of(await client.get_task(task_id), client.pubkey_hex)
    assert held["state"] == "HELD"
    amount: int = held["amount_msat"]
    return amount


def share_clock(stack: Stack, now: list[float], *clients: TaskholdClient) -> None:
    """The engine, the simulated network and ``clients`` read time from ``now[0]``."""
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    stack.services.engine.ctx.clock = clock
    stack.world.network.clock = clock
    for client in clients:
        client._clock = clock
