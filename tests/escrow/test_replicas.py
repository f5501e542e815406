"""Two escrow engines on one PostgreSQL database and one node, as two ``serve`` replicas are:
neither cancels a hold under the other's payment, and one finishes what a dead one began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.audit_logs import audit_stored_log
from support.deposit_flows import abandoned_claim, deposit_of, give_worker_wallet_money, share_clock
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, submitted

from taskhold.lightning.base import InvoiceState, LightningBackend, PaymentResult

POSTGRESQL = [pytest.param("postgresql", id="postgresql")]
"""Leases exist for PostgreSQL replicas; SQLite serves one process (tests/cli for its refusal)."""


class GatedPayments:
    """The escrow node as one replica sees it, whose payments wait at a gate before the node
    gets them: the window in which another replica's guard would see nothing in flight."""

    def __init__(self, inner: LightningBackend, *, armed: bool) -> None:
        self._inner = inner
        self.armed = armed
        """Whether payments wait at the gate; an unarmed one only counts them."""
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def pay_invoice(self, *args: Any, **kwargs: Any) -> PaymentResult:
        if self.armed:
            self.entered.set()
            await self.open.wait()
        self.sent += 1
        return await self._inner.pay_invoice(*args, **kwargs)


@pytest.fixture
async def replicas(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Stack, Stack]]:
    """Two stacks on one database, one simulated node and one data directory (one key store,
    as replicas share their configuration)."""
    first = await open_stack(stack_settings(tmp_path, database_url))
    second = await open_stack(stack_settings(tmp_path, database_url), world=first.world)
    try:
        yield first, second
    finally:
        for stack in (first, second):
            await close_stack(stack)


def gate(stack: Stack, *, armed: bool = True) -> GatedPayments:
    gated = GatedPayments(stack.services.engine.ctx.lightning, armed=armed)
    stack.services.engine.ctx.lightning = gated  # type: ignore[assignment]
    return gated


