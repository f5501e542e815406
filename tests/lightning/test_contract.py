"""The contract every Lightning backend keeps, run against each backend through one harness.

A harness is an escrow node under test plus the world around it: a payer node that funds hold
invoices, a payee node that issues ordinary invoices, and a way to mine blocks. A new backend
plugs in by adding a factory to ``HARNESSES`` and a ``pytest.param`` (marked ``devnet`` if it needs
real nodes) to the ``harness`` fixture; every test below then runs against it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, cast

import bolt11
import pytest
from support.devnet_network import (
    DevnetHandle,
    cancel_held_invoices,
    get_devnet,
    get_ldk_devnet,
    open_devnet_ldk_escrow,
)

from taskhold.devnet.ldk_escrow import wait_ldk_synced
from taskhold.lightning.base import (
    AlreadyExists,
    HoldInvoice,
    InvoiceNotFound,
    InvoiceState,
    InvoiceStatus,
    LightningBackend,
    NodeCapacity,
    PaymentFailed,
    PaymentResult,
    PaymentStatus,
    WrongInvoiceState,
)
from taskhold.lightning.ldk import LdkBackend
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.lightning.sim import SimNetwork, SimNode

AMOUNT_MSAT = 150_000_000
CLTV_EXPIRY_DELTA = 42
"""LDK's smallest final delta; lnd and the simulator take less."""
EXPIRY_SECONDS = 3600
WAIT_SECONDS = 10.0


class Harness(Protocol):
    """What the contract needs around the escrow backend under test."""

    @property
    def escrow(self) -> LightningBackend: ...

    @property
    def payer(self) -> LightningBackend: ...

    @property
    def cltv_padding_blocks(self) -> int:
        """Blocks the payer adds to the final CLTV (lnd's router pads by 3; the simulator by 0)."""
        ...

    async def pay_hold_invoice(self, payment_request: str) -> PaymentResult:
        """Pay from the payer node and return once the HTLC is in flight."""
        ...

    async def payee_invoice(self, amount_msat: int) -> str:
        """An ordinary invoice from the payee node."""
        ...

    @property
    def payee(self) -> LightningBackend:
        """The payee node as a backend: its hold invoices keep an HTLC in flight."""
        ...

    async def payer_balance_msat(self) -> int: ...

    async def payee_balance_msat(self) -> int: ...

    async def mine(self, blocks: int) -> None: ...


@dataclass
class SimHarness:
    network: SimNetwork
    escrow: SimNode
    payer: SimNode
    payee: SimNode
    cltv_padding_blocks: int = 0

    async def pay_hold_invoice(self, payment_request: str) -> PaymentResult:
        return await self.payer.send_payment(payment_request)

    async def payee_invoice(self, amount_msat: int) -> str:
        return await self.payee.create_invoice(amount_msat, memo="payout")

    async def payer_balance_msat(self) -> int:
        return self.payer.balance_msat

    async def payee_balance_msat(self) -> int:
        return self.payee.balance_msat

    async def mine(self, blocks: int) -> None:
        await self.network.mine(blocks)


@asynccontextmanager
async def sim_harness() -> AsyncIterator[Harness]:
    network = SimNetwork()
    harness = SimHarness(
        network=network,
        escrow=SimNode(network, "escrow", balance_msat=10 * AMOUNT_MSAT),
        payer=SimNode(network, "payer", balance_msat=10 * AMOUNT_MSAT),
        payee=SimNode(network, "payee", balance_msat=0),
    )
    try:
        yield harness
    finally:
        for node in (harness.escrow, harness.payer, harness.payee):
            await node.close()


