"""Behaviour only the simulator has: lnd's auto-cancel by block, fees, injected faults, expiry."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable

import bolt11
import coincurve
import pytest
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags

from taskhold.lightning.base import (
    HoldInvoice,
    InvoiceState,
    LightningBackend,
    LightningError,
    NodeUnreachable,
    PaymentFailed,
    PaymentStatus,
)
from taskhold.lightning.sim import AutoCancel, SimNetwork, SimNode

AMOUNT_MSAT = 150_000_000
START_BALANCE_MSAT = 1_000_000_000
T0 = 1_700_000_000.0


class ManualClock:
    """A wall clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def net(clock: ManualClock) -> SimNetwork:
    return SimNetwork(clock=clock)


@pytest.fixture
def escrow(net: SimNetwork) -> SimNode:
    return SimNode(net, "escrow", balance_msat=START_BALANCE_MSAT)


@pytest.fixture
def payer(net: SimNetwork) -> SimNode:
    return SimNode(net, "payer", balance_msat=START_BALANCE_MSAT)


@pytest.fixture
def payee(net: SimNetwork) -> SimNode:
    return SimNode(net, "payee", balance_msat=0)


async def hold(
    node: SimNode, *, cltv_expiry_delta: int = 18, expiry_seconds: int = 3600
) -> tuple[bytes, HoldInvoice]:
    preimage = os.urandom(32)
    invoice = await node.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        AMOUNT_MSAT,
        memo="task",
        expiry_seconds=expiry_seconds,
        cltv_expiry_delta=cltv_expiry_delta,
    )
    return preimage, invoice


def hash_of(payment_request: str) -> bytes:
    return bytes.fromhex(bolt11.decode(payment_request).payment_hash)


# -- invoices are real BOLT11 -------------------------------------------------------------------


async def test_hold_invoice_decodes_to_the_node_key_and_terms(escrow: SimNode) -> None:
    _, invoice = await hold(escrow, cltv_expiry_delta=144, expiry_seconds=600)

    decoded = bolt11.decode(invoice.payment_request)

    assert invoice.payment_request.startswith("lnbcrt1500u1")
    assert decoded.payee == escrow.pubkey_hex
    assert decoded.amount_msat == AMOUNT_MSAT
    assert bytes.fromhex(decoded.payment_hash) == invoice.payment_hash
    assert decoded.min_final_cltv_expiry == 144
    assert (decoded.date, decoded.expiry) == (int(T0), 600)
    assert decoded.description == "task"


async def test_ordinary_invoice_decodes_to_the_node_key(payee: SimNode) -> None:
    payment_request = await payee.create_invoice(2_000, memo="payout")

    decoded = bolt11.decode(payment_request)

    assert (decoded.payee, decoded.amount_msat) == (payee.pubkey_hex, 2_000)


async def test_lookup_reports_the_payment_request(escrow: SimNode) -> None:
    _, invoice = await hold(escrow)

    status = await escrow.lookup_invoice(invoice.payment_hash)

    assert status.payment_request == invoice.payment_request


def test_node_key_is_derived_from_its_name() -> None:
    first = SimNode(SimNetwork(), "escrow")
    again = SimNode(SimNetwork(), "escrow")
    other = SimNode(SimNetwork(), "payer")

    assert first.pubkey_hex == again.pubkey_hex != other.pubkey_hex


def test_given_key_sets_the_pubkey() -> None:
    key = coincurve.PrivateKey()

    node = SimNode(SimNetwork(), "n", key_hex=key.secret.hex())

    assert node.pubkey_hex == key.public_key.format(compressed=True).hex()


def test_a_node_joins_a_network_once(net: SimNetwork, escrow: SimNode) -> None:
    with pytest.raises(ValueError, match="already joined"):
        SimNode(net, "escrow")


def test_sim_node_is_a_lightning_backend(escrow: SimNode) -> None:
    assert isinstance(escrow, LightningBackend)
    assert escrow.network == "bcrt"


@pytest.mark.parametrize("cltv_expiry_delta", [17, 65536, 0])
async def test_cltv_delta_outside_lnd_limits_is_refused(
    escrow: SimNode, cltv_expiry_delta: int
) -> None:
    with pytest.raises(LightningError, match="cltv_expiry_delta"):
        await hold(escrow, cltv_expiry_delta=cltv_expiry_delta)


