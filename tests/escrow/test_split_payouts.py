"""Split outcomes on the simulator, with exact wallet balances on both sides: the worker's share
is paid, then the employer's, then the hold is settled; each share once, whatever crashes, and
an unpaid split unwinds while a half-paid one is settled and the employer's share stays owed."""

from __future__ import annotations

from typing import Any

import pytest
from support.payee_holds import held_by_payee
from support.split_flows import split_task
from support.stacks import Stack
from support.task_flows import read_log, submitted, tag

from taskhold.audit import audit_log
from taskhold.client import TaskholdAPIError
from taskhold.lightning.base import InvoiceState
from taskhold.payments.rules import payout_fee_cap_msat


def _ops(log: list[dict[str, Any]]) -> list[str | None]:
    return [tag(entry, "op") for entry in log]


async def test_a_60_40_split_pays_both_sides_exactly_then_settles(stack: Stack) -> None:
    task, employer, worker = await split_task(stack)
    split = task["split"]
    assert task["state"] == "VERIFIED" and split["basis"] == "ruling"
    assert split["worker_msat"] + split["employer_msat"] + task["fee_msat"] == task["amount_msat"]
    assert task["payout_invoice"] is None  # the proof's invoice was for the whole payout
    employer_before = stack.world.employer.balance_msat

    await worker.update_payout_invoice(
        task["task_id"], await stack.world.worker.create_invoice(split["worker_msat"])
    )
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == split["worker_msat"]
    assert stack.world.employer.balance_msat == employer_before + split["employer_msat"]
    escrow_hash = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await stack.world.escrow.lookup_invoice(escrow_hash)).state is InvoiceState.SETTLED
    log = await read_log(stack)
    ops = _ops(log)
    assert ops.count("SplitSharePaid") == 2
    assert ops.index("SplitSharePaid") < ops.index("SplitCompleted")
    settled = log[ops.index("SplitCompleted")]
    assert tag(settled, "worker_hash") == final["payout_payment_hash"]
    assert tag(settled, "employer_hash") == final["split"]["refund_payment_hash"]
    result = audit_log(log, stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]


async def test_each_invoice_must_be_for_exactly_its_share(stack: Stack) -> None:
    task, employer, worker = await split_task(stack)
    split = task["split"]
    whole = await stack.world.worker.create_invoice(task["payout_msat"] + 1)
    with pytest.raises(TaskholdAPIError) as wrong:
        await worker.update_payout_invoice(task["task_id"], whole)
    assert wrong.value.code == "wrong_amount"
    too_much = await stack.world.employer.create_invoice(split["employer_msat"] + 1)
    with pytest.raises(TaskholdAPIError) as refused:
        await employer.update_refund_invoice(task["task_id"], too_much)
    assert refused.value.code == "wrong_amount"
    own = await stack.world.worker.create_invoice(split["employer_msat"])
    with pytest.raises(TaskholdAPIError) as not_employer:
        await worker.update_refund_invoice(task["task_id"], own)
    assert not_employer.value.code == "wrong_role"


async def _to_the_margin(stack: Stack, task: dict[str, Any]) -> None:
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.guard_blocks:
        await stack.world.network.mine(1)
        await stack.run_pass()


async def test_a_split_nobody_could_be_paid_on_unwinds_to_a_refund(stack: Stack) -> None:
    """The worker never sends an invoice for the share: nothing is paid by the guard margin,
    so the whole task unwinds and the operator holds nothing."""
    task, employer, _ = await split_task(stack)
    employer_before = stack.world.employer.balance_msat
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(task["split"]["employer_msat"])
    )
    await _to_the_margin(stack, task)
    await stack.settle_engine()

    final = await employer.get_task(task["task_id"])
    assert final["state"] == "REFUNDED"
    assert "worker share was not paid" in final["refund_reason"]
    assert stack.world.employer.balance_msat == employer_before + task["amount_msat"]
    assert stack.world.worker.balance_msat == 0
    assert stack.world.network.auto_cancelled == []


async def test_an_employer_who_never_invoices_cannot_turn_a_split_into_a_refund(
    stack: Stack,
) -> None:
    """The worker's share is paid as soon as its invoice is there; at the margin the hold is
    settled (the operator must not have paid W from its own pocket), and the employer's share
    stays owed until they send an invoice."""
    task, employer, worker = await split_task(stack)
    split = task["split"]
    employer_before = stack.world.employer.balance_msat
    await worker.update_payout_invoice(
        task["task_id"], await stack.world.worker.create_invoice(split["worker_msat"])
    )
    await stack.settle_engine()
    assert stack.world.worker.balance_msat == split["worker_msat"]
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"

    await _to_the_margin(stack, task)
    await stack.settle_engine()
    owed = await employer.get_task(task["task_id"])
    assert (owed["state"], owed["refund_reason"]) == ("VERIFIED", None)
    assert owed["hold_settled_at"] is not None
    assert "HoldSettledUnderLivePayout" in _ops(await read_log(stack))
    assert stack.world.employer.balance_msat == employer_before  # nothing back yet: owed
    await stack.world.network.mine(stack.settings.guard_blocks + 5)
    assert stack.world.network.auto_cancelled == []

    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert stack.world.worker.balance_msat == split["worker_msat"]  # paid once
    assert stack.world.employer.balance_msat == employer_before + split["employer_msat"]
    result = audit_log(await read_log(stack), stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]


