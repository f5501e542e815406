"""The participants' on-chain flows against taskhold and the swap server, in process.

The hostile cases come first: a swap whose clocks cannot fit, or whose server lies about its
tree or its amount, is refused before the employer's wallet sends anything; a lockup smaller
than agreed keeps the worker's preimage secret. Then the four journeys of issue #14 (funded on
chain, paid on chain, refunded cooperatively, refunded by the script path) and the worker who
walks away, each with the coins counted on the chain.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.audit_logs import audit_stored_log
from support.onchain_world import AMOUNT_MSAT, OnChainWorld, onchain_world

from taskhold.boltz import statuses
from taskhold.boltz.api import BoltzApi
from taskhold.boltz.models import StatusTransaction, SwapStatus
from taskhold.boltz.records import SwapRecords
from taskhold.boltz.verify import decode_invoice
from taskhold.boltz.ws import wait_for_status
from taskhold.onchain.fallback import OnChainFallback, await_payout
from taskhold.onchain.funding import cosign_boltz_claim, fund_by_swap, refund_funding
from taskhold.onchain.payout import claim_payout, start_payout_swap
from taskhold.onchain.spending import SPEND_FEE_SAT, RefundNotYet
from taskhold.store.models import LogEntryRow
from taskhold.swaps.errors import SwapMismatch, SwapTimingError
from taskhold.swaps.tree import Network, SwapType, swap_tree

MAX_FEE_SAT = 10_000
PROOF = {"url": "https://example.org/README.de.md"}


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> Any:
    async with onchain_world(tmp_path, database_url) as w:
        yield w


async def fund(
    world: OnChainWorld, employer: Any, task_id: str, api: BoltzApi | None = None
) -> Any:
    return await fund_by_swap(
        employer,
        api or world.api,
        world.employer_wallet,
        world.records("employer"),
        task_id,
        network=Network.REGTEST,
        max_fee_sat=MAX_FEE_SAT,
    )


def lying_boltz(world: OnChainWorld, lie: str) -> BoltzApi:
    """The real swap server behind a proxy that rewrites its submarine answer: ``more-money``
    asks for more than the published fees; ``short-timeout`` rebuilds the tree, leaves and
    address for a timeout that ends too soon, consistently, so only the clocks give it away."""
    inner = world.boltz()

    async def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2")
        forwarded = await inner._http.request(request.method, path, content=request.content)
        if request.method != "POST" or path != "/swap/submarine":
            return httpx.Response(forwarded.status_code, content=forwarded.content)
        answer = forwarded.json()
        if lie == "more-money":
            answer["expectedAmount"] += 1_000
            answer.pop("bip21", None)  # a liar with its BIP-21 URI unchanged is caught there
        if lie == "short-timeout":
            body = json.loads(request.content)
            timeout = world.chain.tip + 30
            tree = swap_tree(
                SwapType.SUBMARINE,
                boltz_pubkey=bytes.fromhex(answer["claimPublicKey"]),
                client_pubkey=bytes.fromhex(body["refundPublicKey"]),
                preimage_hash=decode_invoice(body["invoice"]).payment_hash,
                timeout_block_height=timeout,
            )
            answer["timeoutBlockHeight"] = timeout
            answer["address"] = tree.address(Network.REGTEST)
            answer["swapTree"]["refundLeaf"]["output"] = tree.refund_leaf.hex()
            answer["swapTree"]["claimLeaf"]["output"] = tree.claim_leaf.hex()
            answer.pop("bip21", None)
        return httpx.Response(forwarded.status_code, json=answer)

    return BoltzApi("http://liar.test/v2", transport=httpx.MockTransport(handle))


async def worker_fallback(world: OnChainWorld, records: SwapRecords) -> OnChainFallback:
    """The worker's client set to take a payout on chain by itself."""
    return OnChainFallback(
        address=await world.worker_wallet.new_address(),
        records=records,
        network=Network.REGTEST,
        max_fee_sat=MAX_FEE_SAT,
        claim_timeout_s=20,
        transport=httpx.ASGITransport(app=world.swap_app),
    )


async def paid_with_fallback(
    world: OnChainWorld, worker: Any, task_id: str, fallback: OnChainFallback
) -> Any:
    """``await_payout`` with the fallback, a block mined every 0.25 s meanwhile (the reverse
    timeout, 72 blocks, stays far off)."""

    async def keep_mining() -> None:
        while True:
            await asyncio.sleep(0.25)
            world.chain.mine(1)

    miner = asyncio.create_task(keep_mining())
    try:
        return await await_payout(
            worker, task_id, on_chain_fallback=fallback, timeout_s=30, poll_s=0.05
        )
    finally:
        miner.cancel()