@pytest.mark.parametrize("cltv_expiry_delta", [18, 65535])
async def test_cltv_delta_at_lnd_limits_is_accepted(
    escrow: SimNode, cltv_expiry_delta: int
) -> None:
    _, invoice = await hold(escrow, cltv_expiry_delta=cltv_expiry_delta)

    assert invoice.cltv_expiry_delta == cltv_expiry_delta


# -- money moves when lnd moves it --------------------------------------------------------------


async def test_send_payment_returns_in_flight_and_locks_the_payers_funds(
    escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow)

    result = await payer.send_payment(invoice.payment_request)

    assert result.status is PaymentStatus.IN_FLIGHT
    assert payer.balance_msat == START_BALANCE_MSAT - AMOUNT_MSAT
    assert payer.locked_msat == AMOUNT_MSAT


async def test_receiver_is_credited_on_settle_not_on_accept(
    escrow: SimNode, payer: SimNode
) -> None:
    preimage, invoice = await hold(escrow)
    await payer.send_payment(invoice.payment_request)
    assert escrow.balance_msat == START_BALANCE_MSAT

    await escrow.settle_invoice(preimage)

    assert escrow.balance_msat == START_BALANCE_MSAT + AMOUNT_MSAT
    assert payer.locked_msat == 0


# -- lnd's auto-cancel ---------------------------------------------------------------------------


async def test_auto_cancel_waits_until_height_plus_delta_reaches_expiry(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow, cltv_expiry_delta=18)
    await payer.send_payment(invoice.payment_request)
    expiry_height = net.height + 18

    await net.mine(expiry_height - 12 - net.height - 1)
    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.ACCEPTED
    assert net.auto_cancelled == []

    await net.mine(1)

    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.CANCELED
    assert net.auto_cancelled == [AutoCancel(escrow.pubkey_hex, invoice.payment_hash, net.height)]
    assert net.height + 12 == expiry_height


async def test_auto_cancel_refunds_the_payer(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow)
    await payer.send_payment(invoice.payment_request)

    await net.mine(20)

    assert payer.balance_msat == START_BALANCE_MSAT
    failed = await payer.lookup_payment(invoice.payment_hash)
    assert (failed.status, failed.failure_reason) == (
        PaymentStatus.FAILED,
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
    )


async def test_mining_many_blocks_at_once_cancels_at_the_first_due_height(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow, cltv_expiry_delta=40)
    await payer.send_payment(invoice.payment_request)
    accept_height = net.height

    await net.mine(100)

    assert [c.height for c in net.auto_cancelled] == [accept_height + 40 - 12]


@pytest.mark.parametrize("hold_expiry_delta", [0, 5, 30])
async def test_auto_cancel_uses_the_configured_hold_expiry_delta(
    escrow: SimNode, payer: SimNode, net: SimNetwork, hold_expiry_delta: int
) -> None:
    net.hold_expiry_delta = hold_expiry_delta
    _, invoice = await hold(escrow, cltv_expiry_delta=20)
    await payer.send_payment(invoice.payment_request)
    accept_height = net.height

    await net.mine(30)

    assert [c.height for c in net.auto_cancelled] == [
        max(accept_height + 20 - hold_expiry_delta, accept_height + 1)
    ]


