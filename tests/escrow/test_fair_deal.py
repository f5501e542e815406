"""A fair deal on the simulator, with exact wallet balances: a rejection the arbiter overturns,
a rejection that lapses to the worker with no arbiter, and a cancel both parties sign, whose
hold is cancelled by the very next engine pass."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import submitted

from taskhold.client import TaskholdAPIError
from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys


def balances(stack: Stack) -> dict[str, int]:
    world = stack.world
    return {
        "employer": world.employer.balance_msat,
        "worker": world.worker.balance_msat,
        "escrow": world.escrow.balance_msat,
    }


async def test_a_rejection_the_arbiter_overturns_pays_the_worker(open_custom: Any) -> None:
    arbiter = NostrKeys.generate()
    stack: Stack = await open_custom(arbiters=[arbiter.pubkey_hex], rejection_policy="arbiter")
    employer, worker = stack.client(), stack.client()
    start = balances(stack)
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    assert task["rejection_policy"] == "arbiter"
    await employer.reject(task_id, "the third line has six syllables")
    await worker.open_dispute(task_id, "it has five; count again")
    await stack.client(arbiter).resolve_dispute(task_id, "worker", "five syllables")
    await stack.settle_engine()
    final = await employer.get_task(task_id)
    assert final["state"] == "PAID"
    end = balances(stack)
    assert end["worker"] - start["worker"] == task["payout_msat"]
    assert start["employer"] - end["employer"] == task["amount_msat"]
    assert end["escrow"] - start["escrow"] == task["fee_msat"] - final["payout_fee_msat"]


async def test_with_no_arbiter_a_rejection_nobody_ruled_on_lapses_to_the_worker(
    tmp_path: Path, database_url: str
) -> None:
    """The employer rejects good work and waits for the deadline to get a refund: on a
    default taskhold (no arbiter, release_unless_ruled) the worker is paid instead."""
    now = [1_900_000_000.0]
    stack = await open_stack(stack_settings(tmp_path, database_url, default_dispute_window_s=60))
    stack.services.engine.ctx.clock = lambda: now[0]
    try:
        assert stack.services.settings.arbiters == []
        employer, worker = stack.client(), stack.client()
        employer._clock = worker._clock = lambda: now[0]
        stack.world.network.clock = lambda: now[0]
        start = balances(stack)
        task = await submitted(stack, employer, worker, deadline_at=int(now[0]) + 600)
        assert task["rejection_policy"] == "release_unless_ruled"
        await employer.reject(task["task_id"], "I changed my mind")
        now[0] += 600  # the deadline; the dispute window after the rejection ended before it
        await stack.settle_engine()
        assert (await employer.get_task(task["task_id"]))["state"] == "CLAIMED"
        now[0] += 1
        await stack.settle_engine()
        final = await employer.get_task(task["task_id"])
        assert final["state"] == "PAID", final
        rows = await employer.transitions(task["task_id"])
        assert "RejectionLapsed" in [row["event_type"] for row in rows["transitions"]]
        end = balances(stack)
        assert end["worker"] - start["worker"] == task["payout_msat"]
        assert start["employer"] - end["employer"] == task["amount_msat"]
    finally:
        await close_stack(stack)


async def test_a_cooperative_cancel_cancels_the_hold_at_once(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    start = balances(stack)
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    assert balances(stack)["employer"] == start["employer"] - task["amount_msat"]
    await worker.propose_agreement(task_id, 0, "I cannot finish it properly")
    shown = await employer.get_task(task_id)
    assert shown["agreement"]["worker_msat"] == 0
    answer = await employer.accept_agreement(task_id, 0)
    assert answer["refund_reason"] == "cancelled by agreement"
    await stack.run_pass()  # one pass of the engine: the hold is cancelled now, not at a deadline
    status = await stack.world.escrow.lookup_invoice(bytes.fromhex(task["funding"]["payment_hash"]))
    assert status.state is InvoiceState.CANCELED
    final = await employer.get_task(task_id)
    assert final["state"] == "REFUNDED"
    assert final["agreed_worker_msat"] == 0
    assert balances(stack) == start  # the employer is whole; nobody else moved


async def test_an_agreement_on_the_whole_payout_releases(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    start = balances(stack)
    task = await submitted(stack, employer, worker)
    await employer.propose_agreement(task["task_id"], task["payout_msat"], "fine, it is done")
    await worker.accept_agreement(task["task_id"], task["payout_msat"])
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    assert balances(stack)["worker"] - start["worker"] == task["payout_msat"]


async def test_an_accept_racing_a_withdrawal_has_one_winner(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    await employer.propose_agreement(task_id, 0, "let us part")
    answers = await asyncio.gather(
        worker.accept_agreement(task_id, 0),
        employer.withdraw_agreement(task_id),
        return_exceptions=True,
    )
    refused = [answer for answer in answers if isinstance(answer, TaskholdAPIError)]
    assert len(refused) == 1, answers
    assert refused[0].code in ("no_proposal", "refund_under_way")
    final = await employer.get_task(task_id)
    won_accept = not isinstance(answers[0], Exception)
    assert (final["refund_reason"] == "cancelled by agreement") == won_accept
    assert final["agreement"] is None


async def test_the_guardian_releases_a_rejected_proof_while_the_payout_still_fits(
    stack: Stack,
) -> None:
    """Rejected, never disputed, and the hold nears its expiry before the deadline timer: the
    guardian releases it at the payout reserve (as it does an unanswered submission), so the
    payout's time lock still fits in the hold."""
    employer, worker = stack.client(), stack.client()
    start = balances(stack)
    task = await submitted(stack, employer, worker)
    await employer.reject(task["task_id"], "I changed my mind")
    expiry = task["funding"]["accepted_htlc_expiry_height"]
    while stack.world.network.height < expiry - stack.settings.hold_reserve_blocks:
        await stack.world.network.mine(1)
    await stack.settle_engine()
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "PAID", final
    assert stack.world.network.auto_cancelled == []
    assert balances(stack)["worker"] - start["worker"] == task["payout_msat"]