@dataclass
class LndHarness:
    """The devnet's real lnd nodes: escrow, employer as the payer, worker as the payee."""

    devnet: DevnetHandle
    escrow: LightningBackend
    payer: LndBackend
    payee: LndBackend
    payer_wallet: LndWallet
    payee_wallet: LndWallet
    cltv_padding_blocks: int = 3  # lnd's router adds routing.BlockPadding to the final CLTV

    async def pay_hold_invoice(self, payment_request: str) -> PaymentResult:
        return await self.payer_wallet.send_payment(payment_request)

    async def payee_invoice(self, amount_msat: int) -> str:
        return (await self.payee_wallet.create_invoice(amount_msat, memo="payout")).payment_request

    async def payer_balance_msat(self) -> int:
        return await _quiet_local_balance_msat(self.payer_wallet)

    async def payee_balance_msat(self) -> int:
        return await _quiet_local_balance_msat(self.payee_wallet)

    async def mine(self, blocks: int) -> None:
        await self.devnet.mine(blocks)


async def _quiet_local_balance_msat(wallet: LndWallet) -> int:
    """The local channel balance once it stops moving (unchanged for a second).

    lnd reports a payment final when the preimage (or the failure) arrives, and an LDK payee
    reports an HTLC held, a moment before the commitment update that moves the payer's balance
    is signed by both sides; on a loaded machine that moment can outlast one short poll.
    """
    last = (await wallet.channel_balance()).local_msat
    unchanged = 0
    async with asyncio.timeout(WAIT_SECONDS):
        while unchanged < 5:
            await asyncio.sleep(0.2)
            now = (await wallet.channel_balance()).local_msat
            unchanged = unchanged + 1 if now == last else 0
            last = now
    return last


@asynccontextmanager
async def _lnd_peers(
    devnet: DevnetHandle, escrow: LightningBackend, harness_type: type[LndHarness]
) -> AsyncIterator[Harness]:
    """``escrow`` between the devnet's employer (payer) and worker (payee) lnd nodes."""
    harness = harness_type(
        devnet=devnet,
        escrow=escrow,
        payer=devnet.backend("employer"),
        payee=devnet.backend("worker"),
        payer_wallet=devnet.wallet("employer"),
        payee_wallet=devnet.wallet("worker"),
    )
    try:
        yield harness
    finally:
        clients = (harness.escrow, harness.payer, harness.payee)
        for client in (*clients, harness.payer_wallet, harness.payee_wallet):
            await client.close()


def lnd_harness() -> AbstractAsyncContextManager[Harness]:
    devnet = get_devnet()
    return _lnd_peers(devnet, devnet.backend("escrow", payment_grace_seconds=2.0), LndHarness)


@dataclass
class LdkHarness(LndHarness):
    """The devnet's embedded LDK escrow (opened in this process) between the same lnd payer
    and payee; mining also waits until LDK has processed the blocks (it polls every 2 s)."""

    async def mine(self, blocks: int) -> None:
        await self.devnet.mine(blocks)
        await wait_ldk_synced(cast(LdkBackend, self.escrow), self.devnet.btcd())


@asynccontextmanager
async def ldk_harness() -> AsyncIterator[Harness]:
    devnet = get_ldk_devnet()
    escrow = await open_devnet_ldk_escrow(devnet, payment_grace_seconds=2.0)
    async with _lnd_peers(devnet, escrow, LdkHarness) as harness:
        try:
            yield harness
        finally:
            await cancel_held_invoices(escrow)


HARNESSES: dict[str, Callable[[], AbstractAsyncContextManager[Harness]]] = {
    "sim": sim_harness,
    "lnd": lnd_harness,
    "ldk": ldk_harness,
}


