"""The payout rows a rebuild restores from the log, so a rebuilt database never pays twice.

A payout's row (``PayoutRow``, ``DepositPayoutRow``) is what tells the engine that a payment
is its own: the node reports a payment by hash only, and a success for a row never sent is
taken for someone else's payment of the same hash (the payee is asked for a new invoice). A
rebuild that lost the rows would so ask a worker whose payment already landed, or is still in
flight, for a second invoice, and pay again.

The log holds what a row needs: the payout invoice (``ProofSubmitted``,
``PayoutRequestUpdated``, ``DepositPayoutRequested``, a split's ``RefundRequestUpdated``), its
amount (the task's payout or a split's share, the deposit's amount) and, once paid, the paid
hash and fee (a split's shares each have theirs: ``SplitSharePaid``). Whether the payment was
sent is not in the log; the restored row of an unfinished payout is marked as possibly sent, so
the engine asks the node about its hash before paying (``pay_once``): a payment the node made or
still has in flight is followed, one it never saw or that failed is sent. That is sound because
the hash was unpaid at the node when the invoice was accepted, and no other payout of the log
names it. Where two payouts of the log name one hash (one payee's invoice given twice), only the
first, in log order, is taken as the sender (one that completed with it goes first): the others
see the node's payment as someone else's and ask for a new invoice, so each payout is paid once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from taskhold.lightning.base import PaymentStatus
from taskhold.payments.sealed import payment_hash_of
from taskhold.store.models import DepositPayoutRow, PayoutRow, RefundPayoutRow
from taskhold.tasks.model import DepositState, Task, TaskState

__all__ = ["RESTORED_NOTE", "restored_payout_rows"]

RESTORED_NOTE = "restored from the log: the node is asked about this hash before paying"


@dataclass(frozen=True, slots=True)
class _Payout:
    """One payout the log shows started or finished, before it becomes a row."""

    owner: str
    task_id: str
    payment_request: str
    payment_hash_hex: str
    amount_msat: int
    done: bool
    """The log closed it as paid with this hash."""
    claimed: bool
    """The log says it paid or was paying this hash (done, or settled under a live payout)."""
    fee_msat: int | None
    updated_at: int
    funding_round: int | None = None
    deposit_hash_hex: str | None = None
    refund_share: bool = False
    """A split's employer share (``RefundPayoutRow``)."""


def restored_payout_rows(
    tasks: Iterable[Task],
) -> list[PayoutRow | DepositPayoutRow | RefundPayoutRow]:
    """Rows for the payouts of replayed ``tasks`` (in log order) that were due or done: a
    verified task's reward and a forfeited deposit's payout, each with a payout invoice."""
    payouts = [payout for task in tasks for payout in _payouts_of(task)]
    senders: dict[str, str] = {}
    for payout in sorted(payouts, key=lambda p: not p.claimed):  # stable: log order otherwise
        senders.setdefault(payout.payment_hash_hex, payout.owner)
    return [_row(payout, senders[payout.payment_hash_hex] == payout.owner) for payout in payouts]


def _payouts_of(task: Task) -> list[_Payout]:
    found: list[_Payout] = []
    if task.state in (TaskState.VERIFIED, TaskState.PAID):
        # each hash is set once its payment is recorded (PAID, or a split's share paid)
        if task.payout_request is not None:
            found.append(
                _task_payout(task, "task", task.payout_request, task.payout_payment_hash_hex)
            )
        if task.refund_request is not None:  # a split's employer share
            found.append(
                _task_payout(task, "refund", task.refund_request, task.refund_payment_hash_hex)
            )
    for deposit in task.deposits:
        if deposit.payout_request is None or deposit.state not in (
            DepositState.FORFEIT,
            DepositState.PAID_OUT,
        ):
            continue
        done = deposit.state is DepositState.PAID_OUT
        paid_hash = deposit.payout_payment_hash_hex if done else None
        found.append(
            _Payout(
                owner=f"deposit/{deposit.payment_hash_hex}",
                task_id=task.task_id,
                payment_request=deposit.payout_request,
                payment_hash_hex=paid_hash or payment_hash_of(deposit.payout_request),
                amount_msat=deposit.amount_msat,
                done=done,
                claimed=done or deposit.hold_settled_at is not None,
                fee_msat=None,
                updated_at=deposit.closed_at or task.updated_at,
                deposit_hash_hex=deposit.payment_hash_hex,
            )
        )
    return found


def _task_payout(task: Task, kind: str, invoice: str, paid_hash: str | None) -> _Payout:
    """The reward's payout (``task``) or a split's employer share (``refund``) of ``task``."""
    refund_share = kind == "refund"
    amount_msat = task.payout_msat
    if refund_share:
        assert task.split_employer_msat is not None
        amount_msat = task.split_employer_msat
    return _Payout(
        owner=f"{kind}/{task.task_id}",
        task_id=task.task_id,
        payment_request=invoice,
        payment_hash_hex=paid_hash or payment_hash_of(invoice),
        amount_msat=amount_msat,
        done=paid_hash is not None,
        claimed=paid_hash is not None or task.hold_settled_at is not None,
        fee_msat=task.refund_fee_msat if refund_share else task.payout_fee_msat,
        updated_at=task.updated_at,
        funding_round=task.funding_round,
        refund_share=refund_share,
    )


def _row(payout: _Payout, sender: bool) -> PayoutRow | DepositPayoutRow | RefundPayoutRow:
    """The row as the engine left it: a finished payout succeeded; an unfinished one counts as
    sent (``attempts`` 1) only for the hash's sender, so the node's answer for it is ours."""
    done = payout.done
    values = {
        "task_id": payout.task_id,
        "payment_request": payout.payment_request,
        "payment_hash_hex": payout.payment_hash_hex,
        "amount_msat": payout.amount_msat,
        "status": (PaymentStatus.SUCCEEDED if done else PaymentStatus.UNKNOWN).value,
        "attempts": 1 if sender else 0,
        "fee_msat": payout.fee_msat if done else None,  # a deposit's fee is in its entry only
        "last_error": None if done else RESTORED_NOTE,
        "updated_at": payout.updated_at,
    }
    if payout.deposit_hash_hex is not None:
        return DepositPayoutRow(deposit_hash_hex=payout.deposit_hash_hex, **values)
    assert payout.funding_round is not None
    if payout.refund_share:
        return RefundPayoutRow(funding_round=payout.funding_round, **values)
    return PayoutRow(funding_round=payout.funding_round, **values)