async def test_a_worker_holding_the_share_htlc_at_the_margin_gets_no_refund_race(
    stack: Stack,
) -> None:
    """The worker's node holds the share's HTLC past the margin: the hold is settled, never
    cancelled (the share may still land), and each share is paid once in the end."""
    stack.services.settings.payout_timeout_s = 1  # the held payment answers IN_FLIGHT at once
    stack.world.network.keep_holds_past_expiry(stack.world.worker)
    task, employer, worker = await split_task(stack)
    split = task["split"]
    employer_before = stack.world.employer.balance_msat
    preimage, held = await held_by_payee(stack.world.worker, split["worker_msat"], memo="share")
    await worker.update_payout_invoice(task["task_id"], held.payment_request)
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )
    await stack.run_pass()  # the worker's share is in flight, held by the worker's node
    await _to_the_margin(stack, task)
    await stack.settle_engine()
    mid = await employer.get_task(task["task_id"])
    assert (mid["state"], mid["refund_reason"]) == ("VERIFIED", None)
    escrow_hash = bytes.fromhex(task["funding"]["payment_hash"])
    assert (await stack.world.escrow.lookup_invoice(escrow_hash)).state is InvoiceState.SETTLED
    assert stack.world.employer.balance_msat == employer_before

    await stack.world.worker.settle_invoice(preimage)
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert stack.world.worker.balance_msat == split["worker_msat"]
    assert stack.world.employer.balance_msat == employer_before + split["employer_msat"]
    assert stack.world.network.auto_cancelled == []


@pytest.mark.parametrize(
    "point",
    [
        "after_worker_share_row",
        "after_worker_share",
        "after_employer_share_row",
        "after_employer_share",
        "after_split_settle",
    ],
)
async def test_a_crash_between_the_two_payments_pays_each_share_once(
    stack: Stack, point: str
) -> None:
    task, employer, worker = await split_task(stack)
    split = task["split"]
    employer_before = stack.world.employer.balance_msat
    await worker.update_payout_invoice(
        task["task_id"], await stack.world.worker.create_invoice(split["worker_msat"])
    )
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )
    stack.faults[point] = RuntimeError(f"crash at {point}")
    await stack.run_pass()
    assert point not in stack.faults  # the crash happened
    assert (await employer.get_task(task["task_id"]))["state"] == "VERIFIED"
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()

    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert stack.world.worker.balance_msat == split["worker_msat"]
    assert stack.world.employer.balance_msat == employer_before + split["employer_msat"]
    log = await read_log(stack)
    shares = [tag(entry, "share") for entry in log if tag(entry, "op") == "SplitSharePaid"]
    assert shares == ["worker", "employer"]


async def test_both_shares_fees_together_stay_within_the_single_payouts_cap(
    stack: Stack,
) -> None:
    """The employer's share may spend only what the worker's left of the cap the whole payout
    would have: a route that costs more fails (recorded), a cheaper one is then paid."""
    task, employer, worker = await split_task(stack)
    split = task["split"]
    cap = payout_fee_cap_msat(stack.settings, task["payout_msat"] + split["employer_msat"],
                              earned_msat=task["fee_msat"])  # fmt: skip
    network = stack.world.network
    network.fee_base_msat = cap * 6 // 10  # each share alone would fit, both do not
    await worker.update_payout_invoice(
        task["task_id"], await stack.world.worker.create_invoice(split["worker_msat"])
    )
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )
    await stack.settle_engine()
    mid = await employer.get_task(task["task_id"])
    assert (mid["state"], mid["payout_fee_msat"]) == ("VERIFIED", cap * 6 // 10)
    assert mid["split"]["refund_failures"] >= 1

    network.fee_base_msat = cap * 3 // 10
    await employer.update_refund_invoice(
        task["task_id"], await stack.world.employer.create_invoice(split["employer_msat"])
    )
    stack.services.engine._retry_at.clear()
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID"
    assert final["payout_fee_msat"] + final["split"]["refund_fee_msat"] <= cap


async def test_a_split_both_parties_agreed_on_pays_both_sides_exactly(stack: Stack) -> None:
    """No arbiter: the worker proposes 60/40 after the employer rejected, the employer accepts,
    and the shares are paid like a ruling's, then the hold is settled."""
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    await employer.reject(task_id, "half of it is missing")
    share = task["payout_msat"] * 6 // 10
    await worker.propose_agreement(task_id, share, "sixty for what is there")
    agreed = await employer.accept_agreement(task_id, share)
    split = agreed["split"]
    assert agreed["state"] == "VERIFIED" and split["basis"] == "agreement"
    assert split["worker_msat"] == share
    assert split["worker_msat"] + split["employer_msat"] + task["fee_msat"] == task["amount_msat"]
    employer_before = stack.world.employer.balance_msat

    await worker.update_payout_invoice(task_id, await stack.world.worker.create_invoice(share))
    await employer.update_refund_invoice(
        task_id, await stack.world.employer.create_invoice(split["employer_msat"])
    )
    await stack.settle_engine()

    final = await employer.get_task(task_id)
    assert final["state"] == "PAID"
    assert stack.world.worker.balance_msat == share
    assert stack.world.employer.balance_msat == employer_before + split["employer_msat"]
    log = await read_log(stack)
    assert _ops(log).count("SplitSharePaid") == 2
    result = audit_log(log, stack.services.signer.get_public_key())
    assert result.clean, [f.to_json() for f in result.findings]