@pytest.fixture(
    params=[
        pytest.param("sim", id="sim"),
        pytest.param("lnd", id="lnd", marks=pytest.mark.devnet),
        pytest.param("ldk", id="ldk", marks=[pytest.mark.devnet, pytest.mark.ldk]),
    ]
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with HARNESSES[request.param]() as built:
        yield built


# -- helpers ------------------------------------------------------------------------------------


def new_preimage() -> tuple[bytes, bytes]:
    preimage = os.urandom(32)
    return preimage, hashlib.sha256(preimage).digest()


async def hold_invoice(harness: Harness) -> tuple[bytes, HoldInvoice]:
    preimage, payment_hash = new_preimage()
    invoice = await harness.escrow.create_hold_invoice(
        payment_hash,
        AMOUNT_MSAT,
        memo="task reward",
        expiry_seconds=EXPIRY_SECONDS,
        cltv_expiry_delta=CLTV_EXPIRY_DELTA,
    )
    return preimage, invoice


async def wait_for_state(
    backend: LightningBackend, payment_hash: bytes, state: InvoiceState
) -> InvoiceStatus:
    async with asyncio.timeout(WAIT_SECONDS):
        async for status in backend.subscribe_invoice(payment_hash):
            if status.state is state:
                return status
    raise AssertionError(f"invoice ended without reaching {state}")


async def final_payment(backend: LightningBackend, payment_hash: bytes) -> PaymentResult:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            result = await backend.lookup_payment(payment_hash)
            if result.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
                return result
            await asyncio.sleep(0.05)


async def accepted_invoice(harness: Harness) -> tuple[bytes, HoldInvoice]:
    """A hold invoice the payer has paid and the escrow node holds."""
    preimage, invoice = await hold_invoice(harness)
    await harness.pay_hold_invoice(invoice.payment_request)
    await wait_for_state(harness.escrow, invoice.payment_hash, InvoiceState.ACCEPTED)
    return preimage, invoice


# -- creating and looking up --------------------------------------------------------------------


async def test_new_hold_invoice_is_open_and_unpaid(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)

    status = await harness.escrow.lookup_invoice(invoice.payment_hash)

    assert status.state is InvoiceState.OPEN
    assert (status.amount_msat, status.amount_paid_msat, status.htlcs) == (AMOUNT_MSAT, 0, ())
    assert status.accepted_htlc_expiry_height is None


async def test_created_invoice_echoes_its_terms(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)

    assert (invoice.amount_msat, invoice.cltv_expiry_delta, invoice.expiry_seconds) == (
        AMOUNT_MSAT,
        CLTV_EXPIRY_DELTA,
        EXPIRY_SECONDS,
    )


async def test_payment_request_encodes_hash_amount_and_cltv(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)

    decoded = bolt11.decode(invoice.payment_request)

    assert decoded.currency == harness.escrow.network
    assert bytes.fromhex(decoded.payment_hash) == invoice.payment_hash
    assert decoded.amount_msat == AMOUNT_MSAT
    assert decoded.min_final_cltv_expiry == CLTV_EXPIRY_DELTA
    assert decoded.expiry == EXPIRY_SECONDS


async def test_lookup_unknown_invoice_raises_not_found(harness: Harness) -> None:
    with pytest.raises(InvoiceNotFound):
        await harness.escrow.lookup_invoice(new_preimage()[1])


async def test_reused_payment_hash_is_refused(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)

    with pytest.raises(AlreadyExists):
        await harness.escrow.create_hold_invoice(
            invoice.payment_hash,
            AMOUNT_MSAT,
            memo="again",
            expiry_seconds=EXPIRY_SECONDS,
            cltv_expiry_delta=CLTV_EXPIRY_DELTA,
        )


# -- accepting ----------------------------------------------------------------------------------


async def test_paid_invoice_is_accepted_with_the_htlc_amount(harness: Harness) -> None:
    _, invoice = await accepted_invoice(harness)

    status = await harness.escrow.lookup_invoice(invoice.payment_hash)

    assert status.state is InvoiceState.ACCEPTED
    assert [h.amount_msat for h in status.htlcs] == [AMOUNT_MSAT]
    assert status.amount_paid_msat == AMOUNT_MSAT


async def test_accepted_htlc_expires_cltv_delta_blocks_after_acceptance(harness: Harness) -> None:
    height = await harness.escrow.block_height()

    _, invoice = await accepted_invoice(harness)
    (htlc,) = (await harness.escrow.lookup_invoice(invoice.payment_hash)).htlcs

    assert htlc.accept_height == height
    assert htlc.expiry_height == height + CLTV_EXPIRY_DELTA + harness.cltv_padding_blocks
    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.accepted_htlc_expiry_height == htlc.expiry_height


async def test_payer_payment_is_in_flight_while_held(harness: Harness) -> None:
    _, invoice = await accepted_invoice(harness)

    result = await harness.payer.lookup_payment(invoice.payment_hash)

    assert result.status is PaymentStatus.IN_FLIGHT
    assert result.preimage is None


# -- settling -----------------------------------------------------------------------------------


async def test_settle_makes_invoice_settled(harness: Harness) -> None:
    preimage, invoice = await accepted_invoice(harness)

    await harness.escrow.settle_invoice(preimage)

    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.SETTLED
    assert status.amount_paid_msat == AMOUNT_MSAT


async def test_settle_gives_the_payer_the_preimage(harness: Harness) -> None:
    preimage, invoice = await accepted_invoice(harness)

    await harness.escrow.settle_invoice(preimage)

    result = await final_payment(harness.payer, invoice.payment_hash)
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.preimage == preimage


async def test_settling_twice_is_a_no_op(harness: Harness) -> None:
    preimage, invoice = await accepted_invoice(harness)
    await harness.escrow.settle_invoice(preimage)

    await harness.escrow.settle_invoice(preimage)

    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.SETTLED


async def test_settling_an_open_invoice_is_refused(harness: Harness) -> None:
    preimage, invoice = await hold_invoice(harness)

    with pytest.raises(WrongInvoiceState):
        await harness.escrow.settle_invoice(preimage)
    assert (await harness.escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.OPEN


async def test_settling_a_cancelled_invoice_is_refused(harness: Harness) -> None:
    preimage, invoice = await accepted_invoice(harness)
    await harness.escrow.cancel_invoice(invoice.payment_hash)

    with pytest.raises(WrongInvoiceState):
        await harness.escrow.settle_invoice(preimage)


async def test_settling_with_a_wrong_preimage_finds_no_invoice(harness: Harness) -> None:
    _, invoice = await accepted_invoice(harness)

    with pytest.raises(InvoiceNotFound):
        await harness.escrow.settle_invoice(os.urandom(32))
    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.ACCEPTED


# -- cancelling ---------------------------------------------------------------------------------


async def test_cancel_open_invoice(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)

    await harness.escrow.cancel_invoice(invoice.payment_hash)

    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.CANCELED


async def test_cancel_accepted_invoice_refunds_the_payer(harness: Harness) -> None:
    balance_before = await harness.payer_balance_msat()
    _, invoice = await accepted_invoice(harness)
    assert await harness.payer_balance_msat() < balance_before

    await harness.escrow.cancel_invoice(invoice.payment_hash)

    result = await final_payment(harness.payer, invoice.payment_hash)
    assert result.status is PaymentStatus.FAILED
    assert result.preimage is None
    assert await harness.payer_balance_msat() == balance_before
    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.CANCELED


async def test_cancelling_twice_is_a_no_op(harness: Harness) -> None:
    _, invoice = await accepted_invoice(harness)
    await harness.escrow.cancel_invoice(invoice.payment_hash)

    await harness.escrow.cancel_invoice(invoice.payment_hash)

    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.CANCELED


async def test_cancelling_a_settled_invoice_is_refused(harness: Harness) -> None:
    preimage, invoice = await accepted_invoice(harness)
    await harness.escrow.settle_invoice(preimage)

    with pytest.raises(WrongInvoiceState):
        await harness.escrow.cancel_invoice(invoice.payment_hash)
    status = await harness.escrow.lookup_invoice(invoice.payment_hash)
    assert status.state is InvoiceState.SETTLED


async def test_cancelling_an_unknown_invoice_raises_not_found(harness: Harness) -> None:
    with pytest.raises(InvoiceNotFound):
        await harness.escrow.cancel_invoice(new_preimage()[1])


# -- subscribing --------------------------------------------------------------------------------


async def test_subscription_yields_open_accepted_settled_then_ends(harness: Harness) -> None:
    preimage, invoice = await hold_invoice(harness)
    updates = harness.escrow.subscribe_invoice(invoice.payment_hash)

    async with asyncio.timeout(WAIT_SECONDS):
        assert (await anext(updates)).state is InvoiceState.OPEN
        await harness.pay_hold_invoice(invoice.payment_request)
        accepted = await anext(updates)
        await harness.escrow.settle_invoice(preimage)
        settled = await anext(updates)
        with pytest.raises(StopAsyncIteration):
            await anext(updates)

    assert accepted.state is InvoiceState.ACCEPTED
    assert accepted.accepted_htlc_expiry_height is not None
    assert settled.state is InvoiceState.SETTLED


async def test_subscription_ends_after_cancel(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)
    updates = harness.escrow.subscribe_invoice(invoice.payment_hash)

    async with asyncio.timeout(WAIT_SECONDS):
        assert (await anext(updates)).state is InvoiceState.OPEN
        await harness.escrow.cancel_invoice(invoice.payment_hash)
        assert (await anext(updates)).state is InvoiceState.CANCELED
        with pytest.raises(StopAsyncIteration):
            await anext(updates)


async def test_subscribing_to_an_unknown_invoice_raises_not_found(harness: Harness) -> None:
    with pytest.raises(InvoiceNotFound):
        async for _ in harness.escrow.subscribe_invoice(new_preimage()[1]):
            pass


# -- following every invoice --------------------------------------------------------------------


async def state_of(
    updates: AsyncIterator[InvoiceStatus], payment_hash: bytes, state: InvoiceState
) -> InvoiceStatus:
    """Read the all-invoices subscription until ``payment_hash`` is reported in ``state``."""
    async with asyncio.timeout(WAIT_SECONDS):
        async for status in updates:
            if status.payment_hash == payment_hash and status.state is state:
                return status
    raise AssertionError(f"the subscription ended before {state}")


async def test_all_invoices_subscription_starts_with_every_pending_invoice(
    harness: Harness,
) -> None:
    _, unpaid = await hold_invoice(harness)
    _, held = await accepted_invoice(harness)
    async with contextlib.aclosing(harness.escrow.subscribe_invoices()) as updates:
        pending: dict[bytes, InvoiceState] = {}
        async with asyncio.timeout(WAIT_SECONDS):
            async for status in updates:
                pending[status.payment_hash] = status.state
                if {unpaid.payment_hash, held.payment_hash} <= pending.keys():
                    break

    assert pending[unpaid.payment_hash] is InvoiceState.OPEN
    assert pending[held.payment_hash] is InvoiceState.ACCEPTED


async def test_all_invoices_subscription_reports_accepted_then_settled(harness: Harness) -> None:
    preimage, invoice = await hold_invoice(harness)
    async with contextlib.aclosing(harness.escrow.subscribe_invoices()) as updates:
        await state_of(updates, invoice.payment_hash, InvoiceState.OPEN)
        await harness.pay_hold_invoice(invoice.payment_request)
        accepted = await state_of(updates, invoice.payment_hash, InvoiceState.ACCEPTED)
        await harness.escrow.settle_invoice(preimage)
        await state_of(updates, invoice.payment_hash, InvoiceState.SETTLED)

    assert accepted.amount_paid_msat == AMOUNT_MSAT
    assert accepted.accepted_htlc_expiry_height is not None


async def test_all_invoices_subscription_reports_a_cancel(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)
    async with contextlib.aclosing(harness.escrow.subscribe_invoices()) as updates:
        await state_of(updates, invoice.payment_hash, InvoiceState.OPEN)
        await harness.escrow.cancel_invoice(invoice.payment_hash)
        await state_of(updates, invoice.payment_hash, InvoiceState.CANCELED)


async def test_all_invoices_subscription_follows_invoices_made_after_it(harness: Harness) -> None:
    _, known = await hold_invoice(harness)
    async with contextlib.aclosing(harness.escrow.subscribe_invoices()) as updates:
        await state_of(updates, known.payment_hash, InvoiceState.OPEN)  # subscribed now
        _, later = await hold_invoice(harness)
        await harness.pay_hold_invoice(later.payment_request)
        accepted = await state_of(updates, later.payment_hash, InvoiceState.ACCEPTED)

    assert [h.amount_msat for h in accepted.htlcs] == [AMOUNT_MSAT]


# -- paying out ---------------------------------------------------------------------------------


async def test_pay_invoice_pays_the_payee_within_the_fee_cap(harness: Harness) -> None:
    payee_before = await harness.payee_balance_msat()
    payment_request = await harness.payee_invoice(AMOUNT_MSAT)
    payment_hash = bytes.fromhex(bolt11.decode(payment_request).payment_hash)

    result = await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=30, cltv_limit=500
    )

    assert result.status is PaymentStatus.SUCCEEDED
    assert result.preimage is not None
    assert hashlib.sha256(result.preimage).digest() == payment_hash
    assert result.fee_msat <= 1_000
    assert await harness.payee_balance_msat() == payee_before + AMOUNT_MSAT


async def test_paying_the_same_invoice_twice_pays_once(harness: Harness) -> None:
    payee_before = await harness.payee_balance_msat()
    payment_request = await harness.payee_invoice(AMOUNT_MSAT)
    first = await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=30, cltv_limit=500
    )

    second = await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=30, cltv_limit=500
    )

    assert second.status is PaymentStatus.SUCCEEDED
    assert second.preimage == first.preimage
    assert await harness.payee_balance_msat() == payee_before + AMOUNT_MSAT


