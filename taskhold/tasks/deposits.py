"""Deposits: a small hold invoice a stranger locks on a task instead of proof of work.

A deposit belongs to one task and one depositor: the employer (locked before funding, after a
create that pledged it) or a would-be worker (locked before claiming). Like the reward, it is
only ever held by the escrow node, never taken:

- it is **returned** (its hold invoice cancelled) when the task ends, when someone else claims
  the task, or when it would otherwise outlive its HTLC;
- it is **forfeited** to the counterparty when its depositor abandons the task: a worker who
  claimed and never sent a proof (not even one the automatic checks refused) before the task
  was refunded, whether by the deadline or by a dispute the worker opened; or an employer who
  let the review window run out without approving or rejecting. A dispute the employer opened
  before any proof forfeits nothing: it stopped the worker from submitting. The beneficiary
  sends an invoice for the deposit's amount; taskhold pays it from the escrow node and only
  then settles the deposit's invoice, the order a release follows. A forfeit nobody could be
  paid before the HTLC's guard margin is returned: settling without paying would make taskhold
  custodial;
  unless its payment is still in flight, when it is settled under the declared fallback
  (``DepositSettledUnderLivePayout``) and the beneficiary stays owed;
- a worker who **gives the task back** (``ClaimReleased``) before the claim timeout gets it
  back: the employer lost nothing but the time the worker declared. A **revoked** claim
  (``ClaimRevoked``), or a release after the timeout, when the employer could have revoked
  (so unclaiming is no way to dodge the forfeit), is abandonment: the deposit is forfeited to
  the employer.

Pure like the rest of the machine: ``decide_deposit`` for deposit commands, ``consequences``
for what a task's own events do to its deposits, ``deposit_changes`` to fold deposit events.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

from taskhold.errors import Conflict, Forbidden, Invalid, RefusalCode

from . import commands as c
from . import events as e
from .model import SYSTEM_ACTOR, Deposit, DepositState, Role, Task, TaskState
from .payout_proof import check_payout_preimage

__all__ = [
    "claim_timed_out",
    "consequences",
    "decide_deposit",
    "deposit_changes",
    "next_deposit_round",
]

D = DepositState


def next_deposit_round(task: Task, depositor: str) -> int:
    """The round a new deposit by ``depositor`` gets (it names the deposit's payment hash)."""
    previous = task.deposit_of(depositor)
    return 0 if previous is None else previous.round + 1


def decide_deposit(
    task: Task | None, cmd: c.DepositCommand, arbiters: frozenset[str]
) -> list[e.Event]:
    """The events one deposit command causes; raises a Refusal if it is not allowed.

    Unlike task commands these also act on a closed task: its deposits are settled up after it.
    """
    if task is None:
        raise Conflict("the task does not exist yet", code=RefusalCode.NO_SUCH_TASK)
    if isinstance(cmd, c.RequestDeposit):
        return _request(task, cmd, arbiters)
    if isinstance(cmd, c.RequestDepositPayout):
        return _request_payout(task, cmd)
    assert isinstance(cmd, c.SystemDepositCommand)
    payment_hash = cmd.payment_hash_hex
    deposit = task.deposit_by_hash(payment_hash)
    if deposit is None:
        raise Conflict(
            "no deposit with this payment hash on the task", code=RefusalCode.NO_SUCH_DEPOSIT
        )
    if cmd.actor != SYSTEM_ACTOR:
        raise Forbidden(
            "only taskhold itself records what the node did", code=RefusalCode.WRONG_ROLE
        )
    base: dict[str, Any] = {"at": cmd.at, "actor": cmd.actor, "depositor": deposit.depositor}
    latest = task.deposit_of(deposit.depositor) is deposit
    match cmd:
        case c.ConfirmDeposit() if latest and deposit.state is D.OPEN:
            if cmd.amount_paid_msat < deposit.amount_msat:
                raise Invalid(
                    "the held amount is less than the deposit", code=RefusalCode.UNDERPAID
                )
            return [
                e.DepositLocked(
                    **base, expiry_height=cmd.expiry_height, amount_paid_msat=cmd.amount_paid_msat
                )
            ]
        case c.DepositInvoiceCancelled() if latest and deposit.is_live:
            return [e.DepositReturned(**base, invoice_state="CANCELED")]
        case c.DepositExpiring() if (
            latest and deposit.state in (D.HELD, D.FORFEIT) and deposit.hold_settled_at is None
        ):
            what = "the forfeit could not be paid" if deposit.state is D.FORFEIT else "held"
            reason = f"{what} before the hold came within {cmd.blocks_left} blocks of expiry"
            return [e.DepositReturnOrdered(**base, reason=reason)]
        case c.RecordDepositPayoutFailure() if latest and deposit.state is D.FORFEIT:
            return [e.DepositPayoutFailed(**base, reason=cmd.reason)]
        case c.CompleteDepositReturn() if latest and deposit.state is D.RETURNING:
            return [e.DepositReturned(**base, invoice_state=cmd.invoice_state)]
        case c.SettleDepositUnderLivePayout() if (
            latest and deposit.hold_settled_at is None and deposit.payout_may_be_owed
        ):
            if hashlib.sha256(bytes.fromhex(cmd.preimage_hex)).hexdigest() != payment_hash:
                raise Invalid(
                    "the preimage does not hash to the deposit's", code=RefusalCode.BAD_PREIMAGE
                )
            return [
                e.DepositSettledUnderLivePayout(
                    **base,
                    preimage_hex=cmd.preimage_hex,
                    payout_payment_hash_hex=cmd.payout_payment_hash_hex,
                    blocks_left=cmd.blocks_left,
                )
            ]
        case c.CompleteDepositPayout() if latest and deposit.state is D.FORFEIT:
            if deposit.payout_request is None:
                raise Conflict(
                    "the beneficiary has sent no invoice", code=RefusalCode.NO_PAYOUT_INVOICE
                )
            if hashlib.sha256(bytes.fromhex(cmd.preimage_hex)).hexdigest() != payment_hash:
                raise Invalid(
                    "the preimage does not hash to the deposit's", code=RefusalCode.BAD_PREIMAGE
                )
            check_payout_preimage(cmd.payout_preimage_hex, cmd.payout_payment_hash_hex)
            return [
                e.DepositPaidOut(
                    **base,
                    preimage_hex=cmd.preimage_hex,
                    payout_payment_hash_hex=cmd.payout_payment_hash_hex,
                    payout_fee_msat=cmd.payout_fee_msat,
                    payout_preimage_hex=cmd.payout_preimage_hex,
                )
            ]
    return []  # already done, or overtaken (e.g. a late confirmation of a returned deposit)


def _request(task: Task, cmd: c.RequestDeposit, arbiters: frozenset[str]) -> list[e.Event]:
    if task.is_terminal or task.refund_ordered:
        raise Conflict(
            f"the task is {task.state}; it takes no deposits", code=RefusalCode.TASK_CLOSED
        )
    previous = task.deposit_of(cmd.actor)
    if previous is not None and previous.state is not D.RETURNED:
        raise Conflict(
            f"you already have a deposit on this task ({previous.state})",
            code=RefusalCode.DEPOSIT_EXISTS,
        )
    if cmd.round != next_deposit_round(task, cmd.actor):
        raise Invalid("wrong deposit round", code=RefusalCode.WRONG_ROUND)
    role = task.role_of(cmd.actor, arbiters)
    if role is Role.EMPLOYER:
        if task.state is not TaskState.DRAFT:
            raise Conflict(
                "an employer's deposit is locked before the task is funded",
                code=RefusalCode.WRONG_STATE,
            )
        side = "employer"
    elif role is Role.OTHER:
        if task.state is not TaskState.FUNDED:
            raise Conflict(
                f"a worker's deposit is locked on a FUNDED task before claiming it; this one is"
                f" {task.state}",
                code=RefusalCode.WRONG_STATE,
            )
        if cmd.at >= task.deadline_at:
            raise Conflict("the task's deadline has passed", code=RefusalCode.DEADLINE_PASSED)
        side = "worker"
    else:
        raise Forbidden(
            f"only the employer or a worker about to claim may lock a deposit; you are the"
            f" {role.value}",
            code=RefusalCode.WRONG_ROLE,
        )
    if cmd.amount_msat <= 0:
        raise Invalid("a deposit must be positive")
    waiting = [d for d in _newest(task.deposits) if d.state in (D.OPEN, D.HELD)]
    if len(waiting) >= cmd.max_open_per_task or len(task.deposits) >= cmd.max_per_task:
        raise Conflict(
            f"this task already has {len(waiting)} deposits waiting for a claim and took"
            f" {len(task.deposits)} in all, the most it takes; claim it with proof of work, or"
            " try again once a deposit is returned",
            code=RefusalCode.TOO_MANY_DEPOSITS,
        )
    return [
        e.DepositRequested(
            at=cmd.at,
            actor=cmd.actor,
            depositor=cmd.actor,
            role=side,
            round=cmd.round,
            amount_msat=cmd.amount_msat,
            payment_hash_hex=cmd.payment_hash_hex,
            payment_request=cmd.payment_request,
            cltv_expiry_delta=cmd.cltv_expiry_delta,
            invoice_expires_at=cmd.invoice_expires_at,
        )
    ]


def _request_payout(task: Task, cmd: c.RequestDepositPayout) -> list[e.Event]:
    deposit = task.deposit_of(cmd.depositor)
    if deposit is None:
        raise Conflict("that pubkey has no deposit on this task", code=RefusalCode.NO_SUCH_DEPOSIT)
    if deposit.beneficiary != cmd.actor:
        raise Forbidden(
            "only the beneficiary of a forfeited deposit may send its invoice",
            code=RefusalCode.WRONG_ROLE,
        )
    if deposit.state is not D.FORFEIT:
        raise Conflict(f"the deposit is {deposit.state}", code=RefusalCode.WRONG_STATE)
    return [
        e.DepositPayoutRequested(
            at=cmd.at, actor=cmd.actor, depositor=cmd.depositor, payout_request=cmd.payout_request
        )
    ]


def consequences(before: Task, after: Task, events: Sequence[e.Event]) -> list[e.Event]:
    """What a task's own events do to its live deposits: forfeit the one whose depositor
    abandoned the task, return the ones nobody needs any more."""
    if not events:
        return []
    at, actor = events[-1].at, events[-1].actor
    out: list[e.Event] = []
    for deposit in _newest(after.deposits):
        if deposit.state not in (D.OPEN, D.HELD):
            continue
        base: dict[str, Any] = {"at": at, "actor": actor, "depositor": deposit.depositor}
        abandoned = _abandonment(before, after, events, deposit)
        if abandoned is not None and deposit.state is D.HELD:
            beneficiary, reason = abandoned
            out.append(e.DepositForfeited(**base, beneficiary=beneficiary, reason=reason))
        elif after.is_terminal:
            out.append(e.DepositReturnOrdered(**base, reason=f"the task ended {after.state}"))
        elif _released_by(events) == deposit.depositor:
            out.append(e.DepositReturnOrdered(**base, reason="the worker gave the task back"))
        elif deposit.role == "worker" and after.worker_pubkey is not None:
            if deposit.depositor != after.worker_pubkey:
                out.append(e.DepositReturnOrdered(**base, reason="another worker claimed the task"))
            elif deposit.state is D.OPEN:
                out.append(e.DepositReturnOrdered(**base, reason="claimed without the deposit"))
    return out


def _abandonment(
    before: Task, after: Task, events: Sequence[e.Event], deposit: Deposit
) -> tuple[str, str] | None:
    """``(beneficiary, reason)`` when these events show the depositor abandoning the task."""
    worker = before.worker_pubkey
    if deposit.role == "worker" and deposit.depositor == worker:
        held_the_claim = before.state is TaskState.CLAIMED or (
            before.state is TaskState.DISPUTED and before.dispute_opened_by == worker
        )
        never_tried = before.proof is None and before.proofs_refused == 0
        refunded = before.refund_ordered_reason is None and after.refund_ordered_reason is not None
        agreed = any(isinstance(ev, e.AgreementAccepted) for ev in events)  # a cancel both signed
        if held_the_claim and never_tried and refunded and not agreed:
            return (
                after.employer_pubkey,
                "the worker claimed the task and sent no proof before it was refunded",
            )
    if deposit.role == "worker" and _released_by(events) == deposit.depositor:
        if any(isinstance(ev, e.ClaimRevoked) for ev in events):
            return after.employer_pubkey, "the claim was revoked: no proof within its timeout"
        if claim_timed_out(before, events[-1].at):
            return (
                after.employer_pubkey,
                "the worker gave the task back after the claim timeout, without a proof",
            )
    if deposit.role == "employer" and after.worker_pubkey is not None:
        silent = before.state is TaskState.SUBMITTED
        if silent and any(isinstance(ev, e.ReviewWindowElapsed) for ev in events):
            return (
                after.worker_pubkey,
                "the employer let the review window run out without approving or rejecting",
            )
    return None


def _released_by(events: Sequence[e.Event]) -> str | None:
    """The worker these events released from the task (unclaimed or revoked), if any."""
    for ev in events:
        if isinstance(ev, e.ClaimReleased | e.ClaimRevoked):
            return ev.worker_pubkey
    return None


def claim_timed_out(task: Task, at: int) -> bool:
    """Whether ``task``'s claim timeout has passed at ``at`` (never for a task without one)."""
    if task.claim_timeout_s is None or task.claimed_at is None:
        return False
    return at >= task.claimed_at + task.claim_timeout_s


def _newest(deposits: Sequence[Deposit]) -> list[Deposit]:
    newest: dict[str, Deposit] = {}
    for deposit in deposits:
        newest[deposit.depositor] = deposit
    return list(newest.values())


def deposit_changes(task: Task, ev: e.DepositEvent) -> dict[str, Any]:
    """Fold one deposit event into the task's ``deposits``."""
    if isinstance(ev, e.DepositRequested):
        deposit = Deposit(
            depositor=ev.depositor,
            role=ev.role,
            round=ev.round,
            amount_msat=ev.amount_msat,
            payment_hash_hex=ev.payment_hash_hex,
            payment_request=ev.payment_request,
            cltv_expiry_delta=ev.cltv_expiry_delta,
            invoice_expires_at=ev.invoice_expires_at,
            requested_at=ev.at,
        )
        return {"deposits": (*task.deposits, deposit)}
    current = task.deposit_of(ev.depositor)
    if current is None:
        raise Invalid(f"{type(ev).__name__} for a deposit that does not exist")
    changed: dict[str, Any]
    match ev:
        case e.DepositLocked():
            changed = {"state": D.HELD, "expiry_height": ev.expiry_height}
        case e.DepositReturnOrdered():
            changed = {"state": D.RETURNING, "reason": ev.reason}
        case e.DepositForfeited():
            changed = {"state": D.FORFEIT, "beneficiary": ev.beneficiary, "reason": ev.reason}
        case e.DepositPayoutRequested():
            changed = {"payout_request": ev.payout_request, "payout_failures": 0}
        case e.DepositPayoutFailed():
            changed = {
                "payout_failures": current.payout_failures + 1,
                "last_payout_failure": ev.reason,
            }
        case e.DepositReturned():
            changed = {"state": D.RETURNED, "closed_at": ev.at}
        case e.DepositSettledUnderLivePayout():
            # A return ordered on a payout the node wrongly reported failed is superseded.
            changed = {
                "hold_settled_at": ev.at,
                "preimage_hex": ev.preimage_hex,
                "state": D.FORFEIT,
            }
        case e.DepositPaidOut():
            changed = {
                "state": D.PAID_OUT,
                "preimage_hex": ev.preimage_hex,
                "payout_payment_hash_hex": ev.payout_payment_hash_hex,
                "closed_at": ev.at,
            }
        case _:
            raise Invalid(f"no reducer for {type(ev).__name__}")
    updated = dataclasses.replace(current, **changed)
    return {"deposits": tuple(updated if d is current else d for d in task.deposits)}
