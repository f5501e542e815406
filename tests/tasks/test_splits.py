"""Split outcomes in the state machine: an arbiter's ruling shares the amount, each share is
recorded paid once (the worker's first), and a split whose worker share landed is never refunded.
"""

from __future__ import annotations

import pytest

from taskhold.errors import Conflict, Forbidden, Invalid, Refusal
from taskhold.tasks import Task, TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks import events as e
from taskhold.tasks.splits import split_decided
from tests.support.task_builders import (
    AMOUNT_MSAT,
    ARBITER,
    ARBITERS,
    EMPLOYER,
    PREIMAGE,
    SYSTEM,
    T0,
    WORKER,
    apply,
    task_in,
)

S = TaskState
FEE = 1_000
W = 59_400  # 60 % of what is left after the fee


def _split(task: Task | None = None, worker_msat: int = W) -> Task:
    task = task or task_in(S.DISPUTED)
    ruling = c.ResolveDispute(
        actor=ARBITER, at=T0 + 50, winner="split", note="60/40", worker_msat=worker_msat
    )
    task, _ = apply(task, ruling)
    return task


def _paid(task: Task, share: str, hash_byte: str = "55") -> Task:
    cmd = c.RecordSharePaid(
        actor=SYSTEM,
        at=T0 + 60,
        share=share,
        payment_hash_hex=hash_byte * 32,
        payment_preimage_hex="66" * 32,
        fee_msat=2,
    )
    return apply(task, cmd)[0]


def _refused(task: Task, command: c.Command) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(task, command, ARBITERS)
    return caught.value


def test_a_ruling_splits_the_amount_and_the_shares_plus_fee_make_it() -> None:
    disputed = task_in(S.DISPUTED)
    ruling = c.ResolveDispute(actor=ARBITER, at=T0 + 50, winner="split", note="n", worker_msat=W)
    events = decide(disputed, ruling, ARBITERS)
    assert events == [
        e.SplitDecided(
            at=T0 + 50,
            actor=ARBITER,
            worker_msat=W,
            employer_msat=AMOUNT_MSAT - FEE - W,
            fee_msat=FEE,
            basis="ruling",
            note="n",
        )
    ]
    task = _split(disputed)
    assert task.state is S.VERIFIED and task.release_pending
    assert task.split_worker_msat + task.split_employer_msat + task.fee_msat == task.amount_msat  # type: ignore[operator]
    assert task.payout_msat == W
    # the invoice given with the proof was for the whole payout: a new one is needed
    assert task.payout_request is None


@pytest.mark.parametrize("worker_msat", [0, -1, AMOUNT_MSAT - FEE, AMOUNT_MSAT, None])
def test_a_split_leaves_each_side_something(worker_msat: int | None) -> None:
    ruling = c.ResolveDispute(
        actor=ARBITER, at=T0 + 50, winner="split", note="n", worker_msat=worker_msat
    )
    got = _refused(task_in(S.DISPUTED), ruling)
    assert isinstance(got, Invalid) and got.code == "invalid_split"


def test_a_share_is_named_only_for_a_split() -> None:
    ruling = c.ResolveDispute(actor=ARBITER, at=T0 + 50, winner="worker", note="n", worker_msat=W)
    assert _refused(task_in(S.DISPUTED), ruling).code == "invalid_split"


def test_only_the_arbiter_rules_a_split() -> None:
    for actor in (EMPLOYER, WORKER):
        ruling = c.ResolveDispute(actor=actor, at=T0 + 50, winner="split", note="n", worker_msat=W)
        assert isinstance(_refused(task_in(S.DISPUTED), ruling), Forbidden)


def test_a_split_needs_no_proof_but_then_takes_the_workers_invoice() -> None:
    """A split is the arbiter's judgement of the work, so it stands without a submission; the
    worker then sends an invoice for the share with the payout-invoice op."""
    claimed = task_in(S.CLAIMED)
    disputed, _ = apply(claimed, c.OpenDispute(actor=EMPLOYER, at=T0 + 9, reason="stalled"))
    task = _split(disputed)
    assert task.proof is None and task.state is S.VERIFIED
    task, _ = apply(task, c.UpdatePayoutRequest(actor=WORKER, at=T0 + 70, payout_request="ln1"))
    assert task.payout_request == "ln1"


