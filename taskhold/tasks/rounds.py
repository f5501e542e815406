"""Funding rounds: a task that outlasts one hold is renewed, round after round.

Round ``r``'s hold invoice pays to the preimage the key store derives for ``(task, r)``. When
the current hold nears its end and the task still needs time past it, taskhold opens round
``r + 1`` (``RenewalOpened``) for the employer to pay. Once its HTLC is held the task moves to
it (``Renewed``) and the previous hold is cancelled (``RoundCancelled``). So a task has one live
hold, two only during that overlap, and only the current round is ever settled:

- a renewal is taken only while nothing is decided (:data:`RENEWABLE_STATES`, no refund
  ordered): a release pays out of, and settles, the round it started on, never a later one;
- a renewal the task no longer takes (it was decided, refunded, or closed meanwhile, even with
  the renewal's HTLC already held) is cancelled, as is the previous round after a renewal
  (:func:`rounds_to_cancel`); the employer's HTLC goes back;
- an unpaid renewal leaves the current hold to the guardian's deadline policy.

:data:`ROUND_RULES` says which task states each command acts on; like deposit commands they
come only from taskhold itself, and ``CancelRound`` also acts on a closed task.
"""

from __future__ import annotations

from typing import Any

from taskhold.errors import Conflict, Forbidden, Invalid, RefusalCode

from . import commands as c
from . import events as e
from .model import SYSTEM_ACTOR, Task, TaskState

__all__ = [
    "RENEWABLE_STATES",
    "ROUND_RULES",
    "decide_round",
    "renewable",
    "round_changes",
    "rounds_to_cancel",
]

S = TaskState

RENEWABLE_STATES = frozenset({S.FUNDED, S.CLAIMED, S.SUBMITTED, S.DISPUTED})
"""Held and undecided: no payout or refund can be under way, so a round can still change."""

ROUND_RULES: dict[type[c.RoundCommand], tuple[frozenset[TaskState], str]] = {
    c.OpenRenewal: (RENEWABLE_STATES, "open a renewal of"),
    c.CompleteRenewal: (RENEWABLE_STATES, "renew the hold of"),
    c.CancelRound: (frozenset(TaskState), "cancel a round of"),
}
"""Command -> the states it acts on and the verb of its refusal (the role is always system)."""


def renewable(task: Task) -> bool:
    """Whether the task may still move to another round."""
    return task.state in RENEWABLE_STATES and not task.refund_ordered


def rounds_to_cancel(task: Task) -> list[str]:
    """Payment hashes of holds that are not the task's current round and that the engine
    cancels: the previous round after a renewal, and a renewal the task no longer takes."""
    hashes = []
    if task.retiring_payment_hash_hex is not None:
        hashes.append(task.retiring_payment_hash_hex)
    if task.renewal_payment_hash_hex is not None and not renewable(task):
        hashes.append(task.renewal_payment_hash_hex)
    return hashes


