"""Reverse swaps end to end in process: the escrow pays the server's hold invoice, the server
locks up on chain, the client claims with its preimage (cooperatively or by the script path)
and the server settles; or nobody claims and the server refunds itself at the timeout."""

from __future__ import annotations

from pathlib import Path

import bolt11
from support.swap_parties import CLIENT_SK, DEST
from support.swap_server_world import CLIENT_PUB, ServerWorld, new_world

from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.swaps.cooperative import finish_cooperative_spend, start_cooperative_spend
from taskhold.swaps.tx import build_spend, reverse_claim_script_path


async def _locked(world: ServerWorld):  # type: ignore[no-untyped-def]
    swap = await world.create_reverse(100_000)
    assert swap.response["onchainAmount"] == 100_000 - 500 - 300  # 0.5% and the lockup fee
    invoice = bolt11.decode(swap.response["invoice"])
    assert invoice.payment_hash == swap.payment_hash.hex()
    assert invoice.amount_msat == 100_000_000
    assert await world.status(swap.id) == "swap.created"
    await world.tick()
    assert await world.status(swap.id) == "swap.created"  # nothing locked before it is paid
    assert world.chain.txs == []
    paid = await world.escrow.send_payment(swap.response["invoice"])
    assert paid.status is PaymentStatus.IN_FLIGHT
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "transaction.mempool"
    assert set(status["transaction"]) >= {"id", "hex"}
    lockup = (await world.http.get(f"/swap/reverse/{swap.id}/transaction")).json()
    assert lockup["id"] == status["transaction"]["id"]
    assert lockup["timeoutBlockHeight"] == swap.response["timeoutBlockHeight"]
    return swap


async def test_hold_accepted_lockup_cooperative_claim_settles(world: ServerWorld) -> None:
    swap = await _locked(world)
    utxo = await world.lockup_utxo(swap.id, swap.tree)
    assert utxo.amount_sat == swap.response["onchainAmount"]
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "transaction.confirmed"
    tx = build_spend(utxo, DEST, 200)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    response = await world.post(
        f"/swap/reverse/{swap.id}/claim",
        {
            "preimage": swap.preimage.hex(),
            "pubNonce": ours.public.hex(),
            "transaction": tx.serialize().hex(),
            "index": 0,
        },
    )
    assert response.status_code == 200, response.text
    assert await world.status(swap.id) == "invoice.settled"
    answer = response.json()
    done = finish_cooperative_spend(
        tx,
        utxo,
        CLIENT_SK,
        ours,
        boltz_pubnonce=bytes.fromhex(answer["pubNonce"]),
        boltz_partial=bytes.fromhex(answer["partialSignature"]),
    )
    sent = await world.post("/chain/BTC/transaction", {"hex": done.serialize().hex()})
    assert sent.status_code == 200, sent.text
    payment = await world.escrow.lookup_payment(swap.payment_hash)
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.preimage == swap.preimage  # the escrow's proof of payment
    await world.tick()
    assert await world.status(swap.id) == "invoice.settled"


async def test_a_script_path_claim_on_chain_settles_the_invoice(world: ServerWorld) -> None:
    swap = await _locked(world)
    await world.http.post("http://swap.test/devnet/cooperative", json={"enabled": False})
    utxo = await world.lockup_utxo(swap.id, swap.tree)
    tx = build_spend(utxo, DEST, 200)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    refused = await world.post(
        f"/swap/reverse/{swap.id}/claim",
        {"preimage": swap.preimage.hex(), "pubNonce": ours.public.hex(),
         "transaction": tx.serialize().hex(), "index": 0},
    )  # fmt: skip
    assert refused.status_code == 400
    assert "disabled" in refused.json()["error"]
    assert await world.status(swap.id) == "transaction.mempool"
    claim = reverse_claim_script_path(
        utxo, DEST, 200, claim_seckey=CLIENT_SK, preimage=swap.preimage
    )
    sent = await world.post("/chain/BTC/transaction", {"hex": claim.serialize().hex()})
    assert sent.status_code == 200, sent.text
    await world.tick()
    assert await world.status(swap.id) == "invoice.settled"
    payment = await world.escrow.lookup_payment(swap.payment_hash)
    assert payment.status is PaymentStatus.SUCCEEDED


async def test_the_preimage_alone_settles_without_a_signature(world: ServerWorld) -> None:
    swap = await _locked(world)
    response = await world.post(f"/swap/reverse/{swap.id}/claim", {"preimage": swap.preimage.hex()})
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert await world.status(swap.id) == "invoice.settled"