async def test_lookup_payment_reports_a_succeeded_payout(harness: Harness) -> None:
    payment_request = await harness.payee_invoice(AMOUNT_MSAT)
    paid = await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=30, cltv_limit=500
    )

    looked_up = await harness.escrow.lookup_payment(paid.payment_hash)

    assert looked_up.status is PaymentStatus.SUCCEEDED
    assert looked_up.preimage == paid.preimage
    assert looked_up.amount_msat == AMOUNT_MSAT


async def test_lookup_payment_of_a_never_paid_hash_is_unknown(harness: Harness) -> None:
    payment_hash = new_preimage()[1]

    result = await harness.escrow.lookup_payment(payment_hash)

    assert result.status is PaymentStatus.UNKNOWN
    assert result.payment_hash == payment_hash


# -- the chain ----------------------------------------------------------------------------------


async def test_block_height_moves_with_mining(harness: Harness) -> None:
    height = await harness.escrow.block_height()

    await harness.mine(3)

    assert await harness.escrow.block_height() == height + 3


# -- capacity -----------------------------------------------------------------------------------


async def capacity_when(
    backend: LightningBackend, reached: Callable[[NodeCapacity], bool]
) -> NodeCapacity:
    """The node's capacity once ``reached`` holds, or as it stands after ``WAIT_SECONDS``: a
    node reports an HTLC held or failed back a moment before its channel's commitment moves."""
    capacity = await backend.capacity()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_SECONDS):
            while not reached(capacity):
                await asyncio.sleep(0.1)
                capacity = await backend.capacity()
    return capacity


