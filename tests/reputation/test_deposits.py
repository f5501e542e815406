"""Deposits instead of proof of work, over the API on the simulator (both databases).

A stranger (score 0, so proof of work is asked) locks a small hold invoice on one task instead;
it is returned when the task ends and forfeited to the counterparty when its depositor abandons
the task. Balances are checked at the simulated nodes, so "returned" means the HTLC went back.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bolt11
import pytest
from support.deposit_flows import (
    abandoned_claim,
    deposit_of,
    give_worker_wallet_money,
    locked_deposit,
    share_clock,
    stranger,
)
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import AMOUNT_MSAT, funded, read_log, tag

from taskhold.client import TaskholdAPIError, payout_terms
from taskhold.lightning.base import InvoiceState, PaymentStatus
from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import seal
from taskhold.reputation.policy import ReputationPolicy

POW_BITS = 8


@pytest.fixture
async def open_custom(tmp_path: Path, database_url: str) -> AsyncIterator[Any]:
    opened: list[Stack] = []

    async def open_with(**overrides: Any) -> Stack:
        values = {"pow_max_bits": POW_BITS, "reputation_max_staleness_s": 0, **overrides}
        stack = await open_stack(stack_settings(tmp_path, database_url, **values))
        await give_worker_wallet_money(stack)
        opened.append(stack)
        return stack

    yield open_with
    for stack in opened:
        await close_stack(stack)


def expected_deposit() -> int:
    return ReputationPolicy(pow_max_bits=POW_BITS).deposit_msat_for(0, AMOUNT_MSAT)


async def refused(call: Any) -> TaskholdAPIError:
    with pytest.raises(TaskholdAPIError) as caught:
        await call
    return caught.value


async def test_a_worker_deposit_stands_in_for_pow_and_comes_back_when_paid(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom()
    employer, worker = stack.client(), stranger(stack)
    task = await funded(stack, employer)
    task_id = task["task_id"]
    before = stack.world.worker.balance_msat

    no_pow = await refused(worker.claim(task_id))
    assert no_pow.code == "pow_required"
    assert "deposit" in no_pow.problem["detail"]

    deposit = (await worker.lock_deposit(task_id))["deposit"]
    assert deposit["amount_msat"] == expected_deposit() > 0
    assert deposit["role"] == "worker"
    assert (await refused(worker.claim(task_id))).code == "pow_required"  # not held yet

    await stack.world.worker.send_payment(deposit["payment_request"])
    await stack.settle_engine(1)
    assert deposit_of(await worker.get_task(task_id), worker.pubkey_hex)["state"] == "HELD"
    assert stack.world.worker.balance_msat == before - deposit["amount_msat"]

    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task_id)
    await stack.settle_engine()

    final = await employer.get_task(task_id)
    assert final["state"] == "PAID"
    returned = deposit_of(final, worker.pubkey_hex)
    assert returned["state"] == "RETURNED"
    assert returned["preimage"] is None
    assert stack.world.worker.balance_msat == before + task["payout_msat"]


async def test_an_abandoned_claim_forfeits_the_deposit_to_the_employer(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom()
    gone = await abandoned_claim(stack)
    now, employer, worker, task_id = gone.now, gone.employer, gone.worker, gone.task_id
    amount = gone.amount_msat
    worker_before, employer_before = gone.worker_before_msat, gone.employer_before_msat

    after = await employer.get_task(task_id)
    assert after["state"] == "REFUNDED"
    forfeit = deposit_of(after, worker.pubkey_hex)
    assert forfeit["state"] == "FORFEIT"
    assert forfeit["beneficiary"] == employer.pubkey_hex
    assert "no proof" in forfeit["reason"]

    wrong = await stack.world.employer.create_invoice(amount + 1, expiry_seconds=86_400)
    assert (await refused(employer.claim_deposit(task_id, worker.pubkey_hex, wrong))).status == 422
    outsider = stack.client()
    share_clock(stack, now, employer, worker, outsider)
    invoice = await stack.world.employer.create_invoice(amount, expiry_seconds=86_400)
    taken = await refused(outsider.claim_deposit(task_id, worker.pubkey_hex, invoice))
    assert (taken.status, taken.code) == (403, "wrong_role")
    # The beneficiary signs the invoice's hash and amount in clear; other terms are refused.
    other = payout_terms(await stack.world.employer.create_invoice(amount))
    body = {"depositor": worker.pubkey_hex, "payout_invoice": invoice, **other}
    mismatch = await refused(
        employer._task_write(task_id, "deposit-payout", "deposit-payout", body, None)
    )
    assert (mismatch.status, mismatch.code) == (422, "payout_terms_mismatch")

    await employer.claim_deposit(task_id, worker.pubkey_hex, invoice)
    await stack.settle_engine()
    paid = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert paid["state"] == "PAID_OUT"
    assert hashlib.sha256(bytes.fromhex(paid["preimage"])).hexdigest() == paid["payment_hash"]
    assert stack.world.worker.balance_msat == worker_before - amount
    # the reward's HTLC came back too (it was in flight when employer_before was read)
    assert stack.world.employer.balance_msat == employer_before + AMOUNT_MSAT + amount

    entries = {tag(e, "op"): e for e in await read_log(stack)}
    assert tag(entries["DepositForfeited"], "beneficiary") == employer.pubkey_hex
    assert tag(entries["DepositPaidOut"], "preimage") == paid["preimage"]
    assert tag(entries["DepositRequested"], "deposit_hash") == paid["payment_hash"]


async def test_a_forfeit_nobody_claims_is_returned_before_its_hold_expires(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom()
    gone = await abandoned_claim(stack)
    employer, worker, task = gone.employer, gone.worker, gone.task
    before = gone.worker_before_msat
    forfeit = deposit_of(await employer.get_task(task["task_id"]), worker.pubkey_hex)
    assert forfeit["state"] == "FORFEIT"

    expiry = forfeit["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()
    returned = deposit_of(await employer.get_task(task["task_id"]), worker.pubkey_hex)
    assert returned["state"] == "RETURNED"
    assert "could not be paid" in returned["reason"]
    assert stack.world.network.height < expiry - stack.settings.hold_expiry_delta
    assert stack.world.worker.balance_msat == before  # non-custodial: never settled unpaid


async def test_other_workers_deposits_come_back_when_one_claims(open_custom: Any) -> None:
    stack: Stack = await open_custom()
    employer, first, second = stack.client(), stranger(stack), stranger(stack)
    task = await funded(stack, employer)
    task_id = task["task_id"]
    before = stack.world.worker.balance_msat
    await locked_deposit(stack, first, task_id, stack.world.worker)
    await locked_deposit(stack, second, task_id, stack.world.worker)
    unpaid = stranger(stack)
    await unpaid.lock_deposit(task_id)

    await first.claim(task_id)
    await stack.settle_engine()
    current = await employer.get_task(task_id)
    assert deposit_of(current, first.pubkey_hex)["state"] == "HELD"
    assert deposit_of(current, second.pubkey_hex)["state"] == "RETURNED"
    assert deposit_of(current, unpaid.pubkey_hex)["state"] == "RETURNED"
    assert (await refused(second.claim(task_id))).code in ("pow_required", "wrong_state")
    assert (
        stack.world.worker.balance_msat
        == before - deposit_of(current, first.pubkey_hex)["amount_msat"]
    )


async def test_an_employer_pledges_a_deposit_and_forfeits_it_by_staying_silent(
    open_custom: Any,
) -> None:
    now = [1_900_000_000.0]
    stack: Stack = await open_custom(default_review_window_s=120)
    employer, worker = stranger(stack), stack.client()
    share_clock(stack, now, employer, worker)
    with pytest.raises(TaskholdAPIError) as no_pow:
        await employer.create_task("t", "", AMOUNT_MSAT, int(now[0]) + 3600)
    assert no_pow.value.code == "pow_required"
    task = await employer.create_task("t", "", AMOUNT_MSAT, int(now[0]) + 3600, deposit=True)
    task_id = task["task_id"]
    assert task["deposit_pledged"] is True
    assert (await refused(employer.request_funding(task_id))).code == "pow_required"

    employer_before = stack.world.employer.balance_msat
    amount = await locked_deposit(stack, employer, task_id, stack.world.employer)
    funding = (await employer.request_funding(task_id))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    await worker.claim(task_id)
    payout = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, payout)
    now[0] += 121  # the employer never answers
    await stack.settle_engine()

    after = await worker.get_task(task_id)
    assert after["state"] == "PAID"
    forfeit = deposit_of(after, employer.pubkey_hex)
    assert (forfeit["state"], forfeit["beneficiary"]) == ("FORFEIT", worker.pubkey_hex)
    worker_before = stack.world.worker.balance_msat
    invoice = await stack.world.worker.create_invoice(amount, expiry_seconds=86_400)
    await worker.claim_deposit(task_id, employer.pubkey_hex, invoice)
    await stack.settle_engine()
    assert deposit_of(await worker.get_task(task_id), employer.pubkey_hex)["state"] == "PAID_OUT"
    assert stack.world.worker.balance_msat == worker_before + amount
    assert stack.world.employer.balance_msat == employer_before - AMOUNT_MSAT - amount


async def test_a_forfeited_deposit_is_paid_to_a_sealed_invoice_never_shown(
    open_custom: Any,
) -> None:
    """The beneficiary seals its invoice to the operator (``payout_invoice_sealed``): one that
    does not open is refused; the sealed one is paid, and the task shows only its hash."""
    stack: Stack = await open_custom()
    gone = await abandoned_claim(stack)
    employer, worker, task_id = gone.employer, gone.worker, gone.task_id
    invoice = await stack.world.employer.create_invoice(gone.amount_msat, expiry_seconds=86_400)
    terms = payout_terms(invoice)
    stranger_copy = seal(NostrKeys.generate(), [stack.services.signer.get_public_key()], invoice)
    body = {
        "depositor": worker.pubkey_hex,
        "payout_invoice_sealed": next(iter(stranger_copy.values())),
        **terms,
    }
    unopened = await refused(
        employer._task_write(task_id, "deposit-payout", "deposit-payout", body, None)
    )
    assert (unopened.status, unopened.code) == (422, "sealed_content_invalid")

    claimed = await employer.claim_deposit(task_id, worker.pubkey_hex, invoice, seal_invoice=True)
    shown = deposit_of(claimed, worker.pubkey_hex)["payout_invoice"]
    assert shown == f"sealed:{terms['payout_hash']}"
    await stack.settle_engine()
    final = await employer.get_task(task_id)
    assert deposit_of(final, worker.pubkey_hex)["state"] == "PAID_OUT"
    paid = await stack.world.employer.lookup_invoice(bytes.fromhex(terms["payout_hash"]))
    assert paid.state is InvoiceState.SETTLED
    assert invoice not in str(final) and invoice not in str(await read_log(stack))


async def test_an_employer_who_answers_gets_the_deposit_back(open_custom: Any) -> None:
    stack: Stack = await open_custom()
    employer, worker = stranger(stack), stack.client()
    task = await employer.create_task("t", "", AMOUNT_MSAT, int(time.time()) + 3600, deposit=True)
    task_id = task["task_id"]
    before = stack.world.employer.balance_msat
    await locked_deposit(stack, employer, task_id, stack.world.employer)
    funding = (await employer.request_funding(task_id))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    await worker.claim(task_id)
    payout = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, payout)
    await employer.approve(task_id)
    await stack.settle_engine()
    final = await employer.get_task(task_id)
    assert final["state"] == "PAID"
    assert deposit_of(final, employer.pubkey_hex)["state"] == "RETURNED"
    assert stack.world.employer.balance_msat == before - AMOUNT_MSAT


async def test_deposit_requests_that_make_no_sense_are_refused(open_custom: Any) -> None:
    stack: Stack = await open_custom()
    employer, worker = stack.client(), stranger(stack)
    task = await funded(stack, employer)
    task_id = task["task_id"]
    await worker.lock_deposit(task_id)
    twice = await refused(worker.lock_deposit(task_id))
    assert (twice.status, twice.code) == (409, "deposit_exists")
    late = await refused(employer.lock_deposit(task_id))  # the employer's is before funding
    assert (late.status, late.code) == (409, "wrong_state")
    nothing = await refused(employer.claim_deposit(task_id, worker.pubkey_hex, "lnbcrt1x"))
    assert nothing.status in (403, 409)


async def test_no_deposit_is_taken_from_someone_who_needs_no_pow(open_custom: Any) -> None:
    relaxed: Stack = await open_custom(pow_max_bits=0)
    boss, anyone = relaxed.client(), relaxed.client()
    open_task = await funded(relaxed, boss)
    unneeded = await refused(anyone.lock_deposit(open_task["task_id"]))
    assert (unneeded.status, unneeded.code) == (409, "deposit_not_needed")


async def test_a_crash_between_the_forfeit_payout_and_the_settle_pays_once(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom()
    gone = await abandoned_claim(stack)
    employer, worker, task_id, amount = gone.employer, gone.worker, gone.task_id, gone.amount_msat
    employer_before = stack.world.employer.balance_msat
    invoice = await stack.world.employer.create_invoice(amount, expiry_seconds=86_400)
    await employer.claim_deposit(task_id, worker.pubkey_hex, invoice)

    stack.faults["after_deposit_payout"] = RuntimeError("crash after paying the beneficiary")
    await stack.run_pass()
    half = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert half["state"] == "FORFEIT"
    assert stack.world.employer.balance_msat == employer_before + amount

    stack.faults.clear()
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    done = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert done["state"] == "PAID_OUT"
    assert stack.world.employer.balance_msat == employer_before + amount  # paid once


async def test_the_review_window_is_fixed_at_claim_from_both_records(open_custom: Any) -> None:
    from support.reputation_flows import paid

    stack: Stack = await open_custom(
        pow_max_bits=0,
        default_review_window_s=7200,
        review_window_good_score=1,
        review_window_good_pct=50,
        review_window_min_s=600,
    )
    employer, veteran, newcomer = stack.client(), stack.client(), stack.client()
    await paid(stack, employer, veteran)
    assert (await employer.reputation())["score"] >= 1
    assert (await veteran.reputation())["score"] >= 1

    with_record = await funded(stack, employer)
    assert with_record["review_window_s"] == 7200  # nobody known on the worker's side yet
    claimed = await veteran.claim(with_record["task_id"])
    assert claimed["review_window_s"] == 3600

    with_stranger = await funded(stack, employer)
    assert (await newcomer.claim(with_stranger["task_id"]))["review_window_s"] == 7200

    chosen = await funded(stack, employer, review_window_s=5000)
    assert (await veteran.claim(chosen["task_id"]))["review_window_s"] == 5000


async def test_a_forfeit_payment_in_flight_at_the_guard_margin_is_settled_not_returned(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(payout_timeout_s=1)
    gone = await abandoned_claim(stack)
    employer, worker, task_id, amount = gone.employer, gone.worker, gone.task_id, gone.amount_msat
    stack.world.network.keep_holds_past_expiry(stack.world.employer)  # a hostile payee

    preimage = os.urandom(32)  # the employer's wallet holds the payment to it until released
    held_invoice = await stack.world.employer.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        amount,
        memo="deposit",
        expiry_seconds=86_400,
        cltv_expiry_delta=40,
    )
    await employer.claim_deposit(task_id, worker.pubkey_hex, held_invoice.payment_request)
    await stack.run_pass()
    forfeit = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert forfeit["state"] == "FORFEIT"  # paid, but the payment is still in flight

    expiry = forfeit["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()
    settled = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert settled["state"] == "FORFEIT"  # settled under the declared fallback, still owed
    assert settled["hold_settled_at"] is not None
    deposit_hash = bytes.fromhex(settled["payment_hash"])
    assert (await stack.world.escrow.lookup_invoice(deposit_hash)).state is InvoiceState.SETTLED
    assert stack.world.network.auto_cancelled == []

    await stack.world.employer.settle_invoice(preimage)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    assert deposit_of(await employer.get_task(task_id), worker.pubkey_hex)["state"] == "PAID_OUT"


async def test_a_forfeit_payout_invoice_swapped_while_in_flight_is_not_paid_twice(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(payout_timeout_s=1)
    gone = await abandoned_claim(stack)
    employer, worker, task_id, amount = gone.employer, gone.worker, gone.task_id, gone.amount_msat
    preimage = os.urandom(32)
    held = await stack.world.employer.create_hold_invoice(
        hashlib.sha256(preimage).digest(),
        amount,
        memo="deposit",
        expiry_seconds=86_400,
        cltv_expiry_delta=40,
    )
    await employer.claim_deposit(task_id, worker.pubkey_hex, held.payment_request)
    await stack.run_pass()
    fresh = await stack.world.employer.create_invoice(amount, expiry_seconds=86_400)
    await employer.claim_deposit(task_id, worker.pubkey_hex, fresh)
    stack.services.engine._retry_at.clear()
    await stack.run_pass()
    fresh_hash = bytes.fromhex(bolt11.decode(fresh).payment_hash)
    assert (await stack.world.escrow.lookup_payment(fresh_hash)).status is PaymentStatus.UNKNOWN

    await stack.world.employer.settle_invoice(preimage)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    paid = deposit_of(await employer.get_task(task_id), worker.pubkey_hex)
    assert paid["state"] == "PAID_OUT"
    assert paid["payout_payment_hash"] == held.payment_hash.hex()
    assert len(stack.world.network.payments_to(held.payment_hash)) == 1
    assert stack.world.network.payments_to(fresh_hash) == []


async def test_a_forfeit_payout_to_the_escrow_node_itself_is_refused(open_custom: Any) -> None:
    stack: Stack = await open_custom()
    gone = await abandoned_claim(stack)
    own = await stack.world.escrow.create_invoice(gone.amount_msat, expiry_seconds=86_400)

    refusal = await refused(gone.employer.claim_deposit(gone.task_id, gone.worker.pubkey_hex, own))
    assert (refusal.status, refusal.code) == (422, "payout_to_escrow_node")
