"""Participant actions, one module per use case, and the table that routes an ``op`` to one.

| op               | module        | who (decided by the state machine) |
|------------------|---------------|------------------------------------|
| create           | create        | anyone: becomes the employer       |
| create (milestones) | milestones | anyone: one task per milestone     |
| fund             | fund          | employer                           |
| claim            | participant   | anyone but the employer            |
| proof (3911)     | proof         | the claimed worker                 |
| payout-invoice   | proof         | the worker                         |
| approve / reject | participant   | employer                           |
| dispute          | participant   | employer or worker                 |
| resolve          | participant   | a configured arbiter               |
| cancel           | participant   | employer                           |
| review           | review        | employer or worker, PAID/REFUNDED  |
| deposit          | deposit       | employer (DRAFT) or a would-be worker (FUNDED) |
| deposit-payout   | deposit       | the beneficiary of a forfeited deposit |
| apply            | participant   | anyone but the employer (claim mode apply) |
| assign           | participant   | employer, naming an applicant      |
| unclaim          | participant   | the worker, before any proof       |
| revoke           | participant   | employer, after the claim timeout  |
| refund-invoice   | proof         | the employer, for their share of a split |
| propose-agreement | participant | employer or worker, after a claim |
| accept-agreement   | participant | the party who did not propose |
| withdraw-agreement | participant | the party who proposed |
| swap             | swap_report   | employer (funding swap) or worker (payout swap), any state |

``create`` and ``fund`` first ask ``intake`` whether the operator paused intake
(``taskhold admin pause``): new tasks wait, tasks in flight go on.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import participant
from .create import create
from .deposit import deposit, deposit_payout
from .fund import fund
from .pipeline import Handler, WriteContext, perform
from .proof import submit_proof, update_payout_invoice, update_refund_invoice
from .review import review
from .swap_report import report_swap

__all__ = ["ACTIONS", "Action", "WriteContext", "perform"]


@dataclass(frozen=True, slots=True)
class Action:
    handler: Handler
    proof: bool = False
    """Signed as a worker proof (kind 3911) instead of a participant request (3912)."""


ACTIONS: dict[str, Action] = {
    "create": Action(create),
    "fund": Action(fund),
    "claim": Action(participant.claim),
    "proof": Action(submit_proof, proof=True),
    "payout-invoice": Action(update_payout_invoice),
    "approve": Action(participant.approve),
    "reject": Action(participant.reject),
    "dispute": Action(participant.open_dispute),
    "resolve": Action(participant.resolve_dispute),
    "cancel": Action(participant.cancel),
    "review": Action(review),
    "deposit": Action(deposit),
    "deposit-payout": Action(deposit_payout),
    "apply": Action(participant.apply),
    "assign": Action(participant.assign),
    "unclaim": Action(participant.unclaim),
    "revoke": Action(participant.revoke),
    "refund-invoice": Action(update_refund_invoice),
    "propose-agreement": Action(participant.propose_agreement),
    "accept-agreement": Action(participant.accept_agreement),
    "withdraw-agreement": Action(participant.withdraw_agreement),
    "swap": Action(report_swap),
}