async def test_capacity_figures_are_consistent(harness: Harness) -> None:
    capacity = await harness.escrow.capacity()

    assert capacity.htlc_slots_max > 0
    assert 0 <= capacity.htlc_slots_free <= capacity.htlc_slots_max
    assert capacity.outbound_msat >= 0
    assert 0 <= capacity.largest_inbound_msat <= capacity.inbound_msat
    assert capacity.largest_inbound_msat >= AMOUNT_MSAT  # the contract's invoices must fit


async def test_capacity_counts_a_held_htlc_until_it_is_cancelled(harness: Harness) -> None:
    # Deltas on one node, not absolutes: the devnet's channels are shared by every test.
    before = await harness.escrow.capacity()
    _, invoice = await accepted_invoice(harness)

    held = await capacity_when(
        harness.escrow, lambda now: now.htlc_slots_free < before.htlc_slots_free
    )

    assert held.htlc_slots_max == before.htlc_slots_max
    assert held.htlc_slots_free == before.htlc_slots_free - 1
    assert held.inbound_msat <= before.inbound_msat - AMOUNT_MSAT

    await harness.escrow.cancel_invoice(invoice.payment_hash)
    assert (await final_payment(harness.payer, invoice.payment_hash)).status is (
        PaymentStatus.FAILED
    )

    back = await capacity_when(
        harness.escrow,
        lambda now: (
            (now.htlc_slots_free, now.inbound_msat) == (before.htlc_slots_free, before.inbound_msat)
        ),
    )
    assert back.htlc_slots_free == before.htlc_slots_free
    assert back.inbound_msat == before.inbound_msat