def decide_round(task: Task | None, cmd: c.RoundCommand) -> list[e.Event]:
    """The events one round command causes; a replay whose effect is recorded decides to none."""
    if task is None:
        raise Conflict("the task does not exist yet", code=RefusalCode.NO_SUCH_TASK)
    if cmd.actor != SYSTEM_ACTOR:
        raise Forbidden(
            "only taskhold itself renews or cancels a hold", code=RefusalCode.WRONG_ROLE
        )
    if _already_done(task, cmd):
        return []
    states, verb = ROUND_RULES[type(cmd)]
    if task.state not in states or (task.refund_ordered and not isinstance(cmd, c.CancelRound)):
        raise Conflict(
            f"cannot {verb} a task in state {task.state}"
            + (" with a refund under way" if task.refund_ordered else ""),
            code=RefusalCode.WRONG_STATE,
        )
    base: dict[str, Any] = {"at": cmd.at, "actor": cmd.actor}
    match cmd:
        case c.OpenRenewal():
            if task.renewal_round is not None or task.retiring_payment_hash_hex is not None:
                raise Conflict("a renewal of this task is under way", code=RefusalCode.WRONG_STATE)
            if cmd.funding_round != task.next_round:
                raise Invalid(f"the next round is {task.next_round}", code=RefusalCode.WRONG_STATE)
            return [
                e.RenewalOpened(
                    **base,
                    **c.invoice_fields(cmd),
                )
            ]
        case c.CompleteRenewal():
            if cmd.payment_hash_hex != task.renewal_payment_hash_hex:
                raise Conflict("no open renewal with this hash", code=RefusalCode.WRONG_STATE)
            if cmd.amount_paid_msat != task.amount_msat:
                raise Invalid(
                    "the renewal's held amount is not the task's", code=RefusalCode.UNDERPAID
                )
            assert task.renewal_round is not None and task.payment_hash_hex is not None
            return [
                e.Renewed(
                    **base,
                    funding_round=task.renewal_round,
                    payment_hash_hex=cmd.payment_hash_hex,
                    accepted_htlc_expiry_height=cmd.accepted_htlc_expiry_height,
                    amount_paid_msat=cmd.amount_paid_msat,
                    previous_payment_hash_hex=task.payment_hash_hex,
                )
            ]
        case c.CancelRound():
            if cmd.payment_hash_hex == task.renewal_payment_hash_hex:
                assert task.renewal_round is not None
                cancelled = task.renewal_round
            else:
                assert task.retiring_round is not None
                cancelled = task.retiring_round
            return [
                e.RoundCancelled(
                    **base,
                    funding_round=cancelled,
                    payment_hash_hex=cmd.payment_hash_hex,
                    reason=cmd.reason,
                )
            ]
    raise AssertionError(f"no round rule for {type(cmd).__name__}")


def _already_done(task: Task, cmd: c.RoundCommand) -> bool:
    match cmd:
        case c.OpenRenewal():
            return task.renewal_payment_hash_hex == cmd.payment_hash_hex or (
                task.next_round > cmd.funding_round
            )
        case c.CompleteRenewal():
            return task.payment_hash_hex == cmd.payment_hash_hex
        case c.CancelRound():
            if cmd.payment_hash_hex == task.payment_hash_hex:
                raise Conflict(
                    "the current round is cancelled only by a refund",
                    code=RefusalCode.WRONG_STATE,
                )
            return cmd.payment_hash_hex not in (
                task.renewal_payment_hash_hex,
                task.retiring_payment_hash_hex,
            )
    return False


def round_changes(task: Task, ev: e.Event) -> dict[str, Any]:
    """Fold one round event into the task."""
    closed_renewal: dict[str, Any] = {
        "renewal_round": None,
        "renewal_payment_hash_hex": None,
        "renewal_payment_request": None,
        "renewal_cltv_expiry_delta": None,
        "renewal_expires_at": None,
    }
    match ev:
        case e.RenewalOpened():
            return {
                "last_renewal_round": ev.funding_round,
                "renewal_round": ev.funding_round,
                "renewal_payment_hash_hex": ev.payment_hash_hex,
                "renewal_payment_request": ev.payment_request,
                "renewal_cltv_expiry_delta": ev.cltv_expiry_delta,
                "renewal_expires_at": ev.invoice_expires_at,
            }
        case e.Renewed():
            return {
                **closed_renewal,
                "funding_round": ev.funding_round,
                "payment_hash_hex": ev.payment_hash_hex,
                "payment_request": task.renewal_payment_request,
                "cltv_expiry_delta": task.renewal_cltv_expiry_delta,
                "invoice_expires_at": task.renewal_expires_at,
                "accepted_htlc_expiry_height": ev.accepted_htlc_expiry_height,
                "retiring_round": task.funding_round,
                "retiring_payment_hash_hex": ev.previous_payment_hash_hex,
            }
        case e.RoundCancelled() if ev.payment_hash_hex == task.renewal_payment_hash_hex:
            return closed_renewal
        case e.RoundCancelled() if ev.payment_hash_hex == task.retiring_payment_hash_hex:
            return {"retiring_round": None, "retiring_payment_hash_hex": None}
    raise Invalid(f"{type(ev).__name__} does not apply to the task's rounds")