def test_the_refund_invoice_is_the_employers_and_only_for_a_split() -> None:
    invoice = c.UpdateRefundRequest(actor=EMPLOYER, at=T0 + 70, refund_request="ln2")
    got = _refused(task_in(S.VERIFIED), invoice)
    assert isinstance(got, Conflict) and got.code == "not_a_split"
    task = _split()
    assert isinstance(
        _refused(task, invoice.__class__(**{**_fields(invoice), "actor": WORKER})), Forbidden
    )
    task, _ = apply(task, invoice)
    assert task.refund_request == "ln2"


def _fields(command: c.Command) -> dict[str, object]:
    return {name: getattr(command, name) for name in command.__dataclass_fields__}


def test_each_share_is_recorded_paid_once_the_workers_first() -> None:
    task = _split()
    early = c.RecordSharePaid(
        actor=SYSTEM, at=T0 + 60, share="employer", payment_hash_hex="77" * 32,
        payment_preimage_hex="66" * 32, fee_msat=1,
    )  # fmt: skip
    assert _refused(task, early).code == "wrong_state"
    task = _paid(task, "worker")
    assert task.worker_share_paid
    again = c.RecordSharePaid(
        actor=SYSTEM, at=T0 + 61, share="worker", payment_hash_hex="99" * 32,
        payment_preimage_hex="66" * 32, fee_msat=1,
    )  # fmt: skip
    assert decide(task, again, ARBITERS) == []  # a replay of the system's record is absorbed
    swap = c.UpdatePayoutRequest(actor=WORKER, at=T0 + 62, payout_request="ln9")
    assert _refused(task, swap).code == "share_already_paid"
    task = _paid(task, "employer", "77")
    refund_swap = c.UpdateRefundRequest(actor=EMPLOYER, at=T0 + 63, refund_request="ln8")
    assert _refused(task, refund_swap).code == "share_already_paid"
    task, events = apply(task, c.CompleteSplit(actor=SYSTEM, at=T0 + 64, preimage_hex=PREIMAGE))
    assert task.state is S.PAID
    assert events == [
        e.SplitCompleted(
            at=T0 + 64,
            actor=SYSTEM,
            preimage_hex=PREIMAGE,
            worker_payment_hash_hex="55" * 32,
            employer_payment_hash_hex="77" * 32,
        )
    ]


def test_a_split_completes_only_with_both_shares_and_never_as_a_release() -> None:
    task = _paid(_split(), "worker")
    got = _refused(task, c.CompleteSplit(actor=SYSTEM, at=T0 + 64, preimage_hex=PREIMAGE))
    assert got.code == "wrong_state"
    release = c.CompleteRelease(
        actor=SYSTEM, at=T0 + 64, preimage_hex=PREIMAGE, payout_payment_hash_hex="55" * 32,
        payout_fee_msat=0,
    )  # fmt: skip
    assert _refused(task, release).code == "wrong_state"


def test_at_the_margin_an_unpaid_split_unwinds_and_a_paid_worker_share_does_not() -> None:
    """Nothing paid yet: the whole task unwinds to a refund. The worker's share landed: the
    hold must be settled (the engine's fallback), never cancelled, or the operator would have
    paid W from its own pocket."""
    expiring = c.HoldExpiring(actor=SYSTEM, at=T0 + 80, blocks_left=10)
    unpaid, events = apply(_split(), expiring)
    assert [type(ev) for ev in events] == [e.RefundOrdered]
    assert unpaid.refund_ordered and "worker share was not paid" in (
        unpaid.refund_ordered_reason or ""
    )
    half_paid = _paid(_split(), "worker")
    assert decide(half_paid, expiring, ARBITERS) == []


def test_the_split_decision_is_reusable_for_an_agreement() -> None:
    events = split_decided(
        task_in(S.SUBMITTED), at=T0 + 9, actor=WORKER, worker_msat=W, basis="agreement", note="ok"
    )
    assert isinstance(events[0], e.SplitDecided) and events[0].basis == "agreement"
    with pytest.raises(Invalid):
        split_decided(task_in(S.SUBMITTED), at=T0, actor=WORKER, worker_msat=W, basis="x", note="")