async def mine_to_guard_margin(stack: Stack, task: dict[str, Any]) -> None:
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_a_replicas_guard_never_cancels_the_hold_under_anothers_payout(
    replicas: tuple[Stack, Stack],
) -> None:
    """Replica A retries a failed payout (the node has not seen the retry yet); replica B's
    guardian reaches the guard margin, where a verified task whose payout failed is refunded.
    Refunding then would pay the worker and refund the employer both: B must leave the task
    to A, which pays once and settles."""
    a, b = replicas
    employer, worker = a.client(), a.client()
    task = await submitted(a, employer, worker)
    employer_after_funding = a.world.employer.balance_msat
    gated = gate(a, armed=False)
    a.world.network.fail_next_payments(1)
    await employer.approve(task["task_id"])
    await a.run_pass()  # the first attempt fails
    assert (await employer.get_task(task["task_id"]))["payout_failures"] == 1
    gated.armed = True
    a.services.engine._retry_at.clear()
    await a.services.engine.run_once()
    await gated.entered.wait()  # A's retry is being sent, past every check of the hold

    await mine_to_guard_margin(a, task)
    await b.run_pass()  # B's guardian and refunds
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"
    hold = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await a.world.escrow.lookup_invoice(hold)).state is InvoiceState.ACCEPTED

    gated.open.set()
    await a.services.engine.drain()
    await b.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert gated.sent == 2  # the failed attempt and the retry, both A's
    assert a.world.worker.balance_msat == task["payout_msat"]  # paid once
    assert a.world.employer.balance_msat == employer_after_funding  # and not refunded
    assert (await a.world.escrow.lookup_invoice(hold)).state is InvoiceState.SETTLED
    audited = await audit_stored_log(b.services)
    assert audited.clean, audited.findings


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_two_replicas_releasing_one_task_pay_it_once(
    replicas: tuple[Stack, Stack],
) -> None:
    """Both replicas start the release of the same task at once: one pays, the other skips."""
    a, b = replicas
    employer, worker = a.client(), a.client()
    task = await submitted(a, employer, worker)
    gated_a, gated_b = gate(a), gate(b, armed=False)
    await employer.approve(task["task_id"])
    await a.services.engine.run_once()
    await gated_a.entered.wait()
    await b.run_pass()  # B's job finds the task leased and ends
    assert gated_b.sent == 0
    await b.services.engine.run_once()  # B waits for A's lease to end, not a pass
    assert task["task_id"] not in b.services.engine._payments

    gated_a.open.set()
    await a.services.engine.drain()
    await b.settle_engine()
    await a.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert (gated_a.sent, gated_b.sent) == (1, 0)
    assert a.world.worker.balance_msat == task["payout_msat"]
    audited = await audit_stored_log(a.services)
    assert audited.clean, audited.findings


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_a_replica_takes_over_the_release_of_one_that_died(
    replicas: tuple[Stack, Stack],
) -> None:
    """Replica A dies (no goodbye: its lease stays) while paying. B skips the task while A's
    lease runs, then takes the key over and pays once."""
    a, b = replicas
    employer, worker = a.client(), a.client()
    task = await submitted(a, employer, worker)
    gated = gate(a)
    await employer.approve(task["task_id"])
    await a.services.engine.run_once()
    await gated.entered.wait()

    async def keep(keys: Any) -> None:
        return None  # a killed process gives nothing back

    a.services.engine.leases.release = keep  # type: ignore[method-assign]
    await a.services.engine.stop()  # A is gone; its payment never reached the node
    assert gated.sent == 0

    await b.run_pass()
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"
    assert a.world.worker.balance_msat == 0  # A's lease still runs

    ttl = b.settings.engine_lease_s
    b.services.engine.leases.clock = lambda: time.time() + ttl + 1
    b.services.engine._retry_at.clear()  # its next look would come a third of a lease later
    await b.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert a.world.worker.balance_msat == task["payout_msat"]  # paid once
    audited = await audit_stored_log(b.services)
    assert audited.clean, audited.findings


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_a_lease_has_one_holder_until_it_expires(database_url: str, tmp_path: Path) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        store = stack.services.store
        claims = []

        async def claim(owner: str, now_ms: int) -> bool:
            async with store.transaction() as tx:
                return await tx.claim_lease("k", owner, now_ms=now_ms, until_ms=now_ms + 1000)

        claims = await asyncio.gather(*(claim(f"r{i}", 0) for i in range(8)))
        assert sorted(claims) == [False] * 7 + [True]
        holder = f"r{claims.index(True)}"
        other = "r9" if holder != "r9" else "r8"
        assert await claim(holder, 500)  # the holder renews
        assert not await claim(other, 1400)  # renewed until 1500
        assert await claim(other, 1500)  # expired: taken over
        assert not await claim(holder, 1600)
    finally:
        await close_stack(stack)


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_three_replicas_one_killed_mid_release_every_task_ends_once(
    tmp_path: Path, database_url: str
) -> None:
    """Three engines share the work; one dies between paying a worker and settling the hold
    (its lease stays). The two others finish everything: each task ends PAID or REFUNDED,
    each payout is paid once, and the log audits clean (no gap, no equivocation)."""
    a = await open_stack(stack_settings(tmp_path, database_url))
    b = await open_stack(stack_settings(tmp_path, database_url), world=a.world)
    c = await open_stack(stack_settings(tmp_path, database_url), world=a.world)
    try:
        employer = a.client()
        released = [await submitted(a, employer, a.client()) for _ in range(4)]
        refunded = [await funded(a, employer) for _ in range(2)]
        employer_before = a.world.employer.balance_msat
        stuck = asyncio.Event()

        async def dies_after_paying(point: str) -> None:
            if point == "after_payout" and not stuck.is_set():
                stuck.set()
                await asyncio.Event().wait()  # killed here: the worker paid, the hold held

        a.services.engine.ctx.fault_hook = dies_after_paying
        for task in released:
            await employer.approve(task["task_id"])
        await a.services.engine.run_once()
        await stuck.wait()

        # The other three are paid before the kill, by a's own payments still in flight or by
        # the live replicas: on a loaded machine a's may need longer than one pass of b and c.
        async def paid() -> int:
            states = [(await employer.get_task(t["task_id"]))["state"] for t in released]
            return states.count("PAID")

        deadline = time.monotonic() + 60
        while await paid() < 3:
            assert time.monotonic() < deadline, "the other three releases never completed"
            await asyncio.gather(b.run_pass(), c.run_pass())
            await asyncio.sleep(0.05)

        async def keep(keys: Any) -> None:
            return None  # a killed process gives nothing back

        a.services.engine.leases.release = keep  # type: ignore[method-assign]
        await a.services.engine.stop()
        await asyncio.gather(b.settle_engine(1), c.settle_engine(1))
        states = [(await employer.get_task(t["task_id"]))["state"] for t in released]
        assert sorted(states) == ["PAID"] * 3 + ["VERIFIED"]  # the dead one's, leased still
        ttl = b.settings.engine_lease_s
        for survivor in (b, c):
            survivor.services.engine.leases.clock = lambda: time.time() + ttl + 1
            survivor.services.engine._retry_at.clear()  # next look: a third of a lease later
        for _ in range(3):
            await asyncio.gather(b.settle_engine(1), c.settle_engine(1))
        await mine_to_guard_margin(b, refunded[0])
        for _ in range(3):
            await asyncio.gather(b.settle_engine(1), c.settle_engine(1))

        finals = [(await employer.get_task(t["task_id"]))["state"] for t in released + refunded]
        assert finals == ["PAID"] * 4 + ["REFUNDED"] * 2
        assert a.world.worker.balance_msat == sum(t["payout_msat"] for t in released)
        assert a.world.employer.balance_msat == employer_before + sum(
            t["amount_msat"] for t in refunded
        )
        audited = await audit_stored_log(b.services)
        assert audited.clean, audited.findings
    finally:
        for stack in (a, b, c):
            await close_stack(stack)


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_the_guard_takes_no_lease_while_no_payment_is_owed(
    replicas: tuple[Stack, Stack],
) -> None:
    """Every funded task is guarded at every tick: a lease each time would write to the
    database for nothing. Only a task with a payment owed is leased."""
    a, _ = replicas
    employer, worker = a.client(), a.client()
    await funded(a, employer)
    owed = await submitted(a, employer, worker)
    claimed: list[list[str]] = []
    leases = a.services.engine.leases
    claim = leases.claim

    async def counted(keys: Any) -> bool:
        if keys:
            claimed.append(list(keys))
        return await claim(keys)

    leases.claim = counted  # type: ignore[method-assign]
    await a.run_pass()
    assert claimed == []
    await employer.approve(owed["task_id"])
    await a.run_pass()
    assert [owed["task_id"]] in claimed


