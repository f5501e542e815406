"""Who must act next on a task: one table over the task's state, for the notifications.

:data:`NEXT_ACTIONS` lists each thing a participant may be waited on for: when it is due (a
predicate over the task), who must do it, by when, and the moment the wait began. A wait is
identified by ``(task, action, recipient, since)``: the same wait seen again in a later
transition (a deposit entry while the task stays CLAIMED, say) is the same wait, and a new wait
of the same kind (a second submission after a rejection) has a new ``since``. Nothing here reads
a clock or does I/O; ``taskhold.notify`` turns each new wait into a private message.

What a wait names is public or known to its recipient anyway (task id, action, deadline): it
never carries task content, a proof, an invoice or a preimage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .model import DepositState, Task, TaskState
from .rounds import renewable

__all__ = [
    "NEXT_ACTIONS",
    "PAYOUT_ON_CHAIN",
    "ROUTING_FAILURES",
    "Due",
    "NextAction",
    "next_actions",
    "payout_on_chain_due",
]

S = TaskState


@dataclass(frozen=True, slots=True)
class Due:
    """One participant awaited for one action on one task."""

    task_id: str
    action: str
    recipient: str
    deadline_at: int | None
    since: str
    """What began the wait (the proof under review, the claim, the renewal's invoice …): with
    the rest, what makes the wait unique. Not a timestamp alone: two steps share a second."""
    text: str

    @property
    def key(self) -> str:
        return f"{self.task_id}:{self.action}:{self.recipient}:{self.since}"


@dataclass(frozen=True, slots=True)
class NextAction:
    """A row of :data:`NEXT_ACTIONS`."""

    action: str
    text: str
    """What the recipient is asked to do, as a sentence for people."""
    due: Callable[[Task], bool]
    who: Callable[[Task, frozenset[str]], Iterable[str]]
    deadline: Callable[[Task], int | None]
    since: Callable[[Task], object]
    open_only: bool = True
    """Due only while the task is open and no refund is ordered."""


def _employer(task: Task, arbiters: frozenset[str]) -> Iterable[str]:
    return [task.employer_pubkey]


def _worker(task: Task, arbiters: frozenset[str]) -> Iterable[str]:
    return [task.worker_pubkey] if task.worker_pubkey else []


def _dispute_counterparty(task: Task, arbiters: frozenset[str]) -> Iterable[str]:
    opened_by_employer = task.dispute_opened_by == task.employer_pubkey
    other = task.worker_pubkey if opened_by_employer else task.employer_pubkey
    return [other] if other else []


def _arbiters(task: Task, arbiters: frozenset[str]) -> Iterable[str]:
    return sorted(arbiters)


def _agreement_counterparty(task: Task, arbiters: frozenset[str]) -> Iterable[str]:
    if task.agreement_proposed_by == task.employer_pubkey:
        return _worker(task, arbiters)
    return [task.employer_pubkey]


def _forfeit_beneficiaries(task: Task, arbiters: frozenset[str]) -> Iterable[str]:
    return sorted(
        {
            deposit.beneficiary
            for deposit in task.deposits
            if deposit.state is DepositState.FORFEIT
            and deposit.payout_request is None
            and deposit.beneficiary
        }
    )


def _dispute_ends(task: Task) -> int | None:
    if task.dispute_opened_at is None:
        return None
    return task.dispute_opened_at + task.dispute_window_s


def _rejection_answer_by(task: Task) -> int | None:
    if task.rejected_at is None:
        return task.deadline_at
    return max(task.deadline_at, task.rejected_at + task.dispute_window_s)


def _doubled(applicants: tuple[str, ...]) -> int:
    """The employer hears of the 1st, 2nd, 4th, 8th… application, not of every one: a stranger
    with many keys fills a task's applications (``applications_max_per_task``) with a handful
    of messages to the employer, not one each."""
    count = len(applicants)
    return 1 << (count.bit_length() - 1) if count else 0


def _dispute_since(task: Task) -> str:
    return f"{task.dispute_opened_by}@{task.dispute_opened_at}"


ROUTING_FAILURES = frozenset({"FAILURE_REASON_NO_ROUTE"})
"""lnd's failure reasons that say the Lightning payout could not reach the worker: no route
(or no route with the liquidity) to their node. A new invoice from the same node would fail the
same way; an on-chain payout by reverse swap would not. ``FAILURE_REASON_INSUFFICIENT_BALANCE``
is not one: lnd means the escrow node's own local balance, so the payout waits for the
operator's liquidity and is not the worker's failure (``taskhold.payments.liquidity``).
(Pinned to the Lightning backends' own constants by a test: the rules import no Lightning
code.)"""

PAYOUT_ON_CHAIN = "payout_on_chain"
"""The row offering the on-chain fallback; sent only where the operator offers a swap API."""


def payout_on_chain_due(task: Task) -> bool:
    """The worker's Lightning payout failed for want of a route or liquidity, and nothing is
    paid or in flight: an on-chain payout by reverse swap could reach them."""
    return (
        task.state is S.VERIFIED
        and not task.refund_ordered
        and task.payout_failures > 0
        and task.last_payout_failure in ROUTING_FAILURES
        and task.payout_payment_hash_hex is None
        and task.hold_settled_at is None  # settled under a live payout: one is in flight
    )


def _review_ends(task: Task) -> int | None:
    return None if task.submitted_at is None else task.submitted_at + task.review_window_s


NEXT_ACTIONS: tuple[NextAction, ...] = (
    NextAction(
        "fund", "pay the task's hold invoice to fund it",
        due=lambda t: t.state is S.PENDING_FUNDING and t.payment_request is not None,
        who=_employer, deadline=lambda t: t.invoice_expires_at,
        since=lambda t: t.payment_hash_hex,
    ),
    NextAction(
        "claim", "the task was offered to you: claim it",
        due=lambda t: t.state is S.FUNDED and t.claim_mode == "direct" and not t.worker_pubkey,
        who=lambda t, a: [t.direct_worker] if t.direct_worker else [],
        deadline=lambda t: t.deadline_at, since=lambda t: t.funded_at,
    ),
    NextAction(
        "assign", "a worker applied: assign one of the applicants",
        due=lambda t: t.state is S.FUNDED and t.claim_mode == "apply" and bool(t.applicants),
        who=_employer, deadline=lambda t: t.deadline_at, since=lambda t: _doubled(t.applicants),
    ),
    NextAction(
        "submit_proof", "submit your proof of work",
        due=lambda t: t.state is S.CLAIMED and t.rejected_at is None,
        who=_worker, deadline=lambda t: t.deadline_at,
        since=lambda t: f"{t.worker_pubkey}@{t.claimed_at}",
    ),
    NextAction(
        "answer_rejection", "your submission was rejected: resubmit or dispute",
        due=lambda t: t.state is S.CLAIMED and t.rejected_at is not None,
        who=_worker, deadline=_rejection_answer_by,
        since=lambda t: f"{t.proof_event_id}@{t.rejected_at}",
    ),
    NextAction(
        "approve", "review the submission: approve or reject it (silence releases it)",
        due=lambda t: t.state is S.SUBMITTED,
        who=_employer, deadline=_review_ends, since=lambda t: t.proof_event_id,
    ),
    NextAction(
        "respond_to_dispute", "a dispute was opened on your task: respond to it",
        due=lambda t: t.state is S.DISPUTED,
        who=_dispute_counterparty, deadline=_dispute_ends, since=_dispute_since,
    ),
    NextAction(
        "resolve_dispute", "a dispute awaits an arbiter's ruling",
        due=lambda t: t.state is S.DISPUTED,
        who=_arbiters, deadline=_dispute_ends, since=_dispute_since,
    ),
    NextAction(
        "renew", "pay the renewal hold invoice so the task keeps its escrow",
        due=lambda t: t.renewal_payment_request is not None and renewable(t),
        who=_employer, deadline=lambda t: t.renewal_expires_at,
        since=lambda t: t.renewal_payment_hash_hex,
    ),
    NextAction(
        "answer_agreement", "the other party proposed an agreement: accept it or not",
        due=lambda t: t.agreement_proposed_by is not None,
        who=_agreement_counterparty, deadline=_dispute_ends,
        since=lambda t: f"{t.agreement_proposed_by}@{t.agreement_proposed_at}",
    ),
    NextAction(
        "send_payout_invoice", "the payout failed: send a new payout invoice",
        due=lambda t: t.state is S.VERIFIED and t.payout_failures > 0
        and t.payout_payment_hash_hex is None,
        who=_worker, deadline=lambda t: None, since=lambda t: t.payout_failures,
    ),
    NextAction(
        PAYOUT_ON_CHAIN,
        "the Lightning payout could not reach you: an on-chain payout by reverse swap is"
        " possible; send the swap's invoice as your payout invoice",
        due=payout_on_chain_due, who=_worker, deadline=lambda t: None,
        since=lambda t: t.payout_failures,
    ),
    NextAction(
        "send_refund_invoice", "the task was split: send the invoice for your share",
        due=lambda t: t.state is S.VERIFIED and bool(t.split_employer_msat)
        and t.refund_request is None,
        who=_employer, deadline=lambda t: None, since=lambda t: t.verified_at,
    ),
    NextAction(
        "send_deposit_invoice", "a forfeited deposit is yours: send an invoice for it",
        due=lambda t: bool(_forfeit_beneficiaries(t, frozenset())),
        who=_forfeit_beneficiaries, deadline=lambda t: None,
        since=lambda t: sum(1 for d in t.deposits if d.beneficiary), open_only=False,
    ),
)  # fmt: skip
"""The one table of who the task waits on. A task closed or being refunded waits on nobody but
the beneficiary of a forfeited deposit."""


def next_actions(task: Task, arbiters: frozenset[str]) -> list[Due]:
    """Every participant the task now waits on, and for what."""
    closing = task.is_terminal or task.refund_ordered
    found = []
    for row in NEXT_ACTIONS:
        if (closing and row.open_only) or not row.due(task):
            continue
        since = str(row.since(task))
        deadline = row.deadline(task)
        for recipient in row.who(task, arbiters):
            found.append(Due(task.task_id, row.action, recipient, deadline, since, row.text))
    return found