# -- refused before anything moves ---------------------------------------------------------------


async def test_a_swap_asking_more_than_its_published_fees_is_refused(world: OnChainWorld) -> None:
    employer = world.client()
    task_id = await world.new_task(employer)
    with pytest.raises(SwapMismatch, match="expectedAmount"):
        await fund(world, employer, task_id, lying_boltz(world, "more-money"))
    assert world.employer_wallet.sent == []
    assert world.records("employer").all() == []


async def test_a_swap_timeout_shorter_than_the_hold_is_refused_naming_the_numbers(
    world: OnChainWorld,
) -> None:
    employer = world.client()
    task_id = await world.new_task(employer)
    with pytest.raises(SwapTimingError) as refused:
        await fund(world, employer, task_id, lying_boltz(world, "short-timeout"))
    message = str(refused.value)
    hold = (await employer.get_task(task_id))["funding"]["cltv_expiry_delta"]
    assert f"invoice_cltv_expiry_delta={hold}" in message
    assert f"timeout_block_height={world.chain.tip + 30}" in message
    assert world.employer_wallet.sent == []
    assert world.records("employer").all() == []


async def test_a_wrong_sized_lockup_keeps_the_preimage_secret(world: OnChainWorld) -> None:
    employer, worker = world.client(), world.client()
    task_id = await world.funded_by_lightning(employer)
    await worker.claim(task_id)
    records = world.records("worker")
    payout = await start_payout_swap(
        worker, world.api, records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
    )
    record = records.get(payout.swap_id)
    # the swap server locks up less than it agreed (a hostile Boltz): the client must not claim
    tree = record.tree()
    world.chain.fund(tree.address(Network.REGTEST), record.expected_amount_sat - 1)
    world.chain.mine(1)

    async def fake_status(swap_id: str) -> Any:
        lockup = world.chain.txs[-1]
        return SwapStatus(
            statuses.TRANSACTION_CONFIRMED, StatusTransaction(lockup.txid, lockup.hex, True)
        )

    world.api.swap_status = fake_status  # type: ignore[method-assign]
    with pytest.raises(SwapMismatch, match="preimage stays secret"):
        await claim_payout(
            worker,
            world.api,
            records,
            payout.swap_id,
            await world.worker_wallet.new_address(),
            timeout_s=5,
        )
    assert records.get(payout.swap_id).state == "invoice_handed"
    for entry in world.chain.txs:
        assert record.preimage_hex not in entry.hex


# -- the journeys ---------------------------------------------------------------------------------


async def test_an_on_chain_funded_task_is_paid_over_lightning(world: OnChainWorld) -> None:
    employer, worker = world.client(), world.client()
    task_id = await world.new_task(employer)
    records = world.records("employer")
    swap = await fund(world, employer, task_id)
    ((address, sent, txid),) = world.employer_wallet.sent
    assert (address, sent, txid) == (swap.address, swap.quote.payer_sends, swap.lockup_txid)
    assert records.get(swap.swap_id).state == "lockup_sent"
    world.chain.mine(1)
    await world.state_is(task_id, "FUNDED")

    await worker.claim(task_id)
    task = await worker.get_task(task_id)
    invoice = await world.world.worker.create_invoice(task["payout_msat"])
    await worker.submit_proof(task_id, PROOF, invoice)
    await employer.approve(task_id)
    await world.state_is(task_id, "PAID")
    await wait_for_status(
        world.api, swap.swap_id, {statuses.TRANSACTION_CLAIM_PENDING}, timeout_s=10, interval=0.02
    )
    await cosign_boltz_claim(world.api, records, swap.swap_id)
    claimed = await wait_for_status(
        world.api, swap.swap_id, {statuses.TRANSACTION_CLAIMED}, timeout_s=10, interval=0.02
    )
    assert claimed.status == statuses.TRANSACTION_CLAIMED
    final = await employer.get_task(task_id)
    assert [(s["swap_id"], s["lockup_txid"]) for s in final["swaps"]] == [
        (swap.swap_id, swap.lockup_txid)
    ]


