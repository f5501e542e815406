"""The funding-round rules (``taskhold.tasks.rounds``): a renewal opens and is taken only while
the task is held and undecided, the previous round is what is cancelled after it, a renewal the
task no longer takes is cancelled, and replays decide to nothing."""

from __future__ import annotations

import hashlib

import pytest
from support.task_builders import AMOUNT_MSAT, EMPLOYER, PAYMENT_HASH, SYSTEM, apply, task_in

from taskhold.errors import Conflict, Forbidden, Invalid, Refusal
from taskhold.tasks import Task, TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.model import FUNDED_STATES, TERMINAL_STATES
from taskhold.tasks.rounds import RENEWABLE_STATES, ROUND_RULES, renewable, rounds_to_cancel

S = TaskState
RENEWAL_HASH = hashlib.sha256(b"round 2").hexdigest()
AT = 2_000_000_000


def open_renewal(funding_round: int = 2, payment_hash_hex: str = RENEWAL_HASH) -> c.OpenRenewal:
    return c.OpenRenewal(
        actor=SYSTEM,
        at=AT,
        funding_round=funding_round,
        payment_hash_hex=payment_hash_hex,
        payment_request="lnbcrt-renewal",
        cltv_expiry_delta=432,
        invoice_expires_at=AT + 3600,
    )


def complete(amount_msat: int = AMOUNT_MSAT) -> c.CompleteRenewal:
    return c.CompleteRenewal(
        actor=SYSTEM,
        at=AT + 1,
        payment_hash_hex=RENEWAL_HASH,
        accepted_htlc_expiry_height=1_000,
        amount_paid_msat=amount_msat,
    )


def cancel(payment_hash_hex: str) -> c.CancelRound:
    return c.CancelRound(actor=SYSTEM, at=AT + 2, payment_hash_hex=payment_hash_hex, reason="r")


def renewing(state: TaskState = S.FUNDED) -> Task:
    task, _ = apply(task_in(state), open_renewal())
    return task


def test_every_round_command_has_a_rule() -> None:
    assert set(ROUND_RULES) == {c.OpenRenewal, c.CompleteRenewal, c.CancelRound}
    assert RENEWABLE_STATES < FUNDED_STATES and S.VERIFIED not in RENEWABLE_STATES


@pytest.mark.parametrize("state", sorted(RENEWABLE_STATES))
def test_a_renewal_moves_the_task_to_the_next_round(state: TaskState) -> None:
    task = renewing(state)
    assert task.renewal_round == 2 and task.renewal_payment_hash_hex == RENEWAL_HASH
    renewed, events = apply(task, complete())
    assert [type(ev) for ev in events] == [e.Renewed]
    assert renewed.state is state
    assert (renewed.funding_round, renewed.payment_hash_hex) == (2, RENEWAL_HASH)
    assert renewed.accepted_htlc_expiry_height == 1_000
    assert renewed.payment_request == "lnbcrt-renewal"
    assert renewed.retiring_payment_hash_hex == PAYMENT_HASH and renewed.retiring_round == 1
    assert renewed.renewal_round is None
    assert rounds_to_cancel(renewed) == [PAYMENT_HASH]
    cancelled, events = apply(renewed, cancel(PAYMENT_HASH))
    assert [type(ev) for ev in events] == [e.RoundCancelled]
    assert events[0].funding_round == 1  # type: ignore[attr-defined]
    assert cancelled.retiring_payment_hash_hex is None and rounds_to_cancel(cancelled) == []


@pytest.mark.parametrize(
    "state", sorted(set(TaskState) - RENEWABLE_STATES - {S.DRAFT, S.PENDING_FUNDING})
)
def test_no_renewal_once_the_task_is_decided(state: TaskState) -> None:
    with pytest.raises(Conflict):
        decide(task_in(state), open_renewal(), frozenset())


def test_a_renewal_held_after_the_task_was_decided_is_not_taken_but_cancelled() -> None:
    task = renewing(S.SUBMITTED)
    verified, _ = apply(task, c.Approve(actor=EMPLOYER, at=AT + 1))
    assert not renewable(verified)
    with pytest.raises(Conflict):
        decide(verified, complete(), frozenset())
    assert rounds_to_cancel(verified) == [RENEWAL_HASH]
    after, events = apply(verified, cancel(RENEWAL_HASH))
    assert after.renewal_round is None and after.payment_hash_hex == PAYMENT_HASH
    assert [type(ev) for ev in events] == [e.RoundCancelled]


def test_a_renewal_is_cancelled_even_on_a_closed_task() -> None:
    task = renewing(S.FUNDED)
    refunding, _ = apply(task, c.Cancel(actor=EMPLOYER, at=AT + 1, reason="no"))
    with pytest.raises(Conflict):
        decide(refunding, complete(), frozenset())
    closed, _ = apply(refunding, c.CompleteRefund(actor=SYSTEM, at=AT + 2, invoice_state="X"))
    assert closed.state in TERMINAL_STATES
    assert rounds_to_cancel(closed) == [RENEWAL_HASH]
    after, _ = apply(closed, cancel(RENEWAL_HASH))
    assert rounds_to_cancel(after) == []


def test_a_cancelled_renewals_round_is_never_asked_for_again() -> None:
    task, _ = apply(renewing(), cancel(RENEWAL_HASH))
    assert task.next_round == 3
    assert decide(task, open_renewal(2, "ab" * 32), frozenset()) == []  # a late replay
    again, _ = apply(task, open_renewal(3, "ab" * 32))
    assert again.renewal_round == 3


def test_one_renewal_at_a_time_and_only_its_own_hash_is_taken() -> None:
    task = renewing()
    assert decide(task, open_renewal(), frozenset()) == []  # a replay
    with pytest.raises(Refusal):
        decide(task, open_renewal(3, "cd" * 32), frozenset())
    wrong = c.CompleteRenewal(
        actor=SYSTEM,
        at=AT,
        payment_hash_hex="ef" * 32,
        accepted_htlc_expiry_height=1,
        amount_paid_msat=AMOUNT_MSAT,
    )
    with pytest.raises(Conflict):
        decide(task, wrong, frozenset())
    with pytest.raises(Invalid):
        decide(task, complete(AMOUNT_MSAT - 1), frozenset())


def test_replays_decide_to_nothing_and_the_current_round_is_never_cancelled_here() -> None:
    renewed, _ = apply(renewing(), complete())
    assert decide(renewed, complete(), frozenset()) == []
    done, _ = apply(renewed, cancel(PAYMENT_HASH))
    assert decide(done, cancel(PAYMENT_HASH), frozenset()) == []
    with pytest.raises(Conflict):
        decide(done, cancel(RENEWAL_HASH), frozenset())


def test_only_taskhold_itself_sends_round_commands() -> None:
    sent = c.CancelRound(actor=EMPLOYER, at=AT, payment_hash_hex=RENEWAL_HASH, reason="r")
    with pytest.raises(Forbidden):
        decide(renewing(), sent, frozenset())
