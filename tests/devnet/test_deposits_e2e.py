"""Deposits on the real regtest network: a stranger's deposit is a real hold invoice at the
escrow node, paid from the worker's own lnd node, returned when the task ends and paid out to
the employer (then settled) when the worker abandons a claim.

The settings ask strangers (score 0) for proof of work; the worker's client never mines, so
every write it makes must be excused by its deposit. Time is passed on a shared clock (the
escrow context's and the clients'): wall clock plus a skew the test advances, so a deadline
passes at once and nothing waits for it. Balances are read at the nodes and compared exactly:
every payment here crosses one direct channel (employer-escrow, escrow-worker), so there are no
routing fees, as in ``test_escrow_e2e``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.devnet_network import DevnetHandle, local_balance_reaches
from support.hand_driven import drive_by_hand

from taskhold.api.application import create_api
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.lightning.base import InvoiceState, InvoiceStatus, LightningError
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.services import Services, build_services
from taskhold.settings import Settings

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

AMOUNT_MSAT = 40_000_000
POW_BITS = 8
DEPOSIT_PCT = 10
DEPOSIT_MSAT = AMOUNT_MSAT * DEPOSIT_PCT // 100  # what a score of 0 locks
ACCEPTANCE = {"required_fields": ["url"], "url_fields": ["url"]}
DEADLINE_S = 300


@dataclass
class DepositStack:
    services: Services
    http: httpx.AsyncClient
    employer_wallet: LndWallet
    worker_wallet: LndWallet
    escrow_wallet: LndWallet
    employer_node: LndBackend
    skew_s: float = 0.0
    holds: list[str] = field(default_factory=list)
    """Every hold invoice made: one a failed test left held is cancelled at teardown, so
    the next test's balances are not thrown off by its HTLC."""

    def now(self) -> float:
        return time.time() + self.skew_s

    def pass_time(self, seconds: float) -> None:
        self.skew_s += seconds

    def client(self, *, stranger: bool = False) -> TaskholdClient:
        """A client on the stack's clock; a stranger never mines proof of work."""
        return TaskholdClient(
            "http://taskhold.test",
            NostrKeys.generate(),
            http=self.http,
            clock=self.now,
            auto_pow=not stranger,
        )

    async def drive(self, until: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
        """Run engine passes until ``until()`` holds (real nodes answer asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.services.engine.reconcile()
            if await until():
                return
            await asyncio.sleep(0.3)
        raise AssertionError("the engine did not get there in time")

    async def escrow_invoice(self, payment_hash: str) -> InvoiceStatus:
        return await self.services.lightning.lookup_invoice(bytes.fromhex(payment_hash))

    async def cancel_leftover_holds(self) -> None:
        for payment_hash in self.holds:
            with contextlib.suppress(LightningError):
                if (await self.escrow_invoice(payment_hash)).state in (
                    InvoiceState.OPEN,
                    InvoiceState.ACCEPTED,
                ):
                    await self.services.lightning.cancel_invoice(bytes.fromhex(payment_hash))


@pytest.fixture
async def stack(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[DepositStack]:
    connection = json.loads(devnet.connection_file.read_text())
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        lightning="lnd",
        lnd_connection_file=devnet.connection_file,
        hold_expiry_delta=int(connection.get("hold_expiry_delta", 18)),
        default_review_window_s=600,
        default_dispute_window_s=600,
        payout_timeout_s=20,
        engine_tick_s=0.2,
        reconcile_interval_s=2.0,
        pow_max_bits=POW_BITS,
        deposit_pct=DEPOSIT_PCT,
        reputation_max_staleness_s=0,
    )
    services = await build_services(settings, lightning=devnet.backend("escrow"))
    drive_by_hand(services)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.test",
        timeout=60,
    )
    built = DepositStack(
        services,
        http,
        devnet.wallet("employer"),
        devnet.wallet("worker"),
        devnet.wallet("escrow"),
        devnet.backend("employer"),
    )
    services.engine.ctx.clock = built.now  # the API reads the same context's clock
    try:
        yield built
    finally:
        await built.cancel_leftover_holds()
        await http.aclose()
        await services.close()
        await built.employer_node.close()
        for wallet in (built.employer_wallet, built.worker_wallet, built.escrow_wallet):
            await wallet.close()


async def settled_balance(wallet: LndWallet) -> int:
    """The local channel balance once it has stopped moving and no HTLC is pending."""
    previous = -1
    for _ in range(50):
        balance = await wallet.channel_balance()
        if balance.local_msat == previous and balance.unsettled_local_msat == 0:
            return balance.local_msat
        previous = balance.local_msat
        await asyncio.sleep(0.2)
    raise AssertionError(f"the balance never settled: {balance}")


def state_of(task: dict[str, Any]) -> str:
    return str(task["state"])


def deposit_of(task: dict[str, Any], pubkey: str) -> dict[str, Any]:
    mine: list[dict[str, Any]] = [d for d in task["deposits"] if d["depositor"] == pubkey]
    assert mine, f"no deposit by {pubkey[:8]} on the task"
    return mine[-1]


async def refused(call: Awaitable[Any]) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await call
    return caught.value


async def funded_task(
    stack: DepositStack, employer: TaskholdClient, deadline_s: int = 1800
) -> dict[str, Any]:
    task = await employer.create_task(
        "Review a pull request",
        "Leave a review",
        AMOUNT_MSAT,
        int(stack.now()) + deadline_s,
        acceptance=ACCEPTANCE,
    )
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    stack.holds.append(funding["payment_hash"])
    paid = await stack.employer_wallet.send_payment(funding["payment_request"])
    assert paid.status.value in ("IN_FLIGHT", "SUCCEEDED"), paid

    async def is_funded() -> bool:
        return state_of(await employer.get_task(task["task_id"])) == "FUNDED"

    await stack.drive(is_funded)
    return await employer.get_task(task["task_id"])


async def held_deposit(
    stack: DepositStack, worker: TaskholdClient, task_id: str, worker_before: int
) -> dict[str, Any]:
    """Lock the worker's deposit, pay it from the worker's node, see it held at the escrow."""
    deposit = (await worker.lock_deposit(task_id))["deposit"]
    stack.holds.append(deposit["payment_hash"])
    assert (deposit["state"], deposit["role"]) == ("OPEN", "worker")
    assert deposit["amount_msat"] == DEPOSIT_MSAT
    opened = await stack.escrow_invoice(deposit["payment_hash"])
    assert (opened.state, opened.amount_msat) == (InvoiceState.OPEN, DEPOSIT_MSAT)
    assert (await refused(worker.claim(task_id))).code == "pow_required"  # not held yet

    paid = await stack.worker_wallet.send_payment(deposit["payment_request"])
    assert paid.status.value == "IN_FLIGHT", paid  # a hold invoice: the HTLC waits

    async def is_held() -> bool:
        task = await worker.get_task(task_id)
        return state_of(deposit_of(task, worker.pubkey_hex)) == "HELD"

    await stack.drive(is_held)
    held = deposit_of(await worker.get_task(task_id), worker.pubkey_hex)
    at_node = await stack.escrow_invoice(deposit["payment_hash"])
    assert at_node.state is InvoiceState.ACCEPTED
    assert at_node.amount_paid_msat == DEPOSIT_MSAT
    assert held["accepted_htlc_expiry_height"] == at_node.accepted_htlc_expiry_height
    assert held["accepted_htlc_expiry_height"] > await stack.services.lightning.block_height()
    worker_now = await local_balance_reaches(stack.worker_wallet, worker_before - DEPOSIT_MSAT)
    assert worker_now == worker_before - DEPOSIT_MSAT  # the HTLC left the worker's node
    return held


async def test_a_strangers_deposit_is_held_then_returned_when_the_task_is_paid(
    stack: DepositStack,
) -> None:
    employer, worker = stack.client(), stack.client(stranger=True)
    employer_before = await settled_balance(stack.employer_wallet)
    worker_before = await settled_balance(stack.worker_wallet)
    escrow_before = await settled_balance(stack.escrow_wallet)
    started = time.monotonic()

    task = await funded_task(stack, employer)
    task_id = task["task_id"]
    no_pow = await refused(worker.claim(task_id))
    assert (no_pow.status, no_pow.code) == (403, "pow_required")
    assert no_pow.problem["required_bits"] == POW_BITS
    assert "deposit" in no_pow.detail

    held = await held_deposit(stack, worker, task_id, worker_before)
    claimed = await worker.claim(task_id)
    assert (claimed["state"], claimed["worker_pubkey"]) == ("CLAIMED", worker.pubkey_hex)
    invoice = await stack.worker_wallet.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(
        task_id, {"url": "https://example.org/review"}, invoice.payment_request
    )
    await employer.approve(task_id)

    async def paid_and_returned() -> bool:
        now = await employer.get_task(task_id)
        return (
            state_of(now) == "PAID" and state_of(deposit_of(now, worker.pubkey_hex)) == "RETURNED"
        )

    await stack.drive(paid_and_returned)
    final = await employer.get_task(task_id)
    returned = deposit_of(final, worker.pubkey_hex)
    assert returned["payment_hash"] == held["payment_hash"]
    assert returned["preimage"] is None  # never settled
    assert "PAID" in returned["reason"]
    assert (await stack.escrow_invoice(held["payment_hash"])).state is InvoiceState.CANCELED
    funding_hash = final["funding"]["payment_hash"]
    assert hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest() == funding_hash
    assert (await stack.escrow_invoice(funding_hash)).state is InvoiceState.SETTLED

    worker_gain = await settled_balance(stack.worker_wallet) - worker_before
    employer_loss = employer_before - await settled_balance(stack.employer_wallet)
    escrow_gain = await settled_balance(stack.escrow_wallet) - escrow_before
    assert worker_gain == final["payout_msat"]  # the deposit came back in full
    assert employer_loss == final["amount_msat"]
    assert escrow_gain == final["fee_msat"] - final["payout_fee_msat"]
    print(f"\ndeposit held and returned on regtest lnd: {time.monotonic() - started:.2f} s")


async def test_an_abandoned_claim_forfeits_the_deposit_which_is_paid_to_the_employer(
    stack: DepositStack,
) -> None:
    employer, worker = stack.client(), stack.client(stranger=True)
    employer_before = await settled_balance(stack.employer_wallet)
    worker_before = await settled_balance(stack.worker_wallet)
    escrow_before = await settled_balance(stack.escrow_wallet)
    started = time.monotonic()

    task = await funded_task(stack, employer, deadline_s=DEADLINE_S)
    task_id = task["task_id"]
    held = await held_deposit(stack, worker, task_id, worker_before)
    await worker.claim(task_id)
    stack.pass_time(DEADLINE_S + 1)  # the deadline passes without a proof

    async def refunded_and_forfeit() -> bool:
        now = await employer.get_task(task_id)
        return (
            state_of(now) == "REFUNDED"
            and state_of(deposit_of(now, worker.pubkey_hex)) == "FORFEIT"
        )

    await stack.drive(refunded_and_forfeit)
    after = await employer.get_task(task_id)
    forfeit = deposit_of(after, worker.pubkey_hex)
    assert forfeit["beneficiary"] == employer.pubkey_hex
    assert "no proof" in forfeit["reason"]
    assert (await stack.escrow_invoice(held["payment_hash"])).state is InvoiceState.ACCEPTED
    assert (await stack.escrow_invoice(after["funding"]["payment_hash"])).state is (
        InvoiceState.CANCELED
    )

    wrong = await stack.employer_wallet.create_invoice(DEPOSIT_MSAT + 1, expiry_seconds=86_400)
    too_much = await refused(
        employer.claim_deposit(task_id, worker.pubkey_hex, wrong.payment_request)
    )
    assert too_much.status == 422
    invoice = await stack.employer_wallet.create_invoice(DEPOSIT_MSAT, expiry_seconds=86_400)
    await employer.claim_deposit(task_id, worker.pubkey_hex, invoice.payment_request)

    async def paid_out() -> bool:
        now = await employer.get_task(task_id)
        return state_of(deposit_of(now, worker.pubkey_hex)) == "PAID_OUT"

    await stack.drive(paid_out)
    paid = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert paid["payment_hash"] == held["payment_hash"]
    assert hashlib.sha256(bytes.fromhex(paid["preimage"])).hexdigest() == paid["payment_hash"]
    assert paid["payout_invoice"] == invoice.payment_request
    assert paid["payout_payment_hash"] == invoice.payment_hash.hex()
    assert (await stack.escrow_invoice(paid["payment_hash"])).state is InvoiceState.SETTLED
    at_employer = await stack.employer_node.lookup_invoice(invoice.payment_hash)
    assert (at_employer.state, at_employer.amount_paid_msat) == (InvoiceState.SETTLED, DEPOSIT_MSAT)

    worker_change = await settled_balance(stack.worker_wallet) - worker_before
    employer_change = await settled_balance(stack.employer_wallet) - employer_before
    escrow_change = await settled_balance(stack.escrow_wallet) - escrow_before
    assert worker_change == -DEPOSIT_MSAT
    assert employer_change == DEPOSIT_MSAT  # the reward's HTLC came back, and the deposit
    assert escrow_change == 0  # paid the employer, then settled the worker's HTLC
    print(f"\ndeposit forfeited and paid out on regtest lnd: {time.monotonic() - started:.2f} s")
