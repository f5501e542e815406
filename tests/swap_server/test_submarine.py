"""Submarine swaps end to end in process: the client locks up on chain, the server pays the
escrow's hold invoice, then claims the lockup (cooperatively, or by the script path when the
client does not answer); or refunds cooperatively after its payment failed."""

from __future__ import annotations

import hashlib

from embit.transaction import Transaction
from support.swap_parties import CLIENT_SK, DEST
from support.swap_server_world import ServerWorld

from taskhold.devnet.swap_server.watcher import COOPERATIVE_CLAIM_WAIT_SECONDS
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.swaps.cooperative import (
    answer_submarine_claim,
    finish_cooperative_spend,
    start_cooperative_spend,
)
from taskhold.swaps.musig import verify_schnorr
from taskhold.swaps.tx import build_spend, key_path_sighash, refund_script_path


async def _paid(world: ServerWorld):  # type: ignore[no-untyped-def]
    swap = await world.create_submarine()
    assert swap.response["expectedAmount"] == 100_000 + 300 + 100  # invoice + miner + 0.1%
    assert await world.status(swap.id) == "invoice.set"
    await world.fund_submarine(swap)
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "transaction.mempool"
    assert status["zeroConfRejected"] is True  # maximalZeroConf is 0: one confirmation needed
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "invoice.pending"
    assert (await world.escrow.lookup_invoice(swap.payment_hash)).state is InvoiceState.ACCEPTED
    await world.escrow.settle_invoice(swap.preimage)
    await world.tick()
    assert await world.status(swap.id) == "transaction.claim.pending"
    return swap


