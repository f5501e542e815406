"""A hostile or careless client gets no signature the server's lifecycle does not allow.

Each refusal is an HTTP 400 with Boltz's ``{"error": ...}`` body, and the swap and the money
behind it are left exactly as they were."""

from __future__ import annotations

import secrets

from support.swap_parties import CLIENT_SK, DEST
from support.swap_server_world import ServerWorld

from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.swaps.cooperative import start_cooperative_spend
from taskhold.swaps.tx import SwapUtxo, build_spend, refund_script_path


async def _pending_submarine(world: ServerWorld):  # type: ignore[no-untyped-def]
    swap = await world.create_submarine()
    await world.fund_submarine(swap)
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "invoice.pending"
    status = await world.escrow.lookup_invoice(swap.payment_hash)
    assert status.state is InvoiceState.ACCEPTED  # the server's HTLC is held by the escrow
    return swap


async def _refund_request(world: ServerWorld, swap_id: str, utxo: SwapUtxo) -> dict[str, object]:
    tx = build_spend(utxo, DEST, 300)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    return {"pubNonce": ours.public.hex(), "transaction": tx.serialize().hex(), "index": 0}


async def test_no_cooperative_refund_while_the_payment_is_pending(world: ServerWorld) -> None:
    swap = await _pending_submarine(world)
    utxo = await world.lockup_utxo_from_chain(swap)
    response = await world.post(
        f"/swap/submarine/{swap.id}/refund", await _refund_request(world, swap.id, utxo)
    )
    assert response.status_code == 400
    assert "not eligible" in response.json()["error"]
    assert "partialSignature" not in response.json()
    # the escrow settles: the server is paid back by its claim, the client got nothing to refund
    await world.escrow.settle_invoice(swap.preimage)
    await world.tick()
    assert await world.status(swap.id) == "transaction.claim.pending"


async def test_no_cooperative_refund_of_a_swap_that_did_not_fail(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    await world.fund_submarine(swap)
    await world.tick()
    assert await world.status(swap.id) == "transaction.mempool"
    utxo = await world.lockup_utxo_from_chain(swap)
    response = await world.post(
        f"/swap/submarine/{swap.id}/refund", await _refund_request(world, swap.id, utxo)
    )
    assert response.status_code == 400
    assert "not eligible" in response.json()["error"]


async def test_a_refund_that_spends_another_output_is_refused(world: ServerWorld) -> None:
    swap = await _pending_submarine(world)
    await world.escrow.cancel_invoice(swap.payment_hash)
    await world.tick()
    assert await world.status(swap.id) == "invoice.failedToPay"
    utxo = await world.lockup_utxo_from_chain(swap)
    other = SwapUtxo(secrets.token_hex(32), utxo.vout, utxo.amount_sat, utxo.tree)
    response = await world.post(
        f"/swap/submarine/{swap.id}/refund", await _refund_request(world, swap.id, other)
    )
    assert response.status_code == 400
    assert "does not spend this swap's lockup" in response.json()["error"]


async def test_no_signature_when_cooperation_is_switched_off(world: ServerWorld) -> None:
    swap = await _pending_submarine(world)
    await world.escrow.cancel_invoice(swap.payment_hash)
    await world.tick()
    assert await world.status(swap.id) == "invoice.failedToPay"
    switched = await world.http.post("http://swap.test/devnet/cooperative", json={"enabled": False})
    assert switched.json() == {"enabled": False}
    utxo = await world.lockup_utxo_from_chain(swap)
    response = await world.post(
        f"/swap/submarine/{swap.id}/refund", await _refund_request(world, swap.id, utxo)
    )
    assert response.status_code == 400
    assert "disabled" in response.json()["error"]
    # the client's way out: the refund leaf, refused by the chain until the timeout
    timeout = swap.response["timeoutBlockHeight"]
    refund = refund_script_path(utxo, DEST, 300, refund_seckey=CLIENT_SK, locktime=timeout)
    early = await world.post("/chain/BTC/transaction", {"hex": refund.serialize().hex()})
    assert early.status_code == 400
    assert "above the chain tip" in early.json()["error"]
    world.chain.mine(timeout - world.chain.tip)
    late = await world.post("/chain/BTC/transaction", {"hex": refund.serialize().hex()})
    assert late.status_code == 200, late.text
    assert late.json()["id"] == refund.txid().hex()


async def test_a_wrong_preimage_settles_nothing_and_signs_nothing(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    paid = await world.escrow.send_payment(swap.response["invoice"])
    assert paid.status is PaymentStatus.IN_FLIGHT
    await world.tick()
    assert await world.status(swap.id) == "transaction.mempool"
    utxo = await world.lockup_utxo(swap.id, swap.tree)
    tx = build_spend(utxo, DEST, 200)
    ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
    response = await world.post(
        f"/swap/reverse/{swap.id}/claim",
        {
            "preimage": secrets.token_hex(32),
            "pubNonce": ours.public.hex(),
            "transaction": tx.serialize().hex(),
            "index": 0,
        },
    )
    assert response.status_code == 400
    assert response.json() == {"error": "incorrect preimage"}
    assert await world.status(swap.id) == "transaction.mempool"
    invoice = await world.server_node.lookup_invoice(swap.payment_hash)
    assert invoice.state is InvoiceState.ACCEPTED
    assert (await world.escrow.lookup_payment(swap.payment_hash)).status is PaymentStatus.IN_FLIGHT


async def test_no_reverse_claim_signature_before_the_lockup(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    response = await world.post(f"/swap/reverse/{swap.id}/claim", {"preimage": swap.preimage.hex()})
    assert response.status_code == 400
    assert "not eligible" in response.json()["error"]
    invoice = await world.server_node.lookup_invoice(swap.payment_hash)
    assert invoice.state is InvoiceState.OPEN


async def test_a_bad_partial_signature_does_not_finish_the_servers_claim(
    world: ServerWorld,
) -> None:
    swap = await _pending_submarine(world)
    await world.escrow.settle_invoice(swap.preimage)
    await world.tick()
    details = (await world.http.get(f"/swap/submarine/{swap.id}/claim")).json()
    response = await world.post(
        f"/swap/submarine/{swap.id}/claim",
        {"pubNonce": details["pubNonce"], "partialSignature": secrets.token_hex(32)},
    )
    assert response.status_code == 400
    assert await world.status(swap.id) == "transaction.claim.pending"
    assert world.chain.broadcasts == []


async def test_the_server_never_signs_twice_with_one_nonce(world: ServerWorld) -> None:
    """A client asking again (same nonce, another fee) gets a fresh server nonce each time:
    two partial signatures under one nonce would give away the swap key."""
    swap = await _pending_submarine(world)
    await world.escrow.cancel_invoice(swap.payment_hash)
    await world.tick()
    utxo = await world.lockup_utxo_from_chain(swap)
    first_tx, second_tx = build_spend(utxo, DEST, 300), build_spend(utxo, DEST, 400)
    ours = start_cooperative_spend(first_tx, utxo, CLIENT_SK)
    answers = []
    for tx in (first_tx, second_tx):
        body = {"pubNonce": ours.public.hex(), "transaction": tx.serialize().hex(), "index": 0}
        response = await world.post(f"/swap/submarine/{swap.id}/refund", body)
        assert response.status_code == 200, response.text
        answers.append(response.json()["pubNonce"])
    assert answers[0] != answers[1]
