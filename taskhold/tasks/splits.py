"""Split outcomes: the amount is shared, the worker gets W msat and the employer the rest,
minus the operator's declared fee. Pure decide and evolve steps the machine routes to.

:func:`split_decided` is the one place a split is decided, whoever decides it: an arbiter's
ruling (``ResolveDispute`` with ``winner="split"``, basis ``ruling``) or an agreement both
parties signed (basis ``agreement``). A split needs no proof: it is a judgement of the work
done, not of a submission, so an arbiter may split a task whose worker never submitted one.

The money follows the one pay-then-settle rule (``taskhold.payments.held``): the worker's
share is paid first (to ``payout_request``, an invoice for exactly W), then the employer's (to
``refund_request``, op ``refund-invoice``), and only then is the hold settled. Each share is
recorded paid once (``SplitSharePaid``); once the worker's share is paid the task can no longer
be refunded, so a share the employer never invoices for is owed, not a reason to unwind.
"""

from __future__ import annotations

from taskhold.errors import Conflict, Invalid, RefusalCode

from . import commands as c
from . import events as e
from .model import Task, TaskState

__all__ = [
    "SHARES",
    "SPLIT_BASES",
    "complete_split",
    "record_refund_share_failure",
    "record_share_paid",
    "split_changes",
    "split_decided",
    "update_refund_request",
]

SHARES = ("worker", "employer")
"""The shares of a split, in the order they are paid."""

SPLIT_BASES = frozenset({"ruling", "agreement"})


def split_decided(
    task: Task, *, at: int, actor: str, worker_msat: int, basis: str, note: str
) -> list[e.Event]:
    """The events of splitting ``task``: ``worker_msat`` to the worker, the rest of the amount
    minus the fee to the employer. Refuses a share that leaves either side nothing or more
    than there is; the caller has already checked who may split, and when."""
    if basis not in SPLIT_BASES:
        raise Invalid(f"unknown split basis {basis!r}", code=RefusalCode.INVALID_SPLIT)
    if task.worker_pubkey is None:
        raise Conflict("the task has no worker to share with", code=RefusalCode.INVALID_SPLIT)
    payout_msat = task.amount_msat - task.fee_msat
    if not 0 < worker_msat < payout_msat:
        raise Invalid(
            f"worker_msat must be above 0 and below {payout_msat} (the amount minus the"
            f" operator fee); a whole outcome is a ruling for the worker or the employer",
            code=RefusalCode.INVALID_SPLIT,
        )
    employer_msat = payout_msat - worker_msat  # so the shares plus the fee make the amount
    return [
        e.SplitDecided(
            at=at,
            actor=actor,
            worker_msat=worker_msat,
            employer_msat=employer_msat,
            fee_msat=task.fee_msat,
            basis=basis,
            note=note,
        )
    ]


def _need_split(task: Task) -> None:
    if not task.is_split:
        raise Conflict(
            "the task was not split; this is for the shares of a split",
            code=RefusalCode.NOT_A_SPLIT,
        )


def update_refund_request(task: Task, cmd: c.Command) -> list[e.Event]:
    """The employer's invoice for their share; replaceable until that share is paid (a payment
    to the old one in flight is followed by the engine, never paid twice)."""
    assert isinstance(cmd, c.UpdateRefundRequest)
    _need_split(task)
    if task.refund_payment_hash_hex is not None:
        raise Conflict(
            "your share of the split is already paid", code=RefusalCode.SHARE_ALREADY_PAID
        )
    return [e.RefundRequestUpdated(at=cmd.at, actor=cmd.actor, refund_request=cmd.refund_request)]


def record_refund_share_failure(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.RecordRefundShareFailure)
    _need_split(task)
    return [e.RefundShareFailed(at=cmd.at, actor=cmd.actor, reason=cmd.reason)]


def share_recorded(task: Task, share: str) -> bool:
    """Whether ``share`` is already recorded paid."""
    paid = task.payout_payment_hash_hex if share == "worker" else task.refund_payment_hash_hex
    return paid is not None


def record_share_paid(task: Task, cmd: c.Command) -> list[e.Event]:
    """A share landed. The worker's is paid first, so the employer's never lands alone."""
    assert isinstance(cmd, c.RecordSharePaid)
    _need_split(task)
    if cmd.share not in SHARES:
        raise Invalid(f"unknown share {cmd.share!r}", code=RefusalCode.INVALID_SPLIT)
    if share_recorded(task, cmd.share):
        raise Conflict("this share is already paid", code=RefusalCode.SHARE_ALREADY_PAID)
    if cmd.share == "employer" and not share_recorded(task, "worker"):
        raise Conflict("the worker's share is paid first", code=RefusalCode.WRONG_STATE)
    return [
        e.SplitSharePaid(
            at=cmd.at,
            actor=cmd.actor,
            share=cmd.share,
            payment_hash_hex=cmd.payment_hash_hex,
            payment_preimage_hex=cmd.payment_preimage_hex,
            fee_msat=cmd.fee_msat,
        )
    ]


def complete_split(task: Task, cmd: c.Command) -> list[e.Event]:
    """Both shares are recorded paid and the hold is settled (the machine checked the
    preimage)."""
    assert isinstance(cmd, c.CompleteSplit)
    _need_split(task)
    if task.payout_payment_hash_hex is None or task.refund_payment_hash_hex is None:
        raise Conflict(
            "a split completes only once both shares are paid", code=RefusalCode.WRONG_STATE
        )
    return [
        e.SplitCompleted(
            at=cmd.at,
            actor=cmd.actor,
            preimage_hex=cmd.preimage_hex,
            worker_payment_hash_hex=task.payout_payment_hash_hex,
            employer_payment_hash_hex=task.refund_payment_hash_hex,
        )
    ]


def split_changes(task: Task, ev: e.Event) -> dict[str, object]:
    """What a split event changes in the task."""
    match ev:
        case e.SplitDecided():
            return {
                "state": TaskState.VERIFIED,
                "verified_at": ev.at,
                # an agreement is the employer's consent to pay, whoever signed last
                "verified_by": task.employer_pubkey if ev.basis == "agreement" else ev.actor,
                "dispute_resolution": ev.note,
                "split_worker_msat": ev.worker_msat,
                "split_employer_msat": ev.employer_msat,
                "split_basis": ev.basis,
                # the invoice given with the proof is for the whole payout: the worker sends
                # one for the share (op payout-invoice)
                "payout_request": None,
                "payout_failures": 0,
                "last_payout_failure": None,
            }
        case e.RefundRequestUpdated():
            return {"refund_request": ev.refund_request, "refund_failures": 0}
        case e.RefundShareFailed():
            return {"refund_failures": task.refund_failures + 1, "last_refund_failure": ev.reason}
        case e.SplitSharePaid(share="worker"):
            return {"payout_payment_hash_hex": ev.payment_hash_hex, "payout_fee_msat": ev.fee_msat}
        case e.SplitSharePaid():
            return {"refund_payment_hash_hex": ev.payment_hash_hex, "refund_fee_msat": ev.fee_msat}
        case e.SplitCompleted():
            return {"state": TaskState.PAID, "preimage_hex": ev.preimage_hex, "closed_at": ev.at}
    raise AssertionError(f"not a split event: {type(ev).__name__}")
