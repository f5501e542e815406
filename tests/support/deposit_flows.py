"""Deposit flows over the API on the simulator, shared by the reputation and audit tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.audit_logs import RealLog
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, read_log
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


@dataclass
class AbandonedClaim:
    """A stranger worker locked a deposit, claimed, and let the deadline pass without a proof."""

    now: list[float]
    employer: TaskholdClient
    worker: TaskholdClient
    task: dict[str, Any]
    amount_msat: int
    worker_before_msat: int
    """The worker's balance after funding, before the deposit was locked."""
    employer_before_msat: int
    """The employer's balance after funding (the reward's HTLC in flight)."""

    @property
    def task_id(self) -> str:
        task_id: str = self.task["task_id"]
        return task_id


async def abandoned_claim(stack: Stack) -> AbandonedClaim:
    """The worker's deposit ends FORFEIT to the employer; time runs on ``now[0]``."""
    now = [1_900_000_000.0]
    employer, worker = stack.client(), stranger(stack)
    share_clock(stack, now, employer, worker)
    task = await funded(stack, employer, deadline_at=int(now[0]) + 600)
    worker_before = stack.world.worker.balance_msat
    employer_before = stack.world.employer.balance_msat
    amount = await locked_deposit(stack, worker, task["task_id"], stack.world.worker)
    await worker.claim(task["task_id"])
    now[0] += 601  # the deadline passes without a proof
    await stack.settle_engine()
    return AbandonedClaim(now, employer, worker, task, amount, worker_before, employer_before)


@contextlib.asynccontextmanager
async def deposits_log(tmp_path: Path, database_url: str) -> AsyncIterator[RealLog]:
    """One deposit returned after a paid task, one forfeited and paid to the employer."""
    stack: Stack = await open_stack(
        stack_settings(tmp_path, database_url, pow_max_bits=8, reputation_max_staleness_s=0)
    )
    try:
        await give_worker_wallet_money(stack)
        now = [1_900_000_000.0]
        employer, worker, quitter = stack.client(), stranger(stack), stranger(stack)
        share_clock(stack, now, employer, worker, quitter)

        kept = await funded(stack, employer, deadline_at=int(now[0]) + 3600)
        await locked_deposit(stack, worker, kept["task_id"], stack.world.worker)
        await submitted_by(stack, employer, worker, kept)

        dropped = await funded(stack, employer, deadline_at=int(now[0]) + 600)
        amount = await locked_deposit(stack, quitter, dropped["task_id"], stack.world.worker)
        await quitter.claim(dropped["task_id"])
        now[0] += 601
        await stack.settle_engine()
        invoice = await stack.world.employer.create_invoice(amount, expiry_seconds=86_400)
        await employer.claim_deposit(dropped["task_id"], quitter.pubkey_hex, invoice)
        await stack.settle_engine()
        yield RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))
    finally:
        await close_stack(stack)


async def submitted_by(
    stack: Stack, employer: TaskholdClient, worker: TaskholdClient, task: dict[str, Any]
) -> None:
    """The worker claims, proves and is approved: the task is PAID."""
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
