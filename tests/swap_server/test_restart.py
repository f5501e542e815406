"""A restarted server (a new app over the same state directory) carries a swap in flight on:
its records, with its per-swap keys, are on disk before any money moves."""

from __future__ import annotations

import json

from support.swap_parties import CLIENT_SK, DEST
from support.swap_server_world import ServerWorld

from taskhold.devnet.swap_server.watcher import COOPERATIVE_CLAIM_WAIT_SECONDS
from taskhold.lightning.base import PaymentStatus
from taskhold.swaps.cooperative import finish_cooperative_spend, start_cooperative_spend
from taskhold.swaps.tx import build_spend


async def test_a_submarine_swap_resumes_after_a_restart(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    path = world.state_dir / "swaps" / f"{swap.id}.json"
    saved = json.loads(path.read_text())
    assert saved["status"] == "invoice.set"
    assert saved["server_seckey_hex"]  # the key is on disk before the client pays
    await world.fund_submarine(swap)
    await world.tick()
    assert await world.status(swap.id) == "transaction.mempool"

    await world.restart()
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "invoice.pending"
    await world.escrow.settle_invoice(swap.preimage)
    await world.tick()
    assert await world.status(swap.id) == "transaction.claim.pending"

    await world.restart()  # the cooperative-claim session is gone; the script path is not
    start = world.watcher.clock()
    world.watcher.clock = lambda: start + COOPERATIVE_CLAIM_WAIT_SECONDS + 1
    await world.tick()
    assert await world.status(swap.id) == "transaction.claimed"
    assert world.chain.wallet_received_sat() == swap.response["expectedAmount"] - 300
    assert json.loads(path.read_text())["status"] == "transaction.claimed"


async def test_a_restart_between_paying_and_learning_the_outcome(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    await world.fund_submarine(swap)
    world.chain.mine()
    await world.tick()
    assert await world.status(swap.id) == "invoice.pending"
    await world.restart()  # the payment task died with the old app; the HTLC is still held
    await world.tick()
    assert await world.status(swap.id) == "invoice.pending"
    await world.escrow.settle_invoice(swap.preimage)
    await world.tick()
    assert await world.status(swap.id) == "transaction.claim.pending"
    assert len(world.net.payments_to(swap.payment_hash)) == 1  # paid exactly once


async def test_a_reverse_swap_resumes_after_a_restart(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    await world.escrow.send_payment(swap.response["invoice"])
    await world.restart()
    await world.tick()
    assert await world.status(swap.id) == "transaction.mempool"
    await world.restart()
    await world.tick()
    assert len(world.chain.txs) == 1  # locked up once, not again after the restart
    utxo = await world.lockup_utxo(swap.id, swap.tree)
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
    answer = response.json()
    finish_cooperative_spend(
        tx,
        utxo,
        CLIENT_SK,
        ours,
        boltz_pubnonce=bytes.fromhex(answer["pubNonce"]),
        boltz_partial=bytes.fromhex(answer["partialSignature"]),
    )
    payment = await world.escrow.lookup_payment(swap.payment_hash)
    assert payment.status is PaymentStatus.SUCCEEDED


async def test_a_lockup_sent_just_before_a_crash_is_not_sent_again(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    await world.escrow.send_payment(swap.response["invoice"])
    # the old process paid the lockup, then died before writing the txid down
    txid = await world.chain.send_to_address(
        swap.response["lockupAddress"], swap.response["onchainAmount"]
    )
    await world.restart()
    await world.tick()
    status = (await world.http.get(f"/swap/{swap.id}")).json()
    assert status["status"] == "transaction.mempool"
    assert status["transaction"]["id"] == txid
    assert len(world.chain.txs) == 1


async def test_a_reverse_swap_whose_invoice_was_never_made_ends(world: ServerWorld) -> None:
    swap = await world.create_reverse()
    await world.server_node.cancel_invoice(swap.payment_hash)
    record = world.watcher.records.get(swap.id)
    assert record is not None
    # as if the process died after writing the record, before the node made the invoice
    world.watcher.records.update(record, invoice="", preimage_hash_hex="33" * 32)
    await world.restart()
    await world.tick()
    assert await world.status(swap.id) == "swap.expired"


async def test_record_files_are_readable_by_the_owner_only(world: ServerWorld) -> None:
    swap = await world.create_submarine()
    path = world.state_dir / "swaps" / f"{swap.id}.json"
    assert path.stat().st_mode & 0o077 == 0
