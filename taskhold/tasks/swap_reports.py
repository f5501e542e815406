"""Swap reports: the facts of the Boltz swaps that fund or pay a task, in its public log.

Neither side's keys pass through taskhold (issue #14): the employer's client runs the funding
(submarine) swap that pays the hold invoice, the worker's client the payout (reverse) swap
whose invoice is the payout invoice. Each reports its swap's facts as a signed write, and the
log keeps them beside the task's Lightning facts: swap id, the Boltz API it runs at, the
lockup txid, and the claim or refund txid. Anyone can check them against the chain.

What a report may say is :data:`SWAP_RULES` (who reports which swap, from when) and:

- a txid is 64 lower-case hex, and once recorded for a swap it never changes: a report is a
  fact, not a draft (``swap_fact_conflict``);
- a swap is claimed or refunded, never both (``swap_fact_conflict``);
- a report that adds nothing decides to no event: a client may repeat it safely;
- at most :data:`MAX_SWAPS_PER_ROLE` swap ids per role on one task (``too_many_swaps``): a
  party cannot fill the task's log with invented swaps;
- facts arrive after the task closed (a refund after the hold was cancelled, a claim after
  the release), so reports are taken in every state, still under the same cap.

Pure like the rest of the machine: ``decide_swap`` for swap commands, ``swap_changes`` to fold
``SwapReported``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskhold.errors import Conflict, Forbidden, Invalid, RefusalCode
from taskhold.settings import swap_api_problem

from . import commands as c
from . import events as e
from .model import Role, SwapRecord, Task

__all__ = [
    "MAX_SWAPS_PER_ROLE",
    "SWAP_RULES",
    "SwapRule",
    "decide_swap",
    "swap_changes",
]

MAX_SWAPS_PER_ROLE = 4
"""Distinct swap ids one task records per role: a swap that failed and one retried, with room
to spare; never a log a hostile party can fill."""

_TXID = re.compile(r"[0-9a-f]{64}")
_SWAP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FACTS = ("lockup_txid", "claim_txid", "refund_txid")


@dataclass(frozen=True, slots=True)
class SwapRule:
    """Who reports a swap of one role, and from when."""

    reporter: Role
    ready: Callable[[Task], bool]
    not_ready: str
    """The refusal while ``ready`` is false."""


SWAP_RULES: dict[str, SwapRule] = {
    "funding": SwapRule(
        Role.EMPLOYER,
        ready=lambda task: task.payment_request is not None,
        not_ready="no hold invoice was issued for this task yet; a funding swap pays one",
    ),
    "payout": SwapRule(
        Role.WORKER,
        ready=lambda task: task.verified_at is not None,
        not_ready="a payout swap is reported once the task is VERIFIED",
    ),
}
"""Role of the swap -> its rule. The employer funds by a submarine swap paying the task's hold
invoice; the worker is paid by a reverse swap whose invoice is the payout invoice, so only
once the work is verified. ``verified_at`` stays set when the task moves on (PAID, or a refund
after the payout failed), and so does the worker: their facts may still arrive."""


def decide_swap(task: Task | None, cmd: c.SwapCommand, arbiters: frozenset[str]) -> list[e.Event]:
    """The events one swap command causes; raises a Refusal if it is not allowed."""
    if task is None:
        raise Conflict("the task does not exist yet", code=RefusalCode.NO_SUCH_TASK)
    assert isinstance(cmd, c.ReportSwap)
    rule = SWAP_RULES.get(cmd.role)
    if rule is None:
        raise Invalid(
            f"a swap's role is one of {', '.join(sorted(SWAP_RULES))}",
            code=RefusalCode.BAD_SWAP_REPORT,
        )
    role = task.role_of(cmd.actor, arbiters)
    if role is not rule.reporter:
        raise Forbidden(
            f"only the {rule.reporter.value} reports a {cmd.role} swap; you are the {role.value}",
            code=RefusalCode.WRONG_ROLE,
        )
    _check_shape(cmd)
    if not rule.ready(task):
        raise Conflict(rule.not_ready, code=RefusalCode.WRONG_STATE)
    if cmd.claim_txid is not None and cmd.refund_txid is not None:
        raise Conflict(
            "a swap is either claimed or refunded, not both", code=RefusalCode.SWAP_FACT_CONFLICT
        )
    recorded = task.swap_of(cmd.role, cmd.swap_id)
    if recorded is None:
        taken = sum(1 for swap in task.swaps if swap.role == cmd.role)
        if taken >= MAX_SWAPS_PER_ROLE:
            raise Conflict(
                f"this task already records {taken} {cmd.role} swaps, the most it takes",
                code=RefusalCode.TOO_MANY_SWAPS,
            )
    elif not _adds_to(recorded, cmd):
        return []  # the same facts again: nothing to record
    return [
        e.SwapReported(
            at=cmd.at,
            actor=cmd.actor,
            role=cmd.role,
            swap_id=cmd.swap_id,
            swap_api=cmd.swap_api,
            lockup_txid=cmd.lockup_txid,
            claim_txid=cmd.claim_txid,
            refund_txid=cmd.refund_txid,
        )
    ]


def _check_shape(cmd: c.ReportSwap) -> None:
    if _SWAP_ID.fullmatch(cmd.swap_id) is None:
        raise Invalid(
            "swap_id is 1 to 64 letters, digits, '-' or '_'", code=RefusalCode.BAD_SWAP_REPORT
        )
    problem = swap_api_problem(cmd.swap_api)
    if problem is not None:
        raise Invalid(f"swap_api: {problem}", code=RefusalCode.BAD_SWAP_REPORT)
    for name in _FACTS:
        value = getattr(cmd, name)
        if value is not None and _TXID.fullmatch(value) is None:
            raise Invalid(f"{name} must be 64 lower-case hex", code=RefusalCode.BAD_SWAP_REPORT)


def _adds_to(recorded: SwapRecord, cmd: c.ReportSwap) -> bool:
    """Whether ``cmd`` adds a fact to the recorded swap; raises if it contradicts one."""
    if cmd.swap_api != recorded.swap_api:
        raise Conflict(
            f"swap {cmd.swap_id} is recorded at {recorded.swap_api}",
            code=RefusalCode.SWAP_FACT_CONFLICT,
        )
    adds = False
    for name in _FACTS:
        new, known = getattr(cmd, name), getattr(recorded, name)
        if new is None:
            continue
        if known is not None and known != new:
            raise Conflict(
                f"swap {cmd.swap_id} already records {name} {known}; a txid never changes",
                code=RefusalCode.SWAP_FACT_CONFLICT,
            )
        adds = adds or known is None
    claimed = cmd.claim_txid or recorded.claim_txid
    refunded = cmd.refund_txid or recorded.refund_txid
    if claimed and refunded:
        raise Conflict(
            f"swap {cmd.swap_id} is recorded {'claimed' if recorded.claim_txid else 'refunded'};"
            " a swap is either claimed or refunded, not both",
            code=RefusalCode.SWAP_FACT_CONFLICT,
        )
    return adds


def swap_changes(task: Task, ev: e.SwapReported) -> dict[str, Any]:
    """Fold one report into the task's ``swaps``: a new swap is appended, a known one gains
    the facts the report gives."""
    recorded = task.swap_of(ev.role, ev.swap_id)
    given = {name: getattr(ev, name) for name in _FACTS if getattr(ev, name) is not None}
    if recorded is None:
        swap = SwapRecord(
            role=ev.role,
            swap_id=ev.swap_id,
            swap_api=ev.swap_api,
            reporter=ev.actor,
            first_reported_at=ev.at,
            last_reported_at=ev.at,
            **given,
        )
        return {"swaps": (*task.swaps, swap)}
    updated = dataclasses.replace(recorded, last_reported_at=ev.at, **given)
    return {"swaps": tuple(updated if s is recorded else s for s in task.swaps)}