async def test_a_lightning_funded_task_is_paid_on_chain(world: OnChainWorld) -> None:
    employer, worker = world.client(), world.client()
    task_id = await world.funded_by_lightning(employer)
    await worker.claim(task_id)
    records = world.records("worker")
    payout = await start_payout_swap(
        worker, world.api, records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
    )
    assert (
        payout.quote.payer_sends
        == AMOUNT_MSAT // 1000 - (await worker.get_task(task_id))["fee_msat"] // 1000
    )
    await worker.submit_proof(task_id, PROOF, payout.invoice)
    await employer.approve(task_id)
    address = await world.worker_wallet.new_address()

    await wait_for_status(
        world.api, payout.swap_id, {statuses.TRANSACTION_MEMPOOL}, timeout_s=10, interval=0.02
    )
    world.chain.mine(1)
    spend = await claim_payout(
        worker, world.api, records, payout.swap_id, address, timeout_s=10, poll_s=0.02
    )
    assert spend.cooperative
    await world.state_is(task_id, "PAID")
    record = records.get(payout.swap_id)
    assert world.worker_wallet.received_sat() == record.expected_amount_sat - SPEND_FEE_SAT
    final = await employer.get_task(task_id)
    audited = await audit_stored_log(world.stack.services)
    assert audited.clean, [finding.to_json() for finding in audited.findings]
    assert audited.summary.payout_proven  # the claim revealed the preimage taskhold paid for
    assert [(s["role"], s["claim_txid"]) for s in final["swaps"]] == [("payout", spend.txid)]


async def test_an_on_chain_funded_task_is_refunded_cooperatively(world: OnChainWorld) -> None:
    employer = world.client()
    task_id = await world.new_task(employer)
    records = world.records("employer")
    swap = await fund(world, employer, task_id)
    world.chain.mine(1)
    await world.state_is(task_id, "FUNDED")
    await employer.cancel(task_id, reason="plans changed")
    await world.state_is(task_id, "REFUNDED")
    await wait_for_status(
        world.api, swap.swap_id, {statuses.INVOICE_FAILED_TO_PAY}, timeout_s=10, interval=0.02
    )
    address = await world.employer_wallet.new_address()
    spend = await refund_funding(employer, world.api, records, swap.swap_id, address)
    assert spend.cooperative
    assert world.employer_wallet.received_sat() == swap.quote.payer_sends - SPEND_FEE_SAT
    assert records.get(swap.swap_id).refund_txid == spend.txid
    final = await employer.get_task(task_id)
    assert [(s["lockup_txid"], s["refund_txid"]) for s in final["swaps"]] == [
        (swap.lockup_txid, spend.txid)
    ]


async def test_a_refund_the_server_will_not_sign_waits_for_the_timeout(
    world: OnChainWorld,
) -> None:
    employer = world.client()
    task_id = await world.new_task(employer)
    records = world.records("employer")
    swap = await fund(world, employer, task_id)
    world.chain.mine(1)
    await world.state_is(task_id, "FUNDED")
    world.watcher.cooperative = False
    await employer.cancel(task_id, reason="plans changed")
    await world.state_is(task_id, "REFUNDED")
    address = await world.employer_wallet.new_address()
    with pytest.raises(RefundNotYet, match=str(swap.timeout_block_height)):
        await refund_funding(employer, world.api, records, swap.swap_id, address)
    assert world.employer_wallet.received_sat() == 0
    world.chain.mine(swap.timeout_block_height - world.chain.tip)
    spend = await refund_funding(employer, world.api, records, swap.swap_id, address)
    assert not spend.cooperative
    assert world.employer_wallet.received_sat() == swap.quote.payer_sends - SPEND_FEE_SAT


async def test_a_worker_who_never_claims_fails_the_payout_and_nobody_loses(
    world: OnChainWorld,
) -> None:
    employer, worker = world.client(), world.client()
    task_id = await world.funded_by_lightning(employer)
    await worker.claim(task_id)
    records = world.records("worker")
    payout = await start_payout_swap(
        worker, world.api, records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
    )
    await worker.submit_proof(task_id, PROOF, payout.invoice)
    await employer.approve(task_id)
    await wait_for_status(
        world.api, payout.swap_id, {statuses.TRANSACTION_MEMPOOL}, timeout_s=10, interval=0.02
    )
    world.chain.mine(payout.timeout_block_height - world.chain.tip + 1)
    await wait_for_status(
        world.api, payout.swap_id, {statuses.TRANSACTION_REFUNDED}, timeout_s=10, interval=0.02
    )

    async def payout_failed() -> bool:
        return (await employer.get_task(task_id))["payout_failures"] >= 1

    await world.until(payout_failed, "the payout to fail")
    task = await employer.get_task(task_id)
    assert task["state"] == "VERIFIED"  # the payout policy applies from here: a new invoice or
    # the refund before the hold runs out; the employer's payment is still held, not lost
    hold = await world.stack.services.lightning.lookup_invoice(
        bytes.fromhex(task["funding"]["payment_hash"])
    )
    assert hold.state.value == "ACCEPTED"
    record = records.get(payout.swap_id)
    assert world.chain.wallet_received_sat() >= record.expected_amount_sat - SPEND_FEE_SAT


