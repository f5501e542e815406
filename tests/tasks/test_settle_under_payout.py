"""The declared fallback in the machine: a hold settled while its payout is still in flight can
only end paid, never refunded (the task) or returned (a forfeited deposit)."""

from __future__ import annotations

import pytest
from support.task_builders import (
    ARBITERS,
    DEADLINE,
    EMPLOYER,
    PREIMAGE,
    SYSTEM,
    WORKER,
    apply,
    task_in,
)
from test_deposit_rules import hash_of, locked, preimage_of, state_of

from taskhold.errors import Invalid
from taskhold.tasks import TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.model import DepositState

S, D = TaskState, DepositState


def settle(at: int, preimage_hex: str = PREIMAGE) -> c.SettleUnderLivePayout:
    return c.SettleUnderLivePayout(
        actor=SYSTEM, at=at, preimage_hex=preimage_hex, payout_payment_hash_hex="33" * 32,
        blocks_left=18,
    )  # fmt: skip


def test_a_task_settled_under_a_live_payout_is_never_refunded() -> None:
    task = task_in(S.VERIFIED)
    task, _ = apply(task, c.RecordPayoutFailure(actor=SYSTEM, at=task.updated_at + 1, reason="x"))

    task, events = apply(task, settle(task.updated_at + 1))

    assert [type(ev) for ev in events] == [e.HoldSettledUnderLivePayout]
    assert (task.state, task.preimage_hex, task.hold_settled_at) == (
        S.VERIFIED,
        PREIMAGE,
        task.updated_at,
    )
    expiring = c.HoldExpiring(actor=SYSTEM, at=task.updated_at + 1, blocks_left=0)
    assert decide(task, expiring, ARBITERS) == []  # payout failures no longer order a refund
    assert decide(task, settle(task.updated_at + 1), ARBITERS) == []  # a replay is harmless
    done = c.CompleteRelease(
        actor=SYSTEM,
        at=task.updated_at + 1,
        preimage_hex=PREIMAGE,
        payout_payment_hash_hex="44" * 32,
        payout_fee_msat=0,
    )
    task, _ = apply(task, done)
    assert task.state is S.PAID


def test_settling_needs_the_tasks_own_preimage() -> None:
    task = task_in(S.VERIFIED)
    with pytest.raises(Invalid):
        decide(task, settle(task.updated_at + 1, preimage_hex="00" * 32), ARBITERS)


def test_a_forfeit_settled_under_a_live_payout_is_never_returned() -> None:
    task = locked(task_in(S.FUNDED), WORKER)
    task, _ = apply(task, c.Claim(actor=WORKER, at=task.updated_at + 1))
    task, _ = apply(task, c.Tick(actor=SYSTEM, at=DEADLINE + 1))
    send = c.RequestDepositPayout(
        actor=EMPLOYER, at=DEADLINE + 2, depositor=WORKER, payout_request="lnbcrt1"
    )
    task, _ = apply(task, send)
    deposit_hash = hash_of(WORKER)

    task, events = apply(
        task,
        c.SettleDepositUnderLivePayout(
            actor=SYSTEM,
            at=DEADLINE + 3,
            payment_hash_hex=deposit_hash,
            preimage_hex=preimage_of(WORKER),
            payout_payment_hash_hex="33" * 32,
            blocks_left=18,
        ),
    )

    assert [type(ev) for ev in events] == [e.DepositSettledUnderLivePayout]
    assert state_of(task, WORKER) is D.FORFEIT
    expiring = c.DepositExpiring(
        actor=SYSTEM, at=DEADLINE + 4, payment_hash_hex=deposit_hash, blocks_left=0
    )
    assert decide(task, expiring, ARBITERS) == []
    paid = c.CompleteDepositPayout(
        actor=SYSTEM,
        at=DEADLINE + 5,
        payment_hash_hex=deposit_hash,
        preimage_hex=preimage_of(WORKER),
        payout_payment_hash_hex="33" * 32,
        payout_fee_msat=0,
    )
    task, _ = apply(task, paid)
    assert state_of(task, WORKER) is D.PAID_OUT