async def test_lockup_paid_invoice_and_cooperative_claim(world: ServerWorld) -> None:
    swap = await _paid(world)
    preimage = await world.http.get(f"/swap/submarine/{swap.id}/preimage")
    assert preimage.json() == {"preimage": swap.preimage.hex()}
    details = (await world.http.get(f"/swap/submarine/{swap.id}/claim")).json()
    assert details["publicKey"] == swap.response["claimPublicKey"]
    assert hashlib.sha256(bytes.fromhex(details["preimage"])).digest() == swap.payment_hash
    nonce, partial = answer_submarine_claim(
        swap.tree,
        CLIENT_SK,
        boltz_pubnonce=bytes.fromhex(details["pubNonce"]),
        sighash=bytes.fromhex(details["transactionHash"]),
        preimage=bytes.fromhex(details["preimage"]),
        invoice_payment_hash=swap.payment_hash,
    )
    response = await world.post(
        f"/swap/submarine/{swap.id}/claim",
        {"pubNonce": nonce.hex(), "partialSignature": partial.hex()},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert await world.status(swap.id) == "transaction.claimed"
    (claim_txid,) = world.chain.broadcasts
    claim = world.chain.tx(claim_txid)
    (signature,) = claim.vin[0].witness.items  # the key path: one aggregate signature
    assert verify_schnorr(
        swap.tree.output_xonly, bytes.fromhex(details["transactionHash"]), signature
    )
    assert world.chain.wallet_received_sat() == swap.response["expectedAmount"] - 300
    assert world.escrow.balance_msat == 1_000_000_000 + 100_000_000  # the escrow was paid once


async def test_the_server_claims_by_the_script_path_when_the_client_is_silent(
    world: ServerWorld,
) -> None:
    swap = await _paid(world)
    await world.tick()
    assert await world.status(swap.id) == "transaction.claim.pending"  # still waiting
    start = world.watcher.clock()
    world.watcher.clock = lambda: start + COOPERATIVE_CLAIM_WAIT_SECONDS + 1
    await world.tick()
    assert await world.status(swap.id) == "transaction.claimed"
    (claim_txid,) = world.chain.broadcasts
    _sig, preimage, leaf, control = world.chain.tx(claim_txid).vin[0].witness.items
    assert preimage == swap.preimage and leaf == swap.tree.claim_leaf
    assert control == swap.tree.control_block(leaf)
    assert world.chain.wallet_received_sat() == swap.response["expectedAmount"] - 300


async def test_cooperative_refund_after_the_payment_failed(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    await world.fund_submarine(swap)
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "invoice.pending"
    await world.escrow.cancel_invoice(swap.payment_hash)  # the task was cancelled
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "invoice.failedToPay"
    assert "failureReason" in status
    payment = await world.server_node.lookup_payment(swap.payment_hash)
    assert payment.status is PaymentStatus.FAILED
    utxo = await world.lockup_utxo_from_chain(swap)
    tx = build_spend(utxo, DEST, 300)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    response = await world.post(
        f"/swap/submarine/{swap.id}/refund",
        {"pubNonce": ours.public.hex(), "transaction": tx.serialize().hex(), "index": 0},
    )
    assert response.status_code == 200, response.text
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
    refund = world.chain.tx(sent.json()["id"])
    assert refund.vout[0].value == swap.response["expectedAmount"] - 300
    assert verify_schnorr(
        swap.tree.output_xonly, key_path_sighash(tx, utxo), refund.vin[0].witness.items[0]
    )


async def test_a_lockup_of_the_wrong_amount_fails_and_may_be_refunded(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    await world.fund_submarine(swap, swap.response["expectedAmount"] - 1)
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "transaction.lockupFailed"
    assert status["failureDetails"] == {
        "expected": swap.response["expectedAmount"],
        "actual": swap.response["expectedAmount"] - 1,
    }
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "transaction.lockupFailed"  # never paid
    assert (await world.server_node.lookup_payment(swap.payment_hash)).status is (
        PaymentStatus.UNKNOWN
    )
    utxo = await world.lockup_utxo_from_chain(swap)
    tx = build_spend(utxo, DEST, 300)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    response = await world.post(
        f"/swap/submarine/{swap.id}/refund",
        {"pubNonce": ours.public.hex(), "transaction": tx.serialize().hex(), "index": 0},
    )
    assert response.status_code == 200, response.text
    # at the timeout the failed swap expires
    world.chain.mine(swap.response["timeoutBlockHeight"] - world.chain.tip)
    await world.tick()
    assert await world.status(swap.id) == "swap.expired"


async def test_an_unfunded_swap_expires_at_its_timeout(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    world.chain.mine(swap.response["timeoutBlockHeight"] - world.chain.tip - 1)
    await world.tick()
    assert await world.status(swap.id) == "invoice.set"
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "swap.expired"


async def test_the_claim_spends_the_lockup_to_the_servers_wallet(world: ServerWorld) -> None:
    swap = await _paid(world)
    claim_hex = world.watcher.records.get(swap.id).claim_tx_hex  # type: ignore[union-attr]
    claim = Transaction.parse(bytes.fromhex(claim_hex))
    assert claim.vout[0].script_pubkey.data in world.chain.wallet_scripts


async def test_a_server_that_will_not_cooperate_claims_by_the_script_path_at_once(
    world: ServerWorld,
) -> None:
    swap = await _paid(world)
    switched = await world.http.post("http://swap.test/devnet/cooperative", json={"enabled": False})
    assert switched.status_code == 200
    refused = await world.http.get(f"/swap/submarine/{swap.id}/claim")
    assert refused.status_code == 400
    assert "disabled" in refused.json()["error"]
    await world.tick()  # no waiting for a signature it would not ask for
    assert await world.status(swap.id) == "transaction.claimed"
    (claim_txid,) = world.chain.broadcasts
    assert len(world.chain.tx(claim_txid).vin[0].witness.items) == 4  # the claim leaf


async def test_a_server_down_past_the_timeout_finds_the_clients_refund(
    world: ServerWorld,
) -> None:
    swap = await _paid(world)
    utxo = await world.lockup_utxo_from_chain(swap)
    timeout = swap.response["timeoutBlockHeight"]
    world.chain.mine(timeout - world.chain.tip)
    refund = refund_script_path(utxo, DEST, 300, refund_seckey=CLIENT_SK, locktime=timeout)
    sent = await world.post("/chain/BTC/transaction", {"hex": refund.serialize().hex()})
    assert sent.status_code == 200, sent.text
    await world.tick(2)
    assert await world.status(swap.id) == "transaction.claim.pending"  # never "claimed"
    record = world.watcher.records.get(swap.id)
    assert record is not None and record.failure_reason is not None
    assert world.chain.broadcasts == [refund.txid().hex()]  # no claim attempt after it