async def test_an_unroutable_payout_is_completed_on_chain_by_the_fallback(
    world: OnChainWorld,
) -> None:
    employer, worker = world.client(), world.client()
    task_id = await world.funded_by_lightning(employer)
    await worker.claim(task_id)
    task = await worker.get_task(task_id)
    assert task["payout_fallback"] is None
    await worker.submit_proof(
        task_id, PROOF, await world.world.worker.create_invoice(task["payout_msat"])
    )
    world.world.network.fail_next_payments(1)  # no route to the worker's node
    records = world.records("worker")
    fallback = await worker_fallback(world, records)
    await employer.approve(task_id)
    spend = await paid_with_fallback(world, worker, task_id, fallback)
    assert spend is not None
    final = await employer.get_task(task_id)
    assert final["state"] == "PAID"
    assert final["payout_fallback"] is None
    (record,) = records.all()
    assert record.state == "claimed" and record.claim_txid == spend.txid
    assert world.worker_wallet.received_sat() == record.expected_amount_sat - SPEND_FEE_SAT
    assert [(s["role"], s["claim_txid"]) for s in final["swaps"]] == [("payout", spend.txid)]


async def test_the_swap_keys_and_the_payout_preimage_never_reach_taskhold_early(
    world: OnChainWorld,
) -> None:
    """The employer's refund key never reaches taskhold; the worker's claim key never does,
    and its preimage only through the claim (after which the log may reveal it)."""
    employer, worker = world.client(), world.client()
    task_id = await world.new_task(employer)
    funding = await fund(world, employer, task_id)
    world.chain.mine(1)
    await world.state_is(task_id, "FUNDED")
    await worker.claim(task_id)
    payout_records = world.records("worker")
    payout = await start_payout_swap(
        worker, world.api, payout_records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
    )
    await worker.submit_proof(task_id, PROOF, payout.invoice)
    refund_key = world.records("employer").get(funding.swap_id).secret_key_hex
    claim = payout_records.get(payout.swap_id)

    async def everything_taskhold_holds() -> str:
        async with world.stack.services.store.transaction() as tx:
            rows = await tx.session.execute(select(LogEntryRow.raw))
            log = json.dumps([raw for (raw,) in rows])
        view = json.dumps(await employer.get_task(task_id))
        return log + view

    before = await everything_taskhold_holds()
    for secret in (refund_key, claim.secret_key_hex, claim.preimage_hex):
        assert secret is not None and secret not in before
    await employer.approve(task_id)
    await wait_for_status(
        world.api, payout.swap_id, {statuses.TRANSACTION_MEMPOOL}, timeout_s=10, interval=0.02
    )
    world.chain.mine(1)
    address = await world.worker_wallet.new_address()
    await claim_payout(worker, world.api, payout_records, payout.swap_id, address, timeout_s=10)
    await world.state_is(task_id, "PAID")
    after = await everything_taskhold_holds()
    assert refund_key not in after and claim.secret_key_hex not in after


async def test_a_fallback_resumed_after_a_crash_hands_the_recorded_swap_not_a_new_one(
    world: OnChainWorld,
) -> None:
    employer, worker = world.client(), world.client()
    task_id = await world.funded_by_lightning(employer)
    await worker.claim(task_id)
    task = await worker.get_task(task_id)
    invoice = await world.world.worker.create_invoice(task["payout_msat"])
    await worker.submit_proof(task_id, PROOF, invoice)
    world.world.network.fail_next_payments(1)
    await employer.approve(task_id)

    async def offered() -> bool:
        return bool((await worker.get_task(task_id))["payout_fallback"])

    await world.until(offered, "the on-chain offer")
    records = world.records("worker")
    # the client created the swap, then stopped before handing its invoice to taskhold
    await start_payout_swap(
        worker, world.api, records, task_id, network=Network.REGTEST, max_fee_sat=MAX_FEE_SAT
    )
    fallback = await worker_fallback(world, records)
    spend = await paid_with_fallback(world, worker, task_id, fallback)
    assert spend is not None
    (record,) = records.all()  # the one swap, resumed
    assert record.claim_txid == spend.txid
    assert (await employer.get_task(task_id))["state"] == "PAID"