async def test_settled_and_open_invoices_are_never_auto_cancelled(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    preimage, settled = await hold(escrow)
    await payer.send_payment(settled.payment_request)
    await escrow.settle_invoice(preimage)
    _, still_open = await hold(escrow)

    await net.mine(50)

    assert net.auto_cancelled == []
    assert (await escrow.lookup_invoice(settled.payment_hash)).state is InvoiceState.SETTLED
    assert (await escrow.lookup_invoice(still_open.payment_hash)).state is InvoiceState.OPEN


async def test_subscriber_sees_the_auto_cancel(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow)
    await payer.send_payment(invoice.payment_request)
    updates = escrow.subscribe_invoice(invoice.payment_hash)
    assert (await anext(updates)).state is InvoiceState.ACCEPTED

    await net.mine(6)

    assert (await anext(updates)).state is InvoiceState.CANCELED


# -- routing fees --------------------------------------------------------------------------------


async def test_fee_above_the_cap_fails_with_no_route(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    net.fee_base_msat = 1_000
    payment_request = await payee.create_invoice(AMOUNT_MSAT)

    with pytest.raises(PaymentFailed) as failed:
        await escrow.pay_invoice(
            payment_request, max_fee_msat=999, timeout_seconds=5, cltv_limit=500
        )

    assert failed.value.reason == "FAILURE_REASON_NO_ROUTE"
    assert (escrow.balance_msat, payee.balance_msat) == (START_BALANCE_MSAT, 0)


async def test_fee_within_the_cap_is_charged_to_the_payer(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    net.fee_base_msat, net.fee_ppm = 1_000, 2_000  # 1 sat + 0.2 %
    payment_request = await payee.create_invoice(AMOUNT_MSAT)

    result = await escrow.pay_invoice(
        payment_request, max_fee_msat=301_000, timeout_seconds=5, cltv_limit=500
    )

    assert result.fee_msat == 1_000 + AMOUNT_MSAT * 2_000 // 1_000_000 == 301_000
    assert escrow.balance_msat == START_BALANCE_MSAT - AMOUNT_MSAT - 301_000
    assert payee.balance_msat == AMOUNT_MSAT


async def test_payment_latency_lets_payments_overlap_and_each_lands_once(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    net.payment_latency_s = 0.05
    requests = [await payee.create_invoice(AMOUNT_MSAT) for _ in range(2)]
    paying = [
        asyncio.create_task(
            escrow.pay_invoice(r, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)
        )
        for r in requests
    ]
    for _ in range(5):
        await asyncio.sleep(0)

    assert not any(task.done() for task in paying), "both payments wait out the latency"
    assert net.settled_payments == []
    assert {(await escrow.lookup_payment(hash_of(r))).status for r in requests} == {
        PaymentStatus.UNKNOWN
    }

    results = await asyncio.gather(*paying)

    assert [r.status for r in results] == [PaymentStatus.SUCCEEDED] * 2
    assert [len(net.payments_to(hash_of(r))) for r in requests] == [1, 1]
    assert payee.balance_msat == 2 * AMOUNT_MSAT


async def test_payment_latency_is_zero_unless_a_bench_sets_it(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    request = await payee.create_invoice(AMOUNT_MSAT)
    paying = asyncio.create_task(
        escrow.pay_invoice(request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)
    )
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    assert net.payment_latency_s == 0.0
    assert paying.done() and paying.result().status is PaymentStatus.SUCCEEDED


async def test_cancel_returns_the_fee_too(net: SimNetwork, escrow: SimNode, payer: SimNode) -> None:
    net.fee_base_msat = 5_000
    _, invoice = await hold(escrow)
    await payer.send_payment(invoice.payment_request)
    assert payer.balance_msat == START_BALANCE_MSAT - AMOUNT_MSAT - 5_000

    await escrow.cancel_invoice(invoice.payment_hash)

    assert payer.balance_msat == START_BALANCE_MSAT


# -- injected and natural failures ----------------------------------------------------------------


async def test_injected_failure_fails_once_then_a_retry_pays(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    net.fail_next_payments(1, reason="FAILURE_REASON_ERROR")
    payment_request = await payee.create_invoice(AMOUNT_MSAT)

    with pytest.raises(PaymentFailed) as failed:
        await escrow.pay_invoice(payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)
    assert failed.value.reason == "FAILURE_REASON_ERROR"
    assert (await escrow.lookup_payment(hash_of(payment_request))).status is PaymentStatus.FAILED

    retried = await escrow.pay_invoice(
        payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
    )

    assert retried.status is PaymentStatus.SUCCEEDED
    assert len(net.payments_to(hash_of(payment_request))) == 1


async def test_unroutable_destination_fails_until_cleared(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    net.fail_payments_to(payee)
    payment_request = await payee.create_invoice(AMOUNT_MSAT)
    for _ in range(2):
        with pytest.raises(PaymentFailed, match="FAILURE_REASON_NO_ROUTE"):
            await escrow.pay_invoice(
                payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
            )

    net.clear_failures()

    result = await escrow.pay_invoice(
        payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
    )
    assert result.status is PaymentStatus.SUCCEEDED


def test_unknown_failure_reason_is_refused(net: SimNetwork) -> None:
    with pytest.raises(ValueError, match="unknown failure reason"):
        net.fail_next_payments(1, reason="NO_ROUTE")


async def test_payee_outside_the_network_has_no_route(escrow: SimNode) -> None:
    stranger = SimNode(SimNetwork(), "stranger")
    payment_request = await stranger.create_invoice(AMOUNT_MSAT)

    with pytest.raises(PaymentFailed) as failed:
        await escrow.pay_invoice(payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)

    assert failed.value.reason == "FAILURE_REASON_NO_ROUTE"


async def test_insufficient_balance_fails_without_moving_money(
    escrow: SimNode, payee: SimNode
) -> None:
    payment_request = await payee.create_invoice(START_BALANCE_MSAT + 1)

    with pytest.raises(PaymentFailed) as failed:
        await escrow.pay_invoice(payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)

    assert failed.value.reason == "FAILURE_REASON_INSUFFICIENT_BALANCE"
    assert escrow.balance_msat == START_BALANCE_MSAT


async def test_paying_a_cancelled_invoice_fails_with_incorrect_details(
    escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow)
    await escrow.cancel_invoice(invoice.payment_hash)

    result = await payer.send_payment(invoice.payment_request)

    assert (result.status, result.failure_reason) == (
        PaymentStatus.FAILED,
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
    )
    assert payer.balance_msat == START_BALANCE_MSAT


@pytest.mark.parametrize(
    "payment_request", ["", "not an invoice", "lnbcrt1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqw"]
)
async def test_undecodable_payment_request_is_an_error(
    escrow: SimNode, payment_request: str
) -> None:
    with pytest.raises(LightningError, match="invalid payment request"):
        await escrow.pay_invoice(payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)


async def test_mainnet_invoice_is_refused_on_regtest(escrow: SimNode) -> None:
    tags = Tags(
        [
            Tag(TagChar.payment_hash, os.urandom(32).hex()),
            Tag(TagChar.payment_secret, os.urandom(32).hex()),
            Tag(TagChar.description, ""),
        ]
    )
    mainnet = bolt11.encode(
        Bolt11(currency="bc", amount_msat=MilliSatoshi(1_000), date=int(T0), tags=tags),
        os.urandom(32).hex(),
    )

    with pytest.raises(LightningError, match="network"):
        await escrow.pay_invoice(mainnet, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)


# -- an unreachable node -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "create_hold_invoice",
        "lookup_invoice",
        "subscribe_invoice",
        "subscribe_invoices",
        "settle_invoice",
        "cancel_invoice",
        "pay_invoice",
        "lookup_payment",
        "block_height",
        "node_pubkey",
    ],
)
async def test_unreachable_node_refuses_every_backend_call(
    escrow: SimNode, payee: SimNode, call: str
) -> None:
    preimage, invoice = await hold(escrow)
    payment_request = await payee.create_invoice(1_000)
    escrow.unreachable = True
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "create_hold_invoice": lambda: hold(escrow),
        "lookup_invoice": lambda: escrow.lookup_invoice(invoice.payment_hash),
        "subscribe_invoice": lambda: anext(escrow.subscribe_invoice(invoice.payment_hash)),
        "subscribe_invoices": lambda: anext(escrow.subscribe_invoices()),
        "settle_invoice": lambda: escrow.settle_invoice(preimage),
        "cancel_invoice": lambda: escrow.cancel_invoice(invoice.payment_hash),
        "pay_invoice": lambda: escrow.pay_invoice(
            payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
        ),
        "lookup_payment": lambda: escrow.lookup_payment(invoice.payment_hash),
        "block_height": lambda: escrow.block_height(),
        "node_pubkey": lambda: escrow.node_pubkey(),
    }

    with pytest.raises(NodeUnreachable):
        await calls[call]()
    assert payee.balance_msat == 0


async def test_unreachable_node_can_still_be_closed_and_recover(escrow: SimNode) -> None:
    escrow.unreachable = True
    await escrow.close()

    escrow.unreachable = False

    assert await escrow.block_height() == escrow.sim_network.height


async def test_open_subscription_drops_when_the_node_becomes_unreachable(
    escrow: SimNode,
) -> None:
    _, invoice = await hold(escrow)
    updates = escrow.subscribe_invoice(invoice.payment_hash)
    assert (await anext(updates)).state is InvoiceState.OPEN
    pending = asyncio.ensure_future(anext(updates))
    await asyncio.sleep(0)

    escrow.unreachable = True

    with pytest.raises(NodeUnreachable):
        await asyncio.wait_for(pending, timeout=1)


async def test_open_all_invoices_subscription_drops_when_the_node_becomes_unreachable(
    escrow: SimNode,
) -> None:
    await hold(escrow)
    updates = escrow.subscribe_invoices()
    assert (await anext(updates)).state is InvoiceState.OPEN
    pending = asyncio.ensure_future(anext(updates))
    await asyncio.sleep(0)

    escrow.unreachable = True

    with pytest.raises(NodeUnreachable):
        await asyncio.wait_for(pending, timeout=1)


# -- expiry by the wall clock --------------------------------------------------------------------


async def test_open_invoice_is_cancelled_once_its_expiry_passes(
    clock: ManualClock, escrow: SimNode
) -> None:
    _, invoice = await hold(escrow, expiry_seconds=600)
    clock.now = T0 + 599
    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.OPEN

    clock.now = T0 + 600

    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.CANCELED


async def test_paying_an_expired_invoice_fails_with_incorrect_details(
    clock: ManualClock, escrow: SimNode, payee: SimNode
) -> None:
    payment_request = await payee.create_invoice(AMOUNT_MSAT, expiry_seconds=60)
    clock.now = T0 + 61

    with pytest.raises(PaymentFailed) as failed:
        await escrow.pay_invoice(payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500)

    assert failed.value.reason == "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
    assert escrow.balance_msat == START_BALANCE_MSAT


async def test_accepted_invoice_is_not_expired_by_the_clock(
    clock: ManualClock, escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow, expiry_seconds=60)
    await payer.send_payment(invoice.payment_request)

    clock.now = T0 + 10_000

    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.ACCEPTED


# -- never pay twice -------------------------------------------------------------------------------


async def test_paying_a_paid_invoice_again_moves_no_money(
    net: SimNetwork, escrow: SimNode, payee: SimNode
) -> None:
    payment_request = await payee.create_invoice(AMOUNT_MSAT)
    first = await escrow.pay_invoice(
        payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
    )

    again = await escrow.pay_invoice(
        payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
    )

    assert again == first
    assert escrow.balance_msat == START_BALANCE_MSAT - AMOUNT_MSAT
    assert len(net.payments_to(first.payment_hash)) == 1


async def test_concurrent_payments_of_a_held_invoice_send_one_htlc(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    preimage, invoice = await hold(escrow)
    attempts = [
        asyncio.ensure_future(
            payer.pay_invoice(
                invoice.payment_request, max_fee_msat=0, timeout_seconds=5, cltv_limit=500
            )
        )
        for _ in range(2)
    ]
    await asyncio.sleep(0)
    assert payer.locked_msat == AMOUNT_MSAT

    await escrow.settle_invoice(preimage)
    results = await asyncio.gather(*attempts)

    assert [r.preimage for r in results] == [preimage, preimage]
    assert payer.balance_msat == START_BALANCE_MSAT - AMOUNT_MSAT
    assert len(net.payments_to(invoice.payment_hash)) == 1


async def test_timeout_while_held_leaves_the_payment_in_flight(
    escrow: SimNode, payer: SimNode
) -> None:
    """As lnd's backend does: a payment the payee still holds is returned IN_FLIGHT, not
    raised as a failure, so no caller can take it for failed (or for paid)."""
    preimage, invoice = await hold(escrow)

    result = await payer.pay_invoice(
        invoice.payment_request, max_fee_msat=0, timeout_seconds=0, cltv_limit=500
    )

    assert result.status is PaymentStatus.IN_FLIGHT
    assert result.preimage is None
    assert (await payer.lookup_payment(invoice.payment_hash)).status is PaymentStatus.IN_FLIGHT
    await escrow.settle_invoice(preimage)
    assert (await payer.lookup_payment(invoice.payment_hash)).preimage == preimage


# -- bounds on outgoing payments -----------------------------------------------------------------


async def test_a_payment_over_its_cltv_limit_fails_and_holds_nothing(
    escrow: SimNode, payer: SimNode
) -> None:
    _, invoice = await hold(escrow, cltv_expiry_delta=40)

    with pytest.raises(PaymentFailed) as failed:
        await payer.pay_invoice(
            invoice.payment_request, max_fee_msat=0, timeout_seconds=0, cltv_limit=39
        )

    assert failed.value.reason == "FAILURE_REASON_NO_ROUTE"
    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.OPEN
    assert payer.balance_msat == START_BALANCE_MSAT


async def test_node_pubkey_is_the_payee_of_its_invoices(escrow: SimNode) -> None:
    _, invoice = await hold(escrow)

    assert bolt11.decode(invoice.payment_request).payee == await escrow.node_pubkey()


async def test_a_hostile_payee_keeps_its_hold_past_the_auto_cancel(
    net: SimNetwork, escrow: SimNode, payer: SimNode
) -> None:
    net.keep_holds_past_expiry(escrow)
    _, invoice = await hold(escrow, cltv_expiry_delta=18)
    await payer.send_payment(invoice.payment_request)

    await net.mine(30)

    assert (await escrow.lookup_invoice(invoice.payment_hash)).state is InvoiceState.ACCEPTED
    assert (await payer.lookup_payment(invoice.payment_hash)).status is PaymentStatus.IN_FLIGHT
    assert net.auto_cancelled == []