async def test_unclaimed_lockup_is_refunded_at_the_timeout_and_the_hold_cancelled(
    world: ServerWorld,
) -> None:
    swap = await _locked(world)
    timeout = swap.response["timeoutBlockHeight"]
    world.chain.mine(timeout - world.chain.tip - 1)
    await world.tick()
    assert await world.status(swap.id) == "transaction.confirmed"
    world.chain.mine()
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "transaction.refunded"
    refund = world.chain.tx(world.chain.broadcasts[-1])
    assert refund.locktime >= timeout
    _sig, leaf, _control = refund.vin[0].witness.items
    assert leaf == swap.tree.refund_leaf
    assert world.chain.wallet_received_sat() == swap.response["onchainAmount"] - 200
    invoice = await world.server_node.lookup_invoice(swap.payment_hash)
    assert invoice.state is InvoiceState.CANCELED
    failed = await world.escrow.lookup_payment(swap.payment_hash)
    assert failed.status is PaymentStatus.FAILED
    assert world.escrow.balance_msat == 1_000_000_000  # the escrow got its money back
    # a late claim is refused by the chain: the lockup is gone
    utxo = await world.lockup_utxo_of(swap.id, swap.tree)
    late = reverse_claim_script_path(
        utxo, DEST, 200, claim_seckey=CLIENT_SK, preimage=swap.preimage
    )
    sent = await world.post("/chain/BTC/transaction", {"hex": late.serialize().hex()})
    assert sent.status_code == 400
    assert "already spent" in sent.json()["error"]


async def test_an_invoice_never_paid_expires_with_the_swap(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    world.chain.mine(swap.response["timeoutBlockHeight"] - world.chain.tip)
    await world.tick()
    assert await world.status(swap.id) == "swap.expired"
    invoice = await world.server_node.lookup_invoice(swap.payment_hash)
    assert invoice.state is InvoiceState.CANCELED
    assert world.chain.txs == []


async def test_a_lockup_the_wallet_cannot_pay_bounces_the_htlc(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    world.chain.refuse_sends = True
    await world.escrow.send_payment(swap.response["invoice"])
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "transaction.failed"
    assert "insufficient funds" in status["failureReason"]
    failed = await world.escrow.lookup_payment(swap.payment_hash)
    assert failed.status is PaymentStatus.FAILED


async def test_a_hold_invoice_that_expires_unpaid_ends_the_swap(tmp_path: Path) -> None:
    now = [1_900_000_000.0]
    world = new_world(tmp_path, clock=lambda: now[0])
    try:
        response = await world.post(
            "/swap/reverse",
            {
                "from": "BTC",
                "to": "BTC",
                "preimageHash": "44" * 32,
                "claimPublicKey": CLIENT_PUB.hex(),
                "invoiceAmount": 50_000,
                "invoiceExpiry": 600,
            },
        )
        assert response.status_code == 201, response.text
        swap_id = response.json()["id"]
        await world.tick()
        assert await world.status(swap_id) == "swap.created"
        now[0] += 601
        await world.tick()
        assert await world.status(swap_id) == "invoice.expired"
        paid = await world.escrow.send_payment(response.json()["invoice"])
        assert paid.status is PaymentStatus.FAILED
        assert world.chain.txs == []
    finally:
        await world.close()


async def test_a_claim_after_the_hold_was_cancelled_is_recorded_not_retried(
    world: ServerWorld,
) -> None:
    swap = await _locked(world)
    await world.server_node.cancel_invoice(swap.payment_hash)  # as lnd does near HTLC expiry
    utxo = await world.lockup_utxo(swap.id, swap.tree)
    claim = reverse_claim_script_path(
        utxo, DEST, 200, claim_seckey=CLIENT_SK, preimage=swap.preimage
    )
    assert (await world.post("/chain/BTC/transaction", {"hex": claim.serialize().hex()})).is_success
    await world.tick()
    record = world.watcher.records.get(swap.id)
    assert record is not None
    assert record.claim_txid == claim.txid().hex()
    assert record.failure_reason is not None and "cancelled" in record.failure_reason
    world.chain.mine(swap.response["timeoutBlockHeight"] - world.chain.tip)
    await world.tick()
    assert world.chain.broadcasts == [claim.txid().hex()]  # no refund attempt of a spent lockup
