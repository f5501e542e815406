"""Agreements: the employer and the worker end a claimed task together, without an arbiter.

One party proposes what the worker gets (``worker_msat``); the other accepts by repeating that
amount, so a proposal changed under a racing accept is refused instead of accepted unseen. The
proposer may withdraw it; a new proposal by either party replaces it. Only the two parties take
part, and only while the task is claimed, submitted or disputed: from VERIFIED on the escrow
engine is paying the worker, and an agreement to cancel could only race that payout (the hold
must never be cancelled under a payment in flight), so a proposal lapses when the task leaves
those states.

What an accepted agreement does is decided in one place, :func:`agreement_outcome`:

- ``worker_msat == 0``: a cooperative cancel, the hold invoice is cancelled at once;
- ``worker_msat == payout``: the submission is verified and released as usual;
- anything between splits the amount (``splits.split_decided``, basis ``agreement``): the
  worker's share and the employer's are paid, then the hold is settled.

Pure like the rest of the machine; ``machine`` routes the three commands here.
"""

from __future__ import annotations

from typing import Any

from taskhold.errors import Conflict, Forbidden, Invalid, RefusalCode

from . import commands as c
from . import events as e
from .model import Task, TaskState
from .splits import split_decided

__all__ = [
    "AGREEMENT_STATES",
    "CANCELLED_BY_AGREEMENT",
    "accept_agreement",
    "agreement_changes",
    "agreement_outcome",
    "propose_agreement",
    "withdraw_agreement",
    "without_lapsed_proposal",
]

AGREEMENT_STATES = frozenset({TaskState.CLAIMED, TaskState.SUBMITTED, TaskState.DISPUTED})
"""Where a proposal may be made, stand and be accepted: after a claim, before any payout."""

CANCELLED_BY_AGREEMENT = "cancelled by agreement"
"""The reason of the refund a cooperative cancel orders."""


def agreement_outcome(task: Task, worker_msat: int, actor: str, at: int) -> list[e.Event]:
    """The events an accepted agreement for ``worker_msat`` leads to, after
    ``AgreementAccepted`` (which itself verifies a full payout); raises if it cannot be done.

    Also run when the proposal is made, so that a proposal nobody could accept is refused at
    once rather than at its acceptance.
    """
    if not 0 <= worker_msat <= task.payout_msat:
        raise Invalid(
            f"worker_msat must be between 0 (cancel) and the payout of {task.payout_msat} msat",
            code=RefusalCode.BAD_AGREEMENT_AMOUNT,
        )
    if worker_msat == 0:
        return [e.RefundOrdered(at=at, actor=actor, reason=CANCELLED_BY_AGREEMENT)]
    if task.proof is None:
        raise Conflict(
            "the worker has submitted no proof, so there is no payout invoice to pay;"
            " only a cancel (worker_msat 0) can be agreed now",
            code=RefusalCode.NO_PROOF,
        )
    if worker_msat == task.payout_msat:
        return []
    # Anything between splits the amount: worker_msat to the worker, the rest (minus the fee)
    # back to the employer, paid like an arbiter's split.
    return split_decided(
        task, at=at, actor=actor, worker_msat=worker_msat, basis="agreement", note="agreed"
    )


def propose_agreement(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.ProposeAgreement)
    agreement_outcome(task, cmd.worker_msat, cmd.actor, cmd.at)
    note = cmd.note.strip()
    return [e.AgreementProposed(at=cmd.at, actor=cmd.actor, worker_msat=cmd.worker_msat, note=note)]


def accept_agreement(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.AcceptAgreement)
    proposer = _standing_proposer(task)
    if cmd.actor == proposer:
        raise Forbidden(
            "you made this proposal; only the other party may accept it",
            code=RefusalCode.OWN_PROPOSAL,
        )
    if cmd.worker_msat != task.agreement_worker_msat:
        raise Conflict(
            f"the standing proposal gives the worker {task.agreement_worker_msat} msat, not"
            f" {cmd.worker_msat}; read the task again before accepting",
            code=RefusalCode.PROPOSAL_CHANGED,
        )
    accepted = e.AgreementAccepted(
        at=cmd.at, actor=cmd.actor, worker_msat=cmd.worker_msat, proposed_by=proposer
    )
    return [accepted, *agreement_outcome(task, cmd.worker_msat, cmd.actor, cmd.at)]


def withdraw_agreement(task: Task, cmd: c.Command) -> list[e.Event]:
    assert isinstance(cmd, c.WithdrawAgreement)
    if cmd.actor != _standing_proposer(task):
        raise Forbidden(
            "only the party who made the proposal may withdraw it; make a new proposal instead",
            code=RefusalCode.NOT_YOUR_PROPOSAL,
        )
    return [e.AgreementWithdrawn(at=cmd.at, actor=cmd.actor)]


def _standing_proposer(task: Task) -> str:
    if task.agreement_proposed_by is None:
        raise Conflict("there is no standing proposal on this task", code=RefusalCode.NO_PROPOSAL)
    return task.agreement_proposed_by


_NO_PROPOSAL: dict[str, Any] = {
    "agreement_proposed_by": None,
    "agreement_worker_msat": None,
    "agreement_note": None,
    "agreement_proposed_at": None,
}


def agreement_changes(task: Task, ev: e.Event) -> dict[str, Any]:
    """Fold one agreement event."""
    match ev:
        case e.AgreementProposed():
            return {
                "agreement_proposed_by": ev.actor,
                "agreement_worker_msat": ev.worker_msat,
                "agreement_note": ev.note,
                "agreement_proposed_at": ev.at,
            }
        case e.AgreementAccepted() if ev.worker_msat == task.payout_msat:
            return {
                **_NO_PROPOSAL,
                "agreed_worker_msat": ev.worker_msat,
                "state": TaskState.VERIFIED,
                "verified_at": ev.at,
                "verified_by": task.employer_pubkey,  # who agreed to pay, by proposal or accept
            }
        case e.AgreementAccepted():
            return {**_NO_PROPOSAL, "agreed_worker_msat": ev.worker_msat}
    return dict(_NO_PROPOSAL)  # AgreementWithdrawn


def without_lapsed_proposal(task: Task) -> dict[str, Any]:
    """A proposal lapses once the task leaves the states it may be accepted in, or a refund
    is ordered: the view shows no proposal that nobody could accept."""
    if task.agreement_proposed_by is None:
        return {}
    if task.state in AGREEMENT_STATES and task.refund_ordered_reason is None:
        return {}
    return dict(_NO_PROPOSAL)