# -- payouts the payee holds, and their bounds ---------------------------------------------------


async def payee_hold_invoice(harness: Harness, *, cltv_expiry_delta: int = 40) -> tuple[bytes, str]:
    """A hold invoice of the payee node: paying it leaves the HTLC in flight until it decides."""
    preimage, payment_hash = new_preimage()
    held = await harness.payee.create_hold_invoice(
        payment_hash,
        AMOUNT_MSAT,
        memo="held payout",
        expiry_seconds=EXPIRY_SECONDS,
        cltv_expiry_delta=cltv_expiry_delta,
    )
    return preimage, held.payment_request


async def test_a_payment_the_payee_holds_is_returned_in_flight_then_lands(
    harness: Harness,
) -> None:
    """A held payout is IN_FLIGHT when the wait runs out, never a failure and never paid:
    whoever reads it must keep following it."""
    preimage, payment_request = await payee_hold_invoice(harness)

    result = await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=1, cltv_limit=500
    )

    assert result.status is PaymentStatus.IN_FLIGHT
    assert result.preimage is None
    payment_hash = hashlib.sha256(preimage).digest()
    assert (await harness.escrow.lookup_payment(payment_hash)).status is PaymentStatus.IN_FLIGHT
    await wait_for_state(harness.payee, payment_hash, InvoiceState.ACCEPTED)
    await harness.payee.settle_invoice(preimage)
    landed = await final_payment(harness.escrow, payment_hash)
    assert (landed.status, landed.preimage) == (PaymentStatus.SUCCEEDED, preimage)