@pytest.mark.parametrize("database_kind", POSTGRESQL, indirect=True)
async def test_a_replicas_deposit_guard_never_returns_a_deposit_under_anothers_payout(
    tmp_path: Path, database_url: str
) -> None:
    """The same for a forfeited deposit: replica A retries its payout to the employer while
    replica B's guardian reaches the deposit's margin, where a payout that failed gives the
    deposit back. B must leave it to A: the employer is paid once, the deposit not returned."""
    settings = {"pow_max_bits": 8, "reputation_max_staleness_s": 0}
    a = await open_stack(stack_settings(tmp_path, database_url, **settings))
    b = await open_stack(stack_settings(tmp_path, database_url, **settings), world=a.world)
    try:
        await give_worker_wallet_money(a)
        gone = await abandoned_claim(a)
        share_clock(b, gone.now)
        invoice = await a.world.employer.create_invoice(gone.amount_msat, expiry_seconds=86_400)
        await gone.employer.claim_deposit(gone.task_id, gone.worker.pubkey_hex, invoice)
        forfeit = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)
        gated = gate(a, armed=False)
        a.world.network.fail_next_payments(1)
        await a.run_pass()  # the first attempt fails
        gated.armed = True
        a.services.engine._retry_at.clear()
        await a.services.engine.run_once()
        await gated.entered.wait()  # A's retry is being sent, past every check of the hold
        margin = forfeit["accepted_htlc_expiry_height"] - a.settings.guard_blocks
        while a.world.network.height < margin:
            await a.world.network.mine(1)
        await b.run_pass()
        held = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)
        assert held["state"] != "RETURNED", held

        gated.open.set()
        await a.services.engine.drain()
        await b.settle_engine()
        done = deposit_of(await gone.employer.get_task(gone.task_id), gone.worker.pubkey_hex)
        assert done["state"] == "PAID_OUT"
        assert gated.sent == 2  # the failed attempt and the retry, both A's
        assert a.world.worker.balance_msat == gone.worker_before_msat - gone.amount_msat
        audited = await audit_stored_log(b.services)
        assert audited.clean, audited.findings
    finally:
        for stack in (a, b):
            await close_stack(stack)