async def test_a_held_payment_the_payee_cancels_fails(harness: Harness) -> None:
    preimage, payment_request = await payee_hold_invoice(harness)
    await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=1, cltv_limit=500
    )
    payment_hash = hashlib.sha256(preimage).digest()
    await wait_for_state(harness.payee, payment_hash, InvoiceState.ACCEPTED)

    await harness.payee.cancel_invoice(payment_hash)

    assert (await final_payment(harness.escrow, payment_hash)).status is PaymentStatus.FAILED


async def test_a_held_payment_expires_within_its_cltv_limit(harness: Harness) -> None:
    """``cltv_limit`` bounds the HTLC's expiry at the height now plus the limit, whatever the
    router pads: the engine counts on a payout resolving before the hold behind it must be
    decided."""
    preimage, payment_request = await payee_hold_invoice(harness, cltv_expiry_delta=40)
    payment_hash = hashlib.sha256(preimage).digest()
    limit = 60
    height = await harness.escrow.block_height()
    await harness.escrow.pay_invoice(
        payment_request, max_fee_msat=1_000, timeout_seconds=1, cltv_limit=limit
    )
    held = await wait_for_state(harness.payee, payment_hash, InvoiceState.ACCEPTED)

    assert held.accepted_htlc_expiry_height is not None
    assert held.accepted_htlc_expiry_height <= height + limit
    await harness.payee.cancel_invoice(payment_hash)
    assert (await final_payment(harness.escrow, payment_hash)).status is PaymentStatus.FAILED


async def test_a_payment_over_its_cltv_limit_fails_and_nothing_is_held(harness: Harness) -> None:
    preimage, payment_request = await payee_hold_invoice(harness, cltv_expiry_delta=40)
    payment_hash = hashlib.sha256(preimage).digest()

    with pytest.raises(PaymentFailed):
        await harness.escrow.pay_invoice(
            payment_request, max_fee_msat=1_000, timeout_seconds=5, cltv_limit=39
        )

    assert (await harness.escrow.lookup_payment(payment_hash)).status in (
        PaymentStatus.UNKNOWN,
        PaymentStatus.FAILED,
    )
    assert (await harness.payee.lookup_invoice(payment_hash)).state is InvoiceState.OPEN


async def test_node_pubkey_is_the_payee_of_the_nodes_own_invoices(harness: Harness) -> None:
    _, invoice = await hold_invoice(harness)

    assert bolt11.decode(invoice.payment_request).payee == await harness.escrow.node_pubkey()
